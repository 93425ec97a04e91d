//! Push, clone and pull between two vaults in separate directories through one in-memory remote:
//! byte-identical gets, bucket listings without names or plaintext hashes, racing writers that
//! keep every version, fork, rollback and tamper detection, a killed push that resumes, and a
//! pull after a fine-tune that moves about the changed tensors' bytes.

mod common;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::{corpus, new_vault, pass};
use modelvault::remote::{Created, MemoryObjects, ObjectInfo, Objects};
use modelvault::{Error, GetOptions, NoProgress, PutOptions, Result, Unlocked, Vault, VersionRef};
use sha2::{Digest, Sha256};

const MINILM: &str = "safetensors/all-MiniLM-L6-v2.model.safetensors";

fn put(v: &mut Vault<Unlocked>, file: &Path, name: &str) -> u64 {
    v.put(file, name, &PutOptions::default(), &NoProgress).unwrap().version
}

fn clone_into(remote: &dyn Objects, dir: &Path) -> Vault<Unlocked> {
    Vault::clone_from(remote, dir.join("test.mvault"), &pass(), "origin", &NoProgress).unwrap().0
}

fn cat(v: &Vault<Unlocked>, name: &str, r: VersionRef) -> Vec<u8> {
    let mut out = Vec::new();
    v.cat(name, &r, None, &mut out, &NoProgress).unwrap();
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Counts requests and bytes, and can fail every call after a budget runs out.
struct Counting<'a> {
    inner: &'a dyn Objects,
    calls: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    fail_after: u64,
}

impl<'a> Counting<'a> {
    fn new(inner: &'a dyn Objects) -> Self {
        Self::failing_after(inner, u64::MAX)
    }
    fn failing_after(inner: &'a dyn Objects, n: u64) -> Self {
        Counting {
            inner,
            calls: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            fail_after: n,
        }
    }
    fn tick(&self, what: &str) -> Result<()> {
        if self.calls.fetch_add(1, Ordering::SeqCst) >= self.fail_after {
            return Err(Error::Remote { context: what.into(), detail: "connection reset (injected)".into() });
        }
        Ok(())
    }
}

