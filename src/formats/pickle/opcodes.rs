//! Pickle opcode table and bounded argument decoding.
//!
//! Owns: the complete opcode table of pickle protocols 0–5 (68 opcodes) and
//! the decoding of every argument encoding (decimalnl_short/long, stringnl,
//! stringnl_noescape(_pair), uint1/2/4/8, int4, long1/long4, string1/4,
//! bytes1/4/8, bytearray8, unicodestringnl/1/4/8, floatnl, float8).
//!
//! Spec followed: CPython `Lib/pickletools.py` (the `opcodes` list and the
//! `ArgumentDescriptor`s) and `Lib/pickle.py` / `Modules/_pickle.c` for the
//! exact loader behaviour
//! (<https://github.com/python/cpython/blob/main/Lib/pickletools.py>).
//!
//! Limits: every length prefix is checked against the bytes that remain
//! before any slice is taken, and nothing is allocated from a claimed size.
//! Strings are decoded at most up to [`MAX_TEXT`] bytes (longer values are
//! kept truncated and flagged). Decoding is never stricter than CPython's:
//! where CPython accepts input (e.g. surrogates in UTF-8 via
//! `surrogatepass`), lossy decoding is used instead of failing.

use std::borrow::Cow;

/// Longest string value kept verbatim (longer ones are truncated).
pub const MAX_TEXT: usize = 4096;

/// How an opcode's argument is encoded in the stream (pickletools names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    None,
    Uint1,
    Uint2,
    Uint4,
    Int4,
    Uint8,
    DecimalNlShort,
    DecimalNlLong,
    StringNl,
    StringNlNoescape,
    StringNlNoescapePair,
    String1,
    String4,
    Bytes1,
    Bytes4,
    Bytes8,
    Bytearray8,
    UnicodeNl,
    Unicode1,
    Unicode4,
    Unicode8,
    FloatNl,
    Float8,
    Long1,
    Long4,
}

/// One row of the opcode table.
#[derive(Clone, Copy, Debug)]
pub struct OpInfo {
    pub code: u8,
    pub name: &'static str,
    pub arg: ArgKind,
    /// Protocol that introduced the opcode (informational: CPython's
    /// unpickler accepts every opcode regardless of the PROTO header).
    #[cfg_attr(not(test), allow(dead_code))]
    pub proto: u8,
}

macro_rules! ops {
    ($( $code:expr, $name:literal, $arg:ident, $proto:literal; )*) => {
        /// All opcodes of protocols 0–5, as listed in `pickletools.opcodes`.
        pub const OPCODES: &[OpInfo] = &[ $( OpInfo { code: $code, name: $name, arg: ArgKind::$arg, proto: $proto }, )* ];
    };
}

