//! `inspect`: files and tensors (dtype, shape, parameters, bytes), totals per dtype, the model's
//! parameter count, format and pickle verdict per file — from the manifest alone, with no chunk
//! read.

mod common;

use std::path::Path;

use crate::common::tables::CHUNKS;
use common::*;
use modelvault::{Error, NoProgress, PutOptions, VersionRef};

/// Removes every chunk from the vault file, through redb.
fn delete_all_chunks(path: &Path) {
    let removed = tamper::remove_where(path, CHUNKS, |_| true);
    assert!(removed != 0);
}

#[test]
fn a_directory_model_is_inspected_from_the_manifest_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    let src = dir.path().join("model");
    std::fs::create_dir(&src).unwrap();
    std::fs::copy(corpus().join("safetensors/silero_vad_16k.safetensors"), src.join("model.safetensors")).unwrap();
    std::fs::copy(corpus().join("gguf/silero_vad_16k.from-safetensors.f16.gguf"), src.join("model.f16.gguf")).unwrap();
    std::fs::copy(corpus().join("pickle/picklescan_benign0_v4.pkl"), src.join("extra.pkl")).unwrap();
    std::fs::write(src.join("config.json"), b"{\"hidden\": 128}").unwrap();
    v.put(&src, "m", &PutOptions::default(), &NoProgress).unwrap();
    drop(v);
    // Nothing below may need a chunk.
    delete_all_chunks(&path);
    let v = reopen(&path);
    let i = v.inspect("m", &VersionRef::Latest).unwrap();
    assert_eq!((i.name.as_str(), i.version), ("m", 1));
    let paths: Vec<&str> = i.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["config.json", "extra.pkl", "model.f16.gguf", "model.safetensors"]);
    let by = |p: &str| i.files.iter().find(|f| f.path == p).unwrap();
    assert_eq!(by("model.safetensors").format, "safetensors");
    assert_eq!(by("model.f16.gguf").format, "gguf-v3");
    assert_eq!(by("extra.pkl").format, "pickle");
    assert_eq!(by("extra.pkl").scan_verdict, "clean");
    assert_eq!(by("model.safetensors").scan_verdict, "not-applicable");
    assert!(by("config.json").tensors.is_empty());
    assert_eq!(by("model.safetensors").params, 309_633);
    assert_eq!(by("model.f16.gguf").params, 309_633);
    assert_eq!(i.params, 2 * 309_633);
    assert_eq!(i.tensors, 30);
    let st = by("model.safetensors");
    let first = &st.tensors[0];
    assert_eq!((first.name.as_str(), first.dtype.as_str()), ("stft_conv.weight", "F32"));
    assert_eq!(first.shape, vec![258, 1, 256]);
    assert_eq!((first.params, first.bytes), (66_048, 264_192));
    // Per-dtype totals, in dtype order.
    let totals: Vec<(&str, u64, u64, u64)> =
        i.dtypes.iter().map(|d| (d.dtype.as_str(), d.tensors, d.params, d.bytes)).collect();
    assert_eq!(totals, [("F16", 15, 309_633, 309_633 * 2), ("F32", 15, 309_633, 309_633 * 4)]);
    assert_eq!(i.tensor_bytes, 309_633 * 6);
    // Whereas reading data fails: the chunks really are gone.
    let mut sink = Vec::new();
    assert!(v.cat("m", &VersionRef::Latest, Some("config.json"), &mut sink, &NoProgress).is_err());
}

#[test]
fn parameter_count_matches_the_header_of_a_real_model() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = new_vault(dir.path());
    let f = corpus().join("safetensors/all-MiniLM-L6-v2.model.safetensors");
    v.put(&f, "mini", &PutOptions::default(), &NoProgress).unwrap();
    let bytes = std::fs::read(&f).unwrap();
    let h = modelvault::formats::safetensors::parse(&mut std::io::Cursor::new(&bytes), bytes.len() as u64).unwrap();
    let want: u64 = h.tensors.iter().map(|t| t.param_count().unwrap()).sum();
    let i = v.inspect("mini", &VersionRef::Latest).unwrap();
    assert_eq!(i.params, want);
    assert_eq!(i.params, 22_713_728);
    assert_eq!(i.tensors, 104);
    assert_eq!(i.dtypes.len(), 2);
    assert_eq!((i.dtypes[1].dtype.as_str(), i.dtypes[1].tensors), ("I64", 1));
}

#[test]
fn an_unsafe_pickle_stored_anyway_shows_its_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = new_vault(dir.path());
    let opts = PutOptions { allow_unsafe_pickle: true, ..Default::default() };
    v.put(&corpus().join("malicious/B10_picklescan_malicious23.pkl"), "evil", &opts, &NoProgress).unwrap();
    let i = v.inspect("evil", &VersionRef::Latest).unwrap();
    let f = &i.files[0];
    assert_eq!(f.scan_verdict, "dangerous");
    let scan = f.scan.as_ref().unwrap();
    assert!(scan.allowed_unsafe);
    assert!(scan.findings[0].contains("os.system"));
    assert_eq!((i.tensors, i.params), (0, 0));
}

#[test]
fn unknown_models_and_versions_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = new_vault(dir.path());
    v.put(&corpus().join("safetensors/silero_vad_16k.safetensors"), "s", &PutOptions::default(), &NoProgress).unwrap();
    let e = v.inspect("nope", &VersionRef::Latest).unwrap_err();
    assert!(matches!(e, Error::ModelNotFound(_)), "{e}");
    // The library names the model; the hint naming a command is the CLI's (cli_inspect_text_and_json).
    assert_eq!(e.to_string(), "model 'nope' not found");
    let e = v.inspect("s", &VersionRef::Number(9)).unwrap_err();
    assert!(e.to_string().contains("model 's' has no version or alias '9'"), "{e}");
}

#[test]
fn cli_inspect_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    cli_init(dir.path());
    let f = corpus().join("safetensors/silero_vad_16k.safetensors");
    mvault(dir.path()).args(["put", f.to_str().unwrap(), "--name", "s"]).assert().success();
    let out = mvault(dir.path()).args(["inspect", "s@1"]).assert().success().get_output().stdout.clone();
    let text = String::from_utf8(out).unwrap();
    for want in [
        "model:      s@1",
        "parameters: 309,633 in 15 tensor(s)",
        "silero_vad_16k.safetensors  safetensors  1.2 MiB  pickle scan: not-applicable",
        "TENSOR",
        "final_conv.bias",
        "[258, 1, 256]",
        "66,048",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    assert!(text.lines().any(|l| l.starts_with("F32") && l.contains("309,633") && l.contains("1,238,532")), "{text}");
    let out = mvault(dir.path()).args(["inspect", "s", "--json"]).assert().success().get_output().stdout.clone();
    let j: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(j["params"], 309_633);
    assert_eq!(j["files"][0]["format"], "safetensors");
    assert_eq!(j["files"][0]["tensors"].as_array().unwrap().len(), 15);
    assert_eq!(j["dtypes"][0]["dtype"], "F32");
    mvault(dir.path())
        .args(["inspect", "s@7"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("model 's' has no version or alias '7'"));
    mvault(dir.path())
        .args(["inspect", "nope"])
        .assert()
        .code(5)
        .stderr(predicates::str::contains("model 'nope' not found: `mvault ls` lists the models"));
}