impl Objects for Counting<'_> {
    fn get_bounded(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        self.tick(key)?;
        let r = self.inner.get_bounded(key, limit)?;
        self.bytes_in.fetch_add(r.as_ref().map_or(0, |b| b.len() as u64), Ordering::SeqCst);
        Ok(r)
    }
    fn head(&self, key: &str) -> Result<Option<u64>> {
        self.tick(key)?;
        self.inner.head(key)
    }
    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        self.tick(key)?;
        let r = self.inner.get_range(key, range)?;
        self.bytes_in.fetch_add(r.len() as u64, Ordering::SeqCst);
        Ok(r)
    }
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.tick(key)?;
        self.bytes_out.fetch_add(bytes.len() as u64, Ordering::SeqCst);
        self.inner.put(key, bytes)
    }
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<Created> {
        self.tick(key)?;
        self.bytes_out.fetch_add(bytes.len() as u64, Ordering::SeqCst);
        self.inner.put_if_absent(key, bytes)
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.tick(prefix)?;
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.tick(key)?;
        self.inner.delete(key)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn push_clone_get_is_byte_identical_and_the_listing_shows_no_name_or_hash() {
    let (a_dir, b_dir, out) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let src = corpus().join(MINILM);
    let original = std::fs::read(&src).unwrap();
    let (_, mut a) = new_vault(a_dir.path());
    assert_eq!(put(&mut a, &src, "minilm-secret-name"), 1);
    let remote = MemoryObjects::new();
    let counted = Counting::new(&remote);
    let rep = a.push(&counted, "origin", &[], &NoProgress).unwrap();
    assert_eq!(rep.pushed, vec![("minilm-secret-name".to_string(), 1)]);
    assert_eq!(rep.entry, Some(1));
    let push_requests = counted.calls.load(Ordering::SeqCst);
    println!(
        "push of {} bytes: {push_requests} requests, {} bytes up, {} packs",
        original.len(),
        counted.bytes_out.load(Ordering::SeqCst),
        rep.traffic.packs
    );
    assert!(push_requests < 20, "{push_requests} requests");
    assert_eq!(rep.traffic.packs, 6); // 87 MiB in packs of about 16 MiB

    let b = clone_into(&remote, b_dir.path());
    assert_eq!(cat(&b, "minilm-secret-name", VersionRef::Number(1)), original);
    b.get("minilm-secret-name", &VersionRef::Latest, out.path(), &GetOptions::default(), &NoProgress).unwrap();
    let got = std::fs::read(out.path().join("all-MiniLM-L6-v2.model.safetensors")).unwrap();
    assert_eq!(Sha256::digest(&got), Sha256::digest(&original));
    assert!(b.verify(true, &NoProgress).unwrap().ok());
    assert_eq!(b.vault_id(), a.vault_id());

    // Nothing a listing shows names the model, the file, or a hash of the data.
    let sha = hex(&Sha256::digest(&original));
    let b3 = blake3::hash(&original).to_hex().to_string();
    let keys: Vec<String> = remote.list("").unwrap().into_iter().map(|o| o.key).collect();
    assert!(keys.iter().any(|k| k.starts_with("packs/")) && keys.iter().any(|k| k.starts_with("log/")));
    for k in &keys {
        for bad in ["minilm", "MiniLM", "safetensors", &sha[..16], &b3[..16]] {
            assert!(!k.contains(bad), "{k} contains {bad}");
        }
        let prefix_ok = ["keys/", "packs/", "index/", "log/"].iter().any(|p| k.starts_with(p));
        assert!(prefix_ok, "{k}");
    }
    // Nor does any object's content hold the name in plaintext.
    for k in &keys {
        let body = remote.get(k).unwrap().unwrap();
        assert!(!common::contains(&body, b"minilm-secret-name"), "{k} holds the model name");
    }
    // A second push of the same vault uploads nothing and writes no entry.
    let again = a.push(&remote, "origin", &[], &NoProgress).unwrap();
    assert_eq!((again.entry, again.traffic.packs, again.bundle), (None, 0, false));
}

#[test]
fn pull_brings_new_versions_and_moves_about_the_changed_tensors_bytes() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let src = corpus().join(MINILM);
    let original = std::fs::read(&src).unwrap();
    let (_, mut a) = new_vault(a_dir.path());
    put(&mut a, &src, "minilm");
    let remote = MemoryObjects::new();
    a.push(&remote, "origin", &[], &NoProgress).unwrap();
    let b = clone_into(&remote, b_dir.path());

    // A "fine-tune" rewrites every byte of k of the n tensors.
    let (tuned, changed) = rewrite_tensors(&original, 3);
    let tuned_path = write(a_dir.path(), "all-MiniLM-L6-v2.model.safetensors", &tuned);
    assert_eq!(put(&mut a, &tuned_path, "minilm"), 2);
    a.push(&remote, "origin", &[], &NoProgress).unwrap();
    let counted = Counting::new(&remote);
    let rep = b.pull(&counted, "origin", &[], &NoProgress).unwrap();
    assert_eq!(rep.pulled, vec![("minilm".to_string(), 2)]);
    assert_eq!(cat(&b, "minilm", VersionRef::Number(2)), tuned);
    let moved = rep.traffic.bytes;
    println!(
        "pull after a 3-of-104-tensor change: {moved} bytes in {} ranged reads; changed tensors {changed} bytes; all {} bytes; {} requests",
        rep.traffic.ranges,
        original.len(),
        counted.calls.load(Ordering::SeqCst)
    );
    assert!(moved >= changed as u64, "{moved} < {changed}");
    assert!(moved < changed as u64 + changed as u64 / 10 + (1 << 16), "{moved} bytes moved for {changed} changed");
}

/// Flips every byte of the `k` largest tensors; returns the new bytes and how many changed.
fn rewrite_tensors(file: &[u8], k: usize) -> (Vec<u8>, usize) {
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&file[8..8 + n]).unwrap();
    let mut spans: Vec<(usize, usize)> = header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(_, t)| {
            let o = t["data_offsets"].as_array().unwrap();
            (o[0].as_u64().unwrap() as usize + 8 + n, o[1].as_u64().unwrap() as usize + 8 + n)
        })
        .collect();
    spans.sort_by_key(|(s, e)| std::cmp::Reverse((e - s, *s)));
    let mut out = file.to_vec();
    let mut changed = 0;
    for (s, e) in spans.into_iter().skip(1).take(k) {
        for b in &mut out[s..e] {
            *b ^= 0x5a;
        }
        changed += e - s;
    }
    (out, changed)
}

