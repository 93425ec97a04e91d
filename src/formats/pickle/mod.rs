//! Pickle security scanner: decides whether loading a file with Python
//! (`pickle`, `torch.load`, `joblib.load`, `numpy.load(allow_pickle=True)`)
//! could run code.
//!
//! Owns: the public API ([`scan_bytes`], [`scan_reader`], [`ScanOptions`],
//! [`ScanReport`], [`Finding`]) and the reading of the input; content-based dispatch is in
//! `dispatch`: ZIP archives (`zip`), tar archives (`tar`), compression wrappers and `.npy`
//! (`wrappers`), pickle streams (`stream`, `scanner` over the value model in `values`,
//! `joblib`), judged by an exact allow-list (`allowlist`). Everything is recognised by content,
//! never by file or member name.
//!
//! Strict vs sniff: the top-level input, decompressed wrapper output, `.npy`
//! object payloads and legacy-torch pickles are expected to be pickles, so a
//! parse failure there is Unscannable. Zip members are of unknown type
//! (TorchScript code, raw tensor storage, text): a member that fails to
//! parse before any import is inert data, because without an import nothing
//! callable exists; an import seen before the failure is still reported, and
//! a failure caused by the scanner's own caps is always Unscannable.
//!
//! Principle: a pickle can only run code through the objects it imports
//! (GLOBAL, INST, STACK_GLOBAL, EXT1/2/4). Every import the unpickler could
//! perform before it stops is reported; an import not on the allow-list, or
//! one that cannot be named, makes the verdict Dangerous. Anything that
//! cannot be read completely (truncated, encrypted, unsupported method, cap
//! hit) makes it at least Unscannable — never Clean.
//!
//! Specs: CPython `Lib/pickletools.py` / `Lib/pickle.py`; PKWARE APPNOTE
//! (<https://pkware.cachefly.net/webdocs/casestudies/APPNOTE.TXT>); NumPy
//! `.npy` format; joblib `numpy_pickle.py`; PyTorch `serialization.py`.
//!
//! Limits: offsets in findings are relative to the innermost decoded blob
//! (the zip member or decompressed data named by `member`). Inputs larger
//! than `max_in_memory_bytes` given to [`scan_reader`] are scanned only if
//! they are zips (member by member) or legacy PyTorch files whose pickles fit
//! in the prefix; otherwise they are Unscannable (a tar larger than that is
//! too). Tar archives (`tar`: the pre-1.6 `torch.save` layout and any other
//! tar) are walked member by member; 7z archives are not opened
//! (Unscannable).

mod allowlist;
mod dispatch;
mod joblib;
mod opcodes;
mod scanner;
mod stream;
mod tar;
mod values;
mod wrappers;
mod zip;

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod tests;

use std::io::{Read, Seek, SeekFrom};

use serde::Serialize;

use dispatch::Ctx;

pub use allowlist::{builtin_len as allowlist_len, is_allowed};
pub use tar::is_tar;

/// Overall outcome of a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// Every import is allow-listed and everything was read completely.
    Clean,
    /// At least one import is not allow-listed or cannot be named.
    Dangerous,
    /// Something could not be read completely; treat as blocked.
    Unscannable,
}

/// What kind of finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FindingKind {
    /// An import that is not on the allow-list, or that cannot be named.
    Dangerous,
    /// Something that could not be read completely (truncated, encrypted, over a cap).
    Unscannable,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `module.qualname` of the import (empty for Unscannable findings that
    /// are not about a global).
    pub global: String,
    /// Byte offset of the opcode/record in the innermost blob.
    pub offset: u64,
    /// Zip member / wrapper chain, e.g. `archive/data.pkl`, `gzip>`,
    /// `outer.npz!arr_0.npy`; `None` for the top-level stream.
    pub member: Option<String>,
    /// Dangerous or unscannable.
    pub kind: FindingKind,
    /// One line saying why.
    pub reason: String,
}

/// The result of scanning one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScanReport {
    /// Overall outcome: the worst of the findings.
    pub verdict: Verdict,
    /// Every problem found, in the order found.
    pub findings: Vec<Finding>,
    /// Every distinct import seen (allowed or not), sorted.
    pub globals: Vec<String>,
}

impl ScanReport {
    /// Dangerous findings naming `global`.
    pub fn has_dangerous(&self, global: &str) -> bool {
        self.findings.iter().any(|f| f.kind == FindingKind::Dangerous && f.global == global)
    }
}

/// Limits and allow-list extensions for one scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScanOptions {
    /// Extra exact `module.qualname` globals to allow.
    pub extra_allowed: Vec<String>,
    /// Total bytes that decompression (all wrappers and deflated members of
    /// one scan together) may produce.
    pub max_decompressed_bytes: u64,
    /// Largest output/input ratio of one decompression (checked once the
    /// output passes 1 MiB).
    pub max_ratio: u64,
    /// Maximum nesting of archives/wrappers.
    pub max_depth: u32,
    /// Largest non-zip input [`scan_reader`] reads into memory.
    pub max_in_memory_bytes: u64,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            extra_allowed: Vec::new(),
            max_decompressed_bytes: 512 << 20,
            max_ratio: 1000,
            max_depth: 8,
            max_in_memory_bytes: 1 << 30,
        }
    }
}

