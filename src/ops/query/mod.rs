//! `query` and `ls --where`: read-only SQL (SQLite dialect, <https://sqlite.org/lang.html>) over
//! tables built in memory from the decrypted, signature-checked metadata.
//!
//! This module owns the public API of querying ([`Vault::metadata_db`], [`Vault::query`],
//! [`Vault::list_where`] and their `_limited` forms), the query limits ([`QueryLimits`],
//! [`MAX_SQL_BYTES`]) and the result types. The work is in its submodules, one job each:
//!
//! - `snapshot`: the metadata snapshot (`Snapshot`: every model record and
//!   every checked manifest, read in one read transaction);
//! - `chunk_index`: the chunk index derived from a snapshot (`ChunkIndex`), which `stats` also
//!   uses;
//! - `tables`: the in-memory tables ([`SCHEMA`]) filled from a snapshot;
//! - `sqlite`: the in-memory SQLite database ([`MetaDb`]), its lock-down, and running a statement
//!   within the limits;
//! - `where_clause`: the `--where` expression compiler.
//!
//! This module must never let decrypted metadata reach the disk and never let a query change
//! anything (the lock-down is described in `sqlite`); it holds no SQL of its own and reads no
//! storage itself.
//!
//! Tables (all rebuilt on every call; see the README section "Querying with SQL"):
//! `models`, `versions`, `files`, `tensors`, `aliases`, `alias_history`, `tags`, `metrics`,
//! `chunks`. Their columns are in [`SCHEMA`].

mod chunk_index;
mod snapshot;
mod sqlite;
mod tables;
mod where_clause;

use serde::{Serialize, Serializer};

use super::list::Listing;
#[cfg(doc)]
use crate::Error;
use crate::Result;
use crate::manifest::hex;
use crate::vault::{Unlocked, Vault};

pub(crate) use chunk_index::ChunkIndex;
pub(crate) use snapshot::Snapshot;
pub use sqlite::{ALLOWED_PRAGMAS, DENIED_FUNCTIONS, MAX_VALUE_BYTES, MetaDb};
pub use tables::SCHEMA;
use where_clause::{RefKind, compile_where};

/// Bounds on one query's run: wall-clock time and memory. Defaults: 10 s, 256 MiB.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueryLimits {
    /// Longest a statement may run, in seconds (checked every few thousand SQLite steps).
    pub max_seconds: f64,
    /// Most memory, in MiB: SQLite's heap while the statement runs (set with
    /// `PRAGMA hard_heap_limit`, which is process-wide and which SQLite lets a program lower but
    /// never raise again: in one process the lowest limit set so far holds, and the error names
    /// it) and, separately, the bytes of the result rows collected.
    pub max_memory_mib: u64,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits { max_seconds: 10.0, max_memory_mib: 256 }
    }
}

/// Longest SQL text accepted, in bytes (1 MiB).
pub const MAX_SQL_BYTES: usize = 1 << 20;

/// A cell of a query result. In JSON: `null`, a number, a string, or a blob as lower-case hex.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// SQL NULL.
    Null,
    /// A 64-bit integer.
    Integer(i64),
    /// A double (non-finite values print as `null` in JSON).
    Real(f64),
    /// UTF-8 text (invalid UTF-8 is replaced with U+FFFD).
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl Serialize for SqlValue {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            SqlValue::Null => s.serialize_none(),
            SqlValue::Integer(i) => s.serialize_i64(*i),
            SqlValue::Real(f) if f.is_finite() => s.serialize_f64(*f),
            SqlValue::Real(_) => s.serialize_none(),
            SqlValue::Text(t) => s.serialize_str(t),
            SqlValue::Blob(b) => s.serialize_str(&hex(b)),
        }
    }
}

impl std::fmt::Display for SqlValue {
    /// Text form for tables and CSV: NULL as the empty string, blobs as `x'…'` hex.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SqlValue::Null => Ok(()),
            SqlValue::Integer(i) => write!(f, "{i}"),
            SqlValue::Real(r) => write!(f, "{r}"),
            SqlValue::Text(t) => f.write_str(t),
            SqlValue::Blob(b) => write!(f, "x'{}'", hex(b)),
        }
    }
}

