//! Minimal bounded ZIP reader (PyTorch `.pt/.pth/.bin` zips, TorchScript
//! archives, `.npz`).
//!
//! Owns: locating the end-of-central-directory record (and its ZIP64
//! variant), listing central-directory entries (ZIP64 extra field aware,
//! prepended-data offset fix-up), falling back to walking local file headers
//! when no central directory can be read, and extracting member bytes
//! (stored or deflated) with CRC-32 verification.
//!
//! Spec: PKWARE APPNOTE.TXT 6.3.x
//! (<https://pkware.cachefly.net/webdocs/casestudies/APPNOTE.TXT>),
//! sections 4.3.7 (local header), 4.3.9 (data descriptor), 4.3.12 (central
//! header), 4.3.14–4.3.16 (ZIP64 / EOCD), 4.5.3 (ZIP64 extra field).
//!
//! Policy: every central entry's local header must agree with it on the
//! member name and compression method, and (unless deferred to a data
//! descriptor) on CRC-32 and sizes; a disagreement makes that member
//! Unscannable (a corrupt archive that readers would see differently), and
//! the member is still scanned. General-purpose flag bits are NOT trusted
//! (bugs.md B08): bit 0x1
//! ("encrypted"), 0x20 and 0x40 are ignored and the member is decoded per
//! its method; the CRC decides. A CRC mismatch (real encryption, corruption)
//! is reported by the caller as Unscannable while the bytes are still
//! scanned as a lax reader would see them. Methods other than 0 (stored) and
//! 8 (deflate) are unsupported → Unscannable.
//!
//! Limits: at most [`MAX_ENTRIES`] entries; central directory at most
//! [`MAX_CD_BYTES`]; member bytes are read only up to the caller's cap
//! (larger stored members are read as a [`PREFIX`]-byte prefix).

use std::io::{self, Read, Seek, SeekFrom};

pub const MAX_ENTRIES: usize = 200_000;
pub const MAX_CD_BYTES: u64 = 256 << 20;
/// Prefix read from stored members larger than the member cap.
pub const PREFIX: usize = 1 << 20;

const SIG_LOCAL: u32 = 0x0403_4b50;
const SIG_CENTRAL: u32 = 0x0201_4b50;
const SIG_EOCD: u32 = 0x0605_4b50;
const SIG_EOCD64: u32 = 0x0606_4b50;
const SIG_LOC64: u32 = 0x0706_4b50;
const SIG_DD: u32 = 0x0807_4b50;

/// Random-access byte source (a slice or a `Read + Seek`).
pub trait Source {
    fn size(&self) -> u64;
    /// Read up to `len` bytes at `off` (short only at EOF).
    fn read_at(&mut self, off: u64, len: usize) -> io::Result<Vec<u8>>;
}

impl Source for &[u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn read_at(&mut self, off: u64, len: usize) -> io::Result<Vec<u8>> {
        let start = usize::try_from(off).unwrap_or(usize::MAX).min(self.len());
        Ok(self[start..start.saturating_add(len).min(self.len())].to_vec())
    }
}

/// A `Read + Seek` with a known length.
pub struct ReaderSource<R> {
    pub inner: R,
    pub len: u64,
}

impl<R: Read + Seek> Source for ReaderSource<R> {
    fn size(&self) -> u64 {
        self.len
    }
    fn read_at(&mut self, off: u64, len: usize) -> io::Result<Vec<u8>> {
        if off >= self.len {
            return Ok(Vec::new());
        }
        let len = (len as u64).min(self.len - off);
        self.inner.seek(SeekFrom::Start(off))?;
        let mut buf = Vec::new();
        (&mut self.inner).take(len).read_to_end(&mut buf)?;
        Ok(buf)
    }
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    b.get(i..i + 2).map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}
fn u32_at(b: &[u8], i: usize) -> u32 {
    b.get(i..i + 4).map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}
fn u64_at(b: &[u8], i: usize) -> u64 {
    b.get(i..i + 8).map_or(0, |s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        u64::from_le_bytes(a)
    })
}

/// One archive member.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub flags: u16,
    pub method: u16,
    pub crc: u32,
    pub csize: u64,
    pub usize: u64,
    /// Absolute offset of the member data (after the local header).
    pub data_start: u64,
    /// Ways the local header disagrees with the central directory (name, method, and CRC-32
    /// and sizes unless deferred to a data descriptor); each makes the member Unscannable.
    pub disagreements: Vec<String>,
}

/// Result of listing an archive.
#[derive(Debug, Default)]
pub struct Listing {
    pub entries: Vec<Entry>,
    /// Archive-level problems (each makes the archive Unscannable).
    pub problems: Vec<String>,
}

