//! The vault handle: the typestate ([`Locked`], [`Unlocked`]), opening and creating the file.
//! Unlocking is in `unlock`, the write transaction every write goes through in `txn`, opening
//! the vault's own sealed records in `records`.
//!
//! A [`Vault<Locked>`] can say what the file is and list its key slots; only a [`Vault<Unlocked>`]
//! holds keys, and only it has `put`, `get`, `list` and the rest (in [`crate::ops`]). Keys are
//! zeroized when the unlocked vault is dropped.
//!
//! A vault whose file this process may not write, or one opened as a reader, is opened read-only
//! (see [`Vault::open`]): every read works, beside one writer in another process, and every write
//! fails when its transaction starts, with [`Error::ReadOnly`] before anything changes. This module must never name a storage table or
//! print.

mod records;
pub(crate) mod signing;
pub(crate) mod txn;
mod unlock;

pub(crate) use txn::Txn;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use crate::crypto::aead;
use crate::crypto::kdf::Argon2Params;
use crate::crypto::keys::{EpochKeys, IndexKeys};
use crate::crypto::sign::{ManifestSigner, ManifestVerifier};
use crate::crypto::{SecretKey, fill_random};
use crate::store::records::{
    FORMAT_VERSION, Header, IndexRecord, MAGIC, OLDEST_FORMAT_VERSION, SignerRecord, SlotRecord, State,
};
use crate::store::{self, RecordRead, Table};
use crate::{Error, Result};

/// A passphrase, wiped from memory on drop. Used byte for byte: never trimmed, truncated or
/// normalised (the CLI strips one trailing newline from files; see README).
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl Passphrase {
    /// Wraps passphrase bytes.
    ///
    /// Errors: [`Error::InvalidInput`] if empty.
    pub fn new(bytes: Vec<u8>) -> Result<Self> {
        let p = Passphrase(Zeroizing::new(bytes));
        if p.0.is_empty() {
            return Err(Error::InvalidInput("the passphrase is empty".into()));
        }
        Ok(p)
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// Options for [`Vault::create`].
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Argon2id cost of the first key slot (default RFC 9106: 64 MiB, t=3, p=4).
    pub argon2: Argon2Params,
    /// Name of the first key slot (default `default`).
    pub slot_name: String,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions { argon2: Argon2Params::default(), slot_name: "default".into() }
    }
}

/// Options for [`Vault::open`].
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// If another process writes the vault, retry for this long before [`Error::VaultInUse`]
    /// (a writer's open only: a reader opens beside a writer at once).
    pub wait: Option<Duration>,
    /// Open as a reader, read-only even if this process may write the file: reading works
    /// beside one writer and any number of readers in other processes, each read seeing the
    /// last commit made when it began, and every write fails with [`Error::ReadOnly`]. (A file
    /// this process may not write is always opened so.)
    pub read_only: bool,
}

/// Type state: keys not loaded.
pub struct Locked;

/// Type state: keys loaded (zeroized on drop).
pub struct Unlocked {
    /// Encryption keys of the current epoch.
    pub(crate) keys: EpochKeys,
    /// While a master-key rotation runs: the keys of the epoch being rotated away from.
    pub(crate) prev: Option<EpochKeys>,
    /// Keyed-hash keys for record keys and chunk ids.
    pub(crate) index: IndexKeys,
    /// The key slot that opened the vault (right after `create`: the first slot).
    pub(crate) slot: String,
    /// That slot's KEK, so a rotation can wrap the new master key for it without asking again;
    /// `None` when a recipient slot (a private key) opened the vault.
    pub(crate) slot_kek: Option<SecretKey>,
    /// The master key of `keys.epoch`.
    pub(crate) master: SecretKey,
    /// The active signing key and the public keys of every signing key this vault has had.
    pub(crate) signing: signing::SigningKeys,
    /// True while the sealed state is of format 1 or 2 (no live-record state yet): model records
    /// of that format are then accepted, and the live checks are skipped until the first write
    /// upgrades the vault. Cleared once that write commits.
    pub(crate) legacy: AtomicBool,
    /// Warnings of writes made without a progress handle: handed to the sink set by
    /// [`Vault::set_warning_sink`], or kept until [`Vault::take_warnings`].
    pub(crate) warnings: std::sync::Mutex<Warnings>,
    /// Where chunks the vault lacks are read from ([`Vault::set_chunk_source`]).
    pub(crate) source: std::sync::Mutex<Option<crate::ops::ondemand::ChunkSource>>,
    /// What on-demand reads fetched so far.
    pub(crate) fetched: std::sync::Mutex<crate::ops::ondemand::FetchedTotals>,
    /// The directory this user's newest checkpoints are remembered in, once
    /// [`Vault::check_rollback`] has checked against it: every logged commit then remembers its
    /// new head there.
    pub(crate) memory: std::sync::Mutex<Option<PathBuf>>,
}

