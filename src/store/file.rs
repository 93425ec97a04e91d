//! The vault file itself: opening it ([`open_db`]: symbolic links resolved once, a writer that
//! takes the writer lock or a reader that opens read-only beside it, the integrity check of small
//! files on a writer's open, and the check that the file it opened is still the file at the
//! path), creating it ([`create_db`], `O_EXCL`, mode 0600) and compacting it ([`Db::compact`],
//! which gives way to readers of other processes). Every open is in redb's single-writer mode:
//! one writer process, any number of reader processes. It must never hand out a handle on a
//! file other than the one at the vault's path, or write to a file opened read-only.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::backends::FileBackend;
use redb::{CompactionError, ConcurrencyMode, Database, DatabaseError, ReadOnlyDatabase, ReadableDatabase};

use super::rewrite::{FileOwner, take_owner};
use crate::{Error, Result};

/// redb page cache, in bytes (64 MiB): keeps a multi-GiB put's RSS flat (see FACTS: the default
/// 1 GiB cache fills with committed pages).
pub const CACHE_BYTES: usize = 64 << 20;

/// Largest vault file whose every page is checked when it is opened (64 MiB: about 50 ms).
pub const INTEGRITY_CHECK_MAX_BYTES: u64 = 64 << 20;

/// Every open of a vault file, writer or reader, is in redb's single-writer mode: one process
/// writes (its open takes the writer lock for as long as it holds the file), and any number of
/// processes open the file read-only beside it, each read transaction seeing the last commit
/// made when it began. A writer of another mode (redb's default locks the whole file) excludes
/// them all and is excluded by them.
fn builder() -> redb::Builder {
    let mut b = redb::Builder::new();
    b.set_cache_size(CACHE_BYTES);
    b.set_concurrency_mode(ConcurrencyMode::SingleWriter);
    b
}

/// How long [`Db::compact`] keeps trying while a reader in another process holds a snapshot
/// (2 s, in tries 100 ms apart) before it gives up and leaves the file as it is.
pub const COMPACT_WAIT: Duration = Duration::from_secs(2);

/// An open vault file: a redb database this process may write, or one opened read-only because
/// the file may not be written by this process (or the caller asked for it). Reading works the
/// same on both; every write on a read-only one fails with [`Error::ReadOnly`] before it starts.
pub struct Db {
    pub(super) inner: DbInner,
    /// The vault file, every symbolic link resolved (see [`open_db`]).
    pub(super) path: PathBuf,
    /// Device and inode of the file this handle holds (Unix), so a second open of the path can
    /// tell whether it reached the same file ([`check_pages`]).
    pub(super) id: Option<(u64, u64)>,
}

pub(super) enum DbInner {
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
    pub(super) fn writable(&self) -> Result<&Database> {
        match &self.inner {
            DbInner::Write(db) => Ok(db),
            DbInner::Read(_) => Err(Error::ReadOnly(self.path.clone())),
        }
    }

