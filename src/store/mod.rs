//! The redb schema and every byte that touches the vault file. Nothing outside this module names a
//! table; operations go through the typed helpers here.
//!
//! Tables (see SECURITY.md, "Byte layout", for every record's bytes):
//!
//! | table      | key                         | value                                            |
//! |------------|-----------------------------|--------------------------------------------------|
//! | `meta`     | `"header"`                  | plaintext [`records::Header`]                    |
//! | `meta`     | `"state"`                   | sealed [`records::State`] (epoch, signer, counts)|
//! | `slots`    | slot name (UTF-8)           | [`records::SlotRecord`] with SHA-256 checksum     |
//! | `signers`  | signer id (u32)             | sealed [`records::SignerRecord`]                 |
//! | `trust`    | trust name (UTF-8)          | sealed [`records::TrustRecord`]                  |
//! | `models`   | BLAKE3-keyed(name) (32 B)   | sealed [`records::ModelRecord`]                  |
//! | `versions` | model key ‖ version BE (40 B)| sealed [`records::VersionRecord`] (signed manifest)|
//! | `chunks`   | chunk id (32 B)             | `0x01` ‖ epoch BE ‖ nonce ‖ ciphertext ‖ tag     |
//! | `chunk_ids`| chunk id (32 B)             | length of the `chunks` value, bytes (u32)         |
//!
//! `chunk_ids` is an index of `chunks`' keys: it answers "is this chunk stored?" from small pages,
//! where a lookup in `chunks` reads the 1 MiB page that holds the value. [`ChunkTables`] is the
//! only writer of either table, so they change together in one transaction; `verify` checks they
//! agree, `gc` rebuilds the index from `chunks`, and [`upgrade_format`] builds it for a vault
//! written before it existed (format version 1).
//!
//! Every sealed value's AAD is `"modelvault/v1/" ‖ table ‖ 0x00 ‖ vault id ‖ epoch BE ‖ key`, so a
//! value moved to another key, table, vault or epoch fails authentication.

pub mod records;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::{Database, DatabaseError, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};

use crate::{Error, Result};

/// Public header and the sealed state.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Key slots by name.
pub const SLOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("slots");
/// Signing keys by id.
pub const SIGNERS: TableDefinition<u32, &[u8]> = TableDefinition::new("signers");
/// Model records by keyed hash of the name.
pub const MODELS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("models");
/// Version records by model key and big-endian version number.
pub const VERSIONS: TableDefinition<&[u8; 40], &[u8]> = TableDefinition::new("versions");
/// Trusted public keys of other vaults, by name.
pub const TRUST: TableDefinition<&str, &[u8]> = TableDefinition::new("trust");
/// Encrypted chunks by chunk id.
pub const CHUNKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("chunks");

/// Index of the chunk table's keys: chunk id → length in bytes of the stored (sealed) value.
pub const CHUNK_IDS: TableDefinition<&[u8; 32], u32> = TableDefinition::new("chunk_ids");

/// The chunk table and its key index, open together in one write transaction. Every insert and
/// removal of a chunk goes through here, so the two tables never disagree after a commit.
pub struct ChunkTables<'t> {
    chunks: redb::Table<'t, &'static [u8; 32], &'static [u8]>,
    ids: redb::Table<'t, &'static [u8; 32], u32>,
}

impl<'t> ChunkTables<'t> {
    /// Opens (creating if needed) both tables in `tx`.
    ///
    /// Errors: [`Error::Storage`].
    pub fn open(tx: &'t redb::WriteTransaction) -> Result<Self> {
        let chunks = tx.open_table(CHUNKS).map_err(|e| Error::storage("opening chunks", e))?;
        let ids = tx.open_table(CHUNK_IDS).map_err(|e| Error::storage("opening the chunk index", e))?;
        Ok(ChunkTables { chunks, ids })
    }

    /// True when the index lists `id` (reads index pages only, never a chunk's value).
    pub fn contains(&self, id: &[u8; 32]) -> Result<bool> {
        Ok(self.ids.get(id).map_err(|e| Error::storage("reading the chunk index", e))?.is_some())
    }

