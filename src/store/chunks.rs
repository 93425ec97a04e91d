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
//! This module must never hold key material, open a sealed value or decide what is garbage: the
//! envelope opens values and `gc` decides.

use crate::Result;

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
