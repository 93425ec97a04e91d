//! Test vectors for the vault format: a committed format 3 vault (`tests/data/vectors/v3.mvault`),
//! its passphrase, and the plaintexts it must yield (`expected.json`).
//!
//! - `library_reads_the_committed_vault` opens it with the library (public API only) and checks
//!   every expected plaintext, listing, tag, alias and signer, and that `verify` passes.
//! - `spec_reads_the_committed_vault` reads the same file without the library's vault code, with
//!   only redb, argon2, aes-gcm, hkdf, sha2, blake3, ed25519-dalek and postcard, following
//!   SECURITY.md "Byte layout" step by step; each step names the subsection it follows. If this
//!   test needs a fact SECURITY.md does not state, the spec is incomplete.
//! - `make_vectors` (ignored) writes the three files. Rerunning it changes every byte of the
//!   vault (random keys, salts and nonces): run it only for a deliberate format change, with
//!   `cargo test --release --test format_vectors -- --ignored make_vectors`.
//!
//! A format change that breaks files already written makes the first two tests fail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use modelvault::{
    Argon2Params, CreateOptions, NoProgress, OpenOptions, Passphrase, PutOptions, Unlocked, Vault, VersionRef,
};
use serde::{Deserialize, Serialize};
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

// ---------------------------------------------------------------------------------------------
// The generator.

/// The files of one version: (path inside the model, bytes).
type Files = Vec<(&'static str, Vec<u8>)>;

/// The source files of each version: (model, files), put in this order.
fn sources() -> Vec<(&'static str, Files)> {
    let config = br#"{"hidden_size": 4, "layers": 1}"#.to_vec();
    let vocab = b"[PAD]\n[UNK]\nhello\nworld\n".to_vec();
    let st = |vals: [f32; 4]| {
        let header = br#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#;
        let mut header = header.to_vec();
        while !(header.len() + 8).is_multiple_of(8) {
            header.push(b' ');
        }
        let mut f = (header.len() as u64).to_le_bytes().to_vec();
        f.extend_from_slice(&header);
        for v in vals {
            f.extend_from_slice(&v.to_le_bytes());
        }
        f
    };
    // A clean pickle (protocol 2): an empty dict.
    let pickle = b"\x80\x02}q\x00.".to_vec();
    vec![
        (
            "bert-tiny",
            vec![
                ("config.json", config.clone()),
                ("model.safetensors", st([1.0, 2.0, 3.0, 4.0])),
                // Same bytes as config.json: one stored chunk shared by two files.
                ("tokenizer/config.json", config.clone()),
                ("tokenizer/vocab.txt", vocab.clone()),
            ],
        ),
        (
            "bert-tiny",
            vec![
                ("config.json", config.clone()),
                ("model.safetensors", st([1.5, 2.5, 3.5, 4.5])),
                ("tokenizer/config.json", config),
                ("tokenizer/vocab.txt", vocab),
            ],
        ),
        ("resnet-mini", vec![("weights.bin", b"\x00\x01\x02\x03opaque weights\xff".to_vec())]),
        ("resnet-mini", vec![("state.pkl", pickle)]),
        ("notes", vec![("README.txt", b"A vault made for the format test vectors.\n".to_vec())]),
    ]
}

const VECTOR_PASSPHRASE: &[u8] = b"test vectors: not a secret";

fn write_tree(dir: &Path, files: &[(&str, Vec<u8>)]) {
    for (p, b) in files {
        let p = dir.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b).unwrap();
    }
}

