//! The library's error type: one enum whose variants are sentences a user can act on.
//!
//! Rules every variant follows: it says what failed, names the file, model, field or limit, and
//! where there is one, what to do next. No variant ever carries a secret (passphrase, key, or
//! decrypted model bytes). Messages speak of the library's own terms (paths, models, limits),
//! never of a front end's flags or commands: the `mvault` CLI adds its own hints and maps
//! variants to exit codes (`src/cli/exit.rs`).

use std::path::PathBuf;

pub use crate::remedy::{Input, Remedy};

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every error the library returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No vault file exists at the path.
    #[error("vault not found at {}", .0.display())]
    VaultNotFound(PathBuf),

    /// `create` was asked to make a vault where a file already exists.
    #[error("a file already exists at {}: refusing to overwrite it", .0.display())]
    VaultExists(PathBuf),

    /// Another process (or another handle in this one) holds the vault's lock.
    #[error("vault {} is in use by another process", .0.display())]
    VaultInUse(PathBuf),

    /// A command that writes was given a vault file this process may only read (it was opened
    /// read-only: no write permission, a read-only filesystem, or the caller asked for it).
    #[error(
        "the vault file {} is read-only for you: this command writes to the vault, and this process may only read the file; run it as a user who may write it (reading commands work as they are)", .0.display()
    )]
    ReadOnly(PathBuf),

    /// The file exists but is not a modelvault vault, or its header is unreadable.
    #[error("{} is not a modelvault vault: {reason}", .path.display())]
    NotAVault {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },

    /// The vault was written by a newer, incompatible format version.
    #[error(
        "vault format version {found} is not supported (this build reads versions up to {supported}): upgrade mvault"
    )]
    UnsupportedVersion {
        /// Version in the file.
        found: u32,
        /// Version this build understands.
        supported: u32,
    },

    /// No key slot opened with the passphrase given.
    #[error("wrong passphrase: no key slot of this vault opens with it")]
    WrongPassphrase,

    /// No recipient key slot opened with the identities given; names where they came from.
    #[error("no key slot of this vault opens with the identity in {0}")]
    WrongIdentity(String),

    /// No key slot tried opened with the passphrase, and a limit on one unlock (slots tried,
    /// Argon2id work) stopped before the rest were tried; the message names the slot and the
    /// limit; it comes as an [`Error::Guided`] whose remedy is to unlock with a slot by name.
    #[error("{0}")]
    UnlockLimit(String),

    /// A key slot record failed its checksum, so it is damaged (not merely a wrong passphrase).
    #[error(
        "key slot '{0}' is damaged (its checksum does not match): restore the vault from a backup or open it with another slot"
    )]
    KeySlotDamaged(String),

    /// A stored record or chunk failed authentication, could not be decoded, or is missing.
    #[error("{0}")]
    Damaged(String),

    /// A manifest's Ed25519 signature did not verify.
    #[error(
        "model '{name}' version {version}: manifest signature does not verify: the vault was tampered with or damaged; do not trust this version"
    )]
    BadSignature {
        /// Model name (escaped for display).
        name: String,
        /// Version number.
        version: u64,
    },

    /// A version's manifest is validly signed, but not by the key the caller required.
    #[error(
        "model '{name}' version {version} is signed by ed25519:{signer}, not by the key trusted as '{required}': refusing it"
    )]
    UntrustedSigner {
        /// Model name (escaped).
        name: String,
        /// Version number.
        version: u64,
        /// The signer's public key, hex.
        signer: String,
        /// The trust name required.
        required: String,
    },

    /// Something else named by the caller does not exist: a key slot, a trusted key, a file or a
    /// tensor of a version.
    #[error("{0}")]
    NotFound(String),

    /// No model of that name.
    #[error("model '{0}' not found")]
    ModelNotFound(String),

    /// The model exists but the version or alias does not.
    #[error("model '{name}' has no version or alias '{reference}'")]
    VersionNotFound {
        /// Model name.
        name: String,
        /// Version number or alias asked for.
        reference: String,
    },

    /// A model name, alias, tag key or file path inside a model broke the naming rule.
    #[error("invalid {what} \"{shown}\": {reason}")]
    InvalidName {
        /// Which kind of name ("model name", "alias", "tag key", "file path").
        what: &'static str,
        /// The name with control and invisible characters escaped.
        shown: String,
        /// Which rule it broke.
        reason: String,
    },

    /// Any other bad input from the caller (argument, source file, option value).
    #[error("{0}")]
    InvalidInput(String),

    /// A key would pass the encryption count allowed by NIST SP 800-38D for random nonces.
    #[error(
        "the {key} key has sealed {count} messages; the limit for random 96-bit nonces is {limit} (NIST SP 800-38D §8.3): rotate the master key before writing more"
    )]
    KeyUsageLimit {
        /// Which subkey.
        key: &'static str,
        /// Encryptions so far.
        count: u64,
        /// The limit.
        limit: u64,
    },

    /// A file holds a pickle that could run code when loaded, or one that could not be fully
    /// scanned; `put` refuses it unless told to allow unsafe pickles.
    #[error("{file}: pickle scan verdict {verdict}: {detail}; nothing was stored")]
    UnsafePickle {
        /// The file on disk.
        file: String,
        /// `dangerous` or `unscannable`.
        verdict: String,
        /// The first findings.
        detail: String,
    },

    /// `get` would overwrite an existing file.
    #[error("{} already exists: refusing to overwrite it", .0.display())]
    OutputExists(PathBuf),

    /// An operating-system I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// The storage engine (redb) failed.
    #[error("vault storage error while {context}: {detail}")]
    Storage {
        /// What was being done.
        context: String,
        /// The storage engine's message.
        detail: String,
        /// The storage engine's error, when there is one (its kind: [`crate::store::StoreError::kind`]).
        #[source]
        source: Option<crate::store::StoreError>,
    },

    /// A remote object store failed or refused a request, after the bounded retries of transient
    /// faults (see [`crate::remote::Objects`]).
    #[error("remote storage error while {context}: {detail}")]
    Remote {
        /// What was being done, naming the object key (never a credential).
        context: String,
        /// What the store answered, or the transport fault.
        detail: String,
    },

    /// `error`, told with the caller's input it is about and what to do next, as data a front
    /// end words in its own terms (the `mvault` CLI names its flags). The message is the
    /// input's name, `error`'s message, then the remedy ([`Input`] and [`Remedy`] say it in the
    /// library's terms). Its kind (and the CLI's exit code) is `error`'s: see [`Error::base`].
    #[error(
        "{}{error}{}",
        .input.map(|i| i.to_string()).unwrap_or_default(),
        .remedy.as_ref().map(|r| r.to_string()).unwrap_or_default()
    )]
    Guided {
        /// Which of the caller's inputs the error is about, if one is.
        input: Option<Input>,
        /// What failed (never itself a `Guided`).
        error: Box<Error>,
        /// What to do next, if the library knows.
        remedy: Option<Remedy>,
    },

    /// A remote's server failed the probe of create-only writes, so several vaults writing to it
    /// at once could fork its log; the remote was not added for several writers.
    #[error(
        "remote '{name}' failed the probe of concurrent writers: {failure}; this server does not keep create-only writes exclusive, so vaults pushing at the same time could fork the remote; it can only be added for a single writer"
    )]
    RemoteUnsafe {
        /// The remote's name (escaped).
        name: String,
        /// The check that failed, as a sentence.
        failure: String,
    },
}

