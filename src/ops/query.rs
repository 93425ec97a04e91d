//! `query` and `ls --where`: read-only SQL (SQLite dialect, <https://sqlite.org/lang.html>) over
//! tables built in memory from the decrypted, signature-checked metadata.
//!
//! This module owns the metadata snapshot ([`Snapshot`]: every model record and every checked
//! manifest), the in-memory SQLite database built from it ([`MetaDb`]), its lock-down, and the
//! `--where` expression compiler. It must never let decrypted metadata reach the disk and never
//! let a query change anything:
//!
//! - the database is `Connection::open_in_memory()` with `PRAGMA temp_store=MEMORY`, so sorts and
//!   temporary b-trees never spill to temporary files;
//! - after the tables are filled: `SQLITE_LIMIT_ATTACHED` = 0 (no `ATTACH`, which also stops
//!   `VACUUM INTO`), `PRAGMA query_only=ON`, and an authorizer that allows only `SELECT`, column
//!   reads, recursive CTEs, functions other than [`DENIED_FUNCTIONS`], and the read-only
//!   introspection pragmas in [`ALLOWED_PRAGMAS`]; everything else (INSERT, UPDATE, DELETE,
//!   CREATE, DROP, ALTER, ATTACH, DETACH, transactions, savepoints, ANALYZE, REINDEX, other
//!   pragmas) is denied;
//! - a statement must be read-only by `sqlite3_stmt_readonly` and alone (no second statement);
//! - extension loading stays off (SQLite's default; `load_extension()` is also denied by name).
//!
//! Tables (all rebuilt on every call; see the README section "Querying with SQL"):
//! `models`, `versions`, `files`, `tensors`, `aliases`, `alias_history`, `tags`, `metrics`,
//! `chunks`. Their columns are in [`SCHEMA`].

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use redb::ReadableTable;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, params};
use serde::{Serialize, Serializer};

use super::list::{Listing, ModelInfo, version_info};
use super::stats::ChunkIndex;
use crate::manifest::{Manifest, hex};
use crate::names::escape;
use crate::store::records::{ModelRecord, VersionRecord};
use crate::store::{self, MODELS, VERSIONS};
use crate::vault::{Unlocked, Vault};
use crate::{Error, Result};

/// The tables a query sees, as SQLite DDL. Sizes are bytes, times Unix seconds (UTC), digests
/// lower-case hex.
pub const SCHEMA: &str = "
CREATE TABLE models (
  name TEXT PRIMARY KEY, created INTEGER NOT NULL, description TEXT NOT NULL,
  versions INTEGER NOT NULL, latest INTEGER, next_version INTEGER NOT NULL,
  logical_bytes INTEGER NOT NULL);
CREATE TABLE versions (
  name TEXT NOT NULL, version INTEGER NOT NULL, created INTEGER NOT NULL,
  updated INTEGER NOT NULL, revision INTEGER NOT NULL, size_bytes INTEGER NOT NULL,
  files INTEGER NOT NULL, format TEXT NOT NULL, signer TEXT NOT NULL,
  description TEXT NOT NULL, sha256 TEXT, aliases TEXT NOT NULL, tensors INTEGER NOT NULL,
  params INTEGER NOT NULL, chunks INTEGER NOT NULL, unique_bytes INTEGER NOT NULL,
  exclusive_bytes INTEGER NOT NULL,
  PRIMARY KEY (name, version));
CREATE TABLE files (
  name TEXT NOT NULL, version INTEGER NOT NULL, path TEXT NOT NULL,
  size_bytes INTEGER NOT NULL, sha256 TEXT NOT NULL, format TEXT NOT NULL,
  chunks INTEGER NOT NULL, tensors INTEGER NOT NULL, scan TEXT,
  PRIMARY KEY (name, version, path));
CREATE TABLE tensors (
  name TEXT NOT NULL, version INTEGER NOT NULL, path TEXT NOT NULL, tensor TEXT NOT NULL,
  dtype TEXT NOT NULL, shape TEXT NOT NULL, ndim INTEGER NOT NULL, params INTEGER,
  offset INTEGER NOT NULL, size_bytes INTEGER NOT NULL);
CREATE TABLE aliases (
  name TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL,
  PRIMARY KEY (name, alias));
