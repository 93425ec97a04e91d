//! The log tables of the vault file: sealed log entries by sequence number (`log`) and the
//! Merkle tree's stored hashes by stored hash index (`log_hashes`, the numbering of C2SP
//! tlog-tiles: every hash of a complete subtree, in the order the leaves were added).
//! [`LogRead`] reads both from a snapshot or from inside a write; [`WriteTxn::put_log`] appends.
//!
//! This module must never open an entry, compute a hash or decide what the log means: that is
//! `crate::log`, which builds the tree with the `tlog_tiles` crate.

use super::tables::{LOG, LOG_HASHES, Table};
use super::txn::{ReadTxn, WriteTxn, rows};
use crate::{Error, Result};
use redb::{ReadableTable, ReadableTableMetadata};

/// Reading the log tables. Implemented by [`ReadTxn`] and [`WriteTxn`].
///
/// Errors: every method returns [`Error::Storage`] when the store cannot be read.
pub trait LogRead {
    /// The sealed entry with sequence number `seq`.
    fn log_entry(&self, seq: u64) -> Result<Option<Vec<u8>>>;
    /// Every sealed entry as (sequence number, value), in order.
    fn log_entries(&self) -> Result<Vec<(u64, Vec<u8>)>>;
    /// The stored hashes at `indexes`, each `None` where absent.
    fn log_hashes(&self, indexes: &[u64]) -> Result<Vec<Option<[u8; 32]>>>;
    /// How many stored hashes the tree table holds.
    fn log_hash_count(&self) -> Result<u64>;
}

macro_rules! log_read {
    ($ty:ty) => {
        impl LogRead for $ty {
            fn log_entry(&self, seq: u64) -> Result<Option<Vec<u8>>> {
                let Some(t) = self.table(LOG, Table::Log)? else { return Ok(None) };
                Ok(t.get(seq).map_err(read_err(Table::Log))?.map(|v| v.value().to_vec()))
            }
            fn log_entries(&self) -> Result<Vec<(u64, Vec<u8>)>> {
                let Some(t) = self.table(LOG, Table::Log)? else { return Ok(Vec::new()) };
                rows(&t, Table::Log, |k, v| (k, v.to_vec()))
            }
            fn log_hashes(&self, indexes: &[u64]) -> Result<Vec<Option<[u8; 32]>>> {
                let Some(t) = self.table(LOG_HASHES, Table::LogHashes)? else {
                    return Ok(vec![None; indexes.len()]);
                };
                let mut out = Vec::with_capacity(indexes.len());
                for &i in indexes {
                    out.push(t.get(i).map_err(read_err(Table::LogHashes))?.map(|v| *v.value()));
                }
                Ok(out)
            }
            fn log_hash_count(&self) -> Result<u64> {
                let Some(t) = self.table(LOG_HASHES, Table::LogHashes)? else { return Ok(0) };
                t.len().map_err(read_err(Table::LogHashes))
            }
        }
    };
}

fn read_err(table: Table) -> impl Fn(redb::StorageError) -> Error {
    move |e| Error::storage(format!("reading {}", table.name()), e)
}

log_read!(ReadTxn);
log_read!(WriteTxn);

impl WriteTxn {
    /// Writes the sealed entry `seq` and the stored hashes it adds, starting at stored hash
    /// index `first_hash`.
    ///
    /// Errors: [`Error::Storage`].
    pub fn put_log(&mut self, seq: u64, entry: &[u8], first_hash: u64, hashes: &[[u8; 32]]) -> Result<()> {
        let err = |e: redb::StorageError| Error::storage("appending to the log", e);
        self.open(LOG, Table::Log)?.insert(seq, entry).map_err(err)?;
        let mut t = self.open(LOG_HASHES, Table::LogHashes)?;
        for (i, h) in hashes.iter().enumerate() {
            t.insert(first_hash + i as u64, h).map_err(err)?;
        }
        Ok(())
    }

    /// Replaces the sealed entry `seq` (its hashes stay: erasure seals an entry again without
    /// the names it held, which its leaf commits to only through a salted hash).
    ///
    /// Errors: [`Error::Storage`].
    pub fn replace_log_entry(&mut self, seq: u64, entry: &[u8]) -> Result<()> {
        let err = |e: redb::StorageError| Error::storage("rewriting a log entry", e);
        self.open(LOG, Table::Log)?.insert(seq, entry).map_err(err)?;
        Ok(())
    }
}
