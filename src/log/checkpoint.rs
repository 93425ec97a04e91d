//! Checkpoints of the log: a C2SP tlog-checkpoint body (<https://c2sp.org/tlog-checkpoint>,
//! origin, size and base64 root, built and parsed by `tlog_tiles`) in a C2SP signed note
//! (<https://c2sp.org/signed-note>) signed with the vault's Ed25519 signing key.
//!
//! - origin: `modelvault/<vault id, 32 hex>/<log id, 32 hex>`;
//! - key name: `modelvault/<vault id, 32 hex>`; key id: the first 4 bytes of
//!   SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public key), as signed-note defines it for Ed25519;
//! - signature line: `— <key name> <base64(key id ‖ 64-byte signature)>`, the signature over the
//!   note text (the body), with no prefix, as signed-note requires. The vault's other Ed25519
//!   messages all start with a domain prefix holding a NUL byte, which a note text may not hold,
//!   so no signature can serve as both.
//!
//! This module must never accept a note whose text is not a checkpoint of this vault's log, or
//! count a signature line whose key id it does not know.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::crypto::sign::{ManifestSigner, ManifestVerifier, hex};
use crate::store::records::LogHead;
use crate::{Error, Result};

/// Longest checkpoint file read, in bytes (a checkpoint with a few signatures is under 1 KiB).
pub const MAX_CHECKPOINT_BYTES: usize = 64 * 1024;

/// A checkpoint as parsed from a signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The origin line.
    pub origin: String,
    /// Tree size (entries).
    pub size: u64,
    /// Root hash.
    pub root: [u8; 32],
}

/// The origin of the log `log_id` of vault `vault_id`.
pub fn origin(vault_id: &[u8; 16], log_id: &[u8; 16]) -> String {
    format!("modelvault/{}/{}", hex(vault_id), hex(log_id))
}

/// The signed-note key name of vault `vault_id`'s signing keys.
pub fn key_name(vault_id: &[u8; 16]) -> String {
    format!("modelvault/{}", hex(vault_id))
}

/// The signed-note key id of an Ed25519 `public` key under `name`.
pub fn key_id(name: &str, public: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0x0A, 0x01]);
    h.update(public);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// The note text (checkpoint body) of `head`.
pub fn body(vault_id: &[u8; 16], head: &LogHead) -> Vec<u8> {
    let cp = tlog_tiles::Checkpoint::new(&origin(vault_id, &head.id), head.size, tlog_tiles::Hash(head.root), "")
        .expect("an origin without newlines and no extension lines is a valid checkpoint");
    cp.to_bytes()
}

/// The signed note of `head`, signed by `signer`: body, blank line, one signature line.
pub fn sign(vault_id: &[u8; 16], head: &LogHead, signer: &ManifestSigner) -> String {
    let text = body(vault_id, head);
    let name = key_name(vault_id);
    let public = signer.public_key();
    let mut sig = key_id(&name, &public).to_be_bytes().to_vec();
    sig.extend_from_slice(&signer.sign_note(&text));
    let mut note = String::from_utf8(text).expect("a checkpoint body is ASCII");
    note.push('\n');
    note.push_str(&format!("\u{2014} {name} {}\n", STANDARD.encode(sig)));
    note
}

fn malformed(what: &str) -> Error {
    Error::InvalidInput(format!(
        "the checkpoint is malformed: {what}; give a checkpoint file as the vault printed it, unchanged"
    ))
}

/// Parses a signed note: its text as a checkpoint, and its signature lines as (key name, key
/// id, signature). Lines of other shapes are refused, as signed-note requires.
///
/// Errors: [`Error::InvalidInput`] for a note over [`MAX_CHECKPOINT_BYTES`], without the blank
/// line, with a body that is not a checkpoint, or a signature line that does not parse.
pub fn parse(note: &[u8]) -> Result<(Checkpoint, Signatures)> {
    parse_note(note).map(|(c, _, s)| (c, s))
}

/// A note's signature lines as (key name, key id, signature bytes).
pub type Signatures = Vec<(String, u32, Vec<u8>)>;

/// [`parse`], also returning the note text (what the signatures sign).
fn parse_note(note: &[u8]) -> Result<(Checkpoint, &[u8], Signatures)> {
    if note.len() > MAX_CHECKPOINT_BYTES {
        return Err(malformed(&format!("it is over {MAX_CHECKPOINT_BYTES} bytes")));
    }
    let note = std::str::from_utf8(note).map_err(|_| malformed("it is not UTF-8 text"))?;
    let Some(split) = note.rfind("\n\n") else { return Err(malformed("no blank line before the signatures")) };
    let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
    let cp =
        tlog_tiles::Checkpoint::from_bytes(text.as_bytes()).map_err(|_| malformed("the text is not a checkpoint"))?;
    let mut out = Vec::new();
    for line in sigs.lines() {
        let rest =
            line.strip_prefix("\u{2014} ").ok_or_else(|| malformed("a signature line does not start with '— '"))?;
        let (name, b64) = rest.split_once(' ').ok_or_else(|| malformed("a signature line has no signature"))?;
        let raw = STANDARD.decode(b64).map_err(|_| malformed("a signature is not base64"))?;
        if raw.len() < 5 {
            return Err(malformed("a signature is too short"));
        }
        let id = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
        out.push((name.to_string(), id, raw[4..].to_vec()));
    }
    if out.is_empty() {
        return Err(malformed("it has no signature"));
    }
    let c = Checkpoint { origin: cp.origin().to_string(), size: cp.size(), root: cp.hash().0 };
    Ok((c, text.as_bytes(), out))
}