ops! {
    b'I', "INT", DecimalNlShort, 0;
    b'J', "BININT", Int4, 1;
    b'K', "BININT1", Uint1, 1;
    b'M', "BININT2", Uint2, 1;
    b'L', "LONG", DecimalNlLong, 0;
    0x8a, "LONG1", Long1, 2;
    0x8b, "LONG4", Long4, 2;
    b'S', "STRING", StringNl, 0;
    b'T', "BINSTRING", String4, 1;
    b'U', "SHORT_BINSTRING", String1, 1;
    b'B', "BINBYTES", Bytes4, 3;
    b'C', "SHORT_BINBYTES", Bytes1, 3;
    0x8e, "BINBYTES8", Bytes8, 4;
    0x96, "BYTEARRAY8", Bytearray8, 5;
    0x97, "NEXT_BUFFER", None, 5;
    0x98, "READONLY_BUFFER", None, 5;
    b'N', "NONE", None, 0;
    0x88, "NEWTRUE", None, 2;
    0x89, "NEWFALSE", None, 2;
    b'V', "UNICODE", UnicodeNl, 0;
    0x8c, "SHORT_BINUNICODE", Unicode1, 4;
    b'X', "BINUNICODE", Unicode4, 1;
    0x8d, "BINUNICODE8", Unicode8, 4;
    b'F', "FLOAT", FloatNl, 0;
    b'G', "BINFLOAT", Float8, 1;
    b']', "EMPTY_LIST", None, 1;
    b'a', "APPEND", None, 0;
    b'e', "APPENDS", None, 1;
    b'l', "LIST", None, 0;
    b')', "EMPTY_TUPLE", None, 1;
    b't', "TUPLE", None, 0;
    0x85, "TUPLE1", None, 2;
    0x86, "TUPLE2", None, 2;
    0x87, "TUPLE3", None, 2;
    b'}', "EMPTY_DICT", None, 1;
    b'd', "DICT", None, 0;
    b's', "SETITEM", None, 0;
    b'u', "SETITEMS", None, 1;
    0x8f, "EMPTY_SET", None, 4;
    0x90, "ADDITEMS", None, 4;
    0x91, "FROZENSET", None, 4;
    b'0', "POP", None, 0;
    b'2', "DUP", None, 0;
    b'(', "MARK", None, 0;
    b'1', "POP_MARK", None, 1;
    b'g', "GET", DecimalNlShort, 0;
    b'h', "BINGET", Uint1, 1;
    b'j', "LONG_BINGET", Uint4, 1;
    b'p', "PUT", DecimalNlShort, 0;
    b'q', "BINPUT", Uint1, 1;
    b'r', "LONG_BINPUT", Uint4, 1;
    0x94, "MEMOIZE", None, 4;
    0x82, "EXT1", Uint1, 2;
    0x83, "EXT2", Uint2, 2;
    0x84, "EXT4", Int4, 2;
    b'c', "GLOBAL", StringNlNoescapePair, 0;
    0x93, "STACK_GLOBAL", None, 4;
    b'R', "REDUCE", None, 0;
    b'b', "BUILD", None, 0;
    b'i', "INST", StringNlNoescapePair, 0;
    b'o', "OBJ", None, 1;
    0x81, "NEWOBJ", None, 2;
    0x92, "NEWOBJ_EX", None, 4;
    0x80, "PROTO", Uint1, 2;
    b'.', "STOP", None, 0;
    0x95, "FRAME", Uint8, 4;
    b'P', "PERSID", StringNlNoescape, 0;
    b'Q', "BINPERSID", None, 1;
}

/// Look an opcode byte up in the table.
pub fn lookup(code: u8) -> Option<&'static OpInfo> {
    OPCODES.iter().find(|o| o.code == code)
}

/// A decoded argument. Slices borrow from the input.
#[derive(Debug, Clone)]
pub enum Arg<'a> {
    None,
    /// Integer argument (fixed-width, small LONG1/LONG4 or a parsed decimal).
    Int(i128),
    /// Integer too large for i128, or a decimal line that is not a number.
    OtherNumber,
    /// A text line (decimalnl / floatnl / persid), without the newline.
    Line(&'a [u8]),
    /// A string value (already unescaped/decoded); `bool` = truncated.
    Text(Cow<'a, str>, bool),
    /// Raw bytes argument (bytes*/bytearray8), content not kept.
    Bytes,
    /// GLOBAL/INST module and name; `bool` = the name line hit EOF (CPython
    /// still resolves it, chopping the last byte, before failing).
    Pair(String, String, bool),
}

/// Bounded cursor over the pickle bytes.
pub struct Cursor<'a> {
    pub data: &'a [u8],
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8], pos: usize) -> Self {
        Cursor { data, pos }
    }
    pub fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }
    /// Take `n` bytes, checked against the remaining length first.
    pub fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        if n > self.remaining() as u64 {
            return Err(format!("argument of {n} bytes exceeds the {} bytes left", self.remaining()));
        }
        let n = n as usize;
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn uint(&mut self, n: usize) -> Result<u64, String> {
        let b = self.take(n as u64)?;
        Ok(b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }
    /// Read a newline-terminated line; `Ok((line, true))` when the newline
    /// was present, `Ok((rest, false))` when EOF came first.
    fn line(&mut self) -> (&'a [u8], bool) {
        let rest = &self.data[self.pos.min(self.data.len())..];
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                self.pos += i + 1;
                (&rest[..i], true)
            }
            None => {
                self.pos = self.data.len();
                (rest, false)
            }
        }
    }
    fn full_line(&mut self) -> Result<&'a [u8], String> {
        match self.line() {
            (l, true) => Ok(l),
            _ => Err("line argument not terminated by a newline (truncated)".into()),
        }
    }
}

