//! `diff`: what changed between two versions (of one model or of two), file by file and, for
//! tensor formats (safetensors, GGUF), tensor by tensor.
//!
//! Owns [`Vault::diff`] and its report types.
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

use std::collections::BTreeMap;

use serde::Serialize;

use super::VersionRef;
use super::tensor_get::{ChunkMap, PieceReader, file_where, is_tensor_format};
use crate::Result;
use crate::formats::safetensors::dtype_bits;
use crate::formats::tensor::TensorInfo;
use crate::manifest::{FileEntry, Manifest, hex};
use crate::names::escape;
use crate::store::{self, CHUNKS};
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

/// How the elements of a dtype are read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    F64,
    F32,
    F16,
    BF16,
    /// Whole-byte elements compared as bytes (ints, bools, 8-bit floats).
    Bytes(usize),
    /// Sub-byte or block-quantized: bytes compared, no element count.
    Opaque,
}

impl Kind {
    fn of(dtype: &str) -> Kind {
        match dtype {
            "F64" => Kind::F64,
            "F32" => Kind::F32,
            "F16" => Kind::F16,
            "BF16" => Kind::BF16,
            d => match dtype_bits(d) {
                Some(bits) if bits % 8 == 0 => Kind::Bytes((bits / 8) as usize),
                _ => Kind::Opaque,
            },
        }
    }

    fn size(self) -> usize {
        match self {
            Kind::F64 => 8,
            Kind::F32 => 4,
            Kind::F16 | Kind::BF16 => 2,
            Kind::Bytes(n) => n.max(1),
            Kind::Opaque => 1,
        }
    }

    fn is_float(self) -> bool {
        matches!(self, Kind::F64 | Kind::F32 | Kind::F16 | Kind::BF16)
    }

    /// Decodes one little-endian element (`e.len() == self.size()`).
    fn decode(self, e: &[u8]) -> f64 {
        match self {
            Kind::F64 => f64::from_le_bytes(e.try_into().unwrap_or([0; 8])),
            Kind::F32 => f32::from_le_bytes(e.try_into().unwrap_or([0; 4])) as f64,
            Kind::F16 => half::f16::from_le_bytes(e.try_into().unwrap_or([0; 2])).to_f64(),
            Kind::BF16 => half::bf16::from_le_bytes(e.try_into().unwrap_or([0; 2])).to_f64(),
            Kind::Bytes(_) | Kind::Opaque => 0.0,
        }
    }
}

/// Running sums over a tensor pair.
#[derive(Default)]
struct Acc {
    changed: u64,
    trailing_differs: bool,
    non_finite: u64,
    finite_pairs: u64,
    max_abs: f64,
    saa: f64,
    sbb: f64,
    sab: f64,
    sdd: f64,
}

impl Acc {
    fn feed(&mut self, kind: Kind, a: &[u8], b: &[u8]) {
        let es = kind.size();
        if a == b {
            if kind.is_float() {
                // Equal elements still count toward the norms.
                for ea in a.chunks_exact(es) {
                    let x = kind.decode(ea);
                    if x.is_finite() {
                        self.finite_pairs += 1;
                        self.saa += x * x;
                        self.sbb += x * x;
                        self.sab += x * x;
                    } else {
                        self.non_finite += 1;
                    }
                }
            }
            return;
        }
        for (ea, eb) in a.chunks_exact(es).zip(b.chunks_exact(es)) {
            if ea != eb {
                self.changed += 1;
            }
            if kind.is_float() {
                let (x, y) = (kind.decode(ea), kind.decode(eb));
                if x.is_finite() && y.is_finite() {
                    let d = y - x;
                    self.finite_pairs += 1;
                    self.max_abs = self.max_abs.max(d.abs());
                    self.saa += x * x;
                    self.sbb += y * y;
                    self.sab += x * y;
                    self.sdd += d * d;
                } else {
                    self.non_finite += 1;
                }
            }
        }
    }

    fn differs(&self) -> bool {
        self.changed > 0 || self.trailing_differs
    }
}

