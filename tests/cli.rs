//! The `mvault` command line end to end, as a script or a person would use it: every command,
//! text and `--json` output, passphrase sources, and a put killed part-way.

mod common;

use common::*;
use predicates::str::contains as has;
use serde_json::Value;

fn json(out: &[u8]) -> Value {
    serde_json::from_slice(out).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(out)))
}

#[test]
fn full_lifecycle_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_init(d);
    let silero = corpus().join("safetensors/silero_vad_16k.safetensors");
    mvault(d)
        .arg("put")
        .arg(&silero)
        .args([
            "--name",
            "silero",
            "--alias",
            "prod",
            "--tag",
            "env=test",
            "--metric",
            "accuracy=0.91",
            "--description",
            "VAD",
        ])
        .assert()
        .success()
        .stdout("silero@1\n");
    let out = mvault(d).args(["put", "--json"]).arg(&silero).args(["--name", "silero"]).output().unwrap();
    let put = json(&out.stdout);
    assert_eq!(put["version"], 2);
    assert_eq!(put["new_chunks"], 0, "an identical re-put stores no chunk");

    let ls = json(&mvault(d).args(["ls", "--json"]).output().unwrap().stdout);
    let versions = &ls["models"][0]["versions"];
    assert_eq!(versions.as_array().unwrap().len(), 2);
    assert_eq!(versions[0]["aliases"][0], "prod");
    assert_eq!(versions[0]["metrics"]["accuracy"], 0.91);
    assert_eq!(versions[0]["files"][0]["sha256"], "c59271c284ae9c8335d795d60e0bfdb71aaaceec578d9bd9ffc1b8153c319ea1");
    mvault(d).args(["ls"]).assert().success().stdout(has("silero")).stdout(has("env=test"));

    mvault(d).args(["tag", "silero@2", "stage=canary"]).assert().success();
    mvault(d).args(["metric", "silero@2", "f1=0.5"]).assert().success();
    mvault(d).args(["describe", "silero@2", "second upload"]).assert().success();
    mvault(d).args(["describe", "silero", "Silero voice activity detector"]).assert().success();
    mvault(d).args(["alias", "silero@2", "prod"]).assert().success().stdout(has("silero@prod -> silero@2"));
    let show = json(&mvault(d).args(["show", "silero@prod", "--json"]).output().unwrap().stdout);
    assert_eq!(show["version"], 2);
    assert_eq!(show["tags"]["stage"], "canary");
    assert_eq!(show["metrics"]["f1"], 0.5);
    assert_eq!(show["description"], "second upload");
    assert_eq!(show["revision"], 3);
    mvault(d).args(["untag", "silero@2", "stage"]).assert().success();
    mvault(d).args(["untag", "silero@2", "stage"]).assert().code(7).stderr(has("has no tag 'stage'"));
    mvault(d).args(["tag", "silero@2", "novalue"]).assert().code(7).stderr(has("is not KEY=VALUE"));
    mvault(d).args(["metric", "silero@2", "f1=NaN"]).assert().code(7).stderr(has("finite"));
    mvault(d).args(["tag", "silero", "a=b"]).assert().code(7).stderr(has("needs a version"));

    let signer = mvault(d).args(["signer", "show"]).output().unwrap();
    let signer = String::from_utf8(signer.stdout).unwrap();
    assert!(signer.starts_with("ed25519:") && signer.trim().len() == 8 + 64, "{signer}");
    assert!(
        String::from_utf8(mvault(d).args(["show", "silero@1"]).output().unwrap().stdout)
            .unwrap()
            .contains(signer.trim())
    );

    let cat = mvault(d).args(["cat", "silero@1"]).output().unwrap();
    assert!(cat.status.success());
    assert_eq!(cat.stdout, std::fs::read(&silero).unwrap());
    mvault(d).args(["get", "silero@prod", "-o", "restored"]).assert().success();
    assert_eq!(std::fs::read(d.join("restored/silero_vad_16k.safetensors")).unwrap(), std::fs::read(&silero).unwrap());
    mvault(d).args(["get", "silero@prod", "-o", "restored"]).assert().code(7).stderr(has("--force"));
    mvault(d).args(["get", "silero@prod", "-o", "restored", "--force"]).assert().success();

    mvault(d).args(["verify", "--read-data"]).assert().success().stdout(has("ok: 1 model(s), 2 version(s)"));
    mvault(d).args(["rm", "silero@1"]).assert().success();
    let gc = json(&mvault(d).args(["gc", "--json"]).output().unwrap().stdout);
    assert_eq!(gc["chunks_removed"], 0, "version 2 still uses every chunk");
    let chunks = show["files"][0]["chunks"].as_u64().unwrap();
    assert!(chunks >= 16, "silero has 15 tensors and a header, each its own chunk: {chunks}");
    mvault(d).args(["rm", "silero", "--yes"]).assert().success();
    let gc = json(&mvault(d).args(["gc", "--json"]).output().unwrap().stdout);
    assert_eq!(gc["chunks_removed"].as_u64().unwrap(), chunks);
    mvault(d).args(["ls"]).assert().success().stdout(has("(no models)"));
    let info = json(&mvault(d).args(["info", "--json"]).env_remove("MVAULT_PASSPHRASE_FILE").output().unwrap().stdout);
    assert_eq!(info["key_slots"][0], "default");
}

