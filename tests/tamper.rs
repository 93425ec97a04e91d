//! Damage and tampering in the vault file are detected, named, and contained: bugs.md B15
//! (truncation, extension, swapped chunks), B16 (short and missing blobs), manifest swaps, dropped
//! or put-back version and model records, and the upgrade of older formats.
//! The file is edited through redb itself, as an attacker with the file (but no passphrase) could.

mod common;

use std::path::Path;

use crate::common::tables::{CHUNK_IDS, CHUNKS, META, VERSIONS};
use common::tamper::{self, ReadableTable};
use common::*;
use modelvault::manifest::Manifest;
use modelvault::store::records::{self, FORMAT_VERSION, Header};
use modelvault::{Error, GetOptions, NoProgress, PutOptions, VersionRef};

/// Two models: `s` (silero safetensors: a chunk per tensor) and `m` (silero ONNX, 5 chunks).
fn two_models(dir: &Path) -> std::path::PathBuf {
    let (path, mut v) = new_vault(dir);
    v.put(&corpus().join("safetensors/silero_vad_16k.safetensors"), "s", &PutOptions::default(), &NoProgress).unwrap();
    v.put(&corpus().join("onnx/silero_vad.onnx"), "m", &PutOptions::default(), &NoProgress).unwrap();
    path
}

/// The chunk ids of `name@1`, in file order.
fn chunk_ids(path: &Path, name: &str) -> Vec<[u8; 32]> {
    let v = reopen(path);
    let m: Manifest = manifest_of(&v, name);
    m.files[0].chunks.iter().map(|c| c.id).collect()
}

fn manifest_of(v: &modelvault::Vault<modelvault::Unlocked>, name: &str) -> Manifest {
    let m = v.manifest(name, &VersionRef::Latest).unwrap();
    assert_eq!(m.files.len(), 1);
    m
}

fn edit_chunks(path: &Path, f: impl FnOnce(&mut tamper::Table<&'static [u8; 32], &'static [u8]>)) {
    tamper::edit(path, CHUNKS, f)
}

fn get_err(path: &Path, name: &str, out: &Path) -> Error {
    let v = reopen(path);
    v.get(name, &VersionRef::Latest, out, &GetOptions::default(), &NoProgress).unwrap_err()
}

fn other_model_still_reads(path: &Path, dir: &Path, name: &str, original: &str) {
    let v = reopen(path);
    let out = dir.join(format!("ok-{name}"));
    v.get(name, &VersionRef::Latest, &out, &GetOptions::default(), &NoProgress).unwrap();
    let f = corpus().join(original);
    assert_eq!(std::fs::read(out.join(f.file_name().unwrap())).unwrap(), std::fs::read(&f).unwrap());
}

#[test]
fn flipped_byte_in_a_chunk_is_named_and_leaves_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = two_models(dir.path());
    let ids = chunk_ids(&path, "s");
    edit_chunks(&path, |t| {
        let mut v = t.get(&ids[1]).unwrap().unwrap().value().to_vec();
        v[100] ^= 1;
        t.insert(&ids[1], v.as_slice()).unwrap();
    });
    let out = dir.path().join("out");
    let e = get_err(&path, "s", &out);
    let msg = e.to_string();
    assert!(matches!(e, Error::Damaged(_)), "{msg}");
    assert!(
        msg.contains(&format!("model 's' version 1 file 'silero_vad_16k.safetensors': chunk 2 of {}", ids.len())),
        "{msg}"
    );
    assert!(msg.contains("authentication failed"), "{msg}");
    assert!(files_under(&out).is_empty(), "a partial or temporary file was left: {:?}", files_under(&out));
    let rep = reopen(&path).verify(true, &NoProgress).unwrap();
    assert_eq!(rep.problems.len(), 1, "{:?}", rep.problems);
    assert_eq!(rep.problems[0].model.as_deref(), Some("s"));
    other_model_still_reads(&path, dir.path(), "m", "onnx/silero_vad.onnx");
}

#[test]
fn swapped_chunks_fail_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let path = two_models(dir.path());
    let ids = chunk_ids(&path, "s");
    edit_chunks(&path, |t| {
        let a = t.get(&ids[0]).unwrap().unwrap().value().to_vec();
        let b = t.get(&ids[1]).unwrap().unwrap().value().to_vec();
        t.insert(&ids[0], b.as_slice()).unwrap();
        t.insert(&ids[1], a.as_slice()).unwrap();
    });
    let msg = get_err(&path, "s", &dir.path().join("out")).to_string();
    assert!(msg.contains(&format!("chunk 1 of {}", ids.len())) && msg.contains("authentication failed"), "{msg}");
    let rep = reopen(&path).verify(false, &NoProgress).unwrap();
    assert!(rep.ok(), "presence-only verify sees both chunks present");
    let rep = reopen(&path).verify(true, &NoProgress).unwrap();
    assert_eq!(rep.problems.len(), 2, "{:?}", rep.problems);
}