/// Most recipient key slots one unlock with an identity tries (64; each costs an X25519 or RSA
/// decryption per recipient, no Argon2id).
pub const MAX_RECIPIENT_SLOTS: usize = 64;

/// Most key slots one unlock tries when no slot is named (`--slot NAME` tries one).
pub const MAX_UNLOCK_SLOTS: usize = 8;
/// Most Argon2id work one unlock that tries every slot may spend, in KiB × passes summed over the
/// slots tried (1 GiB × 1 pass; a default slot costs 64 MiB × 3). Slots are tried cheapest
/// first; the first is always tried, whatever it costs (each slot is bounded by
/// [`Argon2Params::check`]).
pub const MAX_UNLOCK_COST: u64 = 1 << 20;

/// The Argon2id work of one derivation with `p`, in KiB × passes.
pub fn unlock_cost(p: &Argon2Params) -> u64 {
    u64::from(p.memory_kib) * u64::from(p.time_cost)
}

/// An open vault file in state `S` ([`Locked`] or [`Unlocked`]).
pub struct Vault<S> {
    pub(crate) db: store::Db,
    pub(crate) path: PathBuf,
    pub(crate) header: Header,
    pub(crate) state: S,
}

/// Current time in Unix seconds.
pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl<S> Vault<S> {
    /// Verifies the checksum of every page of the vault file, which a vault opened read-only
    /// cannot do as it opens (see [`store::check_pages`]: skipped, and said so by the
    /// [`store::PageCheck`] returned, for a file over 64 MiB, a file this process may not write,
    /// or while another process writes the vault).
    ///
    /// Errors: [`Error::Damaged`] for a corrupt page; [`Error::Io`], [`Error::Storage`].
    pub fn check_pages(&self) -> Result<store::PageCheck> {
        store::check_pages(&self.db)
    }

    /// The vault file's path, every symbolic link resolved (see [`Vault::open`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when the vault file was opened read-only (see [`Vault::open`]): reading works, and
    /// every write fails with [`Error::ReadOnly`].
    pub fn is_read_only(&self) -> bool {
        self.db.is_read_only()
    }

    /// The random 128-bit vault id.
    pub fn vault_id(&self) -> [u8; 16] {
        self.header.vault_id
    }

    /// Creation time, Unix seconds.
    pub fn created(&self) -> u64 {
        self.header.created
    }

    /// Names of the key slots.
    pub fn slot_names(&self) -> Result<Vec<String>> {
        let rx = store::read(&self.db)?;
        rx.require(Table::Slots, "reading key slots")?;
        Ok(rx.slots()?.into_iter().map(|(name, _)| name).collect())
    }

    /// The age file of recipient key slot `name` (binary, age-encryption.org/v1): what
    /// `age -d -i IDENTITY` opens with the slot's private key, giving the payload described in
    /// SECURITY.md ("Recipient key slots"). It is no secret without that private key.
    ///
    /// Errors: [`Error::NotFound`] for no such slot; [`Error::InvalidInput`] for a passphrase
    /// slot; [`Error::KeySlotDamaged`] for a record that does not decode.
    pub fn recipient_slot_file(&self, name: &str) -> Result<Vec<u8>> {
        let rx = store::read(&self.db)?;
        rx.require(Table::Slots, "reading key slots")?;
        let bytes = rx
            .slot(name)?
            .ok_or_else(|| Error::NotFound(format!("no key slot named '{}'", crate::names::escape(name))))?;
        if let Some(s) = crate::store::records::RecipientSlot::decode(&bytes) {
            return Ok(s.body);
        }
        if SlotRecord::decode(&bytes).is_some() {
            return Err(Error::InvalidInput(format!(
                "key slot '{}' is opened by a passphrase: it has no age file",
                crate::names::escape(name)
            )));
        }
        Err(Error::KeySlotDamaged(name.to_string()))
    }
}

