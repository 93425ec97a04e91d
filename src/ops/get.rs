//! `get` and `cat`: read a version's files back, checking every chunk's GCM tag, every chunk
//! length and each file's SHA-256 against the signed manifest.
//!
//! `get` writes each file under a temporary name (`.mvault-tmp-*`, mode 0600) in its final
//! directory and renames it only after its SHA-256 matches, so a damaged or tampered file never
//! appears under its real name; the final mode (0666 less the umask) is set on the open file
//! just before. It never writes outside DEST: paths come from the signed manifest and are
//! checked again by [`crate::names::check_file_path`]; files and directories inside DEST are
//! created, checked and renamed relative to their directory's descriptor without following a
//! symbolic link, and the vault's own file is never a target ([`super::outfile`]). `cat`
//! streams to a writer: every byte it writes has passed its chunk's authentication, but a
//! failure part-way leaves a prefix written (and an error).
//!
//! Decryption runs on a reader thread (`ops::reader::ChunkReader`), hashing and writing on
//! the calling thread, at most [`super::put::QUEUE_DEPTH`] chunks apart.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::VersionRef;
use super::ondemand::{OnDemand, Streamer};
use super::outfile::{self, OutDir, VaultFile};
use super::reader::{ChunkReader, FileChunks, open_chunk};
use crate::manifest::{ChunkRef, FileEntry, Manifest};
use crate::names::{self, escape};
use crate::progress::Progress;
use crate::store;
use crate::store::chunks::ChunkRead;
use crate::vault::{Unlocked, Vault};
use crate::{Error, Remedy, Result};

/// Options for [`Vault::get`].
#[derive(Debug, Clone, Default)]
pub struct GetOptions {
    /// Overwrite files that already exist in DEST.
    pub force: bool,
}

/// What a get wrote.
#[derive(Debug, Clone, Serialize)]
pub struct GetReport {
    /// Model name.
    pub name: String,
    /// Version read.
    pub version: u64,
    /// Files written, with their paths on disk.
    pub files: Vec<PathBuf>,
    /// Bytes written.
    pub bytes: u64,
}

impl Vault<Unlocked> {
    /// Loads and checks the manifest of `name@r` (authenticated, signature verified, canonical,
    /// bound to this vault, name and version).
    ///
    /// Errors: [`Error::ModelNotFound`], [`Error::VersionNotFound`], [`Error::Damaged`],
    /// [`Error::BadSignature`].
    pub fn manifest(&self, name: &str, r: &VersionRef) -> Result<Manifest> {
        let rx = store::read(&self.db)?;
        self.require_model_tables(&rx, name)?;
        let (_, version) = self.resolve(&rx, name, r)?;
        Ok(self.load_version(&rx, name, version)?.0)
    }

    /// Writes every file of `name@r` into the directory `dest` (created if missing). Each file
    /// gets mode [`outfile::output_mode`] (0666 less the umask) once verified; `force` replaces
    /// existing regular files, never the vault's own file.
    ///
    /// Errors: [`Error::ModelNotFound`], [`Error::VersionNotFound`], [`Error::BadSignature`],
    /// [`Error::Damaged`] (naming model, file and chunk), [`Error::OutputExists`] (without
    /// `force`), [`Error::InvalidInput`] (a symlink or non-directory in the way; a target that
    /// is the vault's own file, whatever `force` says), [`Error::Io`] (also when another process
    /// replaced a file while it was written).
    pub fn get(
        &self,
        name: &str,
        r: &VersionRef,
        dest: &Path,
        opts: &GetOptions,
        progress: &dyn Progress,
    ) -> Result<GetReport> {
        let m = self.manifest(name, r)?;
        let vault = VaultFile::of(&self.path)?;
        let mut targets = Vec::with_capacity(m.files.len());
        // Checked for every file before any is written, so a refusal leaves DEST as it was.
        let root = OutDir::open(dest, false)?;
        for f in &m.files {
            let parts = names::check_file_path(&f.path)?;
            let (leaf, dirs) = parts.split_last().ok_or_else(|| {
                Error::Damaged(format!("model '{}' version {}: a file has an empty path", escape(&m.name), m.version))
            })?;
            let mut dir = root.clone();
            for p in dirs {
                dir = match &dir {
                    Some(d) => d.sub(p, false)?,
                    None => None,
                };
            }
            if let Some(d) = &dir {
                d.check_target(leaf, opts.force, &vault)?;
            }
            let mut target = dest.to_path_buf();
            target.extend(&parts);
            targets.push((f, parts, target));
        }
        let root = OutDir::open(dest, true)?
            .ok_or_else(|| Error::InvalidInput(format!("{} could not be created", dest.display())))?;
        let mode = outfile::output_mode();
        let streamed = self.on_demand(&m, chunks_of(m.files.iter()), progress)?;
        progress.begin(&format!("get {name}@{}", m.version), m.total_size());
        let mut written = Vec::new();
        for (f, parts, target) in targets {
            let Some((leaf, dirs)) = parts.split_last() else { continue };
            let mut dir = root.clone();
            for p in dirs {
                dir = dir
                    .sub(p, true)?
                    .ok_or_else(|| Error::InvalidInput(format!("{} could not be created", dest.join(p).display())))?;
            }
            dir.check_target(leaf, opts.force, &vault)?;
            let mut tmp = dir.create_temp()?;
            let shown = tmp.shown();
            self.stream_file(
                &m,
                f,
                streamed.as_ref(),
                &mut |b| tmp.file().write_all(b).map_err(|e| Error::io(format!("writing {}", shown.display()), e)),
                progress,
            )?;
            tmp.commit(leaf, mode, opts.force, &vault)?;
            written.push(target);
        }
        progress.end();
        Ok(GetReport { name: name.to_string(), version: m.version, files: written, bytes: m.total_size() })
    }

