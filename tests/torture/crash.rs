//! Crash: every writer (`put`, `tag`, `alias`, `rm`, `rm --erase`, `gc`, `key rotate`, `key
//! passwd`) SIGKILLed at random moments drawn from its measured unkilled run, and the reopen after
//! it killed too (bugs.md B17). After each landed kill the vault must open, `verify --read-data`
//! pass (once an unfinished erasure is finished), every earlier version read back byte for byte,
//! and the interrupted version be whole or absent. Never edits the file by hand.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::harness::*;

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

/// One writer run: the kill point, the command line, the MiniLM variant a `put` of MiniLM
/// stores, and the passphrase a `key passwd` changes to.
struct Writer {
    op: Op,
    args: Vec<String>,
    variant: usize,
    other_pass: PathBuf,
}

/// (name, version) -> SHA-256 of its first file, as `ls --json` lists it.
type Versions = BTreeMap<(String, u64), String>;

/// Everything the crash test carries from one killed run to the next.
struct Crash {
    rng: Rng,
    _dir: tempfile::TempDir,
    mv: Mv,
    pass_a: PathBuf,
    pass_b: PathBuf,
    variants: Vec<PathBuf>,
    /// What each stored version must read back as: SHA-256 -> original file.
    source: BTreeMap<String, PathBuf>,
    /// Versions committed so far.
    expected: Versions,
    /// op -> (kills landed, ran to the end)
    stats: BTreeMap<Op, (u32, u32)>,
    reopen_kills: u32,
    /// Kill moments come from measured durations, never from assumed ones: the last unkilled
    /// run of each command (with or without the 87 MiB model in the vault) sets the range its
    /// kills are drawn from, and a command not measured yet runs once to the end first.
    measured: BTreeMap<(Op, bool), Measured>,
    verify_took: Duration,
    /// Erasures killed after their removal committed: finished by `rm --erase --resume`, by the
    /// next writer.
    erase_unfinished: u32,
    erase_by_resume: u32,
    erase_by_writer: u32,
    iterations: usize,
    kills: usize,
    started: Instant,
}

#[test]
fn crash_every_writer_at_random_moments() {
    let want_kills = sized(50, 400);
    let mut c = Crash::new(Rng(seed_for("crash", 0x5eed_c7a5_0001)));
    // Until enough kills landed, and at least five of them in the middle of a MiniLM put (the
    // put gets faster over time; a fixed number of runs would leave it untested).
    while c.kills < want_kills || c.minilm_kills() < 5 || c.erase_by_resume < 1 || c.erase_by_writer < 1 {
        c.iterations += 1;
        assert!(c.iterations < want_kills * 4, "too few kills landed: {} in {} runs", c.kills, c.iterations);
        c.kill_one_writer_and_check();
    }
    c.print_outcomes();
    assert!(c.kills >= want_kills);
    assert!(c.stats.get(&Op::PutMinilm).is_some_and(|s| s.0 >= 5), "too few puts were killed: {:?}", c.stats);
    assert!(c.reopen_kills >= 5, "too few reopens were killed: {}", c.reopen_kills);
}

impl Crash {
    /// A vault holding one small model, two passphrase files and three MiniLM variants.
    fn new(rng: Rng) -> Crash {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let vault = d.join("test.mvault");
        let mv = Mv::new(d, &vault);
        init(&mv);
        let pass_a = mv.pass.clone();
        let pass_b = d.join("passphrase-b");
        std::fs::write(&pass_b, "another passphrase\n").unwrap();
        let variants: Vec<PathBuf> = (1..=3).map(|k| minilm_variant(d, k)).collect();
        let silero_arg = silero().display().to_string();
        must(mv.run(&["put", "-q", &silero_arg, "--name", "s"]), "first put");
        let first = listing(&mv);
        let source = BTreeMap::from([(first.values().next().unwrap().clone(), silero())]);
        Crash {
            rng,
            _dir: dir,
            mv,
            pass_a,
            pass_b,
            variants,
            source,
            expected: first,
            stats: BTreeMap::new(),
            reopen_kills: 0,
            measured: BTreeMap::new(),
            verify_took: Duration::from_millis(400),
            erase_unfinished: 0,
            erase_by_resume: 0,
            erase_by_writer: 0,
            iterations: 0,
            kills: 0,
            started: Instant::now(),
        }
    }

