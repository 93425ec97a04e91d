//! `mvault push`, `clone` and `pull` through the command line, two vaults in separate
//! directories sharing one directory remote (`file:///PATH`): a byte-identical get on the clone,
//! versions made on both sides kept, and a rolled-back remote refused with exit 6.

mod common;

use std::path::Path;

use common::{cli_init, corpus, mvault};
use predicates::str::contains;

fn url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

#[test]
fn two_vaults_share_models_through_a_directory_remote() {
    let (a, b, bucket) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = url(bucket.path());
    let src = corpus().join("safetensors/all-MiniLM-L6-v2.model.safetensors");
    cli_init(a.path());
    mvault(a.path()).arg("put").arg(&src).args(["--name", "minilm"]).assert().success();
    mvault(a.path())
        .args(["push", "--remote", &remote])
        .assert()
        .success()
        .stdout(contains("pushed minilm@1 (log entry 1): 6 pack(s), 240 chunk(s), 86.7 MiB uploaded"));
    // The second machine has only the URL and the passphrase.
    mvault(b.path())
        .args(["clone", &remote])
        .arg(b.path().join("test.mvault"))
        .assert()
        .success()
        .stdout(contains("pulled minilm@1 (log entry 1): 240 chunk(s), 86.7 MiB"));
    let out = b.path().join("out");
    mvault(b.path()).args(["get", "minilm", "-o"]).arg(&out).assert().success();
    assert_eq!(std::fs::read(out.join("all-MiniLM-L6-v2.model.safetensors")).unwrap(), std::fs::read(&src).unwrap());

    // Both sides make version 2; the second push is renumbered to 3 and says so.
    std::fs::write(a.path().join("w.bin"), b"from A").unwrap();
    std::fs::write(b.path().join("w.bin"), b"from B").unwrap();
    mvault(a.path()).args(["put", "w.bin", "--name", "minilm"]).assert().success();
    mvault(b.path()).args(["put", "w.bin", "--name", "minilm"]).assert().success();
    mvault(a.path()).args(["push", "--remote", &remote]).assert().success().stdout(contains("pushed minilm@2"));
    mvault(b.path())
        .args(["push", "--remote", &remote])
        .assert()
        .success()
        .stdout(contains("minilm@2 is minilm@3 now: the remote had given 2 to another version"))
        .stdout(contains("pushed minilm@3 (log entry 3)"));
    mvault(a.path()).args(["pull", "--remote", &remote]).assert().success().stdout(contains("pulled minilm@3"));
    mvault(a.path()).args(["cat", "minilm@3"]).assert().success().stdout("from B");
    mvault(b.path()).args(["pull", "--remote", &remote]).assert().success();
    mvault(b.path()).args(["cat", "minilm@2"]).assert().success().stdout("from A");

    // A remote whose last entry was deleted is refused, and nothing changes.
    std::fs::remove_file(bucket.path().join("log/000000000003")).unwrap();
    mvault(a.path()).args(["pull", "--remote", &remote]).assert().code(6).stderr(contains(
        "the remote's log ends at entry 2, but this vault has seen entry 3: the remote was rolled back",
    ));
    mvault(a.path()).args(["cat", "minilm@3"]).assert().success().stdout("from B");
}

#[test]
fn clone_with_a_wrong_passphrase_or_an_unknown_url_fails_cleanly() {
    let (a, b, bucket) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = url(bucket.path());
    cli_init(a.path());
    std::fs::write(a.path().join("w.bin"), b"x").unwrap();
    mvault(a.path()).args(["put", "w.bin", "--name", "m"]).assert().success();
    mvault(a.path()).args(["push", "--remote", &remote]).assert().success();
    std::fs::write(b.path().join("passphrase"), "wrong\n").unwrap();
    let target = b.path().join("copy.mvault");
    mvault(b.path()).args(["clone", &remote]).arg(&target).assert().code(3);
    assert!(!target.exists());
    mvault(b.path()).args(["clone", "s3x://bucket"]).arg(&target).assert().failure().stderr(contains("remote URL"));
}

#[test]
fn a_removal_syncs_and_gc_remote_collects_its_pack_after_the_grace() {
    let (a, b, bucket) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = url(bucket.path());
    cli_init(a.path());
    std::fs::write(a.path().join("one.bin"), vec![1u8; 200_000]).unwrap();
    std::fs::write(a.path().join("two.bin"), b"version two").unwrap();
    mvault(a.path()).args(["put", "one.bin", "--name", "m"]).assert().success();
    mvault(a.path()).args(["push", "--remote", &remote]).assert().success();
    mvault(a.path()).args(["put", "two.bin", "--name", "m"]).assert().success();
    mvault(a.path()).args(["push", "--remote", &remote]).assert().success();
    mvault(b.path()).args(["clone", &remote]).arg(b.path().join("test.mvault")).assert().success();
    mvault(a.path()).args(["rm", "m@1"]).assert().success();
    mvault(a.path())
        .args(["push", "--remote", &remote])
        .assert()
        .success()
        .stdout(contains("removed on the remote: m@1\npushed nothing (log entry 3)"));
    mvault(b.path())
        .args(["pull", "--remote", &remote])
        .assert()
        .success()
        .stdout(contains("removed here, as on the remote: m@1\n"));
    mvault(b.path()).args(["cat", "m@1"]).assert().failure();
    mvault(b.path()).args(["pull", "--remote", &remote]).assert().success().stdout(contains("pulled nothing"));
    mvault(b.path()).args(["cat", "m@1"]).assert().failure();

    let packs = || std::fs::read_dir(bucket.path().join("packs")).unwrap().count();
    assert_eq!(packs(), 2);
    mvault(a.path()).args(["gc", "--remote", &remote, "--grace", "1h"]).assert().success().stdout(
        "remote: deleted 0 pack(s), 0 object(s), 0 B; marked 1; 0 marked within the grace period; kept 1 pack(s)\n",
    );
    mvault(a.path())
        .args(["gc", "--remote", &remote, "--grace", "1h"])
        .assert()
        .success()
        .stdout(contains("deleted 0 pack(s), 0 object(s), 0 B; marked 0; 1 marked within the grace period"));
    assert_eq!(packs(), 2);
    mvault(a.path())
        .args(["gc", "--remote", &remote, "--grace", "0s"])
        .assert()
        .success()
        .stdout(contains("remote: deleted 1 pack(s), 2 object(s), "));
    assert_eq!(packs(), 1);
    mvault(a.path())
        .args(["gc", "--remote", &remote, "--grace", "soon"])
        .assert()
        .code(7)
        .stderr(contains("grace period 'soon': give a whole number and a unit s, m, h or d (e.g. 24h)"));
    mvault(b.path()).args(["cat", "m@2"]).assert().success().stdout("version two");
    let c = tempfile::tempdir().unwrap();
    mvault(c.path()).args(["clone", &remote]).arg(c.path().join("test.mvault")).assert().success();
    mvault(c.path()).args(["cat", "m@2"]).assert().success().stdout("version two");
    mvault(c.path()).args(["cat", "m@1"]).assert().failure();
}
