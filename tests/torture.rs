//! Torture suite: crashes, corruption, tampering, concurrency and a full disk, all through the
//! `mvault` binary (or through redb for tampering), checking that the vault never panics, never
//! hangs, never loses a committed version and never writes out a wrong byte.
//!
//! Run it in release mode (debug builds of redb panic on some corruption on purpose):
//!
//! ```sh
//! cargo test --release --test torture -- --nocapture                      # bounded (CI, a few minutes)
//! MVAULT_TORTURE=long cargo test --release --test torture -- --nocapture  # long (about an hour)
//! MVAULT_TORTURE_SEED=0x1234 cargo test --release --test torture -- --nocapture  # replay a seed
//! ```
//!
//! | part                       | bounded (default)                | long (`MVAULT_TORTURE=long`)       |
//! |----------------------------|----------------------------------|-------------------------------------|
//! | crash: writers SIGKILLed   | 50 landed kills (+1 reopen kill each) | 400 landed kills (+1 reopen kill each) |
//! | (kill moments)             | drawn from each command's measured run; rotate/erase also in the rewrite window | same |
//! | corruption trials          | 500 (8 commands each)            | 5,000                               |
//! | tamper                     | fixed cases                      | same                                |
//! | concurrency rounds         | 1 of each scenario               | 5 of each scenario                  |
//! | disk full (root only)      | 1 tmpfs of 8 MiB                 | same                                |
//!
//! The seed is fixed in bounded mode (so CI is reproducible) and taken from the clock in long
//! mode; every part prints the seed it used, and `MVAULT_TORTURE_SEED` replays it. The random
//! generator is a 64-bit xorshift, so no crate is needed.
//!
//! Outcome tables go to stderr (visible with `--nocapture`); the assertions are on them: no panic
//! (exit 70 or a signal), no hang (20 s per command), no wrong byte written out, no lost version.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::tables::{CHUNKS, MODELS, VERSIONS};
use common::*;
use modelvault::{Error, GetOptions, NoProgress, PutOptions, VersionRef};
use redb::{ReadableDatabase, ReadableTable};

// ---------------------------------------------------------------------------------------------
// Modes, randomness, running the binary with a timeout
// ---------------------------------------------------------------------------------------------

fn long_mode() -> bool {
    std::env::var("MVAULT_TORTURE").is_ok_and(|v| v == "long")
}

/// (bounded, long)
fn sized(bounded: usize, long: usize) -> usize {
    if long_mode() { long } else { bounded }
}

/// The seed of one part: `MVAULT_TORTURE_SEED` if set (decimal or 0x-hex), else a fixed value
/// per part in bounded mode, the clock in long mode.
fn seed_for(part: &str, fixed: u64) -> u64 {
    let seed = match std::env::var("MVAULT_TORTURE_SEED") {
        Ok(s) => {
            let s = s.trim();
            match s.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16).expect("MVAULT_TORTURE_SEED: bad hex"),
                None => s.parse().expect("MVAULT_TORTURE_SEED: not a number"),
            }
        }
        Err(_) if long_mode() => {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
        }
        Err(_) => fixed,
    };
    let seed = seed.max(1);
    eprintln!(
        "torture {part}: mode {}, seed {seed:#x} (replay: MVAULT_TORTURE_SEED={seed:#x})",
        if long_mode() { "long" } else { "bounded" }
    );
    seed
}

/// xorshift64 (Marsaglia 2003).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform in `lo..hi` (hi exclusive; hi > lo).
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mvault")
}

/// Per-command timeout: a command that takes longer has hung.
const TIMEOUT: Duration = Duration::from_secs(20);

/// What one run of `mvault` did.
#[derive(Debug)]
enum Exit {
    Code(i32),
    Signal,
    Hang,
}

struct Ran {
    exit: Exit,
    stdout: PathBuf,
    stderr: String,
}

impl Ran {
    fn code(&self) -> Option<i32> {
        match self.exit {
            Exit::Code(c) => Some(c),
            _ => None,
        }
    }
    fn ok(&self) -> bool {
        self.code() == Some(0)
    }
    fn out(&self) -> Vec<u8> {
        std::fs::read(&self.stdout).unwrap_or_default()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.out())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.out())))
    }
    fn describe(&self) -> String {
        format!("{:?}; stderr: {}", self.exit, self.stderr.trim())
    }
}

/// A way to run `mvault` against one vault with one passphrase file; stdout goes to a file so a
/// large `cat` never blocks on a pipe.
#[derive(Clone)]
struct Mv {
    vault: PathBuf,
    pass: PathBuf,
    work: PathBuf,
}

impl Mv {
    fn new(dir: &Path, vault: &Path) -> Mv {
        let pass = dir.join("passphrase");
        if !pass.exists() {
            std::fs::write(&pass, format!("{PASS}\n")).unwrap();
        }
        Mv { vault: vault.to_path_buf(), pass, work: dir.to_path_buf() }
    }

