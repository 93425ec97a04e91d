//! Removals through the remote's log and `gc --remote`, library level with an in-memory remote:
//! a removal pushed from one vault is applied by a pull on another and never brought back; a
//! removal racing the other machine's push keeps its new version; gc marks, waits out the
//! grace period, then deletes only unreferenced packs and indexes (counted), every remaining
//! version still clones byte-identical, and a push that reused a marked pack keeps it.

mod common;

use std::path::Path;

use common::{new_vault, pass};
use modelvault::remote::{MemoryObjects, Objects};
use modelvault::{NoProgress, PutOptions, Unlocked, Vault, VersionRef};

fn put_bytes(v: &mut Vault<Unlocked>, dir: &Path, file: &str, bytes: &[u8], name: &str) -> u64 {
    let p = dir.join(file);
    std::fs::write(&p, bytes).unwrap();
    v.put(&p, name, &PutOptions::default(), &NoProgress).unwrap().version
}

/// Bytes no other test file shares (so its chunks are its own).
fn unique(seed: u8, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x = blake3::hash(&[seed]);
    while out.len() < len {
        out.extend_from_slice(x.as_bytes());
        x = blake3::hash(x.as_bytes());
    }
    out.truncate(len);
    out
}

fn cat(v: &Vault<Unlocked>, name: &str, n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    v.cat(name, &VersionRef::Number(n), None, &mut out, &NoProgress).unwrap();
    out
}

fn live(v: &Vault<Unlocked>, name: &str) -> Vec<u64> {
    let l = v.list(Some(name)).unwrap();
    l.models.iter().filter(|m| m.name == name).flat_map(|m| m.versions.iter().map(|x| x.version)).collect()
}

fn clone_into(remote: &dyn Objects, dir: &Path) -> Vault<Unlocked> {
    Vault::clone_from(remote, dir.join("test.mvault"), &pass(), "origin", &NoProgress).unwrap().0
}

/// (packs, indexes, log entries, key bundles, bytes of packs and indexes).
fn counts(r: &dyn Objects) -> (usize, usize, usize, usize, u64) {
    let all = r.list("").unwrap();
    let n = |p: &str| all.iter().filter(|o| o.key.starts_with(p)).count();
    let bytes = all.iter().filter(|o| o.key.starts_with("packs/") || o.key.starts_with("index/")).map(|o| o.size).sum();
    (n("packs/"), n("index/"), n("log/"), n("keys/"), bytes)
}

#[test]
fn a_pushed_removal_is_applied_by_a_pull_and_never_comes_back() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = MemoryObjects::new();
    let (_, mut va) = new_vault(a.path());
    put_bytes(&mut va, a.path(), "one.bin", &unique(1, 5000), "m");
    put_bytes(&mut va, a.path(), "two.bin", &unique(2, 5000), "m");
    put_bytes(&mut va, a.path(), "three.bin", &unique(3, 5000), "m");
    va.push(&remote, "origin", &[], &NoProgress).unwrap();
    let vb = clone_into(&remote, b.path());
    assert_eq!(live(&vb, "m"), [1, 2, 3]);

    va.remove_version("m", &VersionRef::Number(1)).unwrap();
    // A pull before the push does not bring the removed version back.
    va.pull(&remote, "origin", &[], &NoProgress).unwrap();
    assert_eq!(live(&va, "m"), [2, 3]);
    let rep = va.push(&remote, "origin", &[], &NoProgress).unwrap();
    assert_eq!(rep.removed, [("m".to_string(), 1)]);
    assert_eq!(rep.entry, Some(2));
    // A second push has nothing more to say.
    assert_eq!(va.push(&remote, "origin", &[], &NoProgress).unwrap().entry, None);

    let rep = vb.pull(&remote, "origin", &[], &NoProgress).unwrap();
    assert_eq!(rep.removed, [("m".to_string(), 1)]);
    assert_eq!(live(&vb, "m"), [2, 3]);
    assert!(vb.pull(&remote, "origin", &[], &NoProgress).unwrap().pulled.is_empty());
    assert_eq!(live(&vb, "m"), [2, 3]);
    // A fresh clone never sees it, and a push from B does not resurrect it.
    vb.push(&remote, "origin", &[], &NoProgress).unwrap();
    let c = tempfile::tempdir().unwrap();
    let vc = clone_into(&remote, c.path());
    assert_eq!(live(&vc, "m"), [2, 3]);
    assert_eq!(cat(&vc, "m", 2), unique(2, 5000));
}

