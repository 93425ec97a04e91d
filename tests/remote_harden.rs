//! What an adversarial remote must not get away with: an object over the size limit of a whole
//! read (refused before it is read), symbolic links, FIFOs and devices in a `file://` remote, a
//! record of the last entry seen shared by two remotes on different endpoints, and orphan
//! indexes whose pack is gone.

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

/// A vault in the first directory with one version pushed to a directory remote in the third;
/// the second is for a clone. Returns the three directories, the remote and its one index's key.
fn pushed() -> ([tempfile::TempDir; 3], DirObjects, String) {
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let remote = DirObjects::open(dirs[2].path()).unwrap();
    let (_, mut a) = new_vault(dirs[0].path());
    put(&mut a, &write(dirs[0].path(), "w.bin", &vec![3u8; 200_000]), "m");
    a.push(&remote, "origin", &[], &NoProgress).unwrap();
    let index = remote.list("index/").unwrap().remove(0).key;
    (dirs, remote, index)
}

#[test]
fn an_oversized_index_is_refused_before_it_is_read() {
    let ([_a_dir, b_dir, _r_dir], remote, index) = pushed();
    // 300 MiB, sparse: a read of it all would allocate that much.
    let f = std::fs::OpenOptions::new().write(true).open(remote.root().join(&index)).unwrap();
    f.set_len(300 << 20).unwrap();
    let t = std::time::Instant::now();
    let e = clone_err(&remote, b_dir.path());
    assert!(e.contains(&format!("remote object {index} is 314572800 bytes, over the 268435456-byte limit")), "{e}");
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    // The same bound holds for the in-memory store.
    let m = MemoryObjects::new();
    m.put("log/000000000001", &[0; 100]).unwrap();
    let e = m.get_bounded("log/000000000001", 99).unwrap_err().to_string();
    assert!(e.contains("log/000000000001 is 100 bytes, over the 99-byte limit"), "{e}");
}

#[test]
fn a_directory_remote_reads_only_regular_files_inside_it() {
    use std::os::unix::fs::symlink;
    let ([a_dir, b_dir, _r_dir], remote, index) = pushed();
    let root = remote.root().to_path_buf();

    // An index replaced by a link to a file outside the remote (here: a copy of itself).
    let outside = a_dir.path().join("outside");
    std::fs::rename(root.join(&index), &outside).unwrap();
    symlink(&outside, root.join(&index)).unwrap();
    let e = clone_err(&remote, b_dir.path());
    assert!(e.contains(&index) && e.contains("not a regular file") && e.contains("refused"), "{e}");
    assert!(remote.head(&index).is_err());
    std::fs::remove_file(root.join(&index)).unwrap();

    // The index directory replaced by a link to a directory outside.
    let out_dir = a_dir.path().join("index-elsewhere");
    std::fs::rename(root.join("index"), &out_dir).unwrap();
    std::fs::rename(&outside, out_dir.join(index.strip_prefix("index/").unwrap())).unwrap();
    symlink(&out_dir, root.join("index")).unwrap();
    let e = clone_err(&remote, b_dir.path());
    assert!(e.contains("is not a directory (a symbolic link or another file): refused"), "{e}");
    assert!(remote.put("index/00", b"x").is_err(), "a write through the link");
    assert!(!out_dir.join("00").exists());
    std::fs::remove_file(root.join("index")).unwrap();
    std::fs::rename(&out_dir, root.join("index")).unwrap();

    // A FIFO where the log's entry is: refused at once, not a blocked open.
    let entry = root.join("log/000000000001");
    std::fs::rename(&entry, a_dir.path().join("entry")).unwrap();
    rustix::fs::mknodat(rustix::fs::CWD, &entry, rustix::fs::FileType::Fifo, rustix::fs::Mode::from_raw_mode(0o600), 0)
        .unwrap();
    let t = std::time::Instant::now();
    assert!(remote.get("log/000000000001").unwrap_err().to_string().contains("not a regular file"));
    assert!(remote.get_range("log/000000000001", 0..1).unwrap_err().to_string().contains("not a regular file"));
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    std::fs::remove_file(&entry).unwrap();
    std::fs::rename(a_dir.path().join("entry"), &entry).unwrap();
    Vault::clone_from(&remote, b_dir.path().join("test.mvault"), &pass(), "origin", &NoProgress).unwrap();
}

