//! The protobuf wire format under the ONNX walker: varints, field tags, length-delimited and
//! fixed-size values, bounded strings and the nesting limit
//! (<https://protobuf.dev/programming-guides/encoding/>).
//!
//! Every read is bounded by the end of the enclosing message and by the file; groups (wire
//! types 3/4), field number 0 and varints longer than 10 bytes are refused. It knows nothing
//! of ONNX's messages (that is `walk`) and must never skip or read past `end`.

use std::io::{Read, Seek};

use super::{FMT, MAX_DEPTH, MAX_STRING, OnnxModel};
use crate::formats::tensor::{Bounded, FormatError};

pub(super) enum Val {
    Varint(u64),
    /// Length-delimited payload starting at the current position, ending at `end`.
    Len(u64),
    Fixed,
}

pub(super) struct Walker<R: Read + Seek> {
    pub(super) b: Bounded<R>,
    pub(super) model: OnnxModel,
}

impl<R: Read + Seek> Walker<R> {
    pub(super) fn err(&self, msg: String) -> FormatError {
        FormatError::invalid(FMT, msg)
    }

    pub(super) fn varint(&mut self, end: u64) -> Result<u64, FormatError> {
        let start = self.b.pos;
        let mut v: u64 = 0;
        for i in 0..10 {
            if self.b.pos >= end {
                return Err(
                    self.err(format!("varint at offset 0x{start:x} runs past the end of its message at 0x{end:x}"))
                );
            }
            let byte = self.b.u8("varint")?;
            if i == 9 && byte > 1 {
                return Err(self.err(format!("varint at offset 0x{start:x} overflows 64 bits")));
            }
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err(format!("varint at offset 0x{start:x} is longer than 10 bytes")))
    }

    /// Next field of a message ending at `end`, or `None` at the end.
    pub(super) fn next(&mut self, end: u64) -> Result<Option<(u64, Val)>, FormatError> {
        if self.b.pos >= end {
            return Ok(None);
        }
        let off = self.b.pos;
        let tag = self.varint(end)?;
        let (field, wire) = (tag >> 3, tag & 7);
        if field == 0 {
            return Err(self.err(format!("field number 0 at offset 0x{off:x}")));
        }
        let val = match wire {
            0 => Val::Varint(self.varint(end)?),
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                self.skip_to(self.b.pos + n, end, off)?;
                Val::Fixed
            }
            2 => {
                let len_off = self.b.pos;
                let len = self.varint(end)?;
                let rem = end - self.b.pos;
                if len > rem {
                    return Err(FormatError::LengthExceedsRemaining {
                        what: format!("field {field} length"),
                        len,
                        remaining: rem,
                        offset: len_off,
                    });
                }
                Val::Len(self.b.pos + len)
            }
            3 | 4 => {
                return Err(self.err(format!("protobuf group (wire type {wire}) at offset 0x{off:x} is not supported")));
            }
            _ => return Err(self.err(format!("invalid wire type {wire} at offset 0x{off:x}"))),
        };
        Ok(Some((field, val)))
    }

    pub(super) fn skip_to(&mut self, target: u64, end: u64, off: u64) -> Result<(), FormatError> {
        if target > end {
            return Err(FormatError::LengthExceedsRemaining {
                what: "fixed-size field".into(),
                len: target - self.b.pos,
                remaining: end - self.b.pos,
                offset: off,
            });
        }
        let n = target - self.b.pos;
        self.b.skip(n, "field length", off)
    }

    /// Skip the rest of a length-delimited value or finish a sub-message.
    pub(super) fn skip_val(&mut self, v: &Val) -> Result<(), FormatError> {
        if let Val::Len(end) = *v {
            let off = self.b.pos;
            self.skip_to(end, end, off)?;
        }
        Ok(())
    }

    pub(super) fn string(&mut self, end: u64, what: &str) -> Result<String, FormatError> {
        let off = self.b.pos;
        let len = end - off;
        if len > MAX_STRING {
            return Err(self.err(format!("{what} of {len} bytes at offset 0x{off:x} exceeds limit {MAX_STRING}")));
        }
        let bytes = self.b.bytes(len, what, off)?;
        String::from_utf8(bytes).map_err(|e| {
            FormatError::invalid(
                FMT,
                format!("invalid UTF-8 in {what} at byte {}", off + e.utf8_error().valid_up_to() as u64),
            )
        })
    }

    pub(super) fn enter(&self, depth: u32) -> Result<u32, FormatError> {
        if depth >= MAX_DEPTH {
            return Err(self.err(format!("message nesting deeper than {MAX_DEPTH} at offset 0x{:x}", self.b.pos)));
        }
        Ok(depth + 1)
    }
}
