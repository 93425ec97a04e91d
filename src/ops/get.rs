//! `get` and `cat`: read a version's files back, checking every chunk's GCM tag, every chunk
//! length and each file's SHA-256 against the signed manifest.
//!
//! `get` writes each file under a temporary name (`.mvault-tmp-*`) in its final directory and
//! renames it only after its SHA-256 matches, so a damaged or tampered file never appears under
//! its real name. It never writes outside DEST: paths come from the signed manifest and are
//! checked again by [`crate::names::check_file_path`], and no directory inside DEST that is a
//! symbolic link is followed. `cat` streams to a writer: every byte it writes has passed its
//! chunk's authentication, but a failure part-way leaves a prefix written (and an error).
//!
//! Decryption runs on a reader thread, hashing and writing on the calling thread.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::VersionRef;
use crate::crypto::aead;
use crate::manifest::{FileEntry, Manifest, hex};
use crate::names::{self, escape};
use crate::progress::Progress;
use crate::store::records::split_chunk_value;
use crate::store::{self, CHUNKS, MODELS, VERSIONS};
use crate::vault::{Unlocked, Vault};
use crate::{Error, Result};

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
        let rx = store::begin_read(&self.db)?;
        let models = rx.open_table(MODELS).map_err(|_| self.model_absent(name))?;
        let versions = rx.open_table(VERSIONS).map_err(|_| self.model_absent(name))?;
        let (_, version) = self.resolve(&models, &versions, name, r)?;
        Ok(self.load_version(&versions, name, version)?.0)
    }

    /// Writes every file of `name@r` into the directory `dest` (created if missing).
    ///
    /// Errors: [`Error::ModelNotFound`], [`Error::VersionNotFound`], [`Error::BadSignature`],
    /// [`Error::Damaged`] (naming model, file and chunk), [`Error::OutputExists`] (without
    /// `force`), [`Error::InvalidInput`] (a symlink or non-directory in the way), [`Error::Io`].
    pub fn get(
        &self,
        name: &str,
        r: &VersionRef,
        dest: &Path,
        opts: &GetOptions,
        progress: &dyn Progress,
    ) -> Result<GetReport> {
        let m = self.manifest(name, r)?;
        let mut targets = Vec::with_capacity(m.files.len());
        for f in &m.files {
            let parts = names::check_file_path(&f.path)?;
            let mut target = dest.to_path_buf();
            for p in &parts {
                target.push(p);
            }
            if let Ok(meta) = std::fs::symlink_metadata(&target) {
                if !opts.force {
                    return Err(Error::OutputExists(target));
                }
                // Checked for every file before any is written, so a refusal leaves DEST as it was.
                if !meta.is_file() {
                    return Err(Error::InvalidInput(format!(
                        "{} exists and is not a regular file (a directory or a symbolic link): refusing to replace it",
                        target.display()
                    )));
                }
            }
            targets.push((f, parts, target));
        }
        std::fs::create_dir_all(dest).map_err(|e| Error::io(format!("creating {}", dest.display()), e))?;
        progress.begin(&format!("get {name}@{}", m.version), m.total_size());
        let mut written = Vec::new();
        for (f, parts, target) in targets {
            let dir = ensure_dirs(dest, &parts[..parts.len() - 1])?;
            self.write_one(&m, f, &dir, &target, progress)?;
            written.push(target);
        }
        progress.end();
        Ok(GetReport { name: name.to_string(), version: m.version, files: written, bytes: m.total_size() })
    }

    fn write_one(&self, m: &Manifest, f: &FileEntry, dir: &Path, target: &Path, progress: &dyn Progress) -> Result<()> {
        if let Ok(meta) = std::fs::symlink_metadata(target)
            && !meta.is_file()
        {
            return Err(Error::InvalidInput(format!(
                "{} exists and is not a regular file: refusing to replace it",
                target.display()
            )));
        }
        let mut rnd = [0u8; 8];
        crate::crypto::fill_random(&mut rnd)?;
        let tmp = dir.join(format!(".mvault-tmp-{}", hex(&rnd)));
        // Owner-only while it holds unverified plaintext; the usual 0644 once it has passed.
        let mut oo = std::fs::OpenOptions::new();
        oo.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut oo, 0o600);
        let mut out = oo.open(&tmp).map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
        let result = (|| {
            self.stream_file(
                m,
                f,
                &mut |b| out.write_all(b).map_err(|e| Error::io(format!("writing {}", tmp.display()), e)),
                progress,
            )?;
            out.sync_all().map_err(|e| Error::io(format!("syncing {}", tmp.display()), e))?;
            #[cfg(unix)]
            std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .map_err(|e| Error::io(format!("setting the mode of {}", tmp.display()), e))?;
            std::fs::rename(&tmp, target).map_err(|e| Error::io(format!("renaming into {}", target.display()), e))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
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
                Error::NotFound(format!(
                    "{name}@{} has no file '{}': `mvault show` lists its files",
                    m.version,
                    escape(p)
                ))
            })?,
            None if m.files.len() == 1 => &m.files[0],
            None => {
                return Err(Error::InvalidInput(format!(
                    "{name}@{} has {} files: choose one with --file PATH",
                    m.version,
                    m.files.len()
                )));
            }
        };
        progress.begin(&f.path, f.size);
        self.stream_file(
            &m,
            f,
            &mut |b| out.write_all(b).map_err(|e| Error::io("writing to standard output", e)),
            progress,
        )?;
        out.flush().map_err(|e| Error::io("writing to standard output", e))?;
        progress.end();
        Ok(())
    }

    /// Decrypts `f`'s chunks in order and hands each plaintext to `sink`, then checks the
    /// file's size and SHA-256.
    ///
    /// Errors: [`Error::Damaged`] naming model, version, file and chunk.
    pub(crate) fn stream_file(
        &self,
        m: &Manifest,
        f: &FileEntry,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
        progress: &dyn Progress,
    ) -> Result<()> {
        let where_ = format!("model '{}' version {} file '{}'", escape(&m.name), m.version, escape(&f.path));
        let n = f.chunks.len();
        let (tx, rx) = crossbeam_channel::bounded::<Result<Vec<u8>>>(super::put::QUEUE_DEPTH);
        std::thread::scope(|scope| {
            let where_r = &where_;
            scope.spawn(move || {
                let run = || -> Result<()> {
                    let rtx = store::begin_read(&self.db)?;
                    let chunks = rtx.open_table(CHUNKS).ok();
                    for (i, c) in f.chunks.iter().enumerate() {
                        let plain = self.open_chunk(chunks.as_ref(), &c.id, c.len, where_r, i, n)?;
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
                    "{where_}: content does not match the manifest's size and SHA-256: the vault is damaged or was tampered with"
                )));
            }
            Ok(())
        })
    }

    /// Reads and opens one chunk, checking its epoch, tag and length.
    pub(crate) fn open_chunk(
        &self,
        chunks: Option<&redb::ReadOnlyTable<&'static [u8; 32], &'static [u8]>>,
        id: &[u8; 32],
        len: u32,
        where_: &str,
        i: usize,
        n: usize,
    ) -> Result<Vec<u8>> {
        let which = format!("{where_}: chunk {} of {n} (id {})", i + 1, &hex(id)[..16]);
        let v = match chunks {
            Some(t) => t.get(id).map_err(|e| Error::storage("reading a chunk", e))?,
            None => None,
        }
        .ok_or_else(|| {
            Error::Damaged(format!("{which} is missing: the vault is damaged; other models remain readable"))
        })?;
        let (epoch, sealed) = split_chunk_value(v.value())
            .ok_or_else(|| Error::Damaged(format!("{which} has an unreadable header: the vault is damaged")))?;
        let keys = self.epoch_keys(epoch).ok_or_else(|| {
            Error::Damaged(format!(
                "{which} claims key epoch {epoch}, which this vault does not hold: the vault is damaged"
            ))
        })?;
        let aad = store::aad("chunks", &self.header.vault_id, epoch, id);
        let plain = aead::open(&keys.chunk, &aad, sealed)
            .map_err(|e| Error::Damaged(format!("{which}: {e}: the vault is damaged or was tampered with")))?;
        if plain.len() != len as usize {
            return Err(Error::Damaged(format!("{which} has {} bytes, the manifest says {len}", plain.len())));
        }
        Ok(plain)
    }
}

/// Creates (if needed) the directories `parts` under `dest`, refusing to pass through anything
/// that is not a real directory (a symbolic link, say). Returns the innermost directory.
fn ensure_dirs(dest: &Path, parts: &[&str]) -> Result<PathBuf> {
    let mut dir = dest.to_path_buf();
    for p in parts {
        dir.push(p);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => {
                return Err(Error::InvalidInput(format!(
                    "{} exists and is not a directory (or is a symbolic link): refusing to write through it",
                    dir.display()
                )));
            }
            Err(_) => std::fs::create_dir(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?,
        }
    }
    Ok(dir)
}
