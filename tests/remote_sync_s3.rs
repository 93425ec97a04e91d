//! Push, clone and pull through a real S3 server (moto on 127.0.0.1, started and stopped by the
//! test) with the command line: two vaults in separate directories, a named remote, a clone with
//! only the URL, the credentials and the passphrase, a byte-identical get, versions made on both
//! machines kept, and a bucket listing without a name or plaintext hash.

mod common;

use common::s3::{BUCKET, Server, moto};
use common::{cli_init, corpus, mvault};
use modelvault::remote::Objects;
use predicates::str::contains;
use sha2::{Digest, Sha256};

fn cli(dir: &std::path::Path, server: &Server) -> assert_cmd::Command {
    let mut c = mvault(dir);
    server.env(&mut c);
    c
}

#[test]
fn two_vaults_share_models_through_a_moto_bucket() {
    let server = moto();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let url = format!("s3://{BUCKET}/team");
    let src = corpus().join("safetensors/all-MiniLM-L6-v2.model.safetensors");
    cli_init(a.path());
    cli(a.path(), &server).arg("put").arg(&src).args(["--name", "minilm"]).assert().success();
    cli(a.path(), &server).args(["remote", "add", "origin", &url]).assert().success();
    cli(a.path(), &server)
        .arg("push")
        .assert()
        .success()
        .stdout(contains("pushed minilm@1 (log entry 1): 6 pack(s), 240 chunk(s), 86.7 MiB uploaded"));
    cli(b.path(), &server)
        .args(["clone", &url])
        .arg(b.path().join("test.mvault"))
        .assert()
        .success()
        .stdout(contains("pulled minilm@1 (log entry 1): 240 chunk(s), 86.7 MiB"));
    let out = b.path().join("out");
    cli(b.path(), &server).args(["get", "minilm", "-o"]).arg(&out).assert().success();
    let original = std::fs::read(&src).unwrap();
    assert_eq!(std::fs::read(out.join("all-MiniLM-L6-v2.model.safetensors")).unwrap(), original);

    // Both machines make version 2 and push; both versions stay, the second renumbered.
    std::fs::write(a.path().join("w.bin"), b"from A").unwrap();
    std::fs::write(b.path().join("w.bin"), b"from B").unwrap();
    cli(a.path(), &server).args(["put", "w.bin", "--name", "minilm"]).assert().success();
    cli(b.path(), &server).args(["put", "w.bin", "--name", "minilm"]).assert().success();
    cli(a.path(), &server).args(["push", "--remote", "origin"]).assert().success();
    cli(b.path(), &server)
        .args(["push", "--remote", &url])
        .assert()
        .success()
        .stdout(contains("minilm@2 is minilm@3 now"));
    cli(a.path(), &server).args(["pull"]).assert().success().stdout(contains("pulled minilm@3"));
    // The clone recorded the remote as origin: a pull needs no --remote.
    cli(b.path(), &server).args(["remote", "list"]).assert().success().stdout(contains("origin"));
    cli(b.path(), &server).args(["pull"]).assert().success().stdout(contains("pulled minilm@2"));
    cli(a.path(), &server).args(["cat", "minilm@3"]).assert().success().stdout("from B");

    // The bucket shows no name and no plaintext hash.
    let sha = Sha256::digest(&original).iter().map(|x| format!("{x:02x}")).collect::<String>();
    let keys = server.objects("team").list("").unwrap();
    assert!(keys.len() > 10, "{keys:?}");
    for o in &keys {
        for bad in ["minilm", "MiniLM", "safetensors", "w.bin", &sha[..16]] {
            assert!(!o.key.contains(bad), "{} contains {bad}", o.key);
        }
    }
}

#[test]
fn a_removal_and_gc_remote_through_a_moto_bucket() {
    let server = moto();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let url = format!("s3://{BUCKET}/gc");
    cli_init(a.path());
    std::fs::write(a.path().join("one.bin"), vec![1u8; 200_000]).unwrap();
    std::fs::write(a.path().join("two.bin"), b"version two").unwrap();
    cli(a.path(), &server).args(["remote", "add", "origin", &url]).assert().success();
    cli(a.path(), &server).args(["put", "one.bin", "--name", "m"]).assert().success();
    cli(a.path(), &server).arg("push").assert().success();
    cli(a.path(), &server).args(["put", "two.bin", "--name", "m"]).assert().success();
    cli(a.path(), &server).arg("push").assert().success();
    cli(b.path(), &server).args(["clone", &url]).arg(b.path().join("test.mvault")).assert().success();
    cli(a.path(), &server).args(["rm", "m@1"]).assert().success();
    cli(a.path(), &server).arg("push").assert().success().stdout(contains("removed on the remote: m@1"));
    cli(b.path(), &server).arg("pull").assert().success().stdout(contains("removed here, as on the remote: m@1"));
    cli(b.path(), &server).args(["cat", "m@1"]).assert().failure();

    let count = |p: &str| server.objects("gc").list(p).unwrap().len();
    let (packs, indexes, logs, keys) = (count("packs/"), count("index/"), count("log/"), count("keys/"));
    assert_eq!((packs, indexes, logs), (2, 2, 3));
    cli(a.path(), &server).args(["gc", "--remote", "--grace", "0s"]).assert().success().stdout(contains("marked 1;"));
    assert_eq!((count("packs/"), count("index/")), (2, 2));
    cli(a.path(), &server)
        .args(["gc", "--remote", "origin", "--grace", "0s"])
        .assert()
        .success()
        .stdout(contains("remote: deleted 1 pack(s), 2 object(s), "));
    assert_eq!((count("packs/"), count("index/"), count("log/"), count("keys/")), (1, 1, 5, keys));
    cli(b.path(), &server).arg("pull").assert().success();
    cli(b.path(), &server).args(["cat", "m@2"]).assert().success().stdout("version two");
    let c = tempfile::tempdir().unwrap();
    cli(c.path(), &server).args(["clone", &url]).arg(c.path().join("test.mvault")).assert().success();
    cli(c.path(), &server).args(["cat", "m@2"]).assert().success().stdout("version two");
}