/// Writes `tests/data/vectors/{v3.mvault,PASSPHRASE,expected.json}` with the current code.
/// Every run gives different bytes (random vault id, keys, salts and nonces).
#[test]
#[ignore = "writes the committed test vectors; run only for a deliberate format change"]
fn make_vectors() {
    let out = vectors();
    std::fs::create_dir_all(&out).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("v3.mvault");
    let pass = Passphrase::new(VECTOR_PASSPHRASE.to_vec()).unwrap();
    let params = Argon2Params { memory_kib: 1024, time_cost: 1, lanes: 1 };
    let mut v = Vault::create(&path, &pass, &CreateOptions { argon2: params, slot_name: "default".into() }).unwrap();

    let srcs = sources();
    let put = |v: &mut Vault<Unlocked>, i: usize, opts: PutOptions| {
        let (name, files) = &srcs[i];
        let d = tmp.path().join(format!("src{i}"));
        write_tree(&d, files);
        let src = if files.len() == 1 { d.join(files[0].0) } else { d };
        v.put(&src, name, &opts, &NoProgress).unwrap()
    };
    let first = PutOptions {
        tags: BTreeMap::from([("stage".into(), "dev".into())]),
        metrics: BTreeMap::from([("accuracy".into(), 0.5)]),
        description: "first cut".into(),
        ..Default::default()
    };
    assert_eq!(put(&mut v, 0, first).version, 1);
    let second = PutOptions { aliases: vec!["prod".into()], ..Default::default() };
    let r = put(&mut v, 1, second);
    assert!(r.reused_chunks >= 3, "config.json twice and vocab.txt are stored once: {r:?}");
    assert_eq!(put(&mut v, 2, PutOptions::default()).version, 1);
    assert_eq!(put(&mut v, 3, PutOptions::default()).version, 2);
    v.set_tag("bert-tiny", &VersionRef::Number(1), "reviewed", "yes").unwrap();
    v.set_alias("bert-tiny", &VersionRef::Number(1), "stable").unwrap();
    v.describe("bert-tiny", None, "a tiny BERT").unwrap();
    v.remove_version("resnet-mini", &VersionRef::Number(1)).unwrap();
    v.gc().unwrap();
    v.allow_add("collections.OrderedDict").unwrap();
    let partner = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]).verifying_key().to_bytes();
    v.trust_add("partner", partner).unwrap();
    v.rotate_signer().unwrap();
    assert_eq!(put(&mut v, 4, PutOptions::default()).version, 1);
    let rot = v.rotate(&[], false, &NoProgress).unwrap();
    assert_eq!((rot.from_epoch, rot.to_epoch), (1, 2));
    assert!(v.verify(true, &NoProgress).unwrap().ok());

    // The expected plaintexts: file bytes from the sources, metadata from what was put.
    let listing = v.list(None).unwrap();
    assert!(listing.problems.is_empty(), "{:?}", listing.problems);
    let files_of = |name: &str, version: u64| -> &Files {
        let i = match (name, version) {
            ("bert-tiny", 1) => 0,
            ("bert-tiny", 2) => 1,
            ("resnet-mini", 2) => 3,
            ("notes", 1) => 4,
            other => panic!("unexpected version {other:?}"),
        };
        &srcs[i].1
    };
    let mut models = Vec::new();
    for m in &listing.models {
        let mut versions = Vec::new();
        for ver in &m.versions {
            let man = v.manifest(&m.name, &VersionRef::Number(ver.version)).unwrap();
            let mut files = Vec::new();
            for (p, bytes) in files_of(&m.name, ver.version) {
                let f = man.files.iter().find(|f| f.path == *p).unwrap();
                files.push(json!({
                    "path": p,
                    "size": bytes.len(),
                    "sha256": hex(&Sha256::digest(bytes)),
                    "hex": hex(bytes),
                    "format": f.format,
                    "chunks": f.chunks.len(),
                    "tensors": f.tensors.iter().map(|t| json!({
                        "name": t.name, "dtype": t.dtype, "shape": t.shape, "offset": t.offset, "len": t.len
                    })).collect::<Vec<_>>(),
                    "scan": f.scan.as_ref().map(|s| s.verdict.clone()),
                }));
            }
            versions.push(json!({
                "version": ver.version,
                "revision": ver.revision,
                "description": ver.description,
                "tags": ver.tags,
                "metrics": ver.metrics,
                "aliases": ver.aliases,
                "signer": ver.signer,
                "files": files,
            }));
        }
        models.push(json!({
            "name": m.name,
            "description": m.description,
            "aliases": m.aliases,
            "live": m.versions.iter().map(|x| x.version).collect::<Vec<_>>(),
            "versions": versions,
        }));
    }
    let signers: Vec<Value> = v
        .list_signers()
        .unwrap()
        .iter()
        .map(|s| json!({"id": s.id, "public": s.public_key, "active": s.active, "retired": s.retired.is_some()}))
        .collect();
    let exp = json!({
        "about": "Expected plaintexts of v3.mvault (see tests/format_vectors.rs and SECURITY.md, Byte layout). \
                  Made by make_vectors in tests/format_vectors.rs; regenerating changes every byte of the vault.",
        "format_version": 3,
        "vault_id": hex(&v.vault_id()),
        "epoch": v.epoch(),
        "slot": "default",
        "argon2": {"memory_kib": params.memory_kib, "time_cost": params.time_cost, "lanes": params.lanes},
        "signer_public_key": hex(&v.signer_public_key()),
        "signers": signers,
        "trust": [{"name": "partner", "public": hex(&partner)}],
        "allow": v.allow_list().unwrap(),
        "models": models,
    });
    drop(v);
    std::fs::write(out.join("PASSPHRASE"), VECTOR_PASSPHRASE).unwrap();
    std::fs::write(out.join("expected.json"), serde_json::to_string_pretty(&exp).unwrap() + "\n").unwrap();
    std::fs::copy(&path, out.join("v3.mvault")).unwrap();
}

