//! `get --to-hf-cache`: a version written out as a Hugging Face hub cache, checked with the real
//! `huggingface_hub` (offline `snapshot_download`, `hf_hub_download`, `scan_cache_dir`) and
//! with `git hash-object` for the blob names of regular files; the real MiniLM weights from the
//! corpus; round trips through `put --from-hf-cache`; links in the way; refusals.

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use predicates::str::contains as has;
use sha2::{Digest, Sha256};

const REPO: &str = "sentence-transformers/all-MiniLM-L6-v2";
const FOLDER: &str = "models--sentence-transformers--all-MiniLM-L6-v2";
const MINILM_SHA256: &str = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";
const CONFIG: &[u8] = b"{\"architectures\": [\"BertModel\"], \"hidden_size\": 384}\n";
const POOLING: &[u8] = b"{\"word_embedding_dimension\": 384, \"pooling_mode_mean_tokens\": true}\n";

fn minilm() -> PathBuf {
    corpus().join("safetensors/all-MiniLM-L6-v2.model.safetensors")
}

/// A model folder `dir/NAME` with the files of the MiniLM repository's layout (`weights` as
/// `model.safetensors`); returns it.
fn model_dir(dir: &Path, name: &str, weights: &Path) -> PathBuf {
    let m = dir.join(name);
    std::fs::create_dir_all(m.join("1_Pooling")).unwrap();
    std::fs::write(m.join("config.json"), CONFIG).unwrap();
    std::fs::write(m.join("1_Pooling/config.json"), POOLING).unwrap();
    std::fs::copy(weights, m.join("model.safetensors")).unwrap();
    m
}