    /// Stores a sealed chunk value under `id` and indexes it.
    ///
    /// Errors: [`Error::Storage`] (a full disk among them).
    pub fn insert(&mut self, id: &[u8; 32], value: &[u8]) -> Result<()> {
        self.chunks.insert(id, value).map_err(|e| Error::storage("writing a chunk", e))?;
        self.ids.insert(id, value.len() as u32).map_err(|e| Error::storage("writing the chunk index", e))?;
        Ok(())
    }

    /// Deletes the chunk `id` and its index entry (either may already be absent).
    pub fn remove(&mut self, id: &[u8; 32]) -> Result<()> {
        self.chunks.remove(id).map_err(|e| Error::storage("deleting a chunk", e))?;
        self.ids.remove(id).map_err(|e| Error::storage("deleting a chunk index entry", e))?;
        Ok(())
    }

    /// Every stored chunk id with its value's length in bytes, read from the chunk table itself
    /// (every value page is read: used by `gc`, which rebuilds the index from it).
    pub fn scan_chunks(&self) -> Result<Vec<([u8; 32], u32)>> {
        let mut out = Vec::new();
        for row in self.chunks.iter().map_err(|e| Error::storage("reading chunks", e))? {
            let (k, v) = row.map_err(|e| Error::storage("reading chunks", e))?;
            out.push((*k.value(), v.value().len() as u32));
        }
        Ok(out)
    }

    /// Makes the index list exactly `present` (ids with value lengths).
    pub fn reindex(&mut self, present: &[([u8; 32], u32)]) -> Result<()> {
        self.ids.retain(|_, _| false).map_err(|e| Error::storage("clearing the chunk index", e))?;
        for (id, len) in present {
            self.ids.insert(id, *len).map_err(|e| Error::storage("writing the chunk index", e))?;
        }
        Ok(())
    }
}

/// The sum of the stored (sealed) chunk value lengths, in bytes, read from the chunk index
/// (small pages only). 0 for a vault without one.
///
/// Errors: [`Error::Storage`].
pub fn stored_chunk_bytes(db: &Database) -> Result<u64> {
    let rx = begin_read(db)?;
    let Ok(ids) = rx.open_table(CHUNK_IDS) else {
        return Ok(0);
    };
    let mut sum = 0u64;
    for row in ids.iter().map_err(|e| Error::storage("reading the chunk index", e))? {
        let (_, len) = row.map_err(|e| Error::storage("reading the chunk index", e))?;
        sum += u64::from(len.value());
    }
    Ok(sum)
}

/// Upgrades the storage of a version 1 or 2 vault to [`records::FORMAT_VERSION`] inside `tx`: for
/// version 1 (no chunk index) builds the index from the chunk table (every value page is read
/// once), and rewrites the header. The sealed records of format 3 need the vault's keys: the
/// caller (`Vault::write`) seals them in the same transaction.
/// Does nothing to a vault already at the current version. Returns true when it upgraded.
///
/// Errors: [`Error::Storage`]; [`Error::Damaged`] for a header that does not decode (opening the
/// vault checked it already).
pub fn upgrade_format(tx: &redb::WriteTransaction) -> Result<bool> {
    let mut meta = tx.open_table(META).map_err(|e| Error::storage("reading the header", e))?;
    let mut header: records::Header = {
        let v = meta.get("header").map_err(|e| Error::storage("reading the header", e))?;
        let Some(v) = v else {
            return Ok(false); // the transaction that creates the vault writes the header
        };
        postcard::from_bytes(v.value()).map_err(|_| Error::Damaged("the vault header does not decode".into()))?
    };
    if header.format_version >= records::FORMAT_VERSION {
        return Ok(false);
    }
    if header.format_version < 2 {
        let mut t = ChunkTables::open(tx)?;
        let present = t.scan_chunks()?;
        t.reindex(&present)?;
    }
    header.format_version = records::FORMAT_VERSION;
    meta.insert("header", records::encode(&header).as_slice()).map_err(|e| Error::storage("writing the header", e))?;
    Ok(true)
}