    fn minilm_kills(&self) -> u32 {
        self.stats.get(&Op::PutMinilm).map_or(0, |s| s.0)
    }

    /// Versions of `name` committed so far.
    fn live(&self, name: &str) -> Vec<u64> {
        self.expected.keys().filter(|(n, _)| n == name).map(|(_, v)| *v).collect()
    }

    /// One run: a random writer killed at a random moment (or run to the end to measure it),
    /// its reopen killed too, then every check on what is left.
    fn kill_one_writer_and_check(&mut self) {
        let live_minilm = self.live("minilm");
        let w = self.pick_writer(&live_minilm);
        let key = (w.op.command(), !live_minilm.is_empty());
        let at = self.kill_moment(w.op, key);
        let argv: Vec<&str> = w.args.iter().map(String::as_str).collect();
        let run = self.mv.run_and_kill_at(&argv, at);
        if !run.landed {
            self.measured.insert(key, Measured { total: run.elapsed, fresh: run.fresh_seen });
        }
        let delay = run.elapsed;
        self.count(w.op, run.landed);
        if run.landed {
            self.kill_the_reopen(&w.other_pass);
        }
        let rotating = self.check_it_opens(&w, delay);
        self.check_verify_finishing_an_erasure(&w, delay);
        if rotating {
            must(self.mv.run(&["key", "rotate", "--resume", "-q"]), "key rotate --resume");
            must(self.mv.run(&["verify", "--read-data", "-q"]), "verify after resume");
        }
        self.check_no_version_lost_or_changed(&w, delay);
    }

    /// Draws the writer to kill and builds its command line.
    fn pick_writer(&mut self, live_minilm: &[u64]) -> Writer {
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
        let op = *self.rng.pick(&ops);
        let any_version = {
            let keys: Vec<&(String, u64)> = self.expected.keys().collect();
            keys.get(self.rng.below(keys.len().max(1))).map(|(n, v)| format!("{n}@{v}"))
        };
        // With no version left (an erase took the last), only a put makes sense.
        let op = if any_version.is_none() && matches!(op, Op::Tag | Op::Alias | Op::Erase | Op::EraseRewrite) {
            Op::PutSmall
        } else {
            op
        };
        let variant = self.rng.below(self.variants.len());
        let other_pass = if self.mv.pass == self.pass_a { self.pass_b.clone() } else { self.pass_a.clone() };
        let args: Vec<String> = match op.command() {
            Op::PutMinilm => vec![
                "put".into(),
                "-q".into(),
                self.variants[variant].display().to_string(),
                "--name".into(),
                "minilm".into(),
            ],
            Op::PutSmall => {
                vec!["put".into(), "-q".into(), silero().display().to_string(), "--name".into(), "s".into()]
            }
            Op::Tag => vec!["tag".into(), any_version.clone().unwrap(), format!("k{}=v", self.rng.below(5))],
            Op::Alias => vec!["alias".into(), any_version.clone().unwrap(), format!("a{}", self.rng.below(3))],
            Op::Rm => vec!["rm".into(), format!("minilm@{}", live_minilm[0]), "--yes".into()],
            Op::Gc => vec!["gc".into(), "-q".into()],
            Op::Rotate | Op::RotateRewrite => vec!["key".into(), "rotate".into(), "-q".into()],
            Op::Passwd => {
                vec!["key".into(), "passwd".into(), "--new-passphrase-file".into(), other_pass.display().to_string()]
            }
            Op::Erase | Op::EraseRewrite => {
                let target = if !live_minilm.is_empty() && self.rng.below(2) == 0 {
                    format!("minilm@{}", live_minilm[0])
                } else {
                    let smalls = self.live("s");
                    match smalls.first() {
                        Some(v) if smalls.len() > 1 => format!("s@{v}"),
                        _ => any_version.clone().unwrap(),
                    }
                };
                vec!["rm".into(), target, "--erase".into(), "--yes".into()]
            }
        };
        Writer { op, args, variant, other_pass }
    }