/// `git hash-object FILE`: the real Git's blob id.
fn git_hash_object(bytes: &[u8], dir: &Path) -> String {
    let f = dir.join("git-hash-input");
    std::fs::write(&f, bytes).unwrap();
    let out = Command::new("git").arg("hash-object").arg(&f).output().expect("git is needed as the oracle");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// What `huggingface_hub` sees offline in `cache`: the folder `snapshot_download` returns, the
/// SHA-256 of every file under it (by path), `hf_hub_download` of `1_Pooling/config.json`, and
/// `scan_cache_dir`'s repos (id, refs, commit, files) and warnings.
const ORACLE: &str = r#"
import hashlib, json, os, sys
from huggingface_hub import snapshot_download, hf_hub_download, scan_cache_dir
cache, repo = sys.argv[1], sys.argv[2]
snap = snapshot_download(repo, cache_dir=cache)
files = {}
for root, _, names in os.walk(snap):
    for n in names:
        p = os.path.join(root, n)
        with open(p, "rb") as f:
            files[os.path.relpath(p, snap)] = hashlib.sha256(f.read()).hexdigest()
one = hf_hub_download(repo, "1_Pooling/config.json", cache_dir=cache)
with open(one, "rb") as f:
    pooling = f.read().decode()
info = scan_cache_dir(cache)
repos = [{"id": r.repo_id, "refs": sorted(r.refs), "commits": sorted(v.commit_hash for v in r.revisions),
          "files": sorted(f.file_name for v in r.revisions for f in v.files)} for r in info.repos]
print(json.dumps({"snapshot": snap, "files": files, "pooling": pooling, "repos": repos,
                  "warnings": [str(w) for w in info.warnings]}))
"#;

fn oracle(home: &Path, cache: &Path, repo: &str) -> serde_json::Value {
    let out = common::hfhub::run(home, ORACLE, &[cache.to_str().unwrap(), repo]);
    assert!(out.status.success(), "huggingface_hub failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn export(d: &Path, spec: &str, cache: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    mvault(d).args(["get", spec, "--to-hf-cache"]).arg(cache).args(extra).assert()
}

fn json_export(d: &Path, spec: &str, cache: &Path, extra: &[&str]) -> serde_json::Value {
    let out = mvault(d).args(["get", spec, "--json", "--to-hf-cache"]).arg(cache).args(extra).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_version_written_to_a_hub_cache_loads_offline_in_huggingface_hub_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_init(d);
    let m = model_dir(d, "minilm", &minilm());
    mvault(d).arg("put").arg(&m).args(["--name", REPO]).assert().success();
    let cache = d.join("hub");
    let rep = json_export(d, REPO, &cache, &[]);
    let commit = rep["commit"].as_str().unwrap().to_string();
    assert_eq!(commit.len(), 40);
    let repo = cache.join(FOLDER);
    let snap = repo.join("snapshots").join(&commit);
    assert_eq!(rep["snapshot"], snap.to_str().unwrap());
    // refs/main holds the commit and nothing else (huggingface_hub reads it without stripping).
    assert_eq!(std::fs::read(repo.join("refs/main")).unwrap(), commit.as_bytes());
    // Blob names: SHA-256 for the LFS weights, Git's blob id for the JSON files; relative links.
    let config_blob = git_hash_object(CONFIG, d);
    let pooling_blob = git_hash_object(POOLING, d);
    for (path, link) in [
        ("config.json", format!("../../blobs/{config_blob}")),
        ("1_Pooling/config.json", format!("../../../blobs/{pooling_blob}")),
        ("model.safetensors", format!("../../blobs/{MINILM_SHA256}")),
    ] {
        assert_eq!(std::fs::read_link(snap.join(path)).unwrap().to_str().unwrap(), link, "{path}");
    }
    let mut blobs: Vec<String> =
        std::fs::read_dir(repo.join("blobs")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    blobs.sort();
    let mut want = vec![config_blob.clone(), pooling_blob.clone(), MINILM_SHA256.to_string()];
    want.sort();
    assert_eq!(blobs, want, "one blob per content, no temporary file left");
    assert_eq!(rep["files"][2]["lfs"], true);
    assert_eq!(rep["files"][1]["lfs"], false);

    // The real huggingface_hub, offline, finds the snapshot by refs/main and reads the bytes.
    let seen = oracle(d, &cache, REPO);
    assert_eq!(seen["snapshot"], snap.to_str().unwrap());
    assert_eq!(seen["files"]["model.safetensors"], MINILM_SHA256);
    assert_eq!(seen["files"]["config.json"], sha256_hex(CONFIG));
    assert_eq!(seen["files"]["1_Pooling/config.json"], sha256_hex(POOLING));
    assert_eq!(seen["files"].as_object().unwrap().len(), 3);
    assert_eq!(seen["pooling"].as_str().unwrap().as_bytes(), POOLING);
    assert_eq!(seen["warnings"], serde_json::json!([]));
    assert_eq!(
        seen["repos"],
        serde_json::json!([{"id": REPO, "refs": ["main"], "commits": [commit],
            "files": ["config.json", "config.json", "model.safetensors"]}])
    );
}

#[test]
fn a_snapshot_round_trips_with_its_commit_and_repo_id() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_init(d);
    let m = model_dir(d, "vad", &corpus().join("safetensors/silero_vad_16k.safetensors"));
    mvault(d).arg("put").arg(&m).args(["--name", "vad"]).assert().success();
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let first = d.join("first");
    export(d, "vad", &first, &["--repo-id", "snakers4/silero-vad", "--revision", commit])
        .success()
        .stdout(format!("{}\n", first.join("models--snakers4--silero-vad/snapshots").join(commit).display()))
        .stderr(predicates::ord::eq(format!(
            "wrote vad@1 as snakers4/silero-vad revision {commit} (refs/main): 3 file(s) (1 LFS), 1.2 MiB (SHA-256 and signature verified)\n"
        )));
    // Read back: put --from-hf-cache records the repo id and commit, and a second export
    // under the repo id reproduces the same snapshot folder without being told the commit.
    mvault(d)
        .args(["put", "--from-hf-cache", "snakers4/silero-vad", "--cache-dir"])
        .arg(&first)
        .assert()
        .success()
        .stdout("snakers4/silero-vad@1\n");
    let show: serde_json::Value =
        serde_json::from_slice(&mvault(d).args(["show", "snakers4/silero-vad", "--json"]).output().unwrap().stdout)
            .unwrap();
    assert_eq!(show["tags"]["hf.commit"], commit);
    assert_eq!(show["tags"]["hf.repo"], "snakers4/silero-vad");
    let second = d.join("second");
    let rep = json_export(d, "snakers4/silero-vad", &second, &[]);
    assert_eq!(rep["commit"], commit);
    let tree = |root: &Path| -> Vec<(PathBuf, String)> {
        let mut v: Vec<_> = files_under(root)
            .into_iter()
            .map(|p| {
                let what = match std::fs::read_link(&p) {
                    Ok(t) => format!("-> {}", t.display()),
                    Err(_) => sha256_hex(&std::fs::read(&p).unwrap()),
                };
                (p.strip_prefix(root).unwrap().to_path_buf(), what)
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(tree(&first), tree(&second));
    assert_eq!(tree(&first).len(), 7, "3 blobs, 3 links, refs/main: {:?}", tree(&first));
}

#[test]
fn without_a_recorded_commit_the_snapshot_is_named_by_its_files_and_main_moves_to_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_init(d);
    let silero = corpus().join("safetensors/silero_vad_16k.safetensors");
    let changed = corpus().join("safetensors/silero_vad_16k.one-tensor-changed.safetensors");
    mvault(d).arg("put").arg(model_dir(d, "a", &silero)).args(["--name", "team/vad"]).assert().success();
    mvault(d).arg("put").arg(model_dir(d, "b", &changed)).args(["--name", "team/vad"]).assert().success();
    let cache = d.join("hub");
    let v1 = json_export(d, "team/vad@1", &cache, &[]);
    // Again: the same folder, every link already right, nothing replaced.
    let again = json_export(d, "team/vad@1", &cache, &[]);
    assert_eq!(again["commit"], v1["commit"]);
    assert_eq!((v1["links_made"].as_u64(), again["links_made"].as_u64()), (Some(3), Some(0)));
    let v2 = json_export(d, "team/vad@2", &cache, &[]);
    assert_ne!(v1["commit"], v2["commit"]);
    let repo = cache.join("models--team--vad");
    assert_eq!(std::fs::read_to_string(repo.join("refs/main")).unwrap(), v2["commit"].as_str().unwrap());
    // The two snapshots share the JSON blobs; the weights differ: 4 blobs in all.
    assert_eq!(std::fs::read_dir(repo.join("blobs")).unwrap().count(), 4);
    let seen = oracle(d, &cache, "team/vad");
    assert_eq!(seen["files"]["model.safetensors"], sha256_hex(&std::fs::read(&changed).unwrap()));
    assert_eq!(seen["repos"][0]["commits"].as_array().unwrap().len(), 2);
    assert_eq!(seen["warnings"], serde_json::json!([]));
}

#[test]
fn a_snapshot_link_in_the_way_is_replaced_only_with_force() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_init(d);
    let m = model_dir(d, "vad", &corpus().join("safetensors/silero_vad_16k.safetensors"));
    mvault(d).arg("put").arg(&m).args(["--name", "vad"]).assert().success();
    let cache = d.join("hub");
    let rep = json_export(d, "vad", &cache, &[]);
    let snap = PathBuf::from(rep["snapshot"].as_str().unwrap());
    std::fs::write(d.join("elsewhere.json"), b"{}").unwrap();
    std::fs::remove_file(snap.join("config.json")).unwrap();
    symlink(d.join("elsewhere.json"), snap.join("config.json")).unwrap();
    export(d, "vad", &cache, &[]).code(7).stderr(format!(
        "mvault: error: {} already exists: refusing to overwrite it; remove it or pass --force\n",
        snap.join("config.json").display()
    ));
    export(d, "vad", &cache, &["--force"]).success();
    assert_eq!(
        std::fs::read_link(snap.join("config.json")).unwrap(),
        Path::new("../../blobs").join(git_hash_object(CONFIG, d))
    );
    assert_eq!(std::fs::read(d.join("elsewhere.json")).unwrap(), b"{}", "the link's old target was not written");
    // A folder where a file's link goes is never replaced.
    std::fs::remove_file(snap.join("config.json")).unwrap();
    std::fs::create_dir(snap.join("config.json")).unwrap();
    export(d, "vad", &cache, &["--force"]).code(7).stderr(has(format!(
        "{} exists and is not a regular file or a symbolic link (a directory or a special file): refusing to replace it",
        snap.join("config.json").display()
    )));
}
