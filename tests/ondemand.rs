//! On-demand chunks: a vault cloned with its metadata only reads the chunks a `get`, `cat` or
//! `get --tensor` needs from the remote, checks them, and keeps them (or, with no-cache, does
//! not). Library level over an in-memory remote with a request-counting wrapper, and the command
//! line over a directory remote: byte-identical output, no request once cached, a tampered pack
//! byte refused with exit 6 and no output file, a missing remote reported.

mod common;

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{cli_init, corpus, mvault, new_vault, pass};
use modelvault::remote::{Created, MemoryObjects, ObjectInfo, Objects, PullOptions};
use modelvault::{ChunkSource, Error, GetOptions, NoProgress, PutOptions, Result, TensorGetOptions, Vault, VersionRef};
use predicates::str::contains;

const MINILM: &str = "safetensors/all-MiniLM-L6-v2.model.safetensors";

/// Counts every request made to the remote it wraps.
struct Counting {
    inner: Arc<dyn Objects>,
    gets: AtomicU64,
    ranges: AtomicU64,
}

impl Counting {
    fn total(&self) -> u64 {
        self.gets.load(Ordering::SeqCst) + self.ranges.load(Ordering::SeqCst)
    }
}

impl Objects for Counting {
    fn get_bounded(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get_bounded(key, limit)
    }
    fn head(&self, key: &str) -> Result<Option<u64>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.head(key)
    }
    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        self.ranges.fetch_add(1, Ordering::SeqCst);
        self.inner.get_range(key, range)
    }
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.inner.put(key, bytes)
    }
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<Created> {
        self.inner.put_if_absent(key, bytes)
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key)
    }
}

/// A remote holding MiniLM as `minilm@1`, and a metadata-only clone of it in `dir`.
fn metadata_clone(dir: &Path) -> (Arc<dyn Objects>, Vault<modelvault::Unlocked>) {
    let remote: Arc<dyn Objects> = Arc::new(MemoryObjects::new());
    let src = tempfile::tempdir().unwrap();
    let (_, mut a) = new_vault(src.path());
    a.put(&corpus().join(MINILM), "minilm", &PutOptions::default(), &NoProgress).unwrap();
    a.push(&*remote, "origin", &[], &NoProgress).unwrap();
    let opts = PullOptions { metadata_only: true };
    let (b, rep) =
        Vault::clone_from_with(&*remote, dir.join("test.mvault"), &pass(), "origin", &opts, &NoProgress).unwrap();
    assert_eq!(rep.pulled, vec![("minilm".to_string(), 1)]);
    assert_eq!(rep.traffic.chunks, 0, "a metadata-only clone fetches no chunk");
    (remote, b)
}

fn counting(remote: &Arc<dyn Objects>) -> Arc<Counting> {
    Arc::new(Counting { inner: remote.clone(), gets: AtomicU64::new(0), ranges: AtomicU64::new(0) })
}

#[test]
fn get_fetches_missing_chunks_once_and_keeps_them() {
    let d = tempfile::tempdir().unwrap();
    let (remote, v) = metadata_clone(d.path());
    let want = std::fs::read(corpus().join(MINILM)).unwrap();
    // Without a source, a missing chunk is the reader's error, and no output file is left.
    let out = d.path().join("out0");
    let e = v.get("minilm", &VersionRef::Latest, &out, &GetOptions::default(), &NoProgress).unwrap_err();
    assert!(matches!(e, Error::Damaged(_)) && e.to_string().contains("is missing"), "{e}");
    assert!(no_files(&out));

    let c = counting(&remote);
    v.set_chunk_source(ChunkSource::new(c.clone(), "origin"));
    let out = d.path().join("out1");
    v.get("minilm", &VersionRef::Latest, &out, &GetOptions::default(), &NoProgress).unwrap();
    assert_eq!(std::fs::read(out.join("all-MiniLM-L6-v2.model.safetensors")).unwrap(), want);
    let t = v.fetched_totals();
    assert_eq!((t.traffic.chunks, t.kept, t.streamed), (240, 240, 0));
    let first = (c.gets.load(Ordering::SeqCst), c.ranges.load(Ordering::SeqCst));
    eprintln!("on-demand get of MiniLM: {} whole-object reads, {} ranged reads", first.0, first.1);
    assert!(first.1 <= 12, "ranged reads are coalesced: {first:?}");
    // Kept: the second get and a cat make no request.
    let before = c.total();
    let out = d.path().join("out2");
    v.get("minilm", &VersionRef::Latest, &out, &GetOptions::default(), &NoProgress).unwrap();
    let mut cat = Vec::new();
    v.cat("minilm", &VersionRef::Latest, None, &mut cat, &NoProgress).unwrap();
    assert_eq!(cat, want);
    assert_eq!(c.total(), before, "chunks already kept are read locally");
    // And they stay kept after the vault is reopened without a source.
    drop(v);
    let v = common::reopen(&d.path().join("test.mvault"));
    let mut cat = Vec::new();
    v.cat("minilm", &VersionRef::Latest, None, &mut cat, &NoProgress).unwrap();
    assert_eq!(cat, want);
}

