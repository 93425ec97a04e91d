//! The sealed value: every encrypted value the vault file holds, records and chunks alike.
//!
//! Owns its byte layout (SECURITY.md, "Byte layout"): `0x01 ‖ epoch (u32 BE) ‖ nonce (12 B) ‖
//! AES-256-GCM ciphertext ‖ tag (16 B)`, its AAD `"modelvault/v1/" ‖ table ‖ 0x00 ‖ vault id
//! (16 B) ‖ epoch (u32 BE) ‖ record key` (the table named by its definition), and the choice of
//! key: a value is sealed under the current epoch's key (the metadata key for records, the chunk
//! key for chunks) and opened with the key of the epoch its header names, which must be the
//! current epoch or, during a rotation, the one rotated away from. Since the AAD binds table,
//! key, vault and epoch, a value moved to another of any of them fails to open.
//!
//! Every seal and open of a stored value goes through [`Envelope`]. The key-slot wrap is not an
//! envelope value (no header; its AAD names table `slot` and appends the Argon2 parameters, see
//! SECURITY.md, "Key slots"): [`crate::store::records::SlotRecord`] builds it. This module never stores or
//! reads a value itself, never counts seals (the write transaction does, against the nonce
//! limit), and never puts key material or plaintext in an error.

use serde::{Serialize, de::DeserializeOwned};
use zeroize::Zeroizing;

use super::chunks::ChunkId;
use super::{Table, records};
use crate::crypto::aead::{self, OpenError};
use crate::crypto::keys::EpochKeys;
use crate::{Error, Result};

/// Layout version byte in front of every sealed value.
pub const VERSION: u8 = 1;
/// Bytes in front of a value's nonce: version (1) + epoch (4).
pub const HEADER_LEN: usize = 5;
/// Bytes a stored sealed value has beyond its plaintext: header, nonce and tag (33).
pub const OVERHEAD: usize = HEADER_LEN + aead::OVERHEAD;

/// A table that sealed values belong to, named as its definition names it (the name is bound
/// into every AAD). Implemented by [`super::Table`], whose names come from the table
/// definitions; no string literal names a table here.
pub trait TableName {
    /// The table's name, e.g. `"models"`.
    fn table_name(&self) -> &str;
}

/// The 5-byte header of a value sealed under `epoch`: `0x01 ‖ epoch BE`.
pub fn header(epoch: u32) -> [u8; HEADER_LEN] {
    let mut p = [0u8; HEADER_LEN];
    p[0] = VERSION;
    p[1..].copy_from_slice(&epoch.to_be_bytes());
    p
}

/// Splits a stored value into (epoch, `nonce ‖ ciphertext ‖ tag`); `None` when the header is
/// missing or of an unknown version.
pub fn split(value: &[u8]) -> Option<(u32, &[u8])> {
    if value.len() < HEADER_LEN || value[0] != VERSION {
        return None;
    }
    let epoch = u32::from_be_bytes(value[1..HEADER_LEN].try_into().ok()?);
    Some((epoch, &value[HEADER_LEN..]))
}

/// The AAD of a value of `table` at `key` sealed under `epoch` in the vault `vault_id`:
/// `"modelvault/v1/" ‖ table ‖ 0x00 ‖ vault id ‖ epoch BE ‖ key`. Also the start of a key
/// slot's wrap AAD (see [`records::SlotRecord::aad`]).
pub fn aad(table: &str, vault_id: &[u8; 16], epoch: u32, key: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(32 + table.len() + key.len());
    a.extend_from_slice(b"modelvault/v1/");
    a.extend_from_slice(table.as_bytes());
    a.push(0);
    a.extend_from_slice(vault_id);
    a.extend_from_slice(&epoch.to_be_bytes());
    a.extend_from_slice(key);
    a
}

/// Which key of an epoch a value is sealed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// The metadata key: every record.
    Record,
    /// The chunk key: the values of the chunk table.
    Chunk,
}

/// Why a stored value did not open. Turned into an [`Error::Damaged`] naming the value by
/// [`OpenFailure::record_error`] or [`OpenFailure::chunk_error`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenFailure {
    /// Shorter than the header, or a version byte other than [`VERSION`].
    Header,
    /// The header names an epoch whose keys this vault does not hold.
    Epoch(u32),
    /// The AES-GCM open failed (too short, or the tag does not verify).
    Tag(OpenError),
}

impl OpenFailure {
    /// The error for a record named `what` (e.g. "vault state record").
    pub fn record_error(self, what: &str) -> Error {
        self.error(what, ": unreadable value header", ": sealed under")
    }

    /// The error for a chunk named `which` (model, version, file, chunk number and id).
    pub fn chunk_error(self, which: &str) -> Error {
        self.error(which, " has an unreadable header", " claims")
    }