    fn command(&self, args: &[&str], tag: &str) -> (Command, PathBuf, PathBuf) {
        let out = self.work.join(format!("stdout-{tag}"));
        let err = self.work.join(format!("stderr-{tag}"));
        let mut c = Command::new(bin());
        c.args(args)
            .env("MVAULT_VAULT", &self.vault)
            .env("MVAULT_PASSPHRASE_FILE", &self.pass)
            .env_remove("MVAULT_PASSPHRASE")
            .env_remove("MVAULT_PASSPHRASE_FD")
            .current_dir(&self.work)
            .stdin(Stdio::null())
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap());
        (c, out, err)
    }

    /// Runs to completion, or kills after [`TIMEOUT`] and reports a hang.
    fn run(&self, args: &[&str]) -> Ran {
        self.run_tagged(args, "main")
    }

    fn run_tagged(&self, args: &[&str], tag: &str) -> Ran {
        let (mut c, out, err) = self.command(args, tag);
        let mut child = spawn(&mut c);
        let deadline = Instant::now() + TIMEOUT;
        let exit = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break match st.code() {
                    Some(c) => Exit::Code(c),
                    None => Exit::Signal,
                };
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break Exit::Hang;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        Ran { exit, stdout: out, stderr: std::fs::read_to_string(&err).unwrap_or_default() }
    }

    /// Starts `args` and SIGKILLs it after `delay`; true if the kill landed (it was still running).
    fn run_and_kill(&self, args: &[&str], delay: Duration) -> bool {
        self.run_and_kill_at(args, KillAt::After(delay)).landed
    }

    /// Starts `args` and SIGKILLs it at `at`, watching for the fresh file of a whole-file rewrite
    /// meanwhile. A run that ends by itself first must not have crashed (exit 70 or a signal).
    fn run_and_kill_at(&self, args: &[&str], at: KillAt) -> Killed {
        let (mut c, _, err) = self.command(args, "killed");
        let fresh = modelvault::store::rewrite_path(&self.vault);
        let mut child = spawn(&mut c);
        let start = Instant::now();
        let mut fresh_seen = None;
        loop {
            let elapsed = start.elapsed();
            if let Some(st) = child.try_wait().unwrap() {
                assert!(
                    st.code().is_some() && st.code() != Some(70),
                    "{args:?} died on its own: {st:?}: {}",
                    std::fs::read_to_string(&err).unwrap_or_default()
                );
                return Killed { landed: false, elapsed, fresh_seen };
            }
            if fresh_seen.is_none() && fresh.exists() {
                fresh_seen = Some(elapsed);
            }
            let due = match at {
                KillAt::After(d) => elapsed >= d,
                KillAt::AfterFresh { delay, fallback } => match fresh_seen {
                    Some(t) => elapsed >= t + delay,
                    None => elapsed >= fallback,
                },
            };
            if due {
                break;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        let elapsed = start.elapsed();
        let landed = child.try_wait().unwrap().is_none();
        let _ = child.kill(); // SIGKILL
        let st = child.wait().unwrap();
        if !landed {
            assert!(
                st.code() != Some(70),
                "{args:?}: internal error: {}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        Killed { landed, elapsed, fresh_seen }
    }
}

/// When [`Mv::run_and_kill_at`] sends the SIGKILL.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// This long after the start.
    After(Duration),
    /// This long after the fresh file of a whole-file rewrite appears (the window from the copy
    /// through the rename), or `fallback` after the start if none appears.
    AfterFresh { delay: Duration, fallback: Duration },
}

/// How a run under [`Mv::run_and_kill_at`] ended.
#[derive(Debug, Clone, Copy)]
struct Killed {
    /// The kill landed: the command was still running.
    landed: bool,
    /// From the start to its end or to the kill.
    elapsed: Duration,
    /// When the rewrite's fresh file first appeared, from the start.
    fresh_seen: Option<Duration>,
}

/// Spawns, retrying for a few seconds if the binary is missing or busy for a moment (another
/// `cargo build` replacing it on a shared machine).
fn spawn(c: &mut Command) -> std::process::Child {
    for _ in 0..50 {
        match c.spawn() {
            Ok(child) => return child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(26) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => panic!("spawning {}: {e}", bin()),
        }
    }
    panic!("{} is missing", bin())
}

fn must(r: Ran, what: &str) -> Ran {
    assert!(r.ok(), "{what}: {}", r.describe());
    r
}

/// Versions listed by `ls --json`: (name, version) -> SHA-256 of its first file.
fn listing(mv: &Mv) -> BTreeMap<(String, u64), String> {
    let r = must(mv.run(&["ls", "--json"]), "ls --json");
    let j = r.json();
    let mut out = BTreeMap::new();
    for m in j["models"].as_array().unwrap() {
        for v in m["versions"].as_array().unwrap() {
            out.insert(
                (v["name"].as_str().unwrap().to_string(), v["version"].as_u64().unwrap()),
                v["files"][0]["sha256"].as_str().unwrap().to_string(),
            );
        }
    }
    out
}

fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(mut fa), Ok(mut fb)) = (File::open(a), File::open(b)) else { return false };
    if fa.metadata().unwrap().len() != fb.metadata().unwrap().len() {
        return false;
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba).unwrap();
        if n == 0 {
            return true;
        }
        fb.read_exact(&mut bb[..n]).unwrap();
        if ba[..n] != bb[..n] {
            return false;
        }
    }
}

/// Is the file at `a` a prefix of the file at `b`?
fn is_prefix(a: &Path, b: &Path) -> bool {
    let x = std::fs::read(a).unwrap_or_default();
    let y = std::fs::read(b).unwrap();
    x.len() <= y.len() && y[..x.len()] == x[..]
}

fn cat_matches(mv: &Mv, spec: &str, original: &Path) {
    let r = must(mv.run(&["cat", spec]), &format!("cat {spec}"));
    assert!(same_file(&r.stdout, original), "cat {spec}: the bytes differ from {}", original.display());
}

fn minilm() -> PathBuf {
    corpus().join("safetensors/all-MiniLM-L6-v2.model.safetensors")
}

fn silero() -> PathBuf {
    corpus().join("safetensors/silero_vad_16k.safetensors")
}

/// A copy of MiniLM with one byte of every 64 KiB of tensor data changed, so no chunk is shared
/// with the original or another variant: a put of it writes all 87 MiB.
fn minilm_variant(dir: &Path, k: u8) -> PathBuf {
    let p = dir.join(format!("minilm-{k}.safetensors"));
    if !p.exists() {
        let mut b = std::fs::read(minilm()).unwrap();
        let start = 8 + u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
        let mut i = start + 17;
        while i < b.len() {
            b[i] ^= k;
            i += 65536;
        }
        std::fs::write(&p, b).unwrap();
    }
    p
}

/// A scratch directory: in /dev/shm when it exists (fsync is free there, which keeps the
/// corruption trials fast), else the default temporary directory.
fn fast_tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::Builder::new().prefix("mvault-torture").tempdir_in(shm)
    {
        return d;
    }
    tempfile::tempdir().unwrap()
}

fn init(mv: &Mv) {
    must(mv.run(&["init", "--argon2-memory-kib", "256", "--argon2-time", "1", "--argon2-lanes", "1"]), "init");
}