#[test]
fn truncation_at_a_chunk_boundary_is_detected_b15a() {
    let dir = tempfile::tempdir().unwrap();
    let path = two_models(dir.path());
    let ids = chunk_ids(&path, "s");
    let last = *ids.last().unwrap();
    edit_chunks(&path, |t| {
        t.remove(&last).unwrap();
    });
    let out = dir.path().join("out");
    let msg = get_err(&path, "s", &out).to_string();
    assert!(msg.contains(&format!("chunk {n} of {n}", n = ids.len())) && msg.contains("is missing"), "{msg}");
    assert!(files_under(&out).is_empty());
    let v = reopen(&path);
    let mut sink = Vec::new();
    assert!(v.cat("s", &VersionRef::Latest, None, &mut sink, &NoProgress).is_err());
    let rep = v.verify(false, &NoProgress).unwrap();
    assert_eq!(rep.problems.len(), 1);
    assert!(rep.problems[0].detail.contains("is missing"));
    drop(v);
    other_model_still_reads(&path, dir.path(), "m", "onnx/silero_vad.onnx");
}

#[test]
fn a_chunk_from_another_model_in_its_place_is_detected_b15b() {
    let dir = tempfile::tempdir().unwrap();
    let path = two_models(dir.path());
    let s = chunk_ids(&path, "s");
    let m = chunk_ids(&path, "m");
    let last = *s.last().unwrap();
    edit_chunks(&path, |t| {
        let foreign = t.get(&m[0]).unwrap().unwrap().value().to_vec();
        t.insert(&last, foreign.as_slice()).unwrap();
    });
    let msg = get_err(&path, "s", &dir.path().join("out")).to_string();
    assert!(msg.contains(&format!("chunk {n} of {n}", n = s.len())) && msg.contains("authentication failed"), "{msg}");
}

#[test]
fn short_and_deleted_blobs_are_listed_by_verify_b16() {
    let dir = tempfile::tempdir().unwrap();
    let path = two_models(dir.path());
    let s = chunk_ids(&path, "s");
    let m = chunk_ids(&path, "m");
    edit_chunks(&path, |t| {
        let v = t.get(&s[0]).unwrap().unwrap().value().to_vec();
        t.insert(&s[0], &v[..10]).unwrap();
        t.remove(&m[1]).unwrap();
    });
    let v = reopen(&path);
    let rep = v.verify(true, &NoProgress).unwrap();
    let mut hurt: Vec<(String, String)> =
        rep.problems.iter().map(|p| (p.model.clone().unwrap(), p.detail.clone())).collect();
    hurt.sort();
    assert_eq!(hurt.len(), 2, "{hurt:?}");
    assert_eq!(hurt[0].0, "m");
    assert!(hurt[0].1.contains("chunk 2 of 5") && hurt[0].1.contains("missing"), "{hurt:?}");
    assert_eq!(hurt[1].0, "s");
    assert!(hurt[1].1.contains("shorter than nonce + tag"), "{hurt:?}");
    // Listing still works and names both models.
    assert_eq!(v.list(None).unwrap().models.len(), 2);
    drop(v);
    // The CLI exits 6 and prints each damaged model.
    std::fs::rename(&path, dir.path().join("test.mvault")).ok();
    mvault(dir.path())
        .args(["verify", "--read-data"])
        .assert()
        .code(6)
        .stdout(predicates::str::contains("DAMAGED model 's'"))
        .stdout(predicates::str::contains("DAMAGED model 'm'"));
}

