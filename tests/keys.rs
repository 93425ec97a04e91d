//! Keys for people and for scripts (issue: key slots, passphrase change, master-key rotation,
//! signer rotation, trust, cryptographic erasure, unattended rotation).

mod common;

use std::path::Path;

use crate::common::tables::{CHUNKS, SLOTS};
use common::tamper::ReadableTable;
use common::*;
use modelvault::{Error, NoProgress, OpenOptions, Passphrase, PutOptions, Vault, VersionRef};
use predicates::str::contains as has;

fn pw(s: &str) -> Passphrase {
    Passphrase::new(s.as_bytes().to_vec()).unwrap()
}

fn open_with(path: &Path, p: &str) -> modelvault::Result<Vault<modelvault::Unlocked>> {
    Vault::open(path, &OpenOptions::default())?.unlock(&pw(p))
}

fn all_values(path: &Path, def: tamper::TableDefinition<&'static [u8; 32], &'static [u8]>) -> Vec<Vec<u8>> {
    tamper::values(path, def)
}

fn slot_values(path: &Path) -> Vec<Vec<u8>> {
    tamper::values(path, SLOTS)
}

#[test]
fn slots_add_list_remove_and_each_has_its_own_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let (path, v) = new_vault(dir.path());
    v.add_slot("ci", &pw("ci secret"), &test_params()).unwrap();
    let e = v.add_slot("ci", &pw("x"), &test_params()).unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    let names: Vec<String> = v.list_slots().unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["ci", "default"]);
    assert!(v.list_slots().unwrap().iter().any(|s| s.name == "default" && s.in_use));
    drop(v);
    // Each slot opens with its own passphrase, a wrong one with none.
    assert_eq!(open_with(&path, "ci secret").unwrap().unlocked_slot(), "ci");
    assert_eq!(open_with(&path, PASS).unwrap().unlocked_slot(), "default");
    assert!(matches!(open_with(&path, "ci secre").err().unwrap(), Error::WrongPassphrase));
    let e = Vault::open(&path, &OpenOptions::default()).unwrap().unlock_slot("ci", &pass()).err().unwrap();
    assert!(matches!(e, Error::WrongPassphrase), "the default passphrase must not open slot ci: {e}");
    // The slot in use cannot be removed; another can; the last one cannot.
    let v = open_with(&path, "ci secret").unwrap();
    let e = v.remove_slot("ci").unwrap_err();
    assert!(e.to_string().contains("the one this vault was unlocked with"), "{e}");
    let e = cli_exit::message(&e);
    assert!(e.contains("the one this command unlocked with"), "{e}");
    v.remove_slot("default").unwrap();
    let e = cli_exit::message(&v.remove_slot("ci").unwrap_err());
    assert!(e.contains("the one this command unlocked with") || e.contains("last one"), "{e}");
    drop(v);
    let v = Vault::open(&path, &OpenOptions::default()).unwrap();
    assert_eq!(v.slots().unwrap().len(), 1);
    drop(v);
    let v = open_with(&path, "ci secret").unwrap();
    v.add_slot("other", &pw("o"), &test_params()).unwrap();
    drop(v);
    let v = open_with(&path, "o").unwrap();
    v.remove_slot("ci").unwrap();
    let e = v.remove_slot("other").unwrap_err().to_string();
    assert!(e.contains("last one") || e.contains("unlocked with"), "{e}");
}

#[test]
fn passwd_rewraps_only_and_the_old_passphrase_stops_working() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    v.put(&corpus().join("safetensors/silero_vad_16k.safetensors"), "s", &PutOptions::default(), &NoProgress).unwrap();
    drop(v);
    let chunks_before = all_values(&path, CHUNKS);
    let mut v = reopen(&path);
    v.change_passphrase(None, &pw("brand new"), None).unwrap();
    drop(v);
    assert!(matches!(open_with(&path, PASS).err().unwrap(), Error::WrongPassphrase));
    let v = open_with(&path, "brand new").unwrap();
    assert!(v.verify(true, &NoProgress).unwrap().ok());
    drop(v);
    assert_eq!(all_values(&path, CHUNKS), chunks_before, "passwd must not re-encrypt any chunk");
}

