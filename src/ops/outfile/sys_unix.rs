//! Descriptor-relative file system calls (Unix, through `rustix`) under the output files:
//! open a directory, open or create a subdirectory without following a link, stat an entry
//! without following it, create a file with `O_CREAT | O_EXCL | O_NOFOLLOW` and mode 0600,
//! rename (with `RENAME_NOREPLACE` where Linux has it), unlink, create and read a symbolic
//! link (its text only), sync.
//!
//! Every call below the directory the caller named is relative to a directory descriptor; it
//! must never take a path through a symbolic link, and never decide policy (that is the parent
//! module's).

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::{Entry, FileId, Kind};

pub type DirHandle = Arc<OwnedFd>;

pub fn open_root(path: &Path) -> io::Result<DirHandle> {
    Ok(Arc::new(rustix::fs::openat(CWD, path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?))
}

pub fn open_sub(dir: &DirHandle, name: &str) -> io::Result<DirHandle> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(Arc::new(rustix::fs::openat(dir, name, flags, Mode::empty())?))
}

pub fn is_not_dir(e: &io::Error) -> bool {
    let code = e.raw_os_error();
    code == Some(Errno::LOOP.raw_os_error()) || code == Some(Errno::NOTDIR.raw_os_error())
}

pub fn mkdir(dir: &DirHandle, name: &str) -> io::Result<()> {
    Ok(rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o777))?)
}

#[allow(clippy::unnecessary_cast)] // st_dev and st_ino are not u64 on every target
pub fn entry(dir: &DirHandle, name: &str) -> io::Result<Option<Entry>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => {
            let kind = match FileType::from_raw_mode(st.st_mode as _) {
                FileType::RegularFile => Kind::Regular,
                FileType::Directory => Kind::Directory,
                _ => Kind::Other,
            };
            Ok(Some(Entry { id: Some(FileId { dev: st.st_dev as u64, ino: st.st_ino as u64 }), kind }))
        }
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn create_excl(dir: &DirHandle, name: &str) -> io::Result<File> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(File::from(rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(0o600))?))
}

/// Renames `from` to `to` in `dir`; with `no_replace`, fails with `AlreadyExists` rather
/// than replace something (atomically where the system and file system can).
pub fn rename(dir: &DirHandle, from: &str, to: &str, no_replace: bool) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if no_replace {
        match rustix::fs::renameat_with(dir, from, dir, to, rustix::fs::RenameFlags::NOREPLACE) {
            Err(Errno::INVAL) | Err(Errno::NOSYS) => {} // not supported here: checked just before
            r => return Ok(r?),
        }
    }
    let _ = no_replace;
    Ok(rustix::fs::renameat(dir, from, dir, to)?)
}

pub fn unlink(dir: &DirHandle, name: &str) -> io::Result<()> {
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?)
}

/// Creates the symbolic link `name` in `dir` with the text `target` (never resolved here).
pub fn symlink(dir: &DirHandle, target: &str, name: &str) -> io::Result<()> {
    Ok(rustix::fs::symlinkat(target, dir, name)?)
}

/// The text of the symbolic link `name` in `dir`; `None` when `name` is absent or not a link.
pub fn read_link(dir: &DirHandle, name: &str) -> io::Result<Option<String>> {
    match rustix::fs::readlinkat(dir, name, Vec::new()) {
        Ok(t) => Ok(Some(t.to_string_lossy().into_owned())),
        Err(Errno::NOENT) | Err(Errno::INVAL) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn sync_dir(dir: &DirHandle) -> io::Result<()> {
    Ok(rustix::fs::fsync(dir)?)
}