#[test]
fn one_versions_manifest_in_place_of_anothers_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    let a = corpus().join("safetensors/silero_vad_16k.safetensors");
    let b = corpus().join("safetensors/silero_vad_16k.one-tensor-changed.safetensors");
    v.put(&a, "s", &PutOptions::default(), &NoProgress).unwrap();
    v.put(&b, "s", &PutOptions::default(), &NoProgress).unwrap();
    v.put(&a, "t", &PutOptions::default(), &NoProgress).unwrap();
    drop(v);
    edit_versions(&path, |t| {
        let rows: Vec<([u8; 40], Vec<u8>)> =
            t.iter().unwrap().map(|r| r.unwrap()).map(|(k, v)| (*k.value(), v.value().to_vec())).collect();
        assert_eq!(rows.len(), 3);
        // Find s@1 and s@2: same 32-byte model prefix, versions 1 and 2.
        let (k1, v1) = rows
            .iter()
            .find(|(k, _)| rows.iter().filter(|(k2, _)| k2[..32] == k[..32]).count() == 2 && k[39] == 1)
            .unwrap();
        let (k2, v2) = rows.iter().find(|(k, _)| k[..32] == k1[..32] && k[39] == 2).unwrap();
        t.insert(k2, v1.as_slice()).unwrap();
        t.insert(k1, v2.as_slice()).unwrap();
    });
    let v = reopen(&path);
    for r in [1, 2] {
        let e = v.show("s", &VersionRef::Number(r)).unwrap_err();
        assert!(matches!(e, Error::Damaged(_)), "{e}");
        assert!(e.to_string().contains(&format!("model 's' version {r}")), "{e}");
    }
    v.show("t", &VersionRef::Latest).unwrap();
    let rep = v.verify(false, &NoProgress).unwrap();
    // Each swapped version record is damage, and the log names each as not the one it wrote.
    assert_eq!(rep.problems.len(), 4, "{:?}", rep.problems);
    assert_eq!(rep.problems.iter().filter(|p| p.detail.contains("is not the one log entry")).count(), 2);
    // gc cannot tell which chunks the swapped versions need: it refuses and deletes nothing.
    drop(v);
    let before = table_lens(&path);
    let e = reopen(&path).gc().unwrap_err();
    assert!(matches!(e, Error::Damaged(_)), "{e}");
    assert!(e.to_string().contains("authentication failed") && e.to_string().contains("gc deleted nothing"), "{e}");
    assert_eq!(table_lens(&path), before);
}

fn edit_index(path: &Path, f: impl FnOnce(&mut tamper::Table<&'static [u8; 32], u32>)) {
    tamper::edit(path, CHUNK_IDS, f)
}

/// (chunks stored, chunk index entries).
fn table_lens(path: &Path) -> (u64, u64) {
    (tamper::len(path, CHUNKS), tamper::len(path, CHUNK_IDS))
}

#[test]
fn put_dedups_from_the_chunk_index_alone_and_verify_and_gc_catch_a_disagreeing_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = two_models(dir.path());
    let (stored, indexed) = table_lens(&path);
    assert_eq!(stored, indexed);
    let s = chunk_ids(&path, "s");
    // The chunk value goes, its index entry stays: a re-put finds the id in the index and does
    // not store the chunk again (the dedup check never reads the chunk table).
    edit_chunks(&path, |t| {
        t.remove(&s[0]).unwrap();
    });
    let mut v = reopen(&path);
    let f = corpus().join("safetensors/silero_vad_16k.safetensors");
    let rep = v.put(&f, "s", &PutOptions::default(), &NoProgress).unwrap();
    assert_eq!(rep.new_chunks, 0, "{rep:?}");
    let problems = v.verify(false, &NoProgress).unwrap().problems;
    assert_eq!(problems.len(), 2, "{problems:?}"); // s@1 and the re-put s@2 reference it
    assert!(
        problems.iter().all(|p| p.detail.contains("chunk 1 of") && p.detail.contains("is missing")),
        "{problems:?}"
    );
    // gc rebuilds the index from the chunk table; the next put stores the chunk again and the
    // vault verifies.
    let g = v.gc().unwrap();
    assert_eq!(g.missing.len(), 1, "{g:?}");
    drop(v);
    let (stored, indexed) = table_lens(&path);
    assert_eq!(stored, indexed);
    let mut v = reopen(&path);
    let rep = v.put(&f, "s", &PutOptions::default(), &NoProgress).unwrap();
    assert_eq!(rep.new_chunks, 1, "{rep:?}");
    assert!(v.verify(true, &NoProgress).unwrap().ok());
}

fn set_format_version(path: &Path, version: u32) {
    tamper::edit(path, META, |t| {
        let mut h: Header = postcard::from_bytes(t.get("header").unwrap().unwrap().value()).unwrap();
        h.format_version = version;
        t.insert("header", records::encode(&h).as_slice()).unwrap();
    })
}

fn format_version(path: &Path) -> u32 {
    let h: Header = postcard::from_bytes(&meta_value(path, "header")).unwrap();
    h.format_version
}

#[test]
fn an_unindexed_chunk_or_an_emptied_index_is_reported_and_gc_repairs_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = two_models(dir.path());
    let s = chunk_ids(&path, "s");
    edit_index(&path, |t| {
        t.remove(&s[1]).unwrap();
        t.insert(&[7u8; 32], 7).unwrap();
    });
    let problems = reopen(&path).verify(false, &NoProgress).unwrap().problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].detail.contains("1 chunk(s) not indexed"), "{problems:?}");
    assert!(problems[0].detail.contains("1 unreferenced index entr(ies) without a chunk"), "{problems:?}");
    assert_eq!(problems[0].remedy, Some(modelvault::Remedy::RebuildIndex));
    assert!(cli_exit::remedy(problems[0].remedy.as_ref().unwrap()).contains("mvault gc"));
    // An emptied index in a current-format vault is damage too; gc rebuilds it.
    let (stored, _) = table_lens(&path);
    edit_index(&path, |t| {
        t.retain(|_, _| false).unwrap();
    });
    let problems = reopen(&path).verify(false, &NoProgress).unwrap().problems;
    assert!(problems[0].detail.contains(&format!("{stored} chunk(s) not indexed")), "{problems:?}");
    reopen(&path).gc().unwrap();
    assert_eq!(table_lens(&path), (stored, stored));
    assert!(reopen(&path).verify(true, &NoProgress).unwrap().ok());
}

