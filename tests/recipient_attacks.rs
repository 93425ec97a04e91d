//! Attacks on recipient key slots by someone who holds the vault file (or runs the remote) but
//! not its master key. A recipient list they plant or rewrite never receives a rotated master
//! key (the slot's MAC is keyed from the master key); a slot they plant that opens with the
//! owner's identity (encrypted to the owner's public key) never locks the owner out; a vault of
//! recipient slots only says so to a passphrase. Keys come from `age-keygen`, planted bodies from
//! the `age` command.

mod common;

use std::path::Path;

use common::keys::*;
use common::*;
use modelvault::store::records::{RECIPIENT_PAYLOAD_LABEL, RecipientSlot};
use modelvault::{Error, Identities, NoProgress, OpenOptions, Recipient, Vault};

/// Slot records to write: (name, bytes).
type Rows<'a> = Vec<(&'a str, Vec<u8>)>;

const SLOTS: tamper::TableDefinition<&str, &[u8]> = tamper::TableDefinition::new("slots");

fn locked(path: &Path) -> Vault<modelvault::Locked> {
    Vault::open(path, &OpenOptions::default()).unwrap()
}

fn slot(path: &Path, name: &str) -> RecipientSlot {
    RecipientSlot::decode(&tamper::read(path, SLOTS, |t| t.get(name).unwrap().expect("slot").value().to_vec()))
        .expect("a recipient slot")
}

fn put_slot(path: &Path, name: &str, bytes: &[u8]) {
    tamper::edit(path, SLOTS, |t| t.insert(name, bytes).map(|_| ()).unwrap());
}

/// The payload a recipient slot carries, made by hand: `mk` for `epoch`, bound to `vid` and `name`.
fn payload(vid: &[u8; 16], epoch: u32, mk: &[u8; 32], name: &str) -> Vec<u8> {
    let mut p = RECIPIENT_PAYLOAD_LABEL.to_vec();
    p.extend_from_slice(vid);
    p.extend_from_slice(&epoch.to_be_bytes());
    p.extend_from_slice(mk);
    p.extend_from_slice(name.as_bytes());
    p
}

/// A slot as the first layout wrote it (magic byte 0, no MACs): the V1 encoding of `s` without
/// its MACs, less their two `None` bytes, with the checksum made again.
fn first_layout(s: &RecipientSlot) -> Vec<u8> {
    use sha2::Digest;
    let mut s = s.clone();
    (s.mac, s.next_mac) = (None, None);
    let enc = s.encode();
    let mut body = enc[..enc.len() - 32 - 2].to_vec();
    assert_eq!(&enc[enc.len() - 34..enc.len() - 32], &[0, 0], "two None options end the V1 body");
    body[3] = 0;
    let sum = sha2::Sha256::digest(&body);
    body.extend_from_slice(&sum);
    body
}

