//! NumPy `.npy` header parser: magic, version, header length and the Python
//! literal dict (`descr`, `fortran_order`, `shape`), data offset and length.
//!
//! Spec: <https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>
//! (format versions 1.0, 2.0 and 3.0, little-endian length prefixes).
//!
//! Limits: header dict <= [`MAX_HEADER_LEN`] bytes (numpy's own default is 10,000);
//! the literal parser accepts only strings, ints (with Python 2 `L` suffix),
//! True/False/None, tuples, lists and dicts, nesting depth <= [`MAX_DEPTH`];
//! rank <= [`MAX_RANK`]. Object dtypes (`'O'` anywhere in `descr`) mean the payload
//! is a pickle: `data_len` is then `None` and the caller must scan the pickle.
//! For other dtypes the data must fit in the file (checked arithmetic).

use super::tensor::{Bounded, FormatError, checked_product, esc};
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek};

const FMT: &str = "npy";
/// Maximum header (dict literal) length in bytes: 1 MiB.
pub const MAX_HEADER_LEN: u64 = 1 << 20;
/// Maximum nesting depth of the header's Python literal (and of structured dtypes).
pub const MAX_DEPTH: usize = 16;
/// Maximum number of dimensions in `shape`.
pub const MAX_RANK: usize = 64;

/// Parsed `.npy` header.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NpyHeader {
    /// Format version `(major, minor)` from bytes 6 and 7 (major 1, 2 or 3).
    pub version: (u8, u8),
    /// `descr` as written (a dtype string, or the repr of a structured-dtype list).
    pub dtype: String,
    /// Array shape from the header's `shape` tuple (empty for a 0-d array).
    pub shape: Vec<u64>,
    /// The header's `fortran_order`: data is stored column-major (Fortran) rather than row-major (C).
    pub fortran_order: bool,
    /// Absolute offset of the array data.
    pub data_offset: u64,
    /// Data length in bytes; `None` for object dtypes (pickle payload) or when the
    /// item size cannot be computed (structured dtypes with nested sub-arrays).
    pub data_len: Option<u64>,
    /// The payload is a pickle (object dtype): must be scanned, never loaded.
    pub is_object: bool,
}

/// A parsed Python literal.
#[derive(Clone, Debug, PartialEq)]
enum Lit {
    Str(String),
    Int(i128),
    Bool(bool),
    None,
    Seq(Vec<Lit>),
    Dict(Vec<(Lit, Lit)>),
}

/// Parse a `.npy` header and check the data length against `file_len`.
pub fn parse<R: Read + Seek>(r: &mut R, file_len: u64) -> Result<NpyHeader, FormatError> {
    let mut b = Bounded::new(r, file_len)?;
    let (major, minor, text, data_offset) = read_header_text(&mut b)?;
    let entries = header_dict(&text)?;
    let get = |k: &str| entries.iter().find(|(key, _)| *key == Lit::Str(k.into())).map(|(_, v)| v);
    let descr = get("descr").ok_or_else(|| FormatError::invalid(FMT, "header has no 'descr'"))?;
    let fortran_order = match get("fortran_order") {
        Some(Lit::Bool(b)) => *b,
        _ => {
            return Err(FormatError::invalid(FMT, "'fortran_order' must be True or False"));
        }
    };
    let shape = header_shape(get("shape"))?;
    let dtype = match descr {
        Lit::Str(s) => s.clone(),
        other => repr(other),
    };
    let is_object = dtype.contains('O');
    let data_len =
        if is_object { None } else { data_len(descr, &dtype, &shape, b.remaining(), data_offset, file_len)? };
    Ok(NpyHeader { version: (major, minor), dtype, shape, fortran_order, data_offset, data_len, is_object })
}

