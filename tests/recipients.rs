//! Recipient key slots: a slot opened by an age identity or an SSH private key, with no
//! passphrase. Keys come from the real `age-keygen` and `ssh-keygen`; the Debian `age` command
//! is the oracle for the slot body (it must decrypt what the vault wrote, and the vault must
//! accept what it encrypts). Rotation keeps recipient slots without their secrets; a body moved
//! to another slot does not open there; bad recipients and identities are clear errors.

mod common;

use std::path::Path;
use std::process::Command;

use common::keys::*;
use common::*;
use modelvault::store::records::{RECIPIENT_PAYLOAD_LABEL, RecipientSlot};
use modelvault::{Error, Identities, NoProgress, OpenOptions, PutOptions, Recipient, Vault, VersionRef};

const SLOTS: tamper::TableDefinition<&str, &[u8]> = tamper::TableDefinition::new("slots");

fn locked(path: &Path) -> Vault<modelvault::Locked> {
    Vault::open(path, &OpenOptions::default()).unwrap()
}

fn slot_record(path: &Path, name: &str) -> Vec<u8> {
    tamper::read(path, SLOTS, |t| t.get(name).unwrap().expect("slot").value().to_vec())
}

#[test]
fn an_age_identity_and_ssh_keys_unlock_a_recipient_slot() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    let model = corpus().join("safetensors/silero_vad_16k.safetensors");
    v.put(&model, "silero", &PutOptions::default(), &NoProgress).unwrap();
    let (age_id, age_r) = age_identity(dir.path(), "id.txt");
    let (ed_id, ed_pub) = ssh_identity(dir.path(), "id_ed25519", "ed25519");
    let (rsa_id, rsa_pub) = ssh_identity(dir.path(), "id_rsa", "rsa");
    let rs: Vec<Recipient> = [&age_r, &ed_pub, &rsa_pub].iter().map(|r| Recipient::parse(r).unwrap()).collect();
    v.add_recipient_slot("machines", &rs).unwrap();
    drop(v);

    let slots = locked(&path).slots().unwrap();
    let m = slots.iter().find(|s| s.name == "machines").unwrap();
    assert_eq!(m.kind, modelvault::SlotKind::Recipient);
    assert!(m.argon2.is_none());
    // The SSH comment is dropped; the key itself kept.
    let ed_key: Vec<&str> = ed_pub.split_whitespace().take(2).collect();
    assert_eq!(
        m.recipients,
        vec![age_r.clone(), ed_key.join(" "), rsa_pub.split_whitespace().take(2).collect::<Vec<_>>().join(" ")]
    );

    for id in [&age_id, &ed_id, &rsa_id] {
        let ids = Identities::from_file(id).unwrap();
        let v = locked(&path).unlock_identity(&ids, None).unwrap();
        assert_eq!(v.unlocked_slot(), "machines");
        let out = dir.path().join(format!("out-{}", id.file_name().unwrap().to_string_lossy()));
        v.get("silero", &VersionRef::Latest, &out, &Default::default(), &NoProgress).unwrap();
        let got = std::fs::read(out.join("silero_vad_16k.safetensors")).unwrap();
        assert_eq!(got, std::fs::read(&model).unwrap());
    }
    // A key that is no recipient opens nothing: exit 3's error, naming the file.
    let (other, _) = age_identity(dir.path(), "other.txt");
    let e = locked(&path).unlock_identity(&Identities::from_file(&other).unwrap(), None).err().expect("refused");
    assert!(matches!(e, Error::WrongIdentity(ref s) if s.ends_with("other.txt")), "{e:?}");
}