#[test]
fn no_cache_streams_without_keeping_and_tensors_fetch_only_their_chunks() {
    let d = tempfile::tempdir().unwrap();
    let (remote, v) = metadata_clone(d.path());
    let want = std::fs::read(corpus().join(MINILM)).unwrap();
    let c = counting(&remote);
    v.set_chunk_source(ChunkSource { cache: false, ..ChunkSource::new(c.clone(), "origin") });
    let mut cat = Vec::new();
    v.cat("minilm", &VersionRef::Latest, None, &mut cat, &NoProgress).unwrap();
    assert_eq!(cat, want);
    assert_eq!(v.fetched_totals().streamed, 240);
    assert_eq!(v.fetched_totals().kept, 0);
    let after_first = c.ranges.load(Ordering::SeqCst);
    let mut cat = Vec::new();
    v.cat("minilm", &VersionRef::Latest, None, &mut cat, &NoProgress).unwrap();
    assert_eq!(cat, want);
    assert!(c.ranges.load(Ordering::SeqCst) > after_first, "nothing was kept, so it is fetched again");
    // One tensor fetches only the chunks its bytes lie in.
    let t = "embeddings.word_embeddings.weight".to_string();
    let out = d.path().join("t.safetensors");
    let opts = TensorGetOptions::default();
    let before = v.fetched_totals().traffic.chunks;
    v.get_tensors("minilm", &VersionRef::Latest, std::slice::from_ref(&t), &out, &opts, &NoProgress).unwrap();
    let fetched = v.fetched_totals().traffic.chunks - before;
    assert!(fetched > 0 && fetched < 240, "{fetched} chunks for one tensor");
    let bytes = std::fs::read(&out).unwrap();
    assert!(bytes.len() > 11_000_000, "the word embeddings are about 11.7 MB: {}", bytes.len());
}

#[test]
fn a_tampered_pack_is_damage_and_leaves_no_output() {
    let d = tempfile::tempdir().unwrap();
    let (remote, v) = metadata_clone(d.path());
    let pack = remote.list("packs/").unwrap().remove(0);
    let mut bytes = remote.get(&pack.key).unwrap().unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    remote.put(&pack.key, &bytes).unwrap();
    v.set_chunk_source(ChunkSource::new(remote.clone(), "origin"));
    let out = d.path().join("out");
    let e = v.get("minilm", &VersionRef::Latest, &out, &GetOptions::default(), &NoProgress).unwrap_err();
    assert!(matches!(e, Error::Damaged(_)), "{e}");
    assert!(e.to_string().contains("fetching the chunks of model 'minilm' version 1 from the remote"), "{e}");
    assert!(no_files(&out), "no output file");
}

/// True when `dir` holds no file (or does not exist).
fn no_files(dir: &Path) -> bool {
    !dir.exists() || common::files_under(dir).is_empty()
}

fn url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

/// A vault `a` holding MiniLM as `minilm@1`, pushed through the command line to a directory
/// remote `bucket` (`remote` is its URL), and an empty directory `b` for the second vault.
struct Pushed {
    a: tempfile::TempDir,
    b: tempfile::TempDir,
    bucket: tempfile::TempDir,
    remote: String,
    want: Vec<u8>,
}

fn pushed() -> Pushed {
    let (a, b, bucket) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = url(bucket.path());
    let src = corpus().join(MINILM);
    cli_init(a.path());
    mvault(a.path()).arg("put").arg(&src).args(["--name", "minilm"]).assert().success();
    mvault(a.path()).args(["push", "--remote", &remote]).assert().success();
    Pushed { a, b, bucket, remote, want: std::fs::read(&src).unwrap() }
}

#[test]
fn cli_metadata_only_clone_reads_chunks_on_demand() {
    let Pushed { a: _a, b, bucket: _bucket, remote, want } = pushed();
    let vault = b.path().join("test.mvault");
    mvault(b.path())
        .args(["clone", "--metadata-only", &remote])
        .arg(&vault)
        .assert()
        .success()
        .stdout(contains("pulled minilm@1 (log entry 1): 0 chunk(s), 0 B in 0 ranged read(s)"));
    let small = std::fs::metadata(&vault).unwrap().len();
    assert!(small < 20 << 20, "{small}");
    // --no-cache: the output is right, the vault file does not grow.
    let out = mvault(b.path()).args(["cat", "minilm", "--no-cache", "--remote", &remote]).assert().success();
    assert_eq!(out.get_output().stdout, want);
    assert_eq!(std::fs::metadata(&vault).unwrap().len(), small);
    mvault(b.path())
        .args(["get", "minilm", "--tensor", "pooler.dense.weight", "--no-cache", "--remote", &remote, "-o"])
        .arg(b.path().join("t.safetensors"))
        .assert()
        .success();
    // A missing remote is a clear error, and no output file is left.
    let gone = b.path().join("gone");
    let out_dir = b.path().join("o1");
    mvault(b.path())
        .args(["get", "minilm", "--remote", &url(&gone), "-o"])
        .arg(&out_dir)
        .assert()
        .failure()
        .stderr(contains("remote"));
    assert!(no_files(&out_dir));
    // get through the directory remote writes the file byte-identical.
    let out_dir = b.path().join("o2");
    mvault(b.path()).args(["get", "minilm", "--remote", &remote, "-o"]).arg(&out_dir).assert().success();
    assert_eq!(std::fs::read(out_dir.join("all-MiniLM-L6-v2.model.safetensors")).unwrap(), want);
}

