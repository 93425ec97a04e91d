//! GGUF metadata values: the value type table, reading one key/value string or value
//! (arrays summarised as element type and count), and the `general.alignment` rule.
//!
//! Every length and count is checked against the bytes remaining before it is read or looped
//! over (see the parent module's limits); array nesting stops at [`MAX_ARRAY_DEPTH`]. It must
//! never allocate what the file merely claims, nor keep more of a string than [`KEEP_STRING`]
//! bytes.

use std::io::{Read, Seek};

use super::{FMT, GgufValueSummary, KEEP_STRING, MAX_ALIGNMENT, MAX_ARRAY_DEPTH};
use crate::formats::tensor::{Bounded, FormatError};

/// Name of a GGUF metadata value type.
pub(super) fn value_type_name(t: u32) -> Option<&'static str> {
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
pub(super) fn scalar_size(t: u32) -> Option<u64> {
    Some(match t {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        _ => return None,
    })
}

/// Validates `general.alignment` (value type `ty`, value `value`) as llama.cpp reads it
/// (`gguf_get_val_u32`): a UINT32 that is a nonzero power of two, here also at most
/// [`MAX_ALIGNMENT`]. Returns the alignment in bytes; each violation has its own message
/// naming the field.
pub(super) fn check_alignment(ty: u32, value: &GgufValueSummary) -> Result<u64, FormatError> {
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
pub(super) fn read_string<R: Read + Seek>(b: &mut Bounded<R>, what: &str, cap: u64) -> Result<String, FormatError> {
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
pub(super) fn read_value<R: Read + Seek>(
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