    /// `name` followed by `header` or `epoch` (with the epoch's number) or the AES-GCM failure.
    fn error(self, name: &str, header: &str, epoch: &str) -> Error {
        Error::Damaged(match self {
            OpenFailure::Header => format!("{name}{header}: the vault is damaged"),
            OpenFailure::Epoch(e) => {
                format!("{name}{epoch} key epoch {e}, which this vault does not hold: the vault is damaged")
            }
            OpenFailure::Tag(e) => format!("{name}: {e}: the vault is damaged or was tampered with"),
        })
    }
}

/// The keys of one vault that seal and open its values: the current epoch's (sealing and
/// opening) and, while a rotation runs, the previous epoch's (opening only).
#[derive(Clone, Copy)]
pub struct Envelope<'k> {
    vault_id: [u8; 16],
    current: &'k EpochKeys,
    prev: Option<&'k EpochKeys>,
}

impl<'k> Envelope<'k> {
    /// The envelope of vault `vault_id` sealing under `current` and also opening values of
    /// `prev`'s epoch.
    pub fn new(vault_id: [u8; 16], current: &'k EpochKeys, prev: Option<&'k EpochKeys>) -> Self {
        Envelope { vault_id, current, prev }
    }

    /// The vault id bound into every AAD.
    pub fn vault_id(&self) -> [u8; 16] {
        self.vault_id
    }

    /// The epoch new values are sealed under.
    pub fn epoch(&self) -> u32 {
        self.current.epoch
    }