CREATE TABLE alias_history (
  name TEXT NOT NULL, alias TEXT NOT NULL, from_version INTEGER, to_version INTEGER,
  at INTEGER NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE tags (
  name TEXT NOT NULL, version INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
  PRIMARY KEY (name, version, key));
CREATE TABLE metrics (
  name TEXT NOT NULL, version INTEGER NOT NULL, key TEXT NOT NULL, value REAL NOT NULL,
  PRIMARY KEY (name, version, key));
CREATE TABLE chunks (
  id TEXT PRIMARY KEY, plain_bytes INTEGER NOT NULL, stored_bytes INTEGER NOT NULL,
  refcount INTEGER NOT NULL, versions INTEGER NOT NULL, models INTEGER NOT NULL);
CREATE INDEX tags_by_key ON tags (key, value);
CREATE INDEX metrics_by_key ON metrics (key, value);
";

/// Functions a query may not call: extension loading and FTS3's tokenizer pointer hook.
pub const DENIED_FUNCTIONS: &[&str] = &["load_extension", "fts3_tokenizer"];

/// Pragmas a query may run (read-only, schema introspection, no argument that sets anything).
pub const ALLOWED_PRAGMAS: &[&str] =
    &["table_info", "table_xinfo", "table_list", "index_list", "index_info", "function_list"];

/// Largest string or blob a query may build, in bytes (16 MiB), so `zeroblob(1e12)` fails
/// cleanly instead of exhausting memory.
pub const MAX_VALUE_BYTES: i32 = 16 << 20;

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

/// One model with every version that loaded and checked.
#[derive(Debug, Clone)]
pub(crate) struct SnapModel {
    pub rec: ModelRecord,
    /// (manifest, signer public key), in version order.
    pub versions: Vec<(Manifest, [u8; 32])>,
}

/// Every model record and checked manifest, read in one read transaction.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    /// Models in name order.
    pub models: Vec<SnapModel>,
    /// One line per record that could not be read (as [`Listing::problems`]).
    pub problems: Vec<String>,
}

impl Snapshot {
    /// The same listing [`Vault::list`] gives for this snapshot.
    pub fn listing(&self) -> Listing {
        Listing {
            models: self
                .models
                .iter()
                .map(|m| ModelInfo {
                    name: m.rec.name.clone(),
                    created: m.rec.created,
                    description: m.rec.description.clone(),
                    aliases: m.rec.aliases.clone(),
                    versions: m.versions.iter().map(|(man, s)| version_info(man, &m.rec, s)).collect(),
                })
                .collect(),
            problems: self.problems.clone(),
        }
    }
}

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

/// An in-memory, locked-down SQLite database of the vault's metadata. Build it with
/// [`Vault::metadata_db`]; it holds decrypted metadata, so it lives only in memory and is
/// dropped (and freed by SQLite) with this value.
pub struct MetaDb {
    conn: Connection,
    limits: QueryLimits,
    deadline: Arc<Mutex<(Option<std::time::Instant>, bool)>>,
    /// The SQLite heap limit in force for this database, bytes (the lower of the requested one and
    /// any set earlier in the process).
    heap_limit: i64,
    refused: Arc<Mutex<Option<String>>>,
    metric_keys: BTreeSet<String>,
    tag_keys: BTreeSet<String>,
    problems: Vec<String>,
}

impl std::fmt::Debug for MetaDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaDb").finish_non_exhaustive()
    }
}

