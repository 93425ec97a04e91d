//! Test vectors for the vault format: a committed format 3 vault (`tests/data/vectors/v3.mvault`),
//! its passphrase, and the plaintexts it must yield (`expected.json`).
//!
//! - `library_reads_the_committed_vault` opens it with the library (public API only) and checks
//!   every expected plaintext, listing, tag, alias and signer, and that `verify` passes.
//! - `spec_reads_the_committed_vault` reads the same file without the library, with only redb,
//!   argon2, aes-gcm, hkdf, sha2, blake3, ed25519-dalek and postcard, following SECURITY.md
//!   "Byte layout" step by step (`format_vectors/spec.rs`, one function per subsection). If it
//!   needs a fact SECURITY.md does not state, the spec is incomplete.
//! - `spec_reads_the_format_2_vault` reads `tests/data/format2.mvault` the same way, through the
//!   older record layouts of "Format versions".
//! - `make_vectors` (ignored) writes the three files (`format_vectors/make.rs`). Rerunning it
//!   changes every byte of the vault (random keys, salts and nonces): run it only for a
//!   deliberate format change, with
//!   `cargo test --release --test format_vectors -- --ignored make_vectors`.
//!
//! A change of the library that stops it reading files already written makes the first test
//! fail; a change of the format that SECURITY.md does not describe, once the vectors are made
//! again, makes the spec readers fail.

#[path = "format_vectors/make.rs"]
mod make;
#[path = "format_vectors/spec.rs"]
mod spec;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use modelvault::{Argon2Params, NoProgress, OpenOptions, Passphrase, Unlocked, Vault, VersionRef};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vectors")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn passphrase_bytes() -> Vec<u8> {
    std::fs::read(vectors().join("PASSPHRASE")).unwrap()
}

fn expected() -> Value {
    serde_json::from_slice(&std::fs::read(vectors().join("expected.json")).unwrap()).unwrap()
}

/// A copy of the committed vault in a temporary directory (opening a redb file may write to it).
fn vault_copy(dir: &Path) -> PathBuf {
    let p = dir.join("v3.mvault");
    std::fs::copy(vectors().join("v3.mvault"), &p).unwrap();
    p
}

#[test]
#[ignore = "writes the committed test vectors; run only for a deliberate format change"]
fn make_vectors() {
    make::write(&vectors());
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object().unwrap().iter().map(|(k, x)| (k.clone(), s(x).to_string())).collect()
}

fn u64_map(v: &Value) -> BTreeMap<String, u64> {
    v.as_object().unwrap().iter().map(|(k, x)| (k.clone(), x.as_u64().unwrap())).collect()
}

fn f64_map(v: &Value) -> BTreeMap<String, f64> {
    v.as_object().unwrap().iter().map(|(k, x)| (k.clone(), x.as_f64().unwrap())).collect()
}

/// A tensor as `expected.json` lists it.
fn tensor_json(name: &str, dtype: &str, shape: &[u64], offset: u64, len: u64) -> Value {
    json!({"name": name, "dtype": dtype, "shape": shape, "offset": offset, "len": len})
}

fn u64s(v: &Value) -> Vec<u64> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect()
}

#[test]
fn library_reads_the_committed_vault() {
    let exp = expected();
    let dir = tempfile::tempdir().unwrap();
    let path = vault_copy(dir.path());
    let pass = Passphrase::new(passphrase_bytes()).unwrap();
    let locked = Vault::open(&path, &OpenOptions::default()).unwrap();
    assert_eq!(hex(&locked.vault_id()), s(&exp["vault_id"]));
    assert_eq!(locked.slot_names().unwrap(), [s(&exp["slot"])]);
    let v = locked.unlock(&pass).unwrap();
    assert_eq!(u64::from(v.epoch()), exp["epoch"].as_u64().unwrap());
    assert_eq!(hex(&v.signer_public_key()), s(&exp["signer_public_key"]));

    let slots = v.list_slots().unwrap();
    let a = &exp["argon2"];
    assert_eq!(slots.len(), 1);
    assert_eq!(
        slots[0].argon2,
        Some(Argon2Params {
            memory_kib: a["memory_kib"].as_u64().unwrap() as u32,
            time_cost: a["time_cost"].as_u64().unwrap() as u32,
            lanes: a["lanes"].as_u64().unwrap() as u32,
        })
    );
    let signers: Vec<(u32, String, bool, bool)> =
        v.list_signers().unwrap().into_iter().map(|x| (x.id, x.public_key, x.active, x.retired.is_some())).collect();
    let want: Vec<(u32, String, bool, bool)> = exp["signers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let b = |k: &str| x[k].as_bool().unwrap();
            (x["id"].as_u64().unwrap() as u32, s(&x["public"]).to_string(), b("active"), b("retired"))
        })
        .collect();
    assert_eq!(signers, want);
    let trust: Vec<(String, String)> = v.trust_list().unwrap().into_iter().map(|t| (t.name, t.public_key)).collect();
    let want: Vec<(String, String)> = exp["trust"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (s(&t["name"]).to_string(), s(&t["public"]).to_string()))
        .collect();
    assert_eq!(trust, want);
    let allow: Vec<String> = exp["allow"].as_array().unwrap().iter().map(|x| s(x).to_string()).collect();
    assert_eq!(v.allow_list().unwrap(), allow);
    library_lists_the_models(&v, &exp);
    let report = v.verify(true, &NoProgress).unwrap();
    assert!(report.ok(), "{report:?}");
}

