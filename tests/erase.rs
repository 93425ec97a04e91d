//! `rm --erase` killed at moments drawn from its measured duration (and in its rewrite window),
//! then finished by `rm --erase --resume` or by the next writing command: afterwards `verify`
//! passes and the raw vault file holds none of the erased ciphertexts, manifests or records.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::tables::{MODELS, VERSIONS};
use common::*;
use modelvault::VersionRef;
use predicates::str::contains as has;

/// Every value of a table keyed by fixed-size bytes, read straight from the file.
fn values<const N: usize>(
    path: &Path,
    def: tamper::TableDefinition<&'static [u8; N], &'static [u8]>,
) -> BTreeSet<Vec<u8>> {
    tamper::values(path, def).into_iter().collect()
}

/// What the erased model left in the file before its erasure: the chunk ciphertexts (without the
/// 5-byte value header) and the sealed model and version records.
struct Erased {
    needles: Vec<Vec<u8>>,
}

impl Erased {
    /// Chunks of `secret` and the model/version records that an erasure of it takes away.
    fn record(template: &Path, erased_copy: &Path) -> Erased {
        let ids: Vec<[u8; 32]> = {
            let v = reopen(template);
            v.manifest("secret", &VersionRef::Latest)
                .unwrap()
                .files
                .iter()
                .flat_map(|f| f.chunks.iter().map(|c| c.id))
                .collect()
        };
        let mut needles: Vec<Vec<u8>> = ids.iter().map(|id| tamper::chunk_value(template, id)[5..].to_vec()).collect();
        for (before, after) in [
            (values(template, MODELS), values(erased_copy, MODELS)),
            (values(template, VERSIONS), values(erased_copy, VERSIONS)),
        ] {
            let gone: Vec<Vec<u8>> = before.difference(&after).cloned().collect();
            assert!(!gone.is_empty(), "the erasure removed no record");
            needles.extend(gone.into_iter().map(|v| v[5..].to_vec()));
        }
        Erased { needles }
    }

    fn assert_gone(&self, vault: &Path, what: &str) {
        let raw = std::fs::read(vault).unwrap();
        for (i, n) in self.needles.iter().enumerate() {
            assert!(!contains(&raw, n), "{what}: erased value {i} ({} bytes) is still in the vault file", n.len());
        }
        assert!(!contains(&raw, b"secret"), "{what}: the erased model's name is readable in the vault file");
    }
}

/// How one run of `mvault` ended.
struct Outcome {
    /// Killed while still running.
    landed: bool,
    /// When it ended (or was killed), from the start.
    elapsed: Duration,
    /// When the rewrite's fresh file was first seen, from the start.
    fresh_seen: Option<Duration>,
}

/// When to kill a run.
#[derive(Clone, Copy)]
enum KillAt {
    Never,
    After(Duration),
    /// This long after the fresh file of the rewrite appears (or at the fallback, if it never does).
    AfterFresh {
        delay: Duration,
        fallback: Duration,
    },
}

