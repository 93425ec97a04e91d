//! GGUF header parser: magic, version, key/value metadata (summarised), tensor
//! infos, alignment and data layout.
//!
//! Spec: <https://github.com/ggml-org/ggml/blob/master/docs/gguf.md> (versions 2
//! and 3, little-endian). Block sizes follow ggml's `ggml_type` table.
//!
//! Limits: every count and length is checked against the bytes remaining before
//! any allocation or loop, so time and memory are O(file size); keys <= 65,535
//! bytes; array nesting depth <= [`MAX_ARRAY_DEPTH`]; tensor rank <= [`MAX_DIMS`];
//! string values are kept only up to [`KEEP_STRING`] bytes and arrays are kept as
//! (element type, count) only.
//! Tensor offsets must be aligned, inside the file and non-overlapping; unknown
//! ggml types are refused. Duplicate keys and tensor names are refused.
//! `general.alignment` must have value type UINT32 (llama.cpp's `gguf_get_val_u32` aborts on
//! any other) and be a power of two of at most [`MAX_ALIGNMENT`]. Tensor dimensions are
//! int64 in llama.cpp: each dimension and their product must be at most `i64::MAX`.
//!
//! This file owns the header, the tensor infos and the data layout; `kv` reads metadata values.
//! Neither may read past the bytes the file has nor allocate what a count merely claims.

use super::tensor::{Bounded, FormatError, TensorInfo, checked_product, esc};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::{Read, Seek};

mod kv;

use kv::{check_alignment, read_string, read_value};

const FMT: &str = "GGUF";
/// Maximum nesting depth of ARRAY metadata values (arrays of arrays); deeper is refused.
pub const MAX_ARRAY_DEPTH: u32 = 8;
/// Maximum tensor rank (`n_dims`) accepted.
pub const MAX_DIMS: u32 = 8;
/// Maximum length in bytes of a metadata key (the spec's limit of 2^16-1) and of a tensor name.
pub const MAX_KEY_LEN: u64 = 65_535;
/// String values longer than this are summarised by length only (value cut).
pub const KEEP_STRING: usize = 1024;
/// Alignment in bytes of the tensor data section and tensor offsets when
/// `general.alignment` is absent (the spec's default).
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Largest `general.alignment` accepted (2^20 bytes = 1 MiB). llama.cpp accepts any power of
/// two in a UINT32; writers use 32 (the default) or a page size, and a larger value only pads
/// the file, so anything above this bound is refused as a malformed header.
pub const MAX_ALIGNMENT: u64 = 1 << 20;

/// Parsed GGUF header.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct GgufHeader {
    /// GGUF format version (2 or 3).
    pub version: u32,
    /// Metadata key/value pairs in file order, values summarised.
    pub kv: Vec<(String, GgufValueSummary)>,
    /// Data alignment in bytes: `general.alignment` if present, else [`DEFAULT_ALIGNMENT`].
    pub alignment: u64,
    /// Absolute offset of the tensor data section.
    pub data_start: u64,
    /// Tensors in offset order; `shape` is row-major (GGUF `ne[]` reversed).
    pub tensors: Vec<TensorInfo>,
}

