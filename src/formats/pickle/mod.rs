//! Pickle security scanner: decides whether loading a file with Python
//! (`pickle`, `torch.load`, `joblib.load`, `numpy.load(allow_pickle=True)`)
//! could run code.
//!
//! Owns: the public API ([`scan_bytes`], [`scan_reader`], [`ScanOptions`],
//! [`ScanReport`], [`Finding`]) and content-based dispatch: ZIP archives
//! (`zip`), tar archives (`tar`), compression wrappers and `.npy` (`wrappers`), pickle streams
//! (`stream`, `scanner` over the value model in `values`, `joblib`), judged
//! by an exact allow-list (`allowlist`). Everything is recognised by
//! content, never by file or member name.
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

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom};

use serde::Serialize;

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

const SEVEN_Z: &[u8] = b"7z\xbc\xaf\x27\x1c";

fn child(chain: &str, seg: &str) -> String {
    if chain.is_empty() || chain.ends_with('>') { format!("{chain}{seg}") } else { format!("{chain}!{seg}") }
}

struct Ctx<'o> {
    opts: &'o ScanOptions,
    budget: u64,
    findings: Vec<Finding>,
    globals: BTreeSet<String>,
    /// The next [`Ctx::blob`] is a `data.pkl` / `constants.pkl` record of a TorchScript
    /// archive: a pickle in it may name `__torch__.*` classes (taken and reset by `blob`).
    torchscript_record: bool,
}

impl<'o> Ctx<'o> {
    fn new(opts: &'o ScanOptions) -> Self {
        Ctx {
            opts,
            budget: opts.max_decompressed_bytes,
            findings: Vec::new(),
            globals: BTreeSet::new(),
            torchscript_record: false,
        }
    }

    fn finish(self) -> ScanReport {
        let verdict = if self.findings.iter().any(|f| f.kind == FindingKind::Dangerous) {
            Verdict::Dangerous
        } else if self.findings.is_empty() {
            Verdict::Clean
        } else {
            Verdict::Unscannable
        };
        ScanReport { verdict, findings: self.findings, globals: self.globals.into_iter().collect() }
    }

    fn member(chain: &str) -> Option<String> {
        (!chain.is_empty()).then(|| chain.to_string())
    }

    fn unscannable(&mut self, chain: &str, offset: u64, reason: String) {
        self.findings.push(Finding {
            global: String::new(),
            offset,
            member: Self::member(chain),
            kind: FindingKind::Unscannable,
            reason,
        });
    }

    /// Records the imports and problems of one stream. `torchscript`: the stream is a record
    /// that TorchScript's C++ unpickler reads, where `__torch__.*` classes are allowed.
    fn stream_findings(&mut self, chain: &str, base: usize, s: stream::StreamOutcome, torchscript: bool) {
        for e in s.events {
            self.globals.insert(e.name.clone());
            let reason = match e.kind {
                scanner::EventKind::Global if allowlist::is_allowed(&e.name, &self.opts.extra_allowed) => {
                    continue;
                }
                scanner::EventKind::Global if torchscript && allowlist::is_torchscript_class(&e.name) => {
                    continue;
                }
                scanner::EventKind::Global if allowlist::is_torchscript_class(&e.name) => {
                    "import of a `__torch__` global outside a TorchScript archive: Python's unpickler \
                     imports it as a module (a `__torch__.py` on the path runs)"
                        .to_string()
                }
                scanner::EventKind::Global => "import of a global that is not on the allow-list".to_string(),
                scanner::EventKind::Unresolved => {
                    "unresolvable STACK_GLOBAL operand / extension code: the import cannot be named".to_string()
                }
            };
            self.findings.push(Finding {
                global: e.name,
                offset: (base + e.offset) as u64,
                member: Self::member(chain),
                kind: FindingKind::Dangerous,
                reason,
            });
        }
        for (off, msg) in s.problems {
            self.unscannable(chain, (base + off) as u64, msg);
        }
    }

    fn pickle(&mut self, data: &[u8], base: usize, chain: &str, strict: bool) -> bool {
        self.pickle_as(data, base, chain, strict, false)
    }

    fn pickle_as(&mut self, data: &[u8], base: usize, chain: &str, strict: bool, torchscript: bool) -> bool {
        let s = stream::scan(data, strict);
        let is = s.is_pickle;
        self.stream_findings(chain, base, s, torchscript);
        is
    }

    /// Scan one blob, dispatching on its content.
    fn blob(&mut self, data: &[u8], chain: &str, depth: u32, strict: bool) {
        let torchscript = std::mem::take(&mut self.torchscript_record);
        if depth > self.opts.max_depth {
            self.unscannable(chain, 0, format!("nesting deeper than max_depth ({})", self.opts.max_depth));
            return;
        }
        if zip::is_zip(data) {
            self.zip(&mut &*data, chain, depth);
        } else if tar::is_tar(data) {
            self.tar(data, chain, depth);
            // `pickle.load` of the same bytes reads the first header as opcodes.
            self.pickle(data, 0, chain, false);
        } else if data.starts_with(wrappers::NPY_MAGIC) {
            match wrappers::parse_npy(data) {
                Ok(n) if n.object => {
                    let payload = data.get(n.data_offset..).unwrap_or(&[]);
                    self.pickle(payload, n.data_offset, chain, true);
                }
                Ok(_) => {}
                Err(e) => self.unscannable(chain, 0, e),
            }
        } else if data.starts_with(SEVEN_Z) {
            self.unscannable(chain, 0, "7z archives are not supported; contents cannot be scanned".into());
        } else if let Some(w) = wrappers::sniff(data) {
            self.wrapped(w, data, chain, depth, strict);
        } else {
            self.pickle_as(data, 0, chain, strict, torchscript);
        }
    }

