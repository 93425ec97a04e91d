//! Public-key wraps for recipient key slots, through the `age` crate (the age v1 format,
//! <https://age-encryption.org/v1>): parsing recipients (`age1…` X25519, `ssh-ed25519 …`,
//! `ssh-rsa …`) and identities (an age identity file, or an unencrypted OpenSSH private key), and
//! encrypting or decrypting a small payload as a binary age file. What the payload holds and how
//! it is bound to a vault is `vault::recipients`' business. This module never implements a
//! primitive, never prints or logs key material, and never reads more than [`MAX_AGE_FILE`]
//! bytes of an age file or [`MAX_IDENTITY_FILE`] of an identity file.

use std::io::{Read, Write};
use std::path::Path;

use zeroize::Zeroizing;

use crate::{Error, Result};

/// Largest age file a slot body may be (16 KiB): one ssh-rsa 4096 stanza is about 700 bytes.
pub const MAX_AGE_FILE: usize = 16 << 10;
/// Largest identity file read (64 KiB).
pub const MAX_IDENTITY_FILE: u64 = 64 << 10;
/// Longest recipient string accepted (an ssh-rsa 16384-bit key is about 2,800 characters).
pub const MAX_RECIPIENT_LEN: usize = 4096;
/// Most recipients one slot wraps to.
pub const MAX_RECIPIENTS: usize = 64;

/// A public key the master key can be wrapped to, with the text it was parsed from (kept, and
/// shown by `key list`; it is public).
pub struct Recipient {
    text: String,
    inner: Box<dyn age::Recipient + Send>,
}

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Recipient").field(&self.text).finish()
    }
}

impl Recipient {
    /// Parses `text`: an age X25519 recipient (`age1…`) or an SSH public key line
    /// (`ssh-ed25519 AAAA… [comment]`, `ssh-rsa AAAA… [comment]`). Surrounding whitespace is
    /// trimmed; an SSH key's comment is dropped from the kept text.
    ///
    /// Errors: [`Error::InvalidInput`] with the forms accepted, naming the recipient only when it
    /// has a public key's form (`age1…`, `ssh-…`): text of another kind may be a secret given by
    /// mistake (an age secret key, a passphrase) and is never shown.
    pub fn parse(text: &str) -> Result<Recipient> {
        let t = text.trim();
        let public = t.starts_with("age1") || t.starts_with("ssh-");
        let bad = |why: &str| {
            let shown: String = t.chars().take(80).collect();
            let what =
                if public { format!("recipient '{}'", crate::names::escape(&shown)) } else { "a recipient".into() };
            Error::InvalidInput(format!(
                "{what} {why}: give an age recipient (age1…) or an SSH public key (ssh-ed25519 …, or ssh-rsa … of \
                 2048 to 4096 bits)"
            ))
        };
        if t.is_empty() {
            return Err(bad("is empty"));
        }
        if t.len() > MAX_RECIPIENT_LEN {
            return Err(bad(&format!("is longer than {MAX_RECIPIENT_LEN} bytes")));
        }
        if t.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") {
            return Err(bad("is an age secret key (an identity), not shown: give its public key, which \
                            `age-keygen -y` prints"));
        }
        if t.starts_with("-----BEGIN") {
            return Err(bad("is the start of a private key file: give the public key (the .pub file's line)"));
        }
        if t.starts_with("age1") {
            let r: age::x25519::Recipient = t.parse().map_err(|_| bad("is not a valid age X25519 recipient"))?;
            return Ok(Recipient { text: r.to_string(), inner: Box::new(r) });
        }
        if t.starts_with("ssh-") {
            let mut parts = t.split_whitespace();
            let key = format!("{} {}", parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let r: age::ssh::Recipient = key.parse().map_err(|e| bad(&ssh_reason(&e)))?;
            return Ok(Recipient { text: key, inner: Box::new(r) });
        }
        Err(bad("is of an unknown kind (not shown, in case it is a secret)"))
    }

