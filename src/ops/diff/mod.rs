//! `diff`: what changed between two versions (of one model or of two), file by file and, for
//! tensor formats (safetensors, GGUF), tensor by tensor.
//!
//! Owns [`Vault::diff`] and its report types; `pairing` pairs files and tensors, and
//! `statistics` reads and compares the tensors that may have changed.
//!
//! - Files are paired by path; when each version has exactly one file, those two are paired
//!   whatever their names. A file is `same` when size and SHA-256 agree, else `changed`;
//!   unpaired files are `added` or `removed`.
//! - Within a pair of tensor-format files, tensors are matched by name: `added`, `removed`,
//!   `reshaped` (same dtype, other shape), `dtype_changed` (other dtype, whatever the shape),
//!   and for the rest (same name, dtype and shape) `same` or `changed`.
//! - Same-or-changed is first decided from the signed manifests: a tensor whose chunks have the
//!   same ids (keyed BLAKE3 of the plaintext) is identical and nothing is decrypted. Otherwise
//!   both tensors are decrypted and compared chunk by chunk, never whole: at most one chunk of
//!   each side (about 1 MiB) is in memory, so tensor size does not matter.
//! - For changed F32, F16, BF16 and F64 tensors, computed in f64 over elements finite on both
//!   sides: the maximum absolute difference `max|b − a|`, the relative L2 change
//!   `‖b − a‖₂ / ‖a‖₂`, and the cosine similarity `⟨a, b⟩ / (‖a‖₂ ‖b‖₂)`. F16 and BF16 are
//!   decoded with the `half` crate (IEEE 754-2008 binary16; bfloat16). Other dtypes get the
//!   count of changed elements (or only "bytes differ" for sub-byte and quantized types).

mod pairing;
mod statistics;

use serde::Serialize;

use super::VersionRef;
use super::tensor_get::is_tensor_format;
use crate::Result;
use crate::manifest::{FileEntry, hex};
use crate::store;
use crate::vault::{Unlocked, Vault};

/// The differences between two versions.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    /// The first version, `NAME@N`.
    pub a: String,
    /// The second version, `NAME@N`.
    pub b: String,
    /// One entry per file of either version: pairs first (in A's path order), then added files.
    pub files: Vec<FileDiff>,
    /// Counts over every file.
    pub summary: DiffSummary,
    /// Plaintext bytes decrypted to compare tensors whose chunk ids differed (both sides).
    pub bytes_decrypted: u64,
}

/// Counts of a [`DiffReport`].
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct DiffSummary {
    /// Files only in B.
    pub files_added: u64,
    /// Files only in A.
    pub files_removed: u64,
    /// Paired files whose content differs.
    pub files_changed: u64,
    /// Paired files with the same size and SHA-256.
    pub files_same: u64,
    /// Tensors only in B's file.
    pub tensors_added: u64,
    /// Tensors only in A's file.
    pub tensors_removed: u64,
    /// Same name and dtype, other shape.
    pub tensors_reshaped: u64,
    /// Same name, other dtype.
    pub tensors_dtype_changed: u64,
    /// Same name, dtype and shape, other bytes.
    pub tensors_changed: u64,
    /// Same name, dtype, shape and bytes.
    pub tensors_same: u64,
}

/// How a file differs.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    /// Only in B.
    Added,
    /// Only in A.
    Removed,
    /// In both, content differs.
    Changed,
    /// In both, same size and SHA-256.
    Same,
}

/// One file's differences. `*_a` fields are `None` for an added file, `*_b` for a removed one.
#[derive(Debug, Clone, Serialize)]
pub struct FileDiff {
    /// Path in A.
    pub path_a: Option<String>,
    /// Path in B (differs from `path_a` only when single files were paired).
    pub path_b: Option<String>,
    /// Added, removed, changed or same.
    pub status: FileStatus,
    /// Size in A, bytes.
    pub size_a: Option<u64>,
    /// Size in B, bytes.
    pub size_b: Option<u64>,
    /// SHA-256 in A, hex.
    pub sha256_a: Option<String>,
    /// SHA-256 in B, hex.
    pub sha256_b: Option<String>,
    /// Format in A.
    pub format_a: Option<String>,
    /// Format in B.
    pub format_b: Option<String>,
    /// Tensor differences, when both files are tensor formats.
    pub tensors: Option<TensorDiff>,
    /// A one-line remark, e.g. that only the header or metadata changed.
    pub note: Option<String>,
}

/// Tensor differences within one pair of files.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TensorDiff {
    /// Only in B, in B's file order.
    pub added: Vec<TensorBrief>,
    /// Only in A, in A's file order.
    pub removed: Vec<TensorBrief>,
    /// Same name and dtype, other shape.
    pub reshaped: Vec<TensorReshape>,
    /// Same name, other dtype.
    pub dtype_changed: Vec<TensorRetype>,
    /// Same name, dtype and shape, other bytes.
    pub changed: Vec<TensorChange>,
    /// Number of tensors with the same name, dtype, shape and bytes.
    pub same: u64,
}

/// A tensor's name, dtype and shape.
#[derive(Debug, Clone, Serialize)]
pub struct TensorBrief {
    /// Name.
    pub name: String,
    /// dtype.
    pub dtype: String,
    /// Row-major shape.
    pub shape: Vec<u64>,
}

/// A tensor whose shape changed (dtype unchanged).
#[derive(Debug, Clone, Serialize)]
pub struct TensorReshape {
    /// Name.
    pub name: String,
    /// dtype (both sides).
    pub dtype: String,
    /// Shape in A.
    pub shape_a: Vec<u64>,
    /// Shape in B.
    pub shape_b: Vec<u64>,
}

