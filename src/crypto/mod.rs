//! Cryptographic building blocks, composed from well-reviewed crates; nothing here implements a
//! primitive.
//!
//! - [`kdf`]: passphrase → key-encryption key (KEK) with Argon2id (RFC 9106).
//! - [`keys`]: the random 256-bit master key and the subkeys HKDF-SHA256 (RFC 5869) derives from it.
//! - [`aead`]: AES-256-GCM sealing with random 96-bit nonces (NIST SP 800-38D).
//! - [`recipient`]: public-key wraps of the master key as age files (X25519, ssh-ed25519, ssh-rsa).
//! - [`sign`]: Ed25519 manifest signatures (RFC 8032), verified with `verify_strict`.
//!
//! Secret key material lives in [`SecretKey`], which zeroizes on drop and never prints.

pub mod aead;
pub mod kdf;
pub mod keys;
pub mod recipient;
pub mod sign;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// 32 bytes of secret key material, wiped from memory when dropped. Its `Debug` prints nothing
/// of the key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey(pub(crate) [u8; 32]);

impl SecretKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn random() -> crate::Result<Self> {
        let mut k = [0u8; 32];
        fill_random(&mut k)?;
        Ok(SecretKey(k))
    }

    /// The key bytes, for handing to a primitive.
    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Fills `buf` from the operating system's CSPRNG (getrandom).
pub(crate) fn fill_random(buf: &mut [u8]) -> crate::Result<()> {
    getrandom::fill(buf).map_err(|e| crate::Error::Io {
        context: "reading the operating system's random number generator".into(),
        source: std::io::Error::other(e.to_string()),
    })
}