// ---------------------------------------------------------------------------------------------
// Crash: every writer SIGKILLed at random moments, and the reopen after it killed too (B17)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    PutMinilm,
    PutSmall,
    Tag,
    Alias,
    Rm,
    Gc,
    Rotate,
    Passwd,
    Erase,
    /// `key rotate` killed in its rewrite window (from the fresh file's appearance to the rename).
    RotateRewrite,
    /// `rm --erase` killed in its rewrite window.
    EraseRewrite,
}

impl Op {
    /// The command this kill point runs (the rewrite-window kill points run rotate and erase).
    fn command(self) -> Op {
        match self {
            Op::RotateRewrite => Op::Rotate,
            Op::EraseRewrite => Op::Erase,
            o => o,
        }
    }
}

/// How long one unkilled run of a command took, and when its rewrite's fresh file appeared.
#[derive(Debug, Clone, Copy)]
struct Measured {
    total: Duration,
    fresh: Option<Duration>,
}

#[test]
fn crash_every_writer_at_random_moments() {
    let want_kills = sized(50, 400);
    let mut rng = Rng(seed_for("crash", 0x5eed_c7a5_0001));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let vault = d.join("test.mvault");
    let mv = Mv::new(d, &vault);
    init(&mv);
    let pass_a = mv.pass.clone();
    let pass_b = d.join("passphrase-b");
    std::fs::write(&pass_b, "another passphrase\n").unwrap();
    let mut mv = mv;
    let variants: Vec<PathBuf> = (1..=3).map(|k| minilm_variant(d, k)).collect();
    // What each stored version must read back as.
    let mut source: BTreeMap<String, PathBuf> = BTreeMap::new(); // sha256 -> original
    let silero_arg = silero().display().to_string();
    must(mv.run(&["put", "-q", &silero_arg, "--name", "s"]), "first put");
    let first = listing(&mv);
    source.insert(first.values().next().unwrap().clone(), silero());
    let mut expected = first; // versions committed so far

    let mut stats: BTreeMap<Op, (u32, u32)> = BTreeMap::new(); // op -> (kills landed, ran to the end)
    let mut reopen_kills = 0u32;
    // Kill moments come from measured durations, never from assumed ones: the last unkilled run
    // of each command (with or without the 87 MiB model in the vault) sets the range its kills
    // are drawn from, and a command not measured yet runs once to the end first.
    let mut measured: BTreeMap<(Op, bool), Measured> = BTreeMap::new();
    let mut verify_took = Duration::from_millis(400);
    // Erasures killed after their removal committed: finished by `rm --erase --resume`, by the
    // next writer.
    let (mut erase_unfinished, mut erase_by_resume, mut erase_by_writer) = (0u32, 0u32, 0u32);
    let mut iterations = 0usize;
    let mut kills = 0usize;
    let started = Instant::now();
    // Until enough kills landed, and at least five of them in the middle of a MiniLM put (the
    // put gets faster over time; a fixed number of runs would leave it untested).
    let minilm_kills = |stats: &BTreeMap<Op, (u32, u32)>| stats.get(&Op::PutMinilm).map_or(0, |s| s.0);
    while kills < want_kills || minilm_kills(&stats) < 5 || erase_by_resume < 1 || erase_by_writer < 1 {
        iterations += 1;
        assert!(iterations < want_kills * 4, "too few kills landed: {kills} in {iterations} runs");
        let live_minilm: Vec<u64> = expected.keys().filter(|(n, _)| n == "minilm").map(|(_, v)| *v).collect();
        let mut ops = vec![
            Op::PutSmall,
            Op::Tag,
            Op::Alias,
            Op::Gc,
            Op::Gc,
            Op::Passwd,
            Op::Rotate,
            Op::Erase,
            Op::RotateRewrite,
            Op::EraseRewrite,
        ];
        if live_minilm.is_empty() {
            ops.extend([Op::PutMinilm; 6]);
        }
        if !live_minilm.is_empty() {
            ops.extend([Op::Rm, Op::Rm]);
        }
        let op = *rng.pick(&ops);
        let any_version = {
            let keys: Vec<&(String, u64)> = expected.keys().collect();
            keys.get(rng.below(keys.len().max(1))).map(|(n, v)| format!("{n}@{v}"))
        };
        // With no version left (an erase took the last), only a put makes sense.
        let op = if any_version.is_none() && matches!(op, Op::Tag | Op::Alias | Op::Erase | Op::EraseRewrite) {
            Op::PutSmall
        } else {
            op
        };
        let variant = rng.below(variants.len());
        let other_pass = if mv.pass == pass_a { pass_b.clone() } else { pass_a.clone() };
        let args: Vec<String> = match op.command() {
            Op::PutMinilm => vec![
                "put".into(),
                "-q".into(),
                variants[variant].display().to_string(),
                "--name".into(),
                "minilm".into(),
            ],
            Op::PutSmall => {
                vec!["put".into(), "-q".into(), silero().display().to_string(), "--name".into(), "s".into()]
            }
            Op::Tag => vec!["tag".into(), any_version.clone().unwrap(), format!("k{}=v", rng.below(5))],
            Op::Alias => vec!["alias".into(), any_version.clone().unwrap(), format!("a{}", rng.below(3))],
            Op::Rm => vec!["rm".into(), format!("minilm@{}", live_minilm[0]), "--yes".into()],
            Op::Gc => vec!["gc".into(), "-q".into()],
            Op::Rotate | Op::RotateRewrite => vec!["key".into(), "rotate".into(), "-q".into()],
            Op::Passwd => {
                vec!["key".into(), "passwd".into(), "--new-passphrase-file".into(), other_pass.display().to_string()]
            }
            Op::Erase | Op::EraseRewrite => {
                let target = if !live_minilm.is_empty() && rng.below(2) == 0 {
                    format!("minilm@{}", live_minilm[0])
                } else {
                    let smalls: Vec<u64> = expected.keys().filter(|(n, _)| n == "s").map(|(_, v)| *v).collect();
                    match smalls.first() {
                        Some(v) if smalls.len() > 1 => format!("s@{v}"),
                        _ => any_version.clone().unwrap(),
                    }
                };
                vec!["rm".into(), target, "--erase".into(), "--yes".into()]
            }
        };
        // A third of the big puts run to the end (so `rm`, `gc`, `rm --erase` and `key rotate` have
        // 87 MiB to work on), and so does the first run of each command (to measure it); the rest
        // are killed at a moment drawn from the measured run (B17: from early on to its end), or,
        // for the rewrite-window kill points, from the fresh file's appearance to past the rename.
        let key = (op.command(), !live_minilm.is_empty());
        let at = match (op, measured.get(&key)) {
            (Op::PutMinilm, _) if rng.below(3) == 0 => KillAt::After(Duration::from_secs(60)),
            (_, None) => KillAt::After(Duration::from_secs(60)),
            (Op::RotateRewrite | Op::EraseRewrite, Some(m)) => {
                let window = m.fresh.map_or(m.total / 4, |f| m.total.saturating_sub(f));
                let hi = window.as_micros() as u64 * 11 / 10 + 2;
                KillAt::AfterFresh { delay: Duration::from_micros(rng.range(0, hi)), fallback: m.total.mul_f64(0.9) }
            }
            (_, Some(m)) => {
                let hi = (m.total.as_micros() as u64).max(100);
                KillAt::After(Duration::from_micros(rng.range(hi / 50, hi)))
            }
        };
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = mv.run_and_kill_at(&argv, at);
        let landed = run.landed;
        if !landed {
            measured.insert(key, Measured { total: run.elapsed, fresh: run.fresh_seen });
        }
        let delay = run.elapsed;
        let e = stats.entry(op).or_default();
        if landed {
            e.0 += 1;
            kills += 1;
            if kills.is_multiple_of(10) {
                eprintln!("crash: {kills} kills landed, {:.0?}", started.elapsed());
            }
        } else {
            e.1 += 1;
        }
        if landed {
            // B17: kill the reopen (and redb's repair) too, then reopen for real.
            let mv2 = mv.clone();
            let other = Mv { pass: other_pass.clone(), ..mv.clone() };
            for m in [&mv2, &other] {
                let hi = verify_took.as_micros() as u64 + 1;
                if m.run_and_kill(&["verify", "--read-data", "-q"], Duration::from_micros(rng.range(0, hi))) {
                    reopen_kills += 1;
                    break;
                }
            }
        }
        // Which passphrase opens it now (a killed passwd leaves the old one or the new one).
        let probe = mv.run(&["key", "list", "--json"]);
        assert!(probe.ok(), "after {op:?} (kill at {delay:?}): key list: {}", probe.describe());
        let rotating = probe.json().as_array().unwrap().iter().any(|s| s["rotating"] == true);
        let unlocks = mv.run(&["signer", "show"]);
        if unlocks.code() == Some(3) {
            assert_eq!(op, Op::Passwd, "after {op:?}: the passphrase stopped working: {}", unlocks.describe());
            mv.pass = other_pass.clone();
        } else {
            assert!(unlocks.ok(), "after {op:?} (kill at {delay:?}): the vault does not open: {}", unlocks.describe());
        }
        let verify_started = Instant::now();
        let mut verify = mv.run(&["verify", "--read-data"]);
        verify_took = verify_started.elapsed();
        let unfinished =
            String::from_utf8_lossy(&verify.out()).contains("run `mvault rm --erase --resume` to finish it");
        if !verify.ok() && unfinished {
            assert!(matches!(op, Op::Erase | Op::EraseRewrite), "after {op:?}: an erasure is unfinished");
            assert_eq!(verify.code(), Some(6), "verify of an unfinished erasure: {}", verify.describe());
            erase_unfinished += 1;
            if rng.below(2) == 0 {
                let r = must(mv.run(&["rm", "--erase", "--resume"]), "rm --erase --resume");
                let out = String::from_utf8_lossy(&r.out()).into_owned();
                assert!(out.contains("finished erasing"), "rm --erase --resume: {out}");
                erase_by_resume += 1;
            } else {
                let r = must(mv.run(&["gc", "-q"]), "gc after an unfinished erasure");
                assert!(r.stderr.contains("finishing an interrupted erasure first"), "gc: {}", r.describe());
                erase_by_writer += 1;
            }
            verify = mv.run(&["verify", "--read-data"]);
        }
        assert!(
            verify.ok(),
            "iteration {iterations}: after {op:?} {args:?} killed at {delay:?}: verify --read-data: {} {}",
            verify.describe(),
            String::from_utf8_lossy(&verify.out())
        );
        if rotating {
            must(mv.run(&["key", "rotate", "--resume", "-q"]), "key rotate --resume");
            must(mv.run(&["verify", "--read-data", "-q"]), "verify after resume");
        }
        let now = listing(&mv);
        // Every version committed before stays, except the one this writer was removing.
        let may_go: Option<(String, u64)> = match op {
            Op::Rm | Op::Erase | Op::EraseRewrite => {
                let t = &args[1];
                let (n, v) = t.split_once('@').unwrap();
                Some((n.to_string(), v.parse().unwrap()))
            }
            _ => None,
        };
        for (k, sha) in &expected {
            if Some(k) == may_go.as_ref() {
                continue;
            }
            assert_eq!(now.get(k), Some(sha), "after {op:?} killed at {delay:?}: {}@{} was lost or changed", k.0, k.1);
        }
        for (k, sha) in &now {
            if !expected.contains_key(k) {
                let may_appear = matches!(op, Op::PutMinilm | Op::PutSmall)
                    && k.0 == if op == Op::PutMinilm { "minilm" } else { "s" };
                assert!(may_appear, "after {op:?}: {}@{} appeared from nowhere", k.0, k.1);
                let src = if op == Op::PutMinilm { variants[variant].clone() } else { silero() };
                source.entry(sha.clone()).or_insert(src);
            }
        }
        // Every version there reads back byte for byte.
        for ((n, v), sha) in &now {
            let src = source.get(sha).unwrap_or_else(|| panic!("{n}@{v}: unknown SHA-256 {sha}"));
            cat_matches(&mv, &format!("{n}@{v}"), src);
        }
        expected = now;
    }
    eprintln!(
        "crash: {kills} kills landed in {iterations} runs, {reopen_kills} reopens killed, {:.0?}",
        started.elapsed()
    );
    eprintln!(
        "  erasures left unfinished: {erase_unfinished} ({erase_by_resume} finished by --resume, {erase_by_writer} by the next writer)"
    );
    eprintln!("  {:<14} {:>8} {:>14}", "writer", "killed", "ran to the end");
    for (op, (k, f)) in &stats {
        eprintln!("  {:<14} {:>8} {:>14}", format!("{op:?}"), k, f);
    }
    assert!(kills >= want_kills);
    assert!(stats.get(&Op::PutMinilm).is_some_and(|s| s.0 >= 5), "too few puts were killed: {stats:?}");
    assert!(reopen_kills >= 5, "too few reopens were killed: {reopen_kills}");
}

