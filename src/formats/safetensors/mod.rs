//! safetensors header parser: validates the 8-byte length prefix, the JSON header
//! and the data layout, and lists tensors in data-offset order.
//!
//! Spec: <https://github.com/huggingface/safetensors> (README, "Format" section):
//! `u64 LE header length N`, `N` bytes of UTF-8 JSON object (may be right-padded
//! with spaces) mapping tensor names to `{dtype, shape, data_offsets: [begin, end]}`
//! plus an optional `__metadata__` string->string map, then the data buffer.
//!
//! Limits and checks (all with checked arithmetic, before allocating):
//! header length <= file size - 8 and <= [`MAX_HEADER_LEN`] (100,000,000 bytes);
//! Git LFS pointer text is recognised; header must be valid UTF-8 and a JSON
//! object; duplicate keys are refused (serde_json would keep the last one);
//! tensor rank <= [`MAX_RANK`]; unknown fields, unknown dtypes, negative or
//! non-integer offsets/dims, reversed offsets, shape overflow, size mismatch,
//! overlaps, holes, trailing bytes and data past EOF are all errors.
//! JSON nesting is bounded by serde_json's recursion limit (128).

use super::tensor::{FormatError, TensorInfo, checked_product, esc};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::{Read, Seek, SeekFrom};

/// Documented cap on the JSON header size (bytes).
pub const MAX_HEADER_LEN: u64 = 100_000_000;
/// Maximum tensor rank accepted.
pub const MAX_RANK: usize = 64;
const FMT: &str = "safetensors";
const LFS_MAGIC: &[u8] = b"version https://git-lfs.github.com/spec/";

/// Parsed safetensors header.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SafetensorsHeader {
    /// JSON header length in bytes, from the u64 little-endian prefix at offset 0.
    pub header_len: u64,
    /// Absolute offset of the data buffer (8 + header_len).
    pub data_start: u64,
    /// The optional `__metadata__` string->string map (empty if absent).
    pub metadata: BTreeMap<String, String>,
    /// Tensors in data-offset order; `offset` is absolute (data_start + begin).
    pub tensors: Vec<TensorInfo>,
}

/// Element size in bits of a safetensors dtype, `None` if unknown.
pub fn dtype_bits(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "F64" | "I64" | "U64" | "C64" => 64,
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        _ => return None,
    })
}

/// Parse and fully validate a safetensors header. `r` is read from offset 0.
pub fn parse<R: Read + Seek>(r: &mut R, file_len: u64) -> Result<SafetensorsHeader, FormatError> {
    r.seek(SeekFrom::Start(0)).map_err(|source| FormatError::Io { offset: 0, source })?;
    let mut head = [0u8; 40];
    let got = read_up_to(r, &mut head)?;
    if got >= LFS_MAGIC.len() && head[..LFS_MAGIC.len()] == *LFS_MAGIC {
        return Err(FormatError::GitLfsPointer { format: FMT });
    }
    if file_len < 8 || got < 8 {
        return Err(FormatError::Truncated {
            what: "safetensors header length prefix".into(),
            offset: 0,
            need: 8,
            file_len,
        });
    }
    let header_len = u64::from_le_bytes([head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7]]);
    if header_len > file_len - 8 {
        return Err(FormatError::HeaderLenExceedsFile { len: header_len, file_len });
    }
    if header_len > MAX_HEADER_LEN {
        return Err(FormatError::HeaderLenExceedsCap { len: header_len, cap: MAX_HEADER_LEN });
    }
    let data_start = 8 + header_len;
    r.seek(SeekFrom::Start(8)).map_err(|source| FormatError::Io { offset: 8, source })?;
    let mut buf = vec![0u8; header_len as usize];
    r.read_exact(&mut buf).map_err(|source| FormatError::Io { offset: 8, source })?;
    let (metadata, raw) = parse_header_json(&buf)?;
    let tensors = validate_layout(raw, data_start, file_len)?;
    Ok(SafetensorsHeader { header_len, data_start, metadata, tensors })
}

fn read_up_to<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize, FormatError> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(FormatError::Io { offset: n as u64, source });
            }
        }
    }
    Ok(n)
}

/// One raw tensor entry from the JSON header.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    dtype: String,
    shape: Vec<Dim>,
    data_offsets: (Offset, Offset),
}