impl Vault<Unlocked> {
    /// Reads every model record (or only `name`'s) and every version manifest, each
    /// authenticated and signature-checked as in [`Vault::list`]. Damaged records become
    /// problems, as there, and so are live versions without a record, version records that are
    /// not live (left out of the snapshot) and, for the whole vault, missing or put-back model
    /// records ([`Vault::model_set_problem`]): every reader sees the same live versions. Manifests
    /// are opened and checked on up to 4 threads.
    ///
    /// Errors: [`Error::ModelNotFound`] when `name` is given and absent; [`Error::Storage`].
    pub(crate) fn snapshot(&self, name: Option<&str>) -> Result<Snapshot> {
        let rx = store::begin_read(&self.db)?;
        let mut snap = Snapshot { models: Vec::new(), problems: Vec::new() };
        let (Ok(models), Ok(versions)) = (rx.open_table(MODELS), rx.open_table(VERSIONS)) else {
            return match name {
                Some(n) => Err(Error::ModelNotFound(escape(n))),
                None => Ok(snap),
            };
        };
        let mut records = Vec::new();
        if let Some(n) = name {
            crate::names::check_model_name(n)?;
            let rec = self.load_model(&models, n)?.ok_or_else(|| Error::ModelNotFound(escape(n)))?;
            records.push((self.model_key(n), rec));
        } else {
            for row in models.iter().map_err(|e| Error::storage("reading models", e))? {
                let (k, v) = row.map_err(|e| Error::storage("reading models", e))?;
                let key = *k.value();
                match self.open_model(&key, "a model record", v.value()) {
                    Ok(rec) if self.model_key(&rec.name) == key => records.push((key, rec)),
                    Ok(rec) => snap.problems.push(format!(
                        "model record {}… holds the name '{}' of another record: the vault was tampered with",
                        &hex(&key)[..16],
                        escape(&rec.name)
                    )),
                    Err(e) => snap.problems.push(format!("model record {}…: {e}", &hex(&key)[..16])),
                }
            }
        }
        // Copy the sealed version records out, then open and check them in parallel: the
        // Ed25519 check dominates (about 50 µs a version).
        // Only live versions are read: a version record that is not live (a removed version's
        // record put back) and a live version without a record are problems, as in `ls`.
        let mut raw: Vec<(usize, u64, [u8; 40], Vec<u8>)> = Vec::new();
        for (i, (mk, rec)) in records.iter().enumerate() {
            let bad = self.live_mismatches(&versions, mk, rec)?;
            let live = self.live_versions(&versions, mk, rec)?;
            snap.problems.extend(bad.into_iter().map(|(_, m)| m));
            for row in store::version_range(&versions, mk)? {
                let (k, v) = row.map_err(|e| Error::storage("reading versions", e))?;
                let key = *k.value();
                let ver = u64::from_be_bytes(key[32..].try_into().expect("40-byte key"));
                if live.binary_search(&ver).is_ok() {
                    raw.push((i, ver, key, v.value().to_vec()));
                }
            }
        }
        drop((models, versions, rx));
        if name.is_none() {
            snap.problems.extend(self.model_set_problem()?);
        }
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 4);
        let per = raw.len().div_ceil(threads).max(256);
        let recs = &records;
        let checked: Vec<Result<(Manifest, [u8; 32])>> = std::thread::scope(|s| {
            let handles: Vec<_> = raw
                .chunks(per)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .map(|(i, ver, key, sealed)| {
                                let name = &recs[*i].1.name;
                                let what = format!("model '{}' version {ver}", escape(name));
                                let rec: VersionRecord = self.open_meta("versions", key, &what, sealed)?;
                                let m = self.check_version_record(&what, name, *ver, &rec)?;
                                Ok((m, rec.signer))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().expect("manifest check does not panic")).collect()
        });
        let mut out: Vec<SnapModel> =
            records.into_iter().map(|(_, rec)| SnapModel { rec, versions: Vec::new() }).collect();
        for ((i, ..), r) in raw.iter().zip(checked) {
            match r {
                Ok(v) => out[*i].versions.push(v),
                Err(e) => snap.problems.push(e.to_string()),
            }
        }
        out.sort_by(|a, b| a.rec.name.cmp(&b.rec.name));
        snap.models = out;
        Ok(snap)
    }

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

fn fill_err(e: rusqlite::Error) -> Error {
    Error::InvalidInput(format!("building the in-memory query tables failed: {e}"))
}

impl MetaDb {
    /// Builds and locks down the database from a snapshot.
    pub(crate) fn build(snap: &Snapshot, limits: QueryLimits) -> Result<MetaDb> {
        if !(limits.max_seconds.is_finite() && limits.max_seconds > 0.0) || limits.max_memory_mib == 0 {
            return Err(Error::InvalidInput(
                "query limits: --max-seconds must be a positive number and --max-memory-mib at least 1".into(),
            ));
        }
        let conn = Connection::open_in_memory().map_err(fill_err)?;
        // Before any table exists: keep every temporary structure in memory.
        conn.execute_batch("PRAGMA temp_store = MEMORY;").map_err(fill_err)?;
        conn.execute_batch(SCHEMA).map_err(fill_err)?;
        let index = ChunkIndex::build(snap);
        let mut metric_keys = BTreeSet::new();
        let mut tag_keys = BTreeSet::new();
        {
            let tx = conn.unchecked_transaction().map_err(fill_err)?;
            let mut ins_model =
                tx.prepare("INSERT INTO models VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)").map_err(fill_err)?;
            let mut ins_version = tx
                .prepare(
                    "INSERT INTO versions VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
                )
                .map_err(fill_err)?;
            let mut ins_file =
                tx.prepare("INSERT INTO files VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)").map_err(fill_err)?;
            let mut ins_tensor =
                tx.prepare("INSERT INTO tensors VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)").map_err(fill_err)?;
            let mut ins_alias = tx.prepare("INSERT INTO aliases VALUES (?1, ?2, ?3)").map_err(fill_err)?;
            let mut ins_hist =
                tx.prepare("INSERT INTO alias_history VALUES (?1, ?2, ?3, ?4, ?5, ?6)").map_err(fill_err)?;
            let mut ins_tag = tx.prepare("INSERT INTO tags VALUES (?1, ?2, ?3, ?4)").map_err(fill_err)?;
            let mut ins_metric = tx.prepare("INSERT INTO metrics VALUES (?1, ?2, ?3, ?4)").map_err(fill_err)?;
            let mut ins_chunk = tx.prepare("INSERT INTO chunks VALUES (?1, ?2, ?3, ?4, ?5, ?6)").map_err(fill_err)?;
            let mut vi = 0usize;
            for m in &snap.models {
                let name = m.rec.name.as_str();
                let logical: u64 = m.versions.iter().map(|(v, _)| v.total_size()).sum();
                ins_model
                    .execute(params![
                        name,
                        m.rec.created as i64,
                        m.rec.description,
                        m.versions.len() as i64,
                        m.versions.last().map(|(v, _)| v.version as i64),
                        m.rec.next_version as i64,
                        logical as i64
                    ])
                    .map_err(fill_err)?;
                for (a, v) in &m.rec.aliases {
                    ins_alias.execute(params![name, a, *v as i64]).map_err(fill_err)?;
                }
                for (seq, ev) in m.rec.alias_history.iter().enumerate() {
                    ins_hist
                        .execute(params![
                            name,
                            ev.alias,
                            ev.from.map(|v| v as i64),
                            ev.to.map(|v| v as i64),
                            ev.at as i64,
                            seq as i64
                        ])
                        .map_err(fill_err)?;
                }
                for (man, signer) in &m.versions {
                    let ver = man.version as i64;
                    let vs = &index.versions[vi];
                    vi += 1;
                    let formats: BTreeSet<&str> = man.files.iter().map(|f| f.format.as_str()).collect();
                    let format = formats.into_iter().collect::<Vec<_>>().join(",");
                    let sha = (man.files.len() == 1).then(|| hex(&man.files[0].sha256));
                    let aliases: Vec<&str> =
                        m.rec.aliases.iter().filter(|(_, v)| **v == man.version).map(|(a, _)| a.as_str()).collect();
                    let tensors: usize = man.files.iter().map(|f| f.tensors.len()).sum();
                    let params_total: u64 = man
                        .files
                        .iter()
                        .flat_map(|f| &f.tensors)
                        .map(|t| t.param_count().unwrap_or(0))
                        .fold(0u64, |a, b| a.saturating_add(b));
                    ins_version
                        .execute(params![
                            name,
                            ver,
                            man.created as i64,
                            man.updated as i64,
                            man.revision as i64,
                            man.total_size() as i64,
                            man.files.len() as i64,
                            format,
                            hex(signer),
                            man.description,
                            sha,
                            aliases.join(","),
                            tensors as i64,
                            params_total.min(i64::MAX as u64) as i64,
                            vs.chunks as i64,
                            vs.unique_bytes as i64,
                            vs.exclusive_bytes as i64
                        ])
                        .map_err(fill_err)?;
                    for f in &man.files {
                        ins_file
                            .execute(params![
                                name,
                                ver,
                                f.path,
                                f.size as i64,
                                hex(&f.sha256),
                                f.format,
                                f.chunks.len() as i64,
                                f.tensors.len() as i64,
                                f.scan.as_ref().map(|s| s.verdict.clone())
                            ])
                            .map_err(fill_err)?;
                        for t in &f.tensors {
                            let shape =
                                format!("[{}]", t.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(","));
                            ins_tensor
                                .execute(params![
                                    name,
                                    ver,
                                    f.path,
                                    t.name,
                                    t.dtype,
                                    shape,
                                    t.shape.len() as i64,
                                    t.param_count().map(|p| p.min(i64::MAX as u64) as i64),
                                    t.offset as i64,
                                    t.len as i64
                                ])
                                .map_err(fill_err)?;
                        }
                    }
                    for (k, v) in &man.tags {
                        tag_keys.insert(k.clone());
                        ins_tag.execute(params![name, ver, k, v]).map_err(fill_err)?;
                    }
                    for (k, v) in &man.metrics {
                        metric_keys.insert(k.clone());
                        ins_metric.execute(params![name, ver, k, v]).map_err(fill_err)?;
                    }
                }
            }
            for (id, c) in &index.chunks {
                ins_chunk
                    .execute(params![
                        hex(id),
                        c.plain_bytes as i64,
                        c.stored_bytes() as i64,
                        c.refcount as i64,
                        c.versions as i64,
                        c.models as i64
                    ])
                    .map_err(fill_err)?;
            }
            drop((ins_model, ins_version, ins_file, ins_tensor, ins_alias, ins_hist, ins_tag, ins_metric, ins_chunk));
            tx.commit().map_err(fill_err)?;
        }
        let refused = Arc::new(Mutex::new(None));
        let deadline = Arc::new(Mutex::new((None, false)));
        let mut db = MetaDb {
            conn,
            limits,
            deadline,
            heap_limit: 0,
            refused,
            metric_keys,
            tag_keys,
            problems: snap.problems.clone(),
        };
        db.lock_down()?;
        Ok(db)
    }