#[test]
fn a_format_1_vault_gets_its_chunk_index_on_its_first_write_and_newer_formats_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = two_models(dir.path());
    let (stored, _) = table_lens(&path);
    assert_eq!(format_version(&path), FORMAT_VERSION);
    // As a vault written before the index existed: format 1, no index entries.
    edit_index(&path, |t| {
        t.retain(|_, _| false).unwrap();
    });
    set_format_version(&path, 1);
    // The edit of the header is the one thing the log names (a real format 1 vault has no log).
    let rep = reopen(&path).verify(true, &NoProgress).unwrap();
    let problems: Vec<_> = rep.problems.iter().map(|p| p.detail.as_str()).collect();
    assert_eq!(
        problems,
        [
            "the meta record 'header' is not the one log entry 0 wrote: an older copy of it was put back, or it was replaced"
        ]
    );
    let v = reopen(&path);
    v.set_tag("s", &VersionRef::Latest, "env", "prod").unwrap();
    drop(v);
    assert_eq!(table_lens(&path), (stored, stored));
    assert_eq!(format_version(&path), FORMAT_VERSION);
    assert!(reopen(&path).verify(true, &NoProgress).unwrap().ok());
    // A format this build does not know is refused before anything is read or written.
    set_format_version(&path, FORMAT_VERSION + 1);
    let e = modelvault::Vault::open(&path, &modelvault::OpenOptions::default()).map(|_| ()).unwrap_err();
    assert!(matches!(e, Error::UnsupportedVersion { found, .. } if found == FORMAT_VERSION + 1), "{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "vault format version {} is not supported (this build reads versions up to {FORMAT_VERSION}): upgrade mvault",
            FORMAT_VERSION + 1
        )
    );
    assert_eq!(format_version(&path), FORMAT_VERSION + 1, "the refused vault was left as it was");
}

/// Every version record as (key, value).
fn version_rows(path: &Path) -> Vec<([u8; 40], Vec<u8>)> {
    tamper::rows(path, VERSIONS).into_iter().map(|(k, v)| (k.try_into().unwrap(), v)).collect()
}

fn edit_versions(path: &Path, f: impl FnOnce(&mut tamper::Table<&'static [u8; 40], &'static [u8]>)) {
    tamper::edit(path, VERSIONS, f)
}

/// Every record of the `meta`, `slots`, `models` and `versions` tables, each table in key order.
fn records_of(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = tamper::rows(path, META);
    out.extend(tamper::rows(path, crate::common::tables::SLOTS));
    out.extend(tamper::rows(path, crate::common::tables::MODELS));
    out.extend(tamper::rows(path, VERSIONS));
    out
}

/// `s` with versions 1 and 2 (alias `prod` on 2), `m` with version 1.
fn aliased_vault(dir: &Path) -> std::path::PathBuf {
    let (path, mut v) = new_vault(dir);
    let a = corpus().join("safetensors/silero_vad_16k.safetensors");
    let b = corpus().join("safetensors/silero_vad_16k.one-tensor-changed.safetensors");
    v.put(&a, "s", &PutOptions::default(), &NoProgress).unwrap();
    let prod = PutOptions { aliases: vec!["prod".into()], ..Default::default() };
    v.put(&b, "s", &prod, &NoProgress).unwrap();
    v.put(&corpus().join("onnx/silero_vad.onnx"), "m", &PutOptions::default(), &NoProgress).unwrap();
    path
}

/// The key of the model with `n` version records (exactly one such model).
fn model_with_versions(path: &Path, n: usize) -> [u8; 32] {
    let rows = version_rows(path);
    let keys: Vec<[u8; 32]> = rows
        .iter()
        .map(|(k, _)| <[u8; 32]>::try_from(&k[..32]).unwrap())
        .filter(|mk| rows.iter().filter(|(k, _)| k[..32] == mk[..]).count() == n)
        .collect();
    assert!(!keys.is_empty() && keys.iter().all(|k| *k == keys[0]), "one model with {n} versions");
    keys[0]
}

const S2_MISSING: &str = "model 's': version 2 is recorded as live but its record is missing";