#[test]
fn the_age_command_opens_the_slot_body_and_the_vault_accepts_what_age_encrypts() {
    let dir = tempfile::tempdir().unwrap();
    let (path, v) = new_vault(dir.path());
    let (id, r) = age_identity(dir.path(), "id.txt");
    v.add_recipient_slot("ci", &[Recipient::parse(&r).unwrap()]).unwrap();
    let vid = v.vault_id();
    drop(v);

    // The body is a standard age file: `age -d` opens it with the identity.
    let body = locked(&path).recipient_slot_file("ci").unwrap();
    assert!(body.starts_with(b"age-encryption.org/v1\n"));
    let body_file = dir.path().join("ci.age");
    std::fs::write(&body_file, &body).unwrap();
    let plain = run(Command::new("age").arg("-d").arg("-i").arg(&id).arg(&body_file)).stdout;
    let head = RECIPIENT_PAYLOAD_LABEL.len();
    assert_eq!(plain.len(), head + 16 + 4 + 32 + 2);
    assert_eq!(&plain[..head], RECIPIENT_PAYLOAD_LABEL);
    assert_eq!(&plain[head..head + 16], &vid);
    assert_eq!(&plain[head + 16..head + 20], &1u32.to_be_bytes());
    assert_eq!(&plain[head + 52..], b"ci");

    // The other way: the payload encrypted by the `age` command to a second key, put in the slot
    // in place of ours, unlocks the vault with that key (and no longer with the first).
    let (id2, r2) = age_identity(dir.path(), "id2.txt");
    let plain_file = dir.path().join("payload");
    std::fs::write(&plain_file, &plain).unwrap();
    let by_age = run(Command::new("age").arg("-r").arg(&r2).arg(&plain_file)).stdout;
    let mut slot = RecipientSlot::decode(&slot_record(&path, "ci")).unwrap();
    slot.body = by_age;
    slot.recipients = vec![r2];
    tamper::edit(&path, SLOTS, |t| t.insert("ci", slot.encode().as_slice()).map(|_| ()).unwrap());
    std::fs::remove_file(&plain_file).unwrap();
    let v = locked(&path).unlock_identity(&Identities::from_file(&id2).unwrap(), None).unwrap();
    assert_eq!(v.unlocked_slot(), "ci");
    drop(v);
    let e = locked(&path).unlock_identity(&Identities::from_file(&id).unwrap(), None).err().expect("refused");
    assert!(matches!(e, Error::WrongIdentity(_)), "{e:?}");
}

#[test]
fn rotation_keeps_recipient_slots_without_their_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    let model = corpus().join("safetensors/silero_vad_16k.safetensors");
    v.put(&model, "silero", &PutOptions::default(), &NoProgress).unwrap();
    let (id, r) = age_identity(dir.path(), "id.txt");
    let (ed_id, ed_pub) = ssh_identity(dir.path(), "id_ed25519", "ed25519");
    v.add_recipient_slot("ci", &[Recipient::parse(&r).unwrap(), Recipient::parse(&ed_pub).unwrap()]).unwrap();
    let old_body = v.recipient_slot_file("ci").unwrap();
    // Unlocked by passphrase; nothing of the recipients' private keys is given.
    let report = v.rotate(&[], false, &NoProgress).unwrap();
    assert_eq!(report.to_epoch, 2);
    assert!(report.slots_kept.contains(&"ci".to_string()), "{:?}", report.slots_kept);
    drop(v);
    let new_body = locked_body(&path, "ci");
    assert_ne!(old_body, new_body);
    // The old body is gone from the file (the rotation rewrote it).
    assert!(!contains(&std::fs::read(&path).unwrap(), &old_body));
    for key in [&id, &ed_id] {
        let v = locked(&path).unlock_identity(&Identities::from_file(key).unwrap(), None).unwrap();
        assert_eq!(v.epoch(), 2);
        let r = v.verify(true, &NoProgress).unwrap();
        assert!(r.problems.is_empty() && r.versions == 1, "{:?}", r.problems);
    }
    // A rotation by the identity holder keeps the recipient slot too (the passphrase slot needs
    // its passphrase, as before, or --remove-other-slots).
    let mut v = locked(&path).unlock_identity(&Identities::from_file(&id).unwrap(), None).unwrap();
    let e = v.rotate(&[], false, &NoProgress).unwrap_err();
    assert!(e.to_string().contains("no passphrase given for key slot 'default'"), "{e}");
    let report = v.rotate(&[("default".into(), pass())], false, &NoProgress).unwrap();
    assert_eq!(report.to_epoch, 3);
    drop(v);
    reopen(&path);
    locked(&path).unlock_identity(&Identities::from_file(&ed_id).unwrap(), None).unwrap();
}

fn locked_body(path: &Path, name: &str) -> Vec<u8> {
    locked(path).recipient_slot_file(name).unwrap()
}

