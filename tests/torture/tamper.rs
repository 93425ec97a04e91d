//! Tamper: records and chunks moved by someone holding only the file (extends tests/tamper.rs):
//! chunks exchanged between two models, a version record rolled back to an older signed one,
//! one model's record at another's key, and chunks and records moved between two vaults with
//! the same passphrase. The edits go through `common::tamper`; the checks through the library
//! and the `mvault` binary.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::common::tables::{CHUNKS, MODELS, VERSIONS};
use modelvault::{Error, GetOptions, NoProgress, PutOptions, VersionRef};

use crate::common::tamper;
use crate::common::*;
use crate::harness::*;

fn silero_and_onnx(dir: &Path) -> PathBuf {
    let (path, mut v) = new_vault(dir);
    v.put(&silero(), "s", &PutOptions::default(), &NoProgress).unwrap();
    v.put(&corpus().join("onnx/silero_vad.onnx"), "m", &PutOptions::default(), &NoProgress).unwrap();
    path
}

fn chunk_ids_of(path: &Path, name: &str, r: VersionRef) -> Vec<[u8; 32]> {
    let v = reopen(path);
    v.manifest(name, &r).unwrap().files[0].chunks.iter().map(|c| c.id).collect()
}

fn damaged_get(path: &Path, dir: &Path, name: &str, r: VersionRef) -> String {
    let out = dir.join(format!("out-{name}-{}", rand_suffix()));
    let e = reopen(path).get(name, &r, &out, &GetOptions::default(), &NoProgress).unwrap_err();
    assert!(matches!(e, Error::Damaged(_)), "{name}: expected damage, got {e}");
    assert!(!out.exists() || files_under(&out).is_empty(), "{name}: a file was written");
    e.to_string()
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

#[test]
fn tamper_chunks_exchanged_between_two_models_fail_both() {
    let dir = tempfile::tempdir().unwrap();
    let path = silero_and_onnx(dir.path());
    let s = chunk_ids_of(&path, "s", VersionRef::Latest);
    let m = chunk_ids_of(&path, "m", VersionRef::Latest);
    let (sv, mv) = (tamper::chunk_value(&path, &s[3]), tamper::chunk_value(&path, &m[1]));
    tamper::put_rows(&path, CHUNKS, &[(s[3], mv), (m[1], sv)]);
    let e = damaged_get(&path, dir.path(), "s", VersionRef::Latest);
    assert!(e.contains("chunk 4 of") && e.contains("authentication failed"), "{e}");
    let e = damaged_get(&path, dir.path(), "m", VersionRef::Latest);
    assert!(e.contains("chunk 2 of 5") && e.contains("authentication failed"), "{e}");
    let rep = reopen(&path).verify(true, &NoProgress).unwrap();
    let hurt: BTreeSet<String> = rep.problems.iter().filter_map(|p| p.model.clone()).collect();
    assert_eq!(hurt, BTreeSet::from(["m".to_string(), "s".to_string()]), "{:?}", rep.problems);
}

#[test]
fn tamper_a_version_rolled_back_to_an_older_signed_version_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (path, mut v) = new_vault(d);
    let changed = corpus().join("safetensors/silero_vad_16k.one-tensor-changed.safetensors");
    v.put(&silero(), "s", &PutOptions::default(), &NoProgress).unwrap();
    v.put(&changed, "s", &PutOptions::default(), &NoProgress).unwrap();
    drop(v);
    let rows = tamper::rows(&path, VERSIONS);
    assert_eq!(rows.len(), 2);
    let key = |i: usize| -> [u8; 40] { rows[i].0.as_slice().try_into().unwrap() };
    let (k1, k2) = if rows[0].0[39] == 1 { (0, 1) } else { (1, 0) };
    // The value of s@1 (validly signed, same model) at s@2's key: the "latest" rolls back.
    tamper::put_rows(&path, VERSIONS, &[(key(k2), rows[k1].1.clone())]);
    let v = reopen(&path);
    let e = v.show("s", &VersionRef::Latest).unwrap_err();
    assert!(matches!(e, Error::Damaged(_)) && e.to_string().contains("model 's' version 2"), "{e}");
    v.show("s", &VersionRef::Number(1)).unwrap();
    let rep = v.verify(true, &NoProgress).unwrap();
    assert_eq!(rep.problems.len(), 2, "{:?}", rep.problems);
    assert!(
        rep.problems[1].detail.starts_with("the version record of s@2 is not the one log entry"),
        "{:?}",
        rep.problems
    );
    drop(v);
    // Through the CLI: `cat s` (latest) refuses with exit 6, `cat s@1` still reads.
    std::fs::rename(&path, d.join("cli.mvault")).unwrap();
    let mv = Mv::new(d, &d.join("cli.mvault"));
    let r = mv.run(&["cat", "s"]);
    assert_eq!(r.code(), Some(6), "{}", r.describe());
    assert!(std::fs::read(&r.stdout).unwrap().is_empty(), "cat wrote bytes of a rolled-back version");
    cat_matches(&mv, "s@1", &silero());
    assert_eq!(mv.run(&["verify"]).code(), Some(6));
}

