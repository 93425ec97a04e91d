//! `mvault query` and `ls --where`: the tables and their contents, output formats, the read-only
//! lock-down (no write, ATTACH, extension, or disk access), error messages that name the bad
//! token, alias history, and speed with many versions.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use modelvault::{NoProgress, PutOptions, SqlValue, Unlocked, Vault, VersionRef};

fn put_bytes(v: &mut Vault<Unlocked>, dir: &Path, name: &str, data: &[u8], opts: &PutOptions) -> u64 {
    let f = dir.join("weights.dat");
    std::fs::write(&f, data).unwrap();
    v.put(&f, name, opts, &NoProgress).unwrap().version
}

fn opts(tags: &[(&str, &str)], metrics: &[(&str, f64)], aliases: &[&str]) -> PutOptions {
    PutOptions {
        tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    }
}

/// A small vault: bert (3 versions), gpt (2 versions), with tags, metrics and aliases.
fn sample(dir: &Path) -> (PathBuf, Vault<Unlocked>) {
    let (path, mut v) = new_vault(dir);
    let s = dir.join("src");
    std::fs::create_dir_all(&s).unwrap();
    put_bytes(&mut v, &s, "bert", b"bert one", &opts(&[("env", "dev")], &[("accuracy", 0.81)], &[]));
    put_bytes(&mut v, &s, "bert", b"bert two!", &opts(&[("env", "prod")], &[("accuracy", 0.93)], &["prod"]));
    put_bytes(&mut v, &s, "bert", b"bert three", &opts(&[("env", "dev")], &[("accuracy", 0.95)], &[]));
    put_bytes(&mut v, &s, "gpt", b"gpt one", &opts(&[("env", "prod")], &[("accuracy", 0.91), ("f1-score", 0.5)], &[]));
    put_bytes(&mut v, &s, "gpt", b"gpt two", &opts(&[], &[("accuracy", 0.70)], &[]));
    (path, v)
}

fn text(v: &SqlValue) -> String {
    v.to_string()
}

fn err(v: &Vault<Unlocked>, sql: &str) -> String {
    v.query(sql).map(|r| format!("unexpectedly ran: {:?}", r.rows)).unwrap_or_else(|e| e.to_string())
}

#[test]
fn tables_hold_the_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = sample(dir.path());
    let r = v.query("SELECT name, version, size_bytes, format, sha256 IS NOT NULL, aliases FROM versions ORDER BY name, version").unwrap();
    assert_eq!(r.columns, ["name", "version", "size_bytes", "format", "sha256 IS NOT NULL", "aliases"]);
    assert_eq!(r.rows.len(), 5);
    assert_eq!(r.rows[1].iter().map(text).collect::<Vec<_>>(), ["bert", "2", "9", "opaque", "1", "prod"]);
    let best = v.query("SELECT name, version FROM metrics WHERE key = 'accuracy' ORDER BY value DESC LIMIT 1").unwrap();
    assert_eq!(best.rows[0], [SqlValue::Text("bert".into()), SqlValue::Integer(3)]);
    let m = v.query("SELECT typeof(value), value FROM metrics WHERE name = 'gpt' AND key = 'f1-score'").unwrap();
    assert_eq!(m.rows[0], [SqlValue::Text("real".into()), SqlValue::Real(0.5)]);
    let counts = v
        .query(
            "SELECT (SELECT count(*) FROM models), (SELECT count(*) FROM files), (SELECT count(*) FROM tags), \
             (SELECT count(*) FROM aliases), (SELECT count(*) FROM chunks), (SELECT count(*) FROM tensors)",
        )
        .unwrap();
    assert_eq!(counts.rows[0].iter().map(text).collect::<Vec<_>>(), ["2", "5", "4", "1", "5", "0"]);
    let c = v.query("SELECT stored_bytes - plain_bytes, refcount FROM chunks LIMIT 1").unwrap();
    assert_eq!(c.rows[0], [SqlValue::Integer(33), SqlValue::Integer(1)]);
    let models = v.query("SELECT name, versions, latest FROM models ORDER BY name").unwrap();
    assert_eq!(models.rows[1].iter().map(text).collect::<Vec<_>>(), ["gpt", "2", "2"]);
    assert!(r.problems.is_empty());
}