#[test]
fn rotation_reencrypts_everything_keeps_models_readable_and_leaves_no_old_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    v.add_slot("ci", &pw("ci pass"), &test_params()).unwrap();
    v.add_slot("bob", &pw("bob pass"), &test_params()).unwrap();
    v.put(&corpus().join("safetensors/silero_vad_16k.safetensors"), "s", &PutOptions::default(), &NoProgress).unwrap();
    v.put(&corpus().join("onnx/silero_vad.onnx"), "o", &PutOptions::default(), &NoProgress).unwrap();
    drop(v);
    let old_chunks = all_values(&path, CHUNKS);
    let old_slots = slot_values(&path);
    let mut v = reopen(&path);
    // A slot without a passphrase blocks the rotation unless it may be removed.
    let e = v.rotate(&[("ci".into(), pw("ci pass"))], false, &NoProgress).unwrap_err().to_string();
    assert!(e.contains("no passphrase given for key slot 'bob'"), "{e}");
    let e = v
        .rotate(&[("ci".into(), pw("wrong")), ("bob".into(), pw("bob pass"))], false, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not open it"), "{e}");
    assert_eq!(v.epoch(), 1);
    let rep = v.rotate(&[("ci".into(), pw("ci pass"))], true, &NoProgress).unwrap();
    assert_eq!((rep.from_epoch, rep.to_epoch), (1, 2));
    assert_eq!(rep.slots_kept, ["ci", "default"]);
    assert_eq!(rep.slots_removed, ["bob"]);
    assert_eq!(rep.chunks as usize, old_chunks.len());
    assert!(v.verify(true, &NoProgress).unwrap().ok());
    drop(v);
    assert!(matches!(open_with(&path, "bob pass").err().unwrap(), Error::WrongPassphrase));
    let v = open_with(&path, "ci pass").unwrap();
    assert_eq!(v.epoch(), 2);
    assert!(v.verify(true, &NoProgress).unwrap().ok());
    drop(v);
    // Nothing sealed under the old master key, and no old key-slot record, is left in the file.
    let raw = std::fs::read(&path).unwrap();
    for c in &old_chunks {
        assert!(!contains(&raw, &c[5..]), "an old chunk ciphertext survived the rotation");
    }
    for s in &old_slots {
        assert!(!contains(&raw, &s[s.len() - 32..]), "an old key-slot record survived the rotation");
    }
}

#[test]
fn rotation_killed_at_random_points_resumes_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_init(d);
    let minilm = corpus().join("safetensors/all-MiniLM-L6-v2.model.safetensors");
    mvault(d).arg("put").arg(&minilm).args(["--name", "minilm", "-q"]).assert().success();
    mvault(d)
        .arg("put")
        .arg(corpus().join("safetensors/silero_vad_16k.safetensors"))
        .args(["--name", "s", "-q"])
        .assert()
        .success();
    let mut interrupted = 0;
    let mut seed = 0x2545_f491_u64;
    for i in 0..20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = 20 + seed % 900;
        if !run_killed(d, &["key".as_ref(), "rotate".as_ref(), "-q".as_ref()], delay) {
            interrupted += 1;
        }
        // Every model stays readable, even mid-rotation.
        let out = mvault(d).args(["verify", "--read-data", "--json"]).output().unwrap();
        assert!(
            out.status.success(),
            "kill {i} at {delay} ms: verify failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let listed = mvault(d).args(["key", "list", "--json"]).output().unwrap();
        if String::from_utf8_lossy(&listed.stdout).contains("\"rotating\": true") {
            mvault(d).args(["key", "rotate", "--resume", "-q"]).assert().success();
        }
        mvault(d).args(["verify", "--read-data"]).assert().success();
    }
    assert!(interrupted >= 5, "only {interrupted} of 20 rotations were actually interrupted");
    let back = mvault(d).args(["cat", "minilm"]).output().unwrap();
    assert_eq!(back.stdout, std::fs::read(&minilm).unwrap());
}

