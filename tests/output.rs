//! Output files of `get`, `get --tensor` and `cat`: the mode follows the umask and the
//! temporary file is owner-only; a symbolic link swapped in for the temporary file redirects
//! nothing; the vault's own file is never written over, `--force` or not; SIGINT and SIGTERM
//! leave no partial temporary file; `get --tensor -o -` writes the file to standard output.

#![cfg(unix)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use modelvault::{NoProgress, PutOptions};

const SILERO: &str = "safetensors/silero_vad_16k.safetensors";
const MINILM: &str = "safetensors/all-MiniLM-L6-v2.model.safetensors";
const BIG_TENSOR: &str = "embeddings.word_embeddings.weight";

/// A vault in `dir` (test.mvault) holding `src` as model `name`.
fn vault_with(dir: &Path, src: &Path, name: &str) -> PathBuf {
    let (path, mut v) = new_vault(dir);
    v.put(src, name, &PutOptions::default(), &NoProgress).unwrap();
    path
}

/// `mvault ARGS` on the vault in `dir`, run by `sh` after `umask UMASK`.
fn mvault_umask(dir: &Path, umask: &str, args: &[&str]) -> Command {
    mvault(dir); // writes the passphrase file
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_mvault"))
        .args(args)
        .env("MVAULT_VAULT", dir.join("test.mvault"))
        .env("MVAULT_PASSPHRASE_FILE", dir.join("passphrase"))
        .env_remove("MVAULT_PASSPHRASE")
        .current_dir(dir);
    c
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// The vault file is still the vault: same inode, not the model's file, and it opens and
/// verifies. (Its size may change: it did across a refused `get`, as the storage engine opened it.)
fn assert_vault_intact(dir: &Path, vault: &Path, before: &u64, what: &str) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(vault).unwrap();
    assert!(m.is_file(), "{what}: the vault is no longer a regular file");
    assert_eq!(m.ino(), *before, "{what}: the vault file was replaced");
    assert_ne!(std::fs::read(vault).unwrap(), b"not the vault", "{what}: the vault holds the model's file");
    let r = mvault(dir).args(["verify", "--read-data"]).output().unwrap();
    assert!(r.status.success(), "{what}: {}", stderr_of(&r));
}

fn identity(vault: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(vault).unwrap().ino()
}

fn sha(p: &Path) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(p).unwrap()).to_vec()
}

/// The first `.mvault-tmp-*` file under `dir`, if any.
fn temp_in(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(".mvault-tmp-")))
}

