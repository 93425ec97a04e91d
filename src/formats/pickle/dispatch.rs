//! Content-based dispatch of the pickle scanner ([`Ctx`]): one scan's findings, imports and
//! decompression budget, and the walk from a blob to what it holds (a zip's members, a tar's
//! members, a compression wrapper's output, a `.npy` object payload, pickle streams), each
//! recognised by content, never by name.
//!
//! It must never call a blob Clean that it could not read completely: a truncated, encrypted,
//! oversized or unsupported container, a budget or depth cap hit, each adds an Unscannable
//! finding. It never loads or executes anything; pickles are only walked (`stream`, `scanner`).

use std::collections::BTreeSet;

use super::{Finding, FindingKind, ScanOptions, ScanReport, Verdict, allowlist, scanner, stream, tar, wrappers, zip};

const SEVEN_Z: &[u8] = b"7z\xbc\xaf\x27\x1c";

fn child(chain: &str, seg: &str) -> String {
    if chain.is_empty() || chain.ends_with('>') { format!("{chain}{seg}") } else { format!("{chain}!{seg}") }
}

pub(super) struct Ctx<'o> {
    opts: &'o ScanOptions,
    budget: u64,
    findings: Vec<Finding>,
    globals: BTreeSet<String>,
    /// The next [`Ctx::blob`] is a `data.pkl` / `constants.pkl` record of a TorchScript
    /// archive: a pickle in it may name `__torch__.*` classes (taken and reset by `blob`).
    torchscript_record: bool,
}

impl<'o> Ctx<'o> {
    pub(super) fn new(opts: &'o ScanOptions) -> Self {
        Ctx {
            opts,
            budget: opts.max_decompressed_bytes,
            findings: Vec::new(),
            globals: BTreeSet::new(),
            torchscript_record: false,
        }
    }

    pub(super) fn finish(self) -> ScanReport {
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

    pub(super) fn unscannable(&mut self, chain: &str, offset: u64, reason: String) {
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
    pub(super) fn stream_findings(&mut self, chain: &str, base: usize, s: stream::StreamOutcome, torchscript: bool) {
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
    pub(super) fn blob(&mut self, data: &[u8], chain: &str, depth: u32, strict: bool) {
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

    pub(super) fn zip(&mut self, src: &mut dyn zip::Source, chain: &str, depth: u32) {
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