#[test]
fn erase_leaves_no_ciphertext_and_no_old_slot_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    v.put(&corpus().join("safetensors/silero_vad_16k.safetensors"), "keep", &PutOptions::default(), &NoProgress)
        .unwrap();
    v.put(&corpus().join("onnx/silero_vad.onnx"), "secret", &PutOptions::default(), &NoProgress).unwrap();
    let secret_ids: Vec<[u8; 32]> =
        v.manifest("secret", &VersionRef::Latest).unwrap().files[0].chunks.iter().map(|c| c.id).collect();
    v.change_passphrase(None, &pw("second"), None).unwrap();
    drop(v);
    let secret_values: Vec<Vec<u8>> = secret_ids.iter().map(|id| tamper::chunk_value(&path, id)).collect();
    let slots_before = slot_values(&path);
    let mut v = open_with(&path, "second").unwrap();
    v.change_passphrase(None, &pw("third"), None).unwrap();
    let rep = v.erase("secret", None).unwrap();
    assert_eq!(rep.versions, [1]);
    assert_eq!(rep.chunks_removed as usize, secret_ids.len());
    assert!(v.list(None).unwrap().models.iter().all(|m| m.name != "secret"));
    drop(v);
    let raw = std::fs::read(&path).unwrap();
    for c in &secret_values {
        assert!(!contains(&raw, &c[5..]), "an erased chunk's ciphertext is still in the file");
    }
    for s in &slots_before {
        assert!(!contains(&raw, &s[s.len() - 32..]), "a superseded key-slot record is still in the file");
    }
    assert!(!contains(&raw, b"secret"));
    let v = open_with(&path, "third").unwrap();
    assert!(v.verify(true, &NoProgress).unwrap().ok());
    assert!(matches!(v.show("secret", &VersionRef::Latest).unwrap_err(), Error::ModelNotFound(_)));
}

#[test]
fn signer_rotation_trust_and_require_signer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_init(d);
    let silero = corpus().join("safetensors/silero_vad_16k.safetensors");
    mvault(d).arg("put").arg(&silero).args(["--name", "s"]).assert().success();
    let first =
        String::from_utf8(mvault(d).args(["signer", "show"]).output().unwrap().stdout).unwrap().trim().to_string();
    mvault(d).args(["signer", "rotate"]).assert().success();
    mvault(d).arg("put").arg(&silero).args(["--name", "s"]).assert().success();
    let list: serde_json::Value =
        serde_json::from_slice(&mvault(d).args(["signer", "list", "--json"]).output().unwrap().stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(list[0]["retired"].is_u64() && list[1]["active"] == true);
    // Both versions verify: the retired key still counts for what it signed.
    mvault(d).args(["verify", "--read-data"]).assert().success();
    mvault(d).args(["trust", "add", "first", &first]).assert().success();
    mvault(d).args(["trust", "add", "bad", "xyz"]).assert().code(7).stderr(has("not an Ed25519 public key"));
    mvault(d).args(["trust", "list"]).assert().success().stdout(has("first"));
    mvault(d).args(["get", "s@1", "--require-signer", "first", "-o", "o1"]).assert().success();
    mvault(d)
        .args(["get", "s@2", "--require-signer", "first", "-o", "o2"])
        .assert()
        .code(9)
        .stderr(has("model 's' version 2 is signed by ed25519:"))
        .stderr(has("not by the key trusted as 'first'"));
    assert!(!d.join("o2").exists());
    mvault(d).args(["get", "s@2", "--require-signer", "self", "-o", "o3"]).assert().success();
    mvault(d)
        .args(["get", "s", "--require-signer", "nobody", "-o", "o4"])
        .assert()
        .code(5)
        .stderr(has("no key is trusted as 'nobody'"));
    mvault(d).args(["trust", "remove", "first"]).assert().success();
    mvault(d).args(["get", "s@1", "--require-signer", "first", "-o", "o5"]).assert().code(5);
    mvault(d).args(["trust", "remove", "first"]).assert().code(5).stderr(has("no key is trusted as 'first'"));
}