/// Part (a), the models: the listing, each version's metadata and files, each file's bytes
/// (`cat`), and each alias.
fn library_lists_the_models(v: &Vault<Unlocked>, exp: &Value) {
    let listing = v.list(None).unwrap();
    assert!(listing.problems.is_empty(), "{:?}", listing.problems);
    let models = exp["models"].as_array().unwrap();
    let names: Vec<&str> = listing.models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, models.iter().map(|m| s(&m["name"])).collect::<Vec<_>>());
    for (m, em) in listing.models.iter().zip(models) {
        assert_eq!(m.description, s(&em["description"]));
        assert_eq!(m.aliases, u64_map(&em["aliases"]));
        let live: Vec<u64> = m.versions.iter().map(|x| x.version).collect();
        assert_eq!(live, u64s(&em["live"]), "{}", m.name);
        for (ver, ev) in m.versions.iter().zip(em["versions"].as_array().unwrap()) {
            let at = format!("{}@{}", m.name, ver.version);
            assert_eq!(ver.version, ev["version"].as_u64().unwrap(), "{at}");
            assert_eq!(ver.revision, ev["revision"].as_u64().unwrap(), "{at}");
            assert_eq!(ver.description, s(&ev["description"]), "{at}");
            assert_eq!(ver.tags, string_map(&ev["tags"]), "{at}");
            assert_eq!(ver.metrics, f64_map(&ev["metrics"]), "{at}");
            let aliases: Vec<&str> = ev["aliases"].as_array().unwrap().iter().map(s).collect();
            assert_eq!(ver.aliases, aliases, "{at}");
            assert_eq!(ver.signer, s(&ev["signer"]), "{at}");
            let files = ev["files"].as_array().unwrap();
            assert_eq!(ver.files.len(), files.len(), "{at}");
            let man = v.manifest(&m.name, &VersionRef::Number(ver.version)).unwrap();
            for ((fi, fe), ef) in ver.files.iter().zip(&man.files).zip(files) {
                assert_eq!(fi.path, s(&ef["path"]), "{at}");
                assert_eq!(fi.size, ef["size"].as_u64().unwrap(), "{at} {}", fi.path);
                assert_eq!(fi.sha256, s(&ef["sha256"]), "{at} {}", fi.path);
                assert_eq!(fi.chunks as u64, ef["chunks"].as_u64().unwrap(), "{at} {}", fi.path);
                assert_eq!(fe.format, s(&ef["format"]), "{at} {}", fi.path);
                assert_eq!(fe.scan.as_ref().map(|x| x.verdict.as_str()), ef["scan"].as_str(), "{at} {}", fi.path);
                let tensors: Vec<Value> =
                    fe.tensors.iter().map(|t| tensor_json(&t.name, &t.dtype, &t.shape, t.offset, t.len)).collect();
                assert_eq!(Value::from(tensors), ef["tensors"], "{at} {}", fi.path);
                let mut out = Vec::new();
                v.cat(&m.name, &VersionRef::Number(ver.version), Some(&fi.path), &mut out, &NoProgress).unwrap();
                assert_eq!(hex(&out), s(&ef["hex"]), "{at} {}", fi.path);
                assert_eq!(hex(&Sha256::digest(&out)), s(&ef["sha256"]), "{at} {}", fi.path);
            }
        }
        for (alias, version) in u64_map(&em["aliases"]) {
            assert_eq!(v.show(&m.name, &VersionRef::Alias(alias)).unwrap().version, version);
        }
    }
}

