//! The manifest: what one version of a model is, in one canonical encoding, signed with Ed25519.
//!
//! A manifest names the vault, the model, the version, every file (path, size, SHA-256 per
//! FIPS 180-4, and the ordered list of chunk ids and lengths that rebuild it), and the version's
//! metadata (description, tags, metrics). Its canonical encoding is the `postcard` serialisation
//! of [`Manifest`]: fields in declaration order, maps as sorted `BTreeMap`s, integers as varints,
//! metrics restricted to finite `f64`. [`decode_canonical`] re-encodes what it decoded and refuses
//! bytes that differ, so each manifest has exactly one accepted encoding.
//!
//! The signature covers `"modelvault manifest signature v1\0" ‖ canonical bytes`
//! (see [`crate::crypto::sign`]). Changing a tag or metric makes a new revision, re-signed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::crypto::sign;
use crate::{Error, Result};

/// Manifest encoding version.
pub const MANIFEST_VERSION: u32 = 1;

/// One version of a model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`].
    pub manifest_version: u32,
    /// The vault this manifest belongs to.
    pub vault_id: [u8; 16],
    /// Model name.
    pub name: String,
    /// Version number (from 1).
    pub version: u64,
    /// Creation time of the version, Unix seconds.
    pub created: u64,
    /// Metadata revision: 0 at put, +1 at each tag, metric or description change.
    pub revision: u64,
    /// Time of the latest revision, Unix seconds.
    pub updated: u64,
    /// Free text.
    pub description: String,
    /// Tags, key → value.
    pub tags: BTreeMap<String, String>,
    /// Metrics, key → finite value.
    pub metrics: BTreeMap<String, f64>,
    /// Files in path order.
    pub files: Vec<FileEntry>,
}

/// One file of a version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    /// `/`-separated relative path (see [`crate::names::check_file_path`]).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the whole file.
    pub sha256: [u8; 32],
    /// Chunks in order; their lengths sum to `size`.
    pub chunks: Vec<ChunkRef>,
    /// Detected format ([`crate::formats::format_name`]), e.g. `safetensors`, `gguf-v3`, `opaque`.
    pub format: String,
    /// Tensor index (name, dtype, shape, absolute byte range) for tensor formats.
    pub tensors: Vec<crate::formats::tensor::TensorInfo>,
    /// The pickle scan verdict, for files that can carry a pickle.
    pub scan: Option<ScanRecord>,
}

/// A pickle scan as recorded in a manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ScanRecord {
    /// `clean`, `dangerous` or `unscannable`.
    pub verdict: String,
    /// One line per finding: global, member, offset and reason.
    pub findings: Vec<String>,
    /// True when the file was stored despite a non-clean verdict (`--allow-unsafe-pickle`).
    pub allowed_unsafe: bool,
}

/// A reference to one stored chunk.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct ChunkRef {
    /// Chunk id (BLAKE3-keyed of the plaintext).
    pub id: [u8; 32],
    /// Plaintext length in bytes.
    pub len: u32,
}

impl Manifest {
    /// Total size of all files, in bytes.
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("manifest serialises")
    }

    /// Checks internal consistency: chunk lengths sum to each file's size, paths pass the path
    /// rule, metrics are finite.
    pub fn check(&self) -> Result<()> {
        for f in &self.files {
            crate::names::check_file_path(&f.path)?;
            let sum: u64 = f.chunks.iter().map(|c| c.len as u64).sum();
            if sum != f.size {
                return Err(Error::Damaged(format!(
                    "model '{}' version {}: file '{}': chunk lengths sum to {sum} bytes but the file has {} bytes",
                    crate::names::escape(&self.name),
                    self.version,
                    crate::names::escape(&f.path),
                    f.size
                )));
            }
        }
        for (k, v) in &self.metrics {
            crate::names::check_metric_value(k, *v)?;
        }
        for f in &self.files {
            if let Some(t) = f.tensors.iter().find(|t| t.offset.checked_add(t.len).is_none_or(|end| end > f.size)) {
                return Err(Error::Damaged(format!(
                    "model '{}' version {}: file '{}': tensor '{}' lies outside the file",
                    crate::names::escape(&self.name),
                    self.version,
                    crate::names::escape(&f.path),
                    crate::names::escape(&t.name)
                )));
            }
        }
        Ok(())
    }
}

