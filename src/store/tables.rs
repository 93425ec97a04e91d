//! The redb table definitions of the vault file. Private to `crate::store`: nothing outside the
//! storage module names a table; operations go through [`super::ReadTxn`] / [`super::WriteTxn`].
//! This module must never hold anything but the definitions (names, key and value types).

use redb::{TableDefinition, TableHandle};

/// Public header and the sealed state.
pub(in crate::store) static META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Key slots by name.
pub(in crate::store) static SLOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("slots");
/// Signing keys by id.
pub(in crate::store) static SIGNERS: TableDefinition<u32, &[u8]> = TableDefinition::new("signers");
/// Model records by keyed hash of the name.
pub(in crate::store) static MODELS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("models");
/// Version records by model key and big-endian version number.
pub(in crate::store) static VERSIONS: TableDefinition<&[u8; 40], &[u8]> = TableDefinition::new("versions");
/// Trusted public keys of other vaults, by name.
pub(in crate::store) static TRUST: TableDefinition<&str, &[u8]> = TableDefinition::new("trust");
/// Remotes (S3-compatible stores this vault shares through), by name.
pub(in crate::store) static REMOTES: TableDefinition<&str, &[u8]> = TableDefinition::new("remotes");
/// Encrypted chunks by chunk id.
pub(in crate::store) static CHUNKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("chunks");
/// Sealed log entries by sequence number (0, 1, ...).
pub(in crate::store) static LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
/// The log's Merkle tree: stored hash index (C2SP tlog-tiles numbering) → SHA-256 hash.
pub(in crate::store) static LOG_HASHES: TableDefinition<u64, &[u8; 32]> = TableDefinition::new("log_hashes");
/// Index of the chunk table's keys: chunk id → length in bytes of the stored (sealed) value.
pub(in crate::store) static CHUNK_IDS: TableDefinition<&[u8; 32], u32> = TableDefinition::new("chunk_ids");

/// A table of the vault, by its role. Its [`Table::name`] is the name the table has in the file,
/// and the name every sealed value's AAD carries (see SECURITY.md, "Byte layout").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// `meta`: the public header and the sealed state and index key records.
    Meta,
    /// `slots`: key slots by name.
    Slots,
    /// `signers`: sealed signing key records by id.
    Signers,
    /// `models`: sealed model records by keyed hash of the name.
    Models,
    /// `versions`: sealed version records by model key and version.
    Versions,
    /// `trust`: sealed trusted public keys by name.
    Trust,
    /// `remotes`: sealed remote records by name.
    Remotes,
    /// `log`: sealed log entries by sequence number.
    Log,
    /// `log_hashes`: the log's Merkle tree hashes by stored hash index (not sealed).
    LogHashes,
    /// `chunks`: sealed chunks by chunk id.
    Chunks,
    /// `chunk_ids`: the index of the chunk table's keys.
    ChunkIds,
}

impl Table {
    /// Every table, in the order a rewrite copies them.
    pub const ALL: [Table; 11] = [
        Table::Meta,
        Table::Slots,
        Table::Signers,
        Table::Trust,
        Table::Remotes,
        Table::Models,
        Table::Versions,
        Table::Log,
        Table::LogHashes,
        Table::Chunks,
        Table::ChunkIds,
    ];

    /// The table's name in the vault file (taken from its definition).
    pub fn name(self) -> &'static str {
        match self {
            Table::Meta => META.name(),
            Table::Slots => SLOTS.name(),
            Table::Signers => SIGNERS.name(),
            Table::Models => MODELS.name(),
            Table::Versions => VERSIONS.name(),
            Table::Trust => TRUST.name(),
            Table::Remotes => REMOTES.name(),
            Table::Log => LOG.name(),
            Table::LogHashes => LOG_HASHES.name(),
            Table::Chunks => CHUNKS.name(),
            Table::ChunkIds => CHUNK_IDS.name(),
        }
    }
}

impl super::envelope::TableName for Table {
    fn table_name(&self) -> &str {
        self.name()
    }
}