    /// Reads a recipients file as `age -R` does: one recipient per line, blank lines and lines
    /// starting with `#` skipped; at most 1 MiB and [`MAX_RECIPIENTS`] recipients.
    ///
    /// Errors: [`Error::Io`] naming the file; [`Error::InvalidInput`] naming the file and line
    /// of a recipient that does not parse, or the limit passed.
    pub fn read_file(path: &Path) -> Result<Vec<Recipient>> {
        let shown = path.display();
        let f = std::fs::File::open(path).map_err(|e| Error::io(format!("opening recipients file {shown}"), e))?;
        // Zeroizing, sized up front: a private key or passphrase file given by mistake leaves no copy.
        let mut text = Zeroizing::new(String::with_capacity((1 << 20) + 1));
        f.take((1 << 20) + 1)
            .read_to_string(&mut text)
            .map_err(|e| Error::io(format!("reading recipients file {shown}"), e))?;
        if text.len() > 1 << 20 {
            return Err(Error::InvalidInput(format!("recipients file {shown} is larger than 1 MiB")));
        }
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            if out.len() == MAX_RECIPIENTS {
                return Err(Error::InvalidInput(format!(
                    "recipients file {shown} holds more than {MAX_RECIPIENTS} recipients"
                )));
            }
            let r = Recipient::parse(t)
                .map_err(|e| Error::InvalidInput(format!("recipients file {shown}, line {}: {e}", i + 1)))?;
            out.push(r);
        }
        Ok(out)
    }

    /// The recipient as kept in the slot (`age1…`, or `ssh-… AAAA…` without a comment).
    pub fn text(&self) -> &str {
        &self.text
    }
}

fn ssh_reason(e: &age::ssh::ParseRecipientKeyError) -> String {
    match e {
        age::ssh::ParseRecipientKeyError::Ignore => "is an SSH key type age does not support".into(),
        age::ssh::ParseRecipientKeyError::Invalid(why) => format!("is not a valid SSH public key ({why})"),
        age::ssh::ParseRecipientKeyError::RsaModulusTooLarge => "has an RSA modulus above 4096 bits".into(),
        age::ssh::ParseRecipientKeyError::RsaModulusTooSmall => "has an RSA modulus below 2048 bits".into(),
        age::ssh::ParseRecipientKeyError::Unsupported(kind) => format!("is an unsupported SSH key type ({kind})"),
        _ => "is not a usable SSH public key".into(),
    }
}

/// Private keys that can open recipient slots: every identity of an age identity file, or one
/// unencrypted OpenSSH private key. `Debug` shows only where they came from.
pub struct Identities {
    source: String,
    inner: Vec<Box<dyn age::Identity + Send + Sync>>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identities({}, {} key(s), <redacted>)", self.source, self.inner.len())
    }
}

impl Identities {
    /// Reads the identity file at `path` (at most [`MAX_IDENTITY_FILE`] bytes): an age identity
    /// file (`AGE-SECRET-KEY-1…` lines, `#` comments) or an OpenSSH private key (ed25519 or RSA,
    /// not passphrase-protected).
    ///
    /// Errors: [`Error::Io`] naming the file; [`Error::InvalidInput`] naming the file (and the
    /// line, never its content) when it holds no identity we can use.
    pub fn from_file(path: &Path) -> Result<Identities> {
        let shown = path.display().to_string();
        let f = std::fs::File::open(path).map_err(|e| Error::io(format!("opening identity file {shown}"), e))?;
        // Room for the whole bound up front: a growing Vec would leave copies of the key behind.
        let mut buf = Zeroizing::new(Vec::with_capacity(MAX_IDENTITY_FILE as usize + 1));
        f.take(MAX_IDENTITY_FILE + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(format!("reading identity file {shown}"), e))?;
        if buf.len() as u64 > MAX_IDENTITY_FILE {
            return Err(Error::InvalidInput(format!(
                "identity file {shown} is larger than {MAX_IDENTITY_FILE} bytes: give an age identity file or an \
                 SSH private key"
            )));
        }
        Self::from_bytes(&buf, &shown)
    }

