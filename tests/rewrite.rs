//! The whole-file rewrite (`key rotate`, `rm --erase`) and how the vault file is opened: through
//! a symbolic link, with its mode and owner kept, against writers racing the rename, killed around
//! the rename, and read-only for a user who may not write the file.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::tables::{CHUNKS, SLOTS};
use common::tamper::values as table_values;
use common::*;
use modelvault::{Error, NoProgress, OpenOptions, Passphrase, PutOptions, Vault, VersionRef};
use predicates::str::contains as has;

fn pw(s: &str) -> Passphrase {
    Passphrase::new(s.as_bytes().to_vec()).unwrap()
}

/// A vault file in `dir/real/` and a symbolic link `dir/test.mvault` to it (where [`mvault`]
/// points), with models `keep` and `secret`. Returns the real file.
fn vault_behind_a_link(dir: &Path) -> PathBuf {
    let real_dir = dir.join("real");
    std::fs::create_dir(&real_dir).unwrap();
    let real = real_dir.join("v.mvault");
    drop(
        Vault::create(&real, &pass(), &modelvault::CreateOptions { argon2: test_params(), ..Default::default() })
            .unwrap(),
    );
    std::os::unix::fs::symlink("real/v.mvault", dir.join("test.mvault")).unwrap();
    let silero = corpus().join("safetensors/silero_vad_16k.safetensors");
    mvault(dir).arg("put").arg(&silero).args(["--name", "keep", "-q"]).assert().success();
    mvault(dir)
        .arg("put")
        .arg(corpus().join("onnx/silero_vad.onnx"))
        .args(["--name", "secret", "-q"])
        .assert()
        .success();
    real
}

fn assert_still_the_link(dir: &Path) {
    let link = dir.join("test.mvault");
    let m = std::fs::symlink_metadata(&link).unwrap();
    assert!(m.file_type().is_symlink(), "the symbolic link was replaced by a regular file");
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("real/v.mvault"));
    assert!(!dir.join("test.mvault.rewrite-tmp").exists() && !dir.join("real/v.mvault.rewrite-tmp").exists());
}

#[test]
fn rm_erase_through_a_symlink_erases_the_real_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let real = vault_behind_a_link(d);
    let before = table_values(&real, CHUNKS);
    let v = reopen(&real);
    let secret_ids: Vec<[u8; 32]> =
        v.manifest("secret", &VersionRef::Latest).unwrap().files[0].chunks.iter().map(|c| c.id).collect();
    drop(v);
    let secret: Vec<Vec<u8>> = secret_ids.iter().map(|id| tamper::chunk_value(&real, id)).collect();
    assert!(!secret.is_empty() && before.len() > secret.len());

    mvault(d).args(["rm", "secret", "--erase", "--yes"]).assert().success();

    assert_still_the_link(d);
    let raw = std::fs::read(&real).unwrap();
    for c in &secret {
        assert!(!contains(&raw, &c[5..]), "the real vault file still holds an erased chunk's ciphertext");
    }
    let v = reopen(&real);
    assert!(matches!(v.show("secret", &VersionRef::Latest).unwrap_err(), Error::ModelNotFound(_)));
    assert!(v.verify(true, &NoProgress).unwrap().ok());
    assert_eq!(v.path(), std::fs::canonicalize(&real).unwrap(), "the path a vault reports is the real file");
}

#[test]
fn key_rotate_through_a_symlink_rotates_the_real_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let real = vault_behind_a_link(d);
    reopen(&real).add_slot("ci", &pw("ci pass"), &test_params()).unwrap();
    let old_chunks = table_values(&real, CHUNKS);
    let old_slots = table_values(&real, SLOTS);

    mvault(d).args(["key", "rotate", "--remove-other-slots", "-q"]).assert().success();

    assert_still_the_link(d);
    // The real file is on the new epoch: the removed slot's passphrase no longer opens it, and
    // nothing sealed under the old master key, nor any old slot record, is left in it.
    let e = Vault::open(&real, &OpenOptions::default()).unwrap().unlock(&pw("ci pass")).err().unwrap();
    assert!(matches!(e, Error::WrongPassphrase), "the removed slot still opens the real file: {e}");
    let v = reopen(&real);
    assert_eq!(v.epoch(), 2);
    assert!(v.verify(true, &NoProgress).unwrap().ok());
    drop(v);
    let raw = std::fs::read(&real).unwrap();
    for c in &old_chunks {
        assert!(!contains(&raw, &c[5..]), "an old chunk ciphertext survived the rotation in the real file");
    }
    for s in &old_slots {
        assert!(!contains(&raw, &s[s.len() - 32..]), "an old key-slot record survived the rotation in the real file");
    }
}

