//! The key hierarchy below the master key.
//!
//! ```text
//! master key MK (32 random bytes, one per key epoch)
//!   └─ HKDF-SHA256(salt = vault id, ikm = MK, info = "modelvault/v1/<purpose>" || epoch as u32 BE)
//!        ├─ chunk     AES-256-GCM key for chunk ciphertexts
//!        ├─ meta      AES-256-GCM key for every other record (models, versions, signers, counters)
//!        ├─ chunk-id  BLAKE3 keyed-hash key: chunk id = BLAKE3-keyed(chunk-id key, plaintext)
//!        └─ name      BLAKE3 keyed-hash key: record key of a model = BLAKE3-keyed(name key, name)
//! ```
//! HKDF is RFC 5869 (<https://www.rfc-editor.org/rfc/rfc5869>). Each purpose has its own key, so
//! no key is used by two algorithms. All keys zeroize on drop.

use hkdf::Hkdf;
use sha2::Sha256;

use super::SecretKey;

/// The keys one epoch's master key yields.
#[derive(Debug)]
pub struct Subkeys {
    /// Key epoch these keys belong to (bound into every AAD).
    pub epoch: u32,
    /// AES-256-GCM key for chunks.
    pub chunk: SecretKey,
    /// AES-256-GCM key for metadata records.
    pub meta: SecretKey,
    /// BLAKE3 key for chunk ids.
    pub chunk_id: SecretKey,
    /// BLAKE3 key for model-name record keys.
    pub name: SecretKey,
}

impl Subkeys {
    /// Derives the subkeys of `master` for `epoch` in the vault `vault_id`.
    pub fn derive(master: &SecretKey, vault_id: &[u8; 16], epoch: u32) -> Subkeys {
        let hk = Hkdf::<Sha256>::new(Some(vault_id), master.expose());
        let derive = |purpose: &str| {
            let mut info = Vec::with_capacity(32);
            info.extend_from_slice(b"modelvault/v1/");
            info.extend_from_slice(purpose.as_bytes());
            info.extend_from_slice(&epoch.to_be_bytes());
            let mut k = SecretKey([0u8; 32]);
            hk.expand(&info, &mut k.0)
                .expect("32 bytes is far below HKDF-SHA256's 8160-byte limit");
            k
        };
        Subkeys {
            epoch,
            chunk: derive("chunk"),
            meta: derive("meta"),
            chunk_id: derive("chunk-id"),
            name: derive("name"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subkeys_differ_by_purpose_epoch_and_vault() {
        let mk = SecretKey([7u8; 32]);
        let a = Subkeys::derive(&mk, &[1u8; 16], 1);
        let b = Subkeys::derive(&mk, &[1u8; 16], 2);
        let c = Subkeys::derive(&mk, &[2u8; 16], 1);
        assert_ne!(a.chunk.expose(), a.meta.expose());
        assert_ne!(a.chunk.expose(), b.chunk.expose());
        assert_ne!(a.chunk.expose(), c.chunk.expose());
        assert_ne!(a.chunk_id(b"x"), b.chunk_id(b"x"));
        assert_eq!(a.chunk_id(b"x"), a.chunk_id(b"x"));
    }
}
