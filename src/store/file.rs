//! The vault file itself: opening it ([`open_db`]: symbolic links resolved once, a read-only
//! open for a file this process may not write, the integrity check of small files, and the
//! check that the file it locked is still the file at the path), creating it ([`create_db`],
//! `O_EXCL`, mode 0600) and rewriting it ([`rewrite_with`]: a fresh file renamed over the vault
//! while both files are locked, with the vault's owner and mode). It must never hand out a
//! handle on a file other than the one at the vault's path, rename anything over a symbolic
//! link, or write to a file opened read-only.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::backends::FileBackend;
use redb::{Database, DatabaseError, ReadOnlyDatabase, ReadableDatabase};

use super::{Table, copy_table, read, write};
use crate::{Error, Result};

/// redb page cache, in bytes (64 MiB): keeps a multi-GiB put's RSS flat (see FACTS: the default
/// 1 GiB cache fills with committed pages).
pub const CACHE_BYTES: usize = 64 << 20;

/// Largest vault file whose every page is checked when it is opened (64 MiB: about 50 ms).
pub const INTEGRITY_CHECK_MAX_BYTES: u64 = 64 << 20;

fn builder() -> redb::Builder {
    let mut b = redb::Builder::new();
    b.set_cache_size(CACHE_BYTES);
    b
}

/// An open vault file: a redb database this process may write, or one opened read-only because
/// the file may not be written by this process (or the caller asked for it). Reading works the
/// same on both; every write on a read-only one fails with [`Error::ReadOnly`] before it starts.
pub struct Db {
    inner: DbInner,
    /// The vault file, every symbolic link resolved (see [`open_db`]).
    path: PathBuf,
}

enum DbInner {
    Write(Database),
    Read(ReadOnlyDatabase),
}

impl Db {
    /// The vault file this handle holds, with every symbolic link resolved.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when the file was opened read-only.
    pub fn is_read_only(&self) -> bool {
        matches!(self.inner, DbInner::Read(_))
    }

    /// The writable redb database.
    ///
    /// Errors: [`Error::ReadOnly`] for a read-only handle.
    fn writable(&self) -> Result<&Database> {
        match &self.inner {
            DbInner::Write(db) => Ok(db),
            DbInner::Read(_) => Err(Error::ReadOnly(self.path.clone())),
        }
    }

    /// Compacts the file until nothing is left to move (the file shrinks to what it holds). A
    /// read-only handle compacts nothing (writes were refused before this).
    ///
    /// Errors: [`Error::Storage`].
    pub fn compact(&mut self) -> Result<()> {
        self.compact_as("compacting the vault file")
    }

    fn compact_as(&mut self, context: &str) -> Result<()> {
        if let DbInner::Write(db) = &mut self.inner {
            while db.compact().map_err(|e| Error::storage(context, e))? {}
        }
        Ok(())
    }
}

impl Db {
    /// Starts a raw read transaction.
    pub(super) fn read_tx(&self) -> Result<redb::ReadTransaction> {
        let err = |e| Error::storage("starting a read transaction", e);
        match &self.inner {
            DbInner::Write(db) => db.begin_read().map_err(err),
            DbInner::Read(db) => db.begin_read().map_err(err),
        }
    }

    /// Starts a raw write transaction with two-phase commit and quick repair on, as redb's
    /// design notes recommend where the file may be hostile.
    ///
    /// Errors: [`Error::ReadOnly`] on a read-only handle; [`Error::Storage`].
    pub(super) fn write_tx(&self) -> Result<redb::WriteTransaction> {
        let db = self.writable()?;
        let mut tx = db.begin_write().map_err(|e| Error::storage("starting a write transaction", e))?;
        tx.set_two_phase_commit(true);
        tx.set_quick_repair(true);
        Ok(tx)
    }
}

/// Permission bits and owner of an existing vault file, which a rewrite gives the fresh file.
#[derive(Debug, Clone, Copy)]
struct FileOwner {
    mode: u32,
    uid: u32,
    gid: u32,
}

#[cfg(unix)]
fn owner_of(path: &Path) -> Result<Option<FileOwner>> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    Ok(Some(FileOwner { mode: m.mode() & 0o777, uid: m.uid(), gid: m.gid() }))
}

#[cfg(not(unix))]
fn owner_of(_path: &Path) -> Result<Option<FileOwner>> {
    Ok(None)
}