/// Does this look like the start of a zip archive?
pub fn is_zip(d: &[u8]) -> bool {
    d.starts_with(b"PK\x03\x04") || d.starts_with(b"PK\x05\x06")
}

/// List the members of an archive.
pub fn list(src: &mut dyn Source) -> Listing {
    match central(src) {
        Ok(entries) => Listing { entries, problems: Vec::new() },
        Err(why) => {
            let mut l = walk_local(src);
            l.problems.insert(0, format!("no readable central directory ({why}); archive truncated or corrupt"));
            l
        }
    }
}

fn central(src: &mut dyn Source) -> Result<Vec<Entry>, String> {
    let Directory { base, count, cd_size, cd_off } = locate_directory(src)?;
    if cd_size > MAX_CD_BYTES {
        return Err(format!("central directory larger than {MAX_CD_BYTES} bytes"));
    }
    let cd = src.read_at(base + cd_off, cd_size as usize).map_err(|e| e.to_string())?;
    if (cd.len() as u64) < cd_size {
        return Err("central directory truncated".into());
    }
    let mut out = Vec::new();
    let mut p = 0usize;
    // Read every entry the directory bytes hold, even beyond the declared
    // count (CPython's zipfile does; miniz trusts the count): a superset.
    while p + 46 <= cd.len() {
        if u32_at(&cd, p) != SIG_CENTRAL && out.len() as u64 >= count {
            break;
        }
        if u32_at(&cd, p) != SIG_CENTRAL {
            return Err(format!("bad central directory entry signature at +{p}"));
        }
        if out.len() >= MAX_ENTRIES {
            return Err(format!("more than {MAX_ENTRIES} entries"));
        }
        let (e, len) = central_entry(src, &cd, p, base)?;
        out.push(e);
        p += len;
    }
    Ok(out)
}

/// Where the central directory is, from the end of central directory record (or the ZIP64 one).
struct Directory {
    /// Bytes prepended to the archive: added to every offset the archive records.
    base: u64,
    /// Entries the record declares.
    count: u64,
    /// Declared size of the directory in bytes.
    cd_size: u64,
    /// Declared offset of the directory, before `base` is added.
    cd_off: u64,
}

/// Finds the end of central directory record in the last 64 KiB + 22 bytes, and the ZIP64
/// record when a locator precedes it.
fn locate_directory(src: &mut dyn Source) -> Result<Directory, String> {
    let size = src.size();
    let tail_len = size.min(22 + 65_535) as usize;
    let tail_off = size - tail_len as u64;
    let tail = src.read_at(tail_off, tail_len).map_err(|e| e.to_string())?;
    let i = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| u32_at(&tail, i) == SIG_EOCD && i + 22 + usize::from(u16_at(&tail, i + 20)) <= tail.len())
        .ok_or("end of central directory record not found")?;
    let eocd_pos = tail_off + i as u64;
    let mut count = u64::from(u16_at(&tail, i + 10));
    let mut cd_size = u64::from(u32_at(&tail, i + 12));
    let mut cd_off = u64::from(u32_at(&tail, i + 16));
    let mut dir_end = eocd_pos;
    // A ZIP64 locator right before the EOCD wins (as CPython's zipfile does);
    // the ZIP64 EOCD record is read from just before the locator.
    if eocd_pos >= 76 {
        let loc = src.read_at(eocd_pos - 20, 20).map_err(|e| e.to_string())?;
        if u32_at(&loc, 0) == SIG_LOC64 {
            let e64_pos = eocd_pos - 76;
            let e64 = src.read_at(e64_pos, 56).map_err(|e| e.to_string())?;
            if e64.len() < 56 || u32_at(&e64, 0) != SIG_EOCD64 {
                return Err("ZIP64 end of central directory record not found".into());
            }
            count = u64_at(&e64, 32);
            cd_size = u64_at(&e64, 40);
            cd_off = u64_at(&e64, 48);
            dir_end = e64_pos;
        }
    }
    // Bytes prepended to the archive shift every offset (APPNOTE 4.3.6).
    let base = dir_end
        .checked_sub(cd_size)
        .and_then(|x| x.checked_sub(cd_off))
        .ok_or("central directory offsets exceed the file")?;
    Ok(Directory { base, count, cd_size, cd_off })
}