    /// Makes the connection read-only for good (see the module docs).
    fn lock_down(&mut self) -> Result<()> {
        let c = &mut self.conn;
        c.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0).map_err(fill_err)?;
        c.set_limit(Limit::SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES).map_err(fill_err)?;
        c.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_BYTES as i32 + 4096).map_err(fill_err)?;
        let heap = (self.limits.max_memory_mib.min(1 << 40) << 20) as i64;
        c.query_row(&format!("PRAGMA hard_heap_limit = {heap}"), [], |r| r.get::<_, i64>(0)).map_err(fill_err)?;
        // The pragma only ever lowers the process-wide limit: read back what is in force.
        self.heap_limit = c.query_row("PRAGMA hard_heap_limit", [], |r| r.get(0)).map_err(fill_err)?;
        let deadline = Arc::clone(&self.deadline);
        c.progress_handler(
            4096,
            Some(move || {
                let mut d = deadline.lock().unwrap_or_else(|p| p.into_inner());
                let over = d.0.is_some_and(|t| std::time::Instant::now() >= t);
                d.1 |= over;
                over
            }),
        )
        .map_err(fill_err)?;
        c.execute_batch("PRAGMA query_only = ON;").map_err(fill_err)?;
        let refused = Arc::clone(&self.refused);
        c.authorizer(Some(move |ctx: AuthContext<'_>| {
            let verdict = authorize(&ctx.action);
            if let Err(why) = &verdict {
                let mut slot = refused.lock().unwrap_or_else(|p| p.into_inner());
                if slot.is_none() {
                    *slot = Some(why.clone());
                }
            }
            match verdict {
                Ok(()) => Authorization::Allow,
                Err(_) => Authorization::Deny,
            }
        }))
        .map_err(fill_err)?;
        Ok(())
    }

    /// Runs one read-only statement and collects every row.
    ///
    /// Errors: as [`Vault::query`].
    pub fn query(&self, sql: &str) -> Result<QueryResult> {
        if sql.len() > MAX_SQL_BYTES {
            return Err(Error::InvalidInput(format!(
                "query: the SQL text is {} bytes; the limit is {MAX_SQL_BYTES}",
                sql.len()
            )));
        }
        let shown = |e| self.sql_error("query", e, sql, &|o| Some(o));
        *self.lock_refused() = None;
        self.start_clock();
        let mut stmt = self.conn.prepare(sql).map_err(shown)?;
        if !stmt.readonly() {
            return Err(Error::InvalidInput(
                "query refused: only read-only SELECT statements run; the vault's tables cannot be changed through SQL"
                    .into(),
            ));
        }
        let columns: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
        let n = columns.len();
        let mut rows = Vec::new();
        let mut held = 0u64;
        let max_held = self.limits.max_memory_mib.saturating_mul(1 << 20);
        let mut it = stmt.query([]).map_err(shown)?;
        while let Some(row) = it.next().map_err(shown)? {
            held += 16 + n as u64 * 32;
            if held > max_held {
                return Err(self.memory_error("query"));
            }
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                out.push(match row.get_ref(i).map_err(shown)? {
                    ValueRef::Null => SqlValue::Null,
                    ValueRef::Integer(v) => SqlValue::Integer(v),
                    ValueRef::Real(v) => SqlValue::Real(v),
                    ValueRef::Text(t) => {
                        held += t.len() as u64;
                        SqlValue::Text(String::from_utf8_lossy(t).into_owned())
                    }
                    ValueRef::Blob(b) => {
                        held += b.len() as u64;
                        SqlValue::Blob(b.to_vec())
                    }
                });
            }
            if held > max_held {
                return Err(self.memory_error("query"));
            }
            rows.push(out);
        }
        Ok(QueryResult { columns, rows, problems: self.problems.clone() })
    }

    /// The (name, version) pairs of `versions` rows where the compiled `--where` expression
    /// holds.
    fn select_versions(&self, expr: &str, compiled: &CompiledWhere) -> Result<BTreeSet<(String, u64)>> {
        let sql = format!("{WHERE_PREFIX}{}{WHERE_SUFFIX}", compiled.sql);
        let map = |o: usize| compiled.user_offset(o);
        let shown = |e| self.sql_error("--where", e, expr, &map);
        *self.lock_refused() = None;
        self.start_clock();
        let mut stmt = self.conn.prepare(&sql).map_err(shown)?;
        let mut hits = BTreeSet::new();
        let mut it = stmt.query([]).map_err(shown)?;
        while let Some(row) = it.next().map_err(shown)? {
            let name: String = row.get(0).map_err(shown)?;
            let version: i64 = row.get(1).map_err(shown)?;
            hits.insert((name, version as u64));
        }
        Ok(hits)
    }

    /// Starts the time limit of the statement about to run.
    fn start_clock(&self) {
        let secs = std::time::Duration::from_secs_f64(self.limits.max_seconds.min(1e9));
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner()) = (Some(std::time::Instant::now() + secs), false);
    }

    fn memory_error(&self, what: &str) -> Error {
        Error::InvalidInput(format!(
            "{what} stopped: it needs more than the memory limit of {} MiB{}; raise it with --max-memory-mib N (or narrow the query)",
            self.limits.max_memory_mib,
            if self.heap_limit > 0 && (self.heap_limit >> 20) < self.limits.max_memory_mib as i64 {
                format!(
                    " (SQLite's heap is held to {} MiB, a lower limit set earlier in this process, which SQLite cannot raise again)",
                    self.heap_limit >> 20
                )
            } else {
                String::new()
            }
        ))
    }

    fn lock_refused(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.refused.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Turns a SQLite error into one line naming the bad token and where it is in `user`.
    /// `map` takes a byte offset in the compiled SQL to a byte offset in `user`.
    fn sql_error(&self, what: &str, e: rusqlite::Error, user: &str, map: &dyn Fn(usize) -> Option<usize>) -> Error {
        if self.deadline.lock().unwrap_or_else(|p| p.into_inner()).1 {
            return Error::InvalidInput(format!(
                "{what} stopped: it ran past the time limit of {} s; raise it with --max-seconds N (or narrow the query)",
                self.limits.max_seconds
            ));
        }
        if let rusqlite::Error::SqliteFailure(f, _) = &e
            && f.code == rusqlite::ErrorCode::OutOfMemory
        {
            return self.memory_error(what);
        }
        if let Some(why) = self.lock_refused().take() {
            return Error::InvalidInput(format!(
                "{what} refused: {why}: queries are read-only and see only the in-memory metadata tables"
            ));
        }
        let (msg, offset) = match e {
            rusqlite::Error::SqlInputError { msg, offset, .. } => (msg, usize::try_from(offset).ok()),
            rusqlite::Error::SqliteFailure(f, Some(msg)) => (format!("{msg} ({f})"), None),
            rusqlite::Error::MultipleStatement => {
                return Error::InvalidInput(format!(
                    "{what}: more than one statement: give exactly one SELECT (remove the ';' and what follows it)"
                ));
            }
            rusqlite::Error::Empty => {
                return Error::InvalidInput(format!("{what}: no SQL statement was given"));
            }
            other => (other.to_string(), None),
        };
        let msg = visible(&msg);
        Error::InvalidInput(match offset.and_then(map) {
            Some(o) => {
                let o = o.min(user.len());
                let col = user[..user.floor_char_boundary(o)].chars().count() + 1;
                let rest: String = user[user.floor_char_boundary(o)..].chars().take(24).collect();
                format!("{what}: {msg} at character {col} (\"{}\") of: {}", visible(&rest), visible(user))
            }
            None => format!("{what}: {msg}, in: {}", visible(user)),
        })
    }
}