#[test]
fn a_stale_copy_does_not_push_back_a_version_the_remote_removed() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = MemoryObjects::new();
    let (_, mut va) = new_vault(a.path());
    put_bytes(&mut va, a.path(), "one.bin", &unique(1, 3000), "m");
    put_bytes(&mut va, a.path(), "two.bin", &unique(2, 3000), "m");
    va.push(&remote, "origin", &[], &NoProgress).unwrap();
    let vb = clone_into(&remote, b.path());
    va.remove_version("m", &VersionRef::Number(1)).unwrap();
    va.push(&remote, "origin", &[], &NoProgress).unwrap();
    // B has not pulled: its push must not put version 1 back.
    let rep = vb.push(&remote, "origin", &[], &NoProgress).unwrap();
    assert!(rep.pushed.is_empty(), "{:?}", rep.pushed);
    let c = tempfile::tempdir().unwrap();
    assert_eq!(live(&clone_into(&remote, c.path()), "m"), [2]);
}

#[test]
fn removing_a_model_while_another_machine_pushes_keeps_its_new_version() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = MemoryObjects::new();
    let (_, mut va) = new_vault(a.path());
    put_bytes(&mut va, a.path(), "one.bin", &unique(1, 3000), "m");
    va.push(&remote, "origin", &[], &NoProgress).unwrap();
    let mut vb = clone_into(&remote, b.path());
    // B makes version 2 and pushes; A, which has not seen it, removes the whole model.
    put_bytes(&mut vb, b.path(), "new.bin", b"from B, after the clone", "m");
    vb.push(&remote, "origin", &[], &NoProgress).unwrap();
    va.remove_model("m").unwrap();
    let rep = va.push(&remote, "origin", &[], &NoProgress).unwrap();
    assert_eq!(rep.removed, [("m".to_string(), 1)], "only the version A had is removed");
    let rep = va.pull(&remote, "origin", &[], &NoProgress).unwrap();
    assert_eq!(rep.pulled, [("m".to_string(), 2)]);
    assert_eq!(live(&va, "m"), [2]);
    assert_eq!(cat(&va, "m", 2), b"from B, after the clone");
    vb.pull(&remote, "origin", &[], &NoProgress).unwrap();
    assert_eq!(live(&vb, "m"), [2]);
}

#[test]
fn gc_deletes_unreferenced_packs_only_after_the_grace_period() {
    let a = tempfile::tempdir().unwrap();
    let remote = MemoryObjects::new();
    let (_, mut va) = new_vault(a.path());
    let (one, two) = (unique(1, 300_000), unique(2, 300_000));
    put_bytes(&mut va, a.path(), "one.bin", &one, "m");
    va.push(&remote, "origin", &[], &NoProgress).unwrap();
    put_bytes(&mut va, a.path(), "two.bin", &two, "m");
    va.push(&remote, "origin", &[], &NoProgress).unwrap();
    // A pack a killed push left behind (no index names it).
    remote.put("packs/00ff00ff", &[7u8; 1000]).unwrap();
    let before = counts(&remote);
    assert_eq!((before.0, before.1, before.2), (3, 2, 2), "{before:?}");

    // Nothing is unreferenced but the orphan: it is marked, nothing deleted.
    let rep = va.gc_remote(&remote, "origin", 3600).unwrap();
    assert_eq!((rep.marked, rep.objects_deleted, rep.packs_kept), (1, 0, 2), "{rep:?}");
    va.remove_version("m", &VersionRef::Number(1)).unwrap();
    va.push(&remote, "origin", &[], &NoProgress).unwrap();
    let rep = va.gc_remote(&remote, "origin", 3600).unwrap();
    assert_eq!((rep.marked, rep.waiting, rep.objects_deleted), (1, 1, 0), "{rep:?}");
    let rep = va.gc_remote(&remote, "origin", 3600).unwrap();
    assert_eq!((rep.marked, rep.waiting, rep.objects_deleted, rep.entry), (0, 2, 0, None), "{rep:?}");
    let (packs, indexes, logs, bundles, _) = counts(&remote);
    assert_eq!((packs, indexes, logs, bundles), (3, 2, 5, before.3));

    // Past the grace period: the orphan and version 1's pack and index go, nothing else.
    let rep = va.gc_remote(&remote, "origin", 0).unwrap();
    let after = counts(&remote);
    assert_eq!((rep.packs_deleted, rep.objects_deleted, rep.packs_kept), (2, 3, 1), "{rep:?}");
    assert_eq!(rep.bytes_deleted, before.4 - after.4, "{rep:?} {before:?} {after:?}");
    assert_eq!((after.0, after.1, after.2, after.3), (1, 1, 6, before.3), "log entries and bundles stay");
    assert!(remote.get("packs/00ff00ff").unwrap().is_none());
    println!("gc deleted {} objects, {} bytes", rep.objects_deleted, rep.bytes_deleted);
    // A second run has nothing to do.
    let rep = va.gc_remote(&remote, "origin", 0).unwrap();
    assert_eq!((rep.marked, rep.objects_deleted, rep.entry), (0, 0, None), "{rep:?}");

    let c = tempfile::tempdir().unwrap();
    let vc = clone_into(&remote, c.path());
    assert_eq!(live(&vc, "m"), [2]);
    assert_eq!(cat(&vc, "m", 2), two);
    va.pull(&remote, "origin", &[], &NoProgress).unwrap();
    assert_eq!(cat(&va, "m", 2), two);
}