/// Decode the header bytes: UTF-8, JSON object, duplicate-free.
type Parsed = (BTreeMap<String, String>, Vec<(String, RawEntry)>);

fn parse_header_json(buf: &[u8]) -> Result<Parsed, FormatError> {
    let text = std::str::from_utf8(buf).map_err(|e| FormatError::InvalidUtf8 {
        at: e.valid_up_to() as u64,
        file_offset: 8 + e.valid_up_to() as u64,
    })?;
    match text.trim_start().chars().next() {
        Some('{') => {}
        other => {
            let found = match other {
                None => "nothing".to_string(),
                Some('[') => "a JSON array".to_string(),
                Some(c) => format!("'{}'", esc(&c.to_string())),
            };
            return Err(FormatError::invalid(FMT, format!("header must be a JSON object, found {found}")));
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let top = de.deserialize_map(TopVisitor).map_err(|e| json_err(&e))?;
    de.end().map_err(|e| json_err(&e))?;
    if let Some(name) = top.duplicate {
        let what = if name == "__metadata__" { "key" } else { "tensor name" };
        return Err(FormatError::Duplicate { what, name: esc(&name), format: FMT });
    }
    Ok((top.metadata, top.entries))
}

fn json_err(e: &serde_json::Error) -> FormatError {
    // serde_json messages are one line and already name line/column.
    FormatError::invalid(FMT, format!("header JSON: {}", e.to_string().replace('\n', " ")))
}

struct Top {
    metadata: BTreeMap<String, String>,
    entries: Vec<(String, RawEntry)>,
    duplicate: Option<String>,
}

struct TopVisitor;
impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object of tensors")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        let mut seen = HashSet::new();
        let mut top = Top { metadata: BTreeMap::new(), entries: Vec::new(), duplicate: None };
        while let Some(key) = map.next_key::<String>()? {
            if top.duplicate.is_some() {
                map.next_value::<de::IgnoredAny>()?;
                continue;
            }
            if !seen.insert(key.clone()) {
                // Remember the first duplicate; skip the rest of the object.
                top.duplicate = Some(key);
                map.next_value::<de::IgnoredAny>()?;
                continue;
            }
            if key == "__metadata__" {
                top.metadata = map
                    .next_value::<Metadata>()
                    .map_err(|e| de::Error::custom(format!("__metadata__ must be a string->string map: {e}")))?
                    .0;
            } else {
                let entry = map
                    .next_value::<RawEntry>()
                    .map_err(|e| de::Error::custom(format!("tensor '{}': {e}", esc(&key))))?;
                top.entries.push((key, entry));
            }
        }
        Ok(top)
    }
}

/// `__metadata__`: string->string map, duplicates refused.
struct Metadata(BTreeMap<String, String>);
impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Metadata;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of strings to strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Metadata, A::Error> {
                let mut m = BTreeMap::new();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    if m.contains_key(&k) {
                        return Err(de::Error::custom(format!("duplicate metadata key '{}'", esc(&k))));
                    }
                    m.insert(k, v);
                }
                Ok(Metadata(m))
            }
        }
        d.deserialize_map(V)
    }
}