#[test]
fn metric_and_tag_updates_show_in_queries() {
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = sample(dir.path());
    v.set_metric("gpt", &VersionRef::Number(2), "accuracy", 0.99).unwrap();
    v.set_tag("gpt", &VersionRef::Number(2), "env", "prod").unwrap();
    let r = v
        .query("SELECT m.name, m.version FROM metrics m JOIN tags t USING (name, version) WHERE t.key = 'env' AND t.value = 'prod' AND m.key = 'accuracy' ORDER BY m.value DESC LIMIT 1")
        .unwrap();
    assert_eq!(r.rows[0], [SqlValue::Text("gpt".into()), SqlValue::Integer(2)]);
    let rev = v.query("SELECT revision FROM versions WHERE name = 'gpt' AND version = 2").unwrap();
    assert_eq!(rev.rows[0][0], SqlValue::Integer(2));
}

#[test]
fn alias_moves_are_kept_as_history() {
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = sample(dir.path());
    v.set_alias("bert", &VersionRef::Number(3), "prod").unwrap(); // 2 -> 3
    v.set_alias("bert", &VersionRef::Number(3), "prod").unwrap(); // no move: no event
    v.set_alias("bert", &VersionRef::Number(1), "old").unwrap(); // new
    v.remove_alias("bert", "old").unwrap(); // removed
    v.set_alias("bert", &VersionRef::Number(2), "canary").unwrap();
    v.remove_version("bert", &VersionRef::Number(2)).unwrap(); // drops canary
    let r = v
        .query("SELECT alias, from_version, to_version, at > 0 FROM alias_history WHERE name = 'bert' ORDER BY seq")
        .unwrap();
    let rows: Vec<Vec<String>> = r.rows.iter().map(|row| row.iter().map(text).collect()).collect();
    assert_eq!(
        rows,
        [
            ["prod", "", "2", "1"],
            ["prod", "2", "3", "1"],
            ["old", "", "1", "1"],
            ["old", "1", "", "1"],
            ["canary", "", "2", "1"],
            ["canary", "2", "", "1"],
        ]
    );
    let a = v.query("SELECT alias, version FROM aliases").unwrap();
    assert_eq!(a.rows, [[SqlValue::Text("prod".into()), SqlValue::Integer(3)]]);
}

#[test]
fn nothing_in_a_query_can_write() {
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = sample(dir.path());
    for sql in [
        "INSERT INTO tags VALUES ('bert', 1, 'x', 'y')",
        "UPDATE metrics SET value = 1",
        "DELETE FROM versions",
        "CREATE TABLE t (x)",
        "CREATE TEMP TABLE t (x)",
        "CREATE VIEW w AS SELECT 1",
        "DROP TABLE versions",
        "ALTER TABLE versions ADD COLUMN x",
        "CREATE INDEX i ON versions (size_bytes)",
        "CREATE TRIGGER tr AFTER INSERT ON tags BEGIN SELECT 1; END",
        "REPLACE INTO tags VALUES ('bert', 1, 'env', 'x')",
        "ANALYZE",
        "REINDEX",
        "BEGIN",
        "SAVEPOINT s",
        "PRAGMA query_only = OFF",
        "PRAGMA writable_schema = ON",
        "PRAGMA temp_store = FILE",
        "PRAGMA journal_mode = DELETE",
    ] {
        let e = err(&v, sql);
        assert!(e.contains("refused") || e.contains("not authorized"), "{sql}: {e}");
    }
    // The data is unchanged and a read still works afterwards.
    let n = v.query("SELECT count(*) FROM versions").unwrap();
    assert_eq!(n.rows[0][0], SqlValue::Integer(5));
}