#[test]
fn racing_pushes_of_one_model_keep_every_version_and_renumber_the_loser() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_, mut a) = new_vault(a_dir.path());
    put(&mut a, &write(a_dir.path(), "w.bin", b"base weights"), "m");
    let remote = MemoryObjects::new();
    a.push(&remote, "origin", &[], &NoProgress).unwrap();
    let mut b = clone_into(&remote, b_dir.path());
    // Both machines make version 2 of "m" without seeing each other's.
    assert_eq!(put(&mut a, &write(a_dir.path(), "w.bin", b"tuned on machine A"), "m"), 2);
    assert_eq!(put(&mut b, &write(b_dir.path(), "w.bin", b"tuned on machine B"), "m"), 2);
    // B's first create-only write of a log entry loses to A's push, run at that very moment.
    let race = Race {
        inner: &remote,
        before: Mutex::new(Some(Box::new(|| {
            a.push(&remote, "origin", &[], &NoProgress).unwrap();
        }))),
    };
    let rep = b.push(&race, "origin", &[], &NoProgress).unwrap();
    assert_eq!(rep.retries, 1);
    assert_eq!(rep.renumbered, vec![("m".to_string(), 2, 3)]);
    assert_eq!(rep.pushed, vec![("m".to_string(), 3)]);
    // B's own version is now 3 locally too, and pulling brings A's 2.
    b.pull(&remote, "origin", &[], &NoProgress).unwrap();
    assert_eq!(cat(&b, "m", VersionRef::Number(2)), b"tuned on machine A");
    assert_eq!(cat(&b, "m", VersionRef::Number(3)), b"tuned on machine B");
    let c_dir = tempfile::tempdir().unwrap();
    let c = clone_into(&remote, c_dir.path());
    for (n, want) in [(1, &b"base weights"[..]), (2, b"tuned on machine A"), (3, b"tuned on machine B")] {
        assert_eq!(cat(&c, "m", VersionRef::Number(n)), want);
    }
    assert!(c.verify(true, &NoProgress).unwrap().ok());
}

type Hook<'a> = Box<dyn FnOnce() + Send + 'a>;

/// Runs `before` once, just before the first create-only write.
struct Race<'a> {
    inner: &'a dyn Objects,
    before: Mutex<Option<Hook<'a>>>,
}

impl Objects for Race<'_> {
    fn get_bounded(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        self.inner.get_bounded(key, limit)
    }
    fn head(&self, key: &str) -> Result<Option<u64>> {
        self.inner.head(key)
    }
    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        self.inner.get_range(key, range)
    }
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.inner.put(key, bytes)
    }
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<Created> {
        let hook = self.before.lock().unwrap().take();
        if let Some(h) = hook {
            h();
        }
        self.inner.put_if_absent(key, bytes)
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key)
    }
}

#[test]
fn threads_pushing_at_once_keep_every_version() {
    let remote = Arc::new(MemoryObjects::new());
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_, mut a) = new_vault(a_dir.path());
    put(&mut a, &write(a_dir.path(), "w.bin", b"v1"), "m");
    a.push(&*remote, "origin", &[], &NoProgress).unwrap();
    let mut b = clone_into(&*remote, b_dir.path());
    for round in 0..5 {
        put(&mut a, &write(a_dir.path(), "w.bin", format!("A{round}").as_bytes()), "m");
        put(&mut b, &write(b_dir.path(), "w.bin", format!("B{round}").as_bytes()), "m");
        std::thread::scope(|s| {
            let ta = s.spawn(|| a.push(&*remote, "origin", &[], &NoProgress).unwrap());
            let tb = s.spawn(|| b.push(&*remote, "origin", &[], &NoProgress).unwrap());
            ta.join().unwrap();
            tb.join().unwrap();
        });
        a.pull(&*remote, "origin", &[], &NoProgress).unwrap();
        b.pull(&*remote, "origin", &[], &NoProgress).unwrap();
    }
    let c_dir = tempfile::tempdir().unwrap();
    let c = clone_into(&*remote, c_dir.path());
    let mut contents: Vec<Vec<u8>> = (1..=11).map(|n| cat(&c, "m", VersionRef::Number(n))).collect();
    contents.sort();
    let mut want: Vec<Vec<u8>> =
        (0..5).flat_map(|r| [format!("A{r}"), format!("B{r}")]).map(String::into_bytes).collect();
    want.push(b"v1".to_vec());
    want.sort();
    assert_eq!(contents, want);
    for n in 1..=11 {
        assert_eq!(cat(&a, "m", VersionRef::Number(n)), cat(&c, "m", VersionRef::Number(n)));
        assert_eq!(cat(&b, "m", VersionRef::Number(n)), cat(&c, "m", VersionRef::Number(n)));
    }
}