#[test]
fn a_recipient_list_planted_or_rewritten_in_the_file_never_receives_a_rotated_key() {
    let dir = tempfile::tempdir().unwrap();
    let (path, v) = new_vault(dir.path());
    let (alice, alice_r) = age_identity(dir.path(), "alice.key");
    let (mallory, mallory_r) = age_identity(dir.path(), "mallory.key");
    v.add_recipient_slot("ci", &[Recipient::parse(&alice_r).unwrap()]).unwrap();
    drop(v);
    let genuine = slot(&path, "ci");
    assert!(genuine.mac.is_some());

    // 1. Mallory adds her key to the list of the real slot (the checksum is made again).
    let mut rewritten = genuine.clone();
    rewritten.recipients.push(mallory_r.clone());
    put_slot(&path, "ci", &rewritten.encode());
    // 2. Mallory plants a slot of her own, with no MAC or a made-up one.
    let planted_body = age_encrypt(&mallory_r, b"no master key here");
    let planted = RecipientSlot {
        epoch: 1,
        recipients: vec![mallory_r.clone()],
        body: planted_body,
        created: 0,
        next: None,
        mac: Some([7u8; 32]),
        next_mac: None,
    };
    // 3. A real slot in the first layout (no MAC at all), as an earlier version wrote it.
    let legacy = first_layout(&genuine);
    assert_eq!(RecipientSlot::decode(&legacy).unwrap().mac, None);

    let cases: [(&str, Rows); 3] = [
        ("ci", vec![("ci", rewritten.encode())]),
        ("backup", vec![("ci", genuine.encode()), ("backup", planted.encode())]),
        ("ci", vec![("ci", legacy.clone())]),
    ];
    for (named, rows) in cases {
        tamper::edit(&path, SLOTS, |t| {
            let _ = t.remove("backup").unwrap();
        });
        for (n, b) in &rows {
            put_slot(&path, n, b);
        }
        let mut v = reopen(&path);
        let e = v.rotate(&[], false, &NoProgress).unwrap_err();
        assert!(matches!(e, Error::Guided { .. } | Error::InvalidInput(_)), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!(
                "key slot '{named}' lists recipients that no holder of the master key authenticated"
            )),
            "{msg}"
        );
        assert!(msg.contains("nothing was changed"), "{msg}");
        assert_eq!(v.epoch(), 1);
        drop(v);
        // The owner's key still opens the slot (the body is untouched), Mallory's opens nothing.
        locked(&path).unlock_identity(&Identities::from_file(&alice).unwrap(), None).unwrap();
        let e = locked(&path).unlock_identity(&Identities::from_file(&mallory).unwrap(), None).err().unwrap();
        assert!(matches!(e, Error::WrongIdentity(_) | Error::Damaged(_)), "{e:?}");
    }
    // The CLI says what to do, and exits 7 (bad input) with the vault as it was.
    let o = mvault(dir.path()).args(["key", "rotate"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(7), "{err}");
    assert!(err.contains("mvault key remove ci"), "{err}");

    // Put back as it was, the rotation runs, and keeps the real slot for Alice alone.
    tamper::edit(&path, SLOTS, |t| {
        let _ = t.remove("backup").unwrap();
    });
    put_slot(&path, "ci", &genuine.encode());
    let mut v = reopen(&path);
    let report = v.rotate(&[], false, &NoProgress).unwrap();
    assert_eq!(report.slots_kept, vec!["ci".to_string(), "default".to_string()]);
    drop(v);
    let rotated = slot(&path, "ci");
    assert_eq!((rotated.epoch, rotated.recipients.clone()), (2, vec![alice_r.clone()]));
    assert!(rotated.mac.is_some() && rotated.next.is_none() && rotated.next_mac.is_none());
    let v = locked(&path).unlock_identity(&Identities::from_file(&alice).unwrap(), None).unwrap();
    assert_eq!(v.epoch(), 2);
    drop(v);
    // And the next rotation accepts the MAC the last one wrote under the new master key.
    let mut v = reopen(&path);
    assert_eq!(v.rotate(&[], false, &NoProgress).unwrap().to_epoch, 3);
}

#[test]
fn a_planted_slot_that_opens_with_the_identity_does_not_lock_it_out() {
    let dir = tempfile::tempdir().unwrap();
    let (path, v) = new_vault(dir.path());
    let (alice, alice_r) = age_identity(dir.path(), "alice.key");
    v.add_recipient_slot("zz-alice", &[Recipient::parse(&alice_r).unwrap()]).unwrap();
    let vid = v.vault_id();
    drop(v);
    let ids = Identities::from_file(&alice).unwrap();
    let genuine = slot(&path, "zz-alice");
    // Each planted slot is tried before the real one (names sort first) and opens with Alice's
    // key, since her public key is all it takes to encrypt to her.
    let plant = |name: &str, plain: &[u8], next: Option<Vec<u8>>| {
        let s = RecipientSlot {
            epoch: 1,
            recipients: vec![alice_r.clone()],
            body: age_encrypt(&alice_r, plain),
            created: 0,
            next: next.map(|b| (2, b)),
            mac: None,
            next_mac: None,
        };
        put_slot(&path, name, &s.encode());
    };
    plant("a-garbage", b"not a payload", None);
    plant("b-other-vault", &payload(&[9u8; 16], 1, &[1u8; 32], "b-other-vault"), None);
    // Bound right, but to a master key of this vault's id that is not its key (an old one).
    plant("c-old-key", &payload(&vid, 1, &[2u8; 32], "c-old-key"), None);
    plant("d-bad-next", &payload(&vid, 1, &[3u8; 32], "d-bad-next"), Some(age_encrypt(&alice_r, b"junk")));
    let v = locked(&path).unlock_identity(&ids, None).unwrap();
    assert_eq!(v.unlocked_slot(), "zz-alice");
    drop(v);
    // Without the real slot, the error names the first planted slot that opened, and why.
    tamper::edit(&path, SLOTS, |t| {
        let _ = t.remove("zz-alice").unwrap();
    });
    let e = locked(&path).unlock_identity(&ids, None).err().unwrap();
    assert!(matches!(e, Error::Damaged(_)), "{e:?}");
    assert!(e.to_string().contains("key slot 'a-garbage' opens with the identity"), "{e}");
    for (name, says) in [
        ("b-other-vault", "bound to another vault id, epoch or slot name"),
        ("c-old-key", "does not open this vault's state"),
    ] {
        let e = locked(&path).unlock_identity(&ids, Some(name)).err().unwrap();
        assert!(e.to_string().contains(says), "{name}: {e}");
    }
    // A next wrap with no rotation unfinished is not followed: the slot's own key decides.
    let e = locked(&path).unlock_identity(&ids, Some("d-bad-next")).err().unwrap();
    assert!(e.to_string().contains("does not open this vault's state"), "{e}");
    put_slot(&path, "zz-alice", &genuine.encode());
    locked(&path).unlock_identity(&ids, None).unwrap();
}

