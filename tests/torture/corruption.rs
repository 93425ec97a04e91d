//! Corruption: random bit flips, a zeroed 4 KiB page or a truncation in a copy of a vault
//! holding several models, then every reader and writer run on it; and, as regressions, zeroed
//! pages found at open rather than as a panic later (src/store/mod.rs `open_db`). The damage
//! is made on the bytes of the file, never through redb or the library.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use modelvault::{Error, NoProgress, PutOptions, VersionRef};

use crate::common::*;
use crate::harness::*;

#[derive(Default)]
struct Tally {
    /// command -> outcome -> count
    rows: BTreeMap<&'static str, BTreeMap<String, u32>>,
    failures: Vec<String>,
}

impl Tally {
    fn add(&mut self, cmd: &'static str, outcome: String) {
        *self.rows.entry(cmd).or_default().entry(outcome).or_default() += 1;
    }
    fn count(&self, outcome: &str) -> u32 {
        self.rows.values().filter_map(|r| r.get(outcome)).sum()
    }
    fn print(&self, title: &str) {
        let cols: BTreeSet<&String> = self.rows.values().flat_map(|r| r.keys()).collect();
        let fixed = ["ok", "panic", "hang", "wrong bytes", "unclear error"];
        let mut cols: Vec<&str> = cols.into_iter().map(String::as_str).filter(|c| !fixed.contains(c)).collect();
        cols.sort();
        let mut all = vec!["ok"];
        all.extend(cols);
        all.extend(&fixed[1..]);
        eprintln!("{title}");
        let mut line = format!("  {:<8}", "command");
        for c in &all {
            line += &format!(" {c:>13}");
        }
        eprintln!("{line}");
        for (cmd, r) in &self.rows {
            let mut line = format!("  {cmd:<8}");
            for c in &all {
                line += &format!(" {:>13}", r.get(*c).copied().unwrap_or(0));
            }
            eprintln!("{line}");
        }
    }
}

/// Originals of the corruption vault's models: spec -> file.
fn corruption_models() -> Vec<(&'static str, PathBuf)> {
    let c = corpus();
    vec![
        ("s@1", c.join("safetensors/silero_vad_16k.safetensors")),
        ("s@2", c.join("safetensors/silero_vad_16k.one-tensor-changed.safetensors")),
        ("o@1", c.join("onnx/silero_vad.onnx")),
        ("g@1", c.join("gguf/silero_vad_16k.from-safetensors.f16.gguf")),
        ("v@1", c.join("gguf/ggml-vocab-bert-bge.gguf")),
    ]
}

enum Damage {
    Flip(Vec<(usize, u8)>),
    ZeroPage(usize),
    Truncate(usize),
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::Flip(v) => {
                write!(f, "flip")?;
                for (at, x) in v {
                    write!(f, " {at:#x}^{x:#04x}")?;
                }
                Ok(())
            }
            Damage::ZeroPage(p) => write!(f, "zero page at {p:#x}"),
            Damage::Truncate(n) => write!(f, "truncate to {n} bytes"),
        }
    }
}

fn damage(rng: &mut Rng, len: usize) -> Damage {
    match rng.below(8) {
        0..=3 => {
            // A quarter of the flips land in the first 8 KiB: redb's header and commit slots.
            let most = if rng.below(2) == 0 { 1 } else { 16 };
            let n = 1 + rng.below(most);
            let near_header = rng.below(4) == 0;
            let v = (0..n)
                .map(|_| {
                    let at = if near_header { rng.below(8192.min(len)) } else { rng.below(len) };
                    let bit = 1u8 << rng.below(8);
                    let x = if rng.below(2) == 0 { bit } else { bit | rng.next() as u8 };
                    (at, x)
                })
                .collect();
            Damage::Flip(v)
        }
        4..=6 => Damage::ZeroPage(rng.below(len / 4096) * 4096),
        _ => Damage::Truncate(rng.below(len)),
    }
}

fn apply(d: &Damage, bytes: &mut Vec<u8>) {
    match d {
        Damage::Flip(v) => v.iter().for_each(|(at, x)| bytes[*at] ^= x),
        Damage::ZeroPage(p) => {
            let end = (*p + 4096).min(bytes.len());
            bytes[*p..end].fill(0)
        }
        Damage::Truncate(n) => bytes.truncate(*n),
    }
}

/// Keeps the damaged file of a failed trial in `target/tmp/torture-failures/` for replay (its
/// passphrase is `common::PASS`). The damage is printed too, but the base vault has random keys,
/// so the same seed damages different bytes of a new vault.
fn keep_failure(trial: &Path, t: usize) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("torture-failures");
    let _ = std::fs::create_dir_all(&dir);
    let dest = dir.join(format!("trial-{t}.mvault"));
    if !dest.exists() {
        let _ = std::fs::copy(trial, dest);
    }
}
/// One damaged copy of the base vault and the model the commands ask for.
struct Trial<'a> {
    t: usize,
    dmg: Damage,
    spec: &'a str,
    file: &'a Path,
    path: &'a Path,
}

