//! Typed transactions over the vault file: [`ReadTxn`] (a redb read transaction, one consistent
//! snapshot) and [`WriteTxn`] (a redb write transaction), both implementing [`RecordRead`], so
//! that an operation reads the same way inside a write as in a snapshot. Values are the stored
//! bytes as given (sealed records; the header and key slots in plaintext, which carry no
//! secret): the store never holds a key, never opens a sealed value and never sees plaintext.
//!
//! What the redb file guarantees, which a second implementation must state against:
//! - every write of a [`WriteTxn`] commits together or not at all ([`WriteTxn::commit`] waits
//!   for the disk, one fsync; so does [`WriteTxn::commit_checkpoint`], since read-only processes
//!   share the file with the writer and redb refuses non-durable commits there);
//! - a [`ReadTxn`] sees one committed state for as long as it lives, whatever commits meanwhile;
//! - a missing table (a fresh or damaged file) reads as empty: `None` from a lookup, nothing
//!   from a listing, `false` from [`RecordRead::has_table`]; a [`WriteTxn`] creates a table on
//!   its first write;
//! - a rewrite ([`super::rewrite_with`]) copies every table into a fresh file, empty ones too.
//!
//! Just over 500 lines because it is one interface: the read trait, its one implementation for
//! both transaction types, and the write methods, table by table; split, each half would
//! repeat the table list.
//!
//! This module must never interpret a value (beyond the plaintext header's key name), hold key
//! material or decide what a record means.

use redb::{ReadableTable, TableDefinition, TableError};

use super::chunks::{ChunkId, ChunkTables};
use super::tables::{
    CHUNK_IDS, CHUNKS, LOG, LOG_HASHES, META, MODELS, REMOTES, SIGNERS, SLOTS, TRUST, Table, VERSIONS,
};
use crate::{Error, Result};

/// The key of a version record: model key followed by the big-endian version.
pub fn version_key(model: &[u8; 32], version: u64) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..32].copy_from_slice(model);
    k[32..].copy_from_slice(&version.to_be_bytes());
    k
}

/// A version record with its key: (model key, version number, sealed value).
pub type VersionRow = ([u8; 32], u64, Vec<u8>);

/// A stored value borrowed from its page (no copy of a 1 MiB chunk).
pub struct StoredValue<'a>(pub(in crate::store) redb::AccessGuard<'a, &'static [u8]>);

impl AsRef<[u8]> for StoredValue<'_> {
    fn as_ref(&self) -> &[u8] {
        self.0.value()
    }
}

