//! What an adversarial remote must not get away with: an object over the size limit of a whole
//! read (refused before it is read), symbolic links, FIFOs and devices in a `file://` remote, a
//! record of the last entry seen shared by two remotes on different endpoints, orphan indexes
//! whose pack is gone, and clone's work and cleanup bounds.

mod common;

use std::path::{Path, PathBuf};

use common::{new_vault, pass};
use modelvault::remote::{DirObjects, MemoryObjects, Objects};
use modelvault::{NoProgress, PutOptions, Unlocked, Vault, VersionRef};

fn put(v: &mut Vault<Unlocked>, file: &Path, name: &str) -> u64 {
    v.put(file, name, &PutOptions::default(), &NoProgress).unwrap().version
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn cat(v: &Vault<Unlocked>, name: &str, r: VersionRef) -> Vec<u8> {
    let mut out = Vec::new();
    v.cat(name, &r, None, &mut out, &NoProgress).unwrap();
    out
}

fn clone_err(remote: &dyn Objects, dir: &Path) -> String {
    let path = dir.join("test.mvault");
    let e = Vault::clone_from(remote, &path, &pass(), "origin", &NoProgress).err().unwrap().to_string();
    assert!(!path.exists(), "a failed clone left {}", path.display());
    e
}

/// A vault with one version pushed to a directory remote in `remote_dir`.
fn pushed(a_dir: &Path, remote: &DirObjects) -> Vault<Unlocked> {
    let (_, mut a) = new_vault(a_dir);
    put(&mut a, &write(a_dir, "w.bin", &vec![3u8; 200_000]), "m");
    a.push(remote, "origin", &[], &NoProgress).unwrap();
    a
}

#[test]
fn an_oversized_index_is_refused_before_it_is_read() {
    let (a_dir, b_dir, r_dir) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = DirObjects::open(r_dir.path()).unwrap();
    pushed(a_dir.path(), &remote);
    let index = remote.list("index/").unwrap().remove(0).key;
    // 300 MiB, sparse: a read of it all would allocate that much.
    let f = std::fs::OpenOptions::new().write(true).open(remote.root().join(&index)).unwrap();
    f.set_len(300 << 20).unwrap();
    let t = std::time::Instant::now();
    let e = clone_err(&remote, b_dir.path());
    assert!(e.contains(&format!("remote object {index} is 314572800 bytes, over the 268435456-byte limit")), "{e}");
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    // The same bound holds for the in-memory store and for a lying listing.
    let m = MemoryObjects::new();
    m.put("log/000000000001", &[0; 100]).unwrap();
    let e = m.get_bounded("log/000000000001", 99).unwrap_err().to_string();
    assert!(e.contains("log/000000000001 is 100 bytes, over the 99-byte limit"), "{e}");
}
