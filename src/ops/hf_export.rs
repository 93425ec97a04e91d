//! Writing a version out as a repository of a Hugging Face hub cache, laid out as
//! `huggingface_hub` lays it out, so its `snapshot_download` and `hf_hub_download` find it
//! offline (`HF_HUB_OFFLINE=1`).
//!
//! Under the cache folder CACHE (created if missing), for the repo id `ORG/NAME`:
//!
//! - `models--ORG--NAME/blobs/BLOB`: each distinct content once, the verified bytes.
//! - `models--ORG--NAME/snapshots/COMMIT/PATH`: a relative link `../../blobs/BLOB`, one more
//!   `../` per folder PATH is in (the only links `ops::hf` follows when reading a cache back).
//! - `models--ORG--NAME/refs/main`: COMMIT, 40 lowercase hex digits and no newline
//!   (`huggingface_hub` reads the file without stripping it).
//!
//! **Blob names** are what the Hub's ETag for the file is, as `huggingface_hub` names blobs
//! (`file_download.py`: "its git-sha1 if stored in git, or its sha256 if stored in git-lfs"):
//! the SHA-256 of the bytes for an LFS file, the Git blob id (SHA-1 of `blob LEN\0` and the
//! bytes) for a regular one. Which files a repository keeps in LFS is decided by the Hub from
//! the repository's `.gitattributes`, the size and a sample of the bytes; here a file is LFS
//! when its path matches a pattern of the Hub's default `.gitattributes` for model repositories
//! ([`LFS_PATTERNS`]), when it is larger than [`LFS_SIZE`], or when its first
//! [`BINARY_SAMPLE`] bytes hold a NUL byte; an empty file never is. Offline loading follows the
//! links and does not look at blob names; the names matter when a tool later goes online and
//! asks whether it already has a file.
//!
//! **COMMIT** is, in this order: the one the caller gives; the `hf.commit` tag that
//! `put --from-hf-cache` records; [`derived_commit`], a hash of the files' paths and SHA-256.
//!
//! **Order.** Every blob is written under a temporary name and renamed into place only once its
//! SHA-256 matched the signed manifest; then the snapshot's links; then `refs/main`, so the ref
//! names a snapshot only once all its links are in place. Everything below CACHE goes through
//! `super::outfile::OutDir`: folders are opened without following a link and nothing is ever
//! written through one. This module must never write a byte that did not pass its chunk's
//! authentication, and never write outside CACHE.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Serialize;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::VersionRef;
use super::ondemand::Streamer;
use super::outfile::{self, OutDir, VaultFile};
use crate::manifest::{FileEntry, Manifest, hex};
use crate::names::{self, escape};
use crate::progress::Progress;
use crate::vault::{Unlocked, Vault};
use crate::{Error, Result};

/// The patterns of the Hub's default `.gitattributes` for a new model repository (each line
/// `PATTERN filter=lfs diff=lfs merge=lfs -text`); a pattern without `/` matches a file name
/// at any depth, as in Git.
pub const LFS_PATTERNS: &[&str] = &[
    "*.7z",
    "*.arrow",
    "*.bin",
    "*.bz2",
    "*.ckpt",
    "*.ftz",
    "*.gz",
    "*.h5",
    "*.joblib",
    "*.lfs.*",
    "*.mlmodel",
    "*.model",
    "*.msgpack",
    "*.npy",
    "*.npz",
    "*.onnx",
    "*.ot",
    "*.parquet",
    "*.pb",
    "*.pickle",
    "*.pkl",
    "*.pt",
    "*.pth",
    "*.rar",
    "*.safetensors",
    "saved_model/**/*",
    "*.tar.*",
    "*.tar",
    "*.tflite",
    "*.tgz",
    "*.wasm",
    "*.xz",
    "*.zip",
    "*.zst",
    "*tfevents*",
];
/// Files larger than this many bytes are LFS files (the Hub refuses larger regular files:
/// 10 MiB).
pub const LFS_SIZE: u64 = 10 * 1024 * 1024;
/// How many leading bytes are looked at for a NUL byte, the sign of a binary (LFS) file.
pub const BINARY_SAMPLE: usize = 512;
/// The tag `put --from-hf-cache` records the snapshot's commit hash under.
pub const COMMIT_TAG: &str = "hf.commit";
/// The tag `put --from-hf-cache` records the repo id under.
pub const REPO_TAG: &str = "hf.repo";