// ---------------------------------------------------------------------------------------------
// (a) The library reads the committed vault.

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
        Argon2Params {
            memory_kib: a["memory_kib"].as_u64().unwrap() as u32,
            time_cost: a["time_cost"].as_u64().unwrap() as u32,
            lanes: a["lanes"].as_u64().unwrap() as u32,
        }
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
                let tensors: Vec<Value> = fe
                    .tensors
                    .iter()
                    .map(|t| json!({"name": t.name, "dtype": t.dtype, "shape": t.shape, "offset": t.offset, "len": t.len}))
                    .collect();
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
    let report = v.verify(true, &NoProgress).unwrap();
    assert!(report.ok(), "{report:?}");
}

// ---------------------------------------------------------------------------------------------
// (b) The same vault read from SECURITY.md alone: no `modelvault` item below this line. The
// structs are written from the spec's field lists; each step names the subsection it follows.

mod spec {
    use super::*;
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use aes_gcm::{Aes256Gcm, Nonce};
    use ed25519_dalek::{Signature, VerifyingKey};
    use hkdf::Hkdf;
    use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

    // "Container: redb tables": names and redb key/value types.
    pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
    pub const SLOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("slots");
    pub const SIGNERS: TableDefinition<u32, &[u8]> = TableDefinition::new("signers");
    pub const TRUST: TableDefinition<&str, &[u8]> = TableDefinition::new("trust");
    pub const MODELS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("models");
    pub const VERSIONS: TableDefinition<&[u8; 40], &[u8]> = TableDefinition::new("versions");
    pub const CHUNKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("chunks");
    pub const CHUNK_IDS: TableDefinition<&[u8; 32], u32> = TableDefinition::new("chunk_ids");

    // "Header".
    #[derive(Deserialize)]
    pub struct Header {
        pub magic: [u8; 10],
        pub format_version: u32,
        pub vault_id: [u8; 16],
        pub created: u64,
    }

    // "Key slots".
    #[derive(Deserialize)]
    pub struct Argon2Params {
        pub memory_kib: u32,
        pub time_cost: u32,
        pub lanes: u32,
    }
    #[derive(Deserialize)]
    pub struct SlotRecord {
        pub epoch: u32,
        pub params: Argon2Params,
        pub salt: [u8; 16],
        pub wrapped: Vec<u8>,
        pub created: u64,
        pub next: Option<(u32, Vec<u8>)>,
        pub kek_check: Option<[u8; 32]>,
    }

    // "State".
    #[derive(Deserialize)]
    pub struct State {
        pub epoch: u32,
        pub active_signer: u32,
        pub next_signer: u32,
        pub chunk_seals: u64,
        pub meta_seals: u64,
        pub rotating_to: Option<u32>,
        pub live_models: u64,
        pub models_digest: [u8; 32],
    }

    // "Key hierarchy" (the index key record).
    #[derive(Deserialize)]
    pub struct IndexRecord {
        pub key: [u8; 32],
    }

    // "Signer records".
    #[derive(Deserialize)]
    pub struct SignerRecord {
        pub seed: [u8; 32],
        pub public: [u8; 32],
        pub created: u64,
        pub retired: Option<u64>,
    }

    // "Model records".
    #[derive(Deserialize)]
    pub struct AliasEvent {
        pub alias: String,
        pub from: Option<u64>,
        pub to: Option<u64>,
        pub at: u64,
    }
    #[derive(Deserialize)]
    pub struct ModelRecord {
        pub name: String,
        pub created: u64,
        pub next_version: u64,
        pub aliases: BTreeMap<String, u64>,
        pub description: String,
        pub alias_history: Vec<AliasEvent>,
        pub live: Vec<u64>,
    }

    // "Version records and the signed manifest".
    #[derive(Deserialize)]
    pub struct VersionRecord {
        pub manifest: Vec<u8>,
        pub signature: Vec<u8>,
        pub signer: [u8; 32],
    }
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    pub struct Manifest {
        pub manifest_version: u32,
        pub vault_id: [u8; 16],
        pub name: String,
        pub version: u64,
        pub created: u64,
        pub revision: u64,
        pub updated: u64,
        pub description: String,
        pub tags: BTreeMap<String, String>,
        pub metrics: BTreeMap<String, f64>,
        pub files: Vec<FileEntry>,
    }
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    pub struct FileEntry {
        pub path: String,
        pub size: u64,
        pub sha256: [u8; 32],
        pub chunks: Vec<ChunkRef>,
        pub format: String,
        pub tensors: Vec<TensorInfo>,
        pub scan: Option<ScanRecord>,
    }
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    pub struct ChunkRef {
        pub id: [u8; 32],
        pub len: u32,
    }
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    pub struct TensorInfo {
        pub name: String,
        pub dtype: String,
        pub shape: Vec<u64>,
        pub offset: u64,
        pub len: u64,
    }
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    pub struct ScanRecord {
        pub verdict: String,
        pub findings: Vec<String>,
        pub allowed_unsafe: bool,
    }