#[test]
fn nothing_in_a_query_reaches_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = sample(dir.path());
    let target = dir.path().join("leak.db");
    let t = target.display().to_string();
    for sql in [
        format!("ATTACH DATABASE '{t}' AS leak"),
        format!("ATTACH '{t}' AS leak"),
        format!("VACUUM INTO '{t}'"),
        "VACUUM".to_string(),
        format!("SELECT load_extension('{t}')"),
        format!("SELECT load_extension('{t}', 'init')"),
        "SELECT fts3_tokenizer('simple')".to_string(),
        "DETACH DATABASE main".to_string(),
        "SELECT writefile('x', 'y')".to_string(),
        "SELECT readfile('/etc/passwd')".to_string(),
        "CREATE VIRTUAL TABLE f USING fts5(x)".to_string(),
    ] {
        let e = err(&v, &sql);
        assert!(e.starts_with("query"), "{sql}: {e}");
        assert!(!target.exists(), "{sql} created a file");
    }
    // Reading what the pragma functions expose is fine; they cannot set anything.
    let r = v.query("SELECT count(*) FROM pragma_table_info('versions')").unwrap();
    assert!(matches!(r.rows[0][0], SqlValue::Integer(n) if n > 10));
}

#[test]
fn one_statement_only() {
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = sample(dir.path());
    let e = err(&v, "SELECT 1; DELETE FROM versions");
    assert!(e.contains("more than one statement") || e.contains("refused"), "{e}");
    let e = err(&v, "SELECT 1; SELECT 2");
    assert!(e.contains("more than one statement"), "{e}");
    assert!(v.query("SELECT 1;").is_ok());
    let e = err(&v, "  -- nothing\n");
    assert!(e.contains("no SQL statement"), "{e}");
}

#[test]
fn syntax_errors_name_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = sample(dir.path());
    let e = err(&v, "SELECT name FORM versions");
    assert!(e.contains("near \"versions\": syntax error"), "{e}");
    assert!(e.contains("at character 18"), "{e}");
    let e = err(&v, "SELECT nope FROM versions");
    assert!(e.contains("no such column: nope"), "{e}");
    let e = err(&v, "SELECT * FROM nope");
    assert!(e.contains("no such table: nope"), "{e}");
    assert!(!e.contains('\n'));
}

#[test]
fn ls_where_filters_on_metrics_and_tags() {
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = sample(dir.path());
    let got = |expr: &str| -> BTreeMap<String, Vec<u64>> {
        v.list_where(None, expr)
            .unwrap()
            .listing
            .models
            .iter()
            .map(|m| (m.name.clone(), m.versions.iter().map(|x| x.version).collect()))
            .collect()
    };
    let m = got("metric.accuracy > 0.9 AND tag.env = 'prod'");
    assert_eq!(m, BTreeMap::from([("bert".into(), vec![2]), ("gpt".into(), vec![1])]));
    let m = got("metric.\"f1-score\" IS NOT NULL");
    assert_eq!(m, BTreeMap::from([("gpt".into(), vec![1])]));
    let m = got("name = 'bert' AND size_bytes >= 9 AND aliases = '' AND tag.env <> 'metric.accuracy'");
    assert_eq!(m, BTreeMap::from([("bert".into(), vec![3])]));
    let m = got("TAG.env IS NULL");
    assert_eq!(m, BTreeMap::from([("gpt".into(), vec![2])]));
    let only = v.list_where(Some("gpt"), "metric.accuracy > 0").unwrap();
    assert_eq!(only.listing.models.len(), 1);
    let w = v.list_where(None, "metric.acuracy > 0.9").unwrap();
    assert!(w.listing.models.is_empty());
    assert_eq!(w.unknown_keys, ["metric.acuracy"]);
}

#[test]
fn ls_where_errors_point_at_the_bad_token() {
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = sample(dir.path());
    let e = |expr: &str| v.list_where(None, expr).unwrap_err().to_string();
    let m = e("metric.accuracy > AND tag.env = 'prod'");
    assert!(m.contains("near \"AND\": syntax error at character 19"), "{m}");
    let m = e("metric.accuracy >> 'x' AND sise_bytes > 1");
    assert!(m.contains("no such column: sise_bytes"), "{m}");
    let m = e("1); DROP TABLE versions; --");
    assert!(m.contains("';' is not allowed") || m.contains("')' has no matching '('"), "{m}");
    let m = e("1) OR (1");
    assert!(m.contains("')' has no matching '(' at character 2"), "{m}");
    assert!(e("").contains("empty"));
    assert!(e("tag.env = 'prod").contains("unterminated quote at character 11"));
    assert!(e("metric. > 1").contains("a key must follow"));
    let m = e("(SELECT count(*) FROM versions, (SELECT load_extension('x')))");
    assert!(m.contains("refused"), "{m}");
    assert!(!m.contains('\n'));
    assert!(matches!(v.list_where(Some("nope"), "1"), Err(modelvault::Error::ModelNotFound(_))));
}