#[test]
fn a_dropped_aliased_version_record_is_damage_on_every_read_not_an_older_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = aliased_vault(dir.path());
    let mk = model_with_versions(&path, 2);
    edit_versions(&path, |t| {
        t.remove(&modelvault::store::version_key(&mk, 2)).unwrap();
    });
    let v = reopen(&path);
    let rep = v.verify(true, &NoProgress).unwrap();
    assert_eq!(rep.problems.len(), 2, "{:?}", rep.problems);
    assert!(rep.problems[0].detail.starts_with(S2_MISSING), "{:?}", rep.problems);
    assert!(
        rep.problems[1].detail.starts_with("the version record of s@2 is missing: log entry"),
        "{:?}",
        rep.problems
    );
    assert_eq!((rep.problems[0].model.as_deref(), rep.problems[0].version), (Some("s"), Some(2)));
    let out = dir.path().join("out");
    for r in [VersionRef::Latest, VersionRef::Alias("prod".into()), VersionRef::Number(2)] {
        let e = v.get("s", &r, &out, &GetOptions::default(), &NoProgress).unwrap_err();
        assert!(matches!(e, Error::Damaged(_)), "get s@{r}: {e}");
        assert!(e.to_string().starts_with(S2_MISSING), "get s@{r}: {e}");
        assert_eq!(e.exit_code(), 6);
    }
    assert!(!out.exists() || files_under(&out).is_empty());
    // The version that is still there reads, by number; `ls` lists it and reports the loss.
    v.show("s", &VersionRef::Number(1)).unwrap();
    let l = v.list(None).unwrap();
    assert!(l.problems.iter().any(|p| p.starts_with(S2_MISSING)), "{:?}", l.problems);
    let l = v.list(Some("s")).unwrap();
    assert!(l.problems.iter().any(|p| p.starts_with(S2_MISSING)), "{:?}", l.problems);
    drop(v);
    mvault(dir.path()).args(["verify", "--read-data"]).assert().code(6).stdout(predicates::str::contains(S2_MISSING));
    for spec in ["s", "s@prod"] {
        mvault(dir.path())
            .args(["get", spec, "-o"])
            .arg(dir.path().join("cli-out"))
            .assert()
            .code(6)
            .stderr(predicates::str::contains(S2_MISSING));
    }
    mvault(dir.path()).args(["ls"]).assert().code(6).stderr(predicates::str::contains(S2_MISSING));
}

#[test]
fn a_removed_versions_record_put_back_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = aliased_vault(dir.path());
    let mk = model_with_versions(&path, 2);
    let key = modelvault::store::version_key(&mk, 1);
    let old = version_rows(&path).into_iter().find(|(k, _)| *k == key).unwrap().1;
    reopen(&path).remove_version("s", &VersionRef::Number(1)).unwrap();
    edit_versions(&path, |t| {
        t.insert(&key, old.as_slice()).unwrap();
    });
    let v = reopen(&path);
    let want = "model 's': version 1 has a record but is not recorded as live";
    let e = v.show("s", &VersionRef::Number(1)).unwrap_err();
    assert!(matches!(e, Error::Damaged(_)) && e.to_string().starts_with(want), "{e}");
    let rep = v.verify(false, &NoProgress).unwrap();
    assert!(rep.problems.iter().any(|p| p.detail.starts_with(want)), "{:?}", rep.problems);
    v.show("s", &VersionRef::Alias("prod".into())).unwrap();
}

#[test]
fn a_model_dropped_with_all_its_versions_is_damage_and_no_write_seals_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    let path = aliased_vault(dir.path());
    // Intact: an unknown model is "not found" (exit 5).
    let e = reopen(&path).manifest("nosuch", &VersionRef::Latest).unwrap_err();
    assert!(matches!(e, Error::ModelNotFound(_)), "{e}");
    let mk = model_with_versions(&path, 1); // m
    edit_versions(&path, |t| {
        t.remove(&modelvault::store::version_key(&mk, 1)).unwrap();
    });
    tamper::edit(&path, crate::common::tables::MODELS, |t| {
        t.remove(&mk).unwrap();
    });
    let want = "the vault state records 2 live model(s), and 1 model record(s) are present, not the same set: \
                a model's records were deleted";
    let v = reopen(&path);
    let rep = v.verify(true, &NoProgress).unwrap();
    // The state's model set, and the log's record of the model and version records it wrote.
    assert_eq!(rep.problems.len(), 3, "{:?}", rep.problems);
    assert!(rep.problems[0].detail.starts_with(want), "{:?}", rep.problems);
    assert!(rep.problems[1].detail.starts_with("the model record of m is missing: log entry"), "{:?}", rep.problems);
    let e = v.manifest("m", &VersionRef::Latest).unwrap_err();
    assert!(matches!(e, Error::Damaged(_)), "{e}");
    assert!(e.to_string().starts_with(&format!("model 'm' has no record, and {want}")), "{e}");
    assert!(matches!(v.list(Some("m")).unwrap_err(), Error::Damaged(_)));
    assert!(v.list(None).unwrap().problems.iter().any(|p| p.starts_with(want)));
    // A write would seal the loss into the state: it is refused and writes nothing.
    drop(v);
    let before = records_of(&path);
    let v = reopen(&path);
    let e = v.set_tag("s", &VersionRef::Latest, "env", "prod").unwrap_err();
    assert!(matches!(e, Error::Damaged(_)), "{e}");
    assert!(e.to_string().starts_with(want) && e.to_string().ends_with("nothing was written"), "{e}");
    assert!(v.show("s", &VersionRef::Latest).unwrap().tags.is_empty());
    drop(v);
    assert!(records_of(&path) == before, "the refused write left the records as they were");
    mvault(dir.path()).args(["verify"]).assert().code(6).stdout(predicates::str::contains(want));
    mvault(dir.path())
        .args(["get", "m", "-o"])
        .arg(dir.path().join("o"))
        .assert()
        .code(6)
        .stderr(predicates::str::contains(want));
    mvault(dir.path()).args(["ls"]).assert().code(6).stderr(predicates::str::contains(want));
}