/// Reads the magic, the version and the header, refusing a header longer than
/// [`MAX_HEADER_LEN`]. Returns (major, minor, header text, data offset); version 3 headers are
/// UTF-8, earlier ones latin-1.
fn read_header_text<R: Read + Seek>(b: &mut Bounded<R>) -> Result<(u8, u8, String, u64), FormatError> {
    let mut magic = [0u8; 6];
    b.read_exact(&mut magic, "npy magic")?;
    if &magic != b"\x93NUMPY" {
        return Err(FormatError::invalid(FMT, format!("bad magic {magic:02x?}, expected \\x93NUMPY")));
    }
    let major = b.u8("npy major version")?;
    let minor = b.u8("npy minor version")?;
    let len_off = b.pos;
    let hlen = match major {
        1 => u64::from(b.u16("npy header length")?),
        2 | 3 => u64::from(b.u32("npy header length")?),
        v => {
            return Err(FormatError::invalid(FMT, format!("unsupported version {v}.{minor}, supported: 1, 2, 3")));
        }
    };
    if hlen > MAX_HEADER_LEN {
        return Err(FormatError::HeaderLenExceedsCap { len: hlen, cap: MAX_HEADER_LEN });
    }
    let raw = b.bytes(hlen, "npy header length", len_off)?;
    let data_offset = b.pos;
    let text: String = if major == 3 {
        String::from_utf8(raw).map_err(|e| FormatError::InvalidUtf8 {
            at: e.utf8_error().valid_up_to() as u64,
            file_offset: data_offset - hlen + e.utf8_error().valid_up_to() as u64,
        })?
    } else {
        raw.iter().map(|&c| c as char).collect() // latin-1
    };
    Ok((major, minor, text, data_offset))
}

/// Parses the header text as one Python dict literal whose keys are only `descr`,
/// `fortran_order` and `shape`, and returns its entries.
fn header_dict(text: &str) -> Result<Vec<(Lit, Lit)>, FormatError> {
    let mut p = LitParser { s: text.as_bytes(), i: 0 };
    let lit = p.value(0)?;
    p.ws();
    if p.i < p.s.len() {
        return Err(p.err("unexpected text after the header dict"));
    }
    let Lit::Dict(entries) = lit else {
        return Err(FormatError::invalid(FMT, "header must be a Python dict literal"));
    };
    for (k, _) in &entries {
        match k {
            Lit::Str(s) if ["descr", "fortran_order", "shape"].contains(&s.as_str()) => {}
            other => {
                return Err(FormatError::invalid(FMT, format!("unexpected header key {}", repr(other))));
            }
        }
    }
    Ok(entries)
}

/// The header's `shape`: a tuple of at most [`MAX_RANK`] non-negative integers.
fn header_shape(shape: Option<&Lit>) -> Result<Vec<u64>, FormatError> {
    Ok(match shape {
        Some(Lit::Seq(items)) if items.len() <= MAX_RANK => items
            .iter()
            .map(|d| match d {
                Lit::Int(v) => u64::try_from(*v).ok(),
                _ => None,
            })
            .collect::<Option<Vec<u64>>>()
            .ok_or_else(|| FormatError::invalid(FMT, "'shape' must be a tuple of non-negative integers"))?,
        Some(Lit::Seq(items)) => {
            return Err(FormatError::invalid(FMT, format!("'shape' rank {} exceeds limit {MAX_RANK}", items.len())));
        }
        _ => return Err(FormatError::invalid(FMT, "header has no 'shape' tuple")),
    })
}

/// The data length of a non-object array of dtype `descr` (shown as `dtype`) and `shape`,
/// checked against the `remaining` bytes of the file after `data_offset`; `None` when the item
/// size of a structured dtype cannot be computed. An unknown plain dtype is refused.
fn data_len(
    descr: &Lit,
    dtype: &str,
    shape: &[u64],
    remaining: u64,
    data_offset: u64,
    file_len: u64,
) -> Result<Option<u64>, FormatError> {
    let item = item_size(descr, 0);
    Ok(match item {
        Some(sz) => {
            let n = checked_product(shape)
                .and_then(|n| n.checked_mul(sz))
                .ok_or_else(|| FormatError::invalid(FMT, format!("shape {shape:?} x {sz}-byte items overflows u64")))?;
            if n > remaining {
                return Err(FormatError::invalid(
                    FMT,
                    format!(
                        "file truncated: array data of {n} bytes ({shape:?} x {}) at offset {data_offset} exceeds file size {file_len}",
                        esc(dtype)
                    ),
                ));
            }
            Some(n)
        }
        None if matches!(descr, Lit::Str(_)) => {
            return Err(FormatError::UnknownDtype { dtype: esc(dtype), name: "<array>".into(), format: FMT });
        }
        None => None,
    })
}

