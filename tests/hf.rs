//! Hugging Face layouts: `put --from-hf-cache` over a hub cache built here the way
//! `huggingface_hub` lays it out (blobs, relative links from `snapshots/COMMIT/`, `refs/main`),
//! with the corpus's MiniLM weights as a blob; every link the rule refuses, refused with the
//! vault unchanged; `ORG/NAME` model names; `--exclude` and the `.git` default.

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::*;
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains as has;

const REPO: &str = "sentence-transformers/all-MiniLM-L6-v2";
const FOLDER: &str = "models--sentence-transformers--all-MiniLM-L6-v2";
const COMMIT: &str = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf";
const CONFIG: &[u8] = b"{\"architectures\": [\"BertModel\"], \"hidden_size\": 384}\n";
const POOLING: &[u8] = b"{\"word_embedding_dimension\": 384, \"pooling_mode_mean_tokens\": true}\n";

fn minilm() -> PathBuf {
    corpus().join("safetensors/all-MiniLM-L6-v2.model.safetensors")
}

fn silero() -> PathBuf {
    corpus().join("safetensors/silero_vad_16k.safetensors")
}

/// A blob's name: the hex BLAKE3 of its bytes cut to 40 digits (the cache names blobs by a
/// content hash; which one does not matter to the reader).
fn blob_name(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex()[..40].to_string()
}

/// A hub cache at `dir/hub` holding `REPO` at `COMMIT` (with `refs/main`): `config.json`,
/// `1_Pooling/config.json` and `model.safetensors` (the bytes of `weights`), each a relative
/// link into `blobs/`. Returns the cache folder and the repository folder.
fn hub(dir: &Path, weights: &Path) -> (PathBuf, PathBuf) {
    let cache = dir.join("hub");
    let repo = cache.join(FOLDER);
    let snap = repo.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::create_dir_all(snap.join("1_Pooling")).unwrap();
    std::fs::write(repo.join("refs/main"), COMMIT).unwrap();
    let w = std::fs::read(weights).unwrap();
    for (path, bytes) in [("config.json", CONFIG), ("1_Pooling/config.json", POOLING), ("model.safetensors", &w[..])] {
        let name = blob_name(bytes);
        std::fs::write(repo.join("blobs").join(&name), bytes).unwrap();
        let ups = "../".repeat(2 + path.matches('/').count());
        symlink(format!("{ups}blobs/{name}"), snap.join(path)).unwrap();
    }
    (cache, repo)
}

fn put_hf(dir: &Path, cache: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    mvault(dir).args(["put", "--from-hf-cache", REPO, "--cache-dir"]).arg(cache).args(extra).assert()
}