/// A vault written by the format 2 build (`mvault` at commit e6ec1ab): `init` with test Argon2
/// parameters and the test passphrase, `put` of onnx-backend_test_single_relu as r@1 (alias
/// prod), of onnx-backend_test_Conv2d as r@2 and as c@1, `rm r@1`, `alias r@2 prod`, `gc`.
fn format2_vault(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("test.mvault");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/format2.mvault"), &path).unwrap();
    path
}

#[test]
fn a_format_2_vault_reads_is_upgraded_by_its_first_write_and_then_detects_dropped_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = format2_vault(dir.path());
    assert_eq!(format_version(&path), 2);
    let conv = std::fs::read(corpus().join("onnx/onnx-backend_test_Conv2d.model.onnx")).unwrap();
    let read_prod = |v: &modelvault::Vault<modelvault::Unlocked>| {
        let mut out = Vec::new();
        v.cat("r", &VersionRef::Alias("prod".into()), None, &mut out, &NoProgress).map(|_| out)
    };
    // Read before any write: everything is there, nothing is rewritten.
    let before = records_of(&path);
    let v = reopen(&path);
    assert!(v.verify(true, &NoProgress).unwrap().ok());
    assert_eq!(read_prod(&v).unwrap(), conv);
    let l = v.list(None).unwrap();
    assert!(l.problems.is_empty(), "{:?}", l.problems);
    let versions: Vec<(String, u64)> =
        l.models.iter().flat_map(|m| m.versions.iter().map(|x| (x.name.clone(), x.version))).collect();
    assert_eq!(versions, [("c".to_string(), 1), ("r".to_string(), 2)]);
    drop(v);
    assert_eq!(format_version(&path), 2);
    assert!(records_of(&path) == before, "reading does not upgrade");
    // The first write upgrades, and the upgraded vault verifies.
    let v = reopen(&path);
    v.set_tag("c", &VersionRef::Latest, "env", "test").unwrap();
    assert!(v.verify(true, &NoProgress).unwrap().ok());
    drop(v);
    assert_eq!(format_version(&path), FORMAT_VERSION);
    let v = reopen(&path);
    assert!(v.verify(true, &NoProgress).unwrap().ok());
    assert_eq!(read_prod(&v).unwrap(), conv);
    assert_eq!(v.show("c", &VersionRef::Latest).unwrap().tags["env"], "test");
    drop(v);
    // The upgrade recorded r@2 as live: dropping its record is now damage, not "not found".
    let rows = version_rows(&path);
    assert_eq!(rows.len(), 2);
    let r2 = rows.iter().find(|(k, _)| k[39] == 2).unwrap().0;
    edit_versions(&path, |t| {
        t.remove(&r2).unwrap();
    });
    let v = reopen(&path);
    let e = read_prod(&v).unwrap_err();
    assert!(e.to_string().starts_with("model 'r': version 2 is recorded as live but its record is missing"), "{e}");
}

#[test]
fn a_format_1_vault_with_format_2_records_is_upgraded_with_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = format2_vault(dir.path());
    let (stored, _) = table_lens(&path);
    edit_index(&path, |t| {
        t.retain(|_, _| false).unwrap();
    });
    set_format_version(&path, 1);
    let v = reopen(&path);
    assert!(v.verify(true, &NoProgress).unwrap().ok());
    v.remove_version("c", &VersionRef::Latest).unwrap();
    drop(v);
    assert_eq!(format_version(&path), FORMAT_VERSION);
    assert_eq!(table_lens(&path), (stored, stored));
    let v = reopen(&path);
    assert!(v.verify(true, &NoProgress).unwrap().ok());
    assert!(matches!(v.manifest("c", &VersionRef::Latest).unwrap_err(), Error::ModelNotFound(_)));
    assert_eq!(v.list(None).unwrap().models.len(), 1);
}