#[test]
fn a_rewrite_keeps_the_vault_files_mode_owner_and_group() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_init(d);
    let path = d.join("test.mvault");
    mvault(d).arg("put").arg(corpus().join("onnx/silero_vad.onnx")).args(["--name", "o", "-q"]).assert().success();
    mvault(d).arg("put").arg(corpus().join("numpy/numpy_python3.npy")).args(["--name", "n", "-q"]).assert().success();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let root = is_root();
    // As root, give the file to another user and group (the ids need not exist); otherwise keep
    // this user's.
    let (uid, gid) = if root {
        (4321, 8765)
    } else {
        (std::fs::metadata(&path).unwrap().uid(), std::fs::metadata(&path).unwrap().gid())
    };
    if root {
        std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
    }
    let check = |what: &str| {
        let m = std::fs::metadata(&path).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o640, "after {what}: mode {:o}", m.mode() & 0o7777);
        assert_eq!((m.uid(), m.gid()), (uid, gid), "after {what}: owner and group changed");
    };
    mvault(d).args(["key", "rotate", "-q"]).assert().success();
    check("key rotate");
    mvault(d).args(["rm", "n", "--erase", "--yes"]).assert().success();
    check("rm --erase");
    mvault(d).args(["verify", "--read-data"]).assert().success();
}

/// Whether this process runs as root (uid 0), read from /proc so no extra crate is needed.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// Opens the vault at `path` the way a busy writer does: retrying at once while it is in use.
fn open_spinning(path: &Path, until: Instant) -> Option<Vault<modelvault::Unlocked>> {
    loop {
        match Vault::open(path, &OpenOptions::default()) {
            Ok(v) => return Some(v.unlock(&pass()).unwrap()),
            Err(Error::VaultInUse(_)) if Instant::now() < until => std::thread::yield_now(),
            Err(Error::VaultInUse(_)) => return None,
            Err(e) => panic!("opening the vault: {e}"),
        }
    }
}

#[test]
fn writes_racing_rotations_and_erasures_are_never_lost() {
    // One thread rotates the master key and erases a throw-away model in a loop; another opens
    // the vault as fast as it can (no wait between tries, so it hits the instant of every rename)
    // and tags a version each time it gets in. Every tag that reported success must be in the
    // vault at the end. Before the rename was made under the old lock, with openers re-checking
    // the file they locked, some tags went into the unlinked old file and were lost.
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    let small = corpus().join("numpy/numpy_python3.npy");
    v.put(&small, "m", &PutOptions::default(), &NoProgress).unwrap();
    drop(v);
    // Runs for 3 s, and on a slow machine until each side has done 8 (at most 30 s).
    let start = Instant::now();
    let cap = start + Duration::from_secs(30);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tagged = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = {
        let (path, stop, tagged) = (path.clone(), stop.clone(), tagged.clone());
        std::thread::spawn(move || {
            let mut written = Vec::new();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let Some(v) = open_spinning(&path, cap) else { break };
                let key = format!("w{i}");
                match v.set_tag("m", &VersionRef::Number(1), &key, "x") {
                    Ok(_) => written.push(key),
                    Err(e) => panic!("tag {key}: {e}"),
                }
                tagged.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                i += 1;
                drop(v);
                // Leave the other thread a moment to get in (it spins too).
                std::thread::sleep(Duration::from_millis(3));
            }
            written
        })
    };
    let mut rewrites = 0;
    while Instant::now() < cap
        && (start.elapsed() < Duration::from_secs(3)
            || rewrites < 8
            || tagged.load(std::sync::atomic::Ordering::SeqCst) < 8)
    {
        let Some(mut v) = open_spinning(&path, cap) else { break };
        if rewrites % 2 == 0 {
            v.rotate(&[], false, &NoProgress).unwrap();
        } else {
            v.put(&small, "scratch", &PutOptions::default(), &NoProgress).unwrap();
            v.erase("scratch", None).unwrap();
        }
        rewrites += 1;
        drop(v);
        std::thread::sleep(Duration::from_millis(3));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = writer.join().unwrap();
    let v = reopen(&path);
    let tags = v.show("m", &VersionRef::Number(1)).unwrap().tags;
    let lost: Vec<&String> = written.iter().filter(|k| !tags.contains_key(*k)).collect();
    eprintln!("{rewrites} rewrites, {} tags written", written.len());
    assert!(lost.is_empty(), "{} of {} tags that reported success are lost: {lost:?}", lost.len(), written.len());
    assert!(rewrites >= 8 && written.len() >= 8, "too little ran in 30 s: {rewrites} rewrites, {} tags", written.len());
    assert!(v.verify(true, &NoProgress).unwrap().ok());
}