#[test]
fn a_passphrase_is_told_which_slots_it_cannot_open() {
    let dir = tempfile::tempdir().unwrap();
    let (path, v) = new_vault(dir.path());
    let (alice, alice_r) = age_identity(dir.path(), "alice.key");
    v.add_recipient_slot("ci", &[Recipient::parse(&alice_r).unwrap()]).unwrap();
    drop(v);
    // A passphrase for a recipient slot named: not "damaged", but "use your key".
    let e = locked(&path).unlock_slot("ci", &pass()).err().unwrap();
    assert!(e.to_string().contains("key slot 'ci' is opened by a private key, not by a passphrase"), "{e}");
    assert!(e.to_string().contains("unlock it with a private key"), "{e}");
    // A vault of recipient slots only.
    let v = locked(&path).unlock_identity(&Identities::from_file(&alice).unwrap(), None).unwrap();
    v.remove_slot("default").unwrap();
    drop(v);
    let e = locked(&path).unlock(&pass()).err().unwrap();
    assert!(e.to_string().contains("this vault has no passphrase key slot"), "{e}");
    let o = mvault(dir.path()).arg("ls").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(7), "{err}");
    assert!(err.contains("--identity FILE"), "{err}");
    mvault(dir.path()).env("MVAULT_IDENTITY_FILE", &alice).arg("ls").assert().success();
}

