//! Shared types for the model-format header parsers: [`TensorInfo`] (one tensor's
//! name, dtype, row-major shape and absolute byte range) and [`FormatError`] (the
//! one error type every parser returns), plus small bounded-I/O helpers.
//!
//! Owns no format logic. Limits: displayed names are escaped (control characters,
//! quotes) and cut to [`MAX_DISPLAY_NAME`] characters so every error stays one line.
//! Every `FormatError` message names the field, the numbers and the limit involved.

use serde::{Deserialize, Serialize};
use std::io::{Read, Seek, SeekFrom};

/// One tensor found in a model header.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name exactly as written in the header (not escaped; use [`esc`] to display it).
    pub name: String,
    /// dtype name, safetensors spelling where one exists (F32, BF16, I64, Q4_0 ...).
    pub dtype: String,
    /// Row-major shape (numpy / safetensors order; GGUF `ne[]` is reversed into this).
    pub shape: Vec<u64>,
    /// Absolute byte offset of the tensor's data in the file.
    pub offset: u64,
    /// Length of the tensor's data in bytes.
    pub len: u64,
}

impl TensorInfo {
    /// Number of elements (checked product of `shape`; `None` on overflow).
    pub fn param_count(&self) -> Option<u64> {
        checked_product(&self.shape)
    }
}

/// Checked product of dimensions (empty shape = scalar = 1 element).
pub fn checked_product(dims: &[u64]) -> Option<u64> {
    dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))
}

/// Names longer than this many characters are cut in error messages.
pub const MAX_DISPLAY_NAME: usize = 120;

/// Escape a name for a one-line message: control characters, quotes and
/// backslashes are escaped, and long names are cut with a trailing `...`.
pub fn esc(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if i >= MAX_DISPLAY_NAME {
            out.push_str("...");
            break;
        }
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() || c == '\u{202e}' || c == '\u{202d}' => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out
}