/// Reading the vault's records: implemented by [`ReadTxn`] and [`WriteTxn`]. Every method is in
/// the terms of the vault; every value is the stored (sealed) bytes.
///
/// Errors: every method returns [`Error::Storage`] when the store cannot be read.
pub trait RecordRead {
    /// True when the table exists in the file (a fresh or damaged file may lack one).
    fn has_table(&self, table: Table) -> Result<bool>;
    /// Fails with the storage error of a missing table (as reading it would) when `table` does
    /// not exist: for the reads that treat a missing table as damage, not as empty.
    ///
    /// Errors: [`Error::Storage`] naming `context`.
    fn require(&self, table: Table, context: &str) -> Result<()> {
        if self.has_table(table)? {
            return Ok(());
        }
        Err(Error::storage(context, TableError::TableDoesNotExist(table.name().to_string())))
    }
    /// A value of the `meta` table (`"header"`, `"state"`, `"index"`).
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// The plaintext header record.
    fn header(&self) -> Result<Option<Vec<u8>>> {
        self.meta("header")
    }
    /// The sealed state record.
    fn state(&self) -> Result<Option<Vec<u8>>> {
        self.meta("state")
    }
    /// The sealed model record under `key` (keyed hash of the name).
    fn model(&self, key: &[u8; 32]) -> Result<Option<Vec<u8>>>;
    /// Every model record, in key order.
    fn models(&self) -> Result<Vec<([u8; 32], Vec<u8>)>>;
    /// Every model record key, in key order (reads no value).
    fn model_keys(&self) -> Result<Vec<[u8; 32]>>;
    /// The version records of the model `model_key`, in version order.
    fn versions(&self, model_key: &[u8; 32]) -> Result<Vec<(u64, Vec<u8>)>>;
    /// The version numbers stored for the model `model_key`, in order (reads no value).
    fn version_numbers(&self, model_key: &[u8; 32]) -> Result<Vec<u64>>;
    /// The version record `n` of the model `model_key`.
    fn version(&self, model_key: &[u8; 32], n: u64) -> Result<Option<Vec<u8>>>;
    /// Every version record of every model: (model key, version, value), in key order.
    fn all_versions(&self) -> Result<Vec<VersionRow>>;
    /// The key slot `name`.
    fn slot(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// Every key slot, in name order.
    fn slots(&self) -> Result<Vec<(String, Vec<u8>)>>;
    /// The signing key record `id`.
    fn signer(&self, id: u32) -> Result<Option<Vec<u8>>>;
    /// Every signing key record, in id order.
    fn signers(&self) -> Result<Vec<(u32, Vec<u8>)>>;
    /// The trust record `name`.
    fn trust(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// Every trust record, in name order.
    fn trusts(&self) -> Result<Vec<(String, Vec<u8>)>>;
    /// The remote record `name`.
    fn remote(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// Every remote record, in name order.
    fn remotes(&self) -> Result<Vec<(String, Vec<u8>)>>;
    /// How many chunks the chunk table holds (counted from the table itself; 0 without one).
    fn chunk_count(&self) -> Result<u64>;
    /// The sum of the stored chunk value lengths, in bytes, read from the chunk index (small
    /// pages only); 0 without one.
    fn stored_chunk_bytes(&self) -> Result<u64>;
}

fn read_err(table: Table) -> impl Fn(redb::StorageError) -> Error {
    move |e| Error::storage(format!("reading {}", table.name()), e)
}

fn get_bytes<'k, K: redb::Key + 'static>(
    t: &impl ReadableTable<K, &'static [u8]>,
    key: impl std::borrow::Borrow<K::SelfType<'k>>,
    table: Table,
) -> Result<Option<Vec<u8>>> {
    Ok(t.get(key).map_err(read_err(table))?.map(|v| v.value().to_vec()))
}

pub(in crate::store) fn rows<K: redb::Key + 'static, V: redb::Value + 'static, R>(
    t: &impl ReadableTable<K, V>,
    table: Table,
    mut f: impl FnMut(K::SelfType<'_>, V::SelfType<'_>) -> R,
) -> Result<Vec<R>> {
    let mut out = Vec::new();
    for row in t.iter().map_err(read_err(table))? {
        let (k, v) = row.map_err(read_err(table))?;
        out.push(f(k.value(), v.value()));
    }
    Ok(out)
}

fn version_rows<R>(
    t: &impl ReadableTable<&'static [u8; 40], &'static [u8]>,
    model_key: &[u8; 32],
    mut f: impl FnMut(u64, &[u8]) -> R,
) -> Result<Vec<R>> {
    let (lo, hi) = (version_key(model_key, 0), version_key(model_key, u64::MAX));
    let mut out = Vec::new();
    for row in t.range::<&[u8; 40]>(&lo..=&hi).map_err(read_err(Table::Versions))? {
        let (k, v) = row.map_err(read_err(Table::Versions))?;
        out.push(f(u64::from_be_bytes(k.value()[32..].try_into().expect("40-byte key")), v.value()));
    }
    Ok(out)
}

/// Implements [`RecordRead`] for a type with an inherent
/// `fn table(&self, def) -> Result<Option<impl ReadableTable>>`.
macro_rules! record_read {
    ($ty:ty) => {
        impl RecordRead for $ty {
            fn has_table(&self, table: Table) -> Result<bool> {
                self.exists(table)
            }
            fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
                let Some(t) = self.table(META, Table::Meta)? else { return Ok(None) };
                get_bytes(&t, key, Table::Meta)
            }
            fn model(&self, key: &[u8; 32]) -> Result<Option<Vec<u8>>> {
                let Some(t) = self.table(MODELS, Table::Models)? else { return Ok(None) };
                get_bytes(&t, key, Table::Models)
            }
            fn models(&self) -> Result<Vec<([u8; 32], Vec<u8>)>> {
                let Some(t) = self.table(MODELS, Table::Models)? else { return Ok(Vec::new()) };
                rows(&t, Table::Models, |k, v| (*k, v.to_vec()))
            }
            fn model_keys(&self) -> Result<Vec<[u8; 32]>> {
                let Some(t) = self.table(MODELS, Table::Models)? else { return Ok(Vec::new()) };
                rows(&t, Table::Models, |k, _| *k)
            }
            fn versions(&self, model_key: &[u8; 32]) -> Result<Vec<(u64, Vec<u8>)>> {
                let Some(t) = self.table(VERSIONS, Table::Versions)? else { return Ok(Vec::new()) };
                version_rows(&t, model_key, |n, v| (n, v.to_vec()))
            }
            fn version_numbers(&self, model_key: &[u8; 32]) -> Result<Vec<u64>> {
                let Some(t) = self.table(VERSIONS, Table::Versions)? else { return Ok(Vec::new()) };
                version_rows(&t, model_key, |n, _| n)
            }
            fn version(&self, model_key: &[u8; 32], n: u64) -> Result<Option<Vec<u8>>> {
                let Some(t) = self.table(VERSIONS, Table::Versions)? else { return Ok(None) };
                get_bytes(&t, &version_key(model_key, n), Table::Versions)
            }
            fn all_versions(&self) -> Result<Vec<VersionRow>> {
                let Some(t) = self.table(VERSIONS, Table::Versions)? else { return Ok(Vec::new()) };
                rows(&t, Table::Versions, |k, v| {
                    let mk: [u8; 32] = k[..32].try_into().expect("40-byte key");
                    (mk, u64::from_be_bytes(k[32..].try_into().expect("40-byte key")), v.to_vec())
                })
            }
            fn slot(&self, name: &str) -> Result<Option<Vec<u8>>> {
                let Some(t) = self.table(SLOTS, Table::Slots)? else { return Ok(None) };
                get_bytes(&t, name, Table::Slots)
            }
            fn slots(&self) -> Result<Vec<(String, Vec<u8>)>> {
                let Some(t) = self.table(SLOTS, Table::Slots)? else { return Ok(Vec::new()) };
                rows(&t, Table::Slots, |k, v| (k.to_string(), v.to_vec()))
            }
            fn signer(&self, id: u32) -> Result<Option<Vec<u8>>> {
                let Some(t) = self.table(SIGNERS, Table::Signers)? else { return Ok(None) };
                get_bytes(&t, id, Table::Signers)
            }
            fn signers(&self) -> Result<Vec<(u32, Vec<u8>)>> {
                let Some(t) = self.table(SIGNERS, Table::Signers)? else { return Ok(Vec::new()) };
                rows(&t, Table::Signers, |k, v| (k, v.to_vec()))
            }
            fn trust(&self, name: &str) -> Result<Option<Vec<u8>>> {
                let Some(t) = self.table(TRUST, Table::Trust)? else { return Ok(None) };
                get_bytes(&t, name, Table::Trust)
            }
            fn trusts(&self) -> Result<Vec<(String, Vec<u8>)>> {
                let Some(t) = self.table(TRUST, Table::Trust)? else { return Ok(Vec::new()) };
                rows(&t, Table::Trust, |k, v| (k.to_string(), v.to_vec()))
            }
            fn remote(&self, name: &str) -> Result<Option<Vec<u8>>> {
                let Some(t) = self.table(REMOTES, Table::Remotes)? else { return Ok(None) };
                get_bytes(&t, name, Table::Remotes)
            }
            fn remotes(&self) -> Result<Vec<(String, Vec<u8>)>> {
                let Some(t) = self.table(REMOTES, Table::Remotes)? else { return Ok(Vec::new()) };
                rows(&t, Table::Remotes, |k, v| (k.to_string(), v.to_vec()))
            }
            fn chunk_count(&self) -> Result<u64> {
                use redb::ReadableTableMetadata;
                let Some(t) = self.table(CHUNKS, Table::Chunks)? else { return Ok(0) };
                t.len().map_err(|e| Error::storage("counting chunks", e))
            }
            fn stored_chunk_bytes(&self) -> Result<u64> {
                let Some(t) = self.table(CHUNK_IDS, Table::ChunkIds)? else { return Ok(0) };
                Ok(rows(&t, Table::ChunkIds, |_, len| u64::from(len))?.into_iter().sum())
            }
        }
    };
}

/// A read transaction: one consistent snapshot of the vault file.
pub struct ReadTxn {
    tx: redb::ReadTransaction,
}

impl ReadTxn {
    pub(in crate::store) fn new(tx: redb::ReadTransaction) -> Self {
        ReadTxn { tx }
    }

    pub(in crate::store) fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
        table: Table,
    ) -> Result<Option<redb::ReadOnlyTable<K, V>>> {
        match self.tx.open_table(def) {
            Ok(t) => Ok(Some(t)),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(Error::storage(format!("reading {}", table.name()), e)),
        }
    }

    fn exists(&self, table: Table) -> Result<bool> {
        use redb::TableHandle;
        let names = self.tx.list_tables().map_err(|e| Error::storage("listing tables", e))?;
        Ok(names.into_iter().any(|h| h.name() == table.name()))
    }
}

record_read!(ReadTxn);

/// The key of a row as bytes, as the AAD names it: a name's UTF-8, an id big-endian, a record
/// key or chunk id as it is.
fn key_error(table: Table) -> Error {
    Error::InvalidInput(format!("a row key of the wrong form for table {}", table.name()))
}

fn str_key(table: Table, key: &[u8]) -> Result<&str> {
    std::str::from_utf8(key).map_err(|_| key_error(table))
}

fn id_key(table: Table, key: &[u8]) -> Result<u32> {
    key.try_into().map(u32::from_be_bytes).map_err(|_| key_error(table))
}

fn seq_key(table: Table, key: &[u8]) -> Result<u64> {
    key.try_into().map(u64::from_be_bytes).map_err(|_| key_error(table))
}

fn array_key<const N: usize>(table: Table, key: &[u8]) -> Result<&[u8; N]> {
    key.try_into().map_err(|_| key_error(table))
}

impl ReadTxn {
    /// Calls `f(key, value)` for every row of `table` in key order, starting after the row whose
    /// key is `after` (all rows for `None`), until `f` returns false. Keys are bytes as the AAD
    /// names them (a name's UTF-8, a signer id big-endian, a record key or chunk id as it is);
    /// values are the stored bytes (for the chunk index, the length big-endian). With
    /// [`WriteTxn::put_row`] this copies any table, which is how a rewrite copies every table.
    /// A missing table has no rows.
    ///
    /// Errors: [`Error::Storage`]; [`Error::InvalidInput`] for an `after` of the wrong form.
    pub fn scan(
        &self,
        table: Table,
        after: Option<&[u8]>,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        use std::ops::Bound::{Excluded, Unbounded};
        macro_rules! go {
            ($def:expr, $kt:ty, |$a:ident| $start:expr, |$k:ident, $v:ident| $row:expr) => {{
                let Some(t) = self.table($def, table)? else { return Ok(()) };
                let start: std::ops::Bound<$kt> = match after {
                    Some($a) => Excluded($start),
                    None => Unbounded,
                };
                for row in t.range::<$kt>((start, Unbounded)).map_err(read_err(table))? {
                    let (k, v) = row.map_err(read_err(table))?;
                    let ($k, $v) = (k.value(), v.value());
                    let (kb, vb) = $row;
                    if !f(kb.as_ref(), vb.as_ref())? {
                        break;
                    }
                }
                Ok(())
            }};
        }
        match table {
            Table::Meta => go!(META, &str, |a| str_key(table, a)?, |k, v| (k.as_bytes(), v)),
            Table::Slots => go!(SLOTS, &str, |a| str_key(table, a)?, |k, v| (k.as_bytes(), v)),
            Table::Trust => go!(TRUST, &str, |a| str_key(table, a)?, |k, v| (k.as_bytes(), v)),
            Table::Remotes => go!(REMOTES, &str, |a| str_key(table, a)?, |k, v| (k.as_bytes(), v)),
            Table::Signers => go!(SIGNERS, u32, |a| id_key(table, a)?, |k, v| (k.to_be_bytes(), v)),
            Table::Models => go!(MODELS, &[u8; 32], |a| array_key::<32>(table, a)?, |k, v| (k, v)),
            Table::Versions => go!(VERSIONS, &[u8; 40], |a| array_key::<40>(table, a)?, |k, v| (k, v)),
            Table::Log => go!(LOG, u64, |a| seq_key(table, a)?, |k, v| (k.to_be_bytes(), v)),
            Table::LogHashes => go!(LOG_HASHES, u64, |a| seq_key(table, a)?, |k, v| (k.to_be_bytes(), v)),
            Table::Chunks => go!(CHUNKS, &[u8; 32], |a| array_key::<32>(table, a)?, |k, v| (k, v)),
            Table::ChunkIds => go!(CHUNK_IDS, &[u8; 32], |a| array_key::<32>(table, a)?, |k, v| (k, v.to_be_bytes())),
        }
    }

