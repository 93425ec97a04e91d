//! The signed log (`mvault log`): every change appends an entry; a checkpoint kept by the user
//! detects each kind of rollback (an older copy of the whole file, a cut tail, an edited or
//! dropped entry, an edited tree, a dropped record the log says exists, a rewritten history);
//! readers remember the newest checkpoint they saw and refuse an older vault unless told; erasure
//! keeps that something was erased, not what; rotation keeps the tree.

mod common;

use std::path::Path;

use common::tamper::{self, ReadableTable, ReadableTableMetadata, TableDefinition};
use common::{cli_init, corpus, mvault};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const LOG_HASHES: TableDefinition<u64, &[u8; 32]> = TableDefinition::new("log_hashes");
const VERSIONS: TableDefinition<&[u8; 40], &[u8]> = TableDefinition::new("versions");

fn model() -> std::path::PathBuf {
    corpus().join("safetensors/silero_vad_16k.safetensors")
}

/// `mvault ARGS` in `dir` with the user's state directory `dir/state`.
fn run(dir: &Path, args: &[&str]) -> assert_cmd::assert::Assert {
    mvault(dir).env("MVAULT_STATE_DIR", dir.join("state")).args(args).assert()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    String::from_utf8(run(dir, args).success().get_output().stdout.clone()).unwrap()
}

/// Exit code and standard error of a failing command.
fn fails(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = run(dir, args).failure().get_output().clone();
    (out.status.code().unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn ops(dir: &Path) -> Vec<String> {
    let j: serde_json::Value = serde_json::from_str(&ok(dir, &["--json", "log"])).unwrap();
    j.as_array().unwrap().iter().map(|e| e["op"].as_str().unwrap().to_string()).collect()
}

/// A vault with `m1@1` (tagged, aliased) and a checkpoint of it in `cp1`.
fn setup(dir: &Path) -> std::path::PathBuf {
    cli_init(dir);
    let m = model();
    let m = m.to_str().unwrap();
    ok(dir, &["put", m, "--name", "m1", "-q"]);
    ok(dir, &["tag", "m1@1", "env=prod"]);
    ok(dir, &["alias", "m1@1", "prod"]);
    ok(dir, &["log", "checkpoint", "-o", "cp1"]);
    dir.join("test.mvault")
}

#[test]
fn every_change_appends_an_entry_and_names_its_subjects() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    setup(dir);
    let m = model();
    ok(dir, &["put", m.to_str().unwrap(), "--name", "m2", "-q"]);
    ok(dir, &["metric", "m2@1", "acc=0.5"]);
    ok(dir, &["describe", "m2", "a model"]);
    ok(dir, &["alias", "m1", "prod", "--remove"]);
    ok(dir, &["rm", "m2@1", "--yes"]);
    ok(dir, &["gc"]);
    ok(dir, &["trust", "add", "other", "ed25519:209a11c422b65aaaa4f8658024184cb293269c4b60551b8518bd410b2892cc2f"]);
    assert_eq!(
        ops(dir),
        ["create", "put", "revise", "alias", "put", "revise", "describe", "unalias", "rm", "gc", "trust"],
        "one entry per change, in order"
    );
    let j: serde_json::Value = serde_json::from_str(&ok(dir, &["--json", "log"])).unwrap();
    assert_eq!(j[1]["model"], "m1");
    assert_eq!(j[1]["versions"], serde_json::json!([1]));
    assert_eq!(j[3]["detail"], "prod");
    assert_eq!(j[8]["model"], "m2");
    assert_eq!(j[1]["slot"], "default");
    assert!(
        ok(dir, &["log", "verify", "--since", "cp1"])
            .contains("the log holds: 11 entries, extending the checkpoint of 4")
    );
    // The entries are sealed: the file holds no subject in the clear.
    let bytes = std::fs::read(dir.join("test.mvault")).unwrap();
    assert!(!common::contains(&bytes, b"a model"));
}

#[test]
fn a_whole_file_rollback_is_refused_and_detected_against_a_kept_checkpoint() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let vault = setup(dir);
    std::fs::copy(&vault, dir.join("old.mvault")).unwrap();
    ok(dir, &["put", model().to_str().unwrap(), "--name", "m2", "-q"]);
    ok(dir, &["log", "checkpoint", "-o", "cp2"]);
    std::fs::copy(dir.join("old.mvault"), &vault).unwrap();
    // This user saw the newer vault: every command refuses the older file.
    let (code, err) = fails(dir, &["ls"]);
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains("is not the one this user last saw: its log has 4 entries, fewer than the 5 this user last saw"),
        "{err}"
    );
    assert!(err.contains("--accept-rollback"), "{err}");
    // A user who did not see it (another state directory) is caught by the kept checkpoint.
    let other = |args: &[&str]| mvault(dir).env("MVAULT_STATE_DIR", dir.join("state2")).args(args).assert();
    let out = other(&["log", "verify", "--since", "cp2"]).failure().code(6).get_output().clone();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("the log has 4 entries, fewer than the 5 of the checkpoint: the vault was rolled back"),
        "{err}"
    );
    other(&["log", "verify", "--since", "cp1"]).success();
    // Told to accept it, the command runs and the older head becomes the one remembered.
    let out = run(dir, &["ls", "--accept-rollback"]).success().get_output().clone();
    assert!(String::from_utf8(out.stderr).unwrap().contains("accepting a rollback as told"));
    ok(dir, &["ls"]);
}