/// The error type shared by all format parsers. Every message is one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The underlying reader or seek failed for a reason other than a short file.
    #[error("I/O error at offset 0x{offset:x}: {source}")]
    Io {
        /// Absolute file offset at which the failing read or seek started.
        offset: u64,
        /// The I/O error returned by the reader.
        #[source]
        source: std::io::Error,
    },
    /// A fixed-size read ran past the end of the file.
    #[error("file truncated: {what} at offset 0x{offset:x} needs {need} bytes, file has {file_len}")]
    Truncated {
        /// What was being read (e.g. `"GGUF magic"`, `"n_kv"`, `"tensor data section"`).
        what: String,
        /// Absolute file offset at which the read started.
        offset: u64,
        /// Bytes needed from `offset`.
        need: u64,
        /// Total file size in bytes.
        file_len: u64,
    },
    /// A tensor's data range ends past the end of the file.
    #[error("file truncated: tensor '{name}' ends at byte {end}, file has {file_len}")]
    TensorPastEof {
        /// Tensor name, escaped with [`esc`].
        name: String,
        /// Absolute file offset one past the tensor's last data byte.
        end: u64,
        /// Total file size in bytes.
        file_len: u64,
    },
    /// A length prefix is larger than the bytes left in the file.
    #[error("{what} {len} exceeds remaining {remaining} bytes at offset 0x{offset:x} (file truncated or corrupt)")]
    LengthExceedsRemaining {
        /// The length field involved (e.g. `"string length"`, `"key length"`, `"field 7 length"`).
        what: String,
        /// The declared length in bytes.
        len: u64,
        /// Bytes left after the length field: to the end of the file, or for ONNX to the end
        /// of the enclosing protobuf message.
        remaining: u64,
        /// Absolute file offset of the field that declared the length (usually the length
        /// prefix itself).
        offset: u64,
    },
    /// An array element count times the element size exceeds the bytes left.
    #[error(
        "array of {count} x {elem} elements exceeds remaining {remaining} bytes at offset 0x{offset:x} (file truncated or corrupt)"
    )]
    ArrayExceedsRemaining {
        /// Declared number of array elements.
        count: u64,
        /// Element size description (e.g. `"4-byte"`, `"string (at least 8-byte)"`).
        elem: String,
        /// Bytes left in the file after the count field.
        remaining: u64,
        /// Absolute file offset of the array's count field.
        offset: u64,
    },
    /// A header count cannot possibly fit in the bytes left.
    #[error(
        "{field} {count} exceeds what {remaining} remaining bytes can hold (each entry needs at least {min_each} bytes)"
    )]
    CountExceedsRemaining {
        /// The header count involved (e.g. GGUF `"n_kv"`, `"n_tensors"`).
        field: String,
        /// Declared number of entries.
        count: u64,
        /// Bytes left in the file after the counts.
        remaining: u64,
        /// Minimum encoded size of one entry in bytes.
        min_each: u64,
    },
    /// The safetensors 8-byte length prefix declares a JSON header larger than the rest
    /// of the file (file size minus the 8-byte prefix).
    #[error("header length {len} exceeds file size {file_len}")]
    HeaderLenExceedsFile {
        /// Declared header length in bytes.
        len: u64,
        /// Total file size in bytes.
        file_len: u64,
    },
    /// A declared header length exceeds this crate's cap for the format
    /// ([`super::safetensors::MAX_HEADER_LEN`] or [`super::numpy::MAX_HEADER_LEN`]).
    #[error("header length {len} exceeds the {cap}-byte header cap")]
    HeaderLenExceedsCap {
        /// Declared header length in bytes.
        len: u64,
        /// The cap in bytes.
        cap: u64,
    },
    /// The file is Git LFS pointer text (`version https://git-lfs.github.com/spec/...`)
    /// saved in place of the real file.
    #[error("looks like a Git LFS pointer, not {format}: fetch the real file with git lfs pull")]
    GitLfsPointer {
        /// What the file was expected to be (e.g. `"safetensors"`, `"a model file"`).
        format: &'static str,
    },
    /// A key or tensor name occurs twice in a header.
    #[error("duplicate {what} '{name}' in {format} header")]
    Duplicate {
        /// Kind of name duplicated (`"key"` or `"tensor name"`).
        what: &'static str,
        /// The duplicated name, escaped with [`esc`].
        name: String,
        /// Format name (e.g. `"GGUF"`, `"safetensors"`).
        format: &'static str,
    },
    /// A tensor's element type is not one this crate knows the size of.
    #[error("unknown dtype '{dtype}' for tensor '{name}' in {format} header")]
    UnknownDtype {
        /// The dtype as written, escaped (GGUF: `"ggml type N"`).
        dtype: String,
        /// Tensor name, escaped with [`esc`] (`"<array>"` for `.npy`, which has no names).
        name: String,
        /// Format name (e.g. `"GGUF"`, `"safetensors"`, `"npy"`).
        format: &'static str,
    },
    /// A header that must be UTF-8 (safetensors JSON, `.npy` version 3) is not.
    #[error("invalid UTF-8 in header at byte {at} (file offset {file_offset})")]
    InvalidUtf8 {
        /// Offset of the first invalid byte, relative to the start of the header text.
        at: u64,
        /// Absolute file offset of the first invalid byte.
        file_offset: u64,
    },
    /// In offset order, a tensor's data starts before the previous tensor's data ends.
    #[error(
        "data of tensor '{name}' overlaps the previous tensor '{prev}' (starts at byte {start}, previous ends at byte {prev_end})"
    )]
    Overlap {
        /// The later tensor's name, escaped with [`esc`].
        name: String,
        /// The previous tensor's name, escaped with [`esc`].
        prev: String,
        /// Absolute file offset where `name`'s data starts.
        start: u64,
        /// Absolute file offset one past the end of `prev`'s data.
        prev_end: u64,
    },
    /// An ONNX tensor's external-data `location` could point outside the model directory
    /// (see [`super::onnx::external_data_escapes`]).
    #[error("external data location '{location}' escapes model directory")]
    ExternalDataEscapes {
        /// The `location` value, escaped with [`esc`].
        location: String,
    },
    /// Anything else: `format` is the format name, `message` names field, numbers and limit.
    #[error("invalid {format}: {message}")]
    Invalid {
        /// Format name (e.g. `"GGUF"`, `"npy"`, `"ONNX"`, `"safetensors"`).
        format: &'static str,
        /// One-line description naming the field, the numbers and the limit involved.
        message: String,
    },
}

impl FormatError {
    pub(crate) fn invalid(format: &'static str, message: impl Into<String>) -> Self {
        FormatError::Invalid { format, message: message.into() }
    }
}

/// A bounded reader over `Read + Seek` that tracks its absolute position and the
/// file length, so every length can be checked against the bytes remaining
/// before anything is allocated.
pub(crate) struct Bounded<R: Read + Seek> {
    inner: std::io::BufReader<R>,
    pub pos: u64,
    pub file_len: u64,
}

impl<R: Read + Seek> Bounded<R> {
    /// Start at the reader's absolute position 0.
    pub fn new(r: R, file_len: u64) -> Result<Self, FormatError> {
        let mut inner = std::io::BufReader::with_capacity(64 * 1024, r);
        inner.seek(SeekFrom::Start(0)).map_err(|source| FormatError::Io { offset: 0, source })?;
        Ok(Bounded { inner, pos: 0, file_len })
    }

    pub fn remaining(&self) -> u64 {
        self.file_len.saturating_sub(self.pos)
    }

