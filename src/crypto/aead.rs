//! AES-256-GCM sealing (NIST SP 800-38D, <https://csrc.nist.gov/pubs/sp/800/38/d/final>) with
//! random 96-bit nonces.
//!
//! **Nonce scheme.** Every seal draws a fresh 96-bit nonce from the OS CSPRNG. With random nonces
//! SP 800-38D §8.3 allows at most 2^32 invocations per key; the vault counts seals per key and per
//! epoch (counted in the sealed state by `vault::txn`) and refuses to pass [`NONCE_LIMIT`]. Under that bound the chance of
//! any nonce repeating stays below 2^-32.
//!
//! Sealed layout: `nonce (12 bytes) || ciphertext || tag (16 bytes)`. The AAD is supplied by the
//! caller and binds the ciphertext to where it is stored (vault id, table, record key, epoch).

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};

use super::{SecretKey, fill_random};
use crate::Result;

/// Bytes of nonce in front of every sealed value.
pub const NONCE_LEN: usize = 12;
/// Bytes of GCM tag at the end of every sealed value.
pub const TAG_LEN: usize = 16;
/// Bytes a seal adds to its plaintext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// Maximum seals under one key with random nonces (SP 800-38D §8.3).
pub const NONCE_LIMIT: u64 = 1 << 32;
/// Seal count at which the vault starts warning (a quarter of the limit).
pub const NONCE_WARN: u64 = 1 << 30;

/// Why an open failed: the value was too short to hold a nonce and a tag, or the tag did not
/// verify (wrong key, wrong AAD, or altered bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than nonce + tag.
    TooShort(usize),
    /// Authentication failed.
    BadTag,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::TooShort(n) => {
                write!(f, "ciphertext of {n} bytes is shorter than nonce + tag ({OVERHEAD} bytes)")
            }
            OpenError::BadTag => f.write_str("authentication failed (altered, moved or truncated)"),
        }
    }
}

fn cipher(key: &SecretKey) -> Aes256Gcm {
    Aes256Gcm::new_from_slice(key.expose()).expect("AES-256 key is 32 bytes")
}

/// Seals a copy of `plaintext`; returns `nonce || ciphertext || tag`.
pub fn seal(key: &SecretKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    seal_with_prefix(key, aad, &[], plaintext)
}

/// Seals `plaintext` into a new buffer laid out as `prefix || nonce || ciphertext || tag`, so a
/// stored value needs no second copy to gain its header.
pub fn seal_with_prefix(key: &SecretKey, aad: &[u8], prefix: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let start = prefix.len() + NONCE_LEN;
    let mut out = Vec::with_capacity(start + plaintext.len() + TAG_LEN);
    out.extend_from_slice(prefix);
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = cipher(key)
        .encrypt_inout_detached(&Nonce::from(nonce), aad, (&mut out[start..]).into())
        .expect("plaintext below GCM's 2^36-byte limit");
    out.extend_from_slice(tag.as_slice());
    Ok(out)
}

/// Opens `nonce || ciphertext || tag` into a new buffer holding the plaintext.
pub fn open(key: &SecretKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
    if sealed.len() < OVERHEAD {
        return Err(OpenError::TooShort(sealed.len()));
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut out = ct.to_vec();
    let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at NONCE_LEN");
    let tag: [u8; TAG_LEN] = tag.try_into().expect("split at TAG_LEN");
    cipher(key)
        .decrypt_inout_detached(&Nonce::from(nonce), aad, out.as_mut_slice().into(), &tag.into())
        .map_err(|_| OpenError::BadTag)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_aad_binding() {
        let k = SecretKey([3u8; 32]);
        let s = seal(&k, b"aad-1", b"hello").unwrap();
        assert_eq!(s.len(), 5 + OVERHEAD);
        assert_eq!(open(&k, b"aad-1", &s).unwrap(), b"hello");
        assert_eq!(open(&k, b"aad-2", &s), Err(OpenError::BadTag));
        let mut t = s.clone();
        t[NONCE_LEN] ^= 1;
        assert_eq!(open(&k, b"aad-1", &t), Err(OpenError::BadTag));
        assert_eq!(open(&k, b"aad-1", &s[..10]), Err(OpenError::TooShort(10)));
        let p = seal_with_prefix(&k, b"x", b"hd", b"hello").unwrap();
        assert_eq!(&p[..2], b"hd");
        assert_eq!(open(&k, b"x", &p[2..]).unwrap(), b"hello");
    }

    #[test]
    fn nonces_differ_between_seals() {
        let k = SecretKey([3u8; 32]);
        let a = seal(&k, b"", b"same").unwrap();
        let b = seal(&k, b"", b"same").unwrap();
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
    }
}