#[test]
fn unattended_rotation_script_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_init(d);
    mvault(d)
        .args(["key", "add", "ci", "--argon2-memory-kib", "256", "--argon2-time", "1", "--argon2-lanes", "1"])
        .arg("--new-passphrase-file")
        .arg({
            std::fs::write(d.join("ci-old"), "ci old\n").unwrap();
            d.join("ci-old")
        })
        .assert()
        .success();
    mvault(d)
        .arg("put")
        .arg(corpus().join("safetensors/silero_vad_16k.safetensors"))
        .args(["--name", "s"])
        .assert()
        .success();
    std::fs::write(d.join("default-new"), "default new\n").unwrap();
    std::fs::write(d.join("ci-new"), "ci new\n").unwrap();
    let secrets = d.join("secrets.tsv");
    std::fs::write(
        &secrets,
        format!(
            "# slot current new\ndefault {} {}\nci {} {}\n",
            d.join("passphrase").display(),
            d.join("default-new").display(),
            d.join("ci-old").display(),
            d.join("ci-new").display()
        ),
    )
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/rotate-keys.sh");
    let bin = assert_cmd::cargo::cargo_bin("mvault");
    for run in 0..2 {
        let out = std::process::Command::new("bash")
            .arg(&script)
            .arg(&secrets)
            .env("MVAULT_VAULT", d.join("test.mvault"))
            .env("MVAULT_BIN", &bin)
            .env_remove("MVAULT_PASSPHRASE_FILE")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "run {run}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let epochs: serde_json::Value =
        serde_json::from_slice(&mvault(d).args(["key", "list", "--json"]).output().unwrap().stdout).unwrap();
    assert!(epochs.as_array().unwrap().iter().all(|s| s["epoch"] == 3), "two runs, two rotations: {epochs}");
    mvault(d).args(["ls"]).assert().code(3);
    mvault(d).env("MVAULT_PASSPHRASE_FILE", d.join("default-new")).args(["verify", "--read-data"]).assert().success();
    mvault(d).env("MVAULT_PASSPHRASE_FILE", d.join("ci-new")).args(["verify"]).assert().success();
    mvault(d).env("MVAULT_PASSPHRASE_FILE", d.join("ci-old")).args(["verify"]).assert().code(3);
}

#[test]
fn key_usage_is_counted_and_rotation_resets_it() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    v.put(&corpus().join("safetensors/silero_vad_16k.safetensors"), "s", &PutOptions::default(), &NoProgress).unwrap();
    let u = v.key_usage().unwrap();
    assert_eq!(u.chunk_seals, 23, "one seal per stored chunk");
    assert!(u.meta_seals >= 3);
    assert_eq!(u.limit, 1 << 32);
    v.put(&corpus().join("safetensors/silero_vad_16k.safetensors"), "s", &PutOptions::default(), &NoProgress).unwrap();
    assert_eq!(v.key_usage().unwrap().chunk_seals, 23, "dedup costs no seal");
    v.rotate(&[], false, &NoProgress).unwrap();
    let u = v.key_usage().unwrap();
    assert_eq!(u.epoch, 2);
    assert_eq!(u.chunk_seals, 23, "the rotation re-sealed each chunk once under the new key");
    drop(v);
    let _ = path;
}

fn edit_slots(path: &Path, f: impl FnOnce(&mut tamper::Table<&'static str, &'static [u8]>)) {
    tamper::edit(path, SLOTS, f)
}

#[test]
fn a_changed_vault_id_with_the_right_passphrase_is_damage_and_a_wrong_passphrase_is_still_exit_3() {
    use crate::common::tables::META;
    use modelvault::store::records::{self, Header};
    let dir = tempfile::tempdir().unwrap();
    let (path, v) = new_vault(dir.path());
    drop(v);
    // Intact vault, wrong passphrase: exit 3.
    let e = open_with(&path, "not it").err().unwrap();
    assert!(matches!(e, Error::WrongPassphrase), "{e}");
    assert_eq!(e.exit_code(), 3);
    tamper::edit(&path, META, |t| {
        let mut h: Header = postcard::from_bytes(t.get("header").unwrap().unwrap().value()).unwrap();
        h.vault_id[0] ^= 1;
        t.insert("header", records::encode(&h).as_slice()).unwrap();
    });
    let e = open_with(&path, PASS).err().unwrap();
    assert!(matches!(e, Error::Damaged(_)), "{e}");
    assert_eq!(e.exit_code(), 6);
    assert!(
        e.to_string().starts_with("key slot 'default' accepts this passphrase, but the master key it wraps does not open under the vault id in the header"),
        "{e}"
    );
    assert!(matches!(open_with(&path, "not it").err().unwrap(), Error::WrongPassphrase));
    mvault(dir.path())
        .args(["ls"])
        .assert()
        .code(6)
        .stderr(has("the vault header or this key slot was changed or damaged"));
}

