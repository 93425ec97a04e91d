//! The byte layout of every object a remote holds (SECURITY.md, "Remote"): the object names, the
//! key bundle, packs, pack indexes and log entries, and their sealing (AES-256-GCM under keys
//! from [`RemoteKeys`], with an AAD naming the object's kind, the vault and its position).
//! It must never put a name, a plaintext hash or a chunk id into an object's name, and never
//! hand out a value that did not authenticate.

use serde::{Deserialize, Serialize};

use crate::crypto::aead;
use crate::crypto::keys::RemoteKeys;
use crate::store::envelope::TableName;
use crate::store::records::{SignerRecord, VersionRecord};
use crate::{Error, Result};

/// Prefix of the key bundles: `keys/<BLAKE3 of the object, hex>`.
pub const KEYS: &str = "keys/";
/// Prefix of the packs: `packs/<BLAKE3 of the object, hex>`.
pub const PACKS: &str = "packs/";
/// Prefix of the pack indexes: `index/<BLAKE3 of the object, hex>`.
pub const INDEX: &str = "index/";
/// Prefix of the log entries: `log/<sequence number, 12 decimal digits>`.
pub const LOG: &str = "log/";
/// First bytes of every pack.
pub const PACK_MAGIC: &[u8; 8] = b"mvpack01";
/// Largest object this build reads whole (a log entry, an index, a key bundle), in bytes; a
/// larger one is refused before it is read into memory.
pub const MAX_META_OBJECT: u64 = 256 << 20;

/// The name of an immutable object of kind `prefix` holding `bytes`: the prefix and the hex
/// BLAKE3 of the bytes (a hash of ciphertext, which reveals nothing).
pub fn content_name(prefix: &str, bytes: &[u8]) -> String {
    format!("{prefix}{}", blake3::hash(bytes).to_hex())
}

/// The key of log entry `seq`.
pub fn log_name(seq: u64) -> String {
    format!("{LOG}{seq:012}")
}

/// The sequence number of a log key, `None` for a key of another form.
pub fn log_seq(key: &str) -> Option<u64> {
    let digits = key.strip_prefix(LOG)?;
    (digits.len() == 12 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok())?
}

/// The envelope "table" of the key bundle's sealed part (bound into its AAD).
pub struct KeysTable;

impl TableName for KeysTable {
    fn table_name(&self) -> &str {
        "remote-keys"
    }
}

/// What a second machine needs to become a copy of the vault: sealed under the meta key of
/// epoch `epoch` by the vault's envelope (AAD table `remote-keys`, record key empty).
#[derive(Serialize, Deserialize)]
pub struct KeysRecord {
    /// The vault's index key IK (chunk ids, record keys and the remote keys derive from it).
    pub index_key: [u8; 32],
    /// Every signer record of the vault, by id.
    pub signers: Vec<(u32, SignerRecord)>,
    /// The id of the signer that signs new manifests and log entries.
    pub active_signer: u32,
}

impl Drop for KeysRecord {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.index_key);
    }
}

/// A key bundle: the plaintext header and key slots (what a file holder already sees), and the
/// sealed [`KeysRecord`] of epoch `epoch`.
#[derive(Serialize, Deserialize)]
pub struct KeysBundle {
    /// The vault's header record, as stored (postcard of `Header`).
    pub header: Vec<u8>,
    /// Every key slot record (name, stored bytes with checksum).
    pub slots: Vec<(String, Vec<u8>)>,
    /// The key epoch whose meta key sealed `sealed`.
    pub epoch: u32,
    /// The sealed [`KeysRecord`] (`0x01 ‖ epoch ‖ nonce ‖ ciphertext ‖ tag`).
    pub sealed: Vec<u8>,
}

/// One chunk's place in a pack.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PackEntry {
    /// The chunk id (keyed BLAKE3 of the plaintext).
    pub id: [u8; 32],
    /// Offset of the sealed chunk in the pack, bytes.
    pub offset: u64,
    /// Length of the sealed chunk (nonce, ciphertext, tag), bytes.
    pub sealed_len: u32,
}

/// A pack index: where each chunk of one pack lies. Sealed under the remote meta key (AAD kind
/// `index`), named by the hash of the sealed bytes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PackIndex {
    /// The pack's object key.
    pub pack: String,
    /// The pack's random salt (its key derives from it).
    pub salt: [u8; 32],
    /// Its chunks, in pack order.
    pub entries: Vec<PackEntry>,
}

/// One change a log entry records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Change {
    /// A version (or a new revision of one): its signed manifest as the vault stores it.
    Version(VersionRecord),
    /// A model's aliases and description as they are after the change.
    Model {
        /// The model name.
        name: String,
        /// Alias → version.
        aliases: std::collections::BTreeMap<String, u64>,
        /// The model-level description.
        description: String,
    },
    /// A version removed.
    Remove {
        /// The model name.
        name: String,
        /// The version number.
        version: u64,
    },
    /// `gc --remote`, step one: objects no live version references, marked at the entry's
    /// time. A later entry naming a marked index in its `indexes` unmarks it.
    GcMark {
        /// Pack indexes (and so their packs).
        indexes: Vec<String>,
        /// Packs that no index names (left by killed pushes).
        packs: Vec<String>,
    },
    /// `gc --remote`, step two: marked objects still unreferenced once the grace period passed,
    /// deleted after this entry is written (indexes first, then packs). No later entry may rely
    /// on them.
    GcSweep {
        /// Pack indexes deleted.
        indexes: Vec<String>,
        /// Packs deleted.
        packs: Vec<String>,
    },
}