/// Parses `note` and checks it is a checkpoint of vault `vault_id` signed by one of `keys` (the
/// vault's signing keys, current and retired). Returns the checkpoint and its log id.
///
/// Errors: as [`parse`]; [`Error::InvalidInput`] for another vault's checkpoint;
/// [`Error::Damaged`] when no signature verifies under a key of this vault.
pub fn verify(note: &[u8], vault_id: &[u8; 16], keys: &[[u8; 32]]) -> Result<(Checkpoint, [u8; 16])> {
    let (cp, text, sigs) = parse_note(note)?;
    let prefix = format!("{}/", key_name(vault_id));
    let log_id = cp.origin.strip_prefix(&prefix).and_then(crate::crypto::sign::unhex::<16>).ok_or_else(|| {
        Error::InvalidInput(format!(
            "the checkpoint is of another log ('{}'), not of this vault (vault id {}): give this vault's checkpoint",
            crate::names::escape(&cp.origin),
            hex(vault_id)
        ))
    })?;
    let name = key_name(vault_id);
    for (n, id, sig) in &sigs {
        let Ok(sig) = <[u8; 64]>::try_from(sig.as_slice()) else { continue };
        for k in keys {
            if *n == name
                && key_id(&name, k) == *id
                && ManifestVerifier::new(k).is_some_and(|v| v.verify_note(text, &sig))
            {
                return Ok((cp, log_id));
            }
        }
    }
    Err(Error::Damaged(
        "the checkpoint's signature does not verify under any signing key this copy of the vault knows: it was altered, or is not this vault's, or it was signed by a key this copy does not have yet (the vault is older than the checkpoint, e.g. rolled back past a `signer rotate`); do not trust either until you know which".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> LogHead {
        LogHead { id: [7; 16], size: 42, root: [9; 32] }
    }

    /// A checkpoint this module signs is a C2SP signed note that the `signed_note` crate parses
    /// and verifies with the vault's key (named and numbered as signed-note defines), whose text
    /// `tlog_tiles` parses as a checkpoint with our origin, size and root.
    #[test]
    fn checkpoints_are_signed_notes_an_independent_parser_verifies() {
        let vid = [3u8; 16];
        let signer = ManifestSigner::generate().unwrap();
        let note = sign(&vid, &head(), &signer);
        let name = key_name(&vid);
        let mut vkey_key = vec![0x01];
        vkey_key.extend_from_slice(&signer.public_key());
        let id = key_id(&name, &signer.public_key());
        let vkey = format!("{name}+{id:08x}+{}", STANDARD.encode(&vkey_key));
        let verifier = signed_note::StandardVerifier::new(&vkey).unwrap();
        assert_eq!(signed_note::Verifier::key_id(&verifier), id, "our key id is signed-note's");
        let parsed = signed_note::Note::from_bytes(note.as_bytes()).unwrap();
        let (ok, _) = parsed.verify(&signed_note::VerifierList::new(vec![Box::new(verifier)])).unwrap();
        assert_eq!(ok.len(), 1);
        let cp = tlog_tiles::Checkpoint::from_bytes(parsed.text()).unwrap();
        assert_eq!(cp.origin(), origin(&vid, &[7; 16]));
        assert_eq!((cp.size(), cp.hash().0), (42, [9; 32]));
        // Ours accepts it, and refuses it altered, under another key, or for another vault.
        let (c, log) = verify(note.as_bytes(), &vid, &[signer.public_key()]).unwrap();
        assert_eq!((c.size, c.root, log), (42, [9; 32], [7; 16]));
        let altered = note.replacen("\n42\n", "\n43\n", 1);
        assert!(matches!(verify(altered.as_bytes(), &vid, &[signer.public_key()]), Err(Error::Damaged(_))));
        let other = ManifestSigner::generate().unwrap().public_key();
        assert!(matches!(verify(note.as_bytes(), &vid, &[other]), Err(Error::Damaged(_))));
        let e = verify(note.as_bytes(), &[4; 16], &[signer.public_key()]).unwrap_err().to_string();
        assert!(e.contains("another log"), "{e}");
        for bad in ["", "no blank line", "x\n1\nAA==\n\n— a b\n", &"a".repeat(MAX_CHECKPOINT_BYTES + 1)] {
            assert!(matches!(parse(bad.as_bytes()), Err(Error::InvalidInput(_))), "{bad:.40}");
        }
    }
}