/// Hides the log entries at or past `from` from listings and reads, as a stale or lagging
/// server would.
struct Stale<'a> {
    inner: &'a dyn Objects,
    from: String,
}

impl Objects for Stale<'_> {
    fn get_bounded(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        if key.starts_with("log/") && key >= self.from.as_str() {
            return Ok(None);
        }
        self.inner.get_bounded(key, limit)
    }
    fn head(&self, key: &str) -> Result<Option<u64>> {
        if key.starts_with("log/") && key >= self.from.as_str() {
            return Ok(None);
        }
        self.inner.head(key)
    }
    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        self.inner.get_range(key, range)
    }
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.inner.put(key, bytes)
    }
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<Created> {
        self.inner.put_if_absent(key, bytes)
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        Ok(self
            .inner
            .list(prefix)?
            .into_iter()
            .filter(|o| !(o.key.starts_with("log/") && o.key >= self.from))
            .collect())
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key)
    }
}

#[test]
fn a_server_that_ignores_create_only_writes_is_caught_as_a_fork() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = MemoryObjects::ignoring_conditions();
    let (_, mut a) = new_vault(a_dir.path());
    put(&mut a, &write(a_dir.path(), "w.bin", b"one"), "m");
    a.push(&remote, "origin", &[], &NoProgress).unwrap();
    let mut b = clone_into(&remote, b_dir.path());
    put(&mut a, &write(a_dir.path(), "w.bin", b"two from A"), "m");
    put(&mut b, &write(b_dir.path(), "w.bin", b"two from B"), "m");
    a.push(&remote, "origin", &[], &NoProgress).unwrap();
    // B does not see entry 2 yet and writes its own there; the server overwrites A's.
    let stale = Stale { inner: &remote, from: "log/000000000002".into() };
    let e = b.push(&stale, "origin", &[], &NoProgress).unwrap_err();
    // B's read-back saw its own bytes? Only if the stale view hid them: it does, so B's push
    // reports the fork at once.
    assert!(matches!(e, Error::Damaged(_)), "{e}");
    assert!(e.to_string().contains("forked"), "{e}");
    // A, which saw its own entry 2 there, reports the replacement instead of accepting it.
    let e = a.pull(&remote, "origin", &[], &NoProgress).unwrap_err().to_string();
    assert!(e.contains("entry 2 is not the entry this vault saw"), "{e}");
}

#[test]
fn a_chain_whose_links_disagree_is_a_fork() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = MemoryObjects::ignoring_conditions();
    let (_, mut a) = new_vault(a_dir.path());
    put(&mut a, &write(a_dir.path(), "w.bin", b"one"), "m");
    a.push(&remote, "origin", &[], &NoProgress).unwrap();
    let first = remote.get("log/000000000001").unwrap().unwrap();
    put(&mut a, &write(a_dir.path(), "w.bin", b"two"), "m");
    a.push(&remote, "origin", &[], &NoProgress).unwrap();
    // Another writer's entry 1 (validly signed, same vault) replaces the first one.
    let other = MemoryObjects::new();
    for o in remote.list("").unwrap() {
        if !o.key.starts_with("log/") {
            other.put(&o.key, &remote.get(&o.key).unwrap().unwrap()).unwrap();
        }
    }
    let c_dir = tempfile::tempdir().unwrap();
    let mut c = clone_into(&remote, c_dir.path());
    put(&mut c, &write(c_dir.path(), "x.bin", b"other"), "x");
    c.push(&other, "other", &[], &NoProgress).unwrap();
    let forged = other.get("log/000000000001").unwrap().unwrap();
    assert_ne!(forged, first);
    remote.put("log/000000000001", &forged).unwrap();
    let e = clone_err(&remote, b_dir.path());
    assert!(e.contains("log entry 2 does not follow entry 1") && e.contains("forked"), "{e}");
}

fn clone_err(remote: &dyn Objects, dir: &Path) -> String {
    let path = dir.join("test.mvault");
    let e = Vault::clone_from(remote, &path, &pass(), "origin", &NoProgress).err().unwrap().to_string();
    assert!(!path.exists(), "a failed clone left {}", path.display());
    e
}