#[test]
fn cli_tampered_pack_exits_6_without_output() {
    let Pushed { a: _a, b, bucket, remote, .. } = pushed();
    mvault(b.path()).args(["clone", "--metadata-only", &remote]).arg(b.path().join("test.mvault")).assert().success();
    let packs = bucket.path().join("packs");
    let pack = std::fs::read_dir(&packs).unwrap().next().unwrap().unwrap().path();
    let mut bytes = std::fs::read(&pack).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x40;
    std::fs::write(&pack, bytes).unwrap();
    let out_dir = b.path().join("o");
    mvault(b.path())
        .args(["get", "minilm", "--remote", &remote, "-o"])
        .arg(&out_dir)
        .assert()
        .code(6)
        .stderr(contains("from the remote"));
    assert!(no_files(&out_dir));
}

#[test]
fn a_streamed_read_holds_one_batch_at_a_time() {
    let d = tempfile::tempdir().unwrap();
    let (remote, v) = metadata_clone(d.path());
    let want = std::fs::read(corpus().join(MINILM)).unwrap();
    let batch = 2u64 << 20;
    v.set_chunk_source(ChunkSource { cache: false, batch_bytes: batch, ..ChunkSource::new(remote, "origin") });
    let mut cat = Vec::new();
    v.cat("minilm", &VersionRef::Latest, None, &mut cat, &NoProgress).unwrap();
    assert_eq!(cat, want);
    let t = v.fetched_totals();
    let biggest = v
        .manifest("minilm", &VersionRef::Latest)
        .unwrap()
        .files
        .iter()
        .flat_map(|f| f.chunks.iter())
        .map(|c| u64::from(c.len))
        .max()
        .unwrap();
    eprintln!(
        "streamed MiniLM in batches of {batch} B: peak held {} B, biggest chunk {biggest} B, {} ranged reads",
        t.peak_held, t.traffic.ranges
    );
    assert!(t.peak_held > 0 && t.peak_held <= batch + biggest, "peak {} over {batch} + {biggest}", t.peak_held);
    assert!(
        t.traffic.ranges >= want.len() as u64 / (batch + biggest),
        "{} batches for {} B",
        t.traffic.ranges,
        want.len()
    );
    assert_eq!(t.kept, 0);
}

#[test]
fn verify_counts_chunks_left_on_the_remote_and_flags_them_without_one() {
    let d = tempfile::tempdir().unwrap();
    let (remote, v) = metadata_clone(d.path());
    let rep = v.verify_only(false, None, &NoProgress).unwrap();
    assert!(!rep.ok(), "without a remote, absent chunks are damage");
    assert_eq!(rep.not_held_locally, 0);
    v.set_chunk_source(ChunkSource::new(remote, "origin"));
    let rep = v.verify_only(true, None, &NoProgress).unwrap();
    assert!(rep.ok(), "{:?}", rep.problems);
    assert_eq!((rep.chunks, rep.not_held_locally), (240, 240));
}

#[test]
fn cli_get_keeps_chunks_and_streams_when_another_process_writes() {
    let Pushed { a: _a, b, bucket, remote, want } = pushed();
    let vault = b.path().join("test.mvault");
    mvault(b.path()).args(["clone", "--metadata-only", &remote]).arg(&vault).assert().success();
    mvault(b.path())
        .args(["verify", "--remote", &remote])
        .assert()
        .success()
        .stdout(contains("ok: 1 model(s), 1 version(s), 240 chunk reference(s), 240 not held locally (on the remote)"));
    mvault(b.path()).args(["verify"]).assert().code(6).stdout(contains("FAILED"));
    // A writer holds the vault: the read streams, says why, and keeps nothing.
    let small = std::fs::metadata(&vault).unwrap().len();
    let writer = common::reopen(&vault);
    let out = mvault(b.path()).args(["cat", "minilm", "--remote", &remote]).assert().success();
    assert_eq!(out.get_output().stdout, want);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        err.contains("read from the remote without being kept in the vault: another process is writing it"),
        "{err}"
    );
    drop(writer);
    assert_eq!(std::fs::metadata(&vault).unwrap().len(), small);
    // No writer: a read-only get keeps what it fetched, so the next read needs no remote.
    mvault(b.path()).args(["get", "minilm", "--remote", &remote, "-o"]).arg(b.path().join("o1")).assert().success();
    std::fs::remove_dir_all(bucket.path()).unwrap();
    let out = mvault(b.path()).args(["cat", "minilm"]).assert().success();
    assert_eq!(out.get_output().stdout, want);
    mvault(b.path()).args(["verify", "--read-data"]).assert().success().stdout(contains("240 chunk reference(s), "));
}