impl Vault<Locked> {
    /// Opens the vault file at `path` without unlocking it.
    ///
    /// A symbolic link is resolved here, once: [`Vault::path`] is the real file, and a rewrite
    /// (`key rotate`, `rm --erase`) replaces the real file, never the link. A file this process
    /// may not write (or any file, with `opts.read_only`) is opened read-only: every reading
    /// operation works, and every write fails with [`Error::ReadOnly`] before it changes
    /// anything. One process at a time opens a vault for writing; any number open it read-only
    /// beside that writer (see SECURITY.md, "Storage and atomicity").
    ///
    /// Errors: [`Error::VaultNotFound`], [`Error::VaultInUse`] (after `opts.wait`),
    /// [`Error::NotAVault`], [`Error::UnsupportedVersion`], [`Error::Damaged`], [`Error::Io`],
    /// [`Error::Storage`] (see [`store::open_db`]).
    pub fn open(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<Vault<Locked>> {
        let db = store::open_db(path.as_ref(), opts.wait, opts.read_only)?;
        let path = db.path().to_path_buf();
        let header = read_header(&db, &path)?;
        Ok(Vault { db, path, header, state: Locked })
    }
}

fn read_header(db: &store::Db, path: &Path) -> Result<Header> {
    let not_vault = |reason: &str| Error::NotAVault { path: path.to_path_buf(), reason: reason.into() };
    let rx = store::read(db)?;
    if !rx.has_table(Table::Meta)? {
        return Err(not_vault("it has no modelvault header table"));
    }
    let v = rx.header()?.ok_or_else(|| not_vault("it has no modelvault header"))?;
    let h: Header = postcard::from_bytes(&v).map_err(|_| not_vault("its header does not decode"))?;
    if h.magic != MAGIC {
        return Err(not_vault("its header has the wrong magic bytes"));
    }
    if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&h.format_version) {
        return Err(Error::UnsupportedVersion { found: h.format_version, supported: FORMAT_VERSION });
    }
    Ok(h)
}

impl Vault<Unlocked> {
    /// Creates a new vault at `path` (which must not exist) with one key slot for `passphrase`, a
    /// random master key (epoch 1) and a new Ed25519 signing key.
    ///
    /// Errors: [`Error::VaultExists`], [`Error::InvalidInput`] for bad Argon2 parameters or slot
    /// name, [`Error::Io`]. Before any key exists it calls [`crate::harden_process`] (no core
    /// dumps).
    pub fn create(path: impl AsRef<Path>, passphrase: &Passphrase, opts: &CreateOptions) -> Result<Vault<Unlocked>> {
        crate::harden::harden_process()?;
        let path = path.as_ref().to_path_buf();
        opts.argon2.check()?;
        crate::names::check_key("key slot name", &opts.slot_name)?;
        let mut vault_id = [0u8; 16];
        fill_random(&mut vault_id)?;
        let header = Header { magic: MAGIC, format_version: FORMAT_VERSION, vault_id, created: now() };
        let epoch = 1;
        let master = SecretKey::random()?;
        let (slot, slot_kek) = make_slot(&vault_id, &opts.slot_name, epoch, &opts.argon2, &master, passphrase)?;
        let keys = EpochKeys::derive(&master, &vault_id, epoch);
        let index_rec = IndexRecord { key: *SecretKey::random()?.expose() };
        let index = IndexKeys::derive(&SecretKey(index_rec.key), &vault_id);
        let signer = ManifestSigner::generate()?;
        let db = store::create_db(&path)?;
        let signers = vec![ManifestVerifier::new(&signer.public_key()).expect("a fresh key decodes")];
        let slot_name = opts.slot_name.clone();
        let legacy = AtomicBool::new(false);
        let warnings = Default::default();
        let state = Unlocked {
            keys,
            prev: None,
            index,
            signing: signing::SigningKeys::new(signer, signers),
            slot: slot_name,
            slot_kek: Some(slot_kek),
            master,
            legacy,
            warnings,
            source: Default::default(),
            fetched: Default::default(),
            memory: Default::default(),
        };
        let vault = Vault { db, path, header, state };
        let result = (|| {
            let mut tx = vault.write(crate::log::Op::Create)?;
            tx.put_plain_meta("header", &crate::store::records::encode(&vault.header))?;
            tx.put_slot(&opts.slot_name, &slot.encode())?;
            let rec = SignerRecord {
                seed: *vault.state.signing.active().seed().expose(),
                public: vault.state.signing.active_public(),
                created: now(),
                retired: None,
            };
            tx.state = State {
                epoch,
                active_signer: 0,
                next_signer: 1,
                recipient_slots: Some(Vec::new()),
                ..State::default()
            };
            tx.put_signer(0, &rec)?;
            let ix = tx.seal_meta(Table::Meta, b"index", &index_rec)?;
            tx.put_plain_meta("index", &ix)?;
            tx.commit()
        })();
        if let Err(e) = result {
            let p = vault.path.clone();
            drop(vault);
            let _ = std::fs::remove_file(&p);
            return Err(e);
        }
        Ok(vault)
    }