#[test]
fn the_limits_and_missing_things_of_recipient_slots_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (path, v) = new_vault(dir.path());
    let (alice, alice_r) = age_identity(dir.path(), "alice.key");
    v.add_recipient_slot("ci", &[Recipient::parse(&alice_r).unwrap()]).unwrap();
    drop(v);
    let e = locked(&path).recipient_slot_file("nope").unwrap_err();
    assert!(matches!(e, Error::NotFound(_)) && e.to_string().contains("no key slot named 'nope'"), "{e:?}");
    // 65 recipient slots (copies of one record under other names) are more than an unlock tries.
    let rec = slot(&path, "ci").encode();
    tamper::edit(&path, SLOTS, |t| {
        for i in 0..64 {
            t.insert(format!("copy-{i:02}").as_str(), rec.as_slice()).unwrap();
        }
    });
    let ids = Identities::from_file(&alice).unwrap();
    let e = locked(&path).unlock_identity(&ids, None).err().unwrap();
    assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
    assert!(e.to_string().contains("65 recipient key slots, more than the 64 one unlock tries"), "{e}");
    // Named, the real one opens.
    assert_eq!(locked(&path).unlock_identity(&ids, Some("ci")).unwrap().unlocked_slot(), "ci");

    // An identity file over 64 KiB, and a recipients file with a bad line (named, by number).
    let big = dir.path().join("big.key");
    let mut text = std::fs::read_to_string(&alice).unwrap();
    text.push_str(&format!("# {}\n", "x".repeat(64 << 10)));
    std::fs::write(&big, text).unwrap();
    let e = Identities::from_file(&big).unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
    assert!(e.to_string().contains("is larger than 65536 bytes"), "{e}");
    let list = dir.path().join("recipients.txt");
    std::fs::write(&list, format!("# team\n{alice_r}\n\nssh-ed25519 not-base64!!\n")).unwrap();
    let o = mvault(dir.path()).args(["key", "add", "team", "--recipients-file"]).arg(&list).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(7), "{err}");
    assert!(err.contains("recipients.txt") && err.contains("line 4"), "{err}");
    // A secret given where a public key belongs is never echoed: an age secret key (the identity
    // file itself as a recipients file, or on the command line) or a passphrase.
    let secret = std::fs::read_to_string(&alice).unwrap();
    let secret = secret.lines().find(|l| l.starts_with("AGE-SECRET-KEY-")).unwrap().to_string();
    for args in [
        vec!["key".to_string(), "add".into(), "t3".into(), "--recipients-file".into(), alice.display().to_string()],
        vec!["key".to_string(), "add".into(), "t3".into(), "--recipient".into(), secret.clone()],
        vec!["--json".to_string(), "key".into(), "add".into(), "t3".into(), "--recipient".into(), PASS.into()],
    ] {
        let o = mvault(dir.path()).args(&args).output().unwrap();
        let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.status.code(), Some(7), "{all}");
        assert!(!all.contains(&secret[15..25]) && !all.contains(PASS), "{args:?} showed a secret: {all}");
        assert!(all.contains("not shown"), "{all}");
    }
    // A public key given as the identity: said so.
    let public = dir.path().join("alice.pub");
    std::fs::write(&public, format!("{alice_r}\n")).unwrap();
    let e = Identities::from_file(&public).unwrap_err();
    assert!(e.to_string().contains("line 1 holds a public key, not a private key"), "{e}");
    // A recipient slot named with --slot and no passphrase source: the identity hint, before
    // any passphrase is asked for.
    let o = mvault(dir.path()).env_remove("MVAULT_PASSPHRASE_FILE").args(["--slot", "ci", "ls"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(7), "{err}");
    assert!(err.contains("is opened by a private key") && err.contains("--identity FILE"), "{err}");
    // Passphrase-slot options are refused with a recipient, not ignored.
    let o =
        mvault(dir.path()).args(["key", "add", "t2", "--recipient", &alice_r, "--argon2-time", "9"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot be used with"));
    let names = locked(&path).slot_names().unwrap();
    assert!(!names.iter().any(|n| n == "team" || n == "t2"), "{names:?}");
}

#[test]
fn a_forged_rotation_wrap_never_hands_the_vault_to_the_forger() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    let model = corpus().join("safetensors/silero_vad_16k.safetensors");
    v.put(&model, "silero", &modelvault::PutOptions::default(), &NoProgress).unwrap();
    let (alice, alice_r) = age_identity(dir.path(), "alice.key");
    v.add_recipient_slot("ci", &[Recipient::parse(&alice_r).unwrap()]).unwrap();
    let vid = v.vault_id();
    drop(v);
    // Mallory leaves Alice's body alone and adds a next wrap of a key she chose, encrypted to
    // Alice's public key, with a MAC she can make (keyed from her own key) or any other.
    let mut forged = slot(&path, "ci");
    let mallory_mk = [5u8; 32];
    forged.next = Some((2, age_encrypt(&alice_r, &payload(&vid, 2, &mallory_mk, "ci"))));
    forged.next_mac = Some([9u8; 32]);
    put_slot(&path, "ci", &forged.encode());
    // No rotation is unfinished: the wrap is ignored, and Alice's unlock stays on epoch 1.
    let v = locked(&path).unlock_identity(&Identities::from_file(&alice).unwrap(), None).unwrap();
    assert_eq!((v.epoch(), v.rotation_pending()), (1, false));
    v.set_tag("silero", &modelvault::VersionRef::Latest, "stage", "prod").unwrap();
    drop(v);
    // What is written stays readable by the passphrase (the vault's keys did not change hands).
    let v = reopen(&path);
    assert_eq!(v.epoch(), 1);
    // The data is whole; the slot record replaced by hand is what the log names.
    let rep = v.verify(true, &NoProgress).unwrap();
    let problems: Vec<_> = rep.problems.iter().map(|p| p.detail.as_str()).collect();
    assert_eq!(
        problems,
        [
            "the slots record 'ci' is not the one log entry 2 wrote: an older copy of it was put back, or it was replaced"
        ]
    );
}

#[test]
fn a_removed_recipient_slot_put_back_gets_no_rotated_key() {
    let dir = tempfile::tempdir().unwrap();
    let (path, v) = new_vault(dir.path());
    let (bob, bob_r) = age_identity(dir.path(), "bob.key");
    v.add_recipient_slot("bob", &[Recipient::parse(&bob_r).unwrap()]).unwrap();
    drop(v);
    let old = tamper::read(&path, SLOTS, |t| t.get("bob").unwrap().unwrap().value().to_vec());
    // The owner removes Bob and means to rotate; Mallory puts Bob's old record back between.
    reopen(&path).remove_slot("bob").unwrap();
    put_slot(&path, "bob", &old);
    let mut v = reopen(&path);
    let e = v.rotate(&[], false, &NoProgress).unwrap_err();
    assert!(
        e.to_string().contains("key slot 'bob' lists recipients that no holder of the master key authenticated"),
        "{e}"
    );
    assert_eq!(v.epoch(), 1);
    v.remove_slot("bob").unwrap();
    assert_eq!(v.rotate(&[], false, &NoProgress).unwrap().to_epoch, 2);
    drop(v);
    // Bob's old record opens only the old epoch's copies: after the rotation it is gone, and put
    // back again it carries a key that opens nothing here.
    put_slot(&path, "bob", &old);
    let e = locked(&path).unlock_identity(&Identities::from_file(&bob).unwrap(), None).err().unwrap();
    assert!(matches!(e, Error::Damaged(_)), "{e:?}");
    assert!(e.to_string().contains("does not open this vault's state"), "{e}");
}

#[test]
fn a_slot_planted_while_a_rotation_is_unfinished_is_dropped_when_it_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_init(d);
    let path = d.join("test.mvault");
    let (alice, alice_r) = age_identity(d, "alice.key");
    let (_, mallory_r) = age_identity(d, "mallory.key");
    mvault(d).args(["key", "add", "ci", "--recipient", &alice_r]).assert().success();
    let minilm = corpus().join("safetensors/all-MiniLM-L6-v2.model.safetensors");
    mvault(d).arg("put").arg(&minilm).args(["--name", "minilm", "-q"]).assert().success();
    // Kill rotations until one is left unfinished.
    let pending = || {
        let out = mvault(d).args(["key", "list", "--json"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).contains("\"rotating\": true")
    };
    let mut delay = 30;
    while !pending() {
        assert!(delay < 5000, "no rotation was left unfinished");
        if run_killed(d, &["key".as_ref(), "rotate".as_ref(), "-q".as_ref()], delay) {
            // It finished before the kill: the next try kills sooner into a new rotation.
            delay = delay.saturating_sub(10).max(5);
        } else {
            delay += 40;
        }
    }
    let vid = locked(&path).vault_id();
    let epoch = slot(&path, "ci").epoch;
    // Mallory plants a slot with a next wrap to herself, and a forged next on Alice's slot.
    let planted = RecipientSlot {
        epoch,
        recipients: vec![mallory_r.clone()],
        body: age_encrypt(&mallory_r, b"x"),
        created: 0,
        next: Some((epoch + 1, age_encrypt(&mallory_r, &payload(&vid, epoch + 1, &[6u8; 32], "m")))),
        mac: Some([1u8; 32]),
        next_mac: Some([2u8; 32]),
    };
    put_slot(&path, "m", &planted.encode());
    let real = slot(&path, "ci");
    assert!(real.next.is_some() && real.next_mac.is_some(), "the rotation wrapped the new key for Alice");
    // Alice's unlock follows only the genuine next wrap.
    let v = locked(&path).unlock_identity(&Identities::from_file(&alice).unwrap(), None).unwrap();
    assert_eq!((v.epoch(), v.rotation_pending()), (epoch + 1, true));
    drop(v);
    let out = mvault(d).args(["--json", "key", "rotate", "--resume"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["slots_removed"], serde_json::json!(["m"]), "{report}");
    let names = locked(&path).slot_names().unwrap();
    assert_eq!(names, vec!["ci".to_string(), "default".to_string()]);
    let v = locked(&path).unlock_identity(&Identities::from_file(&alice).unwrap(), None).unwrap();
    assert_eq!((v.epoch(), v.rotation_pending()), (epoch + 1, false));
    drop(v);
    // And the slot the rewrite kept rotates again (its MAC and the state's list agree).
    let mut v = reopen(&path);
    assert_eq!(v.rotate(&[], false, &NoProgress).unwrap().to_epoch, epoch + 2);
}