/// Every file under `dir` with its bytes, paths relative to `dir`.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    files_under(dir)
        .into_iter()
        .map(|p| (p.strip_prefix(dir).unwrap().to_str().unwrap().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn a_snapshot_is_stored_by_commit_and_by_main_and_comes_back_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_init(d);
    let (cache, _repo) = hub(d, &minilm());
    put_hf(d, &cache, &["--revision", COMMIT])
        .success()
        .stdout(format!("{REPO}@1\n"))
        .stderr(has(format!("snapshot {COMMIT} of {REPO}")))
        .stderr(has("stored 3 file(s)"));
    // `main` through refs/main, the cache found through HF_HOME (HF_HOME/hub) as the Hub's tools find it.
    mvault(d)
        .args(["put", "--from-hf-cache", REPO, "--alias", "prod"])
        .env_remove("HF_HUB_CACHE")
        .env("HF_HOME", d)
        .assert()
        .success()
        .stdout(format!("{REPO}@2\n"))
        .stderr(has("; 0 new chunk(s)"));
    let w = std::fs::read(minilm()).unwrap();
    let want = vec![
        ("1_Pooling/config.json".to_string(), POOLING.to_vec()),
        ("config.json".to_string(), CONFIG.to_vec()),
        ("model.safetensors".to_string(), w),
    ];
    for (spec, out) in [(format!("{REPO}@1"), "out1"), (format!("{REPO}@prod"), "out2")] {
        mvault(d).args(["get", &spec, "-o", out]).assert().success();
        // The files land under the output folder by their paths inside the model: no folder is
        // made from the model name.
        assert_eq!(tree(&d.join(out)), want, "{spec}");
    }
    let show: serde_json::Value =
        serde_json::from_slice(&mvault(d).args(["show", &format!("{REPO}@2"), "--json"]).output().unwrap().stdout)
            .unwrap();
    assert_eq!(show["files"][2]["path"], "model.safetensors");
    assert_eq!(show["files"][2]["sha256"], "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db");
    mvault(d)
        .args([
            "query",
            "SELECT name, version FROM versions WHERE name LIKE 'sentence-transformers/%' ORDER BY version",
            "--csv",
        ])
        .assert()
        .success()
        .stdout(format!("name,version\n{REPO},1\n{REPO},2\n"));
}

/// A small cache (silero weights) in a fresh vault; returns the cache, the repository folder,
/// the snapshot folder and the vault's bytes before any refused put.
fn small(d: &Path) -> (PathBuf, PathBuf, PathBuf, Vec<u8>) {
    cli_init(d);
    let (cache, repo) = hub(d, &silero());
    let snap = repo.join("snapshots").join(COMMIT);
    (cache, repo, snap, std::fs::read(d.join("test.mvault")).unwrap())
}

fn assert_unchanged(d: &Path, before: &[u8]) {
    assert!(std::fs::read(d.join("test.mvault")).unwrap() == before, "the vault file changed");
    mvault(d).args(["ls"]).assert().success().stdout(has(REPO).not());
}

#[test]
fn links_leaving_blobs_are_refused_and_the_vault_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cache, repo, snap, before) = small(d);
    std::fs::write(d.join("outside.txt"), b"not part of the model").unwrap();
    let blob = blob_name(CONFIG);
    let cases: Vec<(&str, String, &str)> = vec![
        // Escapes with `..` after reaching blobs/, or climbs past the repository folder.
        ("escape", "../../blobs/../../../outside.txt".into(), "which is not a file of the repository's blobs/"),
        ("climb", "../../../../outside.txt".into(), "which is not a file of the repository's blobs/"),
        // One `../` short: a link that the kernel would resolve elsewhere than blobs/.
        ("short", format!("../blobs/{blob}"), "which is not a file of the repository's blobs/"),
        // Through another folder of the repository.
        (
            "via-snapshots",
            format!("../../snapshots/{COMMIT}/config.json"),
            "which is not a file of the repository's blobs/",
        ),
        // Absolute, even to the very blob.
        (
            "absolute",
            repo.join("blobs").join(&blob).to_str().unwrap().to_string(),
            "is a symbolic link to the absolute path",
        ),
        ("absolute-etc", "/etc/hostname".into(), "is a symbolic link to the absolute path /etc/hostname"),
    ];
    for (file, target, why) in &cases {
        let link = snap.join(file);
        symlink(target, &link).unwrap();
        put_hf(d, &cache, &[]).code(7).stderr(has(*why)).stderr(has(link.display().to_string()));
        assert_unchanged(d, &before);
        std::fs::remove_file(&link).unwrap();
    }
    // A link to a blob that is itself a link out of blobs/.
    symlink(d.join("outside.txt"), repo.join("blobs/relay")).unwrap();
    symlink("../../blobs/relay", snap.join("relay.bin")).unwrap();
    put_hf(d, &cache, &[]).code(7).stderr(has("which is itself a symbolic link"));
    assert_unchanged(d, &before);
    std::fs::remove_file(snap.join("relay.bin")).unwrap();
    // A missing blob (an unfinished download).
    symlink("../../blobs/0000000000000000000000000000000000000000", snap.join("partial.bin")).unwrap();
    put_hf(d, &cache, &[]).code(7).stderr(has("which does not exist"));
    assert_unchanged(d, &before);
    std::fs::remove_file(snap.join("partial.bin")).unwrap();
    // The same cache without the bad links is stored.
    put_hf(d, &cache, &[]).success().stdout(format!("{REPO}@1\n"));
}

#[test]
fn a_blobs_folder_that_is_a_link_elsewhere_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cache, repo, _snap, before) = small(d);
    std::fs::create_dir(d.join("elsewhere")).unwrap();
    std::fs::rename(repo.join("blobs"), d.join("elsewhere/blobs")).unwrap();
    symlink(d.join("elsewhere/blobs"), repo.join("blobs")).unwrap();
    put_hf(d, &cache, &[])
        .code(7)
        .stderr(has(format!("{} is a symbolic link or not a folder", repo.join("blobs").display())));
    assert_unchanged(d, &before);
    // A repository folder that is a link is refused the same way.
    std::fs::remove_file(repo.join("blobs")).unwrap();
    std::fs::rename(d.join("elsewhere/blobs"), repo.join("blobs")).unwrap();
    std::fs::rename(&repo, d.join("elsewhere/repo")).unwrap();
    symlink(d.join("elsewhere/repo"), &repo).unwrap();
    put_hf(d, &cache, &[]).code(7).stderr(has(format!("{} is a symbolic link or not a folder", repo.display())));
    assert_unchanged(d, &before);
}

