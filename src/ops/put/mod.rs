//! `put`: store a file or a model directory as the next version of a model, in one write
//! transaction (so a crash leaves the version whole or absent).
//!
//! The data path is a four-stage pipeline over bounded channels, so memory stays flat whatever
//! the model size and both cores work:
//! 1. a reader thread reads the file in pieces cut at tensor boundaries
//!    ([`crate::chunk::plan_with_cuts`], from [`crate::formats::analyze`]);
//! 2. a hasher thread feeds each piece to the file's SHA-256, and checks that every block the
//!    analysis pass looked at ([`crate::formats::analyze`], through `ops::input::CheckedView`)
//!    holds the same bytes in these pieces, so the pickle verdict, the format and the tensor cuts
//!    recorded are about exactly the bytes sealed; otherwise the put is refused, nothing stored;
//! 3. a sealer thread computes each chunk id (BLAKE3-keyed) and, unless the chunk index already
//!    lists it, seals it with AES-256-GCM;
//! 4. the calling thread inserts new chunks into redb (chunk table and chunk index together).
//!
//! At most [`QUEUE_DEPTH`] pieces (up to 1 MiB each) wait in each channel; the sealer hands each
//! piece's buffer back to the reader (`ops::input`), so buffers are reused, not
//! allocated per piece. The dedup check reads only the chunk index's small pages; a lookup in
//! the chunk table itself would read the 1 MiB page holding the value (measured: a re-put of
//! 2 GiB read the whole vault back).
//!
//! **Atomicity.** New chunks are committed in checkpoints of [`CHECKPOINT_BYTES`] (non-durable
//! commits: one big transaction made redb write 1.45 bytes per byte stored under cache pressure,
//! checkpoints 1.1); the manifest and the model record are written last, in a durable commit. A
//! put killed at any moment therefore leaves the version complete or absent; chunks of a put that
//! never committed are referenced by no manifest, and `gc` deletes them.

use crate::log::Op;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use serde::Serialize;

use crate::formats::pickle::{ScanOptions, ScanReport, Verdict};
use crate::manifest::{ChunkRef, FileEntry, MANIFEST_VERSION, Manifest, ScanRecord};
use crate::names;
use crate::ops::input::{BlockCheck, CheckedView, Piece, PieceReader, ReadError};
use crate::progress::Progress;
use crate::store::records::{AliasEvent, ModelRecord, VersionRecord};
use crate::store::{self, Table};
use crate::vault::{Txn, Unlocked, Vault, now};
use crate::{Error, Result};
use crate::{chunk, formats};

mod pipeline;
mod sources;
use pipeline::{hash_pieces, seal_pieces, write_chunks};
pub(crate) use sources::walk;
pub use sources::{Blob, Filter, Source, collect_filtered, collect_sources};

/// Pieces in flight per pipeline stage.
pub const QUEUE_DEPTH: usize = 4;
/// Stored chunk bytes written between two checkpoints of a put (64 MiB, the redb cache size).
pub const CHECKPOINT_BYTES: u64 = 64 << 20;
/// Most files one version may hold.
pub const MAX_FILES: usize = 100_000;

/// What to record with a new version.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// Aliases to point at the new version (moved from older versions if already used).
    pub aliases: Vec<String>,
    /// Tags, key → value.
    pub tags: BTreeMap<String, String>,
    /// Metrics, key → finite value.
    pub metrics: BTreeMap<String, f64>,
    /// Free text.
    pub description: String,
    /// Store files whose pickle scan is dangerous or unscannable (the verdict is still recorded).
    pub allow_unsafe_pickle: bool,
    /// Extra exact `module.qualname` globals the pickle scanner allows for this put.
    pub allow_globals: Vec<String>,
    /// Globs of paths inside the model to leave out of a directory (see [`Filter`]).
    pub exclude: Vec<String>,
    /// Keep files and folders named `.git`, which a directory's walk otherwise leaves out.
    pub include_git: bool,
}

