//! Bounded tar reader (the pre-1.6 `torch.save` archive that `torch.load` still opens, and
//! any other tar a loader may open, such as pandas' `read_pickle` of a `.tar`).
//!
//! Owns: recognising a tar by its first header's checksum (as Python's `tarfile` does: no
//! magic is required), listing members the way `tarfile` reads them (ustar prefix, old-style
//! directories, data skipped only for regular and unknown member types), and the layout of the legacy PyTorch members: `storages` (a count
//! pickle, then per storage an argument pickle and raw elements, then a views pickle) and
//! `tensors` (a count pickle, then per tensor an argument pickle and fixed-size raw fields),
//! after `torch/serialization.py` `legacy_load`.
//!
//! Must never: trust a size or count beyond the bytes that remain, or call an archive clean
//! that it could not read to its end-of-archive block. Anything it cannot follow exactly
//! (a bad checksum after the first header, data past the end, a storage type of unknown
//! element size) is a problem that makes the scan Unscannable. Pax (`x`, `X`, `g`) and GNU
//! (`L`, `K`, `S`) extension headers are refused outright: `torch.save`'s legacy writer never
//! emits them for its members, and `tarfile` applies them in ways (trailing-slash stripping,
//! records read from the whole padded block, a global `size` applied after the member's own
//! data is skipped) that a second reader would have to copy exactly to see the same members.
//!
//! Specs: POSIX.1-2001 `pax` (ustar header, extended headers), GNU tar manual "Basic Tar
//! Format", CPython `Lib/tarfile.py` (`nti`, `calc_chksums`, `TarInfo.frombuf`, `_proc_member`, `_proc_builtin`).
//!
//! Limits: works on bytes in memory (callers bound their size); members are at most one
//! per 512-byte block, so listing is O(input).

use std::ops::Range;

use super::scanner::{self, Mode, Walk};
use super::stream::StreamOutcome;

/// Size of a tar header or data block.
pub const BLOCK: usize = 512;

/// Member type flags this reader distinguishes (POSIX / GNU).
const REGULAR: &[u8] = b"07\0";
/// Types whose size field `tarfile` does not use to skip data (links, devices, dirs, fifos).
const NO_DATA: &[u8] = b"123456";

/// One archive member.
#[derive(Debug, Clone)]
pub struct Member {
    /// The member name, as `tarfile` reports it (ustar prefix joined, directory slashes removed).
    pub name: Vec<u8>,
    /// The type flag byte (`b'0'` regular file, `b'2'` symlink, ...).
    pub kind: u8,
    /// Where the member's data lies in the archive.
    pub data: Range<usize>,
}

impl Member {
    /// A regular file (types `0`, `7` and the old NUL type without a trailing `/`).
    pub fn is_regular(&self) -> bool {
        REGULAR.contains(&self.kind)
    }

    /// The name for messages (lossy UTF-8).
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// Result of listing an archive.
#[derive(Debug, Default)]
pub struct Listing {
    /// Members in archive order.
    pub members: Vec<Member>,
    /// Archive-level problems (each makes the archive Unscannable).
    pub problems: Vec<String>,
}

/// Python's `nts`: the bytes up to the first NUL.
fn nts(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |p| &b[..p])
}