impl Error {
    /// Builds an [`Error::Io`] naming what was being done.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    /// Builds an [`Error::Storage`] from a storage engine error, which it keeps as its source; a
    /// damaged file ([`crate::store::StoreErrorKind::Corrupt`]) is an [`Error::Damaged`] instead.
    pub(crate) fn storage(context: impl Into<String>, e: impl Into<crate::store::StoreError>) -> Self {
        let e = e.into();
        if e.kind() == crate::store::StoreErrorKind::Corrupt {
            // A reader runs no integrity check on open (a writer's open does, for small files),
            // so damage can first show here: it is damage, not an I/O failure.
            return Error::Damaged(format!(
                "the vault file is damaged: the storage engine found a corrupt or missing page while {} ({e}); restore it from a backup",
                context.into()
            ));
        }
        Error::Storage { context: context.into(), detail: e.to_string(), source: Some(e) }
    }

    /// Builds an [`Error::Remote`].
    pub(crate) fn remote(context: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Remote { context: context.into(), detail: detail.into() }
    }

    /// Adds what to do next: `self` becomes (or stays) an [`Error::Guided`] with `remedy`.
    pub(crate) fn with_remedy(self, remedy: Remedy) -> Self {
        match self {
            Error::Guided { input, error, .. } => Error::Guided { input, error, remedy: Some(remedy) },
            e => Error::Guided { input: None, error: Box::new(e), remedy: Some(remedy) },
        }
    }

    /// Names the caller's input the error is about: `self` becomes (or stays) an
    /// [`Error::Guided`] with `input`.
    pub(crate) fn about(self, input: Input) -> Self {
        match self {
            Error::Guided { error, remedy, .. } => Error::Guided { input: Some(input), error, remedy },
            e => Error::Guided { input: Some(input), error: Box::new(e), remedy: None },
        }
    }

    /// The error itself: for an [`Error::Guided`], the error it guides about; any other is
    /// its own base. Match on this for the kind of failure.
    pub fn base(&self) -> &Error {
        match self {
            Error::Guided { error, .. } => error,
            e => e,
        }
    }

    /// What to do next, for an [`Error::Guided`] that says.
    pub fn remedy(&self) -> Option<&Remedy> {
        match self {
            Error::Guided { remedy, .. } => remedy.as_ref(),
            _ => None,
        }
    }

    /// Which of the caller's inputs the error is about, for an [`Error::Guided`] that says.
    pub fn input(&self) -> Option<Input> {
        match self {
            Error::Guided { input, .. } => *input,
            _ => None,
        }
    }

    /// The kind of storage failure, for an [`Error::Storage`] that has a source.
    pub fn storage_kind(&self) -> Option<crate::store::StoreErrorKind> {
        match self.base() {
            Error::Storage { source: Some(e), .. } => Some(e.kind()),
            _ => None,
        }
    }
}