/// Scan an in-memory file.
pub fn scan_bytes(bytes: &[u8], opts: &ScanOptions) -> ScanReport {
    let mut cx = Ctx::new(opts);
    cx.blob(bytes, "", 0, true);
    cx.finish()
}

/// Scan a seekable file of `len` bytes. Zips are read member by member;
/// other inputs up to `max_in_memory_bytes` are read whole. A larger tar is
/// Unscannable; a larger non-tar is judged only if it is a legacy PyTorch file
/// whose pickles fit in that prefix.
pub fn scan_reader<R: Read + Seek>(mut r: R, len: u64, opts: &ScanOptions) -> ScanReport {
    let mut cx = Ctx::new(opts);
    let mut head = Vec::new();
    let read = r.seek(SeekFrom::Start(0)).and_then(|_| (&mut r).take(tar::BLOCK as u64).read_to_end(&mut head));
    if let Err(e) = read {
        cx.unscannable("", 0, format!("read error: {e}"));
        return cx.finish();
    }
    if zip::is_zip(&head) {
        cx.zip(&mut zip::ReaderSource { inner: r, len }, "", 0);
        return cx.finish();
    }
    if len > opts.max_in_memory_bytes && tar::is_tar(&head) {
        // `torch.load` reads a tar's members, not its leading bytes: a prefix proves nothing.
        cx.unscannable(
            "",
            0,
            format!(
                "tar archive of {len} bytes exceeds max_in_memory_bytes ({}): its members cannot be walked",
                opts.max_in_memory_bytes
            ),
        );
        return cx.finish();
    }
    let want = len.min(opts.max_in_memory_bytes);
    let mut buf = Vec::new();
    let read = r.seek(SeekFrom::Start(0)).and_then(|_| (&mut r).take(want).read_to_end(&mut buf));
    if let Err(e) = read {
        cx.unscannable("", 0, format!("read error: {e}"));
        return cx.finish();
    }
    if len <= opts.max_in_memory_bytes {
        cx.blob(&buf, "", 0, true);
        return cx.finish();
    }
    // Too large to hold: only a legacy PyTorch file (pickles first, raw
    // storages after) can be judged from its prefix.
    let s = stream::scan(&buf, true);
    let complete = s.legacy_torch && s.problems.is_empty();
    cx.stream_findings("", 0, s, false);
    if !complete {
        cx.unscannable(
            "",
            0,
            format!("input of {len} bytes exceeds max_in_memory_bytes ({})", opts.max_in_memory_bytes),
        );
    }
    cx.finish()
}

/// Scans a file that is not presumed to be a pickle for pickle content, as an unpickler would
/// read it: the bytes are walked as a pickle stream (sniff mode). If the walk fails before any
/// import, unpickling the file cannot run code, and `None` is returned (it is data). Any import
/// seen is reported as for a pickle. The prefix read grows from 64 KiB while the walk is still
/// going, up to `opts.max_in_memory_bytes`; a walk still going there is Unscannable. A zip
/// archive with data in front of it (which Python's `zipfile` accepts) is Unscannable too.
pub fn sniff_reader<R: Read + Seek>(mut r: R, len: u64, opts: &ScanOptions) -> Option<ScanReport> {
    let mut cx = Ctx::new(opts);
    let mut tail = Vec::new();
    let tail_at = len.saturating_sub(66 * 1024);
    if let Err(e) = r.seek(SeekFrom::Start(tail_at)).and_then(|_| (&mut r).take(66 * 1024).read_to_end(&mut tail)) {
        cx.unscannable("", 0, format!("read error: {e}"));
        return Some(cx.finish());
    }
    let mut want = len.min(64 * 1024);
    loop {
        let mut buf = Vec::new();
        if let Err(e) = r.seek(SeekFrom::Start(0)).and_then(|_| (&mut r).take(want).read_to_end(&mut buf)) {
            cx.unscannable("", 0, format!("read error: {e}"));
            return Some(cx.finish());
        }
        if !zip::is_zip(&buf) && tail.windows(4).any(|w| w == b"PK\x05\x06") {
            cx.unscannable(
                "",
                0,
                "a zip archive with data in front of it: its members cannot be located reliably".into(),
            );
            return Some(cx.finish());
        }
        let s = stream::scan(&buf, false);
        let ran_out = s.ran_out && want < len;
        if ran_out && want < opts.max_in_memory_bytes {
            want = want.saturating_mul(8).min(opts.max_in_memory_bytes).min(len);
            continue;
        }
        if s.events.is_empty() && s.problems.is_empty() && !ran_out {
            return None;
        }
        cx.stream_findings("", 0, s, false);
        if ran_out {
            cx.unscannable(
                "",
                want,
                format!("parses as pickle opcodes past the first {want} bytes scanned; the rest was not read"),
            );
        }
        return Some(cx.finish());
    }
}
