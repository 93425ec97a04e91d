//! Refusals of the Hugging Face cache paths, each asserted by its whole message and exit code,
//! with the vault (or the cache) left as it was: a folder that is not a hub cache, a snapshot
//! link out of `blobs/` (named), a revision the cache lacks, names that break the ORG/NAME rule,
//! excludes that leave nothing, and what `get --to-hf-cache` refuses.

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::*;

const REPO: &str = "org/tiny";
const FOLDER: &str = "models--org--tiny";
const COMMIT: &str = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf";

fn silero() -> PathBuf {
    corpus().join("safetensors/silero_vad_16k.safetensors")
}

/// A hub cache at `d/hub` holding `REPO` at `COMMIT` (`refs/main`): `config.json` and
/// `model.safetensors` (the silero weights), relative links into `blobs/`. Returns the cache and
/// the snapshot folder.
fn hub(d: &Path) -> (PathBuf, PathBuf) {
    let cache = d.join("hub");
    let repo = cache.join(FOLDER);
    let snap = repo.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), COMMIT).unwrap();
    std::fs::write(repo.join("blobs/aaaa"), b"{\"hidden_size\": 16}\n").unwrap();
    std::fs::copy(silero(), repo.join("blobs/bbbb")).unwrap();
    symlink("../../blobs/aaaa", snap.join("config.json")).unwrap();
    symlink("../../blobs/bbbb", snap.join("model.safetensors")).unwrap();
    (cache, snap)
}

/// A fresh vault with the cache; returns the cache, the snapshot and the vault file's bytes.
fn setup(d: &Path) -> (PathBuf, PathBuf, Vec<u8>) {
    cli_init(d);
    let (cache, snap) = hub(d);
    (cache, snap, std::fs::read(d.join("test.mvault")).unwrap())
}

/// `put --from-hf-cache ID --cache-dir CACHE EXTRA…` exits with `code` and exactly `msg`.
fn refused(d: &Path, id: &str, cache: &Path, extra: &[&str], code: i32, msg: &str) {
    mvault(d)
        .args(["put", "--from-hf-cache", id, "--cache-dir"])
        .arg(cache)
        .args(extra)
        .assert()
        .code(code)
        .stdout("")
        .stderr(format!("mvault: error: {msg}\n"));
}

fn assert_unchanged(d: &Path, before: &[u8]) {
    assert!(std::fs::read(d.join("test.mvault")).unwrap() == before, "the vault file changed");
}

#[test]
fn a_folder_that_is_not_a_hub_cache_is_refused_naming_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cache, _snap, before) = setup(d);
    // The model folder itself given as the cache.
    let plain = d.join("plain");
    std::fs::create_dir(&plain).unwrap();
    std::fs::copy(silero(), plain.join("model.safetensors")).unwrap();
    let msg = format!("'{REPO}' is not in the Hugging Face cache {} (it has no {FOLDER})", plain.display());
    refused(d, REPO, &plain, &[], 5, &msg);
    // A file given as the cache.
    let file = plain.join("model.safetensors");
    let msg =
        format!("{} is not a folder: a Hugging Face cache is a folder of models--ORG--NAME folders", file.display());
    refused(d, REPO, &file, &[], 7, &msg);
    // A repository folder without blobs/, then without snapshots/.
    let repo = cache.join(FOLDER);
    std::fs::rename(repo.join("blobs"), d.join("blobs.away")).unwrap();
    let msg = format!("{} has no blobs/ folder: it is not a Hugging Face cache repository", repo.display());
    refused(d, REPO, &cache, &[], 5, &msg);
    std::fs::rename(d.join("blobs.away"), repo.join("blobs")).unwrap();
    std::fs::rename(repo.join("snapshots"), d.join("snapshots.away")).unwrap();
    let msg = format!("{} has no snapshots/ folder: it is not a Hugging Face cache repository", repo.display());
    refused(d, REPO, &cache, &[], 5, &msg);
    assert_unchanged(d, &before);
}

#[test]
fn a_snapshot_link_out_of_blobs_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cache, snap, before) = setup(d);
    std::fs::write(d.join("secret.txt"), b"not part of any model").unwrap();
    std::fs::remove_file(snap.join("config.json")).unwrap();
    symlink("../../../../../secret.txt", snap.join("config.json")).unwrap();
    let msg = format!(
        "{} is a symbolic link to ../../../../../secret.txt, which is not a file of the repository's blobs/ ({}): in a Hugging Face snapshot only links into blobs/ are followed; nothing was stored",
        snap.join("config.json").display(),
        cache.join(FOLDER).join("blobs").display()
    );
    refused(d, REPO, &cache, &[], 7, &msg);
    assert_unchanged(d, &before);
    mvault(d).args(["ls"]).assert().success().stdout("(no models)\n");
}

#[test]
fn a_revision_the_cache_lacks_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cache, _snap, before) = setup(d);
    let repo = cache.join(FOLDER);
    let other = "0123456789abcdef0123456789abcdef01234567";
    let msg = format!("revision {other} of '{REPO}' is not in the cache: {} has no snapshots/{other}", repo.display());
    refused(d, REPO, &cache, &["--revision", other], 5, &msg);
    let msg = format!(
        "revision 'v1.0' is not in the cache: {} has no refs/v1.0 (give a commit hash, or download that revision first)",
        repo.display()
    );
    refused(d, REPO, &cache, &["--revision", "v1.0"], 5, &msg);
    assert_unchanged(d, &before);
}

