//! What a put reads: the list of files under a path (or a Hugging Face snapshot, `ops::hf`), the
//! exclusion rule applied while listing (`--exclude` globs, `.git` skipped), and opening each file
//! for reading. It owns the walk's refusals (symbolic links outside the one rule `ops::hf` follows,
//! special files, bad names); it must never follow a link by itself, and never write anything.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::names;
use crate::{Error, Result};

use super::MAX_FILES;

/// A file to store: its path inside the model and on disk.
#[derive(Debug, Clone)]
pub struct Source {
    /// `/`-separated path inside the model.
    pub path: String,
    /// Where it is on disk (for a Hugging Face snapshot: the link in the snapshot, shown in
    /// messages; the bytes are read from [`Source::blob`]).
    pub disk: PathBuf,
    /// Size when listed, in bytes.
    pub size: u64,
    /// For a file of a Hugging Face snapshot: the blob its link resolves to, read through a
    /// descriptor of the repository's `blobs/` directory, never through the link.
    pub blob: Option<Blob>,
}

/// A file in a repository's `blobs/` directory: that directory, opened without following a
/// link, and the file's name in it (one component).
#[derive(Debug, Clone)]
pub struct Blob {
    /// The `blobs/` directory, opened with `O_DIRECTORY | O_NOFOLLOW`.
    pub(crate) dir: Arc<File>,
    /// The blob's name in it.
    pub(crate) name: String,
}

/// Which files a directory walk leaves out: paths matching any `--exclude` glob, and every
/// file or directory named `.git` unless asked to keep them.
///
/// A glob is matched against the whole `/`-separated path inside the model (`*` does not cross
/// a `/`, `**` does); a glob without a `/` also matches a file or directory name at any depth
/// (`*.bin`, `onnx`). A directory that matches is left out with everything under it.
#[derive(Debug, Clone)]
pub struct Filter {
    paths: GlobSet,
    names: GlobSet,
    include_git: bool,
}

impl Default for Filter {
    fn default() -> Filter {
        Filter { paths: GlobSet::empty(), names: GlobSet::empty(), include_git: false }
    }
}

impl Filter {
    /// The filter of these globs; `.git` is kept when `include_git`.
    ///
    /// Errors: [`Error::InvalidInput`] naming a glob that does not parse.
    pub fn new(globs: &[String], include_git: bool) -> Result<Filter> {
        let mut paths = GlobSetBuilder::new();
        let mut names = GlobSetBuilder::new();
        for g in globs {
            let pat = g.strip_suffix('/').unwrap_or(g);
            let glob = GlobBuilder::new(pat).literal_separator(true).build().map_err(|e| {
                Error::InvalidInput(format!("exclude pattern '{}' is not a valid glob: {}", names::escape(g), e.kind()))
            })?;
            if !pat.contains('/') {
                names.add(glob.clone());
            }
            paths.add(glob);
        }
        let built = |b: GlobSetBuilder| {
            b.build().map_err(|e| Error::InvalidInput(format!("exclude patterns do not build: {}", e.kind())))
        };
        Ok(Filter { paths: built(paths)?, names: built(names)?, include_git })
    }

    /// The refusal of a folder `dir` in which nothing is left to store: it says when the
    /// exclude patterns left every file out.
    pub(crate) fn nothing_left(&self, dir: &Path) -> Error {
        if self.paths.is_empty() {
            return Error::InvalidInput(format!("{} holds no files", dir.display()));
        }
        Error::InvalidInput(format!(
            "{} holds no files once the exclude patterns are applied: every file was left out; nothing was stored",
            dir.display()
        ))
    }

    /// True when the entry at `rel` (path inside the model), named `name`, is left out.
    pub fn excludes(&self, rel: &str, name: &str) -> bool {
        (!self.include_git && name == ".git") || self.paths.is_match(rel) || self.names.is_match(name)
    }
}

/// Lists what `src` holds: one file, or every regular file under a directory in path order,
/// without what [`Filter::default`] leaves out. Symbolic links and special files (devices,
/// sockets, FIFOs) are refused.
///
/// Errors: [`Error::InvalidInput`] naming the offending path; [`Error::InvalidName`] for a file
/// name that breaks the path rule; [`Error::Io`].
pub fn collect_sources(src: &Path) -> Result<Vec<Source>> {
    collect_filtered(src, &Filter::default())
}

