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

use super::tensor::{Bounded, FormatError, TensorInfo, checked_product, esc};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::{Read, Seek};

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

/// Name of a GGUF metadata value type.
fn value_type_name(t: u32) -> Option<&'static str> {
    Some(match t {
        0 => "UINT8",
        1 => "INT8",
        2 => "UINT16",
        3 => "INT16",
        4 => "UINT32",
        5 => "INT32",
        6 => "FLOAT32",
        7 => "BOOL",
        8 => "STRING",
        9 => "ARRAY",
        10 => "UINT64",
        11 => "INT64",
        12 => "FLOAT64",
        _ => return None,
    })
}

/// Fixed size of a scalar value type (None for STRING/ARRAY/unknown).
fn scalar_size(t: u32) -> Option<u64> {
    Some(match t {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        _ => return None,
    })
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

    let mut kv = Vec::with_capacity(n_kv as usize);
    let mut keys = HashSet::new();
    let mut alignment = DEFAULT_ALIGNMENT;
    for _ in 0..n_kv {
        let key = read_string(&mut b, "key length", MAX_KEY_LEN)?;
        if !keys.insert(key.clone()) {
            return Err(FormatError::Duplicate { what: "key", name: esc(&key), format: FMT });
        }
        let ty_off = b.pos;
        let ty = b.u32("value type")?;
        let value = read_value(&mut b, ty, ty_off, 0)?;
        if key == "general.alignment" {
            alignment = check_alignment(ty, &value)?;
        }
        kv.push((key, value));
    }

    let mut names = HashSet::new();
    let mut raw = Vec::with_capacity(n_tensors as usize);
    for _ in 0..n_tensors {
        let name = read_string(&mut b, "tensor name length", MAX_KEY_LEN)?;
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
    for (name, ne, ty, rel) in raw {
        let (dtype, blck, tsize) = ggml_type(ty).ok_or_else(|| FormatError::UnknownDtype {
            dtype: format!("ggml type {ty}"),
            name: esc(&name),
            format: FMT,
        })?;
        let overflow = || {
            FormatError::invalid(FMT, format!("dimensions {ne:?} of tensor '{}' overflow u64 byte count", esc(&name)))
        };
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
        tensors.push(TensorInfo { name, dtype: dtype.to_string(), shape, offset: abs, len });
    }
    tensors.sort_by_key(|t| (t.offset, t.len));
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
    Ok(GgufHeader { version, kv, alignment, data_start, tensors })
}

/// Validates `general.alignment` (value type `ty`, value `value`) as llama.cpp reads it
/// (`gguf_get_val_u32`): a UINT32 that is a nonzero power of two, here also at most
/// [`MAX_ALIGNMENT`]. Returns the alignment in bytes; each violation has its own message
/// naming the field.
fn check_alignment(ty: u32, value: &GgufValueSummary) -> Result<u64, FormatError> {
    const FIELD: &str = "general.alignment";
    let GgufValueSummary::U32(a) = *value else {
        let name = value_type_name(ty).unwrap_or("unknown");
        return Err(FormatError::invalid(
            FMT,
            format!("{FIELD} has value type {name} ({ty}); it must be UINT32 (4), as llama.cpp reads it"),
        ));
    };
    let a = u64::from(a);
    if a == 0 {
        return Err(FormatError::invalid(FMT, format!("{FIELD} is 0; it must be a nonzero power of two")));
    }
    if !a.is_power_of_two() {
        return Err(FormatError::invalid(FMT, format!("{FIELD} {a} is not a power of two")));
    }
    if a > MAX_ALIGNMENT {
        return Err(FormatError::invalid(
            FMT,
            format!("{FIELD} {a} exceeds the limit of {MAX_ALIGNMENT} bytes (2^20) that this vault accepts"),
        ));
    }
    Ok(a)
}

/// Read a u64-length-prefixed UTF-8 string of at most `cap` bytes.
fn read_string<R: Read + Seek>(b: &mut Bounded<R>, what: &str, cap: u64) -> Result<String, FormatError> {
    let off = b.pos;
    let len = b.u64(what)?;
    if len > b.remaining() {
        return Err(FormatError::LengthExceedsRemaining {
            what: what.replace(" length", "") + " length",
            len,
            remaining: b.remaining(),
            offset: off,
        });
    }
    if len > cap {
        return Err(FormatError::invalid(FMT, format!("{what} {len} at offset 0x{off:x} exceeds limit {cap}")));
    }
    let bytes = b.bytes(len, what, off)?;
    String::from_utf8(bytes).map_err(|e| {
        FormatError::invalid(
            FMT,
            format!("invalid UTF-8 in string at byte {}", off + 8 + e.utf8_error().valid_up_to() as u64),
        )
    })
}

/// Read one value of type `ty` (type field at `ty_off`), summarising arrays.
fn read_value<R: Read + Seek>(
    b: &mut Bounded<R>,
    ty: u32,
    ty_off: u64,
    depth: u32,
) -> Result<GgufValueSummary, FormatError> {
    use GgufValueSummary as V;
    Ok(match ty {
        0 => V::U8(b.u8("UINT8 value")?),
        1 => V::I8(b.u8("INT8 value")? as i8),
        2 => V::U16(b.u16("UINT16 value")?),
        3 => V::I16(b.u16("INT16 value")? as i16),
        4 => V::U32(b.u32("UINT32 value")?),
        5 => V::I32(b.u32("INT32 value")? as i32),
        6 => V::F32(f32::from_bits(b.u32("FLOAT32 value")?)),
        7 => V::Bool(b.u8("BOOL value")? != 0),
        10 => V::U64(b.u64("UINT64 value")?),
        11 => V::I64(b.u64("INT64 value")? as i64),
        12 => V::F64(f64::from_bits(b.u64("FLOAT64 value")?)),
        8 => {
            let off = b.pos;
            let len = b.u64("string length")?;
            let keep = len.min(KEEP_STRING as u64);
            if len > b.remaining() {
                return Err(FormatError::LengthExceedsRemaining {
                    what: "string length".into(),
                    len,
                    remaining: b.remaining(),
                    offset: off,
                });
            }
            let bytes = b.bytes(keep, "string value", off)?;
            b.skip(len - keep, "string length", off)?;
            V::String { value: String::from_utf8_lossy(&bytes).into_owned(), len }
        }
        9 => {
            if depth >= MAX_ARRAY_DEPTH {
                return Err(FormatError::invalid(
                    FMT,
                    format!("array nesting deeper than {MAX_ARRAY_DEPTH} at offset 0x{ty_off:x}"),
                ));
            }
            let et_off = b.pos;
            let et = b.u32("array element type")?;
            let count_off = b.pos;
            let count = b.u64("array count")?;
            let et_name = value_type_name(et).ok_or_else(|| {
                FormatError::invalid(FMT, format!("unknown array element type {et} at offset 0x{et_off:x}"))
            })?;
            let rem = b.remaining();
            let (min_each, elem) = match scalar_size(et) {
                Some(s) => (s, format!("{s}-byte")),
                None if et == 8 => (8, "string (at least 8-byte)".to_string()),
                None => (12, "array (at least 12-byte)".to_string()),
            };
            if count.checked_mul(min_each).is_none_or(|n| n > rem) {
                return Err(FormatError::ArrayExceedsRemaining { count, elem, remaining: rem, offset: count_off });
            }
            match scalar_size(et) {
                Some(s) => b.skip(count * s, "array data length", count_off)?,
                None => {
                    for _ in 0..count {
                        // Each iteration consumes >= 8 bytes, so this loop is O(file size).
                        read_value(b, et, et_off, depth + 1)?;
                    }
                }
            }
            V::Array { elem_type: et_name.to_string(), count }
        }
        _ => {
            return Err(FormatError::invalid(FMT, format!("unknown value type {ty} at offset 0x{ty_off:x}")));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::tensor::test_util::read;
    use std::io::Cursor;

    fn parse_bytes(b: &[u8]) -> Result<GgufHeader, FormatError> {
        parse(&mut Cursor::new(b), b.len() as u64)
    }
    fn err(rel: &str) -> String {
        let t = std::time::Instant::now();
        let e = parse_bytes(&read(rel)).expect_err(rel).to_string();
        assert!(t.elapsed().as_millis() < 200, "{rel} took {:?}", t.elapsed());
        assert!(!e.contains('\n'), "{e}");
        e
    }

    #[test]
    fn vocab_files_have_no_tensors() {
        for f in ["ggml-vocab-bert-bge.gguf", "ggml-vocab-phi-3.gguf", "ggml-vocab-gpt-2.gguf"] {
            let h = parse_bytes(&read(&format!("gguf/{f}"))).unwrap();
            assert_eq!(h.version, 3, "{f}");
            assert!(h.tensors.is_empty(), "{f}");
            let tokens = h.kv.iter().find(|(k, _)| k == "tokenizer.ggml.tokens").map(|(_, v)| v.clone());
            match tokens {
                Some(GgufValueSummary::Array { elem_type, count }) => {
                    assert_eq!(elem_type, "STRING");
                    assert!(count > 10_000, "{f}: {count}");
                }
                other => panic!("{f}: tokens {other:?}"),
            }
        }
    }

    #[test]
    fn silero_f32_matches_safetensors() {
        let g = parse_bytes(&read("gguf/silero_vad_16k.from-safetensors.f32.gguf")).unwrap();
        assert_eq!(g.tensors.len(), 15);
        assert!(g.tensors.iter().all(|t| t.dtype == "F32"));
        let arch = g.kv.iter().find(|(k, _)| k == "general.architecture").unwrap();
        assert_eq!(arch.1.as_str(), Some("silero-vad"));
        assert_eq!(g.alignment, 32);
        let st_bytes = read("safetensors/silero_vad_16k.safetensors");
        let st = crate::formats::safetensors::parse(&mut Cursor::new(&st_bytes), st_bytes.len() as u64).unwrap();
        let g_bytes = read("gguf/silero_vad_16k.from-safetensors.f32.gguf");
        for t in &g.tensors {
            let s = st.tensors.iter().find(|s| s.name == t.name).unwrap_or_else(|| panic!("{}", t.name));
            assert_eq!(s.len, t.len, "{}", t.name);
            assert_eq!(s.param_count(), t.param_count(), "{}", t.name);
            let (a, b) = (s.offset as usize, t.offset as usize);
            assert_eq!(st_bytes[a..a + s.len as usize], g_bytes[b..b + t.len as usize], "{}", t.name);
        }
        assert!(g.tensors.iter().all(|t| t.offset % 32 == 0));
        let f16 = parse_bytes(&read("gguf/silero_vad_16k.from-safetensors.f16.gguf")).unwrap();
        assert_eq!(f16.tensors.len(), 15);
        for t in &f16.tensors {
            let f = g.tensors.iter().find(|x| x.name == t.name).unwrap();
            assert_eq!(t.dtype, "F16");
            assert_eq!(t.shape, f.shape);
            assert_eq!(t.len * 2, f.len);
        }
    }

    #[test]
    fn bug_log_b05_b06() {
        let e = err("malformed/B05a_gguf_string_len_2pow62.gguf");
        assert!(e.contains("string length 4611686018427387904 exceeds remaining 4 bytes at offset 0x"), "{e}");
        let e = err("malformed/B05b_gguf_key_len_2pow63.gguf");
        assert!(e.contains("key length 9223372036854775807 exceeds remaining 12 bytes at offset 0x"), "{e}");
        let e = err("malformed/B06a_gguf_array_count_2pow63.gguf");
        assert!(e.contains("array of 9223372036854775808 x 1-byte elements exceeds remaining 3 bytes"), "{e}");
        let e = err("malformed/B06b_gguf_n_kv_2pow63.gguf");
        assert!(e.contains("n_kv 9223372036854775808 exceeds what 0 remaining bytes can hold"), "{e}");
        let e = err("malformed/B06c_gguf_n_tensors_2pow63.gguf");
        assert!(e.contains("n_tensors 9223372036854775808 exceeds what 0 remaining bytes can hold"), "{e}");
        let e = err("malformed/derived_truncated_ggml-vocab-bert-bge.first64KiB.gguf");
        assert!(e.contains("truncated"), "{e}");
    }

    /// Build a GGUF v3 file from KV bytes and tensor-info bytes.
    fn build(n_tensors: u64, n_kv: u64, body: &[u8], pad_to: usize) -> Vec<u8> {
        let mut v = b"GGUF".to_vec();
        v.extend(3u32.to_le_bytes());
        v.extend(n_tensors.to_le_bytes());
        v.extend(n_kv.to_le_bytes());
        v.extend_from_slice(body);
        v.resize(v.len().max(pad_to), 0);
        v
    }
    fn gstr(s: &str) -> Vec<u8> {
        let mut v = (s.len() as u64).to_le_bytes().to_vec();
        v.extend(s.as_bytes());
        v
    }
    fn tinfo(name: &str, ne: &[u64], ty: u32, off: u64) -> Vec<u8> {
        let mut v = gstr(name);
        v.extend((ne.len() as u32).to_le_bytes());
        for d in ne {
            v.extend(d.to_le_bytes());
        }
        v.extend(ty.to_le_bytes());
        v.extend(off.to_le_bytes());
        v
    }

    #[test]
    fn synthetic_layouts() {
        // Q4_0 tensor 64x2 -> 2 blocks per row x 2 rows x 18 bytes = 72 bytes; shape reversed.
        let body = [tinfo("a", &[64, 2], 2, 0), tinfo("b", &[4], 0, 96)].concat();
        let h = parse_bytes(&build(2, 0, &body, 256)).unwrap();
        assert_eq!(h.tensors[0].shape, vec![2, 64]);
        assert_eq!(h.tensors[0].len, 72);
        assert_eq!(h.tensors[0].dtype, "Q4_0");
        assert_eq!(h.tensors[1].offset, h.data_start + 96);
        let overlap = [tinfo("a", &[64, 2], 2, 0), tinfo("b", &[4], 0, 64)].concat();
        assert!(parse_bytes(&build(2, 0, &overlap, 256)).unwrap_err().to_string().contains("overlaps"));
        let unaligned = tinfo("a", &[4], 0, 4);
        assert!(parse_bytes(&build(1, 0, &unaligned, 256)).unwrap_err().to_string().contains("alignment"));
        let scalar_q = tinfo("a", &[], 2, 0);
        assert!(parse_bytes(&build(1, 0, &scalar_q, 256)).unwrap_err().to_string().contains("block size 32"));
        let unknown = tinfo("a", &[4], 4, 0);
        assert!(parse_bytes(&build(1, 0, &unknown, 256)).unwrap_err().to_string().contains("ggml type 4"));
        let past = tinfo("a", &[1000], 0, 0);
        let e = parse_bytes(&build(1, 0, &past, 256)).unwrap_err().to_string();
        assert!(e.contains("file truncated: tensor 'a' ends at byte"), "{e}");
        let overflow = tinfo("a", &[1 << 32, 1 << 32, 4], 0, 0);
        assert!(parse_bytes(&build(1, 0, &overflow, 256)).unwrap_err().to_string().contains("overflow"));
        let dup = [tinfo("a", &[4], 0, 0), tinfo("a", &[4], 0, 32)].concat();
        assert!(parse_bytes(&build(2, 0, &dup, 256)).unwrap_err().to_string().contains("duplicate tensor name 'a'"));
        // Bad alignment value (3), and a valid one (64).
        let kv = [gstr("general.alignment"), 4u32.to_le_bytes().to_vec(), 3u32.to_le_bytes().to_vec()].concat();
        assert!(parse_bytes(&build(0, 1, &kv, 0)).unwrap_err().to_string().contains("power of two"));
        let kv = [gstr("general.alignment"), 4u32.to_le_bytes().to_vec(), 64u32.to_le_bytes().to_vec()].concat();
        assert_eq!(parse_bytes(&build(0, 1, &kv, 0)).unwrap().alignment, 64);
        // A dimension above i64::MAX (negative in ggml), even where the product is 0.
        let neg = tinfo("a", &[1 << 63, 0], 0, 0);
        let e = parse_bytes(&build(1, 0, &neg, 256)).unwrap_err().to_string();
        assert!(e.contains("tensor 'a' dimension 0 is 9223372036854775808, above the int64 limit"), "{e}");
        // Nested arrays beyond the depth cap.
        let mut nested = gstr("k");
        nested.extend(9u32.to_le_bytes());
        for _ in 0..20 {
            nested.extend(9u32.to_le_bytes());
            nested.extend(1u64.to_le_bytes());
        }
        let e = parse_bytes(&build(0, 1, &nested, 400)).unwrap_err().to_string();
        assert!(e.contains("nesting deeper than 8"), "{e}");
        // Big-endian / unsupported versions.
        let mut be = build(0, 0, &[], 0);
        be[4..8].copy_from_slice(&3u32.to_be_bytes());
        assert!(parse_bytes(&be).unwrap_err().to_string().contains("big-endian"));
    }

    #[test]
    fn every_prefix_of_a_real_file_errors_without_panic() {
        let full = read("gguf/silero_vad_16k.from-safetensors.f16.gguf");
        let h = parse_bytes(&full).unwrap();
        for cut in (0..h.data_start as usize + 64).step_by(7) {
            assert!(parse_bytes(&full[..cut]).is_err(), "prefix {cut}");
        }
    }

    /// One `general.alignment` KV of value type `ty` with the raw value bytes `v`, then one
    /// F32 tensor of 8 elements at offset 0, and 64 bytes of data.
    fn with_alignment(ty: u32, v: &[u8]) -> Vec<u8> {
        let body = [gstr("general.alignment"), ty.to_le_bytes().to_vec(), v.to_vec(), tinfo("t", &[8], 0, 0)].concat();
        build(1, 1, &body, 0).into_iter().chain([0u8; 1024]).collect()
    }

    #[test]
    fn alignment_must_be_a_bounded_uint32_power_of_two() {
        let e = |ty: u32, v: &[u8]| parse_bytes(&with_alignment(ty, v)).unwrap_err().to_string();
        // Wrong value types, including integers of the right value.
        let m = e(5, &32i32.to_le_bytes());
        assert!(m.contains("general.alignment has value type INT32 (5); it must be UINT32 (4)"), "{m}");
        let m = e(10, &32u64.to_le_bytes());
        assert!(m.contains("general.alignment has value type UINT64 (10); it must be UINT32 (4)"), "{m}");
        let m = e(0, &[32]);
        assert!(m.contains("general.alignment has value type UINT8 (0)"), "{m}");
        let m = e(8, &gstr("32"));
        assert!(m.contains("general.alignment has value type STRING (8)"), "{m}");
        let m = e(4, &0u32.to_le_bytes());
        assert!(m.contains("general.alignment is 0; it must be a nonzero power of two"), "{m}");
        let m = e(4, &48u32.to_le_bytes());
        assert!(m.contains("general.alignment 48 is not a power of two"), "{m}");
        let m = e(4, &(1u32 << 30).to_le_bytes());
        assert!(m.contains("general.alignment 1073741824 exceeds the limit of 1048576 bytes"), "{m}");
        let m = e(4, &(1u32 << 21).to_le_bytes());
        assert!(m.contains("exceeds the limit"), "{m}");
        // The bound itself and small powers of two are accepted.
        for a in [1u32, 32, 4096, 1 << 20] {
            let mut f = with_alignment(4, &a.to_le_bytes());
            f.resize(f.len() + (1 << 20) + 64, 0);
            assert_eq!(parse_bytes(&f).unwrap().alignment, u64::from(a));
        }
    }
}