impl Trial<'_> {
    /// Counts one command's outcome; a panic, hang, wrong byte or unclear error is a failure
    /// (and its damaged file is kept).
    fn note(&self, tally: &mut Tally, cmd: &'static str, r: &Ran, wrong: bool) {
        let mut o = classify(r);
        if wrong {
            o = "wrong bytes".into();
        }
        if ["panic", "hang", "wrong bytes", "unclear error"].contains(&o.as_str()) {
            tally.failures.push(format!("trial {} ({}): {cmd} {}: {o}: {}", self.t, self.dmg, self.spec, r.describe()));
            keep_failure(self.path, self.t);
        }
        tally.add(cmd, o);
    }
}

/// The base vault: every model of [`corruption_models`] tagged, one alias, verified intact.
fn corruption_base_vault(d: &Path) -> Vec<u8> {
    let base = d.join("base.mvault");
    let mv = Mv::new(d, &base);
    init(&mv);
    let models = corruption_models();
    for (spec, file) in &models {
        let name = spec.split('@').next().unwrap();
        let f = file.display().to_string();
        must(mv.run(&["put", "-q", &f, "--name", name, "--tag", "k=v"]), "put");
    }
    must(mv.run(&["alias", "s@1", "prod"]), "alias");
    must(mv.run(&["verify", "--read-data", "-q"]), "verify of the intact vault");
    let original = std::fs::read(&base).unwrap();
    eprintln!("corruption: base vault {} bytes, {} models", original.len(), models.len());
    original
}

/// The readers on a damaged vault: `ls`, `show`, `get` (every file equal to the original, or
/// nothing left at all), `cat` (the whole original, or at most a correct prefix of it), and
/// `verify --read-data`, whose pass promises that every version reads back. Returns how many
/// versions did not read back after a passing verify.
fn run_readers(tmv: &Mv, d: &Path, tr: &Trial, tally: &mut Tally) -> u32 {
    let (spec, file) = (tr.spec, tr.file);
    let file_name = file.file_name().unwrap().to_owned();
    let r = tmv.run(&["ls"]);
    tr.note(tally, "ls", &r, false);
    let r = tmv.run(&["show", spec]);
    tr.note(tally, "show", &r, false);
    let r = tmv.run(&["get", spec, "-o", "out"]);
    let written = if d.join("out").exists() { files_under(&d.join("out")) } else { vec![] };
    let wrong = if r.ok() {
        written.len() != 1 || !same_file(&d.join("out").join(&file_name), file)
    } else {
        !written.is_empty()
    };
    tr.note(tally, "get", &r, wrong);
    let r = tmv.run(&["cat", spec]);
    let wrong = if r.ok() { !same_file(&r.stdout, file) } else { !is_prefix(&r.stdout, file) };
    tr.note(tally, "cat", &r, wrong);
    let r = tmv.run(&["verify", "--read-data"]);
    let verified = r.ok();
    tr.note(tally, "verify", &r, false);
    let mut verify_missed = 0;
    if verified {
        for (spec, file) in &corruption_models() {
            let r = tmv.run(&["cat", spec]);
            if !(r.ok() && same_file(&r.stdout, file)) {
                verify_missed += 1;
                tally.failures.push(format!(
                    "trial {} ({}): verify passed but cat {spec}: {}",
                    tr.t,
                    tr.dmg,
                    r.describe()
                ));
            }
        }
    }
    verify_missed
}

/// The writers on a damaged vault: a put that succeeds must read back; then gc.
fn run_writers(tmv: &Mv, extra: &Path, tr: &Trial, tally: &mut Tally) {
    let extra_arg = extra.display().to_string();
    let r = tmv.run(&["put", "-q", &extra_arg, "--name", "x"]);
    let mut wrong = false;
    if r.ok() {
        let back = tmv.run(&["cat", "x"]);
        wrong = back.ok() && !same_file(&back.stdout, extra);
    }
    tr.note(tally, "put", &r, wrong);
    let r = tmv.run(&["gc", "-q"]);
    tr.note(tally, "gc", &r, false);
}