/// [`collect_sources`] with `filter` applied to a directory's entries (a single file given is
/// stored whatever the filter says).
///
/// Errors: those of [`collect_sources`]; [`Error::InvalidInput`] when the filter leaves nothing.
pub fn collect_filtered(src: &Path, filter: &Filter) -> Result<Vec<Source>> {
    let meta = std::fs::symlink_metadata(src).map_err(|e| Error::io(format!("reading {}", src.display()), e))?;
    let ft = meta.file_type();
    let mut out = Vec::new();
    if ft.is_symlink() {
        return Err(Error::InvalidInput(format!(
            "{} is a symbolic link: symlinks are refused; give the path of the file it points to",
            src.display()
        )));
    } else if ft.is_file() {
        let name = src
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::InvalidInput(format!("{}: file name is not valid UTF-8", src.display())))?;
        names::check_file_path(name)?;
        out.push(Source { path: name.to_string(), disk: src.to_path_buf(), size: meta.len(), blob: None });
    } else if ft.is_dir() {
        walk(src, "", filter, &mut |p, _| Err(refused_link(p)), &mut out)?;
        if out.is_empty() {
            return Err(filter.nothing_left(src));
        }
    } else {
        return Err(Error::InvalidInput(format!("{} is not a regular file or directory", src.display())));
    }
    Ok(out)
}

/// The refusal of a symbolic link met in a model directory.
fn refused_link(p: &Path) -> Error {
    Error::InvalidInput(format!(
        "{} is a symbolic link inside the model directory: symlinks are refused; copy the target in",
        p.display()
    ))
}

/// What a walk does with a symbolic link at a path, given the link's directory depth below the
/// walk's root: a source (with its blob), or a refusal.
pub(crate) type OnLink<'a> = dyn FnMut(&Path, usize) -> Result<(Blob, u64)> + 'a;

/// Appends every regular file under `dir` (at `prefix` inside the model) to `out`, in path
/// order, leaving out what `filter` excludes; a symbolic link goes to `on_link`.
pub(crate) fn walk(
    dir: &Path,
    prefix: &str,
    filter: &Filter,
    on_link: &mut OnLink<'_>,
    out: &mut Vec<Source>,
) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    let mut entries = Vec::new();
    for e in rd {
        let e = e.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        entries.push(e.path());
    }
    entries.sort();
    let depth = if prefix.is_empty() { 0 } else { prefix.split('/').count() };
    for p in entries {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::InvalidInput(format!("{}: file name is not valid UTF-8", p.display())))?;
        let rel = if prefix.is_empty() { name.to_string() } else { format!("{prefix}/{name}") };
        if filter.excludes(&rel, name) {
            continue;
        }
        let meta = std::fs::symlink_metadata(&p).map_err(|e| Error::io(format!("reading {}", p.display()), e))?;
        let ft = meta.file_type();
        if ft.is_dir() {
            walk(&p, &rel, filter, on_link, out)?;
            continue;
        }
        if !ft.is_symlink() && !ft.is_file() {
            return Err(Error::InvalidInput(format!(
                "{} is a special file (device, socket or FIFO): only regular files can be stored",
                p.display()
            )));
        }
        let (blob, size) =
            if ft.is_symlink() { on_link(&p, depth).map(|(b, n)| (Some(b), n))? } else { (None, meta.len()) };
        names::check_file_path(&rel)?;
        if out.len() >= MAX_FILES {
            return Err(Error::InvalidInput(format!("the model holds more than {MAX_FILES} files")));
        }
        out.push(Source { path: rel, disk: p, size, blob });
    }
    Ok(())
}

/// Opens a source for reading: its path, or for a blob its name in the `blobs/` directory
/// without following a link, and checks that what was opened is a regular file.
///
/// Errors: [`Error::InvalidInput`] when a blob is a symbolic link or not a regular file;
/// [`Error::Io`].
pub(crate) fn open(src: &Source) -> Result<File> {
    match &src.blob {
        None => File::open(&src.disk).map_err(|e| Error::io(format!("opening {}", src.disk.display()), e)),
        #[cfg(unix)]
        Some(blob) => crate::ops::hf::open_blob(blob, &src.disk),
        #[cfg(not(unix))]
        Some(_) => Err(Error::InvalidInput("Hugging Face snapshots are read on Unix only".into())),
    }
}

/// What a `stat` of the source shows now (for a blob: of the name in `blobs/`, without
/// following a link), to compare with its state when it was opened.
///
/// Errors: those of [`open`] for a blob; [`Error::Io`].
pub(crate) fn state_now(src: &Source) -> Result<std::fs::Metadata> {
    let shown = src.disk.display();
    match &src.blob {
        None => std::fs::metadata(&src.disk).map_err(|e| Error::io(format!("reading {shown}"), e)),
        Some(_) => open(src)?.metadata().map_err(|e| Error::io(format!("reading {shown}"), e)),
    }
}