#[test]
fn a_body_moved_to_another_slot_is_damage_not_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let (path, v) = new_vault(dir.path());
    let (id, r) = age_identity(dir.path(), "id.txt");
    v.add_recipient_slot("alice", &[Recipient::parse(&r).unwrap()]).unwrap();
    drop(v);
    let rec = slot_record(&path, "alice");
    tamper::edit(&path, SLOTS, |t| {
        t.remove("alice").unwrap();
        t.insert("mallory", rec.as_slice()).map(|_| ()).unwrap();
    });
    let e = locked(&path).unlock_identity(&Identities::from_file(&id).unwrap(), None).err().expect("refused");
    assert!(matches!(e, Error::Damaged(_)), "{e:?}");
    assert!(e.to_string().contains("key slot 'mallory' opens with the identity"), "{e}");
}

#[test]
fn bad_recipients_and_identities_are_clear_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (path, v) = new_vault(dir.path());
    for (bad, says) in [
        ("", "is empty"),
        ("age1notarecipient", "is not a valid age X25519 recipient"),
        ("ssh-ed25519 AAAAnotbase64!!", "is not a valid SSH public key"),
        ("ssh-dss AAAAB3NzaC1kc3MAAACBAP", "SSH public key"),
        ("AGE-SECRET-KEY-1XYZ", "is an age secret key (an identity), not shown"),
        ("correct horse battery", "a recipient is of an unknown kind (not shown"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----", "is the start of a private key file"),
    ] {
        let e = Recipient::parse(bad).unwrap_err();
        assert!(matches!(e, Error::InvalidInput(_)), "{bad}: {e:?}");
        assert!(e.to_string().contains(says), "{bad}: {e}");
    }
    assert!(v.add_recipient_slot("none", &[]).unwrap_err().to_string().contains("needs 1 to 64 recipients"));
    let (_, r) = age_identity(dir.path(), "id.txt");
    let e = v.add_recipient_slot("default", &[Recipient::parse(&r).unwrap()]).unwrap_err();
    assert!(e.to_string().contains("key slot 'default' already exists"), "{e}");
    assert_eq!(v.slot_names().unwrap(), vec!["default".to_string()]);
    drop(v);

    // Identity files: garbage (the error names the line, never its content), a protected SSH
    // key, a missing file.
    let secret_line = "this-line-is-secret-and-must-not-be-shown";
    let garbage = dir.path().join("garbage.txt");
    std::fs::write(&garbage, format!("# comment\n{secret_line}\n")).unwrap();
    let e = Identities::from_file(&garbage).unwrap_err();
    assert!(e.to_string().contains("line 2"), "{e}");
    assert!(!e.to_string().contains(secret_line), "{e}");
    let protected = dir.path().join("protected");
    run(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "a passphrase", "-f"]).arg(&protected));
    let e = Identities::from_file(&protected).unwrap_err();
    assert!(e.to_string().contains("passphrase-protected SSH key"), "{e}");
    let e = Identities::from_file(&dir.path().join("missing")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }) && e.to_string().contains("missing"), "{e:?}");
    // The identity's secret never shows in Debug.
    let (id, _) = age_identity(dir.path(), "id2.txt");
    let ids = Identities::from_file(&id).unwrap();
    let secret = std::fs::read_to_string(&id).unwrap();
    let secret = secret.lines().find(|l| l.starts_with("AGE-SECRET-KEY-")).unwrap();
    assert!(!format!("{ids:?}").contains(&secret[15..]), "{ids:?}");
    // An identity for a passphrase slot named with --slot.
    let e = locked(&path).unlock_identity(&ids, Some("default")).err().expect("refused");
    assert!(e.to_string().contains("key slot 'default' is opened by a passphrase"), "{e}");
    let e = locked(&path).recipient_slot_file("default").unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
}