/// Gives `file` the owner, group and permission bits of `like`: fchown first (it may clear mode
/// bits), where permitted (an unprivileged process may only keep its own uid and pick one of its
/// groups; refused, the file keeps this process's), then fchmod.
#[cfg(unix)]
fn take_owner(file: &std::fs::File, path: &Path, like: FileOwner) -> Result<()> {
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
fn take_owner(_file: &std::fs::File, _path: &Path, _like: FileOwner) -> Result<()> {
    Ok(())
}

/// Creates a new, empty redb file at `path`, failing if anything exists there (a symbolic link
/// included). The file is created with mode 0600 on Unix.
///
/// Errors: [`Error::VaultExists`], [`Error::Io`], [`Error::Storage`].
pub fn create_db(path: &Path) -> Result<Db> {
    let db = create_file_db(path, None)?;
    Ok(Db { inner: DbInner::Write(db), path: path.to_path_buf() })
}

/// Creates the file with `O_EXCL` (mode 0600, or `like`'s owner and mode) and has redb initialise
/// it through the descriptor it was created with.
fn create_file_db(path: &Path, like: Option<FileOwner>) -> Result<Database> {
    let mut oo = std::fs::OpenOptions::new();
    oo.read(true).write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        oo.mode(0o600);
    }
    let file = oo.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::VaultExists(path.to_path_buf())
        } else {
            Error::io(format!("creating vault file {}", path.display()), e)
        }
    })?;
    if let Some(like) = like {
        take_owner(&file, path, like)?;
    }
    let backend = FileBackend::new(file).map_err(|e| map_open_error(path, e))?;
    builder().create_with_backend(backend).map_err(|e| map_open_error(path, e))
}

/// How many times [`open_db`] opens the vault again when the file it locked turned out to have
/// been replaced (renamed over by a rewrite) meanwhile. Each replacement is a whole rewrite by
/// another process, so this is never reached in practice.
pub const OPEN_REPLACED_RETRIES: u32 = 100;

/// Device and inode of a file (Unix), to tell whether two handles are the same file.
#[cfg(unix)]
fn file_id(m: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_id(_m: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// Opens the vault file for writing, or read-only when this process may not write it
/// (permission denied, read-only filesystem) or `read_only` asks for it. Returns the file and
/// whether it is writable.
fn open_vault_file(path: &Path, read_only: bool) -> Result<(std::fs::File, bool)> {
    let fail = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::VaultNotFound(path.to_path_buf())
        } else {
            Error::io(format!("opening vault {}", path.display()), e)
        }
    };
    if !read_only {
        match std::fs::OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => return Ok((f, true)),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
                ) => {}
            Err(e) => return Err(fail(e)),
        }
    }
    std::fs::File::open(path).map(|f| (f, false)).map_err(fail)
}

/// Opens an existing vault file. If another process holds it, retries every 100 ms until `wait`
/// has passed (no wait: fail at once with [`Error::VaultInUse`]).
///
/// A symbolic link is resolved once, here: the handle's [`Db::path`] is the real file, so a
/// rewrite renames its fresh file over the real file, in the real file's directory, never over
/// the link. The file is opened read-only when this process may not write it, or when
/// `read_only` is set; every write then fails with [`Error::ReadOnly`].
///
/// After redb has locked the file, the device and inode of the open file are compared with a
/// fresh `stat` of the path: a rewrite by another process may have renamed a fresh file over the
/// path between this process opening the old file and locking it (the rewriter holds the old
/// lock until after its rename, so the lock is only ever won on the old, unlinked file). Such a
/// handle is dropped and the path opened again, up to [`OPEN_REPLACED_RETRIES`] times.
///
/// Errors: [`Error::VaultNotFound`], [`Error::NotAVault`] (not a regular file, empty, a link to
/// nothing, not a redb file), [`Error::VaultInUse`], [`Error::Damaged`] (a corrupt page found by
/// the integrity check), [`Error::Io`], [`Error::Storage`] (a read-only open of a file that was
/// not closed cleanly: its repair needs write access).
pub fn open_db(path: &Path, wait: Option<Duration>, read_only: bool) -> Result<Db> {
    let real = resolve_vault_path(path)?;
    let deadline = wait.map(|w| Instant::now() + w);
    let mut replaced = 0;
    loop {
        let (file, writable) = open_vault_file(&real, read_only)?;
        let meta = file.metadata().map_err(|e| Error::io(format!("reading {}", real.display()), e))?;
        if !meta.is_file() {
            return Err(Error::NotAVault { path: path.to_path_buf(), reason: "it is not a regular file".into() });
        }
        if meta.len() == 0 {
            // redb would initialise an empty file it is handed; an empty file is no vault.
            return Err(Error::NotAVault { path: path.to_path_buf(), reason: "it is empty".into() });
        }
        let id = file_id(&meta);
        let backend = FileBackend::new(file).map_err(|e| map_open_error(path, e))?;
        let opened = if writable {
            // A plain redb open trusts the file and may panic on a corrupt page later (redb's
            // docs; the torture suite found panics in btree.rs and btree_cursor.rs after one
            // zeroed 4 KiB page). With the check on open, every page of the committed trees is
            // verified first and damage is a `Corrupted` error. With two-phase commit (every
            // vault write uses it) redb never falls back to an older commit here: a corrupt
            // primary is an error, not a silent rollback. The check reads the whole file, so it
            // runs only for files up to INTEGRITY_CHECK_MAX_BYTES; above that, a corrupt page can
            // still make redb panic, which the CLI reports as damage (exit 6) and library callers
            // can catch (SECURITY.md, "Storage and atomicity"). A read-only open cannot run it.
            let mut b = builder();
            b.set_check_integrity_on_open(meta.len() <= INTEGRITY_CHECK_MAX_BYTES);
            b.create_with_backend(backend).map(DbInner::Write)
        } else {
            builder().open_read_only_with_backend(backend).map(DbInner::Read)
        };
        match opened {
            Ok(inner) => {
                let now = std::fs::metadata(&real).ok();
                if id.is_none() || now.as_ref().and_then(file_id) == id {
                    return Ok(Db { inner, path: real });
                }
                // The path names another file now: this lock is on a file renamed over.
                drop(inner);
                replaced += 1;
                if replaced > OPEN_REPLACED_RETRIES {
                    return Err(Error::VaultInUse(path.to_path_buf()));
                }
            }
            Err(DatabaseError::DatabaseAlreadyOpen) => match deadline {
                Some(d) if Instant::now() < d => std::thread::sleep(Duration::from_millis(100)),
                _ => return Err(Error::VaultInUse(path.to_path_buf())),
            },
            Err(DatabaseError::RepairAborted) if !writable => {
                return Err(Error::Storage {
                    context: format!("opening {} read-only", real.display()),
                    detail: "the vault was not closed cleanly and needs a repair, which needs write access".into(),
                    source: None,
                }
                .with_remedy(crate::Remedy::RepairByWriting));
            }
            Err(e) => return Err(map_open_error(path, e)),
        }
    }
}