/// The result of a query: column names and rows, in the order SQLite returned them.
#[derive(Debug, Clone, Serialize)]
pub struct QueryResult {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows; each has one value per column.
    pub rows: Vec<Vec<SqlValue>>,
    /// Records that could not be read and so are absent from the tables (as in `ls`).
    pub problems: Vec<String>,
}

/// The result of [`Vault::list_where`]: the matching versions, plus notes on metric or tag keys
/// the expression names that no version has (a likely typo; such a key reads as NULL).
#[derive(Debug, Clone, Serialize)]
pub struct WhereListing {
    /// Matching versions, grouped by model as in [`Vault::list`].
    pub listing: Listing,
    /// `metric.KEY` / `tag.KEY` references whose key no version has, e.g. `metric.acuracy`.
    pub unknown_keys: Vec<String>,
}

impl Vault<Unlocked> {
    /// Builds the locked-down in-memory SQL database of every model and version (see the
    /// module docs for the tables and the lock-down).
    ///
    /// Errors: [`Error::Storage`] reading the vault; [`Error::InvalidInput`] if SQLite cannot
    /// build the tables (out of memory).
    pub fn metadata_db(&self) -> Result<MetaDb> {
        self.metadata_db_limited(QueryLimits::default())
    }

    /// [`Vault::metadata_db`] with the given query limits.
    ///
    /// Errors: as [`Vault::metadata_db`].
    pub fn metadata_db_limited(&self, limits: QueryLimits) -> Result<MetaDb> {
        let snap = self.snapshot(None)?;
        MetaDb::build(&snap, limits)
    }

    /// Runs one read-only SQL statement (SQLite dialect) over the metadata tables.
    ///
    /// Errors: [`Error::InvalidInput`] for a syntax error (naming the token and its character
    /// position), an unknown table or column, a refused statement (anything that is not a
    /// read-only `SELECT`), or more than one statement; as [`Vault::metadata_db`].
    pub fn query(&self, sql: &str) -> Result<QueryResult> {
        self.metadata_db()?.query(sql)
    }

    /// [`Vault::query`] with the given time and memory limits. A statement that runs past
    /// `max_seconds` or needs more than `max_memory_mib` is stopped with [`Error::InvalidInput`]
    /// naming the limit and the option that raises it.
    pub fn query_limited(&self, sql: &str, limits: QueryLimits) -> Result<QueryResult> {
        self.metadata_db_limited(limits)?.query(sql)
    }

    /// Lists the versions (of every model, or only `name`'s) for which the SQL boolean
    /// expression `expr` is true. `expr` is evaluated over one row of the `versions` table, with
    /// `metric.KEY` and `tag.KEY` naming that version's metric (REAL) or tag (TEXT), NULL when
    /// it has none; a key with characters other than letters, digits, `_` and `.` is written
    /// quoted: `metric."f1-score"`. Example: `metric.accuracy > 0.9 AND tag.env = 'prod'`.
    ///
    /// Errors: [`Error::InvalidInput`] for a bad expression, naming the offending token and its
    /// character position; [`Error::ModelNotFound`]; as [`Vault::metadata_db`].
    pub fn list_where(&self, name: Option<&str>, expr: &str) -> Result<WhereListing> {
        self.list_where_limited(name, expr, QueryLimits::default())
    }

    /// [`Vault::list_where`] with the given time and memory limits (as [`Vault::query_limited`]).
    pub fn list_where_limited(&self, name: Option<&str>, expr: &str, limits: QueryLimits) -> Result<WhereListing> {
        let compiled = compile_where(expr)?;
        let snap = self.snapshot(name)?;
        let db = MetaDb::build(&snap, limits)?;
        let hits = db.select_versions(expr, &compiled)?;
        let mut listing = snap.listing();
        for m in &mut listing.models {
            m.versions.retain(|v| hits.contains(&(m.name.clone(), v.version)));
        }
        listing.models.retain(|m| !m.versions.is_empty());
        let unknown_keys = compiled
            .refs
            .iter()
            .filter(|(kind, key)| match kind {
                RefKind::Metric => !db.metric_keys.contains(key),
                RefKind::Tag => !db.tag_keys.contains(key),
            })
            .map(|(kind, key)| format!("{}.{key}", kind.word()))
            .collect();
        Ok(WhereListing { listing, unknown_keys })
    }
}