// ---------------------------------------------------------------------------------------------
// Corruption: random damage to a copy of a vault holding several models
// ---------------------------------------------------------------------------------------------

/// Exit codes README documents for errors.
const DOCUMENTED: [i32; 9] = [1, 2, 3, 4, 5, 6, 7, 8, 9];

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

/// Classifies a finished command. `clear error` needs a documented exit code and a message.
fn classify(r: &Ran) -> String {
    match r.exit {
        Exit::Hang => "hang".into(),
        Exit::Signal => "panic".into(),
        Exit::Code(0) => "ok".into(),
        Exit::Code(70) => "panic".into(),
        Exit::Code(c) if !DOCUMENTED.contains(&c) => "panic".into(),
        // `verify` reports damage on stdout ("DAMAGED model ..."), not as an error.
        Exit::Code(6) if String::from_utf8_lossy(&r.out()).contains("DAMAGED") => "exit 6".into(),
        // Errors print "mvault: error: ..."; `ls` and `gc` name damage as "mvault: damaged: ...".
        Exit::Code(c) if !r.stderr.contains("mvault: error:") && !r.stderr.contains("mvault: damaged:") => {
            let _ = c;
            "unclear error".into()
        }
        Exit::Code(c) => format!("exit {c}"),
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

#[test]
fn corruption_never_panics_hangs_or_writes_wrong_bytes() {
    let trials = sized(500, 5000);
    let mut rng = Rng(seed_for("corruption", 0x005e_edc0_4415));
    let dir = fast_tempdir();
    let d = dir.path();
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
    let extra = corpus().join("safetensors/silero_vad_16k.reheadered.safetensors");
    let extra_arg = extra.display().to_string();

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
        let file_name = file.file_name().unwrap().to_owned();
        let note = |tally: &mut Tally, cmd: &'static str, r: &Ran, wrong: bool| {
            let mut o = classify(r);
            if wrong {
                o = "wrong bytes".into();
            }
            if ["panic", "hang", "wrong bytes", "unclear error"].contains(&o.as_str()) {
                tally.failures.push(format!("trial {t} ({dmg}): {cmd} {spec}: {o}: {}", r.describe()));
                keep_failure(&trial_path, t);
            }
            tally.add(cmd, o);
        };
        let r = tmv.run(&["ls"]);
        note(&mut tally, "ls", &r, false);
        let r = tmv.run(&["show", spec]);
        note(&mut tally, "show", &r, false);
        // get: on success every file equals the original; on failure nothing is left at all.
        let r = tmv.run(&["get", spec, "-o", "out"]);
        let written = if d.join("out").exists() { files_under(&d.join("out")) } else { vec![] };
        let wrong = if r.ok() {
            written.len() != 1 || !same_file(&d.join("out").join(&file_name), &file)
        } else {
            !written.is_empty()
        };
        note(&mut tally, "get", &r, wrong);
        // cat: on success the whole original; on failure at most a correct prefix of it.
        let r = tmv.run(&["cat", spec]);
        let wrong = if r.ok() { !same_file(&r.stdout, &file) } else { !is_prefix(&r.stdout, &file) };
        note(&mut tally, "cat", &r, wrong);
        let r = tmv.run(&["verify", "--read-data"]);
        let verified = r.ok();
        note(&mut tally, "verify", &r, false);
        if verified {
            // A clean verify promises that every version reads back.
            for (spec, file) in &models {
                let r = tmv.run(&["cat", spec]);
                if !(r.ok() && same_file(&r.stdout, file)) {
                    verify_missed += 1;
                    tally.failures.push(format!("trial {t} ({dmg}): verify passed but cat {spec}: {}", r.describe()));
                }
            }
        }
        // Writers: a put that succeeds must read back; then gc.
        let r = tmv.run(&["put", "-q", &extra_arg, "--name", "x"]);
        let mut wrong = false;
        if r.ok() {
            let back = tmv.run(&["cat", "x"]);
            wrong = back.ok() && !same_file(&back.stdout, &extra);
        }
        note(&mut tally, "put", &r, wrong);
        let r = tmv.run(&["gc", "-q"]);
        note(&mut tally, "gc", &r, false);
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

// ---------------------------------------------------------------------------------------------
// Tamper: records and chunks moved by someone holding only the file (extends tests/tamper.rs)
// ---------------------------------------------------------------------------------------------

fn silero_and_onnx(dir: &Path) -> PathBuf {
    let (path, mut v) = new_vault(dir);
    v.put(&silero(), "s", &PutOptions::default(), &NoProgress).unwrap();
    v.put(&corpus().join("onnx/silero_vad.onnx"), "m", &PutOptions::default(), &NoProgress).unwrap();
    path
}

fn chunk_ids_of(path: &Path, name: &str, r: VersionRef) -> Vec<[u8; 32]> {
    let v = reopen(path);
    v.manifest(name, &r).unwrap().files[0].chunks.iter().map(|c| c.id).collect()
}

fn raw_get<K: redb::Key + 'static>(path: &Path, def: redb::TableDefinition<K, &'static [u8]>) -> Vec<(Vec<u8>, Vec<u8>)>
where
    for<'a> K::SelfType<'a>: AsRef<[u8]>,
{
    let db = redb::Database::open(path).unwrap();
    let rx = db.begin_read().unwrap();
    let t = rx.open_table(def).unwrap();
    t.iter().unwrap().map(|r| r.unwrap()).map(|(k, v)| (k.value().as_ref().to_vec(), v.value().to_vec())).collect()
}

fn raw_put32(path: &Path, def: redb::TableDefinition<&'static [u8; 32], &'static [u8]>, rows: &[([u8; 32], Vec<u8>)]) {
    let db = redb::Database::open(path).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table(def).unwrap();
        for (k, v) in rows {
            t.insert(k, v.as_slice()).unwrap();
        }
    }
    tx.commit().unwrap();
}