/// A looping child process that is told to stop (a stop file) and killed if the test fails.
struct StopOnDrop(PathBuf, std::process::Child);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, b"");
        if matches!(self.1.try_wait(), Ok(None)) {
            let _ = self.1.kill();
            let _ = self.1.wait();
        }
    }
}

#[test]
fn cli_writers_racing_key_rotate_and_rm_erase_lose_nothing() {
    // The same through the command line, process against process: `tag` in a loop (with --wait)
    // in one child process while this test loops `key rotate` and `put` + `rm --erase`.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_init(d);
    let small = corpus().join("numpy/numpy_python3.npy");
    mvault(d).arg("put").arg(&small).args(["--name", "m", "-q"]).assert().success();
    let pf = d.join("passphrase");
    let script = "i=0; while [ ! -e \"$D/stop\" ]; do \
         if \"$MV\" --wait 30 tag m@1 c$i=x >/dev/null 2>>\"$D/errors\"; then echo c$i >> \"$D/written\"; fi; \
         i=$((i+1)); sleep 0.05; done";
    let child = std::process::Command::new("sh")
        .args(["-c", script])
        .env("MV", assert_cmd::cargo::cargo_bin("mvault"))
        .env("D", d)
        .env("MVAULT_VAULT", d.join("test.mvault"))
        .env("MVAULT_PASSPHRASE_FILE", &pf)
        .spawn()
        .unwrap();
    let mut child = StopOnDrop(d.join("stop"), child);
    // Runs for 3 s, and on a slow machine until 4 tags and 4 rewrites are done (at most 40 s).
    let start = Instant::now();
    let tags_done = || std::fs::read_to_string(d.join("written")).map(|s| s.lines().count()).unwrap_or(0);
    let mut rewrites = 0;
    // Both sides poll every 100 ms while the other holds the vault: pause between commands so
    // that each gets in.
    let pause = || std::thread::sleep(Duration::from_millis(60));
    while start.elapsed() < Duration::from_secs(40)
        && (start.elapsed() < Duration::from_secs(3) || rewrites < 4 || tags_done() < 4)
    {
        mvault(d).args(["--wait", "30", "key", "rotate", "-q"]).assert().success();
        pause();
        mvault(d).args(["--wait", "30", "put"]).arg(&small).args(["--name", "scratch", "-q"]).assert().success();
        pause();
        mvault(d).args(["--wait", "30", "rm", "scratch", "--erase", "--yes"]).assert().success();
        pause();
        rewrites += 2;
    }
    std::fs::write(d.join("stop"), b"").unwrap();
    assert!(child.1.wait().unwrap().success());
    let errors = std::fs::read_to_string(d.join("errors")).unwrap_or_default();
    assert!(errors.is_empty(), "a tag failed: {errors}");
    let written = std::fs::read_to_string(d.join("written")).unwrap_or_default();
    let show: serde_json::Value =
        serde_json::from_slice(&mvault(d).args(["show", "m@1", "--json"]).output().unwrap().stdout).unwrap();
    let lost: Vec<&str> = written.lines().filter(|k| show["tags"].get(*k).is_none()).collect();
    eprintln!("{rewrites} rewrites, {} tags written", written.lines().count());
    assert!(written.lines().count() >= 4 && rewrites >= 4, "too little ran in 40 s");
    assert!(lost.is_empty(), "tags that reported success are lost: {lost:?}");
    mvault(d).args(["verify", "--read-data"]).assert().success();
}