#[test]
fn file_urls_are_canonical() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("real")).unwrap();
    std::os::unix::fs::symlink(d.path().join("real"), d.path().join("link")).unwrap();
    let real = std::fs::canonicalize(d.path().join("real")).unwrap();
    let (_, url) = modelvault::remote::open_url(&format!("file://{}/link/../link/", d.path().display())).unwrap();
    assert_eq!(url, format!("file://{}", real.display()));
}

#[test]
fn one_bucket_and_prefix_on_two_endpoints_are_two_remotes_to_the_rollback_check() {
    use common::s3::{BUCKET, moto};
    use predicates::str::contains;
    let (one, two) = (moto(), moto());
    let d = tempfile::tempdir().unwrap();
    let url = format!("s3://{BUCKET}/team");
    let on = |server: &common::s3::Server| {
        let mut c = common::mvault(d.path());
        server.env(&mut c);
        c
    };
    common::cli_init(d.path());
    for (i, body) in ["one", "two"].iter().enumerate() {
        std::fs::write(d.path().join("w.bin"), body).unwrap();
        on(&one).args(["put", "w.bin", "--name", "m"]).assert().success();
        let want = format!("(log entry {})", i + 1);
        on(&one).args(["push", "--remote", &url]).assert().success().stdout(contains(want));
    }
    // The same URL on another server: its log is its own, not a rollback of the first one's.
    on(&two).args(["push", "--remote", &url]).assert().success().stdout(contains("pushed m@1, m@2 (log entry 1)"));
    // The first server's record is intact: deleting its entry 2 is still caught.
    one.objects("team").delete("log/000000000002").unwrap();
    on(&one).args(["push", "--remote", &url]).assert().code(6).stderr(contains("rolled back"));
}

#[test]
fn a_record_kept_by_url_alone_still_guards_the_remote_and_moves_to_the_new_label() {
    let (a_dir, remote) = (tempfile::tempdir().unwrap(), MemoryObjects::new());
    let (_, mut a) = new_vault(a_dir.path());
    let (old, new) = ("s3://models/team", "s3://models/team at http://127.0.0.1:9");
    for body in [&b"one"[..], b"two"] {
        put(&mut a, &write(a_dir.path(), "w.bin", body), "m");
        a.push(&remote, old, &[], &NoProgress).unwrap();
    }
    let entry2 = remote.get("log/000000000002").unwrap().unwrap();
    remote.delete("log/000000000002").unwrap();
    let e = a.push(&remote, new, &[], &NoProgress).unwrap_err().to_string();
    assert!(e.contains("has seen entry 2: the remote was rolled back"), "{e}");
    remote.put("log/000000000002", &entry2).unwrap();
    a.pull(&remote, new, &[], &NoProgress).unwrap();
    assert_eq!(modelvault::remote::state::load_seen(&a, new).unwrap().map(|s| s.0), Some(2));
    assert_eq!(modelvault::remote::state::load_seen(&a, old).unwrap(), None, "moved, not copied");
    assert_eq!(cat(&a, "m", VersionRef::Number(2)), b"two");
}

#[test]
fn a_push_sends_again_the_chunks_of_an_orphan_index_whose_pack_is_gone() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (first, second) = (MemoryObjects::new(), MemoryObjects::new());
    let (_, mut a) = new_vault(a_dir.path());
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    put(&mut a, &write(a_dir.path(), "w.bin", &data), "m");
    a.push(&first, "first", &[], &NoProgress).unwrap();
    // The second remote holds only an index (as a push killed before its entry leaves one),
    // and its pack was deleted.
    for o in first.list("index/").unwrap() {
        second.put(&o.key, &first.get(&o.key).unwrap().unwrap()).unwrap();
    }
    let rep = a.push(&second, "second", &[], &NoProgress).unwrap();
    assert!(rep.traffic.packs >= 1 && rep.traffic.bytes >= data.len() as u64, "{:?}", rep.traffic);
    let b = Vault::clone_from(&second, b_dir.path().join("test.mvault"), &pass(), "second", &NoProgress).unwrap().0;
    assert_eq!(cat(&b, "m", VersionRef::Number(1)), data);
}