fn raw_put40(path: &Path, rows: &[([u8; 40], Vec<u8>)]) {
    let db = redb::Database::open(path).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table(VERSIONS).unwrap();
        for (k, v) in rows {
            t.insert(k, v.as_slice()).unwrap();
        }
    }
    tx.commit().unwrap();
}

fn chunk_value(path: &Path, id: &[u8; 32]) -> Vec<u8> {
    let db = redb::Database::open(path).unwrap();
    let rx = db.begin_read().unwrap();
    let t = rx.open_table(CHUNKS).unwrap();
    t.get(id).unwrap().unwrap().value().to_vec()
}

fn damaged_get(path: &Path, dir: &Path, name: &str, r: VersionRef) -> String {
    let out = dir.join(format!("out-{name}-{}", rand_suffix()));
    let e = reopen(path).get(name, &r, &out, &GetOptions::default(), &NoProgress).unwrap_err();
    assert!(matches!(e, Error::Damaged(_)), "{name}: expected damage, got {e}");
    assert!(!out.exists() || files_under(&out).is_empty(), "{name}: a file was written");
    e.to_string()
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

#[test]
fn tamper_chunks_exchanged_between_two_models_fail_both() {
    let dir = tempfile::tempdir().unwrap();
    let path = silero_and_onnx(dir.path());
    let s = chunk_ids_of(&path, "s", VersionRef::Latest);
    let m = chunk_ids_of(&path, "m", VersionRef::Latest);
    let (sv, mv) = (chunk_value(&path, &s[3]), chunk_value(&path, &m[1]));
    raw_put32(&path, CHUNKS, &[(s[3], mv), (m[1], sv)]);
    let e = damaged_get(&path, dir.path(), "s", VersionRef::Latest);
    assert!(e.contains("chunk 4 of") && e.contains("authentication failed"), "{e}");
    let e = damaged_get(&path, dir.path(), "m", VersionRef::Latest);
    assert!(e.contains("chunk 2 of 5") && e.contains("authentication failed"), "{e}");
    let rep = reopen(&path).verify(true, &NoProgress).unwrap();
    let hurt: BTreeSet<String> = rep.problems.iter().filter_map(|p| p.model.clone()).collect();
    assert_eq!(hurt, BTreeSet::from(["m".to_string(), "s".to_string()]), "{:?}", rep.problems);
}

#[test]
fn tamper_a_version_rolled_back_to_an_older_signed_version_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (path, mut v) = new_vault(d);
    let changed = corpus().join("safetensors/silero_vad_16k.one-tensor-changed.safetensors");
    v.put(&silero(), "s", &PutOptions::default(), &NoProgress).unwrap();
    v.put(&changed, "s", &PutOptions::default(), &NoProgress).unwrap();
    drop(v);
    let rows = raw_get(&path, VERSIONS);
    assert_eq!(rows.len(), 2);
    let key = |i: usize| -> [u8; 40] { rows[i].0.as_slice().try_into().unwrap() };
    let (k1, k2) = if rows[0].0[39] == 1 { (0, 1) } else { (1, 0) };
    // The value of s@1 (validly signed, same model) at s@2's key: the "latest" rolls back.
    raw_put40(&path, &[(key(k2), rows[k1].1.clone())]);
    let v = reopen(&path);
    let e = v.show("s", &VersionRef::Latest).unwrap_err();
    assert!(matches!(e, Error::Damaged(_)) && e.to_string().contains("model 's' version 2"), "{e}");
    v.show("s", &VersionRef::Number(1)).unwrap();
    let rep = v.verify(true, &NoProgress).unwrap();
    assert_eq!(rep.problems.len(), 1, "{:?}", rep.problems);
    drop(v);
    // Through the CLI: `cat s` (latest) refuses with exit 6, `cat s@1` still reads.
    std::fs::rename(&path, d.join("cli.mvault")).unwrap();
    let mv = Mv::new(d, &d.join("cli.mvault"));
    let r = mv.run(&["cat", "s"]);
    assert_eq!(r.code(), Some(6), "{}", r.describe());
    assert!(std::fs::read(&r.stdout).unwrap().is_empty(), "cat wrote bytes of a rolled-back version");
    cat_matches(&mv, "s@1", &silero());
    assert_eq!(mv.run(&["verify"]).code(), Some(6));
}

