//! Rewriting the vault file ([`rewrite_with`]): a fresh file, with the vault file's owner and
//! mode, filled and renamed over the vault while the writer holds the old file, so that the file
//! holds nothing but live records. Readers that have the old file open go on reading it, whole
//! and unchanged, until they close it (the rename unlinks it; their descriptors keep it). It must
//! never rename anything over a symbolic link or leave the temporary file behind on failure.

use std::path::{Path, PathBuf};

use super::file::{Db, DbInner, create_file_db};
use super::{Table, copy_table, read, write};
use crate::{Error, Result};

/// Permission bits and owner of an existing vault file, which a rewrite gives the fresh file.
#[derive(Debug, Clone, Copy)]
pub(super) struct FileOwner {
    mode: u32,
    uid: u32,
    gid: u32,
}

#[cfg(unix)]
pub(super) fn owner_of(path: &Path) -> Result<Option<FileOwner>> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    Ok(Some(FileOwner { mode: m.mode() & 0o777, uid: m.uid(), gid: m.gid() }))
}

#[cfg(not(unix))]
pub(super) fn owner_of(_path: &Path) -> Result<Option<FileOwner>> {
    Ok(None)
}

/// Gives `file` the owner, group and permission bits of `like`: fchown first (it may clear mode
/// bits), where permitted (an unprivileged process may only keep its own uid and pick one of its
/// groups; refused, the file keeps this process's), then fchmod.
#[cfg(unix)]
pub(super) fn take_owner(file: &std::fs::File, path: &Path, like: FileOwner) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::os::unix::fs::fchown(file, Some(like.uid), Some(like.gid)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            // Not permitted to give away the file: try to keep at least the group.
            let _ = std::os::unix::fs::fchown(file, None, Some(like.gid));
        }
        Err(e) => return Err(Error::io(format!("setting the owner of {}", path.display()), e)),
    }
    file.set_permissions(std::fs::Permissions::from_mode(like.mode))
        .map_err(|e| Error::io(format!("setting the mode of {}", path.display()), e))
}

#[cfg(not(unix))]
pub(super) fn take_owner(_file: &std::fs::File, _path: &Path, _like: FileOwner) -> Result<()> {
    Ok(())
}

/// The temporary file [`rewrite`] builds beside the vault.
pub fn rewrite_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".rewrite-tmp");
    path.with_file_name(name)
}

/// Copies every live record of the vault into a fresh file and renames it over the old one, so
/// the vault file holds nothing but live records: no freed page with old bytes (deleted chunks,
/// superseded key slots, values sealed under a retired key) survives in it. The old file is
/// unlinked; what its blocks held on the disk is outside the vault's reach (see SECURITY.md).
///
/// Errors: as [`rewrite_with`].
pub fn rewrite(db: &mut Db, path: &Path) -> Result<()> {
    rewrite_with(db, path, |old, fresh| {
        let rx = read(old)?;
        let mut tx = write(fresh)?;
        for table in Table::ALL {
            copy_table(&rx, &mut tx, table)?;
        }
        tx.commit()
    })
}

/// Builds a fresh vault file with `fill(old, fresh)` (which writes every record the new file must
/// hold, in transactions of its own on `fresh`: a fill may checkpoint), then renames it over
/// `path` (the vault file, [`Db::path`]) and makes `db` the handle of the fresh file.
///
/// The fresh file is created beside the vault (same directory, so the rename is atomic) with the
/// vault file's owner, group (fchown, where permitted) and permission bits (fchmod). Its writer
/// lock is held from its creation on: the rename happens while this handle still holds the
/// writer lock of both the old and the fresh file, so no other writer can take either in
/// between. A writer that opened the old file before the rename and wins its lock after it is
/// released finds that the path names another file and opens again ([`super::open_db`]), so no
/// write can go to the unlinked old file. A reader that opened the old file goes on reading it
/// (its descriptor keeps the unlinked file, which nothing writes after the rename but redb's
/// close of the old handle); one that opens after the rename reads the fresh file.
///
/// Crash safety: until the rename the old file is untouched and complete; the rename is atomic.
/// A left-over temporary file from a crash is removed by the next rewrite. If `fill` fails, the
/// temporary file is removed and `db` is left as it was.
///
/// Errors: [`Error::ReadOnly`] on a read-only handle; [`Error::Storage`], [`Error::Io`].
pub fn rewrite_with(db: &mut Db, path: &Path, fill: impl FnOnce(&Db, &Db) -> Result<()>) -> Result<()> {
    db.writable()?;
    let tmp = rewrite_path(path);
    let _ = std::fs::remove_file(&tmp);
    let like = owner_of(path)?;
    let inner = DbInner::Write(create_file_db(&tmp, like)?);
    let id = std::fs::metadata(&tmp).ok().as_ref().and_then(super::file::file_id);
    let mut fresh = Db { inner, path: tmp.clone(), id };
    // Nobody else has the fresh file open, so no reader can refuse its compaction.
    let filled = fill(db, &fresh).and_then(|()| fresh.compact_as("compacting the rewritten vault").map(drop));
    if let Err(e) = filled {
        drop(fresh);
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let sync = |p: &Path| std::fs::File::open(p).and_then(|f| f.sync_all());
    let renamed = sync(&tmp).map_err(|e| Error::io(format!("syncing {}", tmp.display()), e)).and_then(|()| {
        std::fs::rename(&tmp, path)
            .map_err(|e| Error::io(format!("renaming {} over {}", tmp.display(), path.display()), e))
    });
    if let Err(e) = renamed {
        drop(fresh);
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = sync(dir);
    }
    // Only now is the old file's lock released (with its handle, replaced here).
    db.inner = fresh.inner;
    db.id = fresh.id;
    Ok(())
}