/// A metadata value: scalars kept, strings kept up to [`KEEP_STRING`] bytes,
/// arrays summarised as element type and count.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum GgufValueSummary {
    /// `GGUF_METADATA_VALUE_TYPE_UINT8` (type 0).
    U8(u8),
    /// `GGUF_METADATA_VALUE_TYPE_INT8` (type 1).
    I8(i8),
    /// `GGUF_METADATA_VALUE_TYPE_UINT16` (type 2).
    U16(u16),
    /// `GGUF_METADATA_VALUE_TYPE_INT16` (type 3).
    I16(i16),
    /// `GGUF_METADATA_VALUE_TYPE_UINT32` (type 4).
    U32(u32),
    /// `GGUF_METADATA_VALUE_TYPE_INT32` (type 5).
    I32(i32),
    /// `GGUF_METADATA_VALUE_TYPE_FLOAT32` (type 6).
    F32(f32),
    /// `GGUF_METADATA_VALUE_TYPE_BOOL` (type 7); any nonzero byte is `true`.
    Bool(bool),
    /// `value` is lossy UTF-8 of at most [`KEEP_STRING`] bytes; `len` is the full length.
    String {
        /// The first [`KEEP_STRING`] bytes (or fewer) of the string, decoded as lossy UTF-8.
        value: String,
        /// Full length of the string in bytes, as written in the file.
        len: u64,
    },
    /// `GGUF_METADATA_VALUE_TYPE_ARRAY` (type 9), kept as element type and count only.
    Array {
        /// Element type name (`"UINT8"`, `"STRING"`, `"ARRAY"` ...).
        elem_type: String,
        /// Number of elements.
        count: u64,
    },
    /// `GGUF_METADATA_VALUE_TYPE_UINT64` (type 10).
    U64(u64),
    /// `GGUF_METADATA_VALUE_TYPE_INT64` (type 11).
    I64(i64),
    /// `GGUF_METADATA_VALUE_TYPE_FLOAT64` (type 12).
    F64(f64),
}

impl GgufValueSummary {
    /// The value as an unsigned integer, if it is a non-negative integer scalar.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::U8(v) => Some(v.into()),
            Self::U16(v) => Some(v.into()),
            Self::U32(v) => Some(v.into()),
            Self::U64(v) => Some(v),
            Self::I8(v) => u64::try_from(v).ok(),
            Self::I16(v) => u64::try_from(v).ok(),
            Self::I32(v) => u64::try_from(v).ok(),
            Self::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
    /// The kept string (at most [`KEEP_STRING`] bytes, lossy UTF-8), if this is a `String`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String { value, .. } => Some(value),
            _ => None,
        }
    }
}

/// ggml type id -> (dtype name, elements per block, bytes per block).
pub fn ggml_type(t: u32) -> Option<(&'static str, u64, u64)> {
    Some(match t {
        0 => ("F32", 1, 4),
        1 => ("F16", 1, 2),
        2 => ("Q4_0", 32, 18),
        3 => ("Q4_1", 32, 20),
        6 => ("Q5_0", 32, 22),
        7 => ("Q5_1", 32, 24),
        8 => ("Q8_0", 32, 34),
        9 => ("Q8_1", 32, 36),
        10 => ("Q2_K", 256, 84),
        11 => ("Q3_K", 256, 110),
        12 => ("Q4_K", 256, 144),
        13 => ("Q5_K", 256, 176),
        14 => ("Q6_K", 256, 210),
        15 => ("Q8_K", 256, 292),
        16 => ("IQ2_XXS", 256, 66),
        17 => ("IQ2_XS", 256, 74),
        18 => ("IQ3_XXS", 256, 98),
        19 => ("IQ1_S", 256, 50),
        20 => ("IQ4_NL", 32, 18),
        21 => ("IQ3_S", 256, 110),
        22 => ("IQ2_S", 256, 82),
        23 => ("IQ4_XS", 256, 136),
        24 => ("I8", 1, 1),
        25 => ("I16", 1, 2),
        26 => ("I32", 1, 4),
        27 => ("I64", 1, 8),
        28 => ("F64", 1, 8),
        29 => ("IQ1_M", 256, 56),
        30 => ("BF16", 1, 2),
        34 => ("TQ1_0", 256, 54),
        35 => ("TQ2_0", 256, 66),
        39 => ("MXFP4", 32, 17),
        _ => return None,
    })
}

/// Minimum encoded size of one KV pair (8-byte key length + 4-byte type + 1-byte value).
const MIN_KV: u64 = 13;
/// Minimum encoded size of one tensor info (name len 8 + n_dims 4 + type 4 + offset 8).
const MIN_TENSOR_INFO: u64 = 24;