#[test]
fn cli_query_formats_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    drop(sample(d));
    let out = mvault(d)
        .args(["query", "SELECT name, version, description FROM versions WHERE name = 'gpt' ORDER BY version"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, ["name  version  description", "gpt         1", "gpt         2"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("(2 row(s))"));

    let out = mvault(d)
        .args(["query", "--csv", "SELECT name, version, 'a,\"b' AS odd FROM versions LIMIT 1"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "name,version,odd\nbert,1,\"a,\"\"b\"\n");

    let out = mvault(d)
        .args(["--json", "query", "SELECT name, value, NULL AS n FROM metrics WHERE key = 'f1-score'"])
        .output()
        .unwrap();
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["columns"], serde_json::json!(["name", "value", "n"]));
    assert_eq!(j["rows"], serde_json::json!([["gpt", 0.5, null]]));

    let out = mvault(d).args(["query", "DELETE FROM versions"]).output().unwrap();
    assert_eq!(out.status.code(), Some(7));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("query refused: DELETE from versions is not allowed"), "{e}");
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");

    let out = mvault(d).args(["--json", "query", "--csv", "SELECT 1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--csv and --json cannot be used together"));
}

#[test]
fn cli_ls_where() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    drop(sample(d));
    let out = mvault(d).args(["ls", "--where", "metric.accuracy > 0.9 AND tag.env = 'prod'"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.lines().any(|l| l.starts_with("bert ") && l.contains(" 2 ")));
    let out = mvault(d).args(["--json", "ls", "--where", "metric.acuracy > 1"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("note: no version has metric.acuracy"));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["models"], serde_json::json!([]));
    let out = mvault(d).args(["ls", "--where", "metric.accuracy > AND tag.env = 'prod'"]).output().unwrap();
    assert_eq!(out.status.code(), Some(7));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("--where: near \"AND\": syntax error at character 19"), "{e}");
}

#[test]
fn decrypted_metadata_never_reaches_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    drop(sample(d));
    let tmp = d.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    // A big sort and a big temporary b-tree: with temp_store=MEMORY neither spills.
    let sql = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 300000) \
               SELECT count(DISTINCT v.description || x), max(x) FROM n, versions v \
               WHERE v.name = 'gpt' GROUP BY x % 7 ORDER BY random() LIMIT 1";
    let out = mvault(d).env("TMPDIR", &tmp).env("SQLITE_TMPDIR", &tmp).args(["query", sql]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(files_under(&tmp).is_empty());
    // Only the vault file and the helper files exist beside it.
    let names: Vec<String> =
        std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| ["test.mvault", "passphrase", "src", "tmp"].contains(&n.as_str())), "{names:?}");
}

// ---------------------------------------------------------------------------------------------
// Speed.

/// A vault with `n` versions of small files spread over `n / 100` models (at least one), with a
/// tag, a metric and, on every tenth version, an alias. Returns the vault path.
pub fn many_versions(dir: &Path, n: usize) -> PathBuf {
    let (path, mut v) = new_vault(dir);
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let per_model = 100.min(n.max(1));
    for i in 0..n {
        let model = format!("model-{:05}", i / per_model);
        let env = if i % 3 == 0 { "prod" } else { "dev" };
        let acc = (i % 1000) as f64 / 1000.0;
        let aliases: &[&str] = if i % 10 == 0 { &["prod"] } else { &[] };
        let data = format!("weights of {model} number {i}");
        put_bytes(&mut v, &src, &model, data.as_bytes(), &opts(&[("env", env)], &[("accuracy", acc)], aliases));
    }
    path
}