/// Item size of a dtype descr (string or structured list), `None` if unknown.
fn item_size(d: &Lit, depth: usize) -> Option<u64> {
    match d {
        Lit::Str(s) => {
            let s = s.trim_start_matches(['<', '>', '|', '=']);
            let mut chars = s.chars();
            let kind = chars.next()?;
            let rest = chars.as_str();
            let digits = rest.split('[').next().unwrap_or("");
            let n: Option<u64> = if digits.is_empty() { None } else { digits.parse().ok() };
            match kind {
                '?' => Some(1),
                'b' | 'i' | 'u' | 'f' | 'c' | 'm' | 'M' | 'S' | 'a' | 'V' => n,
                'U' => n.and_then(|n| n.checked_mul(4)),
                'e' => Some(2),
                'd' => Some(8),
                _ => None,
            }
        }
        Lit::Seq(fields) if depth < MAX_DEPTH => fields.iter().try_fold(0u64, |acc, f| {
            let Lit::Seq(parts) = f else { return None };
            let sz = item_size(parts.get(1)?, depth + 1)?;
            let count = match parts.get(2) {
                None => 1,
                Some(Lit::Seq(dims)) => dims.iter().try_fold(1u64, |a, d| match d {
                    Lit::Int(v) => a.checked_mul(u64::try_from(*v).ok()?),
                    _ => None,
                })?,
                Some(Lit::Int(v)) => u64::try_from(*v).ok()?,
                _ => return None,
            };
            acc.checked_add(sz.checked_mul(count)?)
        }),
        _ => None,
    }
}

fn repr(l: &Lit) -> String {
    match l {
        Lit::Str(s) => format!("'{}'", esc(s)),
        Lit::Int(v) => v.to_string(),
        Lit::Bool(b) => if *b { "True" } else { "False" }.into(),
        Lit::None => "None".into(),
        Lit::Seq(v) => format!("[{}]", v.iter().map(repr).collect::<Vec<_>>().join(", ")),
        Lit::Dict(v) => {
            format!("{{{}}}", v.iter().map(|(k, x)| format!("{}: {}", repr(k), repr(x))).collect::<Vec<_>>().join(", "))
        }
    }
}