/// Parse a GGUF header and validate the tensor data layout. `r` is read from offset 0.
pub fn parse<R: Read + Seek>(r: &mut R, file_len: u64) -> Result<GgufHeader, FormatError> {
    let mut b = Bounded::new(r, file_len)?;
    let (version, n_tensors, n_kv) = read_preamble(&mut b)?;
    let (kv, alignment) = read_kv(&mut b, n_kv)?;
    let raw = read_tensor_infos(&mut b, n_tensors)?;
    let data_start =
        b.pos.div_ceil(alignment).checked_mul(alignment).ok_or_else(|| {
            FormatError::invalid(FMT, format!("data start overflows aligning {} to {alignment}", b.pos))
        })?;
    if n_tensors > 0 && data_start > file_len {
        return Err(FormatError::Truncated {
            what: "tensor data section".into(),
            offset: b.pos,
            need: data_start - b.pos,
            file_len,
        });
    }

    let mut tensors = Vec::with_capacity(raw.len());
    for t in raw {
        tensors.push(place_tensor(t, data_start, alignment, file_len)?);
    }
    tensors.sort_by_key(|t| (t.offset, t.len));
    check_overlap(&tensors)?;
    Ok(GgufHeader { version, kv, alignment, data_start, tensors })
}

/// A tensor info as read: name, `ne[]` (GGUF order), ggml type id, offset relative to the data
/// section.
type RawTensor = (String, Vec<u64>, u32, u64);

/// Reads the magic, the version and the two counts, and checks that the counts fit in the
/// bytes remaining. Returns (version, n_tensors, n_kv).
fn read_preamble<R: Read + Seek>(b: &mut Bounded<R>) -> Result<(u32, u64, u64), FormatError> {
    let mut magic = [0u8; 4];
    b.read_exact(&mut magic, "GGUF magic")?;
    if &magic != b"GGUF" {
        return Err(FormatError::invalid(FMT, format!("bad magic {:02x?}, expected \"GGUF\"", magic)));
    }
    let version = b.u32("GGUF version")?;
    if version != 2 && version != 3 {
        let hint = if version.swap_bytes() <= 3 { " (big-endian file?)" } else { "" };
        return Err(FormatError::invalid(FMT, format!("unsupported version {version}{hint}, supported: 2, 3")));
    }
    let n_tensors = b.u64("n_tensors")?;
    let n_kv = b.u64("n_kv")?;
    let rem = b.remaining();
    let check = |field: &str, count: u64, min_each: u64| {
        if count.checked_mul(min_each).is_none_or(|need| need > rem) {
            Err(FormatError::CountExceedsRemaining { field: field.into(), count, remaining: rem, min_each })
        } else {
            Ok(())
        }
    };
    check("n_kv", n_kv, MIN_KV)?;
    check("n_tensors", n_tensors, MIN_TENSOR_INFO)?;
    // Both products are <= rem (checked above); their sum may still overflow.
    if (n_kv * MIN_KV).checked_add(n_tensors * MIN_TENSOR_INFO).is_none_or(|need| need > rem) {
        return Err(FormatError::CountExceedsRemaining {
            field: format!("n_kv {n_kv} plus n_tensors"),
            count: n_tensors,
            remaining: rem,
            min_each: MIN_TENSOR_INFO,
        });
    }
    Ok((version, n_tensors, n_kv))
}

/// Reads the `n_kv` key/value pairs (already checked against the bytes remaining), refusing a
/// duplicate key. Returns them in file order and the alignment in force.
fn read_kv<R: Read + Seek>(
    b: &mut Bounded<R>,
    n_kv: u64,
) -> Result<(Vec<(String, GgufValueSummary)>, u64), FormatError> {
    let mut kv = Vec::with_capacity(n_kv as usize);
    let mut keys = HashSet::new();
    let mut alignment = DEFAULT_ALIGNMENT;
    for _ in 0..n_kv {
        let key = read_string(b, "key length", MAX_KEY_LEN)?;
        if !keys.insert(key.clone()) {
            return Err(FormatError::Duplicate { what: "key", name: esc(&key), format: FMT });
        }
        let ty_off = b.pos;
        let ty = b.u32("value type")?;
        let value = read_value(b, ty, ty_off, 0)?;
        if key == "general.alignment" {
            alignment = check_alignment(ty, &value)?;
        }
        kv.push((key, value));
    }
    Ok((kv, alignment))
}