/// The sealed body of a log entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogBody {
    /// Its sequence number (1 for the first entry); equals the number in its key.
    pub seq: u64,
    /// BLAKE3 of the previous entry's stored bytes (zeros for entry 1).
    pub prev: [u8; 32],
    /// When it was written, Unix seconds.
    pub time: u64,
    /// The pack indexes whose chunks the changes' manifests use (each existed before this
    /// entry was written).
    pub indexes: Vec<String>,
    /// The changes, applied in order.
    pub changes: Vec<Change>,
}

/// A log entry as stored: the sealed body, the public key that signed, the signature over
/// `LOG_DOMAIN ‖ seq (u64 BE) ‖ sealed`.
#[derive(Serialize, Deserialize)]
pub struct StoredEntry {
    /// The sealed [`LogBody`] (`nonce ‖ ciphertext ‖ tag`).
    pub sealed: Vec<u8>,
    /// The Ed25519 public key of the signer.
    pub signer: [u8; 32],
    /// The Ed25519 signature (64 bytes).
    pub signature: Vec<u8>,
}

/// The AAD of a remote object of `kind` at position `position` in vault `vault_id`:
/// `"modelvault/v1/remote-" ‖ kind ‖ 0x00 ‖ vault id ‖ position`.
pub fn aad(kind: &str, vault_id: &[u8; 16], position: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(48 + position.len());
    a.extend_from_slice(b"modelvault/v1/remote-");
    a.extend_from_slice(kind.as_bytes());
    a.push(0);
    a.extend_from_slice(vault_id);
    a.extend_from_slice(position);
    a
}

/// The message a log entry's signature covers (before the domain prefix).
pub fn log_message(seq: u64, sealed: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(8 + sealed.len());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(sealed);
    m
}

/// Seals a pack index under the remote meta key.
///
/// Errors: [`Error::Io`] when the system has no randomness.
pub fn seal_index(keys: &RemoteKeys, vault_id: &[u8; 16], ix: &PackIndex) -> Result<Vec<u8>> {
    aead::seal(&keys.meta, &aad("index", vault_id, b""), &crate::store::records::encode(ix))
}

/// Opens a pack index read from object `name`.
///
/// Errors: [`Error::Damaged`] naming the object.
pub fn open_index(keys: &RemoteKeys, vault_id: &[u8; 16], name: &str, bytes: &[u8]) -> Result<PackIndex> {
    let what = format!("remote pack index {name}");
    if content_name(INDEX, bytes) != name {
        return Err(tampered(&what, "its bytes do not hash to its name"));
    }
    let plain =
        aead::open(&keys.meta, &aad("index", vault_id, b""), bytes).map_err(|e| tampered(&what, &e.to_string()))?;
    let ix: PackIndex = crate::store::records::decode(&what, &plain)?;
    if !ix.pack.starts_with(PACKS) {
        return Err(tampered(&what, "it names an object that is not a pack"));
    }
    Ok(ix)
}

/// Seals one chunk's plaintext for a pack (AAD kind `chunk`, position = chunk id).
///
/// Errors: [`Error::Io`] when the system has no randomness.
pub fn seal_chunk(
    pack_key: &crate::crypto::SecretKey,
    vault_id: &[u8; 16],
    id: &[u8; 32],
    plain: &[u8],
) -> Result<Vec<u8>> {
    aead::seal(pack_key, &aad("chunk", vault_id, id), plain)
}

/// Opens one sealed chunk of a pack.
///
/// Errors: [`Error::Damaged`] naming the chunk's pack.
pub fn open_chunk(
    pack_key: &crate::crypto::SecretKey,
    vault_id: &[u8; 16],
    id: &[u8; 32],
    sealed: &[u8],
    pack: &str,
) -> Result<Vec<u8>> {
    aead::open(pack_key, &aad("chunk", vault_id, id), sealed)
        .map_err(|e| tampered(&format!("a chunk of remote pack {pack}"), &e.to_string()))
}

/// The error for a remote object that fails a check: [`Error::Damaged`].
pub fn tampered(what: &str, why: &str) -> Error {
    Error::Damaged(format!("{what}: {why}: the remote was damaged or tampered with"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_hold_no_plaintext_and_log_keys_parse_back() {
        assert_eq!(log_name(7), "log/000000000007");
        assert_eq!(log_seq("log/000000000007"), Some(7));
        assert_eq!(log_seq("log/7"), None);
        assert_eq!(log_seq("log/00000000000x"), None);
        let n = content_name(PACKS, b"sealed bytes");
        assert_eq!(n.len(), PACKS.len() + 64);
        assert_eq!(n, content_name(PACKS, b"sealed bytes"));
    }

    #[test]
    fn an_index_opens_only_under_its_own_name_and_vault() {
        let keys = RemoteKeys::derive(&crate::crypto::SecretKey([5; 32]), &[1; 16]);
        let ix = PackIndex { pack: "packs/ab".into(), salt: [2; 32], entries: vec![] };
        let sealed = seal_index(&keys, &[1; 16], &ix).unwrap();
        let name = content_name(INDEX, &sealed);
        assert_eq!(open_index(&keys, &[1; 16], &name, &sealed).unwrap(), ix);
        let e = open_index(&keys, &[1; 16], "index/00", &sealed).unwrap_err().to_string();
        assert!(e.contains("do not hash to its name"), "{e}");
        assert!(open_index(&keys, &[9; 16], &name, &sealed).is_err());
    }
}