impl Drop for MetaDb {
    /// Removes the authorizer. (The process-wide heap limit cannot be raised again through SQL; it
    /// stays at the lowest value set.)
    fn drop(&mut self) {
        let _ = self.conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
    }
}

/// The authorizer's rule: `Err(reason)` for anything a read-only query must not do.
fn authorize(a: &AuthAction<'_>) -> std::result::Result<(), String> {
    match a {
        AuthAction::Select | AuthAction::Read { .. } | AuthAction::Recursive => Ok(()),
        AuthAction::Function { function_name } => {
            if DENIED_FUNCTIONS.iter().any(|d| d.eq_ignore_ascii_case(function_name)) {
                Err(format!("function {function_name}() is not allowed"))
            } else {
                Ok(())
            }
        }
        AuthAction::Pragma { pragma_name, pragma_value } => {
            let known = ALLOWED_PRAGMAS.iter().any(|p| p.eq_ignore_ascii_case(pragma_name));
            let reads = matches!(
                pragma_name.to_ascii_lowercase().as_str(),
                "table_info" | "table_xinfo" | "index_list" | "index_info"
            ) || pragma_value.is_none();
            if known && reads { Ok(()) } else { Err(format!("PRAGMA {} is not allowed", escape(pragma_name))) }
        }
        AuthAction::Attach { .. } => Err("ATTACH is not allowed".into()),
        AuthAction::Detach { .. } => Err("DETACH is not allowed".into()),
        AuthAction::Insert { table_name } => Err(format!("INSERT into {table_name} is not allowed")),
        AuthAction::Update { table_name, .. } => Err(format!("UPDATE of {table_name} is not allowed")),
        AuthAction::Delete { table_name } => Err(format!("DELETE from {table_name} is not allowed")),
        AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => {
            Err("transactions and savepoints are not allowed".into())
        }
        AuthAction::CreateTable { .. }
        | AuthAction::CreateTempTable { .. }
        | AuthAction::CreateIndex { .. }
        | AuthAction::CreateTempIndex { .. }
        | AuthAction::CreateView { .. }
        | AuthAction::CreateTempView { .. }
        | AuthAction::CreateTrigger { .. }
        | AuthAction::CreateTempTrigger { .. }
        | AuthAction::CreateVtable { .. } => Err("CREATE is not allowed".into()),
        AuthAction::DropTable { .. }
        | AuthAction::DropTempTable { .. }
        | AuthAction::DropIndex { .. }
        | AuthAction::DropTempIndex { .. }
        | AuthAction::DropView { .. }
        | AuthAction::DropTempView { .. }
        | AuthAction::DropTrigger { .. }
        | AuthAction::DropTempTrigger { .. }
        | AuthAction::DropVtable { .. } => Err("DROP is not allowed".into()),
        AuthAction::AlterTable { .. } => Err("ALTER TABLE is not allowed".into()),
        AuthAction::Analyze { .. } => Err("ANALYZE is not allowed".into()),
        AuthAction::Reindex { .. } => Err("REINDEX is not allowed".into()),
        _ => Err("this statement is not allowed".into()),
    }
}