#[test]
fn unlock_tries_slots_cheapest_first_and_stops_at_the_slot_and_cost_limits() {
    let dir = tempfile::tempdir().unwrap();
    let (path, v) = new_vault(dir.path());
    drop(v);
    // A planted slot with a high Argon2 cost, named to come first: never derived.
    edit_slots(&path, |t| {
        let mut s = modelvault::store::records::SlotRecord::decode(t.get("default").unwrap().unwrap().value()).unwrap();
        s.params = modelvault::Argon2Params { memory_kib: 512 * 1024, time_cost: 3, lanes: 1 };
        t.insert("aaa-big", s.encode().as_slice()).unwrap();
    });
    let started = std::time::Instant::now();
    assert_eq!(open_with(&path, PASS).unwrap().unlocked_slot(), "default");
    let e = open_with(&path, "not it").err().unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(1), "the big slot was derived");
    assert!(matches!(e.base(), Error::UnlockLimit(_)), "{e}");
    assert_eq!(e.exit_code(), 3);
    assert_eq!(
        cli_exit::message(&e),
        "the passphrase opened none of the 1 key slot(s) tried; key slot 'aaa-big' was not tried: its Argon2id cost \
         (524288 KiB x 3 passes) would bring this unlock to 1573120 KiB-passes, over the limit of 1048576 KiB-passes \
         (1 GiB x 1 pass) for an unlock that tries every slot: if the passphrase is for that slot, unlock with \
         `--slot aaa-big`"
    );
    edit_slots(&path, |t| {
        t.remove("aaa-big").unwrap();
    });
    // More cheap slots than one unlock tries: the rest are named; --slot reaches one.
    let v = reopen(&path);
    for i in 0..9 {
        v.add_slot(&format!("s{i}"), &pw(&format!("p{i}")), &test_params()).unwrap();
    }
    drop(v);
    let e = open_with(&path, "not it").err().unwrap();
    assert!(matches!(e.base(), Error::UnlockLimit(_)), "{e}");
    assert_eq!(
        cli_exit::message(&e),
        "the passphrase opened none of the 8 key slots tried, the most one unlock tries without --slot; not tried: \
         's7', 's8': if the passphrase is for one of them, unlock with `--slot NAME`"
    );
    let v = Vault::open(&path, &OpenOptions::default()).unwrap().unlock_slot("s8", &pw("p8")).unwrap();
    assert_eq!(v.unlocked_slot(), "s8");
    drop(v);
    std::fs::write(dir.path().join("wrong"), "not it\n").unwrap();
    mvault(dir.path())
        .env("MVAULT_PASSPHRASE_FILE", dir.path().join("wrong"))
        .args(["ls"])
        .assert()
        .code(3)
        .stderr(has("not tried: 's7', 's8'"));
}

#[test]
fn key_remove_says_an_old_copy_of_the_slot_still_opens_the_vault_until_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    cli_init(dir.path());
    std::fs::write(dir.path().join("ci"), "ci secret\n").unwrap();
    mvault(dir.path())
        .args(["key", "add", "ci", "--argon2-memory-kib", "256", "--argon2-time", "1", "--argon2-lanes", "1"])
        .arg("--new-passphrase-file")
        .arg(dir.path().join("ci"))
        .assert()
        .success();
    mvault(dir.path()).args(["key", "remove", "ci"]).assert().success().stdout(has(
        "removed key slot 'ci'; its passphrase or private key still opens this vault through an earlier copy of the \
         slot (a backup of the vault file, or a freed page of it) until the master key is rotated: run `mvault key \
         rotate`",
    ));
}

/// The slot check value is not authenticated: a file holder who rewrites it (with the slot's
/// checksum) must not lock the right passphrase out, and a wrong passphrase stays exit 3.
#[test]
fn a_rewritten_slot_check_value_does_not_lock_out_the_right_passphrase() {
    use modelvault::store::records::SlotRecord;
    let dir = tempfile::tempdir().unwrap();
    let (path, v) = new_vault(dir.path());
    drop(v);
    edit_slots(&path, |t| {
        let bytes = t.get("default").unwrap().unwrap().value().to_vec();
        let mut slot = SlotRecord::decode(&bytes).expect("slot decodes");
        assert!(slot.kek_check.is_some(), "a format 3 slot has a check value");
        slot.kek_check = Some([0x42; 32]);
        t.insert("default", slot.encode().as_slice()).unwrap();
    });
    let v = open_with(&path, PASS).expect("the right passphrase still opens the vault");
    assert_eq!(v.unlocked_slot(), "default");
    drop(v);
    let e = open_with(&path, "not it").err().unwrap();
    assert!(matches!(e, Error::WrongPassphrase), "{e}");
}