#[test]
fn a_history_rewritten_after_a_checkpoint_is_detected() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let vault = setup(dir);
    // A fork: a copy of the vault at cp1 takes another change, and its checkpoint is kept.
    let fork = dir.join("fork");
    std::fs::create_dir(&fork).unwrap();
    std::fs::copy(&vault, fork.join("test.mvault")).unwrap();
    std::fs::copy(dir.join("passphrase"), fork.join("passphrase")).unwrap();
    ok(&fork, &["tag", "m1@1", "env=fork"]);
    ok(&fork, &["log", "checkpoint", "-o", "cpf"]);
    ok(dir, &["tag", "m1@1", "env=main"]);
    ok(dir, &["tag", "m1@1", "env=main2"]);
    let cpf = fork.join("cpf");
    let (code, err) = fails(dir, &["log", "verify", "--since", cpf.to_str().unwrap()]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("the log does not extend the checkpoint: its first 5 entries were rewritten"), "{err}");
    // A checkpoint altered by hand does not verify.
    let text = std::fs::read_to_string(dir.join("cp1")).unwrap().replacen("\n4\n", "\n3\n", 1);
    std::fs::write(dir.join("cpx"), text).unwrap();
    let (code, err) = fails(dir, &["log", "verify", "--since", "cpx"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("signature does not verify"), "{err}");
    // Not a checkpoint at all: a clear error naming what it is not.
    std::fs::write(dir.join("junk"), "hello\n").unwrap();
    let (code, err) = fails(dir, &["log", "verify", "--since", "junk"]);
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("the checkpoint is malformed"), "{err}");
}