/// Best of three wall-clock runs of the CLI (unlock included).
fn best_of_3(dir: &Path, args: &[&str]) -> Duration {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            let out = mvault(dir).args(args).output().unwrap();
            let e = t.elapsed();
            assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
            e
        })
        .min()
        .unwrap()
}

fn speed(n: usize, limit: Duration) {
    // Each put is a durable redb commit (fsync); on tmpfs, where fsync costs nothing, building
    // the vault takes a fraction of the time and the reads measured are the same.
    // MVAULT_SPEED_KEEP=1 keeps the vault (its path is printed), for profiling the commands.
    let shm = Path::new("/dev/shm");
    let mut dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
    if std::env::var_os("MVAULT_SPEED_KEEP").is_some() {
        dir.disable_cleanup(true);
        eprintln!("vault kept in {}", dir.path().display());
    }
    let t = Instant::now();
    many_versions(dir.path(), n);
    let build = t.elapsed();
    let d = dir.path();
    let ls = best_of_3(d, &["ls"]);
    let query = best_of_3(
        d,
        &["query", "SELECT name, max(value) FROM metrics WHERE key = 'accuracy' GROUP BY name ORDER BY 2 DESC LIMIT 5"],
    );
    let where_ = best_of_3(d, &["ls", "--where", "metric.accuracy > 0.9 AND tag.env = 'prod'"]);
    let show = best_of_3(d, &["show", "model-00000@1"]);
    eprintln!(
        "{n} versions: build {build:.1?}; ls {ls:.3?}, query {query:.3?}, ls --where {where_:.3?}, show {show:.3?}"
    );
    for (what, t) in [("ls", ls), ("query", query), ("ls --where", where_), ("show", show)] {
        if cfg!(debug_assertions) {
            continue; // timings mean something only in release builds
        }
        assert!(t < limit, "{what} over {n} versions took {t:?}");
    }
}

/// 1,000 versions: `ls`, `query` and `show` each well under a second (runs by default).
#[test]
fn speed_1k_versions() {
    speed(1_000, Duration::from_millis(500));
}

/// 10,000 versions: each under 1 s including unlock. Building the vault takes about a minute,
/// so run it on purpose: `cargo test --release --test query speed_10k -- --ignored --nocapture`.
#[test]
#[ignore]
fn speed_10k_versions() {
    speed(10_000, Duration::from_secs(1));
}

/// Any count, for figures only: `MVAULT_SPEED_N=100000 cargo test --release --test query
/// speed_n -- --ignored --nocapture` (no limit asserted).
#[test]
#[ignore]
fn speed_n_versions() {
    let n = std::env::var("MVAULT_SPEED_N").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    speed(n, Duration::from_secs(3600));
}

/// The worked examples of the README section run and give the expected answers.
#[test]
fn readme_examples() {
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = sample(dir.path());
    let rows = |sql: &str| -> Vec<Vec<String>> {
        v.query(sql).unwrap().rows.iter().map(|r| r.iter().map(text).collect()).collect()
    };
    // The best version by a metric.
    assert_eq!(
        rows("SELECT name, version, value AS accuracy FROM metrics WHERE key = 'accuracy' ORDER BY value DESC LIMIT 1"),
        [["bert", "3", "0.95"]]
    );
    // Models with a tag.
    assert_eq!(
        rows("SELECT DISTINCT name FROM tags WHERE key = 'env' AND value = 'prod' ORDER BY name"),
        [["bert"], ["gpt"]]
    );
    // Versions over 1 GB created in the last week (none here), and over 8 bytes (some).
    let week = "SELECT name, version, size_bytes, datetime(created, 'unixepoch') FROM versions \
                WHERE size_bytes > 1e9 AND created > unixepoch('now', '-7 days') ORDER BY size_bytes DESC";
    assert!(rows(week).is_empty());
    assert_eq!(rows(&week.replace("1e9", "9")).len(), 1);
    // The top 5 by accuracy per model (window function).
    let top = rows(
        "SELECT name, version, value FROM (SELECT name, version, value, \
         row_number() OVER (PARTITION BY name ORDER BY value DESC) AS rank FROM metrics WHERE key = 'accuracy') \
         WHERE rank <= 2 ORDER BY name, rank",
    );
    assert_eq!(top, [["bert", "3", "0.95"], ["bert", "2", "0.93"], ["gpt", "1", "0.91"], ["gpt", "2", "0.7"]]);
    // Where an alias has been.
    assert_eq!(
        rows("SELECT alias, from_version, to_version FROM alias_history WHERE name = 'bert'"),
        [["prod", "", "2"]]
    );
    // Chunks shared by more than one version.
    assert!(rows("SELECT id FROM chunks WHERE versions > 1").is_empty());
    // Tensors (none in opaque files) and files.
    assert_eq!(rows("SELECT count(*) FROM files WHERE format = 'opaque'"), [["5"]]);
}