/// Python's `nti` for a numeric header field: base-256 if the first byte is 0x80 or 0xff,
/// else octal text as `int(text.strip() or "0", 8)` parses it (sign, `0o` prefix and single
/// underscores between digits included). `None` for what Python refuses or for a value
/// outside `i128`.
fn nti(field: &[u8]) -> Option<i128> {
    match field.first() {
        Some(&lead @ (0x80 | 0xff)) => {
            let mut n: i128 = 0;
            for &b in &field[1..] {
                n = n.checked_mul(256)?.checked_add(i128::from(b))?;
            }
            if lead == 0xff {
                n = n.checked_sub(1i128.checked_shl(8 * (field.len() as u32 - 1))?)?;
            }
            Some(n)
        }
        _ => {
            let text = std::str::from_utf8(nts(field)).ok()?;
            let t = text.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c));
            if t.is_empty() {
                return Some(0);
            }
            let (neg, t) = match t.as_bytes()[0] {
                b'-' => (true, &t[1..]),
                b'+' => (false, &t[1..]),
                _ => (false, t),
            };
            let (t, prefixed) = match t.get(..2) {
                Some("0o" | "0O") => (&t[2..], true),
                _ => (t, false),
            };
            let t = if prefixed { t.strip_prefix('_').unwrap_or(t) } else { t };
            if t.is_empty() || t.starts_with('_') || t.ends_with('_') || t.contains("__") {
                return None;
            }
            let mut n: i128 = 0;
            for c in t.bytes().filter(|&c| c != b'_') {
                if !(b'0'..=b'7').contains(&c) {
                    return None;
                }
                n = n.checked_mul(8)?.checked_add(i128::from(c - b'0'))?;
            }
            Some(if neg { -n } else { n })
        }
    }
}

/// Python's `calc_chksums` test: the stored checksum equals the unsigned or the signed sum
/// of the header with its checksum field read as spaces.
fn checksum_ok(h: &[u8]) -> bool {
    let Some(stored) = nti(&h[148..156]) else {
        return false;
    };
    let field = |i: usize| !(148..156).contains(&i);
    let unsigned: i128 =
        256 + h.iter().enumerate().filter(|(i, _)| field(*i)).map(|(_, &b)| i128::from(b)).sum::<i128>();
    let signed: i128 =
        256 + h.iter().enumerate().filter(|(i, _)| field(*i)).map(|(_, &b)| i128::from(b as i8)).sum::<i128>();
    stored == unsigned || stored == signed
}

/// Does `d` start with a tar header that Python's `tarfile` (and so `torch.load`) accepts:
/// a full 512-byte block, not all zeros, with a valid checksum?
pub fn is_tar(d: &[u8]) -> bool {
    d.len() >= BLOCK && d[..BLOCK].iter().any(|&b| b != 0) && checksum_ok(&d[..BLOCK])
}

/// The header types that Python's `tarfile` reads as extensions of the next member (`L`/`K`
/// GNU long name and link, `x`/`X` pax, `g` global pax) or as GNU sparse files (`S`), named
/// for messages; `None` for an ordinary member type.
fn extension(kind: u8) -> Option<&'static str> {
    Some(match kind {
        b'L' => "GNU long-name header",
        b'K' => "GNU long-link header",
        b'x' | b'X' => "pax extended header",
        b'g' => "pax global header",
        b'S' => "GNU sparse member",
        _ => return None,
    })
}

/// Lists the members of the tar archive `d` (which [`is_tar`] accepted).
pub fn list(d: &[u8]) -> Listing {
    let mut l = Listing::default();
    let mut pos = 0usize;
    loop {
        if pos == d.len() {
            l.problems.push(format!("tar archive ends at byte {pos} without an end-of-archive block (truncated?)"));
            return l;
        }
        let Some(h) = d.get(pos..pos + BLOCK) else {
            l.problems.push(format!("tar header at offset {pos} truncated: file has {} bytes", d.len()));
            return l;
        };
        if h.iter().all(|&b| b == 0) {
            return l;
        }
        if !checksum_ok(h) {
            l.problems.push(format!("tar header at offset {pos} has a bad checksum: archive corrupt"));
            return l;
        }
        let mut kind = h[156];
        let size = match nti(&h[124..136]) {
            Some(s) if s >= 0 => u64::try_from(s).unwrap_or(u64::MAX),
            _ => {
                l.problems.push(format!("tar header at offset {pos}: invalid size field"));
                return l;
            }
        };
        if let Some(what) = extension(kind) {
            l.problems.push(format!(
                "tar header at offset {pos} is a {what} (type {:?}): the legacy torch.save tar never uses pax or \
                 GNU extension headers, and tar readers disagree on how to apply them, so this archive cannot be \
                 scanned reliably",
                char::from(kind)
            ));
            return l;
        }
        let data_at = pos + BLOCK;
        let skip = |size: u64| -> Option<usize> {
            let blocks = usize::try_from(size.div_ceil(BLOCK as u64)).ok()?;
            data_at.checked_add(blocks.checked_mul(BLOCK)?)
        };
        let mut name = nts(&h[..100]).to_vec();
        if kind == 0 && name.ends_with(b"/") {
            kind = b'5';
        }
        if kind == b'5' {
            while name.len() > 1 && name.ends_with(b"/") {
                name.pop();
            }
        }
        let prefix = nts(&h[345..500]);
        if !prefix.is_empty() {
            name = [prefix, b"/", &name].concat();
        }
        let has_data = !NO_DATA.contains(&kind);
        let len = if has_data { size } else { 0 };
        let end = usize::try_from(len).ok().and_then(|n| data_at.checked_add(n));
        let Some(end) = end.filter(|&e| e <= d.len()) else {
            l.problems.push(format!(
                "tar member {:?} at offset {pos}: {len} data bytes exceed the file ({} bytes): truncated",
                String::from_utf8_lossy(&name),
                d.len()
            ));
            return l;
        };
        l.members.push(Member { name, kind, data: data_at..end });
        pos = match skip(len) {
            Some(next) => next.min(d.len()),
            None => {
                l.problems.push(format!("tar header at offset {pos}: size {len} overflows"));
                return l;
            }
        };
    }
}