/// Edits the file as a holder without keys could, then expects `log verify` to name `needle`.
fn tampered(edit: impl FnOnce(&Path), needle: &str) {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let vault = setup(dir);
    ok(dir, &["put", model().to_str().unwrap(), "--name", "m2", "-q"]);
    edit(&vault);
    let (code, err) = fails(dir, &["log", "verify", "--since", "cp1"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains(needle), "expected '{needle}' in: {err}");
    // `verify` of the whole vault checks the log too.
    let out = run(dir, &["--json", "verify"]).failure().code(6).get_output().stdout.clone();
    assert!(String::from_utf8_lossy(&out).contains(needle), "verify did not report '{needle}'");
}

#[test]
fn an_edited_entry_is_named() {
    tampered(
        |v| {
            tamper::edit(v, LOG, |t| {
                let mut e = t.get(2).unwrap().unwrap().value().to_vec();
                let n = e.len();
                e[n - 20] ^= 1;
                t.insert(2, e.as_slice()).unwrap();
            })
        },
        "log entry 2 does not open: it was edited",
    );
}

#[test]
fn a_dropped_entry_is_named() {
    tampered(
        |v| {
            tamper::edit(v, LOG, |t| {
                t.remove(1).unwrap();
            })
        },
        "log entry 1 is missing: it was dropped",
    );
}

#[test]
fn a_cut_tail_is_named() {
    tampered(
        |v| {
            tamper::edit(v, LOG, |t| {
                t.remove(4).unwrap();
            })
        },
        "log entries 4 to 4 are missing: the log's tail was cut",
    );
}

#[test]
fn an_entry_moved_to_another_place_is_named() {
    tampered(
        |v| {
            tamper::edit(v, LOG, |t| {
                let e = t.get(1).unwrap().unwrap().value().to_vec();
                t.insert(2, e.as_slice()).unwrap();
            })
        },
        "log entry 2 does not open",
    );
}

#[test]
fn an_edited_tree_is_named() {
    tampered(
        |v| {
            tamper::edit(v, LOG_HASHES, |t| {
                let mut h = *t.get(3).unwrap().unwrap().value();
                h[0] ^= 1;
                t.insert(3, &h).unwrap();
            })
        },
        "stored hash 3 of the log",
    );
}

#[test]
fn a_dropped_version_record_the_log_says_exists_is_named() {
    tampered(
        |v| {
            let keys: Vec<[u8; 40]> =
                tamper::read(v, VERSIONS, |t| t.iter().unwrap().map(|r| *r.unwrap().0.value()).collect());
            assert_eq!(keys.len(), 2);
            // Drop both version records (keyed hashes of the names: which is which is hidden).
            tamper::edit(v, VERSIONS, |t| {
                for k in &keys {
                    t.remove(k).unwrap();
                }
            });
        },
        "the version record of m1@1 is missing: log entry 2 wrote it; it was dropped",
    );
}

const MODELS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("models");

fn model_rows(v: &Path) -> Vec<([u8; 32], Vec<u8>)> {
    tamper::read(v, MODELS, |t| {
        t.iter().unwrap().map(|r| r.unwrap()).map(|(k, v)| (*k.value(), v.value().to_vec())).collect()
    })
}

/// A single record put back to an older value (which still authenticates under its AAD): the
/// alias moved back, the tag undone, a removed version brought back. Each is named.
#[test]
fn a_single_record_rolled_back_to_an_older_value_is_named() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let vault = setup(dir);
    ok(dir, &["put", model().to_str().unwrap(), "--name", "m1", "-q"]);
    let before = model_rows(&vault);
    assert_eq!(before.len(), 1);
    ok(dir, &["alias", "m1@2", "prod"]);
    ok(dir, &["verify"]);
    tamper::edit(&vault, MODELS, |t| {
        t.insert(&before[0].0, before[0].1.as_slice()).unwrap();
    });
    let (code, err) = fails(dir, &["log", "verify"]);
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains("the model record of m1 is not the one log entry 5 wrote: an older copy of it was put back"),
        "{err}"
    );
    // A version removed and its record put back.
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let vault = setup(dir);
    ok(dir, &["put", model().to_str().unwrap(), "--name", "m1", "-q"]);
    let versions: Vec<([u8; 40], Vec<u8>)> = tamper::read(&vault, VERSIONS, |t| {
        t.iter().unwrap().map(|r| r.unwrap()).map(|(k, v)| (*k.value(), v.value().to_vec())).collect()
    });
    let models = model_rows(&vault);
    ok(dir, &["rm", "m1@2"]);
    tamper::edit(&vault, VERSIONS, |t| {
        t.insert(&versions[1].0, versions[1].1.as_slice()).unwrap();
    });
    tamper::edit(&vault, MODELS, |t| {
        t.insert(&models[0].0, models[0].1.as_slice()).unwrap();
    });
    let (code, err) = fails(dir, &["log", "verify"]);
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains("the version record of m1@2 is present, but log entry 5 removed it: it was put back"),
        "{err}"
    );
}

#[test]
fn erasure_keeps_that_something_was_erased_not_what_and_the_tree_holds() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    setup(dir);
    ok(dir, &["put", model().to_str().unwrap(), "--name", "secret-project", "-q"]);
    ok(dir, &["tag", "secret-project@1", "owner=x"]);
    ok(dir, &["log", "checkpoint", "-o", "cp2"]);
    ok(dir, &["rm", "secret-project", "--erase", "--yes"]);
    let j: serde_json::Value = serde_json::from_str(&ok(dir, &["--json", "log"])).unwrap();
    let entries = j.as_array().unwrap();
    assert_eq!(entries.len(), 8, "{j}");
    for i in [4, 5] {
        assert_eq!(entries[i]["erased"], true, "{}", entries[i]);
        assert!(entries[i]["model"].is_null());
    }
    assert_eq!(entries[6]["op"], "erase");
    assert!(entries[6]["model"].is_null(), "the erase entry names nothing");
    assert_eq!(entries[7]["op"], "gc", "the erasure's gc");
    assert_eq!(entries[1]["model"], "m1", "entries about other models keep their subjects");
    assert!(!ok(dir, &["log"]).contains("secret-project"));
    // The tree is the one checkpointed before: dropping the names changed no leaf.
    ok(dir, &["log", "verify", "--since", "cp2"]);
    ok(dir, &["log", "verify", "--since", "cp1"]);
    let bytes = std::fs::read(dir.join("test.mvault")).unwrap();
    assert!(!common::contains(&bytes, b"secret-project"));
}