#[test]
fn key_rotate_killed_around_the_rename_always_leaves_a_vault_that_opens_and_verifies() {
    // Kills land in the rewrite window: at the instant the fresh file is renamed into place
    // (polled), and at delays spread over the last part of a measured unkilled rotation.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_init(d);
    let silero = corpus().join("safetensors/silero_vad_16k.safetensors");
    mvault(d).arg("put").arg(&silero).args(["--name", "s", "-q"]).assert().success();
    mvault(d).arg("put").arg(corpus().join("onnx/silero_vad.onnx")).args(["--name", "o", "-q"]).assert().success();
    let tmp = d.join("test.mvault.rewrite-tmp");
    let rotate = |kill: &dyn Fn(&mut std::process::Child)| -> bool {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("mvault"))
            .args(["key", "rotate", "-q"])
            .env("MVAULT_VAULT", d.join("test.mvault"))
            .env("MVAULT_PASSPHRASE_FILE", d.join("passphrase"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        kill(&mut child);
        let _ = child.kill();
        child.wait().unwrap().success()
    };
    let t0 = Instant::now();
    assert!(rotate(&|c| {
        let _ = c.wait();
    }));
    let full = t0.elapsed();
    let check = |what: &str| {
        let out = mvault(d).args(["verify", "--read-data"]).output().unwrap();
        assert!(out.status.success(), "{what}: verify failed: {}", String::from_utf8_lossy(&out.stdout));
        let listed = mvault(d).args(["key", "list", "--json"]).output().unwrap();
        if String::from_utf8_lossy(&listed.stdout).contains("\"rotating\": true") {
            mvault(d).args(["key", "rotate", "--resume", "-q"]).assert().success();
            mvault(d).args(["verify", "--read-data"]).assert().success();
        }
        let back = mvault(d).args(["cat", "s"]).output().unwrap();
        assert_eq!(back.stdout, std::fs::read(&silero).unwrap(), "{what}: model bytes changed");
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut runs = 0;
    let mut killed_after_tmp = 0;
    for i in 0..12 {
        if Instant::now() > deadline {
            break;
        }
        // Kill as soon as the fresh file has appeared and then been renamed away.
        let seen = std::cell::Cell::new(false);
        let finished = rotate(&|c| {
            let until = Instant::now() + full * 4 + Duration::from_secs(1);
            while Instant::now() < until {
                if tmp.exists() {
                    seen.set(true);
                } else if seen.get() {
                    let _ = c.kill();
                    return;
                }
                if c.try_wait().unwrap().is_some() {
                    return;
                }
            }
        });
        killed_after_tmp += usize::from(seen.get() && !finished);
        check(&format!("run {i}, killed at the rename"));
        // Kill at a delay in the last 40% of an unkilled rotation (and a little past it).
        let delay = full.mul_f64(0.6 + 0.5 * f64::from(i) / 12.0);
        rotate(&|_| std::thread::sleep(delay));
        check(&format!("run {i}, killed after {delay:?} of a {full:?} rotation"));
        runs += 1;
    }
    eprintln!("{runs} rounds; a rotation takes {full:?}; {killed_after_tmp} killed right after the rename");
    assert!(runs >= 3, "too few rounds ran in the time allowed");
}

/// Runs `mvault` as the unprivileged user `nobody` when this process is root (through
/// `setpriv`), else as this user; None when root and `setpriv` is missing.
fn as_unprivileged(dir: &Path) -> Option<std::process::Command> {
    let bin = assert_cmd::cargo::cargo_bin("mvault");
    let mut c = if is_root() {
        let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].into_iter().find(|p| Path::new(p).exists())?;
        let mut c = std::process::Command::new(setpriv);
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(bin);
        c
    } else {
        std::process::Command::new(bin)
    };
    c.env("MVAULT_VAULT", dir.join("test.mvault"))
        .env("MVAULT_PASSPHRASE_FILE", dir.join("passphrase"))
        .env_remove("MVAULT_PASSPHRASE")
        .current_dir(dir);
    Some(c)
}

#[test]
fn a_vault_file_the_user_may_not_write_opens_for_every_reading_command() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_init(d);
    let silero = corpus().join("safetensors/silero_vad_16k.safetensors");
    mvault(d).arg("put").arg(&silero).args(["--name", "s", "-q"]).assert().success();
    let path = d.join("test.mvault");
    let out_dir = d.join("out");
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&out_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(d.join("passphrase"), std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let before = std::fs::read(&path).unwrap();
    let Some(_) = as_unprivileged(d) else {
        eprintln!("skipped: running as root without setpriv, so no unprivileged user to test with");
        return;
    };
    let run = |args: &[&str]| as_unprivileged(d).unwrap().args(args).output().unwrap();
    for args in [
        &["info"][..],
        &["ls"],
        &["show", "s"],
        &["verify", "--read-data"],
        &["query", "SELECT name, version FROM versions"],
        &["get", "s", "-o", "out/restored"],
        &["inspect", "s"],
        &["diff", "s@1", "s@1"],
        &["stats"],
        &["families"],
        &["similar", "s"],
        &["key", "list"],
        &["key", "usage"],
        &["signer", "show"],
        &["signer", "list"],
        &["trust", "list"],
        &["allow", "list"],
    ] {
        let out = run(args);
        assert!(
            out.status.success(),
            "`mvault {}` on a read-only vault file failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let cat = run(&["cat", "s"]);
    assert!(cat.status.success(), "{}", String::from_utf8_lossy(&cat.stderr));
    assert_eq!(cat.stdout, std::fs::read(&silero).unwrap());
    assert_eq!(
        std::fs::read(out_dir.join("restored/silero_vad_16k.safetensors")).unwrap(),
        std::fs::read(&silero).unwrap()
    );
    for args in [&["tag", "s@1", "k=v"][..], &["key", "rotate"], &["rm", "s", "--erase", "--yes"], &["gc"]] {
        let out = run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "`mvault {}`: {err}", args.join(" "));
        assert!(
            err.contains(&format!(
                "the vault file {} is read-only for you",
                std::fs::canonicalize(&path).unwrap().display()
            )) && err.contains("run it as a user who may write it"),
            "`mvault {}`: {err}",
            args.join(" ")
        );
    }
    assert_eq!(std::fs::read(&path).unwrap(), before, "a read-only vault file was changed");
    assert!(!d.join("test.mvault.rewrite-tmp").exists());
    // Its owner still writes it.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    mvault(d).args(["tag", "s@1", "k=v"]).assert().success();
    mvault(d).args(["show", "s"]).assert().success().stdout(has("k=v"));
}

#[test]
fn the_library_opens_read_only_reads_everything_and_refuses_every_write_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    let silero = corpus().join("safetensors/silero_vad_16k.safetensors");
    v.put(&silero, "s", &PutOptions::default(), &NoProgress).unwrap();
    drop(v);
    let before = std::fs::read(&path).unwrap();
    let opts = OpenOptions { read_only: true, ..Default::default() };
    let locked = Vault::open(&path, &opts).unwrap();
    assert!(locked.is_read_only());
    let mut v = locked.unlock(&pass()).unwrap();
    assert_eq!(v.list(None).unwrap().models.len(), 1);
    let mut bytes = Vec::new();
    v.cat("s", &VersionRef::Latest, None, &mut bytes, &NoProgress).unwrap();
    assert_eq!(bytes, std::fs::read(&silero).unwrap());
    assert!(v.verify(true, &NoProgress).unwrap().ok());
    let shown = std::fs::canonicalize(&path).unwrap().display().to_string();
    let refused = |what: &str, e: Error| {
        assert!(matches!(e, Error::ReadOnly(_)), "{what}: {e}");
        assert_eq!(e.exit_code(), 1);
        assert!(e.to_string().contains(&format!("the vault file {shown} is read-only for you")), "{what}: {e}");
    };
    refused("tag", v.set_tag("s", &VersionRef::Latest, "k", "v").unwrap_err());
    refused("put", v.put(&silero, "t", &PutOptions::default(), &NoProgress).unwrap_err());
    refused("rotate", v.rotate(&[], false, &NoProgress).unwrap_err());
    refused("erase", v.erase("s", None).unwrap_err());
    refused("gc", v.gc().unwrap_err());
    refused("add slot", v.add_slot("x", &pw("x"), &test_params()).unwrap_err());
    drop(v);
    assert_eq!(std::fs::read(&path).unwrap(), before, "a read-only open changed the file");
    // A read-only handle keeps no writer out, and sees the writer's commits; a second writer is
    // kept out while the first holds the file.
    let reader = Vault::open(&path, &opts).unwrap().unlock(&pass()).unwrap();
    let writer = reopen(&path);
    assert!(matches!(Vault::open(&path, &OpenOptions::default()).err().unwrap(), Error::VaultInUse(_)));
    writer.set_tag("s", &VersionRef::Latest, "k", "v").unwrap();
    let shown = reader.show("s", &VersionRef::Latest).unwrap();
    assert_eq!(shown.tags.get("k").map(String::as_str), Some("v"), "the reader does not see the commit");
    drop(writer);
    drop(reader);
}

#[test]
fn a_symlink_to_nothing_and_an_empty_file_are_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::os::unix::fs::symlink("missing.mvault", d.join("test.mvault")).unwrap();
    let e = Vault::open(d.join("test.mvault"), &OpenOptions::default()).err().unwrap();
    assert!(matches!(e, Error::NotAVault { .. }), "{e}");
    assert!(e.to_string().contains("is a symbolic link to a file that does not exist"), "{e}");
    assert_eq!(e.exit_code(), 6);
    let empty = d.join("empty.mvault");
    std::fs::write(&empty, b"").unwrap();
    let e = Vault::open(&empty, &OpenOptions::default()).err().unwrap();
    assert!(e.to_string().contains("is not a modelvault vault: it is empty"), "{e}");
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0, "an empty file was initialised");
}