#[test]
fn a_rolled_back_remote_is_reported_and_nothing_changes() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = MemoryObjects::new();
    let (_, mut a) = new_vault(a_dir.path());
    put(&mut a, &write(a_dir.path(), "w.bin", b"one"), "m");
    a.push(&remote, "origin", &[], &NoProgress).unwrap();
    let b = clone_into(&remote, b_dir.path());
    put(&mut a, &write(a_dir.path(), "w.bin", b"two"), "m");
    a.push(&remote, "origin", &[], &NoProgress).unwrap();
    b.pull(&remote, "origin", &[], &NoProgress).unwrap();
    remote.delete("log/000000000002").unwrap();
    let e = b.pull(&remote, "origin", &[], &NoProgress).unwrap_err();
    assert!(matches!(e, Error::Damaged(_)));
    assert!(
        e.to_string().contains("log ends at entry 1, but this vault has seen entry 2: the remote was rolled back"),
        "{e}"
    );
    let e = a.push(&remote, "origin", &[], &NoProgress).unwrap_err().to_string();
    assert!(e.contains("rolled back"), "{e}");
    assert_eq!(cat(&b, "m", VersionRef::Number(2)), b"two");
    // A gap in the middle is reported to a reader that never saw the remote.
    remote.put("log/000000000003", b"x").unwrap();
    assert!(
        clone_err(&remote, tempfile::tempdir().unwrap().path())
            .contains("entry 2: it is missing while later entries exist")
    );
}

#[test]
fn tampered_objects_are_detected() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = MemoryObjects::new();
    let (_, mut a) = new_vault(a_dir.path());
    put(&mut a, &write(a_dir.path(), "w.bin", &vec![7u8; 300_000]), "m");
    a.push(&remote, "origin", &[], &NoProgress).unwrap();
    let pack = remote.list("packs/").unwrap().remove(0).key;
    let good = remote.get(&pack).unwrap().unwrap();
    let mut bad = good.clone();
    bad[100] ^= 1;
    remote.put(&pack, &bad).unwrap();
    let e = clone_err(&remote, b_dir.path());
    assert!(e.contains("a chunk of remote pack") && e.contains("authentication failed"), "{e}");
    remote.put(&pack, &good).unwrap();
    let entry = remote.get("log/000000000001").unwrap().unwrap();
    let mut bad = entry.clone();
    bad[20] ^= 1;
    remote.put("log/000000000001", &bad).unwrap();
    let e = clone_err(&remote, b_dir.path());
    assert!(e.contains("remote log entry 1: its signature does not verify"), "{e}");
    remote.put("log/000000000001", &entry).unwrap();
    let b = clone_into(&remote, b_dir.path());
    assert_eq!(cat(&b, "m", VersionRef::Latest), vec![7u8; 300_000]);
}

#[test]
fn a_push_killed_at_every_request_resumes_and_never_leaves_the_remote_unreadable() {
    let a_dir = tempfile::tempdir().unwrap();
    let (_, mut a) = new_vault(a_dir.path());
    let big: Vec<u8> = (0..40u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    put(&mut a, &write(a_dir.path(), "w.bin", &big), "m");
    let remote = MemoryObjects::new();
    let mut n = 0;
    loop {
        let faulty = Counting::failing_after(&remote, n);
        match a.push(&faulty, "origin", &[], &NoProgress) {
            Ok(_) => break,
            Err(e) => assert!(matches!(e, Error::Remote { .. }), "{e}"),
        }
        // Whatever the fault left, the remote reads: no entry, or the whole version.
        if !remote.list("log/").unwrap().is_empty() {
            let d = tempfile::tempdir().unwrap();
            assert_eq!(cat(&clone_into(&remote, d.path()), "m", VersionRef::Latest), big);
        }
        n += 1;
        assert!(n < 100);
    }
    // Every try got one request further; the packs of earlier tries were not sent again.
    let packs = remote.list("packs/").unwrap().len();
    assert!(
        packs <= 3 + 5,
        "{packs} packs for 40 MiB (3 needed; orphans: at most the packs in flight when a try failed)"
    );
    let b_dir = tempfile::tempdir().unwrap();
    let b = clone_into(&remote, b_dir.path());
    assert_eq!(cat(&b, "m", VersionRef::Latest), big);
}

#[test]
fn clone_needs_the_passphrase_and_refuses_an_existing_file() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = MemoryObjects::new();
    assert!(matches!(
        Vault::clone_from(&remote, b_dir.path().join("x.mvault"), &pass(), "origin", &NoProgress),
        Err(Error::NotFound(_))
    ));
    let (_, mut a) = new_vault(a_dir.path());
    put(&mut a, &write(a_dir.path(), "w.bin", b"one"), "m");
    a.push(&remote, "origin", &[], &NoProgress).unwrap();
    let wrong = modelvault::Passphrase::new(b"not it".to_vec()).unwrap();
    let path = b_dir.path().join("x.mvault");
    assert!(matches!(Vault::clone_from(&remote, &path, &wrong, "origin", &NoProgress), Err(Error::WrongPassphrase)));
    assert!(!path.exists());
    std::fs::write(&path, b"").unwrap();
    assert!(matches!(Vault::clone_from(&remote, &path, &pass(), "origin", &NoProgress), Err(Error::VaultExists(_))));
    // Another vault cannot push into this remote.
    let c_dir = tempfile::tempdir().unwrap();
    let (_, mut c) = new_vault(c_dir.path());
    put(&mut c, &write(c_dir.path(), "w.bin", b"c"), "m");
    let e = c.push(&remote, "origin", &[], &NoProgress).unwrap_err().to_string();
    assert!(e.contains("the remote holds vault"), "{e}");
}