/// Part (b): the committed vault read from SECURITY.md alone (see `format_vectors/spec.rs`), and
/// compared with `expected.json`.
#[test]
fn spec_reads_the_committed_vault() {
    let exp = expected();
    let dir = tempfile::tempdir().unwrap();
    let f = spec::open(&vault_copy(dir.path()));
    // "Header".
    assert_eq!(u64::from(f.header.format_version), exp["format_version"].as_u64().unwrap());
    assert_eq!(hex(&f.header.vault_id), s(&exp["vault_id"]));
    assert!(f.header.created > 1_700_000_000);
    // "Key slots", "Key hierarchy".
    let (k, slot) = spec::unlock(&f, s(&exp["slot"]), &passphrase_bytes());
    assert!(matches!(slot.kek_check, Some(Some(_))), "a format 3 slot has its check value");
    let a = &exp["argon2"];
    let want = (a["memory_kib"].as_u64(), a["time_cost"].as_u64(), a["lanes"].as_u64());
    let p = slot.params;
    assert_eq!((Some(p.memory_kib.into()), Some(p.time_cost.into()), Some(p.lanes.into())), want);
    assert!(slot.next.is_none() && slot.created > 1_700_000_000);
    assert_eq!(u64::from(slot.epoch), exp["epoch"].as_u64().unwrap());
    // "State".
    let (state, format3) = spec::state(&f, &k);
    assert!(format3);
    assert_eq!((state.epoch, state.rotating_to), (slot.epoch, None));
    assert!(state.chunk_seals > 0 && state.meta_seals > 0, "the rotation sealed everything again");
    assert_eq!(spec::live_models(&f), (state.live_models, state.models_digest));
    // "Signer records".
    let signers = spec::signers(&f, &k);
    let listed: Vec<Value> = signers
        .iter()
        .map(|(id, r)| {
            assert!(r.created > 1_700_000_000);
            json!({"id": id, "public": hex(&r.public), "active": *id == state.active_signer, "retired": r.retired.is_some()})
        })
        .collect();
    assert_eq!(Value::from(listed), exp["signers"]);
    assert_eq!(state.next_signer as usize, signers.len());
    let active = signers.iter().find(|(id, _)| *id == state.active_signer).unwrap();
    assert_eq!(hex(&active.1.public), s(&exp["signer_public_key"]));
    let publics: Vec<[u8; 32]> = signers.iter().map(|(_, r)| r.public).collect();
    // "Other records".
    assert_eq!(Value::from(spec::allow_list(&f, &k)), exp["allow"]);
    assert!(!spec::erasure_pending(&f));
    let trusted: Vec<Value> = spec::trusted(&f, &k)
        .iter()
        .map(|t| {
            assert!(t.added > 1_700_000_000);
            json!({"name": t.name, "public": hex(&t.public)})
        })
        .collect();
    assert_eq!(Value::from(trusted), exp["trust"]);
    assert_eq!(state.live_models, exp["models"].as_array().unwrap().len() as u64);
    spec_reads_the_models(&f, &k, &publics, &exp);
}

/// Part (b), the models: "Model records", "Version records and the signed manifest", "Chunks".
fn spec_reads_the_models(f: &spec::File, k: &spec::Keys, publics: &[[u8; 32]], exp: &Value) {
    let ix = spec::index_keys(f, k);
    let (mut refs, mut ids) = (0usize, std::collections::BTreeSet::new());
    for em in exp["models"].as_array().unwrap() {
        let m = spec::model(f, k, &ix, s(&em["name"]));
        assert!(m.format3 && m.created > 1_700_000_000);
        assert_eq!(m.description, s(&em["description"]));
        assert_eq!(m.aliases, u64_map(&em["aliases"]));
        assert_eq!(m.live, u64s(&em["live"]));
        for (alias, v) in &m.aliases {
            let last = m.alias_history.iter().rev().find(|e| &e.alias == alias).unwrap();
            assert_eq!(last.to, Some(*v), "alias history ends where the alias points");
            assert!(last.from.is_none_or(|x| x < m.next_version) && last.at > 1_700_000_000);
        }
        for (&version, ev) in m.live.iter().zip(em["versions"].as_array().unwrap()) {
            let at = format!("{}@{version}", m.name);
            let (rec, man) = spec::version(f, k, publics, &m, version);
            assert_eq!(hex(&rec.signer), s(&ev["signer"]), "{at}");
            assert_eq!(man.revision, ev["revision"].as_u64().unwrap(), "{at}");
            assert!(man.updated >= man.created && man.created > 1_700_000_000, "{at}");
            assert_eq!(man.description, s(&ev["description"]), "{at}");
            assert_eq!(man.tags, string_map(&ev["tags"]), "{at}");
            assert_eq!(man.metrics, f64_map(&ev["metrics"]), "{at}");
            let files = ev["files"].as_array().unwrap();
            assert_eq!(man.files.len(), files.len(), "{at}");
            for (file, ef) in man.files.iter().zip(files) {
                let at = format!("{at} {}", file.path);
                assert_eq!(file.path, s(&ef["path"]), "{at}");
                assert_eq!(file.format, s(&ef["format"]), "{at}");
                assert_eq!(file.chunks.len() as u64, ef["chunks"].as_u64().unwrap(), "{at}");
                assert_eq!(file.scan.as_ref().map(|x| x.verdict.as_str()), ef["scan"].as_str(), "{at}");
                let tensors: Vec<Value> =
                    file.tensors.iter().map(|t| tensor_json(&t.name, &t.dtype, &t.shape, t.offset, t.len)).collect();
                assert_eq!(Value::from(tensors), ef["tensors"], "{at}");
                let data = spec::file_bytes(f, k, &ix, file);
                assert_eq!(hex(&file.sha256), s(&ef["sha256"]), "{at}");
                assert_eq!(hex(&data), s(&ef["hex"]), "{at}");
                refs += file.chunks.len();
                ids.extend(file.chunks.iter().map(|c| c.id));
            }
        }
    }
    // "Chunks": every stored chunk is referenced (gc ran) and indexed, and one is shared.
    assert_eq!(spec::chunk_counts(f), (ids.len() as u64, Some(ids.len() as u64)));
    assert!(refs > ids.len(), "a deduplicated chunk is shared");
}