#[test]
fn a_pack_with_one_referenced_chunk_is_kept_whole() {
    let a = tempfile::tempdir().unwrap();
    let remote = MemoryObjects::new();
    let (_, mut va) = new_vault(a.path());
    put_bytes(&mut va, a.path(), "one.bin", &unique(1, 200_000), "m");
    put_bytes(&mut va, a.path(), "two.bin", &unique(2, 200_000), "m");
    va.push(&remote, "origin", &[], &NoProgress).unwrap();
    va.remove_version("m", &VersionRef::Number(1)).unwrap();
    va.push(&remote, "origin", &[], &NoProgress).unwrap();
    let before = counts(&remote);
    for _ in 0..2 {
        let rep = va.gc_remote(&remote, "origin", 0).unwrap();
        assert_eq!((rep.marked, rep.objects_deleted, rep.packs_kept), (0, 0, 1), "{rep:?}");
    }
    assert_eq!(counts(&remote), before);
}

#[test]
fn a_push_that_reuses_a_marked_pack_between_mark_and_sweep_stays_readable() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = MemoryObjects::new();
    let (_, mut va) = new_vault(a.path());
    let one = unique(1, 300_000);
    put_bytes(&mut va, a.path(), "one.bin", &one, "m");
    put_bytes(&mut va, a.path(), "keep.bin", b"small", "k");
    va.push(&remote, "origin", &[], &NoProgress).unwrap();
    let mut vb = clone_into(&remote, b.path());
    put_bytes(&mut va, a.path(), "two.bin", &unique(2, 300_000), "n");
    va.push(&remote, "origin", &[], &NoProgress).unwrap();
    va.remove_version("n", &VersionRef::Number(1)).unwrap();
    va.push(&remote, "origin", &[], &NoProgress).unwrap();
    let rep = va.gc_remote(&remote, "origin", 0).unwrap();
    assert_eq!(rep.marked, 1, "{rep:?}");
    let before = counts(&remote);

    // Between mark and sweep B puts the same bytes as n@1 under another name and pushes:
    // its chunks are in the marked pack, which the push reuses (it uploads no pack).
    put_bytes(&mut vb, b.path(), "again.bin", &unique(2, 300_000), "again");
    let rep = vb.push(&remote, "origin", &[], &NoProgress).unwrap();
    assert_eq!(rep.traffic.packs, 0, "{rep:?}");
    let rep = va.gc_remote(&remote, "origin", 0).unwrap();
    assert_eq!((rep.objects_deleted, rep.waiting), (0, 0), "the reused pack is kept: {rep:?}");
    assert_eq!(counts(&remote).0, before.0);
    let c = tempfile::tempdir().unwrap();
    let vc = clone_into(&remote, c.path());
    assert_eq!(cat(&vc, "again", 1), unique(2, 300_000));
    assert_eq!(cat(&vc, "m", 1), one);
}