#[test]
fn names_that_break_the_org_name_form_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cache, _snap, before) = setup(d);
    let msg = "invalid Hugging Face repo id \"org/tiny/x\": it has more than one '/': a Hugging Face repo id is NAME or ORG/NAME";
    refused(d, "org/tiny/x", &cache, &[], 7, msg);
    assert_unchanged(d, &before);
    // --name given: the vault's own rule for model names.
    mvault(d)
        .args(["put", "--from-hf-cache", REPO, "--name", "org/", "--cache-dir"])
        .arg(&cache)
        .assert()
        .code(7)
        .stderr("mvault: error: invalid model name \"org/\": a side of its '/' is empty: a model name is NAME or ORG/NAME\n");
    mvault(d).arg("put").arg(silero()).args(["--name", "org/a/b"]).assert().code(7).stderr(
        "mvault: error: invalid model name \"org/a/b\": it has more than one '/': a model name is NAME or ORG/NAME\n",
    );
    // A put with --name unlocks for writing before it checks the name: the content is unchanged.
    mvault(d).args(["ls"]).assert().success().stdout("(no models)\n");
}

#[test]
fn excludes_that_leave_nothing_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cache, snap, before) = setup(d);
    let msg = format!(
        "{} holds no files once the exclude patterns are applied: every file was left out; nothing was stored",
        snap.display()
    );
    refused(d, REPO, &cache, &["--exclude", "*.json", "--exclude", "*.safetensors"], 7, &msg);
    assert_unchanged(d, &before);
    let model = d.join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::copy(silero(), model.join("model.safetensors")).unwrap();
    mvault(d)
        .arg("put")
        .arg(&model)
        .args(["--name", "m", "--exclude", "**"])
        .assert()
        .code(7)
        .stderr(format!(
            "mvault: error: {} holds no files once the exclude patterns are applied: every file was left out; nothing was stored\n",
            model.display()
        ));
    // The put of a folder unlocks for writing before it lists the folder: the file's bytes may
    // move, its content does not.
    mvault(d).args(["ls"]).assert().success().stdout("(no models)\n");
    let _ = before;
}

#[test]
fn get_to_hf_cache_refusals_write_nothing_through_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_init(d);
    mvault(d).arg("put").arg(silero()).args(["--name", "vad"]).assert().success();
    mvault(d).arg("put").arg(silero()).args(["--name", "my--vad"]).assert().success();
    let cache = d.join("out");
    let get = |spec: &str, extra: &[&str], code: i32, msg: &str| {
        mvault(d)
            .args(["get", spec, "--to-hf-cache"])
            .arg(&cache)
            .args(extra)
            .assert()
            .code(code)
            .stdout("")
            .stderr(format!("mvault: error: {msg}\n"));
    };
    let bad_rev = "revision 'C9745ED1D9F207416BE6D2E6F8DE32D1F16199BF' is not a commit hash: a Hugging Face snapshot is named by 40 lowercase hex digits";
    get("vad", &["--revision", "C9745ED1D9F207416BE6D2E6F8DE32D1F16199BF"], 7, bad_rev);
    let why = "a Hugging Face repo id is NAME or ORG/NAME";
    get(
        "vad",
        &["--repo-id", "a/b/c"],
        7,
        &format!("invalid Hugging Face repo id \"a/b/c\": it has more than one '/': {why}"),
    );
    get(
        "my--vad",
        &[],
        7,
        "invalid Hugging Face repo id \"my--vad\": it contains '--', which the Hub does not allow in a repo id",
    );
    get("absent", &[], 5, "model 'absent' not found: `mvault ls` lists the models");
    assert!(!cache.exists(), "a refused export created the cache folder");
    // The repository folder is a link to a folder elsewhere: refused, nothing written there.
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::create_dir(d.join("elsewhere")).unwrap();
    symlink(d.join("elsewhere"), cache.join("models--vad")).unwrap();
    let msg = format!(
        "{} exists and is not a directory (or is a symbolic link): refusing to write through it",
        cache.join("models--vad").display()
    );
    get("vad", &[], 7, &msg);
    assert_eq!(std::fs::read_dir(d.join("elsewhere")).unwrap().count(), 0);
    // A file where the cache folder should be.
    std::fs::write(d.join("a-file"), b"x").unwrap();
    mvault(d)
        .args(["get", "vad", "--to-hf-cache"])
        .arg(d.join("a-file"))
        .assert()
        .code(7)
        .stderr(format!("mvault: error: {} exists and is not a directory\n", d.join("a-file").display()));
    // -o and --to-hf-cache together, and --tensor with it, are refused by the parser.
    mvault(d).args(["get", "vad", "-o", "x", "--to-hf-cache", "y"]).assert().code(2);
    mvault(d).args(["get", "vad", "--tensor", "t", "--to-hf-cache", "y"]).assert().code(2);
    mvault(d)
        .args(["get", "vad", "--revision", COMMIT, "-o", "x"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("the argument '--revision <COMMIT>' cannot be used with '--output <DEST>'"));
    mvault(d).args(["get", "vad", "--repo-id", "a/b"]).assert().code(2);
    // put's options for a cache are refused with a path too.
    mvault(d)
        .arg("put")
        .arg(silero())
        .args(["--name", "x", "--cache-dir", "c"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("cannot be used with"));
    assert!(!d.join("x").exists());
}