/// Bytes per element of a legacy storage class (`torch.FloatStorage`,
/// `torch.cuda.HalfStorage`, ...), as `torch._utils._element_size` gives them.
pub fn storage_element_size(class: &str) -> Option<u64> {
    let kind = class.strip_prefix("torch.cuda.").or_else(|| class.strip_prefix("torch."))?.strip_suffix("Storage")?;
    Some(match kind {
        "Byte" | "Char" | "Bool" | "QInt8" | "QUInt8" | "QUInt4x2" | "QUInt2x4" => 1,
        "Half" | "BFloat16" | "Short" => 2,
        "Float" | "Int" | "QInt32" => 4,
        "Double" | "Long" | "ComplexFloat" => 8,
        "ComplexDouble" => 16,
        _ => return None,
    })
}

/// Walks one pickle of a legacy record at `pos` (as `pickle.load` reads it), appending its
/// imports to `out`. Returns the walk if it reached STOP, else records the problem.
fn one_pickle(d: &[u8], pos: usize, what: &str, out: &mut StreamOutcome) -> Option<Walk> {
    let mut w = scanner::walk(d, pos, Mode::default(), 0);
    out.events.append(&mut w.events);
    out.pickles += 1;
    match w.error.take() {
        Some((off, msg)) => {
            out.problems.push((off, format!("legacy PyTorch tar: {what} is not a complete pickle: {msg}")));
            None
        }
        None => Some(w),
    }
}

/// The count a legacy record's first pickle returns, checked against what the remaining
/// bytes can hold (`min_each` bytes per item at least).
fn count(w: &Walk, what: &str, remaining: usize, min_each: usize, out: &mut StreamOutcome) -> Option<u64> {
    let n = w.stop_int.and_then(|n| u64::try_from(n).ok());
    let Some(n) = n else {
        out.problems.push((w.end, format!("legacy PyTorch tar: the {what} count is not a non-negative integer")));
        return None;
    };
    if n.checked_mul(min_each as u64).is_none_or(|need| need > remaining as u64) {
        out.problems.push((
            w.end,
            format!("legacy PyTorch tar: {what} count {n} exceeds what the remaining {remaining} bytes can hold"),
        ));
        return None;
    }
    Some(n)
}