/// Options for [`Vault::get_to_hf_cache`].
#[derive(Debug, Clone, Default)]
pub struct HfExportOptions {
    /// The repo id, `ORG/NAME` or `NAME` (default: the model name).
    pub repo_id: Option<String>,
    /// The snapshot's commit hash, 40 lowercase hex digits (default: see the module docs).
    pub revision: Option<String>,
    /// Replace a snapshot link or file that is in the way (a link already right is kept).
    pub force: bool,
}

/// One file written into the cache.
#[derive(Debug, Clone, Serialize)]
pub struct HfExportFile {
    /// Its path inside the snapshot.
    pub path: String,
    /// Its blob's name: SHA-256 hex (LFS) or Git blob id (regular).
    pub blob: String,
    /// Whether it was named as an LFS file.
    pub lfs: bool,
}

/// What [`Vault::get_to_hf_cache`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct HfExportReport {
    /// Model name.
    pub name: String,
    /// Version read.
    pub version: u64,
    /// The repo id written.
    pub repo_id: String,
    /// The snapshot's commit hash (also in `refs/main`).
    pub commit: String,
    /// The snapshot folder, `CACHE/models--ORG--NAME/snapshots/COMMIT`.
    pub snapshot: PathBuf,
    /// The files, in path order.
    pub files: Vec<HfExportFile>,
    /// Bytes of model data.
    pub bytes: u64,
    /// Snapshot links made or replaced (a link already right is not counted).
    pub links_made: usize,
}

/// The commit hash of a snapshot of `m` when none is given or recorded: the first 40 hex
/// digits of the SHA-256 of `modelvault hf snapshot\n` followed by, for each file in path
/// order, its path, a NUL byte, its SHA-256 in hex and a newline. The same files give the same
/// snapshot folder.
pub fn derived_commit(m: &Manifest) -> String {
    let mut h = Sha256::new();
    h.update(b"modelvault hf snapshot\n");
    for f in &m.files {
        h.update(f.path.as_bytes());
        h.update([0]);
        h.update(hex(&f.sha256).as_bytes());
        h.update(b"\n");
    }
    hex(h.finalize().as_slice())[..super::hf::COMMIT_HEX_LEN].to_string()
}

/// A SHA-1 that has taken Git's blob header for `size` bytes (`blob SIZE\0`): fed the bytes,
/// it gives their Git blob id, as `git hash-object` does.
fn git_blob_hasher(size: u64) -> Sha1 {
    let mut h = Sha1::new();
    h.update(format!("blob {size}\0").as_bytes());
    h
}