// ---------------------------------------------------------------------------------------------
// `--where` compilation.

/// Text in front of a compiled `--where` expression. The expression sees one `versions` row
/// (aliased `v`) and nothing else.
const WHERE_PREFIX: &str = "SELECT v.name, v.version FROM versions AS v WHERE (";
const WHERE_SUFFIX: &str = "\n)";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum RefKind {
    Metric,
    Tag,
}

impl RefKind {
    fn word(self) -> &'static str {
        match self {
            RefKind::Metric => "metric",
            RefKind::Tag => "tag",
        }
    }
}

/// A `--where` expression with `metric.KEY` / `tag.KEY` rewritten into scalar subqueries.
#[derive(Debug, Clone)]
struct CompiledWhere {
    /// The rewritten expression.
    sql: String,
    /// (compiled offset, user offset, compiled length, user length) of each rewritten token.
    rewrites: Vec<(usize, usize, usize, usize)>,
    /// The metric and tag keys referenced.
    refs: BTreeSet<(RefKind, String)>,
}

impl CompiledWhere {
    /// Maps a byte offset in the full compiled statement back to one in the user's expression.
    fn user_offset(&self, o: usize) -> Option<usize> {
        let o = o.checked_sub(WHERE_PREFIX.len())?;
        let mut shift: isize = 0;
        for &(c, u, clen, ulen) in &self.rewrites {
            if o < c {
                break;
            }
            if o < c + clen {
                return Some(u);
            }
            shift += ulen as isize - clen as isize;
        }
        Some((o as isize + shift).max(0) as usize)
    }
}