/// A non-negative integer JSON number (shape dimension or data offset).
macro_rules! uint_newtype {
    ($name:ident, $what:literal) => {
        #[derive(Debug, Clone, Copy)]
        struct $name(u64);
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str(concat!("a non-negative integer ", $what))
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$name, E> {
                        Ok($name(v))
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$name, E> {
                        u64::try_from(v)
                            .map($name)
                            .map_err(|_| E::custom(format!(concat!("negative ", $what, " {}"), v)))
                    }
                    fn visit_f64<E: de::Error>(self, v: f64) -> Result<$name, E> {
                        Err(E::custom(format!(concat!("non-integer ", $what, " {}"), v)))
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}
uint_newtype!(Dim, "shape dimension");
uint_newtype!(Offset, "data offset");

/// Check every entry and the data layout; return tensors in offset order.
fn validate_layout(
    raw: Vec<(String, RawEntry)>,
    data_start: u64,
    file_len: u64,
) -> Result<Vec<TensorInfo>, FormatError> {
    let mut items: Vec<(u64, u64, TensorInfo)> = Vec::with_capacity(raw.len());
    for (name, e) in raw {
        items.push(check_entry(name, e, data_start)?);
    }
    items.sort_by_key(|a| (a.0, a.1));
    check_coverage(&items, data_start, file_len)?;
    Ok(items.into_iter().map(|(_, _, t)| t).collect())
}

/// Checks one entry (name, dtype, rank, byte count against its data offsets) and returns
/// (begin, end, tensor) with `begin`/`end` relative to the data section.
fn check_entry(name: String, e: RawEntry, data_start: u64) -> Result<(u64, u64, TensorInfo), FormatError> {
    if name.is_empty() {
        return Err(FormatError::invalid(FMT, "empty tensor name"));
    }
    if name.contains('\0') {
        return Err(FormatError::invalid(FMT, format!("tensor name '{}' contains a NUL byte", esc(&name))));
    }
    let bits = dtype_bits(&e.dtype).ok_or_else(|| FormatError::UnknownDtype {
        dtype: esc(&e.dtype),
        name: esc(&name),
        format: FMT,
    })?;
    if e.shape.len() > MAX_RANK {
        return Err(FormatError::invalid(
            FMT,
            format!("tensor '{}' has rank {} (limit {MAX_RANK})", esc(&name), e.shape.len()),
        ));
    }
    let shape: Vec<u64> = e.shape.iter().map(|d| d.0).collect();
    let (begin, end) = (e.data_offsets.0.0, e.data_offsets.1.0);
    let overflow =
        || FormatError::invalid(FMT, format!("shape {:?} of tensor '{}' overflows u64 byte count", shape, esc(&name)));
    let numel = checked_product(&shape).ok_or_else(overflow)?;
    let total_bits = numel.checked_mul(bits).ok_or_else(overflow)?;
    if total_bits % 8 != 0 {
        return Err(FormatError::invalid(
            FMT,
            format!("tensor '{}' of {numel} x {} ({bits} bits) is not a whole number of bytes", esc(&name), e.dtype),
        ));
    }
    let nbytes = total_bits / 8;
    if end < begin {
        return Err(FormatError::invalid(
            FMT,
            format!("reversed data_offsets [{begin}, {end}] for tensor '{}' (end before begin)", esc(&name)),
        ));
    }
    if end - begin != nbytes {
        return Err(FormatError::invalid(
            FMT,
            format!(
                "size mismatch for tensor '{}': shape {:?} x {} = {nbytes} bytes but data_offsets [{begin}, {end}] span {} bytes",
                esc(&name),
                shape,
                e.dtype,
                end - begin
            ),
        ));
    }
    let abs = data_start.checked_add(begin).ok_or_else(overflow)?;
    let info = TensorInfo { name, dtype: e.dtype, shape, offset: abs, len: nbytes };
    Ok((begin, end, info))
}

/// Checks that the entries (sorted by data offsets) cover the data section exactly: no overlap,
/// no hole, none past the end of the file, no trailing bytes.
fn check_coverage(items: &[(u64, u64, TensorInfo)], data_start: u64, file_len: u64) -> Result<(), FormatError> {
    let data_len = file_len - data_start; // data_start <= file_len was checked.
    let mut expected = 0u64;
    let mut prev_name = String::new();
    for (begin, end, t) in items {
        if *begin < expected {
            return Err(FormatError::Overlap {
                name: esc(&t.name),
                prev: esc(&prev_name),
                start: data_start + begin,
                prev_end: data_start + expected,
            });
        }
        if *begin > expected {
            return Err(FormatError::invalid(
                FMT,
                format!(
                    "hole of {} bytes before tensor '{}' (data offsets {expected}..{begin} are not covered by any tensor)",
                    begin - expected,
                    esc(&t.name)
                ),
            ));
        }
        if *end > data_len {
            return Err(FormatError::TensorPastEof {
                name: esc(&t.name),
                end: data_start.saturating_add(*end),
                file_len,
            });
        }
        expected = *end;
        prev_name.clone_from(&t.name);
    }
    if expected != data_len {
        return Err(FormatError::invalid(
            FMT,
            format!(
                "{} trailing bytes after the last tensor (data ends at byte {}, file has {file_len})",
                data_len - expected,
                data_start + expected
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
