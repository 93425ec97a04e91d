//! `inspect`: what a version holds, tensor by tensor, read from the signed manifest alone.
//!
//! Owns [`Vault::inspect`] and its report types. Nothing here decrypts a chunk: every figure
//! comes from the manifest's tensor index (recorded at `put` by [`crate::formats::analyze`]),
//! so inspecting a 70 GB model costs one manifest read. Parameter counts are the product of a
//! tensor's shape (a scalar, shape `[]`, has one); sums saturate at `u64::MAX` rather than wrap.

use std::collections::BTreeMap;

use serde::Serialize;

use super::VersionRef;
use crate::Result;
use crate::formats::tensor::TensorInfo;
use crate::manifest::{ScanRecord, hex};
use crate::vault::{Unlocked, Vault};

/// One version, inspected: files, tensors, totals per dtype and the parameter count.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// Model name.
    pub name: String,
    /// Version number.
    pub version: u64,
    /// Files in path order.
    pub files: Vec<FileInspection>,
    /// Totals per dtype over every file, in dtype-name order.
    pub dtypes: Vec<DtypeTotal>,
    /// Number of tensors over every file.
    pub tensors: u64,
    /// The model's parameter count: elements over every tensor of every file (saturating).
    pub params: u64,
    /// Bytes of tensor data over every file (headers and padding excluded; saturating).
    pub tensor_bytes: u64,
    /// Bytes of every file.
    pub size_bytes: u64,
}

/// One file of an inspected version.
#[derive(Debug, Clone, Serialize)]
pub struct FileInspection {
    /// `/`-separated path inside the model.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the file, lower-case hex.
    pub sha256: String,
    /// Detected format ([`crate::formats::format_name`]): `safetensors`, `gguf-v3`, `onnx`, ...
    pub format: String,
    /// The pickle scan verdict: `clean`, `dangerous`, `unscannable`, or `not-applicable` for
    /// formats that cannot carry a pickle. A non-clean verdict was stored only with
    /// `--allow-unsafe-pickle` (see `scan.allowed_unsafe`).
    pub scan_verdict: String,
    /// The recorded scan (findings, whether it was allowed), when there is one.
    pub scan: Option<ScanRecord>,
    /// Tensors in file (data offset) order; empty for formats without a tensor index.
    pub tensors: Vec<TensorRow>,
    /// Elements over this file's tensors (saturating).
    pub params: u64,
}

/// One tensor, as `inspect` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TensorRow {
    /// Name exactly as in the file (display it with [`crate::names::escape`]).
    pub name: String,
    /// dtype, safetensors spelling where one exists (`F32`, `BF16`, `Q4_0`, ...).
    pub dtype: String,
    /// Row-major shape.
    pub shape: Vec<u64>,
    /// Elements: the product of `shape` (`u64::MAX` if it overflows).
    pub params: u64,
    /// Bytes of data.
    pub bytes: u64,
    /// Absolute byte offset of the data in the file.
    pub offset: u64,
}

/// Totals for one dtype.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DtypeTotal {
    /// The dtype.
    pub dtype: String,
    /// Number of tensors.
    pub tensors: u64,
    /// Elements (saturating).
    pub params: u64,
    /// Bytes of data (saturating).
    pub bytes: u64,
}

impl TensorRow {
    fn from_info(t: &TensorInfo) -> TensorRow {
        TensorRow {
            name: t.name.clone(),
            dtype: t.dtype.clone(),
            shape: t.shape.clone(),
            params: t.param_count().unwrap_or(u64::MAX),
            bytes: t.len,
            offset: t.offset,
        }
    }
}

impl Vault<Unlocked> {
    /// Inspects `name@r` from its verified manifest only (no chunk is read or decrypted):
    /// files with format, SHA-256 and pickle verdict; tensors with dtype, shape, parameter count
    /// and bytes; totals per dtype; the model's parameter count.
    ///
    /// Errors: [`crate::Error::ModelNotFound`], [`crate::Error::VersionNotFound`],
    /// [`crate::Error::Damaged`], [`crate::Error::BadSignature`] (as [`Vault::manifest`]).
    pub fn inspect(&self, name: &str, r: &VersionRef) -> Result<Inspection> {
        let m = self.manifest(name, r)?;
        let mut by_dtype: BTreeMap<String, DtypeTotal> = BTreeMap::new();
        let mut files = Vec::with_capacity(m.files.len());
        let (mut tensors, mut params, mut tensor_bytes) = (0u64, 0u64, 0u64);
        for f in &m.files {
            let rows: Vec<TensorRow> = f.tensors.iter().map(TensorRow::from_info).collect();
            let mut file_params = 0u64;
            for t in &rows {
                let d = by_dtype.entry(t.dtype.clone()).or_insert_with(|| DtypeTotal {
                    dtype: t.dtype.clone(),
                    tensors: 0,
                    params: 0,
                    bytes: 0,
                });
                d.tensors += 1;
                d.params = d.params.saturating_add(t.params);
                d.bytes = d.bytes.saturating_add(t.bytes);
                file_params = file_params.saturating_add(t.params);
                tensor_bytes = tensor_bytes.saturating_add(t.bytes);
            }
            tensors += rows.len() as u64;
            params = params.saturating_add(file_params);
            files.push(FileInspection {
                path: f.path.clone(),
                size: f.size,
                sha256: hex(&f.sha256),
                format: f.format.clone(),
                scan_verdict: f.scan.as_ref().map_or_else(|| "not-applicable".to_string(), |s| s.verdict.clone()),
                scan: f.scan.clone(),
                tensors: rows,
                params: file_params,
            });
        }
        Ok(Inspection {
            name: m.name.clone(),
            version: m.version,
            files,
            dtypes: by_dtype.into_values().collect(),
            tensors,
            params,
            tensor_bytes,
            size_bytes: m.total_size(),
        })
    }
}