/// `Some(x)` when `x` is finite (JSON has no NaN or infinity).
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// One side of a comparison: a file, its chunk map, and how errors name it.
struct Side<'a> {
    f: &'a FileEntry,
    map: &'a ChunkMap,
    where_: &'a str,
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
        let mut pairs: Vec<(Option<&FileEntry>, Option<&FileEntry>)> = Vec::new();
        if ma.files.len() == 1 && mb.files.len() == 1 {
            pairs.push((Some(&ma.files[0]), Some(&mb.files[0])));
        } else {
            let in_b: BTreeMap<&str, &FileEntry> = mb.files.iter().map(|f| (f.path.as_str(), f)).collect();
            let in_a: BTreeMap<&str, &FileEntry> = ma.files.iter().map(|f| (f.path.as_str(), f)).collect();
            for (p, f) in &in_a {
                pairs.push((Some(f), in_b.get(p).copied()));
            }
            for (p, f) in &in_b {
                if !in_a.contains_key(p) {
                    pairs.push((None, Some(f)));
                }
            }
        }
        let rtx = store::begin_read(&self.db)?;
        let table = rtx.open_table(CHUNKS).ok();
        let mut summary = DiffSummary::default();
        let mut bytes_decrypted = 0u64;
        let mut files = Vec::with_capacity(pairs.len());
        for (fa, fb) in pairs {
            let status = match (fa, fb) {
                (None, _) => FileStatus::Added,
                (_, None) => FileStatus::Removed,
                (Some(a), Some(b)) if a.size == b.size && a.sha256 == b.sha256 => FileStatus::Same,
                _ => FileStatus::Changed,
            };
            match status {
                FileStatus::Added => summary.files_added += 1,
                FileStatus::Removed => summary.files_removed += 1,
                FileStatus::Changed => summary.files_changed += 1,
                FileStatus::Same => summary.files_same += 1,
            }
            let mut tensors = None;
            let mut note = None;
            if let (Some(a), Some(b)) = (fa, fb)
                && is_tensor_format(&a.format)
                && is_tensor_format(&b.format)
            {
                let td = self.diff_tensors(table.as_ref(), (&ma, a), (&mb, b), &mut bytes_decrypted)?;
                summary.tensors_added += td.added.len() as u64;
                summary.tensors_removed += td.removed.len() as u64;
                summary.tensors_reshaped += td.reshaped.len() as u64;
                summary.tensors_dtype_changed += td.dtype_changed.len() as u64;
                summary.tensors_changed += td.changed.len() as u64;
                summary.tensors_same += td.same;
                if status == FileStatus::Changed
                    && td.added.is_empty()
                    && td.removed.is_empty()
                    && td.reshaped.is_empty()
                    && td.dtype_changed.is_empty()
                    && td.changed.is_empty()
                {
                    note = Some(format!("header or metadata only: all {} tensors are byte-identical", td.same));
                }
                tensors = Some(td);
            }
            files.push(FileDiff {
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
            });
        }
        Ok(DiffReport {
            a: format!("{}@{}", ma.name, ma.version),
            b: format!("{}@{}", mb.name, mb.version),
            files,
            summary,
            bytes_decrypted,
        })
    }

    fn diff_tensors(
        &self,
        table: Option<&redb::ReadOnlyTable<&'static [u8; 32], &'static [u8]>>,
        (ma, fa): (&Manifest, &FileEntry),
        (mb, fb): (&Manifest, &FileEntry),
        bytes_decrypted: &mut u64,
    ) -> Result<TensorDiff> {
        let mut td = TensorDiff::default();
        let in_b: BTreeMap<&str, &TensorInfo> = fb.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
        let in_a: BTreeMap<&str, &TensorInfo> = fa.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
        let (map_a, map_b) = (ChunkMap::new(fa), ChunkMap::new(fb));
        let (wa, wb) = (file_where(ma, fa), file_where(mb, fb));
        let side_a = Side { f: fa, map: &map_a, where_: &wa };
        let side_b = Side { f: fb, map: &map_b, where_: &wb };
        for ta in &fa.tensors {
            let Some(tb) = in_b.get(ta.name.as_str()) else {
                td.removed.push(brief(ta));
                continue;
            };
            if ta.dtype != tb.dtype {
                td.dtype_changed.push(TensorRetype {
                    name: ta.name.clone(),
                    dtype_a: ta.dtype.clone(),
                    dtype_b: tb.dtype.clone(),
                    shape_a: ta.shape.clone(),
                    shape_b: tb.shape.clone(),
                });
            } else if ta.shape != tb.shape {
                td.reshaped.push(TensorReshape {
                    name: ta.name.clone(),
                    dtype: ta.dtype.clone(),
                    shape_a: ta.shape.clone(),
                    shape_b: tb.shape.clone(),
                });
            } else {
                match self.compare(table, &side_a, ta, &side_b, tb, bytes_decrypted)? {
                    None => td.same += 1,
                    Some(c) => td.changed.push(c),
                }
            }
        }
        for tb in &fb.tensors {
            if !in_a.contains_key(tb.name.as_str()) {
                td.added.push(brief(tb));
            }
        }
        Ok(td)
    }

    /// Compares two tensors of the same name, dtype and shape: `None` when their bytes are equal.
    fn compare(
        &self,
        table: Option<&redb::ReadOnlyTable<&'static [u8; 32], &'static [u8]>>,
        a: &Side<'_>,
        ta: &TensorInfo,
        b: &Side<'_>,
        tb: &TensorInfo,
        bytes_decrypted: &mut u64,
    ) -> Result<Option<TensorChange>> {
        let change = |note: Option<String>| TensorChange {
            name: ta.name.clone(),
            dtype: ta.dtype.clone(),
            shape: ta.shape.clone(),
            elements_changed: None,
            max_abs_diff: None,
            rel_l2: None,
            cosine: None,
            note,
        };
        if ta.len != tb.len {
            return Ok(Some(change(Some(format!(
                "the tensor index gives {} bytes in A and {} in B for the same dtype and shape",
                ta.len, tb.len
            )))));
        }
        let pa = a.map.pieces(ta.offset, ta.len);
        let pb = b.map.pieces(tb.offset, tb.len);
        let ids_equal = pa.len() == pb.len()
            && pa
                .iter()
                .zip(&pb)
                .all(|(x, y)| a.f.chunks[x.chunk].id == b.f.chunks[y.chunk].id && x.skip == y.skip && x.take == y.take);
        if ids_equal {
            return Ok(None);
        }
        let kind = Kind::of(&ta.dtype);
        let es = kind.size();
        let mut ra = PieceReader::new(self, table, a.f, a.where_, pa);
        let mut rb = PieceReader::new(self, table, b.f, b.where_, pb);
        let (mut ba, mut pos_a) = (Vec::new(), 0usize);
        let (mut bb, mut pos_b) = (Vec::new(), 0usize);
        let mut acc = Acc::default();
        loop {
            refill(&mut ra, &mut ba, &mut pos_a, es, bytes_decrypted)?;
            refill(&mut rb, &mut bb, &mut pos_b, es, bytes_decrypted)?;
            let (left_a, left_b) = (ba.len() - pos_a, bb.len() - pos_b);
            if left_a < es || left_b < es {
                // The end (a whole number of elements), or a ragged tail left by an inconsistent
                // index: compare the tail as bytes.
                if ba[pos_a..] != bb[pos_b..] {
                    acc.trailing_differs = true;
                }
                break;
            }
            let n = left_a.min(left_b) / es * es;
            acc.feed(kind, &ba[pos_a..pos_a + n], &bb[pos_b..pos_b + n]);
            pos_a += n;
            pos_b += n;
        }
        if !acc.differs() {
            return Ok(None);
        }
        let mut c = change(None);
        if kind != Kind::Opaque {
            c.elements_changed = Some(acc.changed);
        }
        if kind.is_float() {
            if acc.finite_pairs > 0 {
                c.max_abs_diff = finite(acc.max_abs);
                if acc.saa > 0.0 {
                    c.rel_l2 = finite(acc.sdd.sqrt() / acc.saa.sqrt());
                }
                if acc.saa > 0.0 && acc.sbb > 0.0 {
                    c.cosine = finite(acc.sab / (acc.saa.sqrt() * acc.sbb.sqrt())).map(|x| x.clamp(-1.0, 1.0));
                }
            }
            if acc.non_finite > 0 {
                c.note = Some(format!(
                    "{} element(s) are NaN or infinite on one side; statistics cover the other {}",
                    acc.non_finite, acc.finite_pairs
                ));
            } else if c.rel_l2.is_none() {
                c.note = Some("A is all zeros: no relative change".into());
            }
        } else {
            c.note = Some(match kind {
                Kind::Opaque => format!("bytes differ; no element statistics for dtype {}", escape(&ta.dtype)),
                _ => format!("no numeric statistics for dtype {} (F32, F16, BF16, F64 only)", escape(&ta.dtype)),
            });
        }
        Ok(Some(c))
    }
}

