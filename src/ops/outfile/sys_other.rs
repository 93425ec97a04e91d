//! Path-based fallbacks for the output files where descriptor-relative calls are not
//! available (not Unix): the same calls as `sys_unix.rs`, through paths.
//!
//! It must never follow a symbolic link where it can see one (`symlink_metadata`), and never
//! decide policy (that is the parent module's).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::{Entry, Kind};

pub type DirHandle = PathBuf;

pub fn open_root(path: &Path) -> io::Result<DirHandle> {
    let m = std::fs::metadata(path)?;
    if !m.is_dir() {
        return Err(io::Error::other("not a directory"));
    }
    Ok(path.to_path_buf())
}

pub fn open_sub(dir: &DirHandle, name: &str) -> io::Result<DirHandle> {
    let p = dir.join(name);
    if !std::fs::symlink_metadata(&p)?.is_dir() {
        return Err(io::Error::other("not a directory"));
    }
    Ok(p)
}

pub fn is_not_dir(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Other
}

pub fn mkdir(dir: &DirHandle, name: &str) -> io::Result<()> {
    std::fs::create_dir(dir.join(name))
}

pub fn entry(dir: &DirHandle, name: &str) -> io::Result<Option<Entry>> {
    match std::fs::symlink_metadata(dir.join(name)) {
        Ok(m) => {
            let t = m.file_type();
            let kind = if t.is_file() {
                Kind::Regular
            } else if t.is_dir() {
                Kind::Directory
            } else {
                Kind::Other
            };
            Ok(Some(Entry { id: None, kind }))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn create_excl(dir: &DirHandle, name: &str) -> io::Result<File> {
    std::fs::OpenOptions::new().write(true).create_new(true).open(dir.join(name))
}

pub fn rename(dir: &DirHandle, from: &str, to: &str, _no_replace: bool) -> io::Result<()> {
    std::fs::rename(dir.join(from), dir.join(to))
}

pub fn unlink(dir: &DirHandle, name: &str) -> io::Result<()> {
    std::fs::remove_file(dir.join(name))
}

pub fn sync_dir(_dir: &DirHandle) -> io::Result<()> {
    Ok(())
}
