//! The key hierarchy below the master key.
//!
//! ```text
//! master key MK_e (32 random bytes, one per key epoch e; wrapped by every key slot)
//!   └─ HKDF-SHA256(salt = vault id, ikm = MK_e, info = "modelvault/v1/<purpose>" || e as u32 BE)
//!        ├─ chunk     AES-256-GCM key for chunk ciphertexts of epoch e
//!        ├─ meta      AES-256-GCM key for every other record of epoch e
//!        └─ recipient-slot-mac  HMAC-SHA256 key of the recipient lists of key slots of epoch e
//! index key IK (32 random bytes, made at init, sealed under the meta key of the current epoch)
//!   └─ HKDF-SHA256(salt = vault id, ikm = IK, info = "modelvault/v1/<purpose>")
//!        ├─ chunk-id  BLAKE3 keyed-hash key: chunk id = BLAKE3-keyed(chunk-id key, plaintext)
//!        └─ name      BLAKE3 keyed-hash key: model record key = BLAKE3-keyed(name key, name)
//! ```
//! HKDF is RFC 5869 (<https://www.rfc-editor.org/rfc/rfc5869>). Each purpose has its own key, so
//! no key is used by two algorithms. The index keys outlive epochs so that record keys and chunk
//! ids stay put when the master key is rotated (a rotation re-encrypts values in place); they
//! only decide where things are stored, never protect their content. All keys zeroize on drop.

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::SecretKey;

fn hkdf(ikm: &SecretKey, vault_id: &[u8; 16], purpose: &str, epoch: Option<u32>) -> SecretKey {
    let hk = Hkdf::<Sha256>::new(Some(vault_id), ikm.expose());
    let mut info = Vec::with_capacity(32);
    info.extend_from_slice(b"modelvault/v1/");
    info.extend_from_slice(purpose.as_bytes());
    if let Some(e) = epoch {
        info.extend_from_slice(&e.to_be_bytes());
    }
    let mut k = SecretKey([0u8; 32]);
    hk.expand(&info, &mut k.0).expect("32 bytes is far below HKDF-SHA256's 8160-byte limit");
    k
}

/// The encryption keys of one key epoch.
#[derive(Debug)]
pub struct EpochKeys {
    /// Key epoch these keys belong to (bound into every AAD).
    pub epoch: u32,
    /// AES-256-GCM key for chunks.
    pub chunk: SecretKey,
    /// AES-256-GCM key for metadata records.
    pub meta: SecretKey,
    /// HMAC-SHA256 key of the recipient key slots' MACs of this epoch.
    pub slot_mac: SlotMacKey,
}

impl EpochKeys {
    /// Derives the keys of `master` for `epoch` in the vault `vault_id`.
    pub fn derive(master: &SecretKey, vault_id: &[u8; 16], epoch: u32) -> EpochKeys {
        EpochKeys {
            epoch,
            chunk: hkdf(master, vault_id, "chunk", Some(epoch)),
            meta: hkdf(master, vault_id, "meta", Some(epoch)),
            slot_mac: SlotMacKey::derive(master, vault_id, epoch),
        }
    }
}

/// The HMAC-SHA256 key (RFC 2104, <https://www.rfc-editor.org/rfc/rfc2104>) that authenticates
/// a recipient key slot's recipient list: HKDF-SHA256(salt = vault id, ikm = MK_e, info =
/// `"modelvault/v1/recipient-slot-mac"` ‖ e as u32 BE). Only a holder of the master key of epoch
/// `e` makes or checks a tag.
#[derive(Debug)]
pub struct SlotMacKey(SecretKey);

impl SlotMacKey {
    /// Derives the key of `master`, the master key of `epoch`, in the vault `vault_id`.
    pub fn derive(master: &SecretKey, vault_id: &[u8; 16], epoch: u32) -> SlotMacKey {
        SlotMacKey(hkdf(master, vault_id, "recipient-slot-mac", Some(epoch)))
    }

    /// The 32-byte tag of `message`.
    pub fn tag(&self, message: &[u8]) -> [u8; 32] {
        self.mac(message).finalize().into_bytes().into()
    }

