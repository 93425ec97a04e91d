//! The remote's log: reading the whole hash chain with every check (signature, seal, sequence,
//! link, and the last entry this vault saw), and appending one entry with a create-only write.
//! A chain that does not hold together is reported as a fork or a rollback, never repaired or
//! merged. It must never write a log entry except through [`Objects::put_if_absent`], nor accept
//! an entry whose signature or link it has not checked.

use crate::crypto::aead;
use crate::crypto::keys::RemoteKeys;
use crate::crypto::sign::{ManifestSigner, ManifestVerifier, SIGNATURE_LEN};
use crate::remote::format::{self, LOG, LogBody, MAX_META_OBJECT, StoredEntry, log_name, log_seq, tampered};
use crate::remote::objects::{Created, Objects};
use crate::{Error, Result};

/// One checked log entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// BLAKE3 of its stored bytes (the next entry's `prev`).
    pub hash: [u8; 32],
    /// Its opened body.
    pub body: LogBody,
}

/// What a remote's log is checked against: the vault's id, the remote keys and the public keys
/// allowed to sign.
pub struct LogKeys<'a> {
    /// The vault id (bound into every AAD).
    pub vault_id: [u8; 16],
    /// The remote keys.
    pub keys: &'a RemoteKeys,
    /// Every signing key of the vault (active and retired).
    pub verifiers: &'a [ManifestVerifier],
}

/// The last entry a vault has seen of a remote: (sequence number, hash).
pub type Seen = (u64, [u8; 32]);

/// Reads and checks every entry of the log, oldest first. `seen` is the last entry this vault
/// saw of this remote: the log must still hold it, unchanged.
///
/// Errors: [`Error::Damaged`] for a missing entry (a gap), an entry that fails its signature or
/// seal, a link that does not match (a fork: two writers at one position on a server that
/// ignored the create-only condition, or a replaced entry), or a log shorter than, or different
/// at, the entry seen (a rollback); [`Error::Remote`].
pub fn read(objects: &dyn Objects, lk: &LogKeys<'_>, seen: Option<Seen>) -> Result<Vec<Entry>> {
    let listed = objects.list(LOG)?;
    let mut entries: Vec<Entry> = Vec::with_capacity(listed.len());
    for (i, o) in listed.iter().enumerate() {
        let expected = i as u64 + 1;
        let seq =
            log_seq(&o.key).ok_or_else(|| tampered(&format!("remote object {}", o.key), "it is not a log key"))?;
        if seq != expected {
            return Err(tampered(
                &format!("remote log entry {expected}"),
                "it is missing while later entries exist (entries were deleted)",
            ));
        }
        if o.size > MAX_META_OBJECT {
            return Err(tampered(
                &format!("remote log entry {seq}"),
                &format!("it is {} bytes, over the {MAX_META_OBJECT}-byte limit", o.size),
            ));
        }
        let bytes = objects
            .get_bounded(&o.key, MAX_META_OBJECT)?
            .ok_or_else(|| Error::remote(format!("reading {}", o.key), "listed but gone: entries are being deleted"))?;
        let prev = entries.last().map(|e| e.hash).unwrap_or([0; 32]);
        entries.push(check_entry(lk, seq, prev, &bytes)?);
    }
    check_seen(&entries, seen)?;
    Ok(entries)
}

/// Checks one stored entry at `seq` whose predecessor hashes to `prev`.
fn check_entry(lk: &LogKeys<'_>, seq: u64, prev: [u8; 32], bytes: &[u8]) -> Result<Entry> {
    let what = format!("remote log entry {seq}");
    let stored: StoredEntry = crate::store::records::decode(&what, bytes)?;
    let sig: [u8; SIGNATURE_LEN] =
        stored.signature.as_slice().try_into().map_err(|_| tampered(&what, "its signature is not 64 bytes"))?;
    let signer = lk
        .verifiers
        .iter()
        .find(|v| *v.public_key() == stored.signer)
        .ok_or_else(|| tampered(&what, "it is signed by a key that is not one of this vault's signers"))?;
    if !signer.verify_log(&format::log_message(seq, &stored.sealed), &sig) {
        return Err(tampered(&what, "its signature does not verify"));
    }
    let plain = aead::open(&lk.keys.meta, &format::aad("log", &lk.vault_id, &seq.to_be_bytes()), &stored.sealed)
        .map_err(|e| tampered(&what, &e.to_string()))?;
    let body: LogBody = crate::store::records::decode(&what, &plain)?;
    if body.seq != seq {
        return Err(tampered(&what, &format!("it says it is entry {}", body.seq)));
    }
    if body.prev != prev {
        return Err(Error::Damaged(format!(
            "{what} does not follow entry {} (the predecessor hash it signs differs): the remote's log has forked \
             (two writers wrote one position on a server that ignored the create-only condition) or an entry was \
             replaced; nothing was merged",
            seq - 1
        )));
    }
    Ok(Entry { hash: *blake3::hash(bytes).as_bytes(), body })
}

/// Refuses a log that no longer holds the entry this vault saw last.
fn check_seen(entries: &[Entry], seen: Option<Seen>) -> Result<()> {
    let Some((seq, hash)) = seen else { return Ok(()) };
    if seq == 0 {
        return Ok(());
    }
    match entries.get(seq as usize - 1) {
        None => Err(Error::Damaged(format!(
            "the remote's log ends at entry {}, but this vault has seen entry {seq}: the remote was rolled back \
             (entries deleted); nothing was changed",
            entries.len()
        ))),
        Some(e) if e.hash != hash => Err(Error::Damaged(format!(
            "remote log entry {seq} is not the entry this vault saw there: the remote was rolled back or forked \
             (an entry replaced, or a server that ignored the create-only condition); nothing was changed"
        ))),
        Some(_) => Ok(()),
    }
}

/// The outcome of [`append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The entry is at `seq` with hash `hash`.
    Done(u64, [u8; 32]),
    /// Another writer took the position first: read the log again and retry.
    Lost,
}

/// Seals, signs and writes `body` as entry `body.seq` with a create-only write, then reads it
/// back: a server that said "created" but holds other bytes ignored the condition.
///
/// Errors: [`Error::Damaged`] for that read-back mismatch (the remote has forked);
/// [`Error::Remote`]; [`Error::Io`] (no randomness).
pub fn append(objects: &dyn Objects, lk: &LogKeys<'_>, signer: &ManifestSigner, body: &LogBody) -> Result<Appended> {
    let seq = body.seq;
    let plain = zeroize::Zeroizing::new(crate::store::records::encode(body));
    let sealed = aead::seal(&lk.keys.meta, &format::aad("log", &lk.vault_id, &seq.to_be_bytes()), &plain)?;
    let signature = signer.sign_log(&format::log_message(seq, &sealed)).to_vec();
    let bytes = crate::store::records::encode(&StoredEntry { sealed, signer: signer.public_key(), signature });
    let key = log_name(seq);
    if objects.put_if_absent(&key, &bytes)? == Created::AlreadyExists {
        return Ok(Appended::Lost);
    }
    if objects.get(&key)?.as_deref() != Some(bytes.as_slice()) {
        return Err(Error::Damaged(format!(
            "the remote accepted a create-only write of log entry {seq} but holds other bytes there: the server \
             does not honour conditional writes and another writer raced this one; the remote's log has forked"
        )));
    }
    Ok(Appended::Done(seq, *blake3::hash(&bytes).as_bytes()))
}