#[test]
fn passphrase_from_fd_and_from_a_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_init(d);
    mvault(d)
        .env_remove("MVAULT_PASSPHRASE_FILE")
        .args(["--passphrase-command", &format!("printf '%s\\n' '{PASS}'"), "ls"])
        .assert()
        .success();
    mvault(d)
        .env_remove("MVAULT_PASSPHRASE_FILE")
        .args(["--passphrase-command", "exit 3", "ls"])
        .assert()
        .code(7)
        .stderr(has("--passphrase-command failed"));
    // fd 0 is the command's stdin: feed the passphrase through it.
    mvault(d)
        .env_remove("MVAULT_PASSPHRASE_FILE")
        .args(["--passphrase-fd", "0", "ls"])
        .write_stdin(format!("{PASS}\n"))
        .assert()
        .success();
    mvault(d)
        .env_remove("MVAULT_PASSPHRASE_FILE")
        .args(["--passphrase-fd", "0", "ls"])
        .write_stdin("nope\n")
        .assert()
        .code(3);
}

#[test]
fn a_killed_put_leaves_the_version_whole_or_absent() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_init(d);
    let minilm = corpus().join("safetensors/all-MiniLM-L6-v2.model.safetensors");
    let mut outcomes = (0, 0);
    for (i, delay_ms) in [5u64, 40, 90, 150, 250, 400].into_iter().enumerate() {
        let args = ["put".as_ref(), minilm.as_os_str(), "--name".as_ref(), "minilm".as_ref(), "--quiet".as_ref()];
        let finished = run_killed(d, &args, delay_ms);
        let v = reopen(&d.join("test.mvault"));
        let rep = v.verify(true, &modelvault::NoProgress).unwrap();
        assert!(rep.ok(), "after kill {i} ({delay_ms} ms): {:?}", rep.problems);
        let listing = v.list(None).unwrap();
        let n = listing.models.first().map_or(0, |m| m.versions.len());
        if finished {
            outcomes.0 += 1
        } else {
            outcomes.1 += 1
        }
        for ver in listing.models.iter().flat_map(|m| &m.versions) {
            assert_eq!(ver.files[0].sha256, "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db");
        }
        assert!(n <= i + 1);
    }
    assert!(outcomes.1 > 0, "no put was actually interrupted: {outcomes:?}");
    // What interrupted puts left behind (checkpointed chunks of versions that never committed)
    // is garbage: gc removes it, leaving exactly the chunks the surviving versions use.
    let mut v = reopen(&d.join("test.mvault"));
    let g = v.gc().unwrap();
    assert!(v.verify(true, &modelvault::NoProgress).unwrap().ok());
    let mut used = std::collections::HashSet::new();
    for m in v.list(None).unwrap().models {
        for ver in m.versions {
            let man = v.manifest(&m.name, &modelvault::VersionRef::Number(ver.version)).unwrap();
            used.extend(man.files.iter().flat_map(|f| f.chunks.iter().map(|c| c.id)));
        }
    }
    assert_eq!(g.chunks_kept as usize, used.len());
    eprintln!("interrupted puts: {}; gc removed {} orphan chunk(s)", outcomes.1, g.chunks_removed);
}