/// Every chunk id in the chunk table.
fn chunk_table(path: &Path) -> Vec<[u8; 32]> {
    tamper::keys(path, CHUNKS)
}

#[test]
fn a_dropped_version_record_blocks_gc_erasure_and_rotation_which_delete_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = aliased_vault(dir.path());
    let mk = model_with_versions(&path, 2);
    edit_versions(&path, |t| {
        t.remove(&modelvault::store::version_key(&mk, 2)).unwrap();
    });
    let chunks = chunk_table(&path);
    let refused = |e: Error, action: &str| {
        assert!(matches!(e.base(), Error::Damaged(_)), "{action}: {e}");
        let msg = cli_exit::message(&e);
        assert!(msg.starts_with(S2_MISSING), "{action}: {msg}");
        assert!(
            msg.ends_with(&format!("{action} refused: nothing was deleted; restore the record from a backup")),
            "{action}: {msg}"
        );
        assert_eq!(e.exit_code(), 6);
    };
    let mut v = reopen(&path);
    refused(v.gc().unwrap_err(), "gc");
    refused(v.rotate(&[], false, &NoProgress).unwrap_err(), "key rotate");
    refused(v.erase("m", None).unwrap_err(), "rm --erase");
    assert!(!v.erasure_pending().unwrap() && !v.rotation_pending());
    drop(v);
    assert_eq!(chunk_table(&path), chunks, "nothing was deleted");
    for args in [&["gc"][..], &["key", "rotate"], &["rm", "m", "--erase", "--yes"]] {
        mvault(dir.path()).args(args).assert().code(6).stderr(predicates::str::contains(S2_MISSING));
    }
    assert_eq!(chunk_table(&path), chunks, "nothing was deleted");
    mvault(dir.path()).args(["get", "m", "-o"]).arg(dir.path().join("m-out")).assert().success();
}

#[test]
fn query_and_ls_where_see_only_live_versions_and_report_live_problems() {
    let dir = tempfile::tempdir().unwrap();
    let path = aliased_vault(dir.path());
    let mk = model_with_versions(&path, 2);
    let key = modelvault::store::version_key(&mk, 1);
    let old = version_rows(&path).into_iter().find(|(k, _)| *k == key).unwrap().1;
    // Intact: both readers list s@1, s@2 and m@1 and succeed.
    let q = ["query", "SELECT name, version FROM versions ORDER BY name, version"];
    let out = mvault(dir.path()).args(q).assert().success().get_output().stdout.clone();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains('m') && out.contains('s'), "{out}");
    mvault(dir.path()).args(["ls", "--where", "version >= 1"]).assert().success();
    // A removed version's record put back: not a row, and exit 6.
    reopen(&path).remove_version("s", &VersionRef::Number(1)).unwrap();
    edit_versions(&path, |t| {
        t.insert(&key, old.as_slice()).unwrap();
    });
    let unlisted = "model 's': version 1 has a record but is not recorded as live";
    let v = reopen(&path);
    let r = v.query("SELECT name, version FROM versions WHERE name = 's'").unwrap();
    assert_eq!(r.rows.len(), 1, "only s@2 is live: {:?}", r.rows);
    assert!(r.problems.iter().any(|p| p.starts_with(unlisted)), "{:?}", r.problems);
    drop(v);
    mvault(dir.path()).args(q).assert().code(6).stderr(predicates::str::contains(unlisted));
    let out = mvault(dir.path())
        .args(["ls", "--where", "name = 's' AND version = 1"])
        .assert()
        .code(6)
        .stderr(predicates::str::contains(unlisted))
        .get_output()
        .stdout
        .clone();
    assert!(!String::from_utf8(out).unwrap().contains("s@1"));
    // A dropped live version record: exit 6 from both.
    edit_versions(&path, |t| {
        t.remove(&key).unwrap();
        t.remove(&modelvault::store::version_key(&mk, 2)).unwrap();
    });
    mvault(dir.path()).args(q).assert().code(6).stderr(predicates::str::contains(S2_MISSING));
    mvault(dir.path())
        .args(["ls", "--where", "version >= 1"])
        .assert()
        .code(6)
        .stderr(predicates::str::contains(S2_MISSING));
}

#[test]
fn a_recipient_slot_in_a_vault_whose_state_is_pre_format_3_is_a_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let path = format2_vault(dir.path());
    let (old_state, old_header) = (meta_value(&path, "state"), meta_value(&path, "header"));
    let r = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
    reopen(&path).add_recipient_slot("ci", &[modelvault::Recipient::parse(r).unwrap()]).unwrap();
    set_meta_value(&path, "state", &old_state);
    set_meta_value(&path, "header", &old_header);
    let Err(e) = modelvault::Vault::open(&path, &Default::default()).unwrap().unlock(&pass()) else {
        panic!("the rolled-back vault unlocked");
    };
    assert!(matches!(e, Error::Damaged(_)), "{e:?}");
    assert!(e.to_string().contains("key slot 'ci' is a recipient slot, which format 3 added"), "{e}");
}