/// A tensor whose dtype changed (the shape may have changed too).
#[derive(Debug, Clone, Serialize)]
pub struct TensorRetype {
    /// Name.
    pub name: String,
    /// dtype in A.
    pub dtype_a: String,
    /// dtype in B.
    pub dtype_b: String,
    /// Shape in A.
    pub shape_a: Vec<u64>,
    /// Shape in B.
    pub shape_b: Vec<u64>,
}

/// A tensor with the same name, dtype and shape whose bytes differ.
#[derive(Debug, Clone, Serialize)]
pub struct TensorChange {
    /// Name.
    pub name: String,
    /// dtype.
    pub dtype: String,
    /// Row-major shape.
    pub shape: Vec<u64>,
    /// Elements whose bytes differ (`None` for sub-byte and quantized dtypes).
    pub elements_changed: Option<u64>,
    /// `max|b − a|` over elements finite on both sides (float dtypes only).
    pub max_abs_diff: Option<f64>,
    /// `‖b − a‖₂ / ‖a‖₂` (float dtypes; `None` when `a` is all zeros).
    pub rel_l2: Option<f64>,
    /// `⟨a, b⟩ / (‖a‖₂ ‖b‖₂)` (float dtypes; `None` when either side is all zeros).
    pub cosine: Option<f64>,
    /// A one-line remark (non-finite elements, no statistics for this dtype, ...).
    pub note: Option<String>,
}

impl DiffSummary {
    /// Counts a file of `status`.
    fn add_file(&mut self, status: FileStatus) {
        match status {
            FileStatus::Added => self.files_added += 1,
            FileStatus::Removed => self.files_removed += 1,
            FileStatus::Changed => self.files_changed += 1,
            FileStatus::Same => self.files_same += 1,
        }
    }

    /// Counts the tensors of `td`.
    fn add_tensors(&mut self, td: &TensorDiff) {
        self.tensors_added += td.added.len() as u64;
        self.tensors_removed += td.removed.len() as u64;
        self.tensors_reshaped += td.reshaped.len() as u64;
        self.tensors_dtype_changed += td.dtype_changed.len() as u64;
        self.tensors_changed += td.changed.len() as u64;
        self.tensors_same += td.same;
    }
}

impl TensorDiff {
    /// True when every paired tensor is byte-identical and none was added or removed.
    fn all_same(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.reshaped.is_empty()
            && self.dtype_changed.is_empty()
            && self.changed.is_empty()
    }
}

impl FileDiff {
    /// The entry of a pair of `status`, with its tensor differences and note.
    fn new(
        (fa, fb): pairing::FilePair<'_>,
        status: FileStatus,
        tensors: Option<TensorDiff>,
        note: Option<String>,
    ) -> FileDiff {
        FileDiff {
            path_a: fa.map(|f| f.path.clone()),
            path_b: fb.map(|f| f.path.clone()),
            status,
            size_a: fa.map(|f| f.size),
            size_b: fb.map(|f| f.size),
            sha256_a: fa.map(|f| hex(&f.sha256)),
            sha256_b: fb.map(|f| hex(&f.sha256)),
            format_a: fa.map(|f| f.format.clone()),
            format_b: fb.map(|f| f.format.clone()),
            tensors,
            note,
        }
    }
}

/// True when both files of a pair are tensor formats (their tensors are then compared).
fn both_tensor_files(a: &FileEntry, b: &FileEntry) -> bool {
    is_tensor_format(&a.format) && is_tensor_format(&b.format)
}

impl Vault<Unlocked> {
    /// Compares `a_name@a_ref` (A) with `b_name@b_ref` (B): files added, removed and changed
    /// (by SHA-256), and for pairs of safetensors/GGUF files the tensors added, removed,
    /// reshaped, changed in dtype and changed in value, with statistics for float tensors (see
    /// the module documentation). Decrypts only tensors whose chunk ids differ, one chunk of each
    /// side at a time.
    ///
    /// Errors: [`crate::Error::ModelNotFound`], [`crate::Error::VersionNotFound`],
    /// [`crate::Error::BadSignature`], [`crate::Error::Damaged`] (a chunk of a compared tensor missing or failing authentication).
    pub fn diff(&self, a_name: &str, a_ref: &VersionRef, b_name: &str, b_ref: &VersionRef) -> Result<DiffReport> {
        let ma = self.manifest(a_name, a_ref)?;
        let mb = self.manifest(b_name, b_ref)?;
        let chunks = store::read(&self.db)?;
        let src = statistics::Source { chunks: &chunks, env: self.envelope() };
        let mut summary = DiffSummary::default();
        let mut bytes_decrypted = 0u64;
        let pairs = pairing::pair_files(&ma, &mb);
        let mut files = Vec::with_capacity(pairs.len());
        for pair in pairs {
            let status = pairing::file_status(pair);
            summary.add_file(status);
            let (mut tensors, mut note) = (None, None);
            if let (Some(a), Some(b)) = pair
                && both_tensor_files(a, b)
            {
                let td = pairing::diff_tensors(&src, (&ma, a), (&mb, b), &mut bytes_decrypted)?;
                summary.add_tensors(&td);
                if status == FileStatus::Changed && td.all_same() {
                    note = Some(format!("header or metadata only: all {} tensors are byte-identical", td.same));
                }
                tensors = Some(td);
            }
            files.push(FileDiff::new(pair, status, tensors, note));
        }
        Ok(DiffReport {
            a: format!("{}@{}", ma.name, ma.version),
            b: format!("{}@{}", mb.name, mb.version),
            files,
            summary,
            bytes_decrypted,
        })
    }
}