fn where_err(expr: &str, at: usize, what: &str) -> Error {
    let col = expr[..expr.floor_char_boundary(at)].chars().count() + 1;
    Error::InvalidInput(format!("--where: {what} at character {col} of: {}", visible(expr)))
}

/// SQL text for a one-line message: control and bidirectional characters escaped (so a newline
/// in a query cannot split the message), everything else, quotes included, as typed.
fn visible(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control()
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
            {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Rewrites `metric.KEY` and `tag.KEY` (outside strings, quoted identifiers and comments) into
/// scalar subqueries, and refuses what could end the expression early: `;`, a `)` without its
/// `(`, an unterminated string or comment.
fn compile_where(expr: &str) -> Result<CompiledWhere> {
    if expr.trim().is_empty() {
        return Err(Error::InvalidInput(
            "--where: the expression is empty: give a SQL condition such as \"metric.accuracy > 0.9\"".into(),
        ));
    }
    if expr.len() > MAX_SQL_BYTES {
        return Err(Error::InvalidInput(format!(
            "--where: the expression is {} bytes; the limit is {MAX_SQL_BYTES}",
            expr.len()
        )));
    }
    let b = expr.as_bytes();
    let mut out = String::with_capacity(expr.len() + 64);
    let mut rewrites = Vec::new();
    let mut refs = BTreeSet::new();
    let mut depth = 0usize;
    let mut i = 0;
    let mut copied = 0;
    let ident_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\'' | b'"' | b'`' | b'[' => {
                let close = if c == b'[' { b']' } else { c };
                let mut j = i + 1;
                loop {
                    if j >= b.len() {
                        return Err(where_err(expr, i, "unterminated quote"));
                    }
                    if b[j] == close {
                        if close != b']' && j + 1 < b.len() && b[j + 1] == close {
                            j += 2;
                            continue;
                        }
                        break;
                    }
                    j += 1;
                }
                i = j + 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = b[i..].iter().position(|&x| x == b'\n').map_or(b.len(), |p| i + p);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = expr[i + 2..].find("*/").ok_or_else(|| where_err(expr, i, "unterminated comment"))?;
                i += 2 + end + 2;
            }
            b';' => return Err(where_err(expr, i, "';' is not allowed: give one expression")),
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                if depth == 0 {
                    return Err(where_err(expr, i, "')' has no matching '('"));
                }
                depth -= 1;
                i += 1;
            }
            c if c.is_ascii_digit() => {
                // A number, including forms like 1.5e3: never an identifier start.
                while i < b.len() && (ident_char(b[i]) || b[i] == b'.') {
                    i += 1;
                }
            }
            c if ident_char(c) => {
                let start = i;
                while i < b.len() && ident_char(b[i]) {
                    i += 1;
                }
                let word = &expr[start..i];
                let kind = if word.eq_ignore_ascii_case("metric") {
                    Some(RefKind::Metric)
                } else if word.eq_ignore_ascii_case("tag") {
                    Some(RefKind::Tag)
                } else {
                    None
                };
                let after_dot = start > 0 && b[start - 1] == b'.';
                if let (Some(kind), false, Some(b'.')) = (kind, after_dot, b.get(i)) {
                    let (key, end) = read_key(expr, i + 1)?;
                    out.push_str(&expr[copied..start]);
                    let (table, col) = match kind {
                        RefKind::Metric => ("metrics", "value"),
                        RefKind::Tag => ("tags", "value"),
                    };
                    let sub = format!(
                        "(SELECT {col} FROM {table} WHERE {table}.name = v.name AND {table}.version = v.version AND {table}.key = '{}')",
                        key.replace('\'', "''")
                    );
                    rewrites.push((out.len(), start, sub.len(), end - start));
                    out.push_str(&sub);
                    refs.insert((kind, key));
                    copied = end;
                    i = end;
                }
            }
            _ => i += 1,
        }
    }
    if depth != 0 {
        return Err(where_err(expr, expr.len(), "'(' is never closed"));
    }
    out.push_str(&expr[copied..]);
    Ok(CompiledWhere { sql: out, rewrites, refs })
}