fn text(bytes: &[u8]) -> Arg<'_> {
    let trunc = bytes.len() > MAX_TEXT;
    let b = &bytes[..bytes.len().min(MAX_TEXT)];
    Arg::Text(String::from_utf8_lossy(b), trunc)
}

fn latin1(bytes: &[u8]) -> Arg<'static> {
    let trunc = bytes.len() > MAX_TEXT;
    let s: String = bytes.iter().take(MAX_TEXT).map(|&b| char::from(b)).collect();
    Arg::Text(Cow::Owned(s), trunc)
}

fn signed_le(b: &[u8]) -> Arg<'static> {
    if b.is_empty() {
        return Arg::Int(0);
    }
    if b.len() > 16 {
        return Arg::OtherNumber;
    }
    let mut v: i128 = if b[b.len() - 1] & 0x80 != 0 { -1 } else { 0 };
    for &x in b.iter().rev() {
        v = (v << 8) | i128::from(x);
    }
    Arg::Int(v)
}

/// Undo Python `codecs.escape_decode` (STRING opcode), result as latin-1.
fn escape_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len().min(MAX_TEXT));
    let mut i = 0;
    while i < s.len() && out.len() <= MAX_TEXT {
        let c = s[i];
        i += 1;
        if c != b'\\' || i >= s.len() {
            out.push(c);
            continue;
        }
        let e = s[i];
        i += 1;
        match e {
            b'\n' => {}
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'v' => out.push(11),
            b'x' => {
                let hex = s.get(i..i + 2).and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.extend_from_slice(b"\\x"),
                }
            }
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match s.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    out
}

/// Decode Python's `raw-unicode-escape` (UNICODE opcode).
fn raw_unicode_escape(s: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < s.len() && out.len() <= MAX_TEXT {
        if s[i] == b'\\' && i + 1 < s.len() && (s[i + 1] == b'u' || s[i + 1] == b'U') {
            let n = if s[i + 1] == b'u' { 4 } else { 8 };
            let hex = s.get(i + 2..i + 2 + n).and_then(|h| std::str::from_utf8(h).ok());
            if let Some(v) = hex.and_then(|h| u32::from_str_radix(h, 16).ok()) {
                out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                i += 2 + n;
                continue;
            }
        }
        out.push(char::from(s[i]));
        i += 1;
    }
    out
}