#[test]
fn tamper_one_models_record_in_place_of_anothers_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = silero_and_onnx(dir.path());
    let rows = tamper::rows(&path, MODELS);
    assert_eq!(rows.len(), 2);
    let k0: [u8; 32] = rows[0].0.as_slice().try_into().unwrap();
    tamper::put_rows(&path, MODELS, &[(k0, rows[1].1.clone())]);
    let v = reopen(&path);
    let e = v
        .list(None)
        .map(|_| ())
        .and_then(|_| v.show("s", &VersionRef::Latest).map(|_| ()))
        .and_then(|_| v.show("m", &VersionRef::Latest).map(|_| ()));
    assert!(matches!(e, Err(Error::Damaged(_)) | Err(Error::ModelNotFound(_))), "{e:?}");
    assert!(!v.verify(false, &NoProgress).unwrap().ok(), "verify must report the swapped model record");
}

#[test]
fn tamper_chunks_and_records_moved_between_two_vaults_with_one_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let a = silero_and_onnx(&a_dir);
    let b = silero_and_onnx(&b_dir);
    let sa = chunk_ids_of(&a, "s", VersionRef::Latest);
    let sb = chunk_ids_of(&b, "s", VersionRef::Latest);
    assert_ne!(sa[0], sb[0], "chunk ids are keyed per vault");
    // The same plaintext chunk, sealed by vault A, at vault B's id for it.
    let b_original = tamper::chunk_value(&b, &sb[2]);
    tamper::put_rows(&b, CHUNKS, &[(sb[2], tamper::chunk_value(&a, &sa[2]))]);
    let e = damaged_get(&b, dir.path(), "s", VersionRef::Latest);
    assert!(e.contains("chunk 3 of") && e.contains("authentication failed"), "{e}");
    // Put B's own value back; A's chunk under A's id is referenced by nothing in B and missing
    // from B's chunk index: verify names it, gc deletes it, and the vault is clean.
    tamper::put_rows(&b, CHUNKS, &[(sb[2], b_original), (sa[0], tamper::chunk_value(&a, &sa[0]))]);
    let mut v = reopen(&b);
    let problems = v.verify(true, &NoProgress).unwrap().problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].detail.contains("1 chunk(s) not indexed"), "{problems:?}");
    assert_eq!(v.gc().unwrap().chunks_removed, 1);
    assert!(v.verify(true, &NoProgress).unwrap().ok());
    drop(v);
    // A's version record of s@1 at B's key of s@1, and A's model record at B's key of s.
    let va = tamper::rows(&a, VERSIONS);
    let vb = tamper::rows(&b, VERSIONS);
    let ma = tamper::rows(&a, MODELS);
    let mb = tamper::rows(&b, MODELS);
    let mk_b: Vec<[u8; 32]> = mb.iter().map(|(k, _)| k.as_slice().try_into().unwrap()).collect();
    let vk_b: Vec<[u8; 40]> = vb.iter().map(|(k, _)| k.as_slice().try_into().unwrap()).collect();
    assert_eq!(va.len(), vb.len());
    let moved: Vec<([u8; 40], Vec<u8>)> = vk_b.iter().zip(va.iter()).map(|(k, (_, v))| (*k, v.clone())).collect();
    tamper::put_rows(&b, VERSIONS, &moved);
    let v = reopen(&b);
    for name in ["s", "m"] {
        let e = v.show(name, &VersionRef::Latest).unwrap_err();
        assert!(matches!(e, Error::Damaged(_)), "{name}: {e}");
    }
    let rep = v.verify(false, &NoProgress).unwrap();
    assert!(rep.problems.len() >= 2, "{:?}", rep.problems);
    drop(v);
    let moved: Vec<([u8; 32], Vec<u8>)> = mk_b.iter().zip(ma.iter()).map(|(k, (_, v))| (*k, v.clone())).collect();
    tamper::put_rows(&b, MODELS, &moved);
    let v = reopen(&b);
    assert!(
        v.list(None).is_err() || !v.verify(false, &NoProgress).unwrap().ok(),
        "A's model records in B went unnoticed"
    );
}