#[test]
fn rotation_keeps_the_log_and_its_checkpoints() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    setup(dir);
    ok(dir, &["key", "rotate"]);
    let o = ops(dir);
    assert_eq!(o[o.len() - 2..], ["key-rotate", "reseal"], "the rotation, then the reseal that rewrote every record");
    ok(dir, &["log", "verify", "--since", "cp1"]);
    let entries = tamper::read(&dir.join("test.mvault"), LOG, |t| t.len().unwrap());
    assert_eq!(entries, 6);
    // The reseal bound the new bytes of every record: a single one put back from before is named.
    ok(dir, &["log", "verify"]);
}

#[test]
fn a_checkpoint_file_is_never_overwritten() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    setup(dir);
    let before = std::fs::read(dir.join("cp1")).unwrap();
    let (code, err) = fails(dir, &["log", "checkpoint", "-o", "cp1"]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("cp1"), "{err}");
    assert_eq!(std::fs::read(dir.join("cp1")).unwrap(), before);
}

const TRUST: TableDefinition<&str, &[u8]> = TableDefinition::new("trust");

/// A row taken from a copy of the vault (it opens under the same keys) that no entry of this
/// log wrote is named as planted.
#[test]
fn a_row_planted_from_a_copy_of_the_vault_is_named() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let vault = setup(dir);
    let fork = dir.join("fork");
    std::fs::create_dir(&fork).unwrap();
    std::fs::copy(&vault, fork.join("test.mvault")).unwrap();
    std::fs::copy(dir.join("passphrase"), fork.join("passphrase")).unwrap();
    ok(&fork, &["trust", "add", "evil", "ed25519:209a11c422b65aaaa4f8658024184cb293269c4b60551b8518bd410b2892cc2f"]);
    let row = tamper::read(&fork.join("test.mvault"), TRUST, |t| t.get("evil").unwrap().unwrap().value().to_vec());
    tamper::edit(&vault, TRUST, |t| {
        t.insert("evil", row.as_slice()).unwrap();
    });
    assert!(ok(dir, &["trust", "list"]).contains("evil"), "the planted row opens");
    let (code, err) = fails(dir, &["log", "verify"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("the trust record 'evil' is present, but no log entry wrote it: it was planted"), "{err}");
    let (code, _) = fails(dir, &["verify"]);
    assert_eq!(code, 6);
}

/// A clone of the vault (same vault id, its own log) put in the file's place is refused by a
/// reader who saw the original there.
#[test]
fn a_clone_put_in_the_files_place_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let vault = setup(dir);
    let remote = dir.join("remote");
    std::fs::create_dir(&remote).unwrap();
    let url = format!("file://{}", remote.display());
    ok(dir, &["push", "--remote", &url]);
    ok(dir, &["clone", &url, dir.join("c.mvault").to_str().unwrap()]);
    ok(dir, &["rm", "m1", "--yes"]);
    std::fs::copy(dir.join("c.mvault"), &vault).unwrap();
    let (code, err) = fails(dir, &["ls"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("another copy of the vault (a clone, or a copy of one) was put in its place"), "{err}");
    run(dir, &["ls", "--accept-rollback"]).success();
    ok(dir, &["ls"]);
}

/// A log whose tail was cut is never extended (the new entry would hide the hole), and the
/// listing warns.
#[test]
fn a_cut_log_is_not_extended_and_the_listing_warns() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let vault = setup(dir);
    tamper::edit(&vault, LOG, |t| {
        t.remove(3).unwrap();
    });
    let (code, err) = fails(dir, &["tag", "m1@1", "k=v"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("the vault's log is cut short"), "{err}");
    assert!(!ok(dir, &["--json", "ls"]).contains("\"k\""), "the tag was not written");
    let out = run(dir, &["log"]).success().get_output().clone();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("the vault state names 4 log entries, but 3 are present"), "{err}");
}