/// Reads the `n_tensors` tensor infos (already checked against the bytes remaining), refusing
/// an empty, NUL-holding or duplicate name and a rank above [`MAX_DIMS`].
fn read_tensor_infos<R: Read + Seek>(b: &mut Bounded<R>, n_tensors: u64) -> Result<Vec<RawTensor>, FormatError> {
    let mut names = HashSet::new();
    let mut raw = Vec::with_capacity(n_tensors as usize);
    for _ in 0..n_tensors {
        let name = read_string(b, "tensor name length", MAX_KEY_LEN)?;
        if name.is_empty() || name.contains('\0') {
            return Err(FormatError::invalid(FMT, format!("tensor name '{}' is empty or contains NUL", esc(&name))));
        }
        if !names.insert(name.clone()) {
            return Err(FormatError::Duplicate { what: "tensor name", name: esc(&name), format: FMT });
        }
        let n_dims = b.u32("n_dims")?;
        if n_dims > MAX_DIMS {
            return Err(FormatError::invalid(
                FMT,
                format!("tensor '{}' has n_dims {n_dims} (limit {MAX_DIMS})", esc(&name)),
            ));
        }
        let mut ne = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            ne.push(b.u64("tensor dimension")?);
        }
        let ty = b.u32("tensor type")?;
        let offset = b.u64("tensor offset")?;
        raw.push((name, ne, ty, offset));
    }
    Ok(raw)
}

/// Checks one tensor info against the layout (known ggml type, dimensions within int64, rows
/// a whole number of blocks, aligned offset, inside the file) and returns it placed at its
/// absolute offset, shape row-major.
fn place_tensor(raw: RawTensor, data_start: u64, alignment: u64, file_len: u64) -> Result<TensorInfo, FormatError> {
    let (name, ne, ty, rel) = raw;
    let (dtype, blck, tsize) = ggml_type(ty).ok_or_else(|| FormatError::UnknownDtype {
        dtype: format!("ggml type {ty}"),
        name: esc(&name),
        format: FMT,
    })?;
    let overflow =
        || FormatError::invalid(FMT, format!("dimensions {ne:?} of tensor '{}' overflow u64 byte count", esc(&name)));
    // ggml stores dimensions as int64_t: a value above i64::MAX is negative there.
    if let Some((i, d)) = ne.iter().enumerate().find(|(_, d)| **d > i64::MAX as u64) {
        return Err(FormatError::invalid(
            FMT,
            format!("tensor '{}' dimension {i} is {d}, above the int64 limit {}", esc(&name), i64::MAX),
        ));
    }
    let numel = checked_product(&ne).filter(|n| *n <= i64::MAX as u64).ok_or_else(overflow)?;
    let row = ne.first().copied().unwrap_or(1);
    if row % blck != 0 {
        return Err(FormatError::invalid(
            FMT,
            format!("tensor '{}' row length {row} is not a multiple of the {dtype} block size {blck}", esc(&name)),
        ));
    }
    let len = (numel / blck).checked_mul(tsize).ok_or_else(overflow)?;
    if rel % alignment != 0 {
        return Err(FormatError::invalid(
            FMT,
            format!("tensor '{}' offset {rel} is not a multiple of alignment {alignment}", esc(&name)),
        ));
    }
    let abs = data_start.checked_add(rel).ok_or_else(overflow)?;
    let end = abs.checked_add(len).ok_or_else(overflow)?;
    if end > file_len {
        return Err(FormatError::TensorPastEof { name: esc(&name), end, file_len });
    }
    let shape = ne.into_iter().rev().collect();
    Ok(TensorInfo { name, dtype: dtype.to_string(), shape, offset: abs, len })
}

/// Refuses two tensors (sorted by offset) whose byte ranges overlap.
fn check_overlap(tensors: &[TensorInfo]) -> Result<(), FormatError> {
    for w in tensors.windows(2) {
        if w[1].offset < w[0].offset + w[0].len {
            return Err(FormatError::Overlap {
                name: esc(&w[1].name),
                prev: esc(&w[0].name),
                start: w[1].offset,
                prev_end: w[0].offset + w[0].len,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