    /// The keys of `epoch`, when this envelope holds them.
    fn keys(&self, epoch: u32) -> Option<&'k EpochKeys> {
        if epoch == self.current.epoch { Some(self.current) } else { self.prev.filter(|p| p.epoch == epoch) }
    }

    /// Seals `plain` as the value of `table`/`key` under the current epoch with the key `usage`
    /// picks; returns the stored value `0x01 ‖ epoch ‖ nonce ‖ ciphertext ‖ tag`.
    ///
    /// Errors: [`crate::Error::Io`] when the system has no randomness for the nonce ([`aead::seal_with_prefix`]).
    pub fn seal(&self, usage: KeyUse, table: &(impl TableName + ?Sized), key: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
        let k = self.current;
        let secret = match usage {
            KeyUse::Record => &k.meta,
            KeyUse::Chunk => &k.chunk,
        };
        aead::seal_with_prefix(secret, &aad(table.table_name(), &self.vault_id, k.epoch, key), &header(k.epoch), plain)
    }

    /// Opens the stored `value` of `table`/`key` with the `usage` key of the epoch its header
    /// names. The plaintext is zeroized when dropped.
    ///
    /// Errors: [`OpenFailure`].
    pub fn open(
        &self,
        usage: KeyUse,
        table: &(impl TableName + ?Sized),
        key: &[u8],
        value: &[u8],
    ) -> std::result::Result<Zeroizing<Vec<u8>>, OpenFailure> {
        let (epoch, sealed) = split(value).ok_or(OpenFailure::Header)?;
        let k = self.keys(epoch).ok_or(OpenFailure::Epoch(epoch))?;
        let secret = match usage {
            KeyUse::Record => &k.meta,
            KeyUse::Chunk => &k.chunk,
        };
        aead::open(secret, &aad(table.table_name(), &self.vault_id, epoch, key), sealed)
            .map(Zeroizing::new)
            .map_err(OpenFailure::Tag)
    }

    /// Encodes `v` ([`records::encode`]) and seals it under the metadata key as the record of
    /// `table`/`key`.
    ///
    /// Errors: as [`Envelope::seal`].
    pub fn seal_record<T: Serialize>(&self, table: &(impl TableName + ?Sized), key: &[u8], v: &T) -> Result<Vec<u8>> {
        let plain = Zeroizing::new(records::encode(v));
        self.seal(KeyUse::Record, table, key, &plain)
    }

    /// Opens the record of `table`/`key` and decodes it ([`records::decode`]); `what` names it
    /// in errors.
    ///
    /// Errors: [`Error::Damaged`] naming `what` (header, epoch, tag or encoding).
    pub fn open_record<T: DeserializeOwned>(
        &self,
        table: &(impl TableName + ?Sized),
        key: &[u8],
        what: &str,
        value: &[u8],
    ) -> Result<T> {
        self.open_record_with(table, key, what, value, |b| records::decode(what, b))
    }

    /// As [`Envelope::open_record`], decoding the plaintext with `dec`.
    ///
    /// Errors: [`Error::Damaged`] naming `what`, and whatever `dec` returns.
    pub fn open_record_with<T>(
        &self,
        table: &(impl TableName + ?Sized),
        key: &[u8],
        what: &str,
        value: &[u8],
        dec: impl FnOnce(&[u8]) -> Result<T>,
    ) -> Result<T> {
        let plain = self.open(KeyUse::Record, table, key, value).map_err(|f| f.record_error(what))?;
        dec(&plain)
    }

    /// Seals the plaintext of chunk `id` under the current chunk key (table `chunks`, key = id).
    ///
    /// Errors: as [`Envelope::seal`].
    pub fn seal_chunk(&self, id: &ChunkId, plain: &[u8]) -> Result<Vec<u8>> {
        self.seal(KeyUse::Chunk, &Table::Chunks, id, plain)
    }

    /// Opens the stored value of chunk `id`; `which` names the chunk in errors. The length is
    /// not checked here (the manifest gives it: see the chunk reader).
    ///
    /// Errors: [`Error::Damaged`] naming `which` (header, epoch or tag).
    pub fn open_chunk(&self, id: &ChunkId, value: &[u8], which: impl FnOnce() -> String) -> Result<Vec<u8>> {
        match self.open(KeyUse::Chunk, &Table::Chunks, id, value) {
            Ok(mut plain) => Ok(std::mem::take(&mut *plain)),
            Err(f) => Err(f.chunk_error(&which())),
        }
    }

    /// For a master-key rotation (`self` = the new epoch's keys, `prev` = the old epoch's): the
    /// value of `table`/`key` sealed again under the current epoch when its header names the
    /// previous epoch, `None` when it names another (it is then copied as it is).
    ///
    /// Errors: [`Error::Damaged`] naming the table when a value of the previous epoch does not
    /// open.
    pub fn reseal(
        &self,
        usage: KeyUse,
        table: &(impl TableName + ?Sized),
        key: &[u8],
        value: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        match (split(value), self.prev) {
            (Some((e, _)), Some(p)) if e == p.epoch => {
                let plain = self.open(usage, table, key, value).map_err(|f| {
                    let err = match f {
                        OpenFailure::Tag(e) => e.to_string(),
                        other => format!("{other:?}"),
                    };
                    Error::Damaged(format!(
                        "a value of table {}: {err}: the vault is damaged; the rotation stopped and the vault is unchanged",
                        table.table_name()
                    ))
                })?;
                self.seal(usage, table, key, &plain).map(Some)
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;

    const VID: [u8; 16] = [7; 16];

    fn keys(epoch: u32, vid: &[u8; 16]) -> EpochKeys {
        EpochKeys::derive(&SecretKey([epoch as u8 + 1; 32]), vid, epoch)
    }

    #[test]
    fn header_bytes_follow_the_byte_layout() {
        assert_eq!(header(0x0102_0304), [0x01, 0x01, 0x02, 0x03, 0x04]);
        let k = keys(3, &VID);
        let env = Envelope::new(VID, &k, None);
        let v = env.seal_record(&Table::Meta, b"state", &42u32).unwrap();
        // 0x01 ‖ epoch BE ‖ nonce (12) ‖ ciphertext (1 byte: postcard of 42) ‖ tag (16).
        assert_eq!(&v[..5], &[1, 0, 0, 0, 3]);
        assert_eq!(v.len(), 5 + 12 + 1 + 16);
        assert_eq!(OVERHEAD, 33);
        let c = env.seal_chunk(&[9; 32], b"abcd").unwrap();
        assert_eq!(&c[..5], &[1, 0, 0, 0, 3]);
        assert_eq!(c.len(), 4 + OVERHEAD);
        assert_eq!(split(&c).map(|(e, s)| (e, s.len())), Some((3, 4 + aead::OVERHEAD)));
        assert_eq!(split(&[2, 0, 0, 0, 3]), None);
        assert_eq!(split(&[1, 0, 0]), None);
        assert_eq!(
            aad("chunks", &VID, 3, b"k"),
            [b"modelvault/v1/chunks\0".as_slice(), &VID, &[0, 0, 0, 3], b"k"].concat()
        );
    }

    #[test]
    fn a_value_opens_only_where_it_was_sealed() {
        let k = keys(1, &VID);
        let env = Envelope::new(VID, &k, None);
        let v = env.seal_record(&Table::Models, b"key-a", &"hello".to_string()).unwrap();
        let open = |env: &Envelope<'_>, t: Table, key: &[u8], v: &[u8]| env.open_record::<String>(&t, key, "rec", v);
        assert_eq!(open(&env, Table::Models, b"key-a", &v).unwrap(), "hello");
        // Another key, another table, the chunk key.
        assert!(matches!(open(&env, Table::Models, b"key-b", &v), Err(Error::Damaged(_))));
        assert!(open(&env, Table::Versions, b"key-a", &v).is_err());
        assert!(env.open(KeyUse::Chunk, &Table::Models, b"key-a", &v).is_err());
        // Another vault (same master key and epoch, other vault id).
        let other = Envelope::new([8; 16], &k, None);
        assert!(open(&other, Table::Models, b"key-a", &v).is_err());
        // Another epoch: relabel the header to an epoch whose keys the envelope holds.
        let k2 = keys(2, &VID);
        let both = Envelope::new(VID, &k2, Some(&k));
        assert_eq!(open(&both, Table::Models, b"key-a", &v).unwrap(), "hello");
        let mut moved = v.clone();
        moved[1..5].copy_from_slice(&2u32.to_be_bytes());
        assert!(open(&both, Table::Models, b"key-a", &moved).is_err());
        // An epoch neither key set belongs to is refused as such, not tried with another key.
        let mut unknown = v.clone();
        unknown[1..5].copy_from_slice(&5u32.to_be_bytes());
        assert_eq!(both.open(KeyUse::Record, &Table::Models, b"key-a", &unknown), Err(OpenFailure::Epoch(5)));
        // An epoch the vault does not hold is named.
        let only2 = Envelope::new(VID, &k2, None);
        match open(&only2, Table::Models, b"key-a", &v) {
            Err(Error::Damaged(m)) => {
                assert_eq!(m, "rec: sealed under key epoch 1, which this vault does not hold: the vault is damaged")
            }
            other => panic!("{other:?}"),
        }
        match only2.open_chunk(&[0; 32], &v, || "chunk 1 of 1".into()) {
            Err(Error::Damaged(m)) => {
                assert_eq!(m, "chunk 1 of 1 claims key epoch 1, which this vault does not hold: the vault is damaged")
            }
            other => panic!("{other:?}"),
        }
        // A header of another layout version is named as such, for records and chunks.
        let mut other_version = v.clone();
        other_version[0] = 2;
        let msg = |e: Error| match e {
            Error::Damaged(m) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            msg(open(&env, Table::Models, b"key-a", &other_version).unwrap_err()),
            "rec: unreadable value header: the vault is damaged"
        );
        assert_eq!(
            msg(env.open_chunk(&[0; 32], &other_version, || "chunk 2 of 3".into()).unwrap_err()),
            "chunk 2 of 3 has an unreadable header: the vault is damaged"
        );
        // A flipped ciphertext bit fails the tag.
        let mut bad = v.clone();
        bad[HEADER_LEN + 12] ^= 1;
        assert!(open(&env, Table::Models, b"key-a", &bad).is_err());
    }

    #[test]
    fn reseal_moves_previous_epoch_values_only() {
        let (k1, k2) = (keys(1, &VID), keys(2, &VID));
        let old = Envelope::new(VID, &k1, None);
        let rot = Envelope::new(VID, &k2, Some(&k1));
        let c = old.seal_chunk(&[5; 32], b"data").unwrap();
        let r = rot.reseal(KeyUse::Chunk, &Table::Chunks, &[5; 32], &c).unwrap().expect("resealed");
        assert_eq!(split(&r).unwrap().0, 2);
        let new_only = Envelope::new(VID, &k2, None);
        assert_eq!(new_only.open_chunk(&[5; 32], &r, String::new).unwrap(), b"data");
        // Already of the new epoch: copied as it is.
        assert!(rot.reseal(KeyUse::Chunk, &Table::Chunks, &[5; 32], &r).unwrap().is_none());
        // A damaged value of the old epoch stops the rotation.
        assert!(rot.reseal(KeyUse::Chunk, &Table::Chunks, &[6; 32], &c).is_err());
    }

    /// A value sealed by the format as written today (bytes taken from the construction the
    /// format documents, with a fixed nonce) opens.
    #[test]
    fn a_value_sealed_today_opens() {
        use aes_gcm::aead::AeadInOut;
        use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
        let k = keys(0, &VID);
        let nonce = [3u8; 12];
        let plain = b"chunk plaintext".to_vec();
        let id = [4u8; 32];
        let mut a = b"modelvault/v1/chunks\0".to_vec();
        a.extend_from_slice(&VID);
        a.extend_from_slice(&0u32.to_be_bytes());
        a.extend_from_slice(&id);
        let mut buf = plain.clone();
        let tag = Aes256Gcm::new_from_slice(k.chunk.expose())
            .unwrap()
            .encrypt_inout_detached(&Nonce::from(nonce), &a, buf.as_mut_slice().into())
            .unwrap();
        let value = [&[1u8, 0, 0, 0, 0][..], &nonce, &buf, tag.as_slice()].concat();
        let env = Envelope::new(VID, &k, None);
        assert_eq!(env.open_chunk(&id, &value, String::new).unwrap(), plain);
    }
}