/// A push whose log entry landed but whose local commit did not (a crash in between, as a file
/// restored from before the push shows) finds its version on the remote under the new number:
/// the next push makes no entry but still renumbers the local version, so every copy agrees on
/// which bytes the number names.
#[test]
fn a_renumbering_lost_locally_is_made_by_the_next_push() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_, mut a) = new_vault(a_dir.path());
    put(&mut a, &write(a_dir.path(), "w.bin", b"base weights"), "m");
    let remote = MemoryObjects::new();
    a.push(&remote, "origin", &[], &NoProgress).unwrap();
    let mut b = clone_into(&remote, b_dir.path());
    put(&mut a, &write(a_dir.path(), "w.bin", b"tuned on machine A"), "m");
    put(&mut b, &write(b_dir.path(), "w.bin", b"tuned on machine B"), "m");
    a.push(&remote, "origin", &[], &NoProgress).unwrap();
    let b_path = b.path().to_path_buf();
    let before = b_dir.path().join("before-push.mvault");
    std::fs::copy(&b_path, &before).unwrap();
    let rep = b.push(&remote, "origin", &[], &NoProgress).unwrap();
    assert_eq!(rep.renumbered, vec![("m".to_string(), 2, 3)]);
    drop(b);
    std::fs::rename(&before, &b_path).unwrap();
    let b = common::reopen(&b_path);
    assert_eq!(cat(&b, "m", VersionRef::Number(2)), b"tuned on machine B", "the restored file predates the push");
    let rep = b.push(&remote, "origin", &[], &NoProgress).unwrap();
    assert_eq!(rep.renumbered, vec![("m".to_string(), 2, 3)], "the next push renumbers what the remote holds");
    assert!(rep.pushed.is_empty(), "{:?}", rep.pushed);
    assert_eq!(cat(&b, "m", VersionRef::Number(3)), b"tuned on machine B");
    b.pull(&remote, "origin", &[], &NoProgress).unwrap();
    assert_eq!(cat(&b, "m", VersionRef::Number(2)), b"tuned on machine A");
    let listing = b.list(Some("m")).unwrap();
    let numbers: Vec<u64> = listing.models[0].versions.iter().map(|v| v.version).collect();
    assert_eq!(numbers, [1, 2, 3], "no version twice");
}

/// A damaged chunk early in a pull of many chunks is an error, returned at once: the readers
/// still fetching stop instead of waiting on a queue nobody empties.
#[test]
fn a_damaged_first_chunk_of_a_long_pull_fails_without_hanging() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = Arc::new(MemoryObjects::new());
    let (_, mut a) = new_vault(a_dir.path());
    let mut bytes = vec![0u8; 64 << 20];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for b in bytes.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    put(&mut a, &write(a_dir.path(), "w.bin", &bytes), "m");
    a.push(remote.as_ref(), "origin", &[], &NoProgress).unwrap();
    let packs = remote.list("packs/").unwrap();
    assert!(packs.len() >= 4, "{} packs", packs.len());
    // The first pack read (readers take packs in key order) fails at its first chunk, while the
    // other readers have more chunks to hand over than the queue holds.
    let mut bad = remote.get(&packs[0].key).unwrap().unwrap();
    bad[100] ^= 1;
    remote.put(&packs[0].key, &bad).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (r, dir) = (remote.clone(), b_dir.path().to_path_buf());
    std::thread::spawn(move || {
        let _ = tx.send(clone_err(r.as_ref(), &dir));
    });
    let e = rx.recv_timeout(std::time::Duration::from_secs(120)).expect("the clone must fail, not hang");
    assert!(e.contains("a chunk of remote pack"), "{e}");
}
