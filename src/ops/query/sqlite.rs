//! The in-memory SQLite database of the vault's metadata ([`MetaDb`]), its lock-down, and
//! running one statement within the time and memory limits. It must never let decrypted
//! metadata reach the disk and never let a query change anything:
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
//! - extension loading stays off (SQLite's default; `load_extension()` is also denied by name);
//! - strings and blobs are held to [`MAX_VALUE_BYTES`], SQL text to [`MAX_SQL_BYTES`], SQLite's
//!   heap to `PRAGMA hard_heap_limit`, and a statement's run to a deadline checked by a progress
//!   handler.
//!
//! It must never read the vault's storage: it sees only the tables `tables` filled.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::ValueRef;

use super::tables::fill_err;
use super::where_clause::{CompiledWhere, WHERE_PREFIX, WHERE_SUFFIX, visible};
use super::{MAX_SQL_BYTES, QueryLimits, QueryResult, SqlValue};
use crate::names::escape;
#[cfg(doc)]
use crate::vault::Vault;
use crate::{Error, Result};

/// Functions a query may not call: extension loading and FTS3's tokenizer pointer hook.
pub const DENIED_FUNCTIONS: &[&str] = &["load_extension", "fts3_tokenizer"];

/// Pragmas a query may run (read-only, schema introspection, no argument that sets anything).
pub const ALLOWED_PRAGMAS: &[&str] =
    &["table_info", "table_xinfo", "table_list", "index_list", "index_info", "function_list"];

/// Largest string or blob a query may build, in bytes (16 MiB), so `zeroblob(1e12)` fails
/// cleanly instead of exhausting memory.
pub const MAX_VALUE_BYTES: i32 = 16 << 20;

/// An in-memory, locked-down SQLite database of the vault's metadata. Build it with
/// [`Vault::metadata_db`]; it holds decrypted metadata, so it lives only in memory and is
/// dropped (and freed by SQLite) with this value.
pub struct MetaDb {
    pub(super) conn: Connection,
    pub(super) limits: QueryLimits,
    pub(super) deadline: Arc<Mutex<(Option<std::time::Instant>, bool)>>,
    /// The SQLite heap limit in force for this database, bytes (the lower of the requested one and
    /// any set earlier in the process).
    pub(super) heap_limit: i64,
    pub(super) refused: Arc<Mutex<Option<String>>>,
    pub(super) metric_keys: BTreeSet<String>,
    pub(super) tag_keys: BTreeSet<String>,
    pub(super) problems: Vec<String>,
}

impl std::fmt::Debug for MetaDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaDb").finish_non_exhaustive()
    }
}

impl MetaDb {
    /// Makes the connection read-only for good (see the module docs).
    pub(super) fn lock_down(&mut self) -> Result<()> {
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
    pub(super) fn select_versions(&self, expr: &str, compiled: &CompiledWhere) -> Result<BTreeSet<(String, u64)>> {
        let sql = format!("{WHERE_PREFIX}{}{WHERE_SUFFIX}", compiled.sql);
        let map = |o: usize| compiled.user_offset(o);
        let shown = |e| self.sql_error("", e, expr, &map).about(crate::Input::Condition);
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
            "{what} stopped: it needs more than the memory limit of {} MiB{}",
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
        .with_remedy(crate::Remedy::RaiseMemoryLimit)
    }

    fn lock_refused(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.refused.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Turns a SQLite error into one line naming the bad token and where it is in `user`.
    /// `map` takes a byte offset in the compiled SQL to a byte offset in `user`.
    fn sql_error(&self, what: &str, e: rusqlite::Error, user: &str, map: &dyn Fn(usize) -> Option<usize>) -> Error {
        if self.deadline.lock().unwrap_or_else(|p| p.into_inner()).1 {
            return Error::InvalidInput(format!(
                "{what} stopped: it ran past the time limit of {} s",
                self.limits.max_seconds
            ))
            .with_remedy(crate::Remedy::RaiseTimeLimit);
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