    /// A third of the big puts run to the end (so `rm`, `gc`, `rm --erase` and `key rotate` have
    /// 87 MiB to work on), and so does the first run of each command (to measure it); the rest
    /// are killed at a moment drawn from the measured run (B17: from early on to its end), or,
    /// for the rewrite-window kill points, from the fresh file's appearance to past the rename.
    fn kill_moment(&mut self, op: Op, key: (Op, bool)) -> KillAt {
        match (op, self.measured.get(&key)) {
            (Op::PutMinilm, _) if self.rng.below(3) == 0 => KillAt::After(Duration::from_secs(60)),
            (_, None) => KillAt::After(Duration::from_secs(60)),
            (Op::RotateRewrite | Op::EraseRewrite, Some(m)) => {
                let window = m.fresh.map_or(m.total / 4, |f| m.total.saturating_sub(f));
                let hi = window.as_micros() as u64 * 11 / 10 + 2;
                KillAt::AfterFresh {
                    delay: Duration::from_micros(self.rng.range(0, hi)),
                    fallback: m.total.mul_f64(0.9),
                }
            }
            (_, Some(m)) => {
                let hi = (m.total.as_micros() as u64).max(100);
                KillAt::After(Duration::from_micros(self.rng.range(hi / 50, hi)))
            }
        }
    }

    fn count(&mut self, op: Op, landed: bool) {
        let e = self.stats.entry(op).or_default();
        if landed {
            e.0 += 1;
            self.kills += 1;
            if self.kills.is_multiple_of(10) {
                eprintln!("crash: {} kills landed, {:.0?}", self.kills, self.started.elapsed());
            }
        } else {
            e.1 += 1;
        }
    }

    /// B17: kills the reopen (and redb's repair) too, with either passphrase, before the real
    /// reopen.
    fn kill_the_reopen(&mut self, other_pass: &std::path::Path) {
        let mv2 = self.mv.clone();
        let other = Mv { pass: other_pass.to_path_buf(), ..self.mv.clone() };
        for m in [&mv2, &other] {
            let hi = self.verify_took.as_micros() as u64 + 1;
            if m.run_and_kill(&["verify", "--read-data", "-q"], Duration::from_micros(self.rng.range(0, hi))) {
                self.reopen_kills += 1;
                break;
            }
        }
    }

    /// The vault opens, with the passphrase it had or (after a killed `key passwd` only) the new
    /// one; returns whether a key rotation is left unfinished.
    fn check_it_opens(&mut self, w: &Writer, delay: Duration) -> bool {
        let op = w.op;
        let probe = self.mv.run(&["key", "list", "--json"]);
        assert!(probe.ok(), "after {op:?} (kill at {delay:?}): key list: {}", probe.describe());
        let rotating = probe.json().as_array().unwrap().iter().any(|s| s["rotating"] == true);
        let unlocks = self.mv.run(&["signer", "show"]);
        if unlocks.code() == Some(3) {
            assert_eq!(op, Op::Passwd, "after {op:?}: the passphrase stopped working: {}", unlocks.describe());
            self.mv.pass = w.other_pass.clone();
        } else {
            assert!(unlocks.ok(), "after {op:?} (kill at {delay:?}): the vault does not open: {}", unlocks.describe());
        }
        rotating
    }