/// Part (b) for `tests/data/format2.mvault` (see `format2_vault` in `tests/tamper.rs`: the Conv2d
/// ONNX model as `r@2`, alias `prod`, and as `c@1`, with the test passphrase): the older layouts
/// of "Format versions" (no `kek_check`, no live fields; the live versions are the records
/// present).
#[test]
fn spec_reads_the_format_2_vault() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let conv = std::fs::read(root.join("../shared/corpus/onnx/onnx-backend_test_Conv2d.model.onnx")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("format2.mvault");
    std::fs::copy(root.join("tests/data/format2.mvault"), &path).unwrap();
    let f = spec::open(&path);
    assert_eq!(f.header.format_version, 2);
    let (k, slot) = spec::unlock(&f, "default", b"correct horse battery staple");
    assert!(slot.kek_check.is_none(), "a format 2 slot has no check value");
    let (state, format3) = spec::state(&f, &k);
    assert!(!format3, "a format 2 state has no live-model fields");
    assert_eq!((state.epoch, state.rotating_to), (slot.epoch, None));
    let ix = spec::index_keys(&f, &k);
    let signers = spec::signers(&f, &k);
    let active = signers.iter().find(|(id, _)| *id == state.active_signer).unwrap().1.public;
    for (name, version, aliases) in [("c", 1u64, vec![]), ("r", 2, vec![("prod".to_string(), 2u64)])] {
        let m = spec::model(&f, &k, &ix, name);
        assert!(!m.format3, "a format 2 model record has no live list");
        assert_eq!((m.live.as_slice(), m.next_version), ([version].as_slice(), version + 1));
        assert_eq!(m.aliases, aliases.into_iter().collect::<BTreeMap<_, _>>());
        let (rec, man) = spec::version(&f, &k, &[active], &m, version);
        assert_eq!(rec.signer, active);
        assert_eq!(man.files.len(), 1);
        assert_eq!(man.files[0].format, "onnx");
        assert_eq!(spec::file_bytes(&f, &k, &ix, &man.files[0]), conv, "{name}@{version}");
    }
    let (chunks, indexed) = spec::chunk_counts(&f);
    assert_eq!(indexed, Some(chunks), "format 2 has the chunk index");
}

/// The erasure record the committed vault does not hold, written from SECURITY.md ("Other
/// records", "Sealed values") into a copy and read back by the library: it reports the
/// unfinished erasure with the model, versions and start time written, and finishing it leaves
/// a vault that verifies.
#[test]
fn library_reads_an_erasure_record_written_from_the_spec() {
    let exp = expected();
    let dir = tempfile::tempdir().unwrap();
    let path = vault_copy(dir.path());
    let sealed = {
        let f = spec::open(&path);
        let (k, _) = spec::unlock(&f, s(&exp["slot"]), &passphrase_bytes());
        let (state, _) = spec::state(&f, &k);
        spec::seal(&k, state.epoch, "meta", b"erase", &spec::erase_intent("resnet-mini", &[1], 1_800_000_000))
    };
    spec::put_meta(&path, "erase", &sealed);
    let pass = Passphrase::new(passphrase_bytes()).unwrap();
    let mut v = Vault::open(&path, &OpenOptions::default()).unwrap().unlock(&pass).unwrap();
    assert!(v.erasure_pending().unwrap());
    let e = v.unfinished_erasure().unwrap().expect("an unfinished erasure");
    assert_eq!((e.name.as_str(), e.versions.as_slice(), e.started), ("resnet-mini", [1u64].as_slice(), 1_800_000_000));
    let report = v.verify(false, &NoProgress).unwrap();
    assert!(!report.ok(), "verify reports the unfinished erasure");
    v.resume_erasure().unwrap().expect("finished");
    assert!(!v.erasure_pending().unwrap());
    assert!(v.verify(true, &NoProgress).unwrap().ok());
}