    // "Other records".
    #[derive(Deserialize)]
    pub struct AllowRecord {
        pub globals: Vec<String>,
    }
    #[derive(Deserialize)]
    pub struct TrustRecord {
        pub name: String,
        pub public: [u8; 32],
        pub added: u64,
    }

    /// "Sealed values": the AAD.
    pub fn aad(table: &str, vault_id: &[u8; 16], epoch: u32, key: &[u8]) -> Vec<u8> {
        let mut a = b"modelvault/v1/".to_vec();
        a.extend_from_slice(table.as_bytes());
        a.push(0);
        a.extend_from_slice(vault_id);
        a.extend_from_slice(&epoch.to_be_bytes());
        a.extend_from_slice(key);
        a
    }

    /// AES-256-GCM open of `nonce (12) ‖ ciphertext ‖ tag (16)`.
    pub fn gcm_open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Vec<u8> {
        assert!(sealed.len() >= 28, "shorter than nonce + tag");
        let (nonce, ct) = sealed.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().unwrap();
        Aes256Gcm::new_from_slice(key)
            .unwrap()
            .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad })
            .expect("the GCM tag authenticates")
    }

    /// HKDF-SHA256 with 32 bytes of output.
    pub fn hkdf32(salt: Option<&[u8]>, ikm: &[u8], info: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        Hkdf::<Sha256>::new(salt, ikm).expand(info, &mut out).unwrap();
        out
    }

    /// The keys of one epoch ("Key hierarchy").
    pub struct EpochKeys {
        pub chunk: [u8; 32],
        pub meta: [u8; 32],
    }

    /// Everything a reader holds after unlocking.
    pub struct Reader {
        pub vault_id: [u8; 16],
        pub epochs: BTreeMap<u32, EpochKeys>,
    }

    impl Reader {
        /// "Sealed values": `0x01 ‖ epoch BE ‖ nonce ‖ ciphertext ‖ tag`, under the key of the
        /// value's own epoch, with the AAD of `table`/`key`.
        pub fn open(&self, table: &str, key: &[u8], value: &[u8]) -> Vec<u8> {
            assert_eq!(value[0], 0x01, "{table}: sealed-value layout version");
            let epoch = u32::from_be_bytes(value[1..5].try_into().unwrap());
            let keys = &self.epochs[&epoch];
            let k = if table == "chunks" { &keys.chunk } else { &keys.meta };
            gcm_open(k, &aad(table, &self.vault_id, epoch, key), &value[5..])
        }

        pub fn open_record<T: serde::de::DeserializeOwned>(&self, table: &str, key: &[u8], value: &[u8]) -> T {
            postcard::from_bytes(&self.open(table, key, value)).unwrap()
        }
    }

    pub fn read(path: &Path, passphrase: &[u8], exp: &Value) {
        // "Container: redb tables": open read-only; every table with the types listed.
        let db = redb::ReadOnlyDatabase::open(path).unwrap();
        let rx = db.begin_read().unwrap();
        let meta = rx.open_table(META).unwrap();

        // "Header".
        let header: Header = postcard::from_bytes(meta.get("header").unwrap().unwrap().value()).unwrap();
        assert_eq!(&header.magic, b"modelvault");
        assert_eq!(header.format_version, 3);
        assert_eq!(hex(&header.vault_id), s(&exp["vault_id"]));
        assert!(header.created > 1_700_000_000);
        let vid = header.vault_id;

        // "Key slots": the checksum, the KEK, the check value, the wrap.
        let slots = rx.open_table(SLOTS).unwrap();
        let stored = slots.get(s(&exp["slot"])).unwrap().unwrap();
        let stored = stored.value();
        let (body, sum) = stored.split_at(stored.len() - 32);
        assert_eq!(Sha256::digest(body).as_slice(), sum, "slot checksum");
        let slot: SlotRecord = postcard::from_bytes(body).unwrap();
        let p = &slot.params;
        assert_eq!(
            (p.memory_kib as u64, p.time_cost as u64, p.lanes as u64),
            (
                exp["argon2"]["memory_kib"].as_u64().unwrap(),
                exp["argon2"]["time_cost"].as_u64().unwrap(),
                exp["argon2"]["lanes"].as_u64().unwrap()
            )
        );
        assert!((1..=64).contains(&p.lanes) && (1..=64).contains(&p.time_cost));
        assert!((8 * p.lanes..=4 * 1024 * 1024).contains(&p.memory_kib));
        let params = argon2::Params::new(p.memory_kib, p.time_cost, p.lanes, Some(32)).unwrap();
        let mut kek = [0u8; 32];
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password_into(passphrase, &slot.salt, &mut kek)
            .unwrap();
        assert_eq!(slot.kek_check, Some(hkdf32(None, &kek, b"modelvault/v1/slot-check")), "kek_check");
        let mut wrap_aad = aad("slot", &vid, slot.epoch, s(&exp["slot"]).as_bytes());
        for x in [p.memory_kib, p.time_cost, p.lanes] {
            wrap_aad.extend_from_slice(&x.to_be_bytes());
        }
        assert_eq!(slot.wrapped.len(), 60);
        let mk = gcm_open(&kek, &wrap_aad, &slot.wrapped);
        assert_eq!(mk.len(), 32);
        assert!(slot.next.is_none(), "no rotation is unfinished");
        assert_eq!(u64::from(slot.epoch), exp["epoch"].as_u64().unwrap());
        assert!(slot.created > 1_700_000_000);

        // "Key hierarchy": the epoch keys.
        let info = |purpose: &str, e: u32| {
            let mut i = format!("modelvault/v1/{purpose}").into_bytes();
            i.extend_from_slice(&e.to_be_bytes());
            i
        };
        let keys = EpochKeys {
            chunk: hkdf32(Some(&vid), &mk, &info("chunk", slot.epoch)),
            meta: hkdf32(Some(&vid), &mk, &info("meta", slot.epoch)),
        };
        let r = Reader { vault_id: vid, epochs: BTreeMap::from([(slot.epoch, keys)]) };

        // "State", and its live-model count and digest against the models table.
        let state: State = r.open_record("meta", b"state", meta.get("state").unwrap().unwrap().value());
        assert_eq!(state.epoch, slot.epoch);
        assert_eq!(state.rotating_to, None);
        assert!(state.chunk_seals > 0 && state.meta_seals > 0, "a rotation re-sealed everything");
        let models = rx.open_table(MODELS).unwrap();
        let mut digest = Sha256::new();
        digest.update(b"modelvault/v3/live-models\0");
        let mut model_keys = Vec::new();
        for row in models.iter().unwrap() {
            let (k, _) = row.unwrap();
            digest.update(k.value());
            model_keys.push(*k.value());
        }
        assert_eq!(state.live_models, model_keys.len() as u64);
        assert_eq!(state.models_digest, <[u8; 32]>::from(digest.finalize()));

        // "Key hierarchy": the index key and the keyed-hash keys.
        let ix: IndexRecord = r.open_record("meta", b"index", meta.get("index").unwrap().unwrap().value());
        let chunk_id_key = hkdf32(Some(&vid), &ix.key, b"modelvault/v1/chunk-id");
        let name_key = hkdf32(Some(&vid), &ix.key, b"modelvault/v1/name");

        // "Signer records": the AAD key is the id as u32 big-endian.
        let signers_t = rx.open_table(SIGNERS).unwrap();
        let mut publics = Vec::new();
        let mut listed = Vec::new();
        for row in signers_t.iter().unwrap() {
            let (id, v) = row.unwrap();
            let id = id.value();
            let rec: SignerRecord = r.open_record("signers", &id.to_be_bytes(), v.value());
            let derived = ed25519_dalek::SigningKey::from_bytes(&rec.seed).verifying_key().to_bytes();
            assert_eq!(derived, rec.public, "signer {id}: public key of the seed");
            assert!(rec.created > 1_700_000_000);
            listed.push(json!({"id": id, "public": hex(&rec.public), "active": id == state.active_signer,
                "retired": rec.retired.is_some()}));
            publics.push(rec.public);
        }
        assert_eq!(Value::from(listed), exp["signers"]);
        assert_eq!(state.next_signer as usize, publics.len());

        // "Other records": the allow-list and the trusted keys.
        let allow: AllowRecord = r.open_record("meta", b"allow", meta.get("allow").unwrap().unwrap().value());
        assert_eq!(Value::from(allow.globals), exp["allow"]);
        assert!(meta.get("erase").unwrap().is_none(), "no erasure is unfinished");
        let trust_t = rx.open_table(TRUST).unwrap();
        let mut trusted = Vec::new();
        for row in trust_t.iter().unwrap() {
            let (k, v) = row.unwrap();
            let rec: TrustRecord = r.open_record("trust", k.value().as_bytes(), v.value());
            assert_eq!(rec.name, k.value());
            assert!(rec.added > 1_700_000_000);
            trusted.push(json!({"name": rec.name, "public": hex(&rec.public)}));
        }
        assert_eq!(Value::from(trusted), exp["trust"]);

        // "Model records", by the keyed hash of each expected name.
        let versions_t = rx.open_table(VERSIONS).unwrap();
        let chunks_t = rx.open_table(CHUNKS).unwrap();
        let ids_t = rx.open_table(CHUNK_IDS).unwrap();
        let exp_models = exp["models"].as_array().unwrap();
        assert_eq!(exp_models.len(), model_keys.len());
        let mut referenced = std::collections::BTreeSet::new();
        let mut refs = 0usize;
        for em in exp_models {
            let name = s(&em["name"]);
            let mk: [u8; 32] = *blake3::keyed_hash(&name_key, name.as_bytes()).as_bytes();
            assert!(model_keys.contains(&mk), "{name}: record key");
            let rec: ModelRecord = r.open_record("models", &mk, models.get(&mk).unwrap().unwrap().value());
            assert_eq!(rec.name, name);
            assert_eq!(rec.description, s(&em["description"]));
            assert_eq!(rec.aliases, u64_map(&em["aliases"]));
            assert_eq!(rec.live, u64s(&em["live"]));
            assert_eq!(rec.next_version, *rec.live.last().unwrap() + 1);
            assert!(rec.created > 1_700_000_000);
            for (alias, v) in &rec.aliases {
                assert!(rec.live.contains(v), "{name}: alias {alias} points at a live version");
                let last = rec.alias_history.iter().rev().find(|e| &e.alias == alias).unwrap();
                assert_eq!(last.to, Some(*v));
                assert!(last.from.is_none_or(|f| f < rec.next_version) && last.at > 1_700_000_000);
            }
            // "Model records": the version records present are exactly the live ones.
            let mut lo = [0u8; 40];
            lo[..32].copy_from_slice(&mk);
            let mut hi = lo;
            hi[32..].copy_from_slice(&u64::MAX.to_be_bytes());
            let present: Vec<u64> = versions_t
                .range::<&[u8; 40]>(&lo..=&hi)
                .unwrap()
                .map(|row| u64::from_be_bytes(row.unwrap().0.value()[32..].try_into().unwrap()))
                .collect();
            assert_eq!(present, rec.live, "{name}");

            for (&version, ev) in rec.live.iter().zip(em["versions"].as_array().unwrap()) {
                let at = format!("{name}@{version}");
                // "Version records and the signed manifest": key = model key ‖ version BE.
                let mut vk = lo;
                vk[32..].copy_from_slice(&version.to_be_bytes());
                let vr: VersionRecord = r.open_record("versions", &vk, versions_t.get(&vk).unwrap().unwrap().value());
                // Step 1: the signer is one of the vault's; step 2: the signature.
                assert!(publics.contains(&vr.signer), "{at}: signer");
                assert_eq!(hex(&vr.signer), s(&ev["signer"]), "{at}");
                let sig = Signature::from_bytes(&vr.signature.as_slice().try_into().expect("64-byte signature"));
                let mut msg = b"modelvault manifest signature v1\0".to_vec();
                msg.extend_from_slice(&vr.manifest);
                VerifyingKey::from_bytes(&vr.signer).unwrap().verify_strict(&msg, &sig).expect("signature");
                // Step 3: the canonical manifest, naming this vault, model and version.
                let m: Manifest = postcard::from_bytes(&vr.manifest).unwrap();
                assert_eq!(postcard::to_stdvec(&m).unwrap(), vr.manifest, "{at}: canonical");
                assert_eq!(m.manifest_version, 1);
                assert_eq!((m.vault_id, m.name.as_str(), m.version), (vid, name, version), "{at}");
                assert!(m.metrics.values().all(|x| x.is_finite()));
                assert_eq!(m.revision, ev["revision"].as_u64().unwrap(), "{at}");
                assert!(m.updated >= m.created && m.created > 1_700_000_000);
                assert_eq!(m.description, s(&ev["description"]), "{at}");
                assert_eq!(m.tags, string_map(&ev["tags"]), "{at}");
                assert_eq!(m.metrics, f64_map(&ev["metrics"]), "{at}");
                let files = ev["files"].as_array().unwrap();
                assert_eq!(m.files.len(), files.len(), "{at}");
                for (f, ef) in m.files.iter().zip(files) {
                    let at = format!("{at} {}", f.path);
                    assert_eq!(f.path, s(&ef["path"]), "{at}");
                    assert_eq!(f.format, s(&ef["format"]), "{at}");
                    assert_eq!(f.scan.as_ref().map(|x| x.verdict.as_str()), ef["scan"].as_str(), "{at}");
                    let tensors: Vec<Value> = f
                        .tensors
                        .iter()
                        .map(|t| {
                            assert!(t.offset + t.len <= f.size);
                            json!({"name": t.name, "dtype": t.dtype, "shape": t.shape, "offset": t.offset, "len": t.len})
                        })
                        .collect();
                    assert_eq!(Value::from(tensors), ef["tensors"], "{at}");
                    assert_eq!(f.chunks.iter().map(|c| u64::from(c.len)).sum::<u64>(), f.size, "{at}");
                    // "Chunks": open each, check its length and id, concatenate, compare the SHA-256.
                    let mut data = Vec::new();
                    for c in &f.chunks {
                        let stored = chunks_t.get(&c.id).unwrap().expect("chunk present");
                        let plain = r.open("chunks", &c.id, stored.value());
                        assert_eq!(plain.len(), c.len as usize, "{at}: chunk length");
                        assert_eq!(blake3::keyed_hash(&chunk_id_key, &plain).as_bytes(), &c.id, "{at}: chunk id");
                        let indexed = ids_t.get(&c.id).unwrap().expect("indexed").value();
                        assert_eq!(indexed as usize, stored.value().len(), "{at}: chunk_ids length");
                        data.extend_from_slice(&plain);
                        referenced.insert(c.id);
                        refs += 1;
                    }
                    assert_eq!(<[u8; 32]>::from(Sha256::digest(&data)), f.sha256, "{at}: SHA-256");
                    assert_eq!(hex(&f.sha256), s(&ef["sha256"]), "{at}");
                    assert_eq!(hex(&data), s(&ef["hex"]), "{at}");
                }
            }
        }
        // "Chunks": every stored chunk is referenced (gc ran), and some are shared.
        assert_eq!(chunks_t.len().unwrap(), referenced.len() as u64);
        assert_eq!(ids_t.len().unwrap(), referenced.len() as u64);
        assert!(refs > referenced.len(), "a deduplicated chunk is shared");
    }
}