#[test]
fn an_endless_recursive_query_stops_at_the_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = sample(dir.path());
    let sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c";
    let limits = modelvault::QueryLimits { max_seconds: 0.5, ..Default::default() };
    let started = Instant::now();
    let e = v.query_limited(sql, limits).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(cli_exit::message(&e).contains("time limit of 0.5 s; raise it with --max-seconds"), "{e}");
    assert!(e.to_string().ends_with("time limit of 0.5 s; raise the query's time limit (or narrow the query)"), "{e}");
    assert_eq!(e.exit_code(), 7);
    drop(v);
    let started = Instant::now();
    mvault(dir.path())
        .args(["query", "--max-seconds", "0.5", sql])
        .assert()
        .code(7)
        .stderr(predicates::str::contains("--max-seconds"));
    mvault(dir.path())
        .args(["ls", "--max-seconds", "0.5", "--where", "(SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c)) > 0"])
        .assert()
        .code(7)
        .stderr(predicates::str::contains("time limit"));
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// SQLite's heap limit is process-wide and can only be lowered, and the heap it bounds is every
/// connection's: run with the other tests of this binary, a 16 MiB limit (and a query filling it)
/// makes their queries fail with "out of memory". The checks run in a process of their own.
#[test]
fn a_query_that_needs_too_much_memory_stops_at_the_memory_limit() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "memory_limit_checks_in_a_process_of_their_own", "--ignored", "--test-threads=1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("1 passed"), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
#[ignore = "run in a process of its own by a_query_that_needs_too_much_memory_stops_at_the_memory_limit"]
fn memory_limit_checks_in_a_process_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = sample(dir.path());
    // A DISTINCT over 1M values of 1 KiB each builds a 1 GiB b-tree: far past a 16 MiB heap.
    let sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 1000000) \
               SELECT count(DISTINCT randomblob(1024)) FROM c";
    let limits = modelvault::QueryLimits { max_memory_mib: 16, max_seconds: 60.0 };
    let e = v.query_limited(sql, limits).unwrap_err();
    assert!(cli_exit::message(&e).contains("memory limit of 16 MiB; raise it with --max-memory-mib"), "{e}");
    assert!(e.to_string().contains("memory limit of 16 MiB; raise the query's memory limit"), "{e}");
    assert_eq!(e.exit_code(), 7);
    // Rows collected count too: 100k rows of 1 KiB is past 16 MiB.
    let many = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 100000) SELECT hex(zeroblob(512)) FROM c";
    let e = v.query_limited(many, limits).unwrap_err();
    assert!(e.to_string().contains("memory limit of 16 MiB"), "{e}");
    // An ordinary query still runs afterwards.
    assert_eq!(v.query("SELECT count(*) FROM versions").unwrap().rows[0][0], SqlValue::Integer(5));
    // SQLite can lower its process-wide heap limit but never raise it: a later, larger limit in the
    // same process is held to the lower one, and the error says so instead of naming a limit that
    // was not in force.
    let e = v.query_limited(sql, modelvault::QueryLimits { max_memory_mib: 512, max_seconds: 60.0 }).unwrap_err();
    assert!(e.to_string().contains("memory limit of 512 MiB (SQLite's heap is held to 16 MiB"), "{e}");
    drop(v);
    mvault(dir.path())
        .args(["query", "--max-memory-mib", "16", sql])
        .assert()
        .code(7)
        .stderr(predicates::str::contains("--max-memory-mib"));
}