/// What a put did.
#[derive(Debug, Clone, Serialize)]
pub struct PutReport {
    /// Model name.
    pub name: String,
    /// The new version number.
    pub version: u64,
    /// Files stored.
    pub files: usize,
    /// Bytes of model data read.
    pub bytes: u64,
    /// Chunks newly stored.
    pub new_chunks: u64,
    /// Plaintext bytes of the newly stored chunks.
    pub new_bytes: u64,
    /// Chunks that were already stored (deduplicated).
    pub reused_chunks: u64,
}

/// Checks the name and everything `opts` would record, before anything is read or written.
///
/// Errors: [`Error::InvalidName`], [`Error::InvalidInput`].
fn check_options(name: &str, opts: &PutOptions) -> Result<()> {
    names::check_model_name(name)?;
    for a in &opts.aliases {
        names::check_alias(a)?;
    }
    for g in &opts.allow_globals {
        crate::ops::allow::check_global(g)?;
    }
    for (k, v) in &opts.tags {
        names::check_key("tag key", k)?;
        names::check_tag_value(v)?;
    }
    for (k, v) in &opts.metrics {
        names::check_key("metric key", k)?;
        names::check_metric_value(k, *v)?;
    }
    names::check_description(&opts.description)
}

/// Counts from storing one file.
#[derive(Default)]
struct Stored {
    new_chunks: u64,
    new_bytes: u64,
}

impl Vault<Unlocked> {
    /// Stores `src` (a file or a directory) as the next version of model `name` and returns the
    /// new version's number and what was stored. Nothing is written unless the whole put
    /// succeeds.
    ///
    /// Errors: [`Error::InvalidName`] (name, alias, tag key, file path), [`Error::InvalidInput`]
    /// (symlink, special file, file changed between the scan and the store pass or while read, bad metric), [`Error::KeyUsageLimit`],
    /// [`Error::Io`], [`Error::Storage`].
    pub fn put(&mut self, src: &Path, name: &str, opts: &PutOptions, progress: &dyn Progress) -> Result<PutReport> {
        check_options(name, opts)?;
        let filter = Filter::new(&opts.exclude, opts.include_git)?;
        let sources = collect_filtered(src, &filter)?;
        self.put_sources(&sources, name, opts, progress)
    }

    /// Stores the files `sources` lists (from [`collect_sources`] or
    /// [`crate::ops::hf::snapshot`]) as the next version of model `name`, as [`Vault::put`]
    /// does.
    ///
    /// Errors: those of [`Vault::put`].
    pub fn put_sources(
        &mut self,
        sources: &[Source],
        name: &str,
        opts: &PutOptions,
        progress: &dyn Progress,
    ) -> Result<PutReport> {
        check_options(name, opts)?;
        if sources.is_empty() {
            return Err(Error::InvalidInput("there are no files to store".into()));
        }
        let total: u64 = sources.iter().map(|s| s.size).sum();
        let len_before = self.file_len()?;

        let mut txn = self.write_reporting(Op::Put, progress)?;
        let mk = self.model_key(name);
        let mut model = self.load_model(&*txn.tx, name)?.unwrap_or_else(|| ModelRecord::new(name, now()));
        let version = model.next_version;
        txn.about(Some(name), vec![version], None);

        progress.begin(&format!("put {name}@{version}"), total);
        let mut files = Vec::with_capacity(sources.len());
        let mut stored = Stored::default();
        for s in sources {
            files.push(self.store_file(&mut txn, s, opts, &mut stored, progress)?);
        }
        progress.end();

        let t = now();
        let manifest = Manifest {
            manifest_version: MANIFEST_VERSION,
            vault_id: self.header.vault_id,
            name: name.to_string(),
            version,
            created: t,
            revision: 0,
            updated: t,
            description: opts.description.clone(),
            tags: opts.tags.clone(),
            metrics: opts.metrics.clone(),
            files,
        };
        model.next_version = version + 1;
        model.live.push(version);
        for a in &opts.aliases {
            let from = model.aliases.insert(a.clone(), version);
            model.alias_history.push(AliasEvent { alias: a.clone(), from, to: Some(version), at: t });
        }
        write_version(&mut txn, &mk, &manifest)?;
        write_model(&mut txn, &mk, &model)?;
        txn.commit()?;
        self.trim_preallocation(len_before, total, stored.new_bytes)?;
        let chunks: u64 = manifest.files.iter().map(|f| f.chunks.len() as u64).sum();
        Ok(PutReport {
            name: name.to_string(),
            version,
            files: manifest.files.len(),
            bytes: total,
            new_chunks: stored.new_chunks,
            new_bytes: stored.new_bytes,
            reused_chunks: chunks - stored.new_chunks,
        })
    }