    /// Compacts the file until nothing is left to move (the file shrinks to what it holds).
    /// Returns false when it could not: compaction moves pages that a read transaction of another
    /// process may still read, so while one is open it is refused; this retries for
    /// [`COMPACT_WAIT`] and then leaves the file as it is (nothing is lost: the free pages stay
    /// free, and the next compaction takes them). A read-only handle compacts nothing (writes
    /// were refused before this) and returns true.
    ///
    /// Errors: [`Error::Storage`].
    pub fn compact(&mut self) -> Result<bool> {
        let deadline = Instant::now() + COMPACT_WAIT;
        while !self.compact_as("compacting the vault file")? {
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(true)
    }

    /// One compaction to the end; false when a read transaction (of another process: this one
    /// holds none here) refused it.
    pub(super) fn compact_as(&mut self, context: &str) -> Result<bool> {
        if let DbInner::Write(db) = &mut self.inner {
            loop {
                match db.compact() {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(CompactionError::TransactionInProgress) => return Ok(false),
                    Err(e) => return Err(Error::storage(context, e)),
                }
            }
        }
        Ok(true)
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

/// Creates a new, empty redb file at `path`, failing if anything exists there (a symbolic link
/// included). The file is created with mode 0600 on Unix.
///
/// Errors: [`Error::VaultExists`], [`Error::Io`], [`Error::Storage`].
pub fn create_db(path: &Path) -> Result<Db> {
    let db = create_file_db(path, None)?;
    let id = std::fs::metadata(path).ok().as_ref().and_then(file_id);
    Ok(Db { inner: DbInner::Write(db), path: path.to_path_buf(), id })
}

/// Creates the file with `O_EXCL` (mode 0600, or `like`'s owner and mode) and has redb initialise
/// it through the descriptor it was created with.
pub(super) fn create_file_db(path: &Path, like: Option<FileOwner>) -> Result<Database> {
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
pub(super) fn file_id(m: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((m.dev(), m.ino()))
}

#[cfg(not(unix))]
pub(super) fn file_id(_m: &std::fs::Metadata) -> Option<(u64, u64)> {
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

/// How many times a read-only [`open_db`] of a file that a crash left needing repair opens it
/// for writing to repair it (or waits 100 ms for the writer that holds it to do so) before it
/// reports the file as in use (50: 5 s).
pub const READER_REPAIR_TRIES: u32 = 50;

/// Opens an existing vault file. A writer (`read_only` false, and a file this process may write)
/// takes the writer lock for as long as it holds the file: if another writer holds it, this
/// retries every 100 ms until `wait` has passed (no wait: fail at once with
/// [`Error::VaultInUse`]). A reader (`read_only` set, or a file this process may not write)
/// takes no writer lock and opens beside a writer at work; every read transaction it starts
/// sees the last commit made when it began (redb's single-writer mode).
///
/// A symbolic link is resolved once, here: the handle's [`Db::path`] is the real file, so a
/// rewrite renames its fresh file over the real file, in the real file's directory, never over
/// the link. Every write on a read-only handle fails with [`Error::ReadOnly`].
///
/// A file a crashed writer left needing repair cannot be opened read-only: a reader that may
/// write the file opens it for writing once, which repairs it, closes it and opens it read-only
/// again (a writer at work holds such a file repaired: the reader waits for its open to end, up
/// to [`READER_REPAIR_TRIES`] times 100 ms).
///
/// After redb has locked the file, the device and inode of the open file are compared with a
/// fresh `stat` of the path: a rewrite by another process may have renamed a fresh file over the
/// path between this process opening the old file and locking it (the rewriter holds the old
/// writer lock until after its rename, so a writer only ever wins it on the old, unlinked file).
/// Such a handle is dropped and the path opened again, up to [`OPEN_REPLACED_RETRIES`] times.
///
/// Errors: [`Error::VaultNotFound`], [`Error::NotAVault`] (not a regular file, empty, a link to
/// nothing, not a redb file), [`Error::VaultInUse`], [`Error::Damaged`] (a corrupt page found by
/// the integrity check), [`Error::Io`], [`Error::Storage`] (a read-only open of a file that was
/// not closed cleanly, by a process that may not write it: its repair needs write access).
pub fn open_db(path: &Path, wait: Option<Duration>, read_only: bool) -> Result<Db> {
    let real = resolve_vault_path(path)?;
    let deadline = wait.map(|w| Instant::now() + w);
    let (mut replaced, mut repairs) = (0, 0);
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
            writer_builder(meta.len()).create_with_backend(backend).map(DbInner::Write)
        } else {
            builder().open_read_only_with_backend(backend).map(DbInner::Read)
        };
        match opened {
            Ok(inner) => {
                let now = std::fs::metadata(&real).ok();
                if id.is_none() || now.as_ref().and_then(file_id) == id {
                    return Ok(Db { inner, path: real, id });
                }
                // The path names another file now: this handle is on a file renamed over.
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
                repairs += 1;
                if repairs > READER_REPAIR_TRIES {
                    return Err(Error::VaultInUse(path.to_path_buf()));
                }
                repair_for_reader(path, &real)?;
            }
            Err(e) => return Err(map_open_error(path, e)),
        }
    }
}

/// The builder of a writer's open of a file of `len` bytes.
///
/// A plain redb open trusts the file and may panic on a corrupt page later (redb's docs; the
/// torture suite found panics in btree.rs and btree_cursor.rs after one zeroed 4 KiB page).
/// With the check on open, every page of the committed trees is verified first and damage is a
/// `Corrupted` error. With two-phase commit (every vault write uses it) redb never falls back to
/// an older commit here: a corrupt primary is an error, not a silent rollback. The check reads
/// the whole file, so it runs only for files up to [`INTEGRITY_CHECK_MAX_BYTES`]; above that, a
/// corrupt page can still make redb panic, which the CLI reports as damage (exit 6) and library
/// callers can catch (SECURITY.md, "Storage and atomicity"). A read-only open cannot run it.
fn writer_builder(len: u64) -> redb::Builder {
    let mut b = builder();
    b.set_check_integrity_on_open(len <= INTEGRITY_CHECK_MAX_BYTES);
    b
}

/// What [`check_pages`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PageCheck {
    /// Every page of the committed trees was read and its checksum verified.
    Checked,
    /// Not checked: the file is larger than [`INTEGRITY_CHECK_MAX_BYTES`].
    TooLarge,
    /// Not checked: another process is writing the vault (its own open checked it).
    WriterActive,
    /// Not checked: this process may not write the file, and the check needs a writer's open.
    ReadOnly,
    /// Not checked: the path names another file than the one the vault handle holds (a key
    /// rotation or an erasure replaced it since the vault was opened).
    Replaced,
}

/// Verifies the checksum of every page of the vault file that `db` holds through a writer's open with redb's integrity check, then closes it again. A reader
/// (a read-only handle) cannot run that check, so a page that no read touches goes unnoticed;
/// `verify` calls this to find it. Skipped, and said so, for a file over
/// [`INTEGRITY_CHECK_MAX_BYTES`], one this process may not write, and while another process
/// writes the vault (never waits for it).
///
/// Errors: [`Error::Damaged`] for a corrupt page; the other errors of a writer's open.
pub fn check_pages(db: &Db) -> Result<PageCheck> {
    let real = db.path();
    let (file, writable) = open_vault_file(real, false)?;
    if !writable {
        return Ok(PageCheck::ReadOnly);
    }
    let meta = file.metadata().map_err(|e| Error::io(format!("reading {}", real.display()), e))?;
    if file_id(&meta) != db.id {
        // A rewrite renamed a fresh file over the path since `db` was opened: its pages are not
        // the ones `db` reads.
        return Ok(PageCheck::Replaced);
    }
    let len = meta.len();
    if len > INTEGRITY_CHECK_MAX_BYTES {
        return Ok(PageCheck::TooLarge);
    }
    let backend = FileBackend::new(file).map_err(|e| map_open_error(real, e))?;
    match writer_builder(len).create_with_backend(backend) {
        Ok(db) => db.close().map(|()| PageCheck::Checked).map_err(|e| map_open_error(real, e)),
        Err(DatabaseError::DatabaseAlreadyOpen) => Ok(PageCheck::WriterActive),
        Err(e) => Err(map_open_error(real, e)),
    }
}

/// What [`open_writer_beside`] got.
pub enum Beside {
    /// A writer's handle on the same file (the writer lock is held until it is dropped).
    Writer(Db),
    /// Another process holds the writer lock (and the wait, if any, passed).
    Busy,
    /// This process may not write the file.
    NotWritable,
    /// The path names another file than the one `db` holds (a rewrite replaced it).
    Replaced,
}

/// Opens a writer's handle on the file a (read-only) handle `db` holds, beside it, for a reader
/// that found something to keep: the writer lock is taken without waiting, or retried every
/// 100 ms until `wait` has passed. The new handle is checked to be on the same file as `db` (a
/// rewrite may have renamed a fresh file over the path since `db` was opened: what is written
/// for `db`'s keys must not go into it). The locks are per open file, so a read-only handle and
/// a writer's handle of one process share the file as two processes would.
///
/// Errors: [`Error::Damaged`] for a corrupt page (the writer's open checks a small file);
/// [`Error::Io`], [`Error::Storage`].
pub fn open_writer_beside(db: &Db, wait: Option<Duration>) -> Result<Beside> {
    let real = db.path();
    let deadline = wait.map(|w| Instant::now() + w);
    loop {
        let (file, writable) = open_vault_file(real, false)?;
        if !writable {
            return Ok(Beside::NotWritable);
        }
        let meta = file.metadata().map_err(|e| Error::io(format!("reading {}", real.display()), e))?;
        let id = file_id(&meta);
        if id != db.id {
            return Ok(Beside::Replaced);
        }
        let backend = FileBackend::new(file).map_err(|e| map_open_error(real, e))?;
        match writer_builder(meta.len()).create_with_backend(backend) {
            Ok(w) => return Ok(Beside::Writer(Db { inner: DbInner::Write(w), path: real.to_path_buf(), id })),
            Err(DatabaseError::DatabaseAlreadyOpen) => match deadline {
                Some(d) if Instant::now() < d => std::thread::sleep(Duration::from_millis(100)),
                _ => return Ok(Beside::Busy),
            },
            Err(e) => return Err(map_open_error(real, e)),
        }
    }
}

/// For a reader that found the file needing repair (a writer crashed, or a writer's open is
/// repairing it right now): opens it for writing, which repairs it, and closes it again. When
/// another writer holds it, waits 100 ms (that writer repairs it). Returns when the caller may
/// try its read-only open again.
///
/// Errors: [`Error::Storage`] when this process may not write the file; [`Error::Damaged`] and
/// the other errors of a writer's open.
fn repair_for_reader(path: &Path, real: &Path) -> Result<()> {
    let (file, writable) = open_vault_file(real, false)?;
    if !writable {
        return Err(Error::Storage {
            context: format!("opening {} read-only", real.display()),
            detail: "the vault was not closed cleanly and needs a repair, which needs write access".into(),
            source: None,
        }
        .with_remedy(crate::Remedy::RepairByWriting));
    }
    let len = file.metadata().map_err(|e| Error::io(format!("reading {}", real.display()), e))?.len();
    let backend = FileBackend::new(file).map_err(|e| map_open_error(path, e))?;
    match writer_builder(len).create_with_backend(backend) {
        Ok(db) => db.close().map_err(|e| map_open_error(path, e)),
        Err(DatabaseError::DatabaseAlreadyOpen) => {
            std::thread::sleep(Duration::from_millis(100));
            Ok(())
        }
        Err(e) => Err(map_open_error(path, e)),
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