/// Bounded recursive-descent parser for the header's Python literal.
struct LitParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl LitParser<'_> {
    fn err(&self, what: &str) -> FormatError {
        FormatError::invalid(FMT, format!("header literal: {what} at header byte {}", self.i))
    }
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }
    fn value(&mut self, depth: usize) -> Result<Lit, FormatError> {
        if depth > MAX_DEPTH {
            return Err(self.err(&format!("nesting deeper than {MAX_DEPTH}")));
        }
        match self.peek() {
            Some(q @ (b'\'' | b'"')) => self.string(q),
            Some(open @ (b'(' | b'[')) => self.seq(open, depth),
            Some(b'{') => self.dict(depth),
            Some(c) if c.is_ascii_digit() || c == b'-' => self.int(),
            Some(_) => {
                for (word, lit) in [("True", Lit::Bool(true)), ("False", Lit::Bool(false)), ("None", Lit::None)] {
                    if self.s[self.i..].starts_with(word.as_bytes()) {
                        self.i += word.len();
                        return Ok(lit);
                    }
                }
                Err(self.err("unexpected character"))
            }
            None => Err(self.err("unexpected end")),
        }
    }
    /// A string quoted with `q` (no escape sequences), at the opening quote.
    fn string(&mut self, q: u8) -> Result<Lit, FormatError> {
        self.i += 1;
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i] != q {
            if self.s[self.i] == b'\\' {
                return Err(self.err("escape sequences are not supported in strings"));
            }
            self.i += 1;
        }
        if self.i >= self.s.len() {
            return Err(self.err("unterminated string"));
        }
        let v = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        self.i += 1;
        Ok(Lit::Str(v))
    }
    /// A tuple or list opened by `open`, its items at `depth + 1`.
    fn seq(&mut self, open: u8, depth: usize) -> Result<Lit, FormatError> {
        let close = if open == b'(' { b')' } else { b']' };
        self.i += 1;
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(close) {
                self.i += 1;
                return Ok(Lit::Seq(items));
            }
            items.push(self.value(depth + 1)?);
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(c) if c == close => {}
                _ => return Err(self.err("expected ',' or closing bracket")),
            }
        }
    }
    /// A dict, its keys and values at `depth + 1`; a duplicate key is refused.
    fn dict(&mut self, depth: usize) -> Result<Lit, FormatError> {
        self.i += 1;
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(b'}') {
                self.i += 1;
                return Ok(Lit::Dict(items));
            }
            let k = self.value(depth + 1)?;
            if self.peek() != Some(b':') {
                return Err(self.err("expected ':'"));
            }
            self.i += 1;
            let v = self.value(depth + 1)?;
            if items.iter().any(|(ek, _)| *ek == k) {
                return Err(self.err(&format!("duplicate key {}", repr(&k))));
            }
            items.push((k, v));
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {}
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
    }
    /// A decimal integer (optional `-`, optional Python 2 `L` suffix).
    fn int(&mut self) -> Result<Lit, FormatError> {
        let start = self.i;
        self.i += 1;
        while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
            self.i += 1;
        }
        let txt = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
        let v: i128 = txt.parse().map_err(|_| self.err("bad integer"))?;
        if self.i < self.s.len() && matches!(self.s[self.i], b'L' | b'l') {
            self.i += 1; // Python 2 long suffix, e.g. (2L,)
        }
        Ok(Lit::Int(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::tensor::test_util::read;
    use std::io::Cursor;

    fn parse_bytes(b: &[u8]) -> Result<NpyHeader, FormatError> {
        parse(&mut Cursor::new(b), b.len() as u64)
    }
    fn build(dict: &str, data: usize) -> Vec<u8> {
        let mut v = b"\x93NUMPY\x01\x00".to_vec();
        v.extend((dict.len() as u16).to_le_bytes());
        v.extend(dict.as_bytes());
        v.extend(std::iter::repeat_n(0u8, data));
        v
    }

    #[test]
    fn corpus_npy_files() {
        let h = parse_bytes(&read("numpy/numpy_python3.npy")).unwrap();
        assert_eq!((h.dtype.as_str(), h.shape.clone(), h.data_len, h.is_object), ("<f8", vec![2], Some(16), false));
        assert_eq!(h.data_offset + 16, 96);
        let h = parse_bytes(&read("numpy/numpy_win64python2.npy")).unwrap();
        assert_eq!(h.shape, vec![2]);
        let h = parse_bytes(&read("numpy/picklescan_int_array.npy")).unwrap();
        assert_eq!((h.dtype.as_str(), h.shape.clone(), h.data_len), ("<i4", vec![2, 2], Some(16)));
        for f in [
            "numpy/numpy_py3-objarr.npy",
            "numpy/picklescan_object_array.npy",
            "pickle/joblib_0.9.2_pickle_py27_np17.pkl_03.npy",
        ] {
            let h = parse_bytes(&read(f)).unwrap();
            assert!(h.is_object && h.data_len.is_none(), "{f}");
            assert_eq!(read(f)[h.data_offset as usize], 0x80, "{f}: payload should start with a pickle PROTO");
        }
        let h = parse_bytes(&read("pickle/joblib_0.9.2_pickle_py27_np17.pkl_02.npy")).unwrap();
        assert_eq!((h.shape.clone(), h.data_len), (vec![5], Some(40)));
    }

    #[test]
    fn malformed_headers() {
        let e = parse_bytes(&build("{'descr': '<f8', 'fortran_order': False, 'shape': (1000,), }", 8)).unwrap_err();
        assert!(e.to_string().contains("file truncated: array data of 8000 bytes"), "{e}");
        let e =
            parse_bytes(&build("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4), }", 0));
        assert!(e.unwrap_err().to_string().contains("overflows"));
        let deep =
            format!("{{'descr': {}'<f8'{}, 'fortran_order': False, 'shape': (1,)}}", "[".repeat(50), "]".repeat(50));
        assert!(parse_bytes(&build(&deep, 8)).unwrap_err().to_string().contains("nesting"));
        let e = parse_bytes(&build("{'descr': '<f8', 'fortran_order': False, 'shape': (-1,), }", 8)).unwrap_err();
        assert!(e.to_string().contains("non-negative"), "{e}");
        assert!(parse_bytes(&build("{'descr': '<q9', 'fortran_order': False, 'shape': (), }", 8)).is_err());
        let mut big = b"\x93NUMPY\x02\x00".to_vec();
        big.extend(u32::MAX.to_le_bytes());
        assert!(parse_bytes(&big).unwrap_err().to_string().contains("cap"));
        let s = "{'descr': [('a', '<i4'), ('b', '<f8', (2,))], 'fortran_order': True, 'shape': (3,), }";
        let h = parse_bytes(&build(s, 60)).unwrap();
        assert_eq!((h.data_len, h.fortran_order), (Some(60), true));
        let s = "{'descr': [('a', '|O')], 'fortran_order': False, 'shape': (3,), }";
        assert!(parse_bytes(&build(s, 0)).unwrap().is_object);
        let full = read("numpy/numpy_python3.npy");
        for cut in 0..full.len() {
            assert!(parse_bytes(&full[..cut]).is_err(), "prefix {cut}");
        }
    }
}