    /// Fill `buf` completely or report truncation naming `what`.
    pub fn read_exact(&mut self, buf: &mut [u8], what: &str) -> Result<(), FormatError> {
        let need = buf.len() as u64;
        if need > self.remaining() {
            return Err(FormatError::Truncated {
                what: what.to_string(),
                offset: self.pos,
                need,
                file_len: self.file_len,
            });
        }
        self.inner.read_exact(buf).map_err(|source| {
            if source.kind() == std::io::ErrorKind::UnexpectedEof {
                FormatError::Truncated { what: what.to_string(), offset: self.pos, need, file_len: self.file_len }
            } else {
                FormatError::Io { offset: self.pos, source }
            }
        })?;
        self.pos += need;
        Ok(())
    }

    pub fn u8(&mut self, what: &str) -> Result<u8, FormatError> {
        let mut b = [0u8; 1];
        self.read_exact(&mut b, what)?;
        Ok(b[0])
    }
    pub fn u16(&mut self, what: &str) -> Result<u16, FormatError> {
        let mut b = [0u8; 2];
        self.read_exact(&mut b, what)?;
        Ok(u16::from_le_bytes(b))
    }
    pub fn u32(&mut self, what: &str) -> Result<u32, FormatError> {
        let mut b = [0u8; 4];
        self.read_exact(&mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }
    pub fn u64(&mut self, what: &str) -> Result<u64, FormatError> {
        let mut b = [0u8; 8];
        self.read_exact(&mut b, what)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Refuses a length past the bytes remaining (error names `what`, reported at `field_offset`).
    fn check_remaining(&self, len: u64, what: &str, field_offset: u64) -> Result<(), FormatError> {
        if len > self.remaining() {
            return Err(FormatError::LengthExceedsRemaining {
                what: what.to_string(),
                len,
                remaining: self.remaining(),
                offset: field_offset,
            });
        }
        Ok(())
    }

    /// Read `len` bytes into a new buffer; `len` is checked against the bytes
    /// remaining (error names `what`, reported at `field_offset`) before allocating.
    pub fn bytes(&mut self, len: u64, what: &str, field_offset: u64) -> Result<Vec<u8>, FormatError> {
        self.check_remaining(len, what, field_offset)?;
        let mut v = vec![0u8; len as usize];
        self.read_exact(&mut v, what)?;
        Ok(v)
    }

    /// Skip `len` bytes (checked against the bytes remaining first).
    pub fn skip(&mut self, len: u64, what: &str, field_offset: u64) -> Result<(), FormatError> {
        self.check_remaining(len, what, field_offset)?;
        let delta = i64::try_from(len).map_err(|_| FormatError::invalid("file", "skip too large"))?;
        self.inner.seek_relative(delta).map_err(|source| FormatError::Io { offset: self.pos, source })?;
        self.pos += len;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use std::path::PathBuf;

    /// The shared corpus: `<repository>/../shared/corpus`.
    pub fn corpus() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus"))
    }

    pub fn read(rel: &str) -> Vec<u8> {
        let p = corpus().join(rel);
        std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read corpus file {}: {e}", p.display()))
    }

    /// Every file under the corpus, as paths relative to it (sorted).
    pub fn all_files() -> Vec<String> {
        fn walk(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
            let Ok(rd) = std::fs::read_dir(dir) else {
                return;
            };
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, base, out);
                } else if let Ok(rel) = p.strip_prefix(base) {
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        let base = corpus();
        let mut out = Vec::new();
        walk(&base, &base, &mut out);
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_count_checked() {
        let mut t = TensorInfo { name: "a".into(), dtype: "F32".into(), shape: vec![2, 3], offset: 0, len: 24 };
        assert_eq!(t.param_count(), Some(6));
        t.shape = vec![1 << 32, 1 << 32, 4];
        assert_eq!(t.param_count(), None);
        t.shape = vec![];
        assert_eq!(t.param_count(), Some(1));
    }

    #[test]
    fn esc_keeps_one_line() {
        assert_eq!(esc("key00"), "key00");
        let e = esc("a\nb\0c'");
        assert!(!e.contains('\n') && !e.contains('\0'), "{e}");
        assert!(esc(&"x".repeat(500)).len() < 130);
    }

    #[test]
    fn bounded_refuses_before_allocating() {
        let data = [1u8, 2, 3];
        let mut b = Bounded::new(std::io::Cursor::new(&data[..]), 3).unwrap();
        let e = b.bytes(u64::MAX, "string length", 0).unwrap_err().to_string();
        assert!(e.contains("string length 18446744073709551615 exceeds remaining 3 bytes at offset 0x0"), "{e}");
        assert!(b.u64("count").unwrap_err().to_string().contains("file truncated"));
    }
}