/// A rewrite copies the file's tables as they are: one left empty (the last model erased) is
/// still there afterwards, as it is after any other write.
#[test]
fn a_rewrite_keeps_every_table_empty_ones_too() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_init(d);
    let path = d.join("test.mvault");
    let file = d.join("only.bin");
    std::fs::write(&file, vec![7u8; 100_000]).unwrap();
    mvault(d).arg("put").arg("-q").arg(&file).args(["--name", "only"]).assert().success();
    mvault(d).args(["trust", "add", "peer", &format!("58{}", "66".repeat(31))]).assert().success();
    mvault(d).args(["trust", "remove", "peer"]).assert().success();
    mvault(d).args(["rm", "only", "--yes"]).assert().success();
    let tables = common::tamper::table_names(&path);
    for t in ["chunk_ids", "chunks", "meta", "models", "signers", "slots", "trust", "versions"] {
        assert!(tables.iter().any(|n| n == t), "table {t} missing before the rewrite: {tables:?}");
    }
    mvault(d).args(["gc", "-q"]).assert().success();
    mvault(d).args(["key", "rotate", "-q"]).assert().success();
    assert_eq!(common::tamper::table_names(&path), tables, "after key rotate");
    mvault(d).arg("put").arg("-q").arg(&file).args(["--name", "again"]).assert().success();
    mvault(d).args(["rm", "again", "--erase", "--yes"]).assert().success();
    assert_eq!(common::tamper::table_names(&path), tables, "after rm --erase");
    mvault(d).args(["verify", "--read-data"]).assert().success();
}

/// `verify`'s page check opens the path again as a writer: after a rotation renamed a fresh file
/// over it, that is another file than the one a reader holds, so the check says so and checks
/// nothing, rather than vouching for pages the reader does not read.
#[test]
fn the_page_check_of_a_reader_whose_file_was_replaced_checks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut w) = common::new_vault(dir.path());
    let f = dir.path().join("w.bin");
    std::fs::write(&f, b"weights").unwrap();
    w.put(&f, "m", &PutOptions::default(), &NoProgress).unwrap();
    drop(w);
    let reader = Vault::open(&path, &OpenOptions { read_only: true, ..Default::default() }).unwrap();
    assert_eq!(reader.check_pages().unwrap(), modelvault::store::PageCheck::Checked);
    let mut w = common::reopen(&path);
    w.rotate(&[], false, &NoProgress).unwrap();
    drop(w);
    assert_eq!(reader.check_pages().unwrap(), modelvault::store::PageCheck::Replaced);
}