#[test]
fn corruption_never_panics_hangs_or_writes_wrong_bytes() {
    let trials = sized(500, 5000);
    let mut rng = Rng(seed_for("corruption", 0x005e_edc0_4415));
    let dir = fast_tempdir();
    let d = dir.path();
    let original = corruption_base_vault(d);
    let models = corruption_models();
    let extra = corpus().join("safetensors/silero_vad_16k.reheadered.safetensors");
    let trial_path = d.join("trial.mvault");
    let tmv = Mv::new(d, &trial_path);
    let mut tally = Tally::default();
    let mut verify_missed = 0u32;
    let started = Instant::now();
    for t in 0..trials {
        let dmg = damage(&mut rng, original.len());
        let mut bytes = original.clone();
        apply(&dmg, &mut bytes);
        std::fs::write(&trial_path, &bytes).unwrap();
        let _ = std::fs::remove_dir_all(d.join("out"));
        let (spec, file) = rng.pick(&models).clone();
        let tr = Trial { t, dmg, spec, file: &file, path: &trial_path };
        verify_missed += run_readers(&tmv, d, &tr, &mut tally);
        run_writers(&tmv, &extra, &tr, &mut tally);
    }
    let elapsed = started.elapsed();
    tally.print(&format!(
        "corruption: {trials} trials in {elapsed:.0?} (outcome per command; exit N = clear error with that code)"
    ));
    eprintln!("  verify --read-data passed but a version did not read back: {verify_missed}");
    for f in tally.failures.iter().take(if long_mode() { 200 } else { 60 }) {
        eprintln!("  FAIL {f}");
    }
    assert_eq!(tally.count("panic"), 0, "panics");
    assert_eq!(tally.count("hang"), 0, "hangs");
    assert_eq!(tally.count("wrong bytes"), 0, "wrong bytes");
    assert_eq!(tally.count("unclear error"), 0, "errors without a message");
    assert_eq!(verify_missed, 0, "verify passed on a vault that does not read back");
}

/// Zeroes each 4 KiB page of the first 512 KiB (where redb keeps its header, the table tree and
/// the branch pages) in turn and reads through the library. Before `open_db` turned on redb's
/// integrity check, zeroed pages here made redb panic in `btree.rs` / `btree_cursor.rs`.
#[test]
fn corrupt_pages_are_an_error_at_open_not_a_panic() {
    let dir = fast_tempdir();
    let (path, mut v) = new_vault(dir.path());
    v.put(&silero(), "s", &PutOptions::default(), &NoProgress).unwrap();
    v.put(&corpus().join("onnx/silero_vad.onnx"), "m", &PutOptions::default(), &NoProgress).unwrap();
    drop(v);
    let original = std::fs::read(&path).unwrap();
    let copy = dir.path().join("copy.mvault");
    let (mut opened, mut refused) = (0, 0);
    for page in (0..original.len().min(512 << 10)).step_by(4096) {
        let mut b = original.clone();
        b[page..page + 4096].fill(0);
        std::fs::write(&copy, &b).unwrap();
        let r = modelvault::Vault::open(&copy, &modelvault::OpenOptions::default()).and_then(|v| v.unlock(&pass()));
        match r {
            Ok(v) => {
                opened += 1;
                let _ = v.list(None);
                let mut sink = Vec::new();
                if v.cat("s", &VersionRef::Latest, None, &mut sink, &NoProgress).is_ok() {
                    assert_eq!(sink, std::fs::read(silero()).unwrap(), "page {page:#x}: wrong bytes");
                }
                let _ = v.verify(true, &NoProgress);
            }
            Err(e) => {
                refused += 1;
                assert!(
                    matches!(e, Error::Damaged(_) | Error::NotAVault { .. } | Error::KeySlotDamaged(_)),
                    "page {page:#x}: {e}"
                );
            }
        }
    }
    eprintln!("corrupt pages: {opened} opened (page unused), {refused} refused with an error");
}

/// A vault over the size checked page by page at open (64 MiB): a zeroed page that makes redb
/// panic must still come out as "damaged" (exit 6), never as an internal error (exit 70).
#[test]
fn corrupt_pages_in_a_large_vault_are_reported_as_damage() {
    let dir = fast_tempdir();
    let d = dir.path();
    std::fs::write(d.join("passphrase"), format!("{PASS}\n")).unwrap();
    let path = d.join("big.mvault");
    let run = |args: &[&str], vault: &Path| {
        Command::new(bin())
            .args(args)
            .env("MVAULT_VAULT", vault)
            .env("MVAULT_PASSPHRASE_FILE", d.join("passphrase"))
            .output()
            .unwrap()
    };
    let out = run(&["init", "--argon2-memory-kib", "256", "--argon2-time", "1", "--argon2-lanes", "1"], &path);
    assert!(out.status.success());
    let out = run(&["put", minilm().to_str().unwrap(), "--name", "m", "-q"], &path);
    assert!(out.status.success());
    let original = std::fs::read(&path).unwrap();
    assert!(original.len() as u64 > modelvault::store::INTEGRITY_CHECK_MAX_BYTES);
    let mut codes = BTreeMap::new();
    for page in 1..48usize {
        let mut bytes = original.clone();
        bytes[page * 4096..(page + 1) * 4096].fill(0);
        let copy = d.join("copy.mvault");
        std::fs::write(&copy, &bytes).unwrap();
        for cmd in [&["ls"][..], &["show", "m"], &["verify"]] {
            let out = run(cmd, &copy);
            let code = out.status.code().unwrap_or(-1);
            assert!(
                code == 0 || code == 6,
                "page {page}, {cmd:?}: exit {code}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            *codes.entry(code).or_insert(0) += 1;
        }
    }
    eprintln!("large vault, zeroed pages: exit codes {codes:?}");
}
