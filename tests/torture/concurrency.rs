//! Concurrency: writers against writers, readers against a writer, all through the `mvault`
//! binary. Everyone who waits (`--wait`) gets the vault in turn; everyone who does not gets it
//! or exit 4 "in use" at once; nothing a put reported stored is lost and nothing else appears.
//! Never edits the file by hand.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::harness::*;

/// The vault under contention and what happened to it.
struct Contention {
    mv: Mv,
    /// (scenario, outcome) -> count
    table: Mutex<BTreeMap<(String, String), u32>>,
    /// (name, version) -> file of every put that reported success (and was not erased since)
    stored: Mutex<BTreeMap<(String, u64), PathBuf>>,
}

impl Contention {
    fn record(&self, scenario: &str, r: &Ran) {
        let o = match r.code() {
            Some(0) => "ok".to_string(),
            Some(4) if r.stderr.contains("in use") => "in use (4)".to_string(),
            _ => format!("FAIL {}", r.describe()),
        };
        *self.table.lock().unwrap().entry((scenario.to_string(), o)).or_default() += 1;
    }

    fn put(&self, name: &str, f: &Path, wait: bool, scenario: &str, tag: &str) {
        let fa = f.display().to_string();
        let mut args = vec!["put", &fa, "--name", name, "--json", "-q"];
        if wait {
            args.extend(["--wait", "120"]);
        }
        let r = self.mv.run_tagged(&args, tag);
        self.record(scenario, &r);
        if r.ok() {
            let v = r.json()["version"].as_u64().unwrap();
            self.stored.lock().unwrap().insert((name.to_string(), v), f.to_path_buf());
        }
    }

    fn read(&self, args: &[&str], scenario: &str, tag: &str) -> Ran {
        let r = self.mv.run_tagged(args, tag);
        self.record(scenario, &r);
        r
    }
}

#[test]
fn concurrency_nothing_is_lost_and_contention_is_a_clear_error() {
    let rounds = sized(1, 5);
    let _ = seed_for("concurrency", 1);
    let dir = fast_tempdir();
    let d = dir.path().to_path_buf();
    let vault = d.join("test.mvault");
    let mv = Mv::new(&d, &vault);
    init(&mv);
    let files = small_files();
    let variant = minilm_variant(&d, 7);
    let c = Contention { mv, table: Mutex::new(BTreeMap::new()), stored: Mutex::new(BTreeMap::new()) };
    for round in 0..rounds {
        two_writers_and_a_reader_waiting(&c, &files);
        two_writers_and_a_reader_not_waiting(&c, &files);
        readers_during_a_big_writer(&c, &files, &variant);
        puts_against_erase_and_gc(&c, &files);
        check_nothing_lost_and_nothing_appeared(&c, round);
    }
    let table = c.table.into_inner().unwrap();
    eprintln!("concurrency: {rounds} round(s)");
    eprintln!("  {:<36} {:<14} {:>5}", "scenario", "outcome", "count");
    for ((s, o), n) in &table {
        eprintln!("  {s:<36} {o:<14} {n:>5}");
    }
    let fails: Vec<_> = table.keys().filter(|(_, o)| o.starts_with("FAIL")).collect();
    assert!(fails.is_empty(), "{fails:?}");
    assert!(!table.keys().any(|(s, o)| s.contains("--wait") && o != "ok"), "--wait must always get the vault");
}

/// A: two writers and a reader, all with --wait: everyone gets the vault in turn.
fn two_writers_and_a_reader_waiting(c: &Contention, files: &[PathBuf]) {
    std::thread::scope(|s| {
        for w in 0..2 {
            s.spawn(move || {
                for (i, f) in files.iter().enumerate() {
                    c.put(&format!("w{w}"), f, true, "A: 2 writers, --wait", &format!("a{w}-{i}"));
                }
            });
        }
        s.spawn(|| {
            for i in 0..6 {
                c.read(&["ls", "--wait", "120"], "A: reader, --wait", &format!("ar{i}"));
            }
        });
    });
}

/// B: two writers and a reader without --wait: each gets the vault or exit 4 at once.
fn two_writers_and_a_reader_not_waiting(c: &Contention, files: &[PathBuf]) {
    std::thread::scope(|s| {
        for w in 0..2 {
            s.spawn(move || {
                for i in 0..6 {
                    c.put(
                        &format!("n{w}"),
                        &files[(i + w) % files.len()],
                        false,
                        "B: 2 writers, no wait",
                        &format!("b{w}-{i}"),
                    );
                }
            });
        }
        s.spawn(|| {
            for i in 0..10 {
                c.read(&["ls"], "B: reader, no wait", &format!("br{i}"));
            }
        });
    });
}

/// C: readers during a long writer (an 87 MiB put).
fn readers_during_a_big_writer(c: &Contention, files: &[PathBuf], variant: &Path) {
    std::thread::scope(|s| {
        let writer = s.spawn(|| c.put("big", variant, true, "C: big writer", "cw"));
        std::thread::sleep(Duration::from_millis(150));
        let mut i = 0;
        while !writer.is_finished() {
            c.read(&["ls"], "C: reader during writer, no wait", &format!("cr{i}"));
            i += 1;
        }
        let r = c.read(&["cat", "w0@1", "--wait", "120"], "C: cat during writer, --wait", "cc");
        assert!(same_file(&r.stdout, &files[0]), "cat during a writer returned other bytes");
    });
}

/// D: puts against rm --erase and gc (which rewrite the whole file), all with --wait.
fn puts_against_erase_and_gc(c: &Contention, files: &[PathBuf]) {
    for f in &files[..3] {
        c.put("q", f, true, "D: setup", "dq");
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            for (i, f) in files.iter().enumerate() {
                c.put("p", f, true, "D: put vs erase/gc", &format!("dp{i}"));
            }
        });
        s.spawn(|| {
            let qs: Vec<u64> = c.stored.lock().unwrap().keys().filter(|(n, _)| n == "q").map(|(_, v)| *v).collect();
            for (i, v) in qs.iter().take(2).enumerate() {
                let spec = format!("q@{v}");
                let r =
                    c.read(&["rm", "--yes", &spec, "--erase", "--wait", "120"], "D: erase vs put", &format!("de{i}"));
                if r.ok() {
                    c.stored.lock().unwrap().remove(&("q".to_string(), *v));
                }
                c.read(&["gc", "-q", "--wait", "120"], "D: gc vs put", &format!("dg{i}"));
            }
        });
    });
}

/// Nothing that reported success is lost (and it reads back), and nothing else appeared.
fn check_nothing_lost_and_nothing_appeared(c: &Contention, round: usize) {
    let now = listing(&c.mv);
    let stored = c.stored.lock().unwrap();
    for ((n, v), f) in stored.iter() {
        assert!(now.contains_key(&(n.clone(), *v)), "round {round}: {n}@{v} reported stored, now missing");
        cat_matches(&c.mv, &format!("{n}@{v}"), f);
    }
    for k in now.keys() {
        assert!(stored.contains_key(k), "round {round}: {}@{} was never reported stored", k.0, k.1);
    }
    must(c.mv.run(&["verify", "--read-data", "-q"]), "verify after concurrency");
}