    /// The analysis pass over one file (format, tensor index, pickle scan), through a view that
    /// remembers each block it saw: the analysis, the check of those blocks the store pass runs
    /// against the bytes it seals (see `crate::ops::input`), and the manifest form of the scan.
    ///
    /// Errors: [`Error::InvalidInput`] (bad format, or the file changed while read),
    /// [`Error::UnsafePickle`].
    fn analyze_source(
        &self,
        file: &File,
        size: u64,
        shown: &str,
        opts: &PutOptions,
    ) -> Result<(formats::Analysis, BlockCheck, Option<ScanRecord>)> {
        let mut extra_allowed = opts.allow_globals.clone();
        extra_allowed.extend(self.allow_list()?);
        let scan_opts = ScanOptions { extra_allowed, ..Default::default() };
        // The analysis reads through a view that remembers each block it saw; the store pass
        // checks those blocks against the bytes it seals (see `crate::ops::input`).
        let mut view = CheckedView::new(file, size);
        let analysis = formats::analyze(&mut view, size, &scan_opts);
        if view.changed() {
            return Err(changed_error(shown));
        }
        let analysis = analysis.map_err(|e| Error::InvalidInput(format!("{shown}: {e}; nothing was stored")))?;
        let blocks = BlockCheck::new(view.into_seen());
        let scan = analysis.scan.as_ref().map(|r| scan_record(r, opts.allow_unsafe_pickle));
        if let Some(rec) = &scan
            && rec.verdict != "clean"
            && !opts.allow_unsafe_pickle
        {
            let detail = rec.findings.iter().take(3).cloned().collect::<Vec<_>>().join("; ");
            return Err(Error::UnsafePickle { file: shown.to_string(), verdict: rec.verdict.clone(), detail });
        }
        Ok((analysis, blocks, scan))
    }