    /// Streams one file of `name@r` to `out`. `file` may be omitted when the version has exactly
    /// one file.
    ///
    /// Errors: as [`Vault::get`], and [`Error::InvalidInput`] when `file` is needed or unknown.
    pub fn cat(
        &self,
        name: &str,
        r: &VersionRef,
        file: Option<&str>,
        out: &mut dyn Write,
        progress: &dyn Progress,
    ) -> Result<()> {
        let m = self.manifest(name, r)?;
        let f = match file {
            Some(p) => m.files.iter().find(|f| f.path == p).ok_or_else(|| {
                Error::NotFound(format!("{name}@{} has no file '{}'", m.version, escape(p)))
                    .with_remedy(Remedy::ListFiles)
            })?,
            None if m.files.len() == 1 => &m.files[0],
            None => {
                return Err(Error::InvalidInput(format!("{name}@{} has {} files", m.version, m.files.len()))
                    .with_remedy(Remedy::ChooseFile));
            }
        };
        let streamed = self.on_demand(&m, chunks_of(std::iter::once(f)), progress)?;
        progress.begin(&f.path, f.size);
        self.stream_file(
            &m,
            f,
            streamed.as_ref(),
            &mut |b| out.write_all(b).map_err(|e| Error::io("writing to standard output", e)),
            progress,
        )?;
        out.flush().map_err(|e| Error::io("writing to standard output", e))?;
        progress.end();
        Ok(())
    }

    /// Decrypts `f`'s chunks in order (on a reader thread, through [`ChunkReader`]) and hands
    /// each plaintext to `sink`, then checks the file's size and SHA-256.
    ///
    /// Errors: [`Error::Damaged`] naming model, version, file and chunk.
    pub(crate) fn stream_file(
        &self,
        m: &Manifest,
        f: &FileEntry,
        streamed: Option<&Streamer<'_>>,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
        progress: &dyn Progress,
    ) -> Result<()> {
        let layout = FileChunks::new(m, f);
        let (tx, rx) = crossbeam_channel::bounded::<Result<Vec<u8>>>(super::put::QUEUE_DEPTH);
        std::thread::scope(|scope| {
            let layout = &layout;
            scope.spawn(move || {
                let run = || -> Result<()> {
                    let base = store::read(&self.db)?;
                    let chunks = OnDemand { base: &base, streamed };
                    let mut rd = ChunkReader::new(&chunks, self.envelope(), layout);
                    while let Some(plain) = rd.next_owned()? {
                        if tx.send(Ok(plain)).is_err() {
                            return Ok(());
                        }
                    }
                    Ok(())
                };
                if let Err(e) = run() {
                    let _ = tx.send(Err(e));
                }
            });
            let mut sha = Sha256::new();
            let mut size = 0u64;
            for item in rx.iter() {
                let plain = item?;
                sha.update(&plain);
                size += plain.len() as u64;
                sink(&plain)?;
                progress.advance(plain.len() as u64);
            }
            if size != f.size || <[u8; 32]>::from(sha.finalize()) != f.sha256 {
                return Err(Error::Damaged(format!(
                    "{}: content does not match the manifest's size and SHA-256: the vault is damaged or was tampered with",
                    layout.where_()
                )));
            }
            Ok(())
        })
    }

    /// Reads and opens one chunk, checking its epoch, tag and length (see
    /// [`super::reader::open_chunk`]).
    pub(crate) fn open_chunk(
        &self,
        chunks: &impl ChunkRead,
        id: &[u8; 32],
        len: u32,
        where_: &str,
        i: usize,
        n: usize,
    ) -> Result<Vec<u8>> {
        open_chunk(chunks, &self.envelope(), &ChunkRef { id: *id, len }, where_, i, n)
    }
}

/// Every chunk of `files` in the order a read of them needs it: (id, plaintext length).
pub(crate) fn chunks_of<'f>(files: impl Iterator<Item = &'f FileEntry>) -> impl Iterator<Item = ([u8; 32], u32)> {
    files.flat_map(|f| f.chunks.iter()).map(|c| (c.id, c.len))
}
