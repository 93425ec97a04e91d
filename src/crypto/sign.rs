//! Ed25519 signatures over manifests (RFC 8032, <https://www.rfc-editor.org/rfc/rfc8032>), with
//! `ed25519-dalek`'s `verify_strict` (rejects small-order keys and non-canonical signatures).
//!
//! Every signed message is prefixed with a domain-separation string, so a manifest signature can
//! never be replayed as a signature over another kind of record.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::SecretKey;

/// Domain-separation prefix of a manifest signature.
pub const MANIFEST_DOMAIN: &[u8] = b"modelvault manifest signature v1\0";
/// Domain prefix of every remote log entry signature (RFC 8032 Ed25519 over prefix ‖ message).
pub const LOG_DOMAIN: &[u8] = b"modelvault remote log signature v1\0";

/// True when `text` may be the text of a C2SP signed note: UTF-8 without control characters
/// other than newline, ending in a newline. Every other message this crate signs starts with a
/// domain prefix holding a NUL byte, so it never is one: the signatures cannot be swapped.
pub fn is_note_text(text: &[u8]) -> bool {
    std::str::from_utf8(text).is_ok_and(|t| t.ends_with('\n') && !t.chars().any(|c| c.is_control() && c != '\n'))
}

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

    /// Signs the text of a C2SP signed note (no prefix, as signed-note requires).
    ///
    /// # Panics
    /// When `text` is not note text ([`is_note_text`]): the callers build it.
    pub fn sign_note(&self, text: &[u8]) -> [u8; SIGNATURE_LEN] {
        assert!(is_note_text(text), "only note text is signed without a domain prefix");
        self.key.sign(text).to_bytes()
    }

    /// Signs `message` prefixed with [`LOG_DOMAIN`] (a remote's log entries; see SECURITY.md,
    /// "Remote"). The two domains differ in their first bytes' meaning, so a log signature never
    /// verifies as a manifest signature and the reverse.
    pub fn sign_log(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.key.sign(&with_domain(LOG_DOMAIN, message)).to_bytes()
    }
}

fn with_domain(d: &[u8], message: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(d.len() + message.len());
    m.extend_from_slice(d);
    m.extend_from_slice(message);
    m
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
    ManifestVerifier::new(public_key).is_some_and(|v| v.verify(message, sig))
}

/// A decoded Ed25519 public key (RFC 8032, section 5.1.3), kept to check many manifests: decoding
/// takes a field square root, a large part of one verification (measured: `ls` over 10,000
/// versions spent most of its time in signature checks).
#[derive(Clone, Debug)]
pub struct ManifestVerifier {
    public: [u8; PUBLIC_KEY_LEN],
    key: VerifyingKey,
}

impl ManifestVerifier {
    /// Decodes `public_key`; `None` when it is not a point on the curve.
    pub fn new(public_key: &[u8; PUBLIC_KEY_LEN]) -> Option<Self> {
        VerifyingKey::from_bytes(public_key).ok().map(|key| ManifestVerifier { public: *public_key, key })
    }

    /// The 32-byte encoded public key.
    pub fn public_key(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.public
    }

    /// Checks `sig` over the domain-separated `message` with `verify_strict` (rejects small-order
    /// keys and non-canonical signatures).
    pub fn verify(&self, message: &[u8], sig: &[u8; SIGNATURE_LEN]) -> bool {
        self.key.verify_strict(&domain(message), &Signature::from_bytes(sig)).is_ok()
    }

    /// Checks a signed note's signature ([`ManifestSigner::sign_note`]) with `verify_strict`;
    /// false for text that is not note text.
    pub fn verify_note(&self, text: &[u8], sig: &[u8; SIGNATURE_LEN]) -> bool {
        is_note_text(text) && self.key.verify_strict(text, &Signature::from_bytes(sig)).is_ok()
    }

    /// Checks a log entry signature ([`ManifestSigner::sign_log`]) with `verify_strict`.
    pub fn verify_log(&self, message: &[u8], sig: &[u8; SIGNATURE_LEN]) -> bool {
        self.key.verify_strict(&with_domain(LOG_DOMAIN, message), &Signature::from_bytes(sig)).is_ok()
    }
}

/// Lower-case hex of a public key, as `mvault signer show` prints it.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Parses `N` bytes from lower-case or upper-case hex; `None` for any other text.
pub fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff, 0x10]), "000fa5ff10");
        assert_eq!(hex(&[]), "");
    }

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

    /// y = 2 has no x on edwards25519 (RFC 8032 5.1.3 decoding fails): such a signer key decodes
    /// to nothing and verifies nothing, so a vault holding one opens and only the versions it
    /// "signed" fail their check.
    #[test]
    fn a_public_key_off_the_curve_decodes_to_nothing_and_verifies_nothing() {
        let mut off = [0u8; PUBLIC_KEY_LEN];
        off[0] = 2;
        assert!(ManifestVerifier::new(&off).is_none());
        let s = ManifestSigner::generate().unwrap();
        let sig = s.sign_manifest(b"manifest bytes");
        assert!(!verify_manifest(&off, b"manifest bytes", &sig));
        let mut on = [0u8; PUBLIC_KEY_LEN];
        on[0] = 3;
        assert!(ManifestVerifier::new(&on).is_some(), "y = 3 is on the curve");
    }
}