/// The vault file `path` names, every symbolic link resolved, checked to be a regular file.
///
/// Errors: [`Error::VaultNotFound`], [`Error::NotAVault`] (a link to nothing, not a regular
/// file), [`Error::Io`].
fn resolve_vault_path(path: &Path) -> Result<PathBuf> {
    let real = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::fs::symlink_metadata(path).is_ok() {
                return Err(Error::NotAVault {
                    path: path.to_path_buf(),
                    reason: "it is a symbolic link to a file that does not exist".into(),
                });
            }
            return Err(Error::VaultNotFound(path.to_path_buf()));
        }
        Err(e) => return Err(Error::io(format!("resolving {}", path.display()), e)),
    };
    match std::fs::metadata(&real) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::VaultNotFound(path.to_path_buf()));
        }
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        Ok(m) if !m.is_file() => {
            return Err(Error::NotAVault { path: path.to_path_buf(), reason: "it is not a regular file".into() });
        }
        Ok(_) => {}
    }
    Ok(real)
}

fn map_open_error(path: &Path, e: DatabaseError) -> Error {
    match e {
        DatabaseError::DatabaseAlreadyOpen => Error::VaultInUse(path.to_path_buf()),
        DatabaseError::Storage(redb::StorageError::Io(io)) if io.kind() == std::io::ErrorKind::InvalidData => {
            Error::NotAVault { path: path.to_path_buf(), reason: io.to_string() }
        }
        DatabaseError::Storage(redb::StorageError::Io(io)) => {
            Error::io(format!("opening vault {}", path.display()), io)
        }
        DatabaseError::Storage(redb::StorageError::Corrupted(msg)) => Error::Damaged(format!(
            "vault {} is damaged: the storage engine found a corrupt page ({msg}); restore it from a backup",
            path.display()
        )),
        other => {
            Error::NotAVault { path: path.to_path_buf(), reason: format!("the storage engine refused it ({other})") }
        }
    }
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
/// hold, in transactions of its own on `fresh`: a fill may checkpoint), then renames it over `path` (the vault file, [`Db::path`]) and makes `db` the handle of
/// the fresh file.
///
/// The fresh file is created beside the vault (same directory, so the rename is atomic) with the
/// vault file's owner, group (fchown, where permitted) and permission bits (fchmod). It is locked
/// from its creation and stays locked: the rename happens while this handle still holds the lock
/// of both the old and the fresh file, so no other process can lock either in between. An opener
/// that opened the old file before the rename and wins its lock after it is released finds that
/// the path names another file and opens again ([`open_db`]), so no write can go to the unlinked
/// old file.
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
    let mut fresh = Db { inner: DbInner::Write(create_file_db(&tmp, like)?), path: tmp.clone() };
    let filled = fill(db, &fresh).and_then(|()| fresh.compact_as("compacting the rewritten vault"));
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
    Ok(())
}