/// Tops `buf` up (from `pos`) to at least `es` bytes from `r`, dropping consumed bytes; stops
/// short at the end of the stream.
fn refill(
    r: &mut PieceReader<'_>,
    buf: &mut Vec<u8>,
    pos: &mut usize,
    es: usize,
    bytes_decrypted: &mut u64,
) -> Result<()> {
    while buf.len() - *pos < es {
        let Some(next) = r.next_piece()? else {
            return Ok(());
        };
        *bytes_decrypted += next.len() as u64;
        if *pos == buf.len() {
            *buf = next;
        } else {
            buf.drain(..*pos);
            buf.extend_from_slice(&next);
        }
        *pos = 0;
    }
    Ok(())
}

fn brief(t: &TensorInfo) -> TensorBrief {
    TensorBrief { name: t.name.clone(), dtype: t.dtype.clone(), shape: t.shape.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_in_f64() {
        let enc = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let mut acc = Acc::default();
        acc.feed(Kind::F32, &enc(&[1.0, 2.0, 3.0]), &enc(&[1.0, 2.0, 4.0]));
        assert_eq!(acc.changed, 1);
        assert_eq!(acc.max_abs, 1.0);
        assert!((acc.sdd.sqrt() / acc.saa.sqrt() - 1.0 / 14f64.sqrt()).abs() < 1e-12);
        let h = |x: f32| half::f16::from_f32(x).to_le_bytes();
        assert_eq!(Kind::F16.decode(&h(0.5)), 0.5);
        let bf = half::bf16::from_f32(-2.0).to_le_bytes();
        assert_eq!(Kind::BF16.decode(&bf), -2.0);
        // Non-finite values are counted, not folded into the sums.
        let mut acc = Acc::default();
        acc.feed(Kind::F32, &enc(&[f32::NAN, 1.0]), &enc(&[0.0, 1.0]));
        assert_eq!((acc.non_finite, acc.finite_pairs), (1, 1));
        assert_eq!(Kind::of("Q4_0").size(), 1);
        assert!(Kind::of("I64") == Kind::Bytes(8));
        // A short element never panics.
        assert_eq!(Kind::F32.decode(&[1, 2]), 0.0);
    }
}