/// Decode the argument of `op` at the cursor position.
pub fn read_arg<'a>(cur: &mut Cursor<'a>, op: &OpInfo) -> Result<Arg<'a>, String> {
    Ok(match op.arg {
        ArgKind::None => Arg::None,
        ArgKind::Uint1 => Arg::Int(i128::from(cur.uint(1)?)),
        ArgKind::Uint2 => Arg::Int(i128::from(cur.uint(2)?)),
        ArgKind::Uint4 => Arg::Int(i128::from(cur.uint(4)?)),
        ArgKind::Uint8 => Arg::Int(i128::from(cur.uint(8)?)),
        ArgKind::Int4 => Arg::Int(i128::from(cur.uint(4)? as u32 as i32)),
        ArgKind::DecimalNlShort | ArgKind::DecimalNlLong | ArgKind::FloatNl => Arg::Line(cur.full_line()?),
        ArgKind::StringNlNoescape => Arg::Line(cur.full_line()?),
        ArgKind::StringNl => string_nl(cur)?,
        ArgKind::StringNlNoescapePair => global_pair(cur)?,
        ArgKind::String1 => {
            let n = cur.uint(1)?;
            latin1(cur.take(n)?)
        }
        ArgKind::String4 => {
            let n = cur.uint(4)? as u32 as i32;
            if n < 0 {
                return Err("BINSTRING pickle has negative byte count".into());
            }
            latin1(cur.take(n as u64)?)
        }
        ArgKind::Bytes1 => {
            let n = cur.uint(1)?;
            cur.take(n)?;
            Arg::Bytes
        }
        ArgKind::Bytes4 => {
            let n = cur.uint(4)?;
            cur.take(n)?;
            Arg::Bytes
        }
        ArgKind::Bytes8 | ArgKind::Bytearray8 => {
            let n = cur.uint(8)?;
            cur.take(n)?;
            Arg::Bytes
        }
        ArgKind::UnicodeNl => {
            let l = cur.full_line()?;
            Arg::Text(Cow::Owned(raw_unicode_escape(l)), l.len() > MAX_TEXT)
        }
        ArgKind::Unicode1 => {
            let n = cur.uint(1)?;
            text(cur.take(n)?)
        }
        ArgKind::Unicode4 => {
            let n = cur.uint(4)?;
            text(cur.take(n)?)
        }
        ArgKind::Unicode8 => {
            let n = cur.uint(8)?;
            text(cur.take(n)?)
        }
        ArgKind::Float8 => {
            cur.take(8)?;
            Arg::None
        }
        ArgKind::Long1 => {
            let n = cur.uint(1)?;
            signed_le(cur.take(n)?)
        }
        ArgKind::Long4 => {
            let n = cur.uint(4)? as u32 as i32;
            if n < 0 {
                return Err("LONG pickle has negative byte count".into());
            }
            signed_le(cur.take(n as u64)?)
        }
    })
}

/// The argument of STRING: one quoted line, backslash escapes decoded.
fn string_nl<'a>(cur: &mut Cursor<'a>) -> Result<Arg<'a>, String> {
    let l = cur.full_line()?;
    let l = l.strip_suffix(b"\r").unwrap_or(l);
    let quoted = l.len() >= 2 && (l[0] == b'\'' || l[0] == b'"') && l[l.len() - 1] == l[0];
    if !quoted {
        return Err("the STRING opcode argument must be quoted".into());
    }
    let dec = escape_decode(&l[1..l.len() - 1]);
    Ok(latin1(&dec))
}

/// The argument of GLOBAL and INST: a module line and a name line, both strict UTF-8. A name
/// line cut off by the end of the data is kept (without its last byte) and marked.
fn global_pair<'a>(cur: &mut Cursor<'a>) -> Result<Arg<'a>, String> {
    let (m, ok) = cur.line();
    if !ok || m.is_empty() {
        return Err("GLOBAL/INST module line truncated".into());
    }
    let (n, complete) = cur.line();
    let n = if complete { n } else { n.get(..n.len().saturating_sub(1)).unwrap_or(&[]) };
    if n.is_empty() {
        return Err("GLOBAL/INST name line truncated".into());
    }
    // CPython decodes both lines as strict UTF-8 before find_class.
    let (Ok(m), Ok(n)) = (std::str::from_utf8(m), std::str::from_utf8(n)) else {
        return Err("GLOBAL/INST argument is not valid UTF-8".into());
    };
    Ok(Arg::Pair(m.to_string(), n.to_string(), !complete))
}

/// Parse a decimalnl argument the way `int(line, 0)`/`int(line)` would,
/// accepting the protocol-0 `00`/`01` booleans and a trailing `L`.
pub fn parse_decimal(line: &[u8]) -> Option<i128> {
    let s = std::str::from_utf8(line).ok()?.trim();
    let s = s.strip_suffix('L').unwrap_or(s);
    s.parse::<i128>().ok()
}