#[test]
fn a_missing_revision_repository_or_cache_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cache, repo, _snap, before) = small(d);
    let other = "0123456789abcdef0123456789abcdef01234567";
    put_hf(d, &cache, &["--revision", other])
        .code(5)
        .stderr(has(format!("revision {other} of '{REPO}' is not in the cache")));
    put_hf(d, &cache, &["--revision", "v2.0"]).code(5).stderr(has("revision 'v2.0' is not in the cache"));
    std::fs::write(repo.join("refs/broken"), "not a hash\n").unwrap();
    put_hf(d, &cache, &["--revision", "broken"]).code(7).stderr(has("does not hold a commit hash"));
    put_hf(d, &cache, &["--revision", "../main"]).code(7).stderr(has("is neither a commit hash nor a branch"));
    mvault(d)
        .args(["put", "--from-hf-cache", "org/absent", "--cache-dir"])
        .arg(&cache)
        .assert()
        .code(5)
        .stderr(has("'org/absent' is not in the Hugging Face cache"));
    put_hf(d, &d.join("no-cache"), &[]).code(5).stderr(has("does not exist"));
    assert_unchanged(d, &before);
}

#[test]
fn a_repo_id_with_dots_or_separators_is_refused_before_any_path_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cache, _repo, _snap, before) = small(d);
    // `models--..--x` would not escape, but the id never reaches a path: the name rule refuses it.
    for (id, why) in [
        ("../x", "it must start with a letter or digit"),
        ("org/..", "it must start with a letter or digit"),
        ("org/a..b", "it must not contain '..'"),
        ("a/b/c", "it has more than one '/'"),
        ("org--x/y", "it contains '--'"),
        ("/etc", "a side of its '/' is empty"),
    ] {
        mvault(d)
            .args(["put", "--from-hf-cache", id, "--cache-dir"])
            .arg(&cache)
            .assert()
            .code(7)
            .stderr(has("invalid Hugging Face repo id"))
            .stderr(has(why));
    }
    assert_unchanged(d, &before);
}

#[test]
fn namespaced_names_work_as_refs_and_never_as_paths() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_init(d);
    mvault(d).arg("put").arg(silero()).args(["--name", "team/vad", "--alias", "prod"]).assert().stdout("team/vad@1\n");
    mvault(d).arg("put").arg(silero()).args(["--name", "team/vad"]).assert().stdout("team/vad@2\n");
    let show: serde_json::Value =
        serde_json::from_slice(&mvault(d).args(["show", "team/vad@prod", "--json"]).output().unwrap().stdout).unwrap();
    assert_eq!((show["name"].as_str(), show["version"].as_u64()), (Some("team/vad"), Some(1)));
    mvault(d).args(["show", "team/vad@2"]).assert().success();
    mvault(d).args(["get", "team/vad@prod", "-o", "out"]).assert().success();
    assert_eq!(
        tree(&d.join("out")),
        vec![("silero_vad_16k.safetensors".to_string(), std::fs::read(silero()).unwrap())]
    );
    mvault(d).args(["get", "team/vad@3", "-o", "out3"]).assert().code(5);
    for bad in ["team/vad/x", "team/", "/vad", "team/../vad"] {
        mvault(d).arg("put").arg(silero()).args(["--name", bad]).assert().code(7).stderr(has("invalid model name"));
    }
    mvault(d)
        .args(["query", "SELECT name, count(*) FROM versions WHERE name = 'team/vad' GROUP BY name", "--csv"])
        .assert()
        .stdout("name,count(*)\nteam/vad,2\n");
    mvault(d).args(["ls", "--where", "name = 'team/vad' AND version = 2"]).assert().success().stdout(has("team/vad"));
    assert!(!d.join("team").exists());
}

