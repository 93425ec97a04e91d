//! Finding a snapshot in a Hugging Face hub cache and listing its files for `put`, following the
//! snapshot's symbolic links only into that repository's `blobs/` directory.
//!
//! The cache layout (<https://huggingface.co/docs/hub/local-cache>): `CACHE/models--ORG--NAME/`
//! holds `blobs/` (one file per content hash), `refs/BRANCH` (a commit hash) and
//! `snapshots/COMMIT/`, whose files are relative links such as `../../blobs/HASH` (one more
//! `../` per subdirectory).
//!
//! **The link rule.** A link in the snapshot is followed only when its target is exactly
//! `../` repeated to the repository folder (two, plus one per subdirectory the link is in),
//! then `blobs/`, then one name; and that name, opened through a descriptor of `blobs/` with
//! `O_NOFOLLOW`, is a regular file. The repository folder, `blobs/`, `snapshots/`, the snapshot
//! and every directory walked below it are opened or examined without following a link, so
//! each component of the path the link names is a real directory. Any other link (absolute,
//! escaping with `..`, through another folder, to a link, to a missing blob) is refused, as
//! `put` refuses links elsewhere, before anything is stored. The blob is read from the
//! descriptor opened that way, never through the link. This module must never open a path
//! through a link, and never write anything.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::names::{self, escape};
use crate::ops::put::{Blob, Filter, Source, walk};
use crate::{Error, Result};

/// Length of a commit hash in hexadecimal digits (Git's SHA-1).
pub const COMMIT_HEX_LEN: usize = 40;
/// Longest ref file read (a commit hash and a newline fit many times over), in bytes.
const MAX_REF_LEN: u64 = 1024;

/// The hub cache the Hugging Face tools use when none is given: `$HF_HUB_CACHE`, else
/// `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`
/// (the order of `huggingface_hub`). `None` when none of these variables is set.
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("HF_HUB_CACHE")
        .or_else(|| var("HF_HOME").map(|h| h.join("hub")))
        .or_else(|| var("XDG_CACHE_HOME").map(|h| h.join("huggingface/hub")))
        .or_else(|| var("HOME").map(|h| h.join(".cache/huggingface/hub")))
}

/// A snapshot of a repository found in a cache, with the files to store.
#[derive(Debug, Clone)]
pub struct HfSnapshot {
    /// The repo id, `ORG/NAME` or `NAME`.
    pub repo_id: String,
    /// The commit hash the revision named (40 lowercase or uppercase hex digits, as in the cache).
    pub commit: String,
    /// The snapshot folder, `CACHE/models--ORG--NAME/snapshots/COMMIT`.
    pub dir: PathBuf,
    /// Its files in path order, each link resolved to its blob by the module's rule.
    pub sources: Vec<Source>,
}

