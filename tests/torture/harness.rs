//! The torture suite's harness: bounded or long mode, the seeded random generator, running the
//! `mvault` binary with a timeout (or killing it at a chosen moment), and comparing what it wrote
//! with the originals. It owns no test and asserts only that a run it was asked to make happened.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

pub fn long_mode() -> bool {
    std::env::var("MVAULT_TORTURE").is_ok_and(|v| v == "long")
}

/// (bounded, long)
pub fn sized(bounded: usize, long: usize) -> usize {
    if long_mode() { long } else { bounded }
}

/// The seed of one part: `MVAULT_TORTURE_SEED` if set (decimal or 0x-hex), else a fixed value
/// per part in bounded mode, the clock in long mode.
pub fn seed_for(part: &str, fixed: u64) -> u64 {
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
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform in `lo..hi` (hi exclusive; hi > lo).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mvault")
}

/// Per-command timeout: a command that takes longer has hung.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// What one run of `mvault` did.
#[derive(Debug)]
pub enum Exit {
    Code(i32),
    Signal,
    Hang,
}

pub struct Ran {
    pub exit: Exit,
    pub stdout: PathBuf,
    pub stderr: String,
}

impl Ran {
    pub fn code(&self) -> Option<i32> {
        match self.exit {
            Exit::Code(c) => Some(c),
            _ => None,
        }
    }
    pub fn ok(&self) -> bool {
        self.code() == Some(0)
    }
    pub fn out(&self) -> Vec<u8> {
        std::fs::read(&self.stdout).unwrap_or_default()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.out())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.out())))
    }
    pub fn describe(&self) -> String {
        format!("{:?}; stderr: {}", self.exit, self.stderr.trim())
    }
}

/// A way to run `mvault` against one vault with one passphrase file; stdout goes to a file so a
/// large `cat` never blocks on a pipe.
#[derive(Clone)]
pub struct Mv {
    pub vault: PathBuf,
    pub pass: PathBuf,
    pub work: PathBuf,
}

impl Mv {
    pub fn new(dir: &Path, vault: &Path) -> Mv {
        let pass = dir.join("passphrase");
        if !pass.exists() {
            std::fs::write(&pass, format!("{PASS}\n")).unwrap();
        }
        Mv { vault: vault.to_path_buf(), pass, work: dir.to_path_buf() }
    }

    pub fn command(&self, args: &[&str], tag: &str) -> (Command, PathBuf, PathBuf) {
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
    pub fn run(&self, args: &[&str]) -> Ran {
        self.run_tagged(args, "main")
    }

    pub fn run_tagged(&self, args: &[&str], tag: &str) -> Ran {
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
    pub fn run_and_kill(&self, args: &[&str], delay: Duration) -> bool {
        self.run_and_kill_at(args, KillAt::After(delay)).landed
    }

    /// Starts `args` and SIGKILLs it at `at`, watching for the fresh file of a whole-file rewrite
    /// meanwhile. A run that ends by itself first must not have crashed (exit 70 or a signal).
    pub fn run_and_kill_at(&self, args: &[&str], at: KillAt) -> Killed {
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
pub enum KillAt {
    /// This long after the start.
    After(Duration),
    /// This long after the fresh file of a whole-file rewrite appears (the window from the copy
    /// through the rename), or `fallback` after the start if none appears.
    AfterFresh { delay: Duration, fallback: Duration },
}

/// How a run under [`Mv::run_and_kill_at`] ended.
#[derive(Debug, Clone, Copy)]
pub struct Killed {
    /// The kill landed: the command was still running.
    pub landed: bool,
    /// From the start to its end or to the kill.
    pub elapsed: Duration,
    /// When the rewrite's fresh file first appeared, from the start.
    pub fresh_seen: Option<Duration>,
}

/// Spawns, retrying for a few seconds if the binary is missing or busy for a moment (another
/// `cargo build` replacing it on a shared machine).
pub fn spawn(c: &mut Command) -> std::process::Child {
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

pub fn must(r: Ran, what: &str) -> Ran {
    assert!(r.ok(), "{what}: {}", r.describe());
    r
}

/// Versions listed by `ls --json`: (name, version) -> SHA-256 of its first file.
pub fn listing(mv: &Mv) -> BTreeMap<(String, u64), String> {
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

pub fn same_file(a: &Path, b: &Path) -> bool {
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
pub fn is_prefix(a: &Path, b: &Path) -> bool {
    let x = std::fs::read(a).unwrap_or_default();
    let y = std::fs::read(b).unwrap();
    x.len() <= y.len() && y[..x.len()] == x[..]
}

pub fn cat_matches(mv: &Mv, spec: &str, original: &Path) {
    let r = must(mv.run(&["cat", spec]), &format!("cat {spec}"));
    assert!(same_file(&r.stdout, original), "cat {spec}: the bytes differ from {}", original.display());
}

pub fn minilm() -> PathBuf {
    corpus().join("safetensors/all-MiniLM-L6-v2.model.safetensors")
}

pub fn silero() -> PathBuf {
    corpus().join("safetensors/silero_vad_16k.safetensors")
}

/// A copy of MiniLM with one byte of every 64 KiB of tensor data changed, so no chunk is shared
/// with the original or another variant: a put of it writes all 87 MiB.
pub fn minilm_variant(dir: &Path, k: u8) -> PathBuf {
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
pub fn fast_tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::Builder::new().prefix("mvault-torture").tempdir_in(shm)
    {
        return d;
    }
    tempfile::tempdir().unwrap()
}

pub fn init(mv: &Mv) {
    must(mv.run(&["init", "--argon2-memory-kib", "256", "--argon2-time", "1", "--argon2-lanes", "1"]), "init");
}

/// Small distinct model files (each put stores a distinct version).
pub fn small_files() -> Vec<PathBuf> {
    let c = corpus();
    vec![
        c.join("safetensors/silero_vad_16k.safetensors"),
        c.join("safetensors/silero_vad_16k.one-tensor-changed.safetensors"),
        c.join("safetensors/silero_vad_16k.reheadered.safetensors"),
        c.join("onnx/silero_vad.onnx"),
    ]
}

/// Exit codes README documents for errors.
pub const DOCUMENTED: [i32; 9] = [1, 2, 3, 4, 5, 6, 7, 8, 9];

/// Classifies a finished command. `clear error` needs a documented exit code and a message.
pub fn classify(r: &Ran) -> String {
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
