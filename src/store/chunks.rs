//! The chunk store interface: content-addressed, immutable sealed blobs, the shape an object store
//! has. A chunk is stored under its id (the keyed BLAKE3 of its plaintext, see SECURITY.md) as the
//! sealed value `0x01 ‖ epoch BE ‖ nonce ‖ ciphertext ‖ tag`; the store never sees a key or a
//! plaintext byte and never interprets the value it holds.
//!
//! Implementations say what they guarantee in their own docs: the redb vault file commits chunk
//! writes with the records of the same transaction (all or nothing); a remote object store may
//! only promise that an insert is complete once it returns. Every implementation must make
//! `insert` of an id already present harmless (same id, same plaintext) and `remove` of an absent
//! id a no-op.
//!
//! The redb vault file implements both here: [`super::ReadTxn`] reads chunks in one snapshot
//! (a value is borrowed from its page, never copied), and [`ChunkTables`], the chunk table and
//! its `chunk_ids` index open together in a write transaction, is the only writer of either (besides a rewrite's row-by-row copy
//! of both tables in one transaction), so they change together and commit with the records of the same transaction. Its `insert` of an
//! id present overwrites it with the same value; its `remove` of an absent id does nothing.
//!
//! This module must never hold key material, open a sealed value or decide what is garbage: the
//! envelope opens values and `gc` decides.

use super::tables::{CHUNK_IDS, CHUNKS, Table};
use super::txn::{ReadTxn, StoredValue, rows};
use redb::ReadableTable;

use crate::{Error, Result};

/// A chunk id: keyed BLAKE3-256 of the chunk's plaintext (32 bytes).
pub type ChunkId = [u8; 32];

/// Reading chunks. Implemented by every transaction that can see the chunk table.
pub trait ChunkRead {
    /// A stored value borrowed from the store for as long as the read lasts (no copy for the
    /// redb file; an owned buffer for a remote).
    type Value<'a>: AsRef<[u8]>
    where
        Self: 'a;

    /// The sealed value stored under `id`, `None` when absent.
    ///
    /// Errors: [`crate::Error::Storage`] when the store cannot be read.
    fn get(&self, id: &ChunkId) -> Result<Option<Self::Value<'_>>>;

    /// True when `id` is stored (for the redb file: answered from the small pages of the chunk
    /// index, never by reading a value).
    ///
    /// Errors: [`crate::Error::Storage`].
    fn contains(&self, id: &ChunkId) -> Result<bool>;

    /// Every stored id with its value's length in bytes, in id order.
    ///
    /// Errors: [`crate::Error::Storage`].
    fn ids(&self) -> Result<Vec<(ChunkId, u32)>>;
}

/// Writing chunks: immutable blobs are only ever inserted whole or removed.
pub trait ChunkStore: ChunkRead {
    /// Stores `sealed` under `id`. Inserting an id already present leaves one copy.
    ///
    /// Errors: [`crate::Error::Storage`] (a full disk among them).
    fn insert(&mut self, id: &ChunkId, sealed: &[u8]) -> Result<()>;

    /// Deletes the chunk `id` (a no-op when absent).
    ///
    /// Errors: [`crate::Error::Storage`].
    fn remove(&mut self, id: &ChunkId) -> Result<()>;
}

impl ChunkRead for ReadTxn {
    type Value<'a>
        = StoredValue<'static>
    where
        Self: 'a;

    fn get(&self, id: &ChunkId) -> Result<Option<StoredValue<'static>>> {
        let Some(t) = self.table(CHUNKS, Table::Chunks)? else { return Ok(None) };
        Ok(t.get(id).map_err(|e| Error::storage("reading a chunk", e))?.map(StoredValue))
    }

    fn contains(&self, id: &ChunkId) -> Result<bool> {
        let Some(t) = self.table(CHUNK_IDS, Table::ChunkIds)? else { return Ok(false) };
        Ok(t.get(id).map_err(|e| Error::storage("reading the chunk index", e))?.is_some())
    }

    fn ids(&self) -> Result<Vec<(ChunkId, u32)>> {
        let Some(t) = self.table(CHUNK_IDS, Table::ChunkIds)? else { return Ok(Vec::new()) };
        rows(&t, Table::ChunkIds, |k, len| (*k, len))
    }
}

/// The chunk table and its key index, open together in one write transaction. Every insert and
/// removal of a chunk goes through here, so the two tables never disagree after a commit.
pub struct ChunkTables<'t> {
    chunks: redb::Table<'t, &'static [u8; 32], &'static [u8]>,
    ids: redb::Table<'t, &'static [u8; 32], u32>,
}

impl<'t> ChunkTables<'t> {
    pub(in crate::store) fn open(tx: &'t redb::WriteTransaction) -> Result<Self> {
        let chunks = tx.open_table(CHUNKS).map_err(|e| Error::storage("opening chunks", e))?;
        let ids = tx.open_table(CHUNK_IDS).map_err(|e| Error::storage("opening the chunk index", e))?;
        Ok(ChunkTables { chunks, ids })
    }

    /// Every stored chunk id with its value's length in bytes, read from the chunk table itself
    /// (every value page is read: used by `gc`, which rebuilds the index from it).
    ///
    /// Errors: [`Error::Storage`].
    pub fn scan_chunks(&self) -> Result<Vec<(ChunkId, u32)>> {
        rows(&self.chunks, Table::Chunks, |k, v| (*k, v.len() as u32))
    }

    /// Makes the index list exactly `present` (ids with value lengths).
    ///
    /// Errors: [`Error::Storage`].
    pub fn reindex(&mut self, present: &[(ChunkId, u32)]) -> Result<()> {
        self.ids.retain(|_, _| false).map_err(|e| Error::storage("clearing the chunk index", e))?;
        for (id, len) in present {
            self.ids.insert(id, *len).map_err(|e| Error::storage("writing the chunk index", e))?;
        }
        Ok(())
    }
}

impl ChunkRead for ChunkTables<'_> {
    type Value<'a>
        = StoredValue<'a>
    where
        Self: 'a;

    fn get(&self, id: &ChunkId) -> Result<Option<StoredValue<'_>>> {
        Ok(self.chunks.get(id).map_err(|e| Error::storage("reading a chunk", e))?.map(StoredValue))
    }

    fn contains(&self, id: &ChunkId) -> Result<bool> {
        Ok(self.ids.get(id).map_err(|e| Error::storage("reading the chunk index", e))?.is_some())
    }

    fn ids(&self) -> Result<Vec<(ChunkId, u32)>> {
        rows(&self.ids, Table::ChunkIds, |k, len| (*k, len))
    }
}

impl ChunkStore for ChunkTables<'_> {
    fn insert(&mut self, id: &ChunkId, sealed: &[u8]) -> Result<()> {
        self.chunks.insert(id, sealed).map_err(|e| Error::storage("writing a chunk", e))?;
        self.ids.insert(id, sealed.len() as u32).map_err(|e| Error::storage("writing the chunk index", e))?;
        Ok(())
    }

    fn remove(&mut self, id: &ChunkId) -> Result<()> {
        self.chunks.remove(id).map_err(|e| Error::storage("deleting a chunk", e))?;
        self.ids.remove(id).map_err(|e| Error::storage("deleting a chunk index entry", e))?;
        Ok(())
    }
}