#[test]
fn tamper_one_models_record_in_place_of_anothers_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = silero_and_onnx(dir.path());
    let rows = raw_get(&path, MODELS);
    assert_eq!(rows.len(), 2);
    let k0: [u8; 32] = rows[0].0.as_slice().try_into().unwrap();
    raw_put32(&path, MODELS, &[(k0, rows[1].1.clone())]);
    let v = reopen(&path);
    let e = v
        .list(None)
        .map(|_| ())
        .and_then(|_| v.show("s", &VersionRef::Latest).map(|_| ()))
        .and_then(|_| v.show("m", &VersionRef::Latest).map(|_| ()));
    assert!(matches!(e, Err(Error::Damaged(_)) | Err(Error::ModelNotFound(_))), "{e:?}");
    assert!(!v.verify(false, &NoProgress).unwrap().ok(), "verify must report the swapped model record");
}

#[test]
fn tamper_chunks_and_records_moved_between_two_vaults_with_one_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let a = silero_and_onnx(&a_dir);
    let b = silero_and_onnx(&b_dir);
    let sa = chunk_ids_of(&a, "s", VersionRef::Latest);
    let sb = chunk_ids_of(&b, "s", VersionRef::Latest);
    assert_ne!(sa[0], sb[0], "chunk ids are keyed per vault");
    // The same plaintext chunk, sealed by vault A, at vault B's id for it.
    let b_original = chunk_value(&b, &sb[2]);
    raw_put32(&b, CHUNKS, &[(sb[2], chunk_value(&a, &sa[2]))]);
    let e = damaged_get(&b, dir.path(), "s", VersionRef::Latest);
    assert!(e.contains("chunk 3 of") && e.contains("authentication failed"), "{e}");
    // Put B's own value back; A's chunk under A's id is referenced by nothing in B and missing
    // from B's chunk index: verify names it, gc deletes it, and the vault is clean.
    raw_put32(&b, CHUNKS, &[(sb[2], b_original), (sa[0], chunk_value(&a, &sa[0]))]);
    let mut v = reopen(&b);
    let problems = v.verify(true, &NoProgress).unwrap().problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].detail.contains("1 chunk(s) not indexed"), "{problems:?}");
    assert_eq!(v.gc().unwrap().chunks_removed, 1);
    assert!(v.verify(true, &NoProgress).unwrap().ok());
    drop(v);
    // A's version record of s@1 at B's key of s@1, and A's model record at B's key of s.
    let va = raw_get(&a, VERSIONS);
    let vb = raw_get(&b, VERSIONS);
    let ma = raw_get(&a, MODELS);
    let mb = raw_get(&b, MODELS);
    let mk_b: Vec<[u8; 32]> = mb.iter().map(|(k, _)| k.as_slice().try_into().unwrap()).collect();
    let vk_b: Vec<[u8; 40]> = vb.iter().map(|(k, _)| k.as_slice().try_into().unwrap()).collect();
    assert_eq!(va.len(), vb.len());
    let moved: Vec<([u8; 40], Vec<u8>)> = vk_b.iter().zip(va.iter()).map(|(k, (_, v))| (*k, v.clone())).collect();
    raw_put40(&b, &moved);
    let v = reopen(&b);
    for name in ["s", "m"] {
        let e = v.show(name, &VersionRef::Latest).unwrap_err();
        assert!(matches!(e, Error::Damaged(_)), "{name}: {e}");
    }
    let rep = v.verify(false, &NoProgress).unwrap();
    assert!(rep.problems.len() >= 2, "{:?}", rep.problems);
    drop(v);
    let moved: Vec<([u8; 32], Vec<u8>)> = mk_b.iter().zip(ma.iter()).map(|(k, (_, v))| (*k, v.clone())).collect();
    raw_put32(&b, MODELS, &moved);
    let v = reopen(&b);
    assert!(
        v.list(None).is_err() || !v.verify(false, &NoProgress).unwrap().ok(),
        "A's model records in B went unnoticed"
    );
}