    /// The key epoch in use.
    pub fn epoch(&self) -> u32 {
        self.state.keys.epoch
    }

    /// The public key that signs new manifests.
    pub fn signer_public_key(&self) -> [u8; 32] {
        self.state.signing.active_public()
    }

    /// Takes the warnings of the writes made since the last call (today: a key near its usage
    /// limit). Operations with a progress handle also hand each to
    /// [`crate::progress::Progress::warn`]; those without one hand it to the sink of
    /// [`Vault::set_warning_sink`] instead of keeping it, when one is set.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut self.state.warnings.lock().unwrap_or_else(|e| e.into_inner()).kept)
    }

    /// Hands `message` to the warning sink, or keeps it for [`Vault::take_warnings`].
    pub(crate) fn warn(&self, message: String) {
        self.state.warnings.lock().unwrap_or_else(|e| e.into_inner()).push(message);
    }

    /// Hands every later warning of a write made without a progress handle to `sink` as it
    /// happens (the CLI prints it on stderr), instead of keeping it for [`Vault::take_warnings`].
    /// Warnings already kept stay kept.
    pub fn set_warning_sink(&self, sink: WarningSink) {
        self.state.warnings.lock().unwrap_or_else(|e| e.into_inner()).sink = Some(sink);
    }
}

/// Where the warnings of writes without a progress handle go.
#[derive(Default)]
pub(crate) struct Warnings {
    /// Kept until [`Vault::take_warnings`] when there is no sink.
    kept: Vec<String>,
    /// Set by [`Vault::set_warning_sink`].
    sink: Option<WarningSink>,
}

/// A receiver of warnings (see [`Vault::set_warning_sink`]).
pub type WarningSink = Box<dyn Fn(&str) + Send + Sync>;

impl Warnings {
    /// Keeps `message` for [`Vault::take_warnings`] (a progress handle had it already).
    pub(crate) fn keep(&mut self, message: String) {
        self.kept.push(message);
    }

    /// Hands `message` to the sink, or keeps it.
    pub(crate) fn push(&mut self, message: String) {
        match &self.sink {
            Some(sink) => sink(&message),
            None => self.kept.push(message),
        }
    }
}

/// Builds a key slot wrapping `master` under a KEK from `passphrase` (one Argon2id derivation);
/// returns the slot and its KEK.
pub(crate) fn make_slot(
    vault_id: &[u8; 16],
    name: &str,
    epoch: u32,
    params: &Argon2Params,
    master: &SecretKey,
    passphrase: &Passphrase,
) -> Result<(SlotRecord, SecretKey)> {
    let mut salt = [0u8; 16];
    fill_random(&mut salt)?;
    let kek = params.derive_kek(passphrase.bytes(), &salt)?;
    let wrapped = aead::seal(&kek, &SlotRecord::aad(vault_id, name, epoch, params), master.expose())?;
    let kek_check = Some(crate::store::records::kek_check(&kek));
    Ok((SlotRecord { next: None, epoch, params: *params, salt, wrapped, created: now(), kek_check }, kek))
}

/// The age file of recipient slot `name`: the master key `master` of `epoch`, bound to this vault
/// id, epoch and name ([`RecipientSlot::payload`]), encrypted to every recipient.
///
/// Errors: as [`crate::crypto::recipient::encrypt`].
pub(crate) fn recipient_body(
    vault_id: &[u8; 16],
    name: &str,
    epoch: u32,
    master: &SecretKey,
    recipients: &[crate::crypto::recipient::Recipient],
) -> Result<Vec<u8>> {
    let payload = crate::store::records::RecipientSlot::payload(vault_id, epoch, name, master.expose());
    crate::crypto::recipient::encrypt(recipients, &payload)
}
