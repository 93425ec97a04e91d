//! The generator of the test vectors (`make_vectors` in `tests/format_vectors.rs` runs it): a
//! vault made through the library's public API with a test-sized Argon2 cost, and the plaintexts
//! it must yield, taken from the source files and from what was put (not from the vault).

use std::collections::BTreeMap;
use std::path::Path;

use modelvault::{Argon2Params, CreateOptions, NoProgress, Passphrase, PutOptions, Unlocked, Vault, VersionRef};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{hex, tensor_json};

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

/// Builds the vault at `path` from `sources()` in `tmp`; returns it unlocked and the public key
/// it was given to trust.
fn build(tmp: &Path, path: &Path) -> (Vault<Unlocked>, [u8; 32]) {
    let pass = Passphrase::new(VECTOR_PASSPHRASE.to_vec()).unwrap();
    let mut v = Vault::create(path, &pass, &CreateOptions { argon2: PARAMS, slot_name: "default".into() }).unwrap();
    let srcs = sources();
    let put = |v: &mut Vault<Unlocked>, i: usize, opts: PutOptions| {
        let (name, files) = &srcs[i];
        let d = tmp.join(format!("src{i}"));
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
    (v, partner)
}

/// The test-sized Argon2id cost of the vault's key slot.
const PARAMS: Argon2Params = Argon2Params { memory_kib: 1024, time_cost: 1, lanes: 1 };

/// What one stored file must be: its bytes from `sources()`, and the format, chunk count,
/// tensor index and scan verdict that file was built to have.
fn intended_file(path: &str, bytes: &[u8]) -> Value {
    let (format, chunks, tensors, scan) = match path {
        // The header (8 + 64 bytes) and the one tensor are cut into separate chunks.
        "model.safetensors" => ("safetensors", 2, json!([tensor_json("w", "F32", &[2, 2], 72, 16)]), Value::Null),
        "state.pkl" => ("pickle", 1, json!([]), json!("clean")),
        _ => ("opaque", 1, json!([]), Value::Null),
    };
    json!({
        "path": path, "size": bytes.len(), "sha256": hex(&Sha256::digest(bytes)), "hex": hex(bytes),
        "format": format, "chunks": chunks, "tensors": tensors, "scan": scan,
    })
}

/// The models as `build` made them, without the signers (which are random keys).
fn intended_models() -> Value {
    let srcs = sources();
    let files = |i: usize| srcs[i].1.iter().map(|(p, b)| intended_file(p, b)).collect::<Vec<_>>();
    let plain = |version: u64, i: usize, aliases: Value| {
        json!({"version": version, "revision": 0, "description": "", "tags": {}, "metrics": {},
               "aliases": aliases, "files": files(i)})
    };
    json!([
        {"name": "bert-tiny", "description": "a tiny BERT", "aliases": {"prod": 2, "stable": 1}, "live": [1, 2],
         "versions": [
            {"version": 1, "revision": 1, "description": "first cut", "tags": {"reviewed": "yes", "stage": "dev"},
             "metrics": {"accuracy": 0.5}, "aliases": ["stable"], "files": files(0)},
            plain(2, 1, json!(["prod"])),
         ]},
        {"name": "notes", "description": "", "aliases": {}, "live": [1], "versions": [plain(1, 4, json!([]))]},
        {"name": "resnet-mini", "description": "", "aliases": {}, "live": [2], "versions": [plain(2, 3, json!([]))]},
    ])
}

/// The models as the library lists them, in the shape of `intended_models`, with each
/// version's signer.
fn listed_models(v: &Vault<Unlocked>) -> Value {
    let listing = v.list(None).unwrap();
    assert!(listing.problems.is_empty(), "{:?}", listing.problems);
    let mut models = Vec::new();
    for m in &listing.models {
        let mut versions = Vec::new();
        for ver in &m.versions {
            let man = v.manifest(&m.name, &VersionRef::Number(ver.version)).unwrap();
            let mut files = Vec::new();
            for f in &man.files {
                let mut bytes = Vec::new();
                v.cat(&m.name, &VersionRef::Number(ver.version), Some(&f.path), &mut bytes, &NoProgress).unwrap();
                let mut e = intended_file(&f.path, &bytes);
                e["format"] = json!(f.format);
                e["chunks"] = json!(f.chunks.len());
                e["tensors"] = json!(
                    f.tensors
                        .iter()
                        .map(|t| tensor_json(&t.name, &t.dtype, &t.shape, t.offset, t.len))
                        .collect::<Vec<_>>()
                );
                e["scan"] = json!(f.scan.as_ref().map(|s| s.verdict.clone()));
                files.push(e);
            }
            versions.push(json!({
                "version": ver.version, "revision": ver.revision, "description": ver.description,
                "tags": ver.tags, "metrics": ver.metrics, "aliases": ver.aliases, "signer": ver.signer,
                "files": files,
            }));
        }
        models.push(json!({
            "name": m.name, "description": m.description, "aliases": m.aliases,
            "live": m.versions.iter().map(|x| x.version).collect::<Vec<_>>(), "versions": versions,
        }));
    }
    Value::from(models)
}

/// Writes `v3.mvault`, `PASSPHRASE` and `expected.json` into `out` with the current code. Every
/// run gives different bytes (random vault id, keys, salts and nonces). The expected models are
/// the intended ones (from the sources and the calls of `build`), checked against what the
/// library lists; only the random parts (vault id, signing keys) come from the vault.
pub fn write(out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("v3.mvault");
    let (v, partner) = build(tmp.path(), &path);
    let models = listed_models(&v);
    let mut unsigned = models.clone();
    for m in unsigned.as_array_mut().unwrap() {
        for ver in m["versions"].as_array_mut().unwrap() {
            ver.as_object_mut().unwrap().remove("signer");
        }
    }
    assert_eq!(unsigned, intended_models(), "the library lists what was put");
    let signers: Vec<Value> = v
        .list_signers()
        .unwrap()
        .iter()
        .map(|s| json!({"id": s.id, "public": s.public_key, "active": s.active, "retired": s.retired.is_some()}))
        .collect();
    let exp = json!({
        "about": "Expected plaintexts of v3.mvault (see README.md here and SECURITY.md, Byte layout). \
                  Made by make_vectors in tests/format_vectors.rs; regenerating changes every byte of the vault.",
        "format_version": 3,
        "vault_id": hex(&v.vault_id()),
        "epoch": v.epoch(),
        "slot": "default",
        "argon2": {"memory_kib": PARAMS.memory_kib, "time_cost": PARAMS.time_cost, "lanes": PARAMS.lanes},
        "signer_public_key": hex(&v.signer_public_key()),
        "signers": signers,
        "trust": [{"name": "partner", "public": hex(&partner)}],
        "allow": ["collections.OrderedDict"],
        "models": models,
    });
    assert_eq!(v.allow_list().unwrap(), ["collections.OrderedDict"]);
    drop(v);
    std::fs::write(out.join("PASSPHRASE"), VECTOR_PASSPHRASE).unwrap();
    std::fs::write(out.join("expected.json"), serde_json::to_string_pretty(&exp).unwrap() + "\n").unwrap();
    std::fs::copy(&path, out.join("v3.mvault")).unwrap();
}
