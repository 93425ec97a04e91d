//! The in-memory query tables: their schema ([`SCHEMA`]) and filling them from a metadata
//! snapshot ([`MetaDb::build`]), then handing the database to the lock-down.
//!
//! This module owns the mapping from manifests and model records to table rows. It must never
//! read the vault's storage (it sees only a [`Snapshot`] already checked), never open a database
//! other than `Connection::open_in_memory()`, and never hand out a database that has not been
//! locked down.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, Statement, Transaction, params};

use super::QueryLimits;
use super::chunk_index::{ChunkIndex, ChunkStat, VersionChunks};
use super::snapshot::{SnapModel, Snapshot};
use super::sqlite::MetaDb;
use crate::manifest::{FileEntry, Manifest, hex};
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

pub(super) fn fill_err(e: rusqlite::Error) -> Error {
    Error::InvalidInput(format!("building the in-memory query tables failed: {e}"))
}

impl MetaDb {
    /// Builds and locks down the database from a snapshot.
    pub(crate) fn build(snap: &Snapshot, limits: QueryLimits) -> Result<MetaDb> {
        if !(limits.max_seconds.is_finite() && limits.max_seconds > 0.0) || limits.max_memory_mib == 0 {
            return Err(Error::InvalidInput("query limits:".into()).with_remedy(crate::Remedy::FixQueryLimits));
        }
        let conn = Connection::open_in_memory().map_err(fill_err)?;
        // Before any table exists: keep every temporary structure in memory.
        conn.execute_batch("PRAGMA temp_store = MEMORY;").map_err(fill_err)?;
        conn.execute_batch(SCHEMA).map_err(fill_err)?;
        let keys = fill(&conn, snap)?;
        let refused = Arc::new(Mutex::new(None));
        let deadline = Arc::new(Mutex::new((None, false)));
        let mut db = MetaDb {
            conn,
            limits,
            deadline,
            heap_limit: 0,
            refused,
            metric_keys: keys.metrics,
            tag_keys: keys.tags,
            problems: snap.problems.clone(),
        };
        db.lock_down()?;
        Ok(db)
    }
}

/// The metric and tag keys some version has, collected while filling.
#[derive(Default)]
struct Keys {
    metrics: BTreeSet<String>,
    tags: BTreeSet<String>,
}

/// Fills every table from `snap` in one transaction.
fn fill(conn: &Connection, snap: &Snapshot) -> Result<Keys> {
    let index = ChunkIndex::build(snap);
    let mut keys = Keys::default();
    let tx = conn.unchecked_transaction().map_err(fill_err)?;
    let mut ins = Inserts::prepare(&tx)?;
    let mut vi = 0usize;
    for m in &snap.models {
        ins.model(m)?;
        for (man, signer) in &m.versions {
            ins.version(m, man, signer, &index.versions[vi], &mut keys)?;
            vi += 1;
        }
    }
    for (id, c) in &index.chunks {
        ins.chunk(id, c)?;
    }
    drop(ins);
    tx.commit().map_err(fill_err)?;
    Ok(keys)
}

/// The prepared INSERT statement of each table.
struct Inserts<'c> {
    model: Statement<'c>,
    version: Statement<'c>,
    file: Statement<'c>,
    tensor: Statement<'c>,
    alias: Statement<'c>,
    hist: Statement<'c>,
    tag: Statement<'c>,
    metric: Statement<'c>,
    chunk: Statement<'c>,
}

impl<'c> Inserts<'c> {
    fn prepare(tx: &'c Transaction<'_>) -> Result<Inserts<'c>> {
        Ok(Inserts {
            model: tx.prepare("INSERT INTO models VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)").map_err(fill_err)?,
            version: tx
                .prepare(
                    "INSERT INTO versions VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
                )
                .map_err(fill_err)?,
            file: tx.prepare("INSERT INTO files VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)").map_err(fill_err)?,
            tensor: tx
                .prepare("INSERT INTO tensors VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)")
                .map_err(fill_err)?,
            alias: tx.prepare("INSERT INTO aliases VALUES (?1, ?2, ?3)").map_err(fill_err)?,
            hist: tx.prepare("INSERT INTO alias_history VALUES (?1, ?2, ?3, ?4, ?5, ?6)").map_err(fill_err)?,
            tag: tx.prepare("INSERT INTO tags VALUES (?1, ?2, ?3, ?4)").map_err(fill_err)?,
            metric: tx.prepare("INSERT INTO metrics VALUES (?1, ?2, ?3, ?4)").map_err(fill_err)?,
            chunk: tx.prepare("INSERT INTO chunks VALUES (?1, ?2, ?3, ?4, ?5, ?6)").map_err(fill_err)?,
        })
    }

    /// The `models` row of `m`, and its `aliases` and `alias_history` rows.
    fn model(&mut self, m: &SnapModel) -> Result<()> {
        let name = m.rec.name.as_str();
        let logical: u64 = m.versions.iter().map(|(v, _)| v.total_size()).sum();
        self.model
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
            self.alias.execute(params![name, a, *v as i64]).map_err(fill_err)?;
        }
        for (seq, ev) in m.rec.alias_history.iter().enumerate() {
            self.hist
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
        Ok(())
    }

    /// The `versions` row of `man` (a version of `m`, signed by `signer`, with chunk facts
    /// `vs`), and its `files`, `tensors`, `tags` and `metrics` rows; adds its keys to `keys`.
    fn version(
        &mut self,
        m: &SnapModel,
        man: &Manifest,
        signer: &[u8; 32],
        vs: &VersionChunks,
        keys: &mut Keys,
    ) -> Result<()> {
        let name = m.rec.name.as_str();
        let ver = man.version as i64;
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
        self.version
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
            self.file(name, ver, f)?;
        }
        for (k, v) in &man.tags {
            keys.tags.insert(k.clone());
            self.tag.execute(params![name, ver, k, v]).map_err(fill_err)?;
        }
        for (k, v) in &man.metrics {
            keys.metrics.insert(k.clone());
            self.metric.execute(params![name, ver, k, v]).map_err(fill_err)?;
        }
        Ok(())
    }

    /// The `files` row of `f` (in model `name`, version `ver`) and its `tensors` rows.
    fn file(&mut self, name: &str, ver: i64, f: &FileEntry) -> Result<()> {
        self.file
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
            let shape = format!("[{}]", t.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(","));
            self.tensor
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
        Ok(())
    }

    /// The `chunks` row of chunk `id`.
    fn chunk(&mut self, id: &[u8; 32], c: &ChunkStat) -> Result<()> {
        self.chunk
            .execute(params![
                hex(id),
                c.plain_bytes as i64,
                c.stored_bytes() as i64,
                c.refcount as i64,
                c.versions as i64,
                c.models as i64
            ])
            .map_err(fill_err)?;
        Ok(())
    }
}