#[test]
fn the_cli_adds_lists_and_unlocks_recipient_slots() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_init(d);
    let (id, r) = age_identity(d, "id.txt");
    let (ed_id, ed_pub) = ssh_identity(d, "id_ed25519", "ed25519");
    let rfile = d.join("recipients.txt");
    std::fs::write(&rfile, format!("# the CI machine\n\n{ed_pub}\n")).unwrap();
    mvault(d).args(["key", "add", "ci", "--recipient", &r, "--recipients-file"]).arg(&rfile).assert().success();
    let out = mvault(d).args(["--json", "key", "list"]).output().unwrap();
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ci = j.as_array().unwrap().iter().find(|s| s["name"] == "ci").unwrap();
    assert_eq!(ci["kind"], "recipient");
    assert_eq!(ci["recipients"].as_array().unwrap().len(), 2);
    assert!(ci.get("argon2").is_none());
    let text = String::from_utf8(mvault(d).args(["key", "list"]).output().unwrap().stdout).unwrap();
    assert!(text.contains("OPENED BY") && text.contains("recipient: age1") && text.contains("passphrase"), "{text}");

    let model = corpus().join("safetensors/silero_vad_16k.safetensors");
    // No passphrase anywhere: the identity from the option, then from MVAULT_IDENTITY_FILE.
    mvault(d)
        .env_remove("MVAULT_PASSPHRASE_FILE")
        .args(["put", "--name", "silero", "-q", "--identity"])
        .arg(&id)
        .arg(&model)
        .assert()
        .success();
    let ls =
        mvault(d).env_remove("MVAULT_PASSPHRASE_FILE").env("MVAULT_IDENTITY_FILE", &ed_id).arg("ls").output().unwrap();
    assert!(ls.status.success() && String::from_utf8_lossy(&ls.stdout).contains("silero"));
    // Wrong key: exit 3; a file that is no identity: exit 7; a recipient slot has no passphrase.
    let (other, _) = age_identity(d, "other.txt");
    let o = mvault(d).args(["ls", "--identity"]).arg(&other).output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no key slot of this vault opens with the identity in"));
    let o = mvault(d).args(["ls", "--identity"]).arg(&rfile).output().unwrap();
    assert_eq!(o.status.code(), Some(7), "{}", String::from_utf8_lossy(&o.stderr));
    let o =
        mvault(d).args(["key", "passwd", "--slot-name", "ci", "--new-passphrase-file", "passphrase"]).output().unwrap();
    assert_eq!(o.status.code(), Some(7));
    assert!(String::from_utf8_lossy(&o.stderr).contains("opened by a private key, not a passphrase"));
    // A bad recipient on the command line: exit 7, no slot added.
    let o = mvault(d).args(["key", "add", "bad", "--recipient", "age1nope"]).output().unwrap();
    assert_eq!(o.status.code(), Some(7));
    let text = String::from_utf8(mvault(d).args(["key", "list"]).output().unwrap().stdout).unwrap();
    assert!(!text.contains("bad"), "{text}");
}

#[test]
fn a_second_machine_clones_with_only_its_private_key() {
    let (a, b, bucket) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = format!("file://{}", bucket.path().display());
    cli_init(a.path());
    let (id, r) = age_identity(b.path(), "machine.key");
    mvault(a.path()).args(["key", "add", "serving", "--recipient", &r]).assert().success();
    let model = corpus().join("safetensors/silero_vad_16k.safetensors");
    mvault(a.path()).arg("put").arg(&model).args(["--name", "silero", "-q"]).assert().success();
    mvault(a.path()).args(["push", "--remote", &remote]).assert().success();
    // Machine B has the URL and its key, no passphrase.
    let target = b.path().join("test.mvault");
    let o = mvault(b.path())
        .env_remove("MVAULT_PASSPHRASE_FILE")
        .args(["clone", &remote, "--identity"])
        .arg(&id)
        .arg(&target)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = b.path().join("out");
    mvault(b.path())
        .env_remove("MVAULT_PASSPHRASE_FILE")
        .env("MVAULT_IDENTITY_FILE", &id)
        .args(["get", "silero", "-o"])
        .arg(&out)
        .assert()
        .success();
    assert_eq!(std::fs::read(out.join("silero_vad_16k.safetensors")).unwrap(), std::fs::read(&model).unwrap());
    // Another key: exit 3, and no vault file left behind.
    let (other, _) = age_identity(b.path(), "other.key");
    let t2 = b.path().join("second.mvault");
    let o = mvault(b.path()).args(["clone", &remote, "--identity"]).arg(&other).arg(&t2).output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!t2.exists());
}