/// True for 40 lowercase hex digits, the only commit hashes `huggingface_hub` accepts.
fn is_commit(s: &str) -> bool {
    s.len() == super::hf::COMMIT_HEX_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The snapshot's commit hash by the module's order.
fn commit_for(m: &Manifest, given: Option<&str>) -> Result<String> {
    if let Some(c) = given {
        if !is_commit(c) {
            return Err(Error::InvalidInput(format!(
                "revision '{}' is not a commit hash: a Hugging Face snapshot is named by 40 lowercase hex digits",
                escape(c)
            )));
        }
        return Ok(c.to_string());
    }
    match m.tags.get(COMMIT_TAG).map(|t| t.to_ascii_lowercase()) {
        Some(t) if is_commit(&t) => Ok(t),
        _ => Ok(derived_commit(m)),
    }
}

/// Whether `path` is an LFS file by its name alone ([`LFS_PATTERNS`]) or its `size`.
pub fn lfs_by_rule(path: &str, size: u64) -> bool {
    static SET: OnceLock<GlobSet> = OnceLock::new();
    let set = SET.get_or_init(|| {
        let mut b = GlobSetBuilder::new();
        for p in LFS_PATTERNS {
            let p = if p.contains('/') { p.to_string() } else { format!("**/{p}") };
            b.add(GlobBuilder::new(&p).literal_separator(true).build().expect("the patterns are valid globs"));
        }
        b.build().expect("the patterns are valid globs")
    });
    size > 0 && (size > LFS_SIZE || set.is_match(path))
}

/// Opens `name` in `dir`, creating it.
fn sub(dir: &OutDir, name: &str) -> Result<OutDir> {
    dir.sub(name, true)?.ok_or_else(|| Error::InvalidInput(format!("{name} could not be created")))
}

impl Vault<Unlocked> {
    /// Writes `name@r` into the hub cache folder `cache` (created if missing) as the module docs
    /// lay out, and points `refs/main` at it. Returns where and what it wrote.
    ///
    /// Errors: [`Error::InvalidName`] (a repo id, or a model name used as one, that breaks the
    /// repo id rule, [`names::check_repo_id`]); [`Error::InvalidInput`] (a revision that is not 40
    /// lowercase hex digits; a link, directory or special file in the way); as [`Vault::get`]
    /// otherwise ([`Error::Damaged`], [`Error::OutputExists`] without `force`, [`Error::Io`]).
    /// Blobs already written stay when a later step fails; `refs/main` is written last.
    pub fn get_to_hf_cache(
        &self,
        name: &str,
        r: &VersionRef,
        cache: &Path,
        opts: &HfExportOptions,
        progress: &dyn Progress,
    ) -> Result<HfExportReport> {
        let m = self.manifest(name, r)?;
        let repo_id = opts.repo_id.clone().unwrap_or_else(|| m.name.clone());
        names::check_repo_id(&repo_id)?;
        let commit = commit_for(&m, opts.revision.as_deref())?;
        let paths = m.files.iter().map(|f| names::check_file_path(&f.path)).collect::<Result<Vec<_>>>()?;
        let vault = VaultFile::of(&self.path)?;
        let folder = format!("models--{}", repo_id.replace('/', "--"));
        // Opened once without creating, so a file in the way is named as such.
        OutDir::open(cache, false)?;
        let root = OutDir::open(cache, true)?
            .ok_or_else(|| Error::InvalidInput(format!("{} could not be created", cache.display())))?;
        let repo = sub(&root, &folder)?;
        progress.begin(&format!("get {name}@{} to the Hugging Face cache", m.version), m.total_size());
        let blobs = self.write_blobs(&m, &sub(&repo, "blobs")?, &vault, progress)?;
        let snap = sub(&sub(&repo, "snapshots")?, &commit)?;
        let mut links_made = 0;
        for (parts, (_, f)) in paths.iter().zip(&blobs) {
            let Some((leaf, dirs)) = parts.split_last() else { continue };
            let mut dir = snap.clone();
            for p in dirs {
                dir = sub(&dir, p)?;
            }
            let target = format!("{}blobs/{}", "../".repeat(2 + dirs.len()), f.blob);
            links_made += usize::from(dir.link(leaf, &target, opts.force, &vault)?);
        }
        let refs = sub(&repo, "refs")?;
        let mut tmp = refs.create_temp()?;
        let shown = tmp.shown();
        tmp.file().write_all(commit.as_bytes()).map_err(|e| Error::io(format!("writing {}", shown.display()), e))?;
        tmp.commit("main", outfile::output_mode(), true, &vault)?;
        progress.end();
        Ok(HfExportReport {
            name: m.name.clone(),
            version: m.version,
            snapshot: cache.join(&folder).join("snapshots").join(&commit),
            repo_id,
            commit,
            files: blobs.into_iter().map(|(_, f)| f).collect(),
            bytes: m.total_size(),
            links_made,
        })
    }

    /// Writes each distinct content of `m` into `blobs` under its blob name, in file order;
    /// returns each file's entry with its blob.
    fn write_blobs<'m>(
        &self,
        m: &'m Manifest,
        blobs: &OutDir,
        vault: &VaultFile,
        progress: &dyn Progress,
    ) -> Result<Vec<(&'m FileEntry, HfExportFile)>> {
        let mut done: BTreeMap<[u8; 32], (String, bool)> = BTreeMap::new();
        let mut out = Vec::with_capacity(m.files.len());
        // Chunks a metadata-only pull left on the remote are fetched first (or streamed).
        let streamed = self.on_demand(m, super::get::chunks_of(m.files.iter()), progress)?;
        for f in &m.files {
            let (blob, lfs) = match done.get(&f.sha256) {
                Some(b) => {
                    progress.advance(f.size);
                    b.clone()
                }
                None => {
                    let b = self.write_blob(m, f, blobs, vault, streamed.as_ref(), progress)?;
                    done.insert(f.sha256, b.clone());
                    b
                }
            };
            out.push((f, HfExportFile { path: f.path.clone(), blob, lfs }));
        }
        Ok(out)
    }

    /// Streams `f` into a temporary file in `blobs`, names it by the module's rule once its
    /// SHA-256 matched, and renames it into place (replacing a blob of that name). Returns the
    /// blob's name and whether it is an LFS file.
    fn write_blob(
        &self,
        m: &Manifest,
        f: &FileEntry,
        blobs: &OutDir,
        vault: &VaultFile,
        streamed: Option<&Streamer<'_>>,
        progress: &dyn Progress,
    ) -> Result<(String, bool)> {
        let by_rule = lfs_by_rule(&f.path, f.size);
        let mut git = (!by_rule).then(|| git_blob_hasher(f.size));
        let mut head = Vec::with_capacity(BINARY_SAMPLE);
        let mut tmp = blobs.create_temp()?;
        let shown = tmp.shown();
        self.stream_file(
            m,
            f,
            streamed,
            &mut |b: &[u8]| {
                let room = BINARY_SAMPLE - head.len();
                head.extend_from_slice(&b[..room.min(b.len())]);
                if let Some(g) = git.as_mut() {
                    g.update(b);
                }
                tmp.file().write_all(b).map_err(|e| Error::io(format!("writing {}", shown.display()), e))
            },
            progress,
        )?;
        let lfs = by_rule || (f.size > 0 && head.contains(&0));
        let blob = match git {
            Some(g) if !lfs => hex(g.finalize().as_slice()),
            _ => hex(&f.sha256),
        };
        tmp.commit(&blob, outfile::output_mode(), true, vault)?;
        Ok((blob, lfs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lfs_rule_follows_the_default_gitattributes() {
        for p in ["model.safetensors", "onnx/model.onnx", "a/b/pytorch_model.bin", "x.tar.gz", "saved_model/v/1.pb"] {
            assert!(lfs_by_rule(p, 100), "{p}");
        }
        assert!(lfs_by_rule("events.out.tfevents.1", 1));
        assert!(lfs_by_rule("saved_model/variables/data", 1));
        for p in ["config.json", "1_Pooling/config.json", "README.md", "tokenizer.json", "vocab.txt", "bin"] {
            assert!(!lfs_by_rule(p, 100), "{p}");
        }
        assert!(lfs_by_rule("tokenizer.json", LFS_SIZE + 1));
        assert!(!lfs_by_rule("tokenizer.json", LFS_SIZE));
        assert!(!lfs_by_rule("empty.safetensors", 0));
    }

    #[test]
    fn git_blob_id_is_gits() {
        // `printf 'Hello, World!' | git hash-object --stdin`, as huggingface_hub's git_hash doc says.
        let mut h = git_blob_hasher(13);
        h.update(b"Hello, World!");
        assert_eq!(hex(h.finalize().as_slice()), "b45ef6fec89518d314f546fd6c3025367b721684");
        // The empty blob every Git repository knows.
        assert_eq!(hex(git_blob_hasher(0).finalize().as_slice()), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
    }
}