    /// Streams one file through the pipeline into the transaction's chunk table.
    // Long because it is one scoped pipeline: the channels, the three threads and the writer on
    // this thread, then the join and the order in which the stages' outcomes decide the error
    // (the first stage's error is the cause). Each stage is its own function; split further, the
    // join and its error order would be separated from the threads they join.
    fn store_file(
        &self,
        txn: &mut Txn<'_>,
        src: &Source,
        opts: &PutOptions,
        stored: &mut Stored,
        progress: &dyn Progress,
    ) -> Result<FileEntry> {
        let shown = src.disk.display().to_string();
        let file = sources::open(src)?;
        let before = file.metadata().map_err(|e| Error::io(format!("reading {shown}"), e))?;
        let size = before.len();
        let (analysis, blocks, scan) = self.analyze_source(&file, size, &shown, opts)?;
        let pieces = chunk::plan_with_cuts(size, &analysis.cuts);
        let changed = {
            let shown = shown.clone();
            move || changed_error(&shown)
        };
        let (piece_tx, piece_rx) = crossbeam_channel::bounded::<Piece>(QUEUE_DEPTH);
        let (hashed_tx, hashed_rx) = crossbeam_channel::bounded::<Piece>(QUEUE_DEPTH);
        // At most this many pieces exist at once: two channels full, one in each of the reader,
        // hasher and sealer. Every one can come back for reuse.
        let mut input = PieceReader::new(file, 2 * QUEUE_DEPTH + 3);
        let recycler = input.recycler();
        let (sealed_tx, sealed_rx) = crossbeam_channel::bounded::<(ChunkRef, Option<Vec<u8>>)>(QUEUE_DEPTH);
        let keys = &self.state.keys;
        let index = &self.state.index;
        let vault_id = self.header.vault_id;
        let db = &self.db;

        std::thread::scope(|scope| {
            let reader = scope.spawn(move || -> Result<()> {
                for len in pieces {
                    let piece = input.read_piece(len).map_err(|e| match e {
                        ReadError::Short => changed(),
                        ReadError::Io(e) => Error::io(format!("reading {shown}"), e),
                    })?;
                    if piece_tx.send(piece).is_err() {
                        return Ok(()); // a later stage stopped; its error is reported
                    }
                }
                if !input.at_end().map_err(|e| Error::io(format!("reading {shown}"), e))? {
                    return Err(changed());
                }
                Ok(())
            });
            // SHA-256 of the whole file is one sequential computation: it gets a thread of its
            // own, so reading, hashing and sealing overlap (a re-put is bound by this stage).
            // It also checks the blocks the analysis saw against these very bytes, which the
            // sealer then seals: a mismatch stops the pipeline.
            let hasher = scope.spawn(move || hash_pieces(piece_rx, hashed_tx, blocks));
            let sealer = scope.spawn(move || seal_pieces(db, keys, index, vault_id, hashed_rx, recycler, sealed_tx));

            let (refs, written) = write_chunks(txn, &sealed_rx, stored, progress);
            drop(sealed_rx);
            let read = reader.join().expect("reader thread does not panic");
            let hashed = hasher.join().expect("hasher thread does not panic");
            let sealed = sealer.join().expect("sealer thread does not panic");
            // The first stage's error is the cause; later stages fail only because it stopped.
            // One exception: a failed write (a full disk) makes redb answer every later read with
            // a previous-I/O error, the sealer's dedup lookups included; the write's own error is
            // then the cause (torture suite, disk full).
            read?;
            let (sha256, blocks, same) = hashed;
            if !same {
                return Err(changed_error(&src.disk.display().to_string()));
            }
            // A file rewritten in place keeps its length: compare its change time and identity.
            let after = sources::state_now(src)?;
            if !same_file_state(&before, &after) {
                return Err(changed_error(&src.disk.display().to_string()));
            }
            match (sealed, written) {
                (Err(s), Err(w)) if s.storage_kind() == Some(store::StoreErrorKind::PreviousIo) => return Err(w),
                (sealed, written) => {
                    sealed?;
                    written?;
                }
            }
            if !blocks.complete() {
                return Err(changed_error(&src.disk.display().to_string()));
            }
            Ok(FileEntry {
                path: src.path.clone(),
                size,
                sha256,
                chunks: refs,
                format: formats::format_name(&analysis.format),
                tensors: analysis.tensors,
                scan,
            })
        })
    }
}

impl Vault<Unlocked> {
    /// The vault file's length in bytes.
    fn file_len(&self) -> Result<u64> {
        Ok(std::fs::metadata(&self.path).map_err(|e| Error::io(format!("reading {}", self.path.display()), e))?.len())
    }