/// redb page cache, in bytes (64 MiB): keeps a multi-GiB put's RSS flat (see FACTS: the default
/// 1 GiB cache fills with committed pages).
pub const CACHE_BYTES: usize = 64 << 20;

/// Largest vault file whose every page is checked when it is opened (64 MiB: about 50 ms).
pub const INTEGRITY_CHECK_MAX_BYTES: u64 = 64 << 20;

/// The key of a version record: model key followed by the big-endian version.
pub fn version_key(model: &[u8; 32], version: u64) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..32].copy_from_slice(model);
    k[32..].copy_from_slice(&version.to_be_bytes());
    k
}

/// Every version record of the model with key `mk`, in version order.
pub fn version_range<'t, T>(t: &'t T, mk: &[u8; 32]) -> Result<redb::Range<'t, &'static [u8; 40], &'static [u8]>>
where
    T: ReadableTable<&'static [u8; 40], &'static [u8]>,
{
    let lo = version_key(mk, 0);
    let hi = version_key(mk, u64::MAX);
    t.range::<&[u8; 40]>(&lo..=&hi).map_err(|e| Error::storage("reading versions", e))
}

/// The AAD of a sealed record (see module docs).
pub fn aad(table: &str, vault_id: &[u8; 16], epoch: u32, key: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(32 + table.len() + key.len());
    a.extend_from_slice(b"modelvault/v1/");
    a.extend_from_slice(table.as_bytes());
    a.push(0);
    a.extend_from_slice(vault_id);
    a.extend_from_slice(&epoch.to_be_bytes());
    a.extend_from_slice(key);
    a
}

fn builder() -> redb::Builder {
    let mut b = redb::Builder::new();
    b.set_cache_size(CACHE_BYTES);
    b
}

/// Creates a new, empty redb file at `path`, failing if anything exists there. The file is
/// created with mode 0600 on Unix.
pub fn create_db(path: &Path) -> Result<Database> {
    let mut oo = std::fs::OpenOptions::new();
    oo.read(true).write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        oo.mode(0o600);
    }
    oo.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::VaultExists(path.to_path_buf())
        } else {
            Error::io(format!("creating vault file {}", path.display()), e)
        }
    })?;
    // The empty file now exists with the right mode; redb initialises it in place.
    builder().create(path).map_err(|e| map_open_error(path, e))
}

/// Opens an existing vault file. If another process holds it, retries every 100 ms until `wait`
/// has passed (no wait: fail at once with [`Error::VaultInUse`]).
pub fn open_db(path: &Path, wait: Option<Duration>) -> Result<Database> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::VaultNotFound(path.to_path_buf()));
        }
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        Ok(m) if !m.is_file() => {
            return Err(Error::NotAVault { path: path.to_path_buf(), reason: "it is not a regular file".into() });
        }
        Ok(_) => {}
    }
    let deadline = wait.map(|w| Instant::now() + w);
    // A plain redb open trusts the file and may panic on a corrupt page later (redb's docs; the
    // torture suite found panics in btree.rs and btree_cursor.rs after one zeroed 4 KiB page).
    // With the check on open, every page of the committed trees is verified first and damage is
    // a `Corrupted` error. With two-phase commit (every vault write uses it) redb never falls back
    // to an older commit here: a corrupt primary is an error, not a silent rollback. The check
    // reads the whole file, so it runs only for files up to INTEGRITY_CHECK_MAX_BYTES; above
    // that, a corrupt page can still make redb panic, which the CLI reports as damage (exit 6)
    // and library callers can catch (SECURITY.md, "Storage and atomicity").
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut b = builder();
    b.set_check_integrity_on_open(len <= INTEGRITY_CHECK_MAX_BYTES);
    loop {
        match b.open(path) {
            Ok(db) => return Ok(db),
            Err(DatabaseError::DatabaseAlreadyOpen) => match deadline {
                Some(d) if Instant::now() < d => std::thread::sleep(Duration::from_millis(100)),
                _ => return Err(Error::VaultInUse(path.to_path_buf())),
            },
            Err(e) => return Err(map_open_error(path, e)),
        }
    }
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