    /// As [`Identities::from_file`], from the file's bytes; `shown` names it in errors.
    ///
    /// Errors: as [`Identities::from_file`].
    pub fn from_bytes(bytes: &[u8], shown: &str) -> Result<Identities> {
        let invalid = |why: String| Error::InvalidInput(format!("identity file {shown}: {why}"));
        let text = std::str::from_utf8(bytes).map_err(|_| invalid("is not UTF-8 text".into()))?;
        // An OpenSSH or PEM key starts with its armour; an age identity file may mention one in a comment.
        if text.trim_start().starts_with("-----BEGIN") {
            let id = age::ssh::Identity::from_buffer(text.as_bytes(), Some(shown.to_string()))
                .map_err(|_| invalid("is not an OpenSSH private key age can read".into()))?;
            return match id {
                age::ssh::Identity::Unencrypted(_) => {
                    Ok(Identities { source: shown.to_string(), inner: vec![Box::new(id)] })
                }
                age::ssh::Identity::Encrypted(_) => Err(invalid(
                    "is a passphrase-protected SSH key, which cannot be used here: use an unprotected copy kept \
                     where only you can read it, or an age identity (age-keygen)"
                        .into(),
                )),
                age::ssh::Identity::Unsupported(_) => {
                    Err(invalid("is an SSH key of a type age does not support (use ed25519 or RSA)".into()))
                }
            };
        }
        if let Some(n) = text.lines().position(|l| {
            let l = l.trim();
            l.starts_with("age1") || l.starts_with("ssh-")
        }) {
            return Err(invalid(format!(
                "line {} holds a public key, not a private key: give the private key file (the one age-keygen \
                 or ssh-keygen wrote, not the .pub file or the public key line)",
                n + 1
            )));
        }
        let file = age::IdentityFile::from_buffer(text.as_bytes()).map_err(|e| {
            // age's message names the line number, never the line.
            invalid(e.to_string().trim_start_matches("identity file ").to_string())
        })?;
        let inner = file.into_identities().map_err(|_| invalid("holds an identity that cannot be used".into()))?;
        if inner.is_empty() {
            return Err(invalid("holds no identity (expected AGE-SECRET-KEY-1… lines)".into()));
        }
        Ok(Identities { source: shown.to_string(), inner })
    }

    /// Where the identities came from (the file's path as given).
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Encrypts `payload` to every recipient as one binary age file.
///
/// Errors: [`Error::InvalidInput`] for no recipients or more than [`MAX_RECIPIENTS`]; an error
/// of the `age` crate as [`Error::Io`].
pub fn encrypt(recipients: &[Recipient], payload: &[u8]) -> Result<Vec<u8>> {
    if recipients.is_empty() || recipients.len() > MAX_RECIPIENTS {
        return Err(Error::InvalidInput(format!(
            "a recipient key slot needs 1 to {MAX_RECIPIENTS} recipients, {} given",
            recipients.len()
        )));
    }
    let age_err = |e: &dyn std::fmt::Display| {
        Error::io("wrapping the master key to the recipients", std::io::Error::other(e.to_string()))
    };
    let enc = age::Encryptor::with_recipients(recipients.iter().map(|r| r.inner.as_ref() as &dyn age::Recipient))
        .map_err(|e| age_err(&e))?;
    let mut out = Vec::with_capacity(payload.len() + 512);
    let mut w = enc.wrap_output(&mut out).map_err(|e| age_err(&e))?;
    w.write_all(payload).map_err(|e| age_err(&e))?;
    w.finish().map_err(|e| age_err(&e))?;
    Ok(out)
}

/// Decrypts the age file `file` with any of `ids`; `None` when none of them is a recipient of it
/// or the file does not open (damaged, not an age file, or larger than [`MAX_AGE_FILE`]).
/// Passphrase (scrypt) age files never open here: no passphrase is offered.
pub fn decrypt(ids: &Identities, file: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if file.len() > MAX_AGE_FILE {
        return None;
    }
    let dec = age::Decryptor::new_buffered(file).ok()?;
    if dec.is_scrypt() {
        return None;
    }
    let mut r = dec.decrypt(ids.inner.iter().map(|i| i.as_ref() as &dyn age::Identity)).ok()?;
    // Room for the whole bound up front: a growing Vec would leave copies of the key behind.
    let mut out = Zeroizing::new(Vec::with_capacity(MAX_AGE_FILE));
    // The payload is small; a file whose payload runs past the bound does not open.
    r.by_ref().take(MAX_AGE_FILE as u64).read_to_end(&mut out).ok()?;
    Some(out)
}