fn paths_of(d: &Path, spec: &str) -> Vec<String> {
    let show: serde_json::Value =
        serde_json::from_slice(&mvault(d).args(["show", spec, "--json"]).output().unwrap().stdout).unwrap();
    show["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap().to_string()).collect()
}

#[test]
fn excluded_files_and_git_are_not_in_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_init(d);
    let m = d.join("model");
    for f in ["config.json", "onnx/model.onnx", "onnx/deep/x.onnx", "weights.bin", "sub/weights.bin", ".git/config"] {
        std::fs::create_dir_all(m.join(f).parent().unwrap()).unwrap();
        std::fs::write(m.join(f), f.as_bytes()).unwrap();
    }
    // A link inside .git would be refused; the folder is left out before it is looked at.
    symlink("/etc/hostname", m.join(".git/HEAD")).unwrap();
    mvault(d).arg("put").arg(&m).args(["--name", "m"]).assert().success();
    assert_eq!(
        paths_of(d, "m@1"),
        ["config.json", "onnx/deep/x.onnx", "onnx/model.onnx", "sub/weights.bin", "weights.bin"]
    );
    mvault(d).arg("put").arg(&m).args(["--name", "m", "--exclude", "*.bin", "--exclude", "onnx/"]).assert().success();
    assert_eq!(paths_of(d, "m@2"), ["config.json"]);
    // `*` stays within a folder; `**` crosses them.
    mvault(d).arg("put").arg(&m).args(["--name", "m", "--exclude", "onnx/*.onnx"]).assert().success();
    assert_eq!(paths_of(d, "m@3"), ["config.json", "onnx/deep/x.onnx", "sub/weights.bin", "weights.bin"]);
    mvault(d).arg("put").arg(&m).args(["--name", "m", "--exclude", "onnx/**/*.onnx"]).assert().success();
    assert_eq!(paths_of(d, "m@4"), ["config.json", "sub/weights.bin", "weights.bin"]);
    // --include-git keeps .git (and so meets its link).
    mvault(d)
        .arg("put")
        .arg(&m)
        .args(["--name", "m", "--include-git"])
        .assert()
        .code(7)
        .stderr(has("HEAD is a symbolic link inside the model directory"));
    std::fs::remove_file(m.join(".git/HEAD")).unwrap();
    mvault(d).arg("put").arg(&m).args(["--name", "m", "--include-git", "--exclude", "*.onnx"]).assert().success();
    assert_eq!(paths_of(d, "m@5"), [".git/config", "config.json", "sub/weights.bin", "weights.bin"]);
    let before = mvault(d).args(["ls", "--json"]).output().unwrap().stdout;
    mvault(d)
        .arg("put")
        .arg(&m)
        .args(["--name", "m", "--exclude", "a[b"])
        .assert()
        .code(7)
        .stderr(has("exclude pattern 'a[b' is not a valid glob"));
    mvault(d)
        .arg("put")
        .arg(&m)
        .args(["--name", "m", "--exclude", "**"])
        .assert()
        .code(7)
        .stderr(has("holds no files"));
    assert!(mvault(d).args(["ls", "--json"]).output().unwrap().stdout == before, "a refused put changed the vault");
    // Excludes apply to a snapshot too.
    let (cache, _) = hub(d, &silero());
    put_hf(d, &cache, &["--exclude", "1_Pooling", "--exclude", "*.json"]).success();
    assert_eq!(paths_of(d, REPO), ["model.safetensors"]);
}

#[test]
fn a_blob_swapped_for_a_link_after_the_listing_is_refused_when_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cache, repo) = hub(d, &silero());
    let snap = modelvault::ops::hf::snapshot(&cache, REPO, "main", &modelvault::Filter::default()).unwrap();
    assert_eq!(snap.commit, COMMIT);
    let paths: Vec<&str> = snap.sources.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["1_Pooling/config.json", "config.json", "model.safetensors"]);
    // Between the listing and the read, the weights blob becomes a link to a file outside.
    std::fs::write(d.join("outside.bin"), b"secret bytes outside the cache").unwrap();
    let blob = repo.join("blobs").join(blob_name(&std::fs::read(silero()).unwrap()));
    std::fs::remove_file(&blob).unwrap();
    symlink(d.join("outside.bin"), &blob).unwrap();
    let (_path, mut v) = new_vault(d);
    let opts = modelvault::PutOptions::default();
    let e = v.put_sources(&snap.sources, REPO, &opts, &modelvault::NoProgress).unwrap_err();
    assert!(matches!(e, modelvault::Error::InvalidInput(_)), "{e}");
    assert!(e.to_string().contains("is a symbolic link: a link is followed only to a regular file in blobs/"), "{e}");
    assert!(v.list(None).unwrap().models.is_empty());
}