/// Waits until `child` has created a temporary file in `dir`; `None` if it exited first.
fn wait_for_temp(child: &mut Child, dir: &Path) -> Option<PathBuf> {
    let start = Instant::now();
    loop {
        if let Some(t) = temp_in(dir) {
            return Some(t);
        }
        if child.try_wait().unwrap().is_some() || start.elapsed() > Duration::from_secs(60) {
            return None;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn spawn(dir: &Path, args: &[&str]) -> Child {
    mvault_umask(dir, "022", args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn output_files_get_0666_less_the_umask_for_get_and_get_tensor() {
    let dir = tempfile::tempdir().unwrap();
    vault_with(dir.path(), &corpus().join(SILERO), "s");
    for (umask, want) in [("027", 0o640), ("077", 0o600), ("022", 0o644), ("002", 0o664)] {
        let out = dir.path().join(format!("get-{umask}"));
        let r = mvault_umask(dir.path(), umask, &["get", "s", "-o", out.to_str().unwrap()]).output().unwrap();
        assert!(r.status.success(), "{}", stderr_of(&r));
        let f = out.join("silero_vad_16k.safetensors");
        assert_eq!(mode(&f), want, "get under umask {umask}");
        assert_eq!(sha(&f), sha(&corpus().join(SILERO)));

        let t = dir.path().join(format!("t-{umask}.safetensors"));
        let r = mvault_umask(dir.path(), umask, &["get", "s", "--tensor", "conv1.bias", "-o", t.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", stderr_of(&r));
        assert_eq!(mode(&t), want, "get --tensor under umask {umask}");
    }
    // --force replaces a file with the new mode, not the old one's.
    let f = dir.path().join("get-027/silero_vad_16k.safetensors");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
    let r = mvault_umask(dir.path(), "077", &["get", "s", "-o", "get-027", "--force"]).output().unwrap();
    assert!(r.status.success(), "{}", stderr_of(&r));
    assert_eq!(mode(&f), 0o600);
}

#[test]
fn the_temporary_file_is_owner_only_while_it_is_written_for_get_and_get_tensor() {
    let dir = tempfile::tempdir().unwrap();
    vault_with(dir.path(), &corpus().join(MINILM), "m");
    let cases: [&[&str]; 2] =
        [&["get", "m", "-o", "out"], &["get", "m", "--tensor", BIG_TENSOR, "-o", "out/t.safetensors"]];
    for args in cases {
        let out = dir.path().join("out");
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir(&out).unwrap();
        let mut seen = None;
        for _attempt in 0..5 {
            let mut child = spawn(dir.path(), args);
            let t = wait_for_temp(&mut child, &out);
            let m = t.as_ref().and_then(|t| std::fs::symlink_metadata(t).ok()).map(|m| m.permissions().mode() & 0o777);
            assert!(child.wait().unwrap().success());
            if m.is_some() {
                seen = m;
                break;
            }
            let _ = std::fs::remove_dir_all(&out);
            std::fs::create_dir(&out).unwrap();
        }
        assert_eq!(seen, Some(0o600), "{args:?}: the temporary file should be 0600 while it is written (umask 022)");
    }
}

#[test]
fn a_symlink_swapped_in_for_the_temporary_file_redirects_nothing() {
    let dir = tempfile::tempdir().unwrap();
    vault_with(dir.path(), &corpus().join(MINILM), "m");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"private").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cases: [&[&str]; 2] =
        [&["get", "m", "-o", "out"], &["get", "m", "--tensor", BIG_TENSOR, "-o", "out/t.safetensors"]];
    for args in cases {
        let out = dir.path().join("out");
        let mut swapped = false;
        for _attempt in 0..5 {
            let _ = std::fs::remove_dir_all(&out);
            std::fs::create_dir(&out).unwrap();
            let mut child = spawn(dir.path(), args);
            let Some(t) = wait_for_temp(&mut child, &out) else {
                child.wait().unwrap();
                continue;
            };
            // Replace the temporary file by a link to the victim, as another user of a shared
            // DEST could.
            if std::fs::remove_file(&t).is_err() {
                child.wait().unwrap();
                continue;
            }
            std::os::unix::fs::symlink(&victim, &t).unwrap();
            let r = child.wait_with_output().unwrap();
            swapped = true;
            let err = stderr_of(&r);
            assert_eq!(r.status.code(), Some(1), "{args:?}: {err}");
            assert!(err.contains("was replaced or removed by another process"), "{err}");
            break;
        }
        assert!(swapped, "{args:?}: never caught the temporary file in 5 attempts");
        assert_eq!(mode(&victim), 0o600, "{args:?}: the victim's mode was changed through the link");
        assert_eq!(std::fs::read(&victim).unwrap(), b"private");
        for name in ["all-MiniLM-L6-v2.model.safetensors", "t.safetensors"] {
            let p = out.join(name);
            assert!(std::fs::symlink_metadata(&p).is_err(), "{args:?}: {} was renamed into place", p.display());
        }
    }
}

/// Sends `sig` to a `get` running `args` once its temporary file exists, and checks that it
/// exits with `code` leaving no temporary file.
fn interrupted_get_leaves_no_temp(args: &[&str], sig: &str, code: i32) {
    let dir = tempfile::tempdir().unwrap();
    vault_with(dir.path(), &corpus().join(MINILM), "m");
    let out = dir.path().join("out");
    for _attempt in 0..5 {
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir(&out).unwrap();
        let mut child = spawn(dir.path(), args);
        if wait_for_temp(&mut child, &out).is_none() {
            child.wait().unwrap();
            continue;
        }
        let k = Command::new("kill").args(["-s", sig, &child.id().to_string()]).status().unwrap();
        assert!(k.success());
        let r = child.wait_with_output().unwrap();
        if r.status.success() {
            continue; // it finished before the signal landed: try again
        }
        let err = stderr_of(&r);
        assert_eq!(r.status.code(), Some(code), "{args:?} {sig}: {:?} {err}", r.status);
        assert!(err.contains("interrupted by signal"), "{err}");
        assert_eq!(temp_in(&out), None, "{args:?} {sig}: a partial temporary file was left behind");
        return;
    }
    panic!("{args:?} {sig}: never caught the temporary file in 5 attempts");
}

#[test]
fn sigint_during_get_removes_the_temporary_file_and_exits_130() {
    interrupted_get_leaves_no_temp(&["get", "m", "-o", "out"], "INT", 130);
}

#[test]
fn sigterm_during_get_removes_the_temporary_file_and_exits_143() {
    interrupted_get_leaves_no_temp(&["get", "m", "-o", "out"], "TERM", 143);
}

#[test]
fn sigint_and_sigterm_during_get_tensor_remove_the_temporary_file() {
    interrupted_get_leaves_no_temp(&["get", "m", "--tensor", BIG_TENSOR, "-o", "out/t.safetensors"], "INT", 130);
    interrupted_get_leaves_no_temp(&["get", "m", "--tensor", BIG_TENSOR, "-o", "out/t.safetensors"], "TERM", 143);
}

#[test]
fn the_vault_file_is_never_written_over_whatever_force_says() {
    let dir = tempfile::tempdir().unwrap();
    // A model with a file of the vault's own name.
    let src = dir.path().join("model");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a.txt"), b"first").unwrap();
    std::fs::write(src.join("test.mvault"), b"not the vault").unwrap();
    let vault = vault_with(dir.path(), &src, "m");
    let before = identity(&vault);
    let expect_refusal = |args: &[&str], shown: &str| {
        let r = mvault(dir.path()).args(args).output().unwrap();
        let err = stderr_of(&r);
        assert_eq!(r.status.code(), Some(7), "{args:?}: {err}");
        assert!(err.contains(&format!("{shown} is this vault's own file")), "{args:?}: {err}");
        assert!(err.contains("whatever --force says"), "{err}");
        assert_vault_intact(dir.path(), &vault, &before, &format!("{args:?}"));
    };
    // DEST holds the vault: refused before anything is written, with and without --force.
    expect_refusal(&["get", "m", "-o", ".", "--force"], "./test.mvault");
    expect_refusal(&["get", "m", "-o", "."], "./test.mvault");
    assert!(!dir.path().join("a.txt").exists(), "a file was written before the refusal");
    // A hard link to the vault is the vault too.
    std::fs::create_dir(dir.path().join("out")).unwrap();
    std::fs::hard_link(&vault, dir.path().join("out/test.mvault")).unwrap();
    expect_refusal(&["get", "m", "-o", "out", "--force"], "out/test.mvault");
    // get --tensor -o onto the vault.
    let sil = dir.path().join("sil");
    std::fs::create_dir(&sil).unwrap();
    std::fs::copy(corpus().join(SILERO), sil.join("s.safetensors")).unwrap();
    mvault(dir.path()).args(["put", sil.to_str().unwrap(), "--name", "s"]).assert().success();
    let before = identity(&vault);
    let expect_refusal = |args: &[&str], shown: &str| {
        let r = mvault(dir.path()).args(args).output().unwrap();
        let err = stderr_of(&r);
        assert_eq!(r.status.code(), Some(7), "{args:?}: {err}");
        assert!(err.contains(&format!("{shown} is this vault's own file")), "{args:?}: {err}");
        assert_vault_intact(dir.path(), &vault, &before, &format!("{args:?}"));
    };
    expect_refusal(&["get", "s", "--tensor", "conv1.bias", "-o", "test.mvault", "--force"], "test.mvault");
    // Standard output appended to the vault (`>> vault`): cat and get --tensor -o -.
    for args in [&["cat", "s"][..], &["get", "s", "--tensor", "conv1.bias", "-o", "-"][..]] {
        let append = std::fs::OpenOptions::new().append(true).open(&vault).unwrap();
        let r = mvault_umask(dir.path(), "022", args).stdout(append).output().unwrap();
        let err = stderr_of(&r);
        assert_eq!(r.status.code(), Some(7), "{args:?}: {err}");
        assert!(err.contains("standard output is this vault's own file"), "{args:?}: {err}");
        assert_vault_intact(dir.path(), &vault, &before, &format!("{args:?} >> vault"));
    }
}

#[test]
fn get_tensor_to_dash_writes_the_same_safetensors_file_to_standard_output() {
    let dir = tempfile::tempdir().unwrap();
    vault_with(dir.path(), &corpus().join(SILERO), "s");
    let want = ["lstm_cell.weight_ih", "final_conv.bias", "conv1.weight"];
    let mut args = vec!["get", "s"];
    for t in &want {
        args.extend(["--tensor", t]);
    }
    let file = mvault(dir.path()).args(&args).args(["-o", "file.safetensors"]).output().unwrap();
    assert!(file.status.success(), "{}", stderr_of(&file));
    let on_disk = std::fs::read(dir.path().join("file.safetensors")).unwrap();
    let r = mvault(dir.path()).args(&args).args(["-o", "-"]).output().unwrap();
    assert!(r.status.success(), "{}", stderr_of(&r));
    assert!(!dir.path().join("-").exists(), "a file named '-' was written");
    assert_eq!(r.stdout, on_disk, "standard output differs from what -o FILE writes");
    let st =
        modelvault::formats::safetensors::parse(&mut std::io::Cursor::new(&r.stdout), r.stdout.len() as u64).unwrap();
    let mut names: Vec<&str> = st.tensors.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    let mut w = want.to_vec();
    w.sort_unstable();
    assert_eq!(names, w);
    // The report goes to standard error, also with --json.
    assert!(stderr_of(&r).contains("wrote 3 tensor(s)"), "{}", stderr_of(&r));
    let j = mvault(dir.path()).args(["--json"]).args(&args).args(["-o", "-"]).output().unwrap();
    assert!(j.status.success());
    assert_eq!(j.stdout, on_disk);
    // Progress lines come first; the report is the last JSON document.
    let docs: Vec<serde_json::Value> =
        serde_json::Deserializer::from_slice(&j.stderr).into_iter().collect::<Result<_, _>>().unwrap();
    let rep = docs.last().unwrap();
    assert_eq!(rep["output"], "-");
    assert_eq!(rep["bytes"], on_disk.len() as u64);
}

#[test]
fn get_tensor_never_follows_or_replaces_a_symlink_at_the_output_path() {
    let dir = tempfile::tempdir().unwrap();
    vault_with(dir.path(), &corpus().join(SILERO), "s");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"private").unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join("link.safetensors")).unwrap();
    for force in [false, true] {
        let mut c = mvault(dir.path());
        c.args(["get", "s", "--tensor", "conv1.bias", "-o", "link.safetensors"]);
        if force {
            c.arg("--force");
        }
        let r = c.output().unwrap();
        let err = stderr_of(&r);
        assert_eq!(r.status.code(), Some(7), "force={force}: {err}");
        let want = if force { "is not a regular file" } else { "already exists" };
        assert!(err.contains(want), "force={force}: {err}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"private");
        assert!(std::fs::symlink_metadata(dir.path().join("link.safetensors")).unwrap().file_type().is_symlink());
    }
    assert_eq!(temp_in(dir.path()), None);
}