#[test]
fn spec_reads_the_committed_vault() {
    let dir = tempfile::tempdir().unwrap();
    let path = vault_copy(dir.path());
    spec::read(&path, &passphrase_bytes(), &expected());
}

/// The format 2 vault of `tests/tamper.rs` (see `format2_vault` there: the Conv2d ONNX model as
/// `r@2`, alias `prod`, and as `c@1`), read from SECURITY.md alone: the older layouts of
/// "Format versions" (no `kek_check`, no live fields; the live versions are the records present).
#[test]
fn spec_reads_the_format_2_vault() {
    use spec::*;
    #[derive(Deserialize)]
    struct SlotRecordV2 {
        epoch: u32,
        params: (u32, u32, u32),
        salt: [u8; 16],
        wrapped: Vec<u8>,
        _created: u64,
        next: Option<(u32, Vec<u8>)>,
    }
    #[derive(Deserialize)]
    struct StateV2 {
        epoch: u32,
        active_signer: u32,
        _next_signer: u32,
        _chunk_seals: u64,
        _meta_seals: u64,
        rotating_to: Option<u32>,
    }
    #[derive(Deserialize)]
    struct ModelRecordV2 {
        name: String,
        _created: u64,
        next_version: u64,
        aliases: BTreeMap<String, u64>,
        _description: String,
        _alias_history: Vec<AliasEvent>,
    }
    let conv = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/onnx/onnx-backend_test_Conv2d.model.onnx"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("format2.mvault");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/format2.mvault"), &path).unwrap();
    // "Container: redb tables", "Header".
    let db = redb::ReadOnlyDatabase::open(&path).unwrap();
    let rx = redb::ReadableDatabase::begin_read(&db).unwrap();
    use redb::ReadableTableMetadata;
    let meta = rx.open_table(META).unwrap();
    let header: Header = postcard::from_bytes(meta.get("header").unwrap().unwrap().value()).unwrap();
    assert_eq!((&header.magic, header.format_version), (b"modelvault", 2));
    let vid = header.vault_id;
    // "Key slots", with the older layout: the format 3 layout runs out of bytes.
    let slots = rx.open_table(SLOTS).unwrap();
    let stored = slots.get("default").unwrap().unwrap();
    let (body, sum) = stored.value().split_at(stored.value().len() - 32);
    assert_eq!(Sha256::digest(body).as_slice(), sum);
    assert!(postcard::from_bytes::<SlotRecord>(body).is_err(), "no kek_check in format 2");
    let slot: SlotRecordV2 = postcard::from_bytes(body).unwrap();
    assert!(slot.next.is_none());
    let (m, t, p) = slot.params;
    let mut kek = [0u8; 32];
    argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(m, t, p, Some(32)).unwrap(),
    )
    .hash_password_into(b"correct horse battery staple", &slot.salt, &mut kek)
    .unwrap();
    let mut wrap_aad = aad("slot", &vid, slot.epoch, b"default");
    for x in [m, t, p] {
        wrap_aad.extend_from_slice(&x.to_be_bytes());
    }
    let mk = gcm_open(&kek, &wrap_aad, &slot.wrapped);
    // "Key hierarchy".
    let info = |purpose: &str| {
        let mut i = format!("modelvault/v1/{purpose}").into_bytes();
        i.extend_from_slice(&slot.epoch.to_be_bytes());
        i
    };
    let keys =
        EpochKeys { chunk: hkdf32(Some(&vid), &mk, &info("chunk")), meta: hkdf32(Some(&vid), &mk, &info("meta")) };
    let r = Reader { vault_id: vid, epochs: BTreeMap::from([(slot.epoch, keys)]) };
    // "State", older layout.
    let plain = r.open("meta", b"state", meta.get("state").unwrap().unwrap().value());
    assert!(postcard::from_bytes::<State>(&plain).is_err(), "no live-model fields in format 2");
    let state: StateV2 = postcard::from_bytes(&plain).unwrap();
    assert_eq!((state.epoch, state.rotating_to), (slot.epoch, None));
    let ix: IndexRecord = r.open_record("meta", b"index", meta.get("index").unwrap().unwrap().value());
    let chunk_id_key = hkdf32(Some(&vid), &ix.key, b"modelvault/v1/chunk-id");
    let name_key = hkdf32(Some(&vid), &ix.key, b"modelvault/v1/name");
    // "Signer records".
    let signers = rx.open_table(SIGNERS).unwrap();
    let active: SignerRecord = r.open_record(
        "signers",
        &state.active_signer.to_be_bytes(),
        signers.get(state.active_signer).unwrap().unwrap().value(),
    );
    // "Model records" (older layout) and "Version records and the signed manifest", "Chunks".
    let models = rx.open_table(MODELS).unwrap();
    let versions = rx.open_table(VERSIONS).unwrap();
    let chunks = rx.open_table(CHUNKS).unwrap();
    assert_eq!(rx.open_table(CHUNK_IDS).unwrap().len().unwrap(), chunks.len().unwrap(), "format 2 has the index");
    for (name, version, aliases) in [("c", 1u64, vec![]), ("r", 2, vec![("prod", 2u64)])] {
        let mk: [u8; 32] = *blake3::keyed_hash(&name_key, name.as_bytes()).as_bytes();
        let plain = r.open("models", &mk, models.get(&mk).unwrap().unwrap().value());
        assert!(postcard::from_bytes::<ModelRecord>(&plain).is_err(), "no live list in format 2");
        let rec: ModelRecordV2 = postcard::from_bytes(&plain).unwrap();
        assert_eq!((rec.name.as_str(), rec.next_version), (name, version + 1));
        let want: BTreeMap<String, u64> = aliases.into_iter().map(|(a, v)| (a.to_string(), v)).collect();
        assert_eq!(rec.aliases, want);
        let mut lo = [0u8; 40];
        lo[..32].copy_from_slice(&mk);
        let mut hi = lo;
        hi[32..].copy_from_slice(&u64::MAX.to_be_bytes());
        let present: Vec<[u8; 40]> =
            versions.range::<&[u8; 40]>(&lo..=&hi).unwrap().map(|x| *x.unwrap().0.value()).collect();
        assert_eq!(present.len(), 1, "{name}: the live versions are the records present");
        assert_eq!(u64::from_be_bytes(present[0][32..].try_into().unwrap()), version);
        let vr: VersionRecord =
            r.open_record("versions", &present[0], versions.get(&present[0]).unwrap().unwrap().value());
        assert_eq!(vr.signer, active.public);
        let mut msg = b"modelvault manifest signature v1\0".to_vec();
        msg.extend_from_slice(&vr.manifest);
        let sig = ed25519_dalek::Signature::from_bytes(&vr.signature.as_slice().try_into().unwrap());
        ed25519_dalek::VerifyingKey::from_bytes(&vr.signer).unwrap().verify_strict(&msg, &sig).unwrap();
        let man: Manifest = postcard::from_bytes(&vr.manifest).unwrap();
        assert_eq!(postcard::to_stdvec(&man).unwrap(), vr.manifest);
        assert_eq!((man.vault_id, man.name.as_str(), man.version, man.files.len()), (vid, name, version, 1));
        let f = &man.files[0];
        let mut data = Vec::new();
        for c in &f.chunks {
            let plain = r.open("chunks", &c.id, chunks.get(&c.id).unwrap().unwrap().value());
            assert_eq!(blake3::keyed_hash(&chunk_id_key, &plain).as_bytes(), &c.id);
            assert_eq!(plain.len(), c.len as usize);
            data.extend_from_slice(&plain);
        }
        assert_eq!(<[u8; 32]>::from(Sha256::digest(&data)), f.sha256);
        assert_eq!((f.format.as_str(), data), ("onnx", conv.clone()), "{name}@{version}");
    }
}