/// Scans a legacy `storages` record: a count pickle; per storage an argument pickle
/// `(key, location, storage class)`, a little-endian i64 element count and the raw
/// elements (never unpickled, skipped exactly); then the storage-views pickle. Every pickle
/// is read by plain `pickle.load`, so every import in it is reported.
pub fn legacy_storages(d: &[u8]) -> StreamOutcome {
    let mut out = StreamOutcome { is_pickle: true, legacy_torch: true, ..Default::default() };
    let Some(first) = one_pickle(d, 0, "the storage count", &mut out) else {
        return out;
    };
    let mut pos = first.end;
    // Each storage takes at least a 2-byte pickle and an 8-byte element count.
    let Some(n) = count(&first, "storage", d.len() - pos, 10, &mut out) else {
        return out;
    };
    for i in 0..n {
        let Some(w) = one_pickle(d, pos, &format!("storage {i}'s record"), &mut out) else {
            return out;
        };
        pos = w.end;
        let Some(class) = w.stop_last_global else {
            out.problems.push((pos, format!("legacy PyTorch tar: storage {i}'s record does not name a storage class")));
            return out;
        };
        let Some(elem) = storage_element_size(&class) else {
            out.problems.push((pos, format!("legacy PyTorch tar: storage {i}: element size of {class} is unknown")));
            return out;
        };
        let numel = d.get(pos..pos + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0xff; 8])));
        let Some(numel) = numel else {
            out.problems.push((pos, format!("legacy PyTorch tar: storage {i}: element count truncated")));
            return out;
        };
        let remaining = d.len() - (pos + 8);
        let end = numel.checked_mul(elem).filter(|&b| b <= remaining as u64);
        let Some(bytes) = end else {
            out.problems.push((
                pos,
                format!(
                    "legacy PyTorch tar: storage {i} claims {numel} elements of {elem} bytes, more than the remaining \
                     {remaining} bytes"
                ),
            ));
            return out;
        };
        pos += 8 + bytes as usize;
    }
    one_pickle(d, pos, "the storage views", &mut out);
    out
}

/// Scans a legacy `tensors` record: a count pickle; per tensor an argument pickle, then an
/// i32 rank, 4 unused bytes, rank i64 sizes, rank i64 strides and an i64 storage offset.
pub fn legacy_tensors(d: &[u8]) -> StreamOutcome {
    let mut out = StreamOutcome { is_pickle: true, legacy_torch: true, ..Default::default() };
    let Some(first) = one_pickle(d, 0, "the tensor count", &mut out) else {
        return out;
    };
    let mut pos = first.end;
    // Each tensor takes at least a 2-byte pickle and 16 bytes of fields.
    let Some(n) = count(&first, "tensor", d.len() - pos, 18, &mut out) else {
        return out;
    };
    for i in 0..n {
        let Some(w) = one_pickle(d, pos, &format!("tensor {i}'s record"), &mut out) else {
            return out;
        };
        pos = w.end;
        let ndim = d.get(pos..pos + 4).map(|b| i32::from_le_bytes(b.try_into().unwrap_or([0xff; 4])));
        let need = ndim.and_then(|n| usize::try_from(n).ok()).and_then(|n| n.checked_mul(16)?.checked_add(16));
        match need {
            Some(need) if need <= d.len() - pos => pos += need,
            _ => {
                out.problems.push((
                    pos,
                    format!(
                        "legacy PyTorch tar: tensor {i}: rank {ndim:?} is negative or its fields exceed the record"
                    ),
                ));
                return out;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nti_follows_python() {
        assert_eq!(nti(b"0000644\0"), Some(0o644));
        assert_eq!(nti(b"  17 \0\0\0"), Some(0o17));
        assert_eq!(nti(b"\0\0\0\0"), Some(0));
        assert_eq!(nti(b"0o1_7\0"), Some(0o17));
        assert_eq!(nti(b"-7\0"), Some(-7));
        assert_eq!(nti(b"8\0"), None);
        assert_eq!(nti(b"1__2\0"), None);
        assert_eq!(nti(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]), Some(256));
        assert_eq!(nti(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), Some(-1));
    }

    #[test]
    fn element_sizes() {
        assert_eq!(storage_element_size("torch.FloatStorage"), Some(4));
        assert_eq!(storage_element_size("torch.cuda.HalfStorage"), Some(2));
        assert_eq!(storage_element_size("torch.UntypedStorage"), None);
        assert_eq!(storage_element_size("posix.system"), None);
    }
}
