//! The storage boundary: the redb schema and every byte that touches the vault file. Nothing
//! outside this module names a table or the storage engine: operations read through [`ReadTxn`]
//! and write through [`WriteTxn`] (both [`RecordRead`], typed in the vault's terms, values the
//! sealed bytes), chunks through [`chunks::ChunkRead`] / [`chunks::ChunkStore`]. What the redb
//! file guarantees (atomic transactions, checkpoints, a rewrite copying every table) is stated in
//! `txn`; a second backend implements the same traits and states its own. The definitions are
//! private to `tables`; [`Table`] names a table by its role, and its name is the one the AAD
//! carries. A storage failure is an [`Error::Storage`] whose source is a [`StoreError`] of a
//! [`StoreErrorKind`].
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
//! | `remotes`  | remote name (UTF-8)         | sealed [`records::RemoteRecord`]                 |
//! | `models`   | BLAKE3-keyed(name) (32 B)   | sealed [`records::ModelRecord`]                  |
//! | `versions` | model key ‖ version BE (40 B)| sealed [`records::VersionRecord`] (signed manifest)|
//! | `log`      | sequence number (u64)       | sealed log entry (`crate::log`)                  |
//! | `log_hashes`| stored hash index (u64)    | SHA-256 hash of a complete log subtree (32 B)    |
//! | `chunks`   | chunk id (32 B)             | `0x01` ‖ epoch BE ‖ nonce ‖ ciphertext ‖ tag     |
//! | `chunk_ids`| chunk id (32 B)             | length of the `chunks` value, bytes (u32)         |
//!
//! `chunk_ids` is an index of `chunks`' keys: it answers "is this chunk stored?" from small pages,
//! where a lookup in `chunks` reads the 1 MiB page that holds the value. [`ChunkTables`] is the
//! only writer of either table (besides [`copy_table`], which a rewrite runs on both in one
//! transaction), so they change together in one transaction; `verify` checks they
//! agree, `gc` rebuilds the index from `chunks`, and [`upgrade_format`] builds it for a vault
//! written before it existed (format version 1).
//!
//! Every sealed value's AAD is `"modelvault/v1/" ‖ table ‖ 0x00 ‖ vault id ‖ epoch BE ‖ key`, so a
//! value moved to another key, table, vault or epoch fails authentication.
//!
//! The vault file itself is `file`'s: [`open_db`] (symbolic links resolved once, a read-only open
//! for a file this process may not write, and the check that the file it locked is still the file
//! at the path) and [`rewrite_with`] (a fresh file renamed over the vault while both files are
//! locked, with the vault's owner and mode). This module must never hold a key or a plaintext,
//! hand out a handle on a file other than the one at the vault's path, rename anything over a
//! symbolic link, or write to a file opened read-only.

pub mod chunks;
pub mod envelope;
mod error;
mod file;
mod log;
pub mod records;
mod rewrite;
mod tables;
mod txn;

pub use chunks::ChunkTables;
pub use error::{StoreError, StoreErrorKind};
pub use log::LogRead;
pub use tables::Table;
pub use txn::{ReadTxn, RecordRead, RecordWrite, StoredValue, VersionRow, WriteTxn, logged_row, version_key};

use crate::{Error, Result};

/// The sum of the stored (sealed) chunk value lengths, in bytes, read from the chunk index
/// (small pages only). 0 for a vault without one.
///
/// Errors: [`Error::Storage`].
pub fn stored_chunk_bytes(db: &Db) -> Result<u64> {
    read(db)?.stored_chunk_bytes()
}

/// Upgrades the storage of a version 1 or 2 vault to [`records::FORMAT_VERSION`] inside `tx`: for
/// version 1 (no chunk index) builds the index from the chunk table (every value page is read
/// once), and rewrites the header. The sealed records of format 3 need the vault's keys: the
/// caller (`Vault::write`) seals them in the same transaction.
/// Does nothing to a vault already at the current version. Returns true when it upgraded.
///
/// Errors: [`Error::Storage`]; [`Error::Damaged`] for a header that does not decode (opening the
/// vault checked it already).
pub fn upgrade_format(tx: &mut WriteTxn) -> Result<bool> {
    let Some(v) = tx.header()? else {
        return Ok(false); // the transaction that creates the vault writes the header
    };
    let mut header: records::Header =
        postcard::from_bytes(&v).map_err(|_| Error::Damaged("the vault header does not decode".into()))?;
    if header.format_version >= records::FORMAT_VERSION {
        return Ok(false);
    }
    if header.format_version < 2 {
        let mut t = tx.chunks()?;
        let present = t.scan_chunks()?;
        t.reindex(&present)?;
    }
    header.format_version = records::FORMAT_VERSION;
    tx.put_meta("header", &records::encode(&header))?;
    Ok(true)
}

pub use envelope::aad;
pub use file::{
    Beside, CACHE_BYTES, COMPACT_WAIT, Db, INTEGRITY_CHECK_MAX_BYTES, OPEN_REPLACED_RETRIES, PageCheck,
    READER_REPAIR_TRIES, check_pages, create_db, open_db, open_writer_beside,
};
pub use rewrite::{rewrite, rewrite_path, rewrite_with};

/// Starts a read transaction: one snapshot of the vault file.
///
/// Errors: [`Error::Storage`].
pub fn read(db: &Db) -> Result<ReadTxn> {
    db.read_tx().map(ReadTxn::new)
}

/// Starts a write transaction (two-phase commit, quick repair).
///
/// Errors: [`Error::ReadOnly`] on a read-only [`Db`]; [`Error::Storage`].
pub fn write(db: &Db) -> Result<WriteTxn> {
    db.write_tx().map(WriteTxn::new)
}

/// Copies every row of `table` from `from` into `to` as it is; a table `from` holds empty is
/// created empty in `to`, one it does not hold is not created.
///
/// Errors: [`Error::Storage`].
pub fn copy_table(from: &ReadTxn, to: &mut WriteTxn, table: Table) -> Result<()> {
    if from.has_table(table)? {
        to.create_table(table)?;
    }
    from.scan(table, None, |k, v| to.put_row(table, k, v).map(|()| true))
}