/// Finds the snapshot of `repo_id` at `revision` (a commit hash, or a name under `refs/` such
/// as `main`) in the cache `cache_dir` and lists its files, leaving out what `filter` excludes.
///
/// Errors: [`Error::InvalidName`] for a repo id breaking the model name rule;
/// [`Error::InvalidInput`] for a bad revision or a link or folder the rule refuses;
/// [`Error::NotFound`] when the cache, the repository, the ref or the snapshot is absent;
/// [`Error::Io`].
pub fn snapshot(cache_dir: &Path, repo_id: &str, revision: &str, filter: &Filter) -> Result<HfSnapshot> {
    names::check_repo_id(repo_id)?;
    check_revision(revision)?;
    let folder = format!("models--{}", repo_id.replace('/', "--"));
    let repo_path = cache_dir.join(&folder);
    let cache = rustix::fs::openat(CWD, cache_dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| match e {
            Errno::NOENT => Error::NotFound(format!("the Hugging Face cache {} does not exist", cache_dir.display())),
            Errno::NOTDIR => Error::InvalidInput(format!(
                "{} is not a folder: a Hugging Face cache is a folder of models--ORG--NAME folders",
                cache_dir.display()
            )),
            e => Error::io(format!("opening {}", cache_dir.display()), e.into()),
        })?;
    let repo = open_dir(&cache, &folder, &repo_path, || {
        format!("'{repo_id}' is not in the Hugging Face cache {} (it has no {folder})", cache_dir.display())
    })?;
    let blobs_path = repo_path.join("blobs");
    let blobs = open_dir(&repo, "blobs", &blobs_path, || {
        format!("{} has no blobs/ folder: it is not a Hugging Face cache repository", repo_path.display())
    })?;
    let commit = if is_commit(revision) { revision.to_string() } else { read_ref(&repo, &repo_path, revision)? };
    let snaps = open_dir(&repo, "snapshots", &repo_path.join("snapshots"), || {
        format!("{} has no snapshots/ folder: it is not a Hugging Face cache repository", repo_path.display())
    })?;
    let dir = repo_path.join("snapshots").join(&commit);
    open_dir(&snaps, &commit, &dir, || {
        format!(
            "revision {commit} of '{repo_id}' is not in the cache: {} has no snapshots/{commit}",
            repo_path.display()
        )
    })?;
    let blobs = Arc::new(File::from(blobs));
    let mut sources = Vec::new();
    walk(&dir, "", filter, &mut |link, depth| resolve(link, depth, &blobs, &blobs_path), &mut sources)?;
    if sources.is_empty() {
        return Err(filter.nothing_left(&dir));
    }
    Ok(HfSnapshot { repo_id: repo_id.to_string(), commit, dir, sources })
}