// ---------------------------------------------------------------------------------------------
// Concurrency: writers against writers, readers against a writer
// ---------------------------------------------------------------------------------------------

/// Small distinct model files (each put stores a distinct version).
fn small_files() -> Vec<PathBuf> {
    let c = corpus();
    vec![
        c.join("safetensors/silero_vad_16k.safetensors"),
        c.join("safetensors/silero_vad_16k.one-tensor-changed.safetensors"),
        c.join("safetensors/silero_vad_16k.reheadered.safetensors"),
        c.join("onnx/silero_vad.onnx"),
    ]
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
    let table = std::sync::Mutex::new(BTreeMap::<(String, String), u32>::new());
    let record = |scenario: &str, r: &Ran| {
        let o = match r.code() {
            Some(0) => "ok".to_string(),
            Some(4) if r.stderr.contains("in use") => "in use (4)".to_string(),
            _ => format!("FAIL {}", r.describe()),
        };
        *table.lock().unwrap().entry((scenario.to_string(), o)).or_default() += 1;
    };
    // name -> (version -> file) of every put that reported success
    let stored = std::sync::Mutex::new(BTreeMap::<(String, u64), PathBuf>::new());
    let put = |name: &str, f: &Path, wait: bool, scenario: &str, tag: &str| {
        let fa = f.display().to_string();
        let mut args = vec!["put", &fa, "--name", name, "--json", "-q"];
        if wait {
            args.extend(["--wait", "120"]);
        }
        let r = mv.run_tagged(&args, tag);
        record(scenario, &r);
        if r.ok() {
            let v = r.json()["version"].as_u64().unwrap();
            stored.lock().unwrap().insert((name.to_string(), v), f.to_path_buf());
        }
    };
    let read = |args: &[&str], scenario: &str, tag: &str| {
        let r = mv.run_tagged(args, tag);
        record(scenario, &r);
        r
    };
    for round in 0..rounds {
        // A: two writers and a reader, all with --wait: everyone gets the vault in turn.
        std::thread::scope(|s| {
            for w in 0..2 {
                let (put, files) = (&put, &files);
                s.spawn(move || {
                    for (i, f) in files.iter().enumerate() {
                        put(&format!("w{w}"), f, true, "A: 2 writers, --wait", &format!("a{w}-{i}"));
                    }
                });
            }
            s.spawn(|| {
                for i in 0..6 {
                    read(&["ls", "--wait", "120"], "A: reader, --wait", &format!("ar{i}"));
                }
            });
        });
        // B: two writers and a reader without --wait: each gets the vault or exit 4 at once.
        std::thread::scope(|s| {
            for w in 0..2 {
                let (put, files) = (&put, &files);
                s.spawn(move || {
                    for i in 0..6 {
                        put(
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
                    read(&["ls"], "B: reader, no wait", &format!("br{i}"));
                }
            });
        });
        // C: readers during a long writer (an 87 MiB put).
        std::thread::scope(|s| {
            let writer = s.spawn(|| put("big", &variant, true, "C: big writer", "cw"));
            std::thread::sleep(Duration::from_millis(150));
            let mut i = 0;
            while !writer.is_finished() {
                read(&["ls"], "C: reader during writer, no wait", &format!("cr{i}"));
                i += 1;
            }
            let r = read(&["cat", "w0@1", "--wait", "120"], "C: cat during writer, --wait", "cc");
            assert!(same_file(&r.stdout, &files[0]), "cat during a writer returned other bytes");
        });
        // D: puts against rm --erase and gc (which rewrite the whole file), all with --wait.
        for f in &files[..3] {
            put("q", f, true, "D: setup", "dq");
        }
        std::thread::scope(|s| {
            s.spawn(|| {
                for (i, f) in files.iter().enumerate() {
                    put("p", f, true, "D: put vs erase/gc", &format!("dp{i}"));
                }
            });
            s.spawn(|| {
                let qs: Vec<u64> = stored.lock().unwrap().keys().filter(|(n, _)| n == "q").map(|(_, v)| *v).collect();
                for (i, v) in qs.iter().take(2).enumerate() {
                    let spec = format!("q@{v}");
                    let r =
                        read(&["rm", "--yes", &spec, "--erase", "--wait", "120"], "D: erase vs put", &format!("de{i}"));
                    if r.ok() {
                        stored.lock().unwrap().remove(&("q".to_string(), *v));
                    }
                    read(&["gc", "-q", "--wait", "120"], "D: gc vs put", &format!("dg{i}"));
                }
            });
        });
        // Nothing that reported success is lost, and nothing else appeared.
        let now = listing(&mv);
        let stored = stored.lock().unwrap();
        for ((n, v), f) in stored.iter() {
            assert!(now.contains_key(&(n.clone(), *v)), "round {round}: {n}@{v} reported stored, now missing");
            cat_matches(&mv, &format!("{n}@{v}"), f);
        }
        for k in now.keys() {
            assert!(stored.contains_key(k), "round {round}: {}@{} was never reported stored", k.0, k.1);
        }
        must(mv.run(&["verify", "--read-data", "-q"]), "verify after concurrency");
    }
    let table = table.into_inner().unwrap();
    eprintln!("concurrency: {rounds} round(s)");
    eprintln!("  {:<36} {:<14} {:>5}", "scenario", "outcome", "count");
    for ((s, o), n) in &table {
        eprintln!("  {s:<36} {o:<14} {n:>5}");
    }
    let fails: Vec<_> = table.keys().filter(|(_, o)| o.starts_with("FAIL")).collect();
    assert!(fails.is_empty(), "{fails:?}");
    assert!(!table.keys().any(|(s, o)| s.contains("--wait") && o != "ok"), "--wait must always get the vault");
}

// ---------------------------------------------------------------------------------------------
// Disk full: a put into a small full filesystem fails cleanly and leaves the vault usable
// ---------------------------------------------------------------------------------------------

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// Unmounts on drop, also when the test fails.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Writes into `dir` until the filesystem is full; returns the filler's path.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let p = dir.join("filler");
    let mut f = File::create(&p).unwrap();
    let block = vec![0xa5u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
    p
}

#[test]
fn disk_full_put_fails_cleanly_and_the_vault_stays_usable() {
    if !is_root() {
        eprintln!("disk full: SKIPPED (needs root to mount a tmpfs)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mnt = d.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let st = Command::new("mount").args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"]).arg(&mnt).status();
    if !st.is_ok_and(|s| s.success()) {
        eprintln!("disk full: SKIPPED (mount -t tmpfs failed)");
        return;
    }
    let _guard = Mounted(mnt.clone());
    let mv = Mv::new(d, &mnt.join("test.mvault"));
    init(&mv);
    let files = small_files();
    let (s_arg, o_arg) = (files[0].display().to_string(), files[3].display().to_string());
    must(mv.run(&["put", "-q", &s_arg, "--name", "s"]), "put s");
    must(mv.run(&["put", "-q", &o_arg, "--name", "o"]), "put o");
    let mut rows: Vec<(String, String)> = Vec::new();
    let check_usable = |when: &str, rows: &mut Vec<(String, String)>| {
        for args in [&["ls"][..], &["verify", "--read-data"][..]] {
            let r = mv.run(args);
            rows.push((format!("{when}: {}", args.join(" ")), classify(&r)));
            assert!(r.ok(), "{when}: {args:?}: {}", r.describe());
        }
        cat_matches(&mv, "s@1", &files[0]);
        cat_matches(&mv, "o@1", &files[3]);
        rows.push((format!("{when}: cat s@1, o@1"), "ok (identical)".into()));
    };
    // 1. An 87 MiB put into 8 MiB.
    let big = minilm().display().to_string();
    let r = mv.run(&["put", "-q", &big, "--name", "big"]);
    rows.push(("put 87 MiB into an 8 MiB tmpfs".into(), format!("{} ({})", classify(&r), r.stderr.trim())));
    assert!(!r.ok(), "the put cannot have fit");
    assert_eq!(classify(&r), "exit 1", "{}", r.describe());
    // The cause, not redb's "Previous I/O error" from a later read (regression: src/ops/put.rs).
    assert!(r.stderr.contains("No space left on device"), "{}", r.describe());
    check_usable("after the failed put", &mut rows);
    // 2. A small put once the filesystem is completely full.
    let filler = fill(&mnt);
    let x_file = corpus().join("gguf/ggml-vocab-phi-3.gguf");
    let x_arg = x_file.display().to_string();
    let r = mv.run(&["put", "-q", &x_arg, "--name", "x"]);
    let put_ok = r.ok();
    rows.push(("small new put, filesystem 100% full".into(), format!("{} ({})", classify(&r), r.stderr.trim())));
    assert!(put_ok || classify(&r) == "exit 1", "{}", r.describe());
    let r = mv.run(&["verify", "--read-data"]);
    rows.push(("verify, filesystem 100% full".into(), format!("{} ({})", classify(&r), r.stderr.trim())));
    assert!(r.ok() || matches!(classify(&r).as_str(), "exit 1"), "{}", r.describe());
    let r = mv.run(&["gc"]);
    rows.push(("gc, filesystem 100% full".into(), format!("{} ({})", classify(&r), r.stderr.trim())));
    assert!(r.ok() || matches!(classify(&r).as_str(), "exit 1"), "{}", r.describe());
    // 3. Space back: everything committed is there and a put works again.
    std::fs::remove_file(&filler).unwrap();
    check_usable("after freeing space", &mut rows);
    if put_ok {
        cat_matches(&mv, "x@1", &x_file);
    }
    must(mv.run(&["put", "-q", &x_arg, "--name", "y"]), "put after freeing space");
    cat_matches(&mv, "y@1", &x_file);
    must(mv.run(&["verify", "--read-data", "-q"]), "final verify");
    eprintln!("disk full (tmpfs 8 MiB):");
    for (what, o) in &rows {
        eprintln!("  {what:<44} {o}");
    }
}

// ---------------------------------------------------------------------------------------------
// Regression: a corrupt page is an error at open, not a panic later (src/store/mod.rs open_db)
// ---------------------------------------------------------------------------------------------

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
