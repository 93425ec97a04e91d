//! Signing keys travel through a remote: after `signer rotate` on one machine and a push, a
//! machine that shares the remote adopts the new key from the remote's key bundle on its next
//! pull (before this, the pull was refused: "signed by a key that is not one of this vault's
//! signers"), retires the old one as the other machine did, signs with the new one, and both
//! verify each other's versions. A bundle of the vault's epoch that does not open is damage.

mod common;

use std::path::Path;

use common::{cli_init, mvault, new_vault, pass};
use modelvault::remote::format::{KEYS, KeysBundle, content_name};
use modelvault::remote::{MemoryObjects, Objects};
use modelvault::{Error, NoProgress, PutOptions, Vault, VersionRef};
use predicates::str::contains;

fn url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

fn stdout(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

#[test]
fn cli_a_signer_rotation_reaches_the_other_machine_through_the_remote() {
    let (a, b, bucket) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = url(bucket.path());
    cli_init(a.path());
    std::fs::write(a.path().join("one.bin"), b"first version").unwrap();
    mvault(a.path()).arg("put").arg(a.path().join("one.bin")).args(["--name", "m"]).assert().success();
    mvault(a.path()).args(["push", "--remote", &remote]).assert().success();
    mvault(b.path()).args(["clone", &remote]).arg(b.path().join("test.mvault")).assert().success();
    let old = stdout(&mvault(b.path()).args(["signer", "show"]).assert().success());

    let rotated = stdout(&mvault(a.path()).args(["signer", "rotate"]).assert().success());
    let new = rotated.split_whitespace().find(|w| w.starts_with("ed25519:")).unwrap().trim_end_matches(';').to_string();
    assert!(!old.contains(&new));
    std::fs::write(a.path().join("two.bin"), b"second version, signed by the new key").unwrap();
    mvault(a.path()).arg("put").arg(a.path().join("two.bin")).args(["--name", "m"]).assert().success();
    mvault(a.path()).args(["push", "--remote", &remote]).assert().success();

    let pulled = mvault(b.path()).args(["pull", "--remote", &remote]).assert().success();
    let out = stdout(&pulled);
    assert!(out.contains(&format!("signing key {new} adopted from the remote")), "{out}");
    assert!(out.contains("retired, as on the remote"), "{out}");
    assert!(out.contains(&format!("signing key {new} signs new versions now")), "{out}");
    assert!(out.contains("pulled m@2"), "{out}");
    mvault(b.path()).args(["signer", "show"]).assert().success().stdout(contains(new.as_str()));
    let list = stdout(&mvault(b.path()).args(["signer", "list", "--json"]).assert().success());
    let list: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap();
    let state: Vec<(bool, bool)> = list.iter().map(|k| (k["active"] == true, k["retired"].is_null())).collect();
    assert_eq!(state, vec![(false, false), (true, true)], "the old key retired, the new one active: {list:?}");
    mvault(b.path()).args(["cat", "m@2"]).assert().success().stdout("second version, signed by the new key");
    mvault(b.path()).args(["get", "m@2", "--require-signer", "self", "-o"]).arg(b.path().join("o")).assert().success();

    // B signs with the new key now; A verifies what B pushes. A second pull changes nothing.
    std::fs::write(b.path().join("three.bin"), b"third, from the second machine").unwrap();
    mvault(b.path()).arg("put").arg(b.path().join("three.bin")).args(["--name", "m"]).assert().success();
    let pushed = stdout(&mvault(b.path()).args(["push", "--remote", &remote]).assert().success());
    assert!(!pushed.contains("adopted"), "{pushed}");
    let again = stdout(&mvault(a.path()).args(["pull", "--remote", &remote]).assert().success());
    assert!(again.contains("pulled m@3") && !again.contains("signing key"), "{again}");
    mvault(a.path()).args(["verify", "--read-data"]).assert().success();
    mvault(b.path()).args(["verify", "--read-data"]).assert().success();
}

#[test]
fn a_bundle_of_this_epoch_that_does_not_open_is_damage_and_changes_nothing() {
    let remote = MemoryObjects::new();
    let src = tempfile::tempdir().unwrap();
    let (_, mut a) = new_vault(src.path());
    std::fs::write(src.path().join("x"), b"x").unwrap();
    a.put(&src.path().join("x"), "m", &PutOptions::default(), &NoProgress).unwrap();
    a.push(&remote, "origin", &[], &NoProgress).unwrap();
    let dst = tempfile::tempdir().unwrap();
    let (b, _) = Vault::clone_from(&remote, dst.path().join("b.mvault"), &pass(), "origin", &NoProgress).unwrap();
    a.rotate_signer().unwrap();
    a.push(&remote, "origin", &[], &NoProgress).unwrap();
    // A forged bundle of the same epoch: the newest bundle with one byte of its sealed part flipped,
    // stored under its content name (so only the seal can catch it).
    let keys = remote.list(KEYS).unwrap();
    assert_eq!(keys.len(), 2, "the rotation made a second bundle");
    for o in keys {
        let mut bundle: KeysBundle = postcard::from_bytes(&remote.get(&o.key).unwrap().unwrap()).unwrap();
        let at = bundle.sealed.len() - 5;
        bundle.sealed[at] ^= 1;
        let bytes = postcard::to_allocvec(&bundle).unwrap();
        remote.put(&content_name(KEYS, &bytes), &bytes).unwrap();
    }
    let before = b.list_signers().unwrap().len();
    let e = b.pull(&remote, "origin", &[], &NoProgress).unwrap_err();
    assert!(matches!(e, Error::Damaged(_)), "{e}");
    assert!(e.to_string().contains("remote key bundle keys/"), "{e}");
    assert_eq!(b.list_signers().unwrap().len(), before);
    assert!(b.cat("m", &VersionRef::Number(1), None, &mut Vec::new(), &NoProgress).is_ok());
}