    /// `verify --read-data` passes; an erasure left unfinished (only after a killed erase) is
    /// finished first, by `rm --erase --resume` or by the next writer (`gc`).
    fn check_verify_finishing_an_erasure(&mut self, w: &Writer, delay: Duration) {
        let op = w.op;
        let verify_started = Instant::now();
        let mut verify = self.mv.run(&["verify", "--read-data"]);
        self.verify_took = verify_started.elapsed();
        let unfinished =
            String::from_utf8_lossy(&verify.out()).contains("run `mvault rm --erase --resume` to finish it");
        if !verify.ok() && unfinished {
            assert!(matches!(op, Op::Erase | Op::EraseRewrite), "after {op:?}: an erasure is unfinished");
            assert_eq!(verify.code(), Some(6), "verify of an unfinished erasure: {}", verify.describe());
            self.erase_unfinished += 1;
            if self.rng.below(2) == 0 {
                let r = must(self.mv.run(&["rm", "--erase", "--resume"]), "rm --erase --resume");
                let out = String::from_utf8_lossy(&r.out()).into_owned();
                assert!(out.contains("finished erasing"), "rm --erase --resume: {out}");
                self.erase_by_resume += 1;
            } else {
                let r = must(self.mv.run(&["gc", "-q"]), "gc after an unfinished erasure");
                assert!(r.stderr.contains("finishing an interrupted erasure first"), "gc: {}", r.describe());
                self.erase_by_writer += 1;
            }
            verify = self.mv.run(&["verify", "--read-data"]);
        }
        assert!(
            verify.ok(),
            "iteration {}: after {op:?} {:?} killed at {delay:?}: verify --read-data: {} {}",
            self.iterations,
            w.args,
            verify.describe(),
            String::from_utf8_lossy(&verify.out())
        );
    }

    /// Every version committed before stays, except the one this writer was removing; only the
    /// interrupted put may add one; every version there reads back byte for byte.
    fn check_no_version_lost_or_changed(&mut self, w: &Writer, delay: Duration) {
        let op = w.op;
        let now = listing(&self.mv);
        let may_go: Option<(String, u64)> = match op {
            Op::Rm | Op::Erase | Op::EraseRewrite => {
                let (n, v) = w.args[1].split_once('@').unwrap();
                Some((n.to_string(), v.parse().unwrap()))
            }
            _ => None,
        };
        for (k, sha) in &self.expected {
            if Some(k) == may_go.as_ref() {
                continue;
            }
            assert_eq!(now.get(k), Some(sha), "after {op:?} killed at {delay:?}: {}@{} was lost or changed", k.0, k.1);
        }
        for (k, sha) in &now {
            if !self.expected.contains_key(k) {
                let may_appear = matches!(op, Op::PutMinilm | Op::PutSmall)
                    && k.0 == if op == Op::PutMinilm { "minilm" } else { "s" };
                assert!(may_appear, "after {op:?}: {}@{} appeared from nowhere", k.0, k.1);
                let src = if op == Op::PutMinilm { self.variants[w.variant].clone() } else { silero() };
                self.source.entry(sha.clone()).or_insert(src);
            }
        }
        for ((n, v), sha) in &now {
            let src = self.source.get(sha).unwrap_or_else(|| panic!("{n}@{v}: unknown SHA-256 {sha}"));
            cat_matches(&self.mv, &format!("{n}@{v}"), src);
        }
        self.expected = now;
    }

    fn print_outcomes(&self) {
        eprintln!(
            "crash: {} kills landed in {} runs, {} reopens killed, {:.0?}",
            self.kills,
            self.iterations,
            self.reopen_kills,
            self.started.elapsed()
        );
        eprintln!(
            "  erasures left unfinished: {} ({} finished by --resume, {} by the next writer)",
            self.erase_unfinished, self.erase_by_resume, self.erase_by_writer
        );
        eprintln!("  {:<14} {:>8} {:>14}", "writer", "killed", "ran to the end");
        for (op, (k, f)) in &self.stats {
            eprintln!("  {:<14} {:>8} {:>14}", format!("{op:?}"), k, f);
        }
    }
}