/// Reads the central entry at byte `p` of the directory `cd` and checks its local header (at
/// `base` + the recorded offset) against it. Returns the entry and the entry's length in `cd`.
fn central_entry(src: &mut dyn Source, cd: &[u8], p: usize, base: u64) -> Result<(Entry, usize), String> {
    let (nl, xl, cl) =
        (usize::from(u16_at(cd, p + 28)), usize::from(u16_at(cd, p + 30)), usize::from(u16_at(cd, p + 32)));
    let name_b = cd.get(p + 46..p + 46 + nl).ok_or("central entry name truncated")?;
    let extra = cd.get(p + 46 + nl..p + 46 + nl + xl).unwrap_or(&[]);
    let mut e = Entry {
        name: String::from_utf8_lossy(name_b).into_owned(),
        flags: u16_at(cd, p + 8),
        method: u16_at(cd, p + 10),
        crc: u32_at(cd, p + 16),
        csize: u64::from(u32_at(cd, p + 20)),
        usize: u64::from(u32_at(cd, p + 24)),
        data_start: 0,
        disagreements: Vec::new(),
    };
    let mut local = u64::from(u32_at(cd, p + 42));
    apply_zip64(extra, &mut e.usize, &mut e.csize, Some(&mut local));
    let at = base.checked_add(local).ok_or("local header offset overflows")?;
    let lh = src.read_at(at, 30).map_err(|x| x.to_string())?;
    if u32_at(&lh, 0) != SIG_LOCAL || lh.len() < 30 {
        return Err(format!("member {:?}: local header missing at offset {}", e.name, at));
    }
    let (lnl, lxl) = (u16_at(&lh, 26), u16_at(&lh, 28));
    let lnx = src.read_at(at + 30, usize::from(lnl) + usize::from(lxl)).map_err(|x| x.to_string())?;
    e.disagreements = compare_local(&e, name_b, &lh, &lnx, usize::from(lnl));
    e.data_start = at + 30 + u64::from(lnl) + u64::from(lxl);
    Ok((e, 46 + nl + xl + cl))
}

/// Compares the local header `lh` (30 bytes), followed by its name and extra field `lnx`
/// (name `lnl` bytes long), with the central entry `e` whose raw name is `central_name`.
///
/// The name and compression method must agree (Python's `zipfile` refuses a name mismatch;
/// readers that trust local headers, such as streaming unzippers, would otherwise see
/// another member than the one scanned). Unless the local header defers CRC-32 and sizes to
/// a data descriptor (flag bit 3), those must agree too. Flag bits are not compared: they
/// are not trusted anyway (bugs.md B08).
fn compare_local(e: &Entry, central_name: &[u8], lh: &[u8], lnx: &[u8], lnl: usize) -> Vec<String> {
    let mut out = Vec::new();
    let local_name = lnx.get(..lnl).unwrap_or(lnx);
    if local_name != central_name {
        out.push(format!(
            "local header names the member {:?} but the central directory names it {:?}: corrupt archive",
            String::from_utf8_lossy(local_name),
            e.name
        ));
    }
    let method = u16_at(lh, 8);
    if method != e.method {
        out.push(format!(
            "compression method differs: local header {method}, central directory {}: corrupt archive",
            e.method
        ));
    }
    if u16_at(lh, 6) & 0x08 == 0 {
        let crc = u32_at(lh, 14);
        if crc != e.crc {
            out.push(format!(
                "CRC-32 differs: local header 0x{crc:08x}, central directory 0x{:08x}: corrupt archive",
                e.crc
            ));
        }
        let (mut usz, mut csz) = (u64::from(u32_at(lh, 22)), u64::from(u32_at(lh, 18)));
        apply_zip64(lnx.get(lnl..).unwrap_or(&[]), &mut usz, &mut csz, None);
        if (csz, usz) != (e.csize, e.usize) {
            out.push(format!(
                "sizes differ: local header {csz} compressed / {usz} uncompressed, central directory {} / {}: \
                 corrupt archive",
                e.csize, e.usize
            ));
        }
    }
    out
}

/// Apply a ZIP64 extended-information extra field (APPNOTE 4.5.3).
fn apply_zip64(extra: &[u8], usz: &mut u64, csz: &mut u64, off: Option<&mut u64>) {
    let mut q = 0;
    while q + 4 <= extra.len() {
        let (id, len) = (u16_at(extra, q), usize::from(u16_at(extra, q + 2)));
        let body = extra.get(q + 4..q + 4 + len).unwrap_or(&[]);
        if id == 1 {
            let mut r = 0;
            let mut next = |v: &mut u64| {
                if *v == 0xffff_ffff && r + 8 <= body.len() {
                    *v = u64_at(body, r);
                    r += 8;
                }
            };
            next(usz);
            next(csz);
            if let Some(o) = off {
                next(o);
            }
            return;
        }
        q += 4 + len;
    }
}