/// Starts a write transaction with two-phase commit and quick repair on, as redb's design notes
/// recommend where the file may be hostile.
pub fn begin_write(db: &Database) -> Result<redb::WriteTransaction> {
    let mut tx = db.begin_write().map_err(|e| Error::storage("starting a write transaction", e))?;
    tx.set_two_phase_commit(true);
    tx.set_quick_repair(true);
    Ok(tx)
}

/// Starts a read transaction.
pub fn begin_read(db: &Database) -> Result<redb::ReadTransaction> {
    db.begin_read().map_err(|e| Error::storage("starting a read transaction", e))
}

/// Commits, mapping redb's error.
pub fn commit(tx: redb::WriteTransaction) -> Result<()> {
    tx.commit().map_err(|e| Error::storage("committing", e))
}

/// The file's path, for messages.
pub fn display(path: &Path) -> PathBuf {
    path.to_path_buf()
}

fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    rx: &redb::ReadTransaction,
    tx: &redb::WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<u64> {
    let ctx = |e: &dyn std::fmt::Display| Error::storage(format!("copying table {}", def.name()), e);
    let src = match rx.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(ctx(&e)),
    };
    let mut dst = tx.open_table(def).map_err(|e| ctx(&e))?;
    let mut n = 0;
    for row in src.iter().map_err(|e| ctx(&e))? {
        let (k, v) = row.map_err(|e| ctx(&e))?;
        dst.insert(k.value(), v.value()).map_err(|e| ctx(&e))?;
        n += 1;
    }
    Ok(n)
}

/// An empty in-memory database, to stand in for a vault's handle while [`rewrite`] owns it.
pub fn create_placeholder() -> Result<Database> {
    redb::Builder::new()
        .create_with_backend(redb::backends::InMemoryBackend::new())
        .map_err(|e| Error::storage("creating an in-memory placeholder", e))
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
pub fn rewrite(db: &mut Database, path: &Path) -> Result<()> {
    rewrite_with(db, path, |old, fresh| {
        let rx = begin_read(old)?;
        let tx = begin_write(fresh)?;
        copy_table(&rx, &tx, META)?;
        copy_table(&rx, &tx, SLOTS)?;
        copy_table(&rx, &tx, SIGNERS)?;
        copy_table(&rx, &tx, TRUST)?;
        copy_table(&rx, &tx, MODELS)?;
        copy_table(&rx, &tx, VERSIONS)?;
        copy_table(&rx, &tx, CHUNKS)?;
        copy_table(&rx, &tx, CHUNK_IDS)?;
        commit(tx)
    })
}

/// Builds a fresh vault file with `fill(old, fresh)` (which writes every record the new file must
/// hold), then renames it over `path` and reopens it into `db`.
///
/// Crash safety: until the rename the old file is untouched and complete; the rename is atomic.
/// A left-over temporary file from a crash is removed by the next rewrite. If `fill` fails, the
/// temporary file is removed and `db` is left as it was.
///
/// Errors: [`Error::Storage`], [`Error::Io`]; [`Error::VaultInUse`] if another process takes the
/// vault in the instant between closing the old file and opening the new one (the rewrite itself
/// is then complete).
pub fn rewrite_with(
    db: &mut Database,
    path: &Path,
    fill: impl FnOnce(&Database, &Database) -> Result<()>,
) -> Result<()> {
    let tmp = rewrite_path(path);
    let _ = std::fs::remove_file(&tmp);
    let mut fresh = create_db(&tmp)?;
    let filled = fill(db, &fresh).and_then(|()| {
        while fresh.compact().map_err(|e| Error::storage("compacting the rewritten vault", e))? {}
        Ok(())
    });
    drop(fresh);
    if let Err(e) = filled {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let sync = |p: &Path| std::fs::File::open(p).and_then(|f| f.sync_all());
    sync(&tmp).map_err(|e| Error::io(format!("syncing {}", tmp.display()), e))?;
    drop(std::mem::replace(db, create_placeholder()?));
    std::fs::rename(&tmp, path)
        .map_err(|e| Error::io(format!("renaming {} over {}", tmp.display(), path.display()), e))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = sync(dir);
    }
    *db = open_db(path, Some(Duration::from_secs(5)))?;
    Ok(())
}