/// Decodes manifest bytes and refuses any encoding other than the canonical one.
///
/// Canonical means: the bytes are exactly the postcard encoding of what they decode to, the
/// manifest version is [`MANIFEST_VERSION`], and every metric is a finite `f64`.
///
/// Errors: [`Error::Damaged`] naming `what`.
pub fn decode_canonical(what: &str, bytes: &[u8]) -> Result<Manifest> {
    let m: Manifest = crate::store::records::decode(what, bytes)?;
    if m.encode() != bytes {
        return Err(Error::Damaged(format!(
            "{what}: manifest is not in canonical encoding: the vault was tampered with"
        )));
    }
    if m.manifest_version != MANIFEST_VERSION {
        return Err(Error::Damaged(format!("{what}: unknown manifest version {}", m.manifest_version)));
    }
    // A NaN or infinite metric has an encoding but no canonical meaning (NaN is not equal to
    // itself, so two decodes of one manifest would differ); no build writes one.
    if let Some((k, v)) = m.metrics.iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::Damaged(format!(
            "{what}: metric '{}' holds {v}, not a finite number: the vault was tampered with",
            crate::names::escape(k)
        )));
    }
    Ok(m)
}

/// Signs canonical manifest bytes.
pub fn sign(signer: &sign::ManifestSigner, canonical: &[u8]) -> [u8; sign::SIGNATURE_LEN] {
    signer.sign_manifest(canonical)
}

/// Lower-case hex of a digest.
pub fn hex(b: &[u8]) -> String {
    sign::hex(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            manifest_version: MANIFEST_VERSION,
            vault_id: [1; 16],
            name: "m".into(),
            version: 1,
            created: 10,
            revision: 0,
            updated: 10,
            description: String::new(),
            tags: BTreeMap::from([("env".into(), "prod".into())]),
            metrics: BTreeMap::from([("acc".into(), 0.5)]),
            files: vec![FileEntry {
                path: "a".into(),
                size: 3,
                sha256: [0; 32],
                chunks: vec![ChunkRef { id: [2; 32], len: 3 }],
                format: "opaque".into(),
                tensors: Vec::new(),
                scan: None,
            }],
        }
    }

    #[test]
    fn canonical_round_trip_and_non_canonical_refused() {
        let m = sample();
        let b = m.encode();
        assert_eq!(decode_canonical("t", &b).unwrap(), m);
        let mut longer = b.clone();
        longer.push(0);
        assert!(decode_canonical("t", &longer).unwrap_err().to_string().contains("canonical"));
    }

    /// Fuzzing (manifest_decode) found a NaN metric accepted as canonical; a decode of it is not
    /// equal to itself. Reproducer: fuzz/regressions/manifest_decode/nan-metric.
    #[test]
    fn non_finite_metrics_are_refused_at_decode() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut m = sample();
            m.metrics.insert("loss".into(), v);
            let err = decode_canonical("record 'm'", &m.encode()).unwrap_err().to_string();
            assert!(err.contains("record 'm': metric 'loss' holds") && err.contains("not a finite number"), "{err}");
        }
        let reproducer = include_bytes!("../fuzz/regressions/manifest_decode/nan-metric");
        let err = decode_canonical("fuzz", reproducer).unwrap_err().to_string();
        assert!(err.contains("not a finite number"), "{err}");
    }

    #[test]
    fn inconsistent_sizes_are_caught() {
        let mut m = sample();
        m.files[0].size = 4;
        assert!(m.check().unwrap_err().to_string().contains("sum to 3 bytes"));
    }
}
