//! Ed25519 signatures over manifests (RFC 8032, <https://www.rfc-editor.org/rfc/rfc8032>), with
//! `ed25519-dalek`'s `verify_strict` (rejects small-order keys and non-canonical signatures).
//!
//! Every signed message is prefixed with a domain-separation string, so a manifest signature can
//! never be replayed as a signature over another kind of record.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::SecretKey;

/// Domain-separation prefix of a manifest signature.
pub const MANIFEST_DOMAIN: &[u8] = b"modelvault manifest signature v1\0";

/// Length of a public key in bytes.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of a signature in bytes.
pub const SIGNATURE_LEN: usize = 64;

/// The signing key of a vault (zeroized on drop by `ed25519-dalek`).
pub struct ManifestSigner {
    key: SigningKey,
}

impl ManifestSigner {
    /// A new random signing key.
    pub fn generate() -> crate::Result<Self> {
        let seed = SecretKey::random()?;
        Ok(ManifestSigner { key: SigningKey::from_bytes(seed.expose()) })
    }

    /// Rebuilds a signer from its 32-byte seed.
    pub fn from_seed(seed: &SecretKey) -> Self {
        ManifestSigner { key: SigningKey::from_bytes(seed.expose()) }
    }

    /// The 32-byte seed, for wrapping under the metadata key.
    pub fn seed(&self) -> SecretKey {
        SecretKey(self.key.to_bytes())
    }

    /// The public key.
    pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.key.verifying_key().to_bytes()
    }

    /// Signs `MANIFEST_DOMAIN || message`.
    pub fn sign_manifest(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.key.sign(&domain(message)).to_bytes()
    }
}

fn domain(message: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(MANIFEST_DOMAIN.len() + message.len());
    m.extend_from_slice(MANIFEST_DOMAIN);
    m.extend_from_slice(message);
    m
}

/// Verifies a manifest signature with `verify_strict`. Returns false for a malformed public key,
/// a malformed signature, or a signature that does not verify.
pub fn verify_manifest(public_key: &[u8; PUBLIC_KEY_LEN], message: &[u8], sig: &[u8; SIGNATURE_LEN]) -> bool {
    let Ok(vk) = VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    let sig = Signature::from_bytes(sig);
    vk.verify_strict(&domain(message), &sig).is_ok()
}

/// Lower-case hex of a public key, as `mvault signer show` prints it.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_reject_altered() {
        let s = ManifestSigner::generate().unwrap();
        let sig = s.sign_manifest(b"manifest bytes");
        assert!(verify_manifest(&s.public_key(), b"manifest bytes", &sig));
        assert!(!verify_manifest(&s.public_key(), b"manifest bytez", &sig));
        let other = ManifestSigner::generate().unwrap();
        assert!(!verify_manifest(&other.public_key(), b"manifest bytes", &sig));
        let again = ManifestSigner::from_seed(&s.seed());
        assert_eq!(again.public_key(), s.public_key());
    }
}