/// Fallback: walk local file headers from the start (APPNOTE 4.3.7/4.3.9).
fn walk_local(src: &mut dyn Source) -> Listing {
    let mut l = Listing::default();
    let size = src.size();
    let mut pos = 0u64;
    while pos + 30 <= size && l.entries.len() < MAX_ENTRIES {
        let Ok(h) = src.read_at(pos, 30) else { break };
        if u32_at(&h, 0) != SIG_LOCAL {
            break;
        }
        let (nl, xl) = (u64::from(u16_at(&h, 26)), u64::from(u16_at(&h, 28)));
        let Ok(nx) = src.read_at(pos + 30, (nl + xl) as usize) else {
            break;
        };
        let mut e = Entry {
            name: String::from_utf8_lossy(nx.get(..nl as usize).unwrap_or(&[])).into_owned(),
            flags: u16_at(&h, 6),
            method: u16_at(&h, 8),
            crc: u32_at(&h, 14),
            csize: u64::from(u32_at(&h, 18)),
            usize: u64::from(u32_at(&h, 22)),
            data_start: pos + 30 + nl + xl,
            disagreements: Vec::new(),
        };
        apply_zip64(nx.get(nl as usize..).unwrap_or(&[]), &mut e.usize, &mut e.csize, None);
        if e.flags & 0x08 != 0 && e.csize == 0 {
            l.problems.push(format!(
                "member {:?}: sizes deferred to a data descriptor; cannot delimit without a central directory",
                e.name
            ));
            l.entries.push(e);
            break;
        }
        let mut next = e.data_start.saturating_add(e.csize);
        if e.flags & 0x08 != 0 {
            let dd = src.read_at(next, 4).unwrap_or_default();
            next += if u32_at(&dd, 0) == SIG_DD { 16 } else { 12 };
        }
        l.entries.push(e);
        pos = next;
    }
    if l.entries.is_empty() {
        l.problems.push("no readable local file header".into());
    }
    l
}

/// Member bytes as read from the archive.
#[derive(Debug)]
pub struct MemberData {
    pub data: Vec<u8>,
    /// The CRC-32 of `data` matches the header.
    pub crc_ok: bool,
    /// The CRC-32 of `data` (0 when only a prefix was read).
    pub crc: u32,
    /// Only the first [`PREFIX`] bytes were read (member above the cap).
    pub prefix_only: bool,
}

/// Extract one member, reading/inflating at most `cap` bytes.
pub fn read_member(src: &mut dyn Source, e: &Entry, cap: u64, ratio: u64) -> Result<MemberData, String> {
    let end = e.data_start.checked_add(e.csize).ok_or("member size overflow")?;
    if end > src.size() {
        return Err(format!("member data truncated: needs bytes up to {end}, file has {}", src.size()));
    }
    let encrypted_hint = if e.flags & 0x41 != 0 { " (member is encrypted)" } else { "" };
    match e.method {
        0 => {
            if e.csize > cap {
                let data = src.read_at(e.data_start, PREFIX).map_err(|x| x.to_string())?;
                return Ok(MemberData { data, crc_ok: true, crc: 0, prefix_only: true });
            }
            let data = src.read_at(e.data_start, e.csize as usize).map_err(|x| x.to_string())?;
            let crc = crc32(&data);
            Ok(MemberData { crc_ok: crc == e.crc, crc, data, prefix_only: false })
        }
        8 => {
            if e.csize > cap {
                return Err(format!("compressed member larger than the {cap}-byte cap"));
            }
            let raw = src.read_at(e.data_start, e.csize as usize).map_err(|x| x.to_string())?;
            let data = super::wrappers::inflate_raw(&raw, cap, ratio).map_err(|x| format!("{x}{encrypted_hint}"))?;
            let crc = crc32(&data);
            Ok(MemberData { crc_ok: crc == e.crc, crc, data, prefix_only: false })
        }
        m => Err(format!("unsupported compression method {m}{encrypted_hint}")),
    }
}

pub fn crc32(d: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(d);
    c.sum()
}

/// If `entries` form a TorchScript archive, the names of the records that TorchScript's C++
/// unpickler reads (`<root>/data.pkl` and `<root>/constants.pkl`), else `None`.
///
/// PyTorch's archive reader takes the folder of the first record as the archive root, and
/// `torch.load` hands an archive with a `constants.pkl` record to `torch.jit.load`
/// (`torch/serialization.py` `_is_torchscript_zip`). A TorchScript archive is recognised here
/// by both a `<root>/constants.pkl` and at least one `<root>/code/` record; anything else
/// (a `torch.save` zip, an `.npz`) is read by Python's unpickler.
pub fn torchscript_records(entries: &[Entry]) -> Option<[String; 2]> {
    let (root, _) = entries.first()?.name.split_once('/')?;
    let constants = format!("{root}/constants.pkl");
    let code = format!("{root}/code/");
    let has_constants = entries.iter().any(|e| e.name == constants);
    let has_code = entries.iter().any(|e| e.name.starts_with(&code));
    (has_constants && has_code).then(|| [format!("{root}/data.pkl"), constants])
}