/// Reads the KEY after `metric.` / `tag.` at byte `at`: `"quoted"` (with `""` for `"`) or bare
/// letters, digits, `_` and `.`. Returns the key and the byte just past it.
fn read_key(expr: &str, at: usize) -> Result<(String, usize)> {
    let b = expr.as_bytes();
    if b.get(at) == Some(&b'"') {
        let mut key = String::new();
        let mut j = at + 1;
        loop {
            match b.get(j) {
                None => return Err(where_err(expr, at, "unterminated quoted key")),
                Some(b'"') if b.get(j + 1) == Some(&b'"') => {
                    key.push('"');
                    j += 2;
                }
                Some(b'"') => break,
                Some(_) => {
                    let ch = expr[j..].chars().next().expect("in bounds");
                    key.push(ch);
                    j += ch.len_utf8();
                }
            }
        }
        if key.is_empty() {
            return Err(where_err(expr, at, "empty key"));
        }
        return Ok((key, j + 1));
    }
    let mut j = at;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'.') {
        j += 1;
    }
    while j > at && b[j - 1] == b'.' {
        j -= 1;
    }
    if j == at {
        return Err(where_err(
            expr,
            at,
            "a key must follow 'metric.' or 'tag.' (quote keys with other characters: metric.\"f1-score\")",
        ));
    }
    Ok((expr[at..j].to_string(), j))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_keeps_strings_and_maps_offsets() {
        let c = compile_where("metric.acc > 0.9 AND tag.env = 'metric.x'").unwrap();
        assert_eq!(c.refs.len(), 2);
        assert!(c.sql.ends_with("= 'metric.x'"));
        // The token after the first rewrite maps back to the user's text.
        let at = c.sql.find(" > 0.9").unwrap() + WHERE_PREFIX.len();
        assert_eq!(c.user_offset(at), Some(10));
    }

    #[test]
    fn quoted_and_dotted_keys() {
        let c = compile_where("metric.\"f1-score\" > 1 OR tag.a.b = 'x'").unwrap();
        let keys: Vec<_> = c.refs.iter().map(|(_, k)| k.as_str()).collect();
        assert_eq!(keys, ["f1-score", "a.b"]);
    }

    #[test]
    fn escapes_are_refused() {
        for bad in ["1); DROP TABLE x", "1) OR (1", "(1", "'abc", "metric.", "/* x"] {
            assert!(compile_where(bad).is_err(), "{bad}");
        }
    }
}