    /// Every stored chunk id with its value's length in bytes, read from the chunk table itself
    /// (every value page is read: `verify` and `gc` compare it with the index).
    ///
    /// Errors: [`Error::Storage`].
    pub fn scan_chunks(&self) -> Result<Vec<(ChunkId, u32)>> {
        let Some(t) = self.table(CHUNKS, Table::Chunks)? else { return Ok(Vec::new()) };
        rows(&t, Table::Chunks, |k, v| (*k, v.len() as u32))
    }
}

/// A write transaction on the vault file. Dropped without [`WriteTxn::commit`], nothing it wrote
/// is kept (since its start or its last checkpoint).
pub struct WriteTxn {
    tx: redb::WriteTransaction,
    /// Every record row written or deleted, as the log binds them ([`WriteTxn::take_written`]).
    written: Vec<RecordWrite>,
}

/// One record row a transaction wrote or deleted: the table, the row key as bytes (as the AAD
/// names it) and SHA-256 of the stored value (`None`: deleted). Chunks, the chunk index, the
/// log's own tables and the `meta` rows `"state"` and `"erase"` are not recorded (the chunks are
/// bound by manifests, the log by its tree, the state names the log, and the erasure record
/// never outlives the erasure's rewrite).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordWrite {
    /// The table's name.
    pub table: String,
    /// The row key.
    pub key: Vec<u8>,
    /// SHA-256 of the value written, `None` for a deletion.
    pub value: Option<[u8; 32]>,
}