fn run(dir: &Path, args: &[&str], kill: KillAt) -> Outcome {
    let vault = dir.join("test.mvault");
    let fresh = modelvault::store::rewrite_path(&vault);
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("mvault"))
        .args(args)
        .env("MVAULT_VAULT", &vault)
        .env("MVAULT_PASSPHRASE_FILE", dir.join("passphrase"))
        .env("MVAULT_STATE_DIR", common::state_dir(dir))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut fresh_seen = None;
    loop {
        let elapsed = start.elapsed();
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "{args:?} failed on its own: {st:?}");
            return Outcome { landed: false, elapsed, fresh_seen };
        }
        if fresh_seen.is_none() && fresh.exists() {
            fresh_seen = Some(elapsed);
        }
        let due = match &kill {
            KillAt::Never => false,
            KillAt::After(d) => elapsed >= *d,
            KillAt::AfterFresh { delay, fallback } => match fresh_seen {
                Some(t) => elapsed >= t + *delay,
                None => elapsed >= *fallback,
            },
        };
        assert!(elapsed < Duration::from_secs(60), "{args:?} hung");
        if due {
            let landed = child.try_wait().unwrap().is_none();
            let _ = child.kill();
            child.wait().unwrap();
            return Outcome { landed, elapsed, fresh_seen };
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// A vault holding `keep` (87 MiB, so the rewrite takes a while) and `secret`.
fn template(dir: &Path) -> PathBuf {
    cli_init(dir);
    for (file, name) in [("safetensors/all-MiniLM-L6-v2.model.safetensors", "keep"), ("onnx/silero_vad.onnx", "secret")]
    {
        mvault(dir).arg("put").arg("-q").arg(corpus().join(file)).args(["--name", name]).assert().success();
    }
    dir.join("test.mvault")
}

fn fresh_copy(template: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(template, dir.join("test.mvault")).unwrap();
    std::fs::write(dir.join("passphrase"), format!("{PASS}\n")).unwrap();
}

fn listed(dir: &Path, name: &str) -> bool {
    let out = mvault(dir).args(["ls", "--json"]).output().unwrap();
    assert!(out.status.success(), "ls: {}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    j["models"].as_array().unwrap().iter().any(|m| m["name"] == name)
}

/// True when `verify` reports an unfinished erasure (and nothing else); false when it passes.
fn unfinished(dir: &Path) -> bool {
    let out = mvault(dir).args(["verify"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        return false;
    }
    assert_eq!(out.status.code(), Some(6), "verify: {text}");
    assert!(text.contains("is unfinished") && text.matches("DAMAGED").count() == 1, "verify: {text}");
    true
}

/// A template vault (model `secret` to erase, `keep` to keep) and one unkilled, measured erasure
/// of a copy of it: its outcome (duration, when the fresh file appeared) and the erased values.
fn calibrate(root: &Path) -> (PathBuf, Outcome, Erased) {
    let tdir = root.join("template");
    std::fs::create_dir_all(&tdir).unwrap();
    let template = template(&tdir);
    let calib = root.join("calibrate");
    fresh_copy(&template, &calib);
    let base = run(&calib, &["rm", "secret", "--erase", "--yes"], KillAt::Never);
    let erased = Erased::record(&template, &calib.join("test.mvault"));
    erased.assert_gone(&calib.join("test.mvault"), "unkilled erase");
    (template, base, erased)
}

#[test]
fn erase_killed_at_measured_moments_is_finished_by_resume_or_the_next_write() {
    let root = tempfile::tempdir().unwrap();
    // One unkilled run: its duration, and when the rewrite's fresh file appears.
    let (template, base, erased) = calibrate(root.path());
    let total = base.elapsed;
    let window = base.fresh_seen.map(|t| total.saturating_sub(t)).unwrap_or(total / 5);
    eprintln!("erase: unkilled run {total:?}, fresh file seen at {:?}", base.fresh_seen);

    // Kill moments: spread over the measured run, and inside the rewrite window.
    let mut kills: Vec<(String, KillAt)> = [0.1, 0.25, 0.4, 0.55, 0.7, 0.85]
        .iter()
        .map(|f| (format!("{:.0}% of the run", f * 100.0), KillAt::After(total.mul_f64(*f))))
        .collect();
    for f in [0.0, 0.3, 0.6, 0.9, 1.0] {
        kills.push((
            format!("{:.0}% into the rewrite window", f * 100.0),
            KillAt::AfterFresh { delay: window.mul_f64(f), fallback: total.mul_f64(0.95) },
        ));
    }
    let (mut pending, mut by_resume, mut by_write, mut landed) = (0, 0, 0, 0);
    for (i, (when, kill)) in kills.into_iter().enumerate() {
        // A kill that came too late (this run was faster than the measured one: the machine's load
        // changes) is drawn again, earlier, on a fresh copy: the test must not depend on speed.
        let mut kill = kill;
        let mut attempt = 0;
        let (d, vault, out) = loop {
            let d = root.path().join(format!("kill{i}-{attempt}"));
            fresh_copy(&template, &d);
            let vault = d.join("test.mvault");
            let out = run(&d, &["rm", "secret", "--erase", "--yes"], kill);
            if out.landed || attempt == 4 {
                break (d, vault, out);
            }
            attempt += 1;
            kill = match kill {
                KillAt::After(t) => KillAt::After(t.mul_f64(0.6)),
                KillAt::AfterFresh { delay, fallback } => {
                    KillAt::AfterFresh { delay: delay.mul_f64(0.6), fallback: fallback.mul_f64(0.6) }
                }
                KillAt::Never => KillAt::Never,
            };
        };
        landed += u32::from(out.landed);
        let what = format!("killed at {when} ({:?})", out.elapsed);
        if listed(&d, "secret") {
            // Killed before the removal committed: nothing happened; erasing again does it all.
            mvault(&d).args(["rm", "secret", "--erase", "--yes"]).assert().success();
        } else if unfinished(&d) {
            // Removed but not yet rewritten: the erasure is unfinished, and says so.
            pending += 1;
            assert!(!contains(&std::fs::read(&vault).unwrap(), b"secret"), "{what}: the erase record leaks the name");
            mvault(&d)
                .args(["verify"])
                .assert()
                .code(6)
                .stdout(has("an erasure of model 'secret' version(s) 1 is unfinished"))
                .stdout(has("run `mvault rm --erase --resume` to finish it"));
            if pending % 2 == 1 {
                by_resume += 1;
                mvault(&d)
                    .args(["rm", "--erase", "--resume"])
                    .assert()
                    .success()
                    .stdout(has("finished erasing secret@1"));
            } else {
                by_write += 1;
                mvault(&d)
                    .args(["tag", "keep@1", "k=v"])
                    .assert()
                    .success()
                    .stderr(has("finishing an interrupted erasure first"));
            }
        }
        erased.assert_gone(&vault, &what);
        mvault(&d).args(["verify", "--read-data"]).assert().success().stdout(has("ok: 1 model(s), 1 version(s)"));
        mvault(&d).args(["rm", "--erase", "--resume"]).assert().success().stdout(has("no erasure was unfinished"));
        assert!(!modelvault::store::rewrite_path(&vault).exists(), "{what}: the rewrite's fresh file was left behind");
        std::fs::remove_dir_all(&d).unwrap();
    }
    eprintln!(
        "erase: {landed} kills landed, {pending} left it unfinished ({by_resume} resumed, {by_write} by a write)"
    );
    assert!(
        landed >= 9,
        "only {landed} of 11 kills landed although each was drawn again, earlier, when it came too late"
    );
    assert!(by_resume >= 1 && by_write >= 1, "too few kills left an unfinished erasure: {pending}");
}

#[test]
fn key_rotate_finishes_an_unfinished_erasure_first_and_keeps_no_erased_chunk() {
    // An erasure killed after its removal committed, then `key rotate` (which re-encrypts every
    // stored chunk): the erased chunks must be deleted, not carried into the new epoch.
    let root = tempfile::tempdir().unwrap();
    let (template, base, erased) = calibrate(root.path());
    let window = base.fresh_seen.map(|t| base.elapsed.saturating_sub(t)).unwrap_or(base.elapsed / 5);
    let mut pending = false;
    for attempt in 0..8 {
        let d = root.path().join(format!("k{attempt}"));
        fresh_copy(&template, &d);
        // Right at the start of the rewrite: the removal and the gc have committed.
        let f = [0.0, 0.2, 0.4, 0.1, 0.3, 0.05, 0.15, 0.5][attempt];
        run(
            &d,
            &["rm", "secret", "--erase", "--yes"],
            KillAt::AfterFresh { delay: window.mul_f64(f), fallback: base.elapsed.mul_f64(0.9) },
        );
        let vault = d.join("test.mvault");
        if listed(&d, "secret") || !unfinished(&d) {
            std::fs::remove_dir_all(&d).unwrap();
            continue;
        }
        pending = true;
        mvault(&d).args(["key", "rotate", "-q"]).assert().success();
        erased.assert_gone(&vault, "after key rotate");
        mvault(&d).args(["verify", "--read-data"]).assert().success();
        break;
    }
    assert!(pending, "no kill left an unfinished erasure");
}

#[test]
fn erase_resume_arguments_and_nothing_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_init(d);
    mvault(d)
        .args(["rm", "--erase", "--resume"])
        .assert()
        .success()
        .stdout(has("no erasure was unfinished: nothing to do"));
    mvault(d).args(["rm", "--erase", "--resume", "--json"]).assert().success().stdout(has("\"resumed\": false"));
    mvault(d).args(["rm", "--resume"]).assert().code(2).stderr(has("--erase"));
    mvault(d).args(["rm", "m@1", "--erase", "--resume"]).assert().code(2).stderr(has("cannot be used with '--resume'"));
    mvault(d).args(["rm"]).assert().code(2).stderr(has("<SPEC>"));
    // A finished erasure reports what it did, and leaves nothing to resume.
    mvault(d)
        .arg("put")
        .arg("-q")
        .arg(corpus().join("onnx/silero_vad.onnx"))
        .args(["--name", "secret"])
        .assert()
        .success();
    let out = mvault(d).args(["rm", "secret@1", "--erase", "--json"]).output().unwrap();
    assert!(out.status.success());
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["name"], "secret");
    assert_eq!(j["versions"], serde_json::json!([1]));
    assert_eq!(j["resumed"], false);
    mvault(d).args(["verify"]).assert().success();
    mvault(d).args(["rm", "--erase", "--resume"]).assert().success().stdout(has("nothing to do"));
}