    /// redb grows its file ahead of need, and each checkpoint frees the pages it rewrote; right
    /// after a put the file can be a third larger than what it holds (measured: 89 one-MiB pages
    /// of unwritten tail in a 132 MiB file). And a file left tight by a compaction grows at the
    /// first write that finds no free run of pages long enough, by redb's rule: to twice its
    /// length under 4 GiB, by up to 4 GiB above (measured: a re-put of MiniLM that stored no
    /// chunk took a 91 MB vault file to 182 MB in 1 of 16 tries). The grown tail is a hole in
    /// the file, not disk space, until pages are written there.
    ///
    /// So the file is compacted when its length exceeds the bytes of its stored chunks (summed
    /// from the chunk index) by more than [`TRIM_SLACK`] (10%), and this put either stored at
    /// least that fraction of the file in new chunk bytes, or read at least that fraction
    /// (`read_bytes`) and grew the file (from `len_before` bytes) by more than that fraction
    /// beyond the chunk bytes it stored.
    ///
    /// Compaction walks the whole file, so a put that read little does not pay for it: before
    /// that condition, every small put into a large vault compacted it (measured: building 6,000
    /// small versions took 16.9 s, 4.3 s without the compactions; 3,000 small puts into a
    /// MiniLM vault took 146 s when each growth compacted, 7 s without). Such puts leave the
    /// file up to twice its contents' length (a hole, not disk space); `gc` and the next large
    /// put compact it. (An earlier rule compared the length with the blocks the file has on
    /// disk; it missed free pages inside the file and was flaky.)
    fn trim_preallocation(&mut self, len_before: u64, read_bytes: u64, new_bytes: u64) -> Result<()> {
        let len = self.file_len()? as f64;
        let stored_much = new_bytes as f64 >= len * TRIM_SLACK;
        let grew = len - len_before as f64 - new_bytes as f64 > len_before as f64 * TRIM_SLACK;
        let read_much = read_bytes as f64 >= len * TRIM_SLACK;
        if !(stored_much || (grew && read_much)) {
            return Ok(());
        }
        let live = store::stored_chunk_bytes(&self.db)? as f64;
        if len > live * (1.0 + TRIM_SLACK) {
            // A reader of another process may refuse it: the file then stays as it is (the
            // free pages are reused by later writes; `gc` or a later put compacts it).
            let _compacted = self.db.compact()?;
        }
        Ok(())
    }
}

/// Fraction of the vault file beyond its stored chunk bytes tolerated after a put before it is
/// compacted away.
pub const TRIM_SLACK: f64 = 0.10;

/// The refusal of a file whose bytes changed between the analysis pass (format, tensor index,
/// pickle scan) and the store pass, or during either.
fn changed_error(shown: &str) -> Error {
    Error::InvalidInput(format!(
        "{shown} changed while it was being stored; nothing was stored: stop what is writing it and put again"
    ))
}

/// True when two `stat`s of a file show the same inode, size, modification and change times.
fn same_file_state(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        a.ino() == b.ino()
            && a.dev() == b.dev()
            && a.len() == b.len()
            && (a.mtime(), a.mtime_nsec()) == (b.mtime(), b.mtime_nsec())
            && (a.ctime(), a.ctime_nsec()) == (b.ctime(), b.ctime_nsec())
    }
    #[cfg(not(unix))]
    {
        a.len() == b.len() && a.modified().ok() == b.modified().ok()
    }
}

/// The manifest form of a scan report.
pub fn scan_record(r: &ScanReport, allowed_unsafe: bool) -> ScanRecord {
    let verdict = match r.verdict {
        Verdict::Clean => "clean",
        Verdict::Dangerous => "dangerous",
        Verdict::Unscannable => "unscannable",
    };
    let findings = r
        .findings
        .iter()
        .map(|f| {
            let at = f.member.as_deref().map(|m| format!(" in member '{}'", names::escape(m))).unwrap_or_default();
            let g = if f.global.is_empty() { String::new() } else { format!("{} ", names::escape(&f.global)) };
            format!("{g}at offset {}{at}: {}", f.offset, names::escape(&f.reason))
        })
        .collect();
    ScanRecord { verdict: verdict.into(), findings, allowed_unsafe: allowed_unsafe && r.verdict != Verdict::Clean }
}

/// Signs `m` and writes its version record.
pub(crate) fn write_version(txn: &mut Txn<'_>, mk: &[u8; 32], m: &Manifest) -> Result<()> {
    let bytes = m.encode();
    let signer = txn.vault.state.signing.active();
    let signature = crate::manifest::sign(&signer, &bytes).to_vec();
    let rec = VersionRecord { manifest: bytes, signature, signer: signer.public_key() };
    let key = store::version_key(mk, m.version);
    let sealed = txn.seal_meta(Table::Versions, &key, &rec)?;
    txn.tx.put_version(mk, m.version, &sealed)
}

/// Writes a model record.
pub(crate) fn write_model(txn: &mut Txn<'_>, mk: &[u8; 32], m: &ModelRecord) -> Result<()> {
    let sealed = txn.seal_meta(Table::Models, mk, m)?;
    txn.tx.put_model(mk, &sealed)
}