/// True when the log binds rows of `table` under `key` (see [`RecordWrite`]).
pub fn logged_row(table: Table, key: &[u8]) -> bool {
    match table {
        Table::Chunks | Table::ChunkIds | Table::Log | Table::LogHashes => false,
        Table::Meta => key != b"state" && key != b"erase",
        _ => true,
    }
}

impl WriteTxn {
    pub(in crate::store) fn new(tx: redb::WriteTransaction) -> Self {
        WriteTxn { tx, written: Vec::new() }
    }

    /// The record rows written or deleted since the last call (or the start), in order; the
    /// log entry of the commit binds them.
    pub fn take_written(&mut self) -> Vec<RecordWrite> {
        std::mem::take(&mut self.written)
    }

    fn note(&mut self, table: Table, key: &[u8], value: Option<&[u8]>) {
        use sha2::Digest;
        if logged_row(table, key) {
            let value = value.map(|v| sha2::Sha256::digest(v).into());
            self.written.push(RecordWrite { table: table.name().to_string(), key: key.to_vec(), value });
        }
    }

    pub(in crate::store) fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
        table: Table,
    ) -> Result<Option<redb::Table<'_, K, V>>> {
        self.open(def, table).map(Some)
    }

    pub(in crate::store) fn open<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
        table: Table,
    ) -> Result<redb::Table<'_, K, V>> {
        self.tx.open_table(def).map_err(|e| Error::storage(format!("opening {}", table.name()), e))
    }

    fn exists(&self, table: Table) -> Result<bool> {
        use redb::TableHandle;
        let names = self.tx.list_tables().map_err(|e| Error::storage("listing tables", e))?;
        Ok(names.into_iter().any(|h| h.name() == table.name()))
    }

    /// Commits durably (one fsync): every write of this transaction is kept, or none.
    ///
    /// Errors: [`Error::Storage`].
    pub fn commit(self) -> Result<()> {
        self.tx.commit().map_err(|e| Error::storage("committing", e))
    }

    /// Commits a checkpoint: the part written so far, kept whole or not at all. The file is
    /// shared with read-only processes (see `file::builder`), which redb allows only with
    /// durable commits, so this is a durable commit (one fsync) like [`WriteTxn::commit`]; it is
    /// kept apart to name what it is for.
    ///
    /// Errors: [`Error::Storage`].
    pub fn commit_checkpoint(self) -> Result<()> {
        self.commit()
    }

    /// Writes a value of the `meta` table (the plaintext header, or a sealed record).
    pub fn put_meta(&mut self, key: &str, value: &[u8]) -> Result<()> {
        let what = if key == "state" { "writing vault state" } else { "writing the header" };
        let mut t = self.tx.open_table(META).map_err(|e| Error::storage(what, e))?;
        t.insert(key, value).map_err(|e| Error::storage(what, e))?;
        drop(t);
        self.note(Table::Meta, key.as_bytes(), Some(value));
        Ok(())
    }

    /// Writes the sealed model record under `key`.
    pub fn put_model(&mut self, key: &[u8; 32], value: &[u8]) -> Result<()> {
        let mut t = self.tx.open_table(MODELS).map_err(|e| Error::storage("writing a model", e))?;
        t.insert(key, value).map_err(|e| Error::storage("writing a model", e))?;
        drop(t);
        self.note(Table::Models, key, Some(value));
        Ok(())
    }

    /// Deletes the model record under `key` (a no-op when absent).
    pub fn remove_model(&mut self, key: &[u8; 32]) -> Result<()> {
        let mut t = self.tx.open_table(MODELS).map_err(|e| Error::storage("removing a model", e))?;
        t.remove(key).map_err(|e| Error::storage("removing a model", e))?;
        drop(t);
        self.note(Table::Models, key, None);
        Ok(())
    }

    /// Writes the sealed version record `n` of the model `model_key`.
    pub fn put_version(&mut self, model_key: &[u8; 32], n: u64, value: &[u8]) -> Result<()> {
        let mut t = self.tx.open_table(VERSIONS).map_err(|e| Error::storage("writing a version", e))?;
        t.insert(&version_key(model_key, n), value).map_err(|e| Error::storage("writing a version", e))?;
        drop(t);
        self.note(Table::Versions, &version_key(model_key, n), Some(value));
        Ok(())
    }

    /// Deletes the version record `n` of the model `model_key` (a no-op when absent).
    pub fn remove_version(&mut self, model_key: &[u8; 32], n: u64) -> Result<()> {
        let mut t = self.tx.open_table(VERSIONS).map_err(|e| Error::storage("removing a version", e))?;
        t.remove(&version_key(model_key, n)).map_err(|e| Error::storage("removing a version", e))?;
        drop(t);
        self.note(Table::Versions, &version_key(model_key, n), None);
        Ok(())
    }

    /// Writes the key slot `name`.
    pub fn put_slot(&mut self, name: &str, value: &[u8]) -> Result<()> {
        let mut t = self.tx.open_table(SLOTS).map_err(|e| Error::storage("writing a key slot", e))?;
        t.insert(name, value).map_err(|e| Error::storage("writing a key slot", e))?;
        drop(t);
        self.note(Table::Slots, name.as_bytes(), Some(value));
        Ok(())
    }

    /// Deletes the key slot `name` (a no-op when absent).
    pub fn remove_slot(&mut self, name: &str) -> Result<()> {
        let mut t = self.tx.open_table(SLOTS).map_err(|e| Error::storage("removing a key slot", e))?;
        t.remove(name).map_err(|e| Error::storage("removing a key slot", e))?;
        drop(t);
        self.note(Table::Slots, name.as_bytes(), None);
        Ok(())
    }

    /// Writes the sealed signing key record `id`.
    pub fn put_signer(&mut self, id: u32, value: &[u8]) -> Result<()> {
        let mut t = self.tx.open_table(SIGNERS).map_err(|e| Error::storage("writing a signing key", e))?;
        t.insert(id, value).map_err(|e| Error::storage("writing a signing key", e))?;
        drop(t);
        self.note(Table::Signers, &id.to_be_bytes(), Some(value));
        Ok(())
    }

    /// Writes the sealed trust record `name`.
    pub fn put_trust(&mut self, name: &str, value: &[u8]) -> Result<()> {
        let mut t = self.tx.open_table(TRUST).map_err(|e| Error::storage("writing a trusted key", e))?;
        t.insert(name, value).map_err(|e| Error::storage("writing a trusted key", e))?;
        drop(t);
        self.note(Table::Trust, name.as_bytes(), Some(value));
        Ok(())
    }

    /// Deletes the trust record `name` (a no-op when absent).
    pub fn remove_trust(&mut self, name: &str) -> Result<()> {
        let mut t = self.tx.open_table(TRUST).map_err(|e| Error::storage("removing a trusted key", e))?;
        t.remove(name).map_err(|e| Error::storage("removing a trusted key", e))?;
        drop(t);
        self.note(Table::Trust, name.as_bytes(), None);
        Ok(())
    }

    /// Writes the sealed remote record `name`.
    pub fn put_remote(&mut self, name: &str, value: &[u8]) -> Result<()> {
        let mut t = self.tx.open_table(REMOTES).map_err(|e| Error::storage("writing a remote", e))?;
        t.insert(name, value).map_err(|e| Error::storage("writing a remote", e))?;
        drop(t);
        self.note(Table::Remotes, name.as_bytes(), Some(value));
        Ok(())
    }

    /// Deletes the remote record `name` (a no-op when absent).
    pub fn remove_remote(&mut self, name: &str) -> Result<()> {
        let mut t = self.tx.open_table(REMOTES).map_err(|e| Error::storage("removing a remote", e))?;
        t.remove(name).map_err(|e| Error::storage("removing a remote", e))?;
        drop(t);
        self.note(Table::Remotes, name.as_bytes(), None);
        Ok(())
    }

    /// Creates `table` if it does not exist yet (empty), as opening it for writing does: a copy
    /// of a file keeps the empty tables the original has.
    ///
    /// Errors: [`Error::Storage`].
    pub fn create_table(&mut self, table: Table) -> Result<()> {
        match table {
            Table::Meta => drop(self.open(META, table)?),
            Table::Slots => drop(self.open(SLOTS, table)?),
            Table::Trust => drop(self.open(TRUST, table)?),
            Table::Remotes => drop(self.open(REMOTES, table)?),
            Table::Signers => drop(self.open(SIGNERS, table)?),
            Table::Models => drop(self.open(MODELS, table)?),
            Table::Versions => drop(self.open(VERSIONS, table)?),
            Table::Log => drop(self.open(LOG, table)?),
            Table::LogHashes => drop(self.open(LOG_HASHES, table)?),
            Table::Chunks => drop(self.open(CHUNKS, table)?),
            Table::ChunkIds => drop(self.open(CHUNK_IDS, table)?),
        }
        Ok(())
    }

    /// Writes one row of `table` from its bytes, as [`ReadTxn::scan`] gives them (a chunk goes
    /// into the chunk table only: copy the index with its own rows, or insert through
    /// [`WriteTxn::chunks`], which writes both).
    ///
    /// Errors: [`Error::Storage`]; [`Error::InvalidInput`] for a key or value of the wrong form.
    pub fn put_row(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<()> {
        self.note(table, key, Some(value));
        let ctx = format!("copying table {}", table.name());
        let err = |e: redb::StorageError| Error::storage(ctx.as_str(), e);
        match table {
            Table::Meta => {
                self.open(META, table)?.insert(str_key(table, key)?, value).map_err(err)?;
            }
            Table::Slots => {
                self.open(SLOTS, table)?.insert(str_key(table, key)?, value).map_err(err)?;
            }
            Table::Trust => {
                self.open(TRUST, table)?.insert(str_key(table, key)?, value).map_err(err)?;
            }
            Table::Remotes => {
                self.open(REMOTES, table)?.insert(str_key(table, key)?, value).map_err(err)?;
            }
            Table::Signers => {
                self.open(SIGNERS, table)?.insert(id_key(table, key)?, value).map_err(err)?;
            }
            Table::Models => {
                self.open(MODELS, table)?.insert(array_key::<32>(table, key)?, value).map_err(err)?;
            }
            Table::Versions => {
                self.open(VERSIONS, table)?.insert(array_key::<40>(table, key)?, value).map_err(err)?;
            }
            Table::Log => {
                self.open(LOG, table)?.insert(seq_key(table, key)?, value).map_err(err)?;
            }
            Table::LogHashes => {
                let hash = array_key::<32>(table, value)?;
                self.open(LOG_HASHES, table)?.insert(seq_key(table, key)?, hash).map_err(err)?;
            }
            Table::Chunks => {
                self.open(CHUNKS, table)?.insert(array_key::<32>(table, key)?, value).map_err(err)?;
            }
            Table::ChunkIds => {
                let len = id_key(table, value)?;
                self.open(CHUNK_IDS, table)?.insert(array_key::<32>(table, key)?, len).map_err(err)?;
            }
        }
        Ok(())
    }

    /// The chunk table and its index, open together for reading and writing chunks.
    ///
    /// Errors: [`Error::Storage`].
    pub fn chunks(&self) -> Result<ChunkTables<'_>> {
        ChunkTables::open(&self.tx)
    }
}

record_read!(WriteTxn);