    /// True when `tag` is the tag of `message` (compared in constant time).
    pub fn verify(&self, message: &[u8], tag: &[u8; 32]) -> bool {
        self.mac(message).verify_slice(tag).is_ok()
    }

    fn mac(&self, message: &[u8]) -> Hmac<Sha256> {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.expose()).expect("HMAC takes a key of any length");
        m.update(message);
        m
    }
}

/// The keyed-hash keys that place records and chunks.
#[derive(Debug)]
pub struct IndexKeys {
    /// BLAKE3 key for chunk ids.
    pub chunk_id: SecretKey,
    /// BLAKE3 key for model-name record keys.
    pub name: SecretKey,
}

impl IndexKeys {
    /// Derives the index keys from the vault's index key.
    pub fn derive(index_key: &SecretKey, vault_id: &[u8; 16]) -> IndexKeys {
        IndexKeys {
            chunk_id: hkdf(index_key, vault_id, "chunk-id", None),
            name: hkdf(index_key, vault_id, "name", None),
        }
    }

    /// The chunk id of `plaintext`: BLAKE3 in keyed mode (a PRF), so equal plaintexts share an id
    /// while the id reveals nothing about the plaintext to anyone without the key.
    pub fn chunk_id(&self, plaintext: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(self.chunk_id.expose(), plaintext).as_bytes()
    }

    /// The record key of a model name (the name itself is stored only encrypted).
    pub fn name_key(&self, name: &str) -> [u8; 32] {
        *blake3::keyed_hash(self.name.expose(), name.as_bytes()).as_bytes()
    }
}

/// The keys of a remote (SECURITY.md, "Remote"): derived from the index key, which every copy
/// of a vault shares and which outlives key epochs, so a local `key rotate` strands nothing on
/// the remote. HKDF-SHA256 with salt = vault id, IKM = index key.
#[derive(Debug)]
pub struct RemoteKeys {
    /// Derives one key per pack (`"modelvault/v1/remote-pack"` ‖ the pack's 32-byte salt).
    pack_root: SecretKey,
    /// AES-256-GCM key of pack indexes and log entries (`"modelvault/v1/remote-meta"`).
    pub meta: SecretKey,
}

impl RemoteKeys {
    /// Derives the remote keys from the vault's index key.
    pub fn derive(index_key: &SecretKey, vault_id: &[u8; 16]) -> RemoteKeys {
        RemoteKeys {
            pack_root: hkdf(index_key, vault_id, "remote-pack", None),
            meta: hkdf(index_key, vault_id, "remote-meta", None),
        }
    }

    /// The AES-256-GCM key of the pack whose random salt is `salt`: HKDF-SHA256 (salt = none,
    /// IKM = the pack root key, info = `"modelvault/v1/remote-pack-key"` ‖ salt). One key per
    /// pack keeps the random-nonce count per key to the chunks of one pack.
    pub fn pack_key(&self, salt: &[u8; 32]) -> SecretKey {
        let hk = Hkdf::<Sha256>::new(None, self.pack_root.expose());
        let mut info = Vec::with_capacity(64);
        info.extend_from_slice(b"modelvault/v1/remote-pack-key");
        info.extend_from_slice(salt);
        let mut k = SecretKey([0u8; 32]);
        hk.expand(&info, &mut k.0).expect("32 bytes is far below HKDF-SHA256's limit");
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subkeys_differ_by_purpose_epoch_and_vault() {
        let mk = SecretKey([7u8; 32]);
        let a = EpochKeys::derive(&mk, &[1u8; 16], 1);
        let b = EpochKeys::derive(&mk, &[1u8; 16], 2);
        let c = EpochKeys::derive(&mk, &[2u8; 16], 1);
        assert_ne!(a.chunk.expose(), a.meta.expose());
        assert_ne!(a.chunk.expose(), b.chunk.expose());
        assert_ne!(a.chunk.expose(), c.chunk.expose());
        let i = IndexKeys::derive(&mk, &[1u8; 16]);
        let j = IndexKeys::derive(&mk, &[2u8; 16]);
        assert_ne!(i.chunk_id(b"x"), j.chunk_id(b"x"));
        assert_eq!(i.chunk_id(b"x"), i.chunk_id(b"x"));
        assert_ne!(i.chunk_id.expose(), a.chunk.expose());
    }
}