fn meta_value(path: &Path, key: &str) -> Vec<u8> {
    tamper::read(path, META, |t| t.get(key).unwrap().unwrap().value().to_vec())
}

fn set_meta_value(path: &Path, key: &str, v: &[u8]) {
    tamper::edit(path, META, |t| {
        t.insert(key, v).unwrap();
    });
}

#[test]
fn a_state_rolled_back_past_the_format_3_upgrade_is_damage() {
    let want = "the vault state was rolled back past the format 3 upgrade";
    for header_too in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = format2_vault(dir.path());
        let old_state = meta_value(&path, "state");
        reopen(&path).set_tag("c", &VersionRef::Latest, "env", "test").unwrap();
        assert_eq!(format_version(&path), FORMAT_VERSION);
        // The sealed state alone (and with it, the header) put back to its pre-upgrade copy.
        set_meta_value(&path, "state", &old_state);
        if header_too {
            set_format_version(&path, 2);
        }
        let before = records_of(&path);
        let Err(e) = modelvault::Vault::open(&path, &Default::default()).unwrap().unlock(&pass()) else {
            panic!("the rolled-back vault unlocked");
        };
        assert!(matches!(e, Error::Damaged(_)) && e.to_string().starts_with(want), "{e}");
        assert_eq!(e.exit_code(), 6);
        mvault(dir.path()).args(["ls"]).assert().code(6).stderr(predicates::str::contains(want));
        mvault(dir.path()).args(["tag", "c@1", "env=prod"]).assert().code(6).stderr(predicates::str::contains(want));
        assert!(records_of(&path) == before, "nothing was written");
    }
}

fn slot_bytes(path: &Path, name: &str) -> Vec<u8> {
    tamper::read(path, crate::common::tables::SLOTS, |t| t.get(name).unwrap().expect("slot").value().to_vec())
}

fn put_slot_bytes(path: &Path, name: &str, v: &[u8]) {
    tamper::edit(path, crate::common::tables::SLOTS, |t| {
        t.insert(name, v).unwrap();
    });
}

#[test]
fn an_old_wrap_put_back_as_a_rotation_wrap_does_not_roll_the_key_back() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    v.put(&corpus().join("safetensors/silero_vad_16k.safetensors"), "s", &PutOptions::default(), &NoProgress).unwrap();
    drop(v);
    // A former holder of MK_1 keeps the slot as it was at epoch 1.
    let old = records::SlotRecord::decode(&slot_bytes(&path, "default")).unwrap();
    let mut v = reopen(&path);
    assert_eq!(v.rotate(&[], false, &NoProgress).unwrap().to_epoch, 2);
    drop(v);
    // Rotation kept the slot's salt and parameters, so the old wrap of MK_1 carries the AAD a next
    // wrap to epoch 1 would: planted as `next`, it opens with the owner's passphrase.
    let mut now = records::SlotRecord::decode(&slot_bytes(&path, "default")).unwrap();
    assert_eq!((now.salt, now.params), (old.salt, old.params));
    now.next = Some((1, old.wrapped.clone()));
    put_slot_bytes(&path, "default", &now.encode());
    let v = reopen(&path);
    assert_eq!((v.epoch(), v.rotation_pending()), (2, false), "the planted wrap was not followed");
    v.set_tag("s", &VersionRef::Latest, "stage", "prod").unwrap();
    let mut v = v;
    assert_eq!(v.rotate(&[], false, &NoProgress).unwrap().from_epoch, 2);
    drop(v);
    assert!(reopen(&path).verify(true, &NoProgress).unwrap().ok());
}

#[test]
fn a_planted_slot_with_argon2_parameters_out_of_range_does_not_stop_an_unlock() {
    let dir = tempfile::tempdir().unwrap();
    let (path, v) = new_vault(dir.path());
    drop(v);
    // Cost 0 sorts first; deriving with it would fail and used to stop the whole unlock.
    let mut planted = records::SlotRecord::decode(&slot_bytes(&path, "default")).unwrap();
    planted.params.lanes = 0;
    put_slot_bytes(&path, "aaa", &planted.encode());
    assert_eq!(reopen(&path).unlocked_slot(), "default");
    // Named, it is reported as damaged.
    let e = modelvault::Vault::open(&path, &Default::default()).unwrap().unlock_slot("aaa", &pass()).err().unwrap();
    assert!(matches!(e, Error::KeySlotDamaged(ref s) if s == "aaa"), "{e:?}");
}