    fn wrapped(&mut self, w: wrappers::Wrapper, data: &[u8], chain: &str, depth: u32, strict: bool) {
        let cap = self.opts.max_decompressed_bytes.min(self.budget);
        match wrappers::inflate(w, data, cap, self.opts.max_ratio) {
            Ok(out) => {
                self.budget = self.budget.saturating_sub(out.len() as u64);
                // Decompressed content is sniffed, not presumed a pickle: a gzipped CSV is data.
                // Anything the unpickler would import before failing is still reported, and a
                // stream that fails before any import cannot run code in Python either.
                self.blob(&out, &child(chain, &format!("{}>", w.label())), depth + 1, false);
                if w.ambiguous() {
                    // The raw bytes are also a plausible pickle opening.
                    self.pickle(data, 0, chain, false);
                }
            }
            Err(e @ (wrappers::InflateError::SizeCap(_) | wrappers::InflateError::RatioCap(_))) => {
                self.unscannable(chain, 0, format!("{} bomb guard: {e}", w.label()));
            }
            Err(e) if w.ambiguous() => {
                let _ = e;
                self.pickle(data, 0, chain, strict);
            }
            Err(e) if strict => self.unscannable(chain, 0, e.to_string()),
            Err(_) => {} // sniffed member that only resembles a wrapper: opaque data
        }
    }

    /// Walks a tar archive. `torch.load` opens any file that starts with a valid tar header
    /// (pre-1.6 `torch.save` format) and unpickles the last `storages`, `tensors` and `pickle`
    /// members (their layouts in [`tar`]); every member with one of those names (trailing
    /// slashes ignored) gets that strict walk, and every other regular member is sniffed like a zip
    /// member (pandas' `read_pickle` unpickles the one member of a `.tar`).
    fn tar(&mut self, data: &[u8], chain: &str, depth: u32) {
        let listing = tar::list(data);
        for p in listing.problems {
            self.unscannable(chain, 0, p);
        }
        for m in &listing.members {
            let c = child(chain, &m.display());
            // Every member a loader could take for a legacy record gets the strict walk, not
            // only the last of each name, and trailing slashes never hide one.
            let mut name = m.name.as_slice();
            while let Some(n) = name.strip_suffix(b"/") {
                name = n;
            }
            let role = [b"storages".as_slice(), b"tensors", b"pickle"].iter().position(|&l| l == name);
            if !m.is_regular() {
                if role.is_some() {
                    self.unscannable(
                        &c,
                        m.data.start as u64,
                        format!(
                            "legacy PyTorch member is not a regular file (tar type {:?}): what torch.load would read \
                             is outside the archive",
                            char::from(m.kind)
                        ),
                    );
                }
                continue;
            }
            let body = data.get(m.data.clone()).unwrap_or(&[]);
            match role {
                Some(0) => self.stream_findings(&c, 0, tar::legacy_storages(body), false),
                Some(1) => self.stream_findings(&c, 0, tar::legacy_tensors(body), false),
                Some(_) => {
                    self.pickle(body, 0, &c, true);
                }
                None => self.blob(body, &c, depth + 1, false),
            }
        }
    }

    fn zip(&mut self, src: &mut dyn zip::Source, chain: &str, depth: u32) {
        let listing = zip::list(src);
        for p in listing.problems {
            self.unscannable(chain, 0, p);
        }
        let torchscript_records = zip::torchscript_records(&listing.entries);
        // Entries may overlap (many central entries pointing at the same
        // bytes); never read more than the archive size plus the cap.
        let read_cap = src.size().saturating_add(self.opts.max_decompressed_bytes);
        let mut read_total = 0u64;
        for e in &listing.entries {
            let m = child(chain, &e.name);
            for d in &e.disagreements {
                self.unscannable(&m, e.data_start, d.clone());
            }
            read_total = read_total.saturating_add(e.csize.min((zip::PREFIX as u64).saturating_add(self.budget)));
            if read_total > read_cap {
                self.unscannable(
                    &m,
                    e.data_start,
                    "zip members overlap: total member bytes exceed the archive size plus max_decompressed_bytes"
                        .into(),
                );
                break;
            }
            let cap = self.opts.max_decompressed_bytes.min(self.budget);
            match zip::read_member(src, e, cap, self.opts.max_ratio) {
                Err(x) => self.unscannable(&m, e.data_start, x),
                Ok(md) if md.prefix_only => {
                    if looks_scannable(&md.data) {
                        self.unscannable(
                            &m,
                            e.data_start,
                            format!("member of {} bytes exceeds the scan cap and looks like a pickle/archive", e.csize),
                        );
                    }
                }
                Ok(md) => {
                    if e.method != 0 {
                        self.budget = self.budget.saturating_sub(md.data.len() as u64);
                    }
                    if !md.crc_ok {
                        self.unscannable(
                            &m,
                            e.data_start,
                            format!(
                                "CRC-32 mismatch: central directory 0x{:08x}, member data 0x{:08x}: member is \
                                 encrypted or corrupt (flags 0x{:04x})",
                                e.crc, md.crc, e.flags
                            ),
                        );
                    }
                    self.torchscript_record = torchscript_records.as_ref().is_some_and(|r| r.contains(&e.name));
                    self.blob(&md.data, &m, depth + 1, false);
                }
            }
        }
    }
}

/// Could this prefix of an oversized member hold something to scan?
fn looks_scannable(prefix: &[u8]) -> bool {
    if zip::is_zip(prefix) || prefix.starts_with(wrappers::NPY_MAGIC) || wrappers::sniff(prefix).is_some() {
        return true;
    }
    let w = scanner::walk(prefix, 0, scanner::Mode { joblib: false, sniff: true }, 0);
    !w.events.is_empty() || w.eof || w.limit
}