/// True for a full commit hash.
fn is_commit(s: &str) -> bool {
    s.len() == COMMIT_HEX_LEN && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A revision is a commit hash or a ref name: `/`-separated components of ASCII letters,
/// digits, `.`, `_` and `-`, none starting with `.`.
fn check_revision(rev: &str) -> Result<()> {
    let ok = !rev.is_empty()
        && rev.len() <= 255
        && rev.split('/').all(|c| {
            !c.is_empty()
                && !c.starts_with('.')
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
    if ok {
        return Ok(());
    }
    Err(Error::InvalidInput(format!(
        "revision '{}' is neither a commit hash nor a branch or tag name (ASCII letters, digits, '.', '_', '-' and '/')",
        escape(rev)
    )))
}

/// Opens the folder `name` in `parent` without following a link; `missing` words the
/// [`Error::NotFound`] of an absent one.
fn open_dir(parent: impl AsFd, name: &str, shown: &Path, missing: impl FnOnce() -> String) -> Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(parent, name, flags, Mode::empty()).map_err(|e| match e {
        Errno::NOENT => Error::NotFound(missing()),
        Errno::LOOP | Errno::NOTDIR => Error::InvalidInput(format!(
            "{} is a symbolic link or not a folder: in a Hugging Face cache only real folders are followed; nothing was stored",
            shown.display()
        )),
        e => Error::io(format!("opening {}", shown.display()), e.into()),
    })
}

/// The commit hash in `refs/REV`, each component opened without following a link.
fn read_ref(repo: &OwnedFd, repo_path: &Path, rev: &str) -> Result<String> {
    let not_found = || {
        format!(
            "revision '{rev}' is not in the cache: {} has no refs/{rev} (give a commit hash, or download that revision first)",
            repo_path.display()
        )
    };
    let mut dir = open_dir(repo, "refs", &repo_path.join("refs"), not_found)?;
    let parts: Vec<&str> = rev.split('/').collect();
    let mut shown = repo_path.join("refs");
    for part in &parts[..parts.len() - 1] {
        shown.push(part);
        dir = open_dir(&dir, part, &shown, not_found)?;
    }
    shown.push(parts[parts.len() - 1]);
    let file = open_regular(&dir, parts[parts.len() - 1], &shown, not_found)?;
    let mut text = String::new();
    file.take(MAX_REF_LEN)
        .read_to_string(&mut text)
        .map_err(|e| Error::io(format!("reading {}", shown.display()), e))?;
    let commit = text.trim();
    if !is_commit(commit) {
        return Err(Error::InvalidInput(format!(
            "{} does not hold a commit hash ({COMMIT_HEX_LEN} hex digits): nothing was stored",
            shown.display()
        )));
    }
    Ok(commit.to_string())
}

/// Opens `name` in `dir` for reading without following a link, and checks it is a regular file.
fn open_regular(dir: impl AsFd, name: &str, shown: &Path, missing: impl FnOnce() -> String) -> Result<File> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(|e| match e {
        Errno::NOENT => Error::NotFound(missing()),
        Errno::LOOP => Error::InvalidInput(format!(
            "{} is a symbolic link: a link is followed only to a regular file in blobs/; nothing was stored",
            shown.display()
        )),
        e => Error::io(format!("opening {}", shown.display()), e.into()),
    })?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(|e| Error::io(format!("reading {}", shown.display()), e))?;
    if !meta.is_file() {
        return Err(Error::InvalidInput(format!("{} is not a regular file: nothing was stored", shown.display())));
    }
    Ok(file)
}

/// Opens a blob for reading: its name in `blobs/` with `O_NOFOLLOW`, checked to be a regular
/// file. `link` is the snapshot's link, for messages.
///
/// Errors: [`Error::InvalidInput`] when the blob is now a link or not a regular file,
/// [`Error::NotFound`] when it is gone; [`Error::Io`].
pub(crate) fn open_blob(blob: &Blob, link: &Path) -> Result<File> {
    open_regular(&*blob.dir, &blob.name, link, || format!("{}: its blob {} is gone", link.display(), blob.name))
}

/// Resolves the link at `link`, `depth` folders below the snapshot, to its blob by the
/// module's rule; returns the blob and its size.
fn resolve(link: &Path, depth: usize, blobs: &Arc<File>, blobs_path: &Path) -> Result<(Blob, u64)> {
    let target = std::fs::read_link(link).map_err(|e| Error::io(format!("reading the link {}", link.display()), e))?;
    let shown = escape(&target.to_string_lossy());
    let Some(t) = target.to_str() else {
        return Err(outside(link, &shown, blobs_path));
    };
    if t.starts_with('/') {
        return Err(Error::InvalidInput(format!(
            "{} is a symbolic link to the absolute path {shown}: in a Hugging Face snapshot only relative links into the repository's blobs/ are followed; nothing was stored",
            link.display()
        )));
    }
    let parts: Vec<&str> = t.split('/').collect();
    let ups = depth + 2;
    let name = match parts.as_slice() {
        [up @ .., b, name] if up.len() == ups && up.iter().all(|p| *p == "..") && *b == "blobs" => *name,
        _ => return Err(outside(link, &shown, blobs_path)),
    };
    if name.is_empty() || name == "." || name == ".." {
        return Err(outside(link, &shown, blobs_path));
    }
    let blob_path = blobs_path.join(name);
    let st = rustix::fs::statat(&**blobs, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| match e {
        Errno::NOENT => Error::InvalidInput(format!(
            "{} leads to {}, which does not exist (an unfinished download?): nothing was stored",
            link.display(),
            blob_path.display()
        )),
        e => Error::io(format!("reading {}", blob_path.display()), e.into()),
    })?;
    match FileType::from_raw_mode(st.st_mode as _) {
        FileType::RegularFile => {}
        FileType::Symlink => {
            return Err(Error::InvalidInput(format!(
                "{} leads to {}, which is itself a symbolic link: a link is followed only to a regular file in blobs/; nothing was stored",
                link.display(),
                blob_path.display()
            )));
        }
        _ => {
            return Err(Error::InvalidInput(format!(
                "{} leads to {}, which is not a regular file: nothing was stored",
                link.display(),
                blob_path.display()
            )));
        }
    }
    Ok((Blob { dir: Arc::clone(blobs), name: name.to_string() }, st.st_size as u64))
}

/// The refusal of a link whose target is not a file of the repository's `blobs/`.
fn outside(link: &Path, target: &str, blobs_path: &Path) -> Error {
    Error::InvalidInput(format!(
        "{} is a symbolic link to {target}, which is not a file of the repository's blobs/ ({}): in a Hugging Face snapshot only links into blobs/ are followed; nothing was stored",
        link.display(),
        blobs_path.display()
    ))
}
