//! `get --tensor`: the file written is valid safetensors holding exactly the tensors asked for,
//! byte-identical to the source; only the chunks of those tensors are read; every refusal is a
//! one-line error naming what to do.

mod common;

use std::path::Path;

use crate::common::tables::CHUNKS;
use common::tamper::ReadableTable;
use common::*;
use modelvault::formats::safetensors;
use modelvault::{Error, NoProgress, PutOptions, TensorGetOptions, VersionRef};

const SILERO: &str = "safetensors/silero_vad_16k.safetensors";

fn put(v: &mut modelvault::Vault<modelvault::Unlocked>, src: &Path, name: &str) {
    v.put(src, name, &PutOptions::default(), &NoProgress).unwrap();
}

fn names(ts: &[&str]) -> Vec<String> {
    ts.iter().map(|s| s.to_string()).collect()
}

/// Parses `out` with the crate's own safetensors parser and checks it holds exactly `want`, each
/// byte-identical to the same-named tensor of `original`.
fn assert_tensors_match(out: &Path, original: &Path, want: &[&str]) {
    let got_bytes = std::fs::read(out).unwrap();
    let orig_bytes = std::fs::read(original).unwrap();
    let got = safetensors::parse(&mut std::io::Cursor::new(&got_bytes), got_bytes.len() as u64).unwrap();
    assert_eq!(got.data_start % 8, 0, "data should start 8-byte aligned");
    let orig = modelvault::formats::analyze(
        &mut std::io::Cursor::new(&orig_bytes),
        orig_bytes.len() as u64,
        &Default::default(),
    )
    .unwrap()
    .tensors;
    let mut got_names: Vec<&str> = got.tensors.iter().map(|t| t.name.as_str()).collect();
    got_names.sort_unstable();
    let mut want_sorted = want.to_vec();
    want_sorted.sort_unstable();
    assert_eq!(got_names, want_sorted);
    for t in &got.tensors {
        let o = orig.iter().find(|o| o.name == t.name).unwrap();
        assert_eq!((&t.dtype, &t.shape, t.len), (&o.dtype, &o.shape, o.len));
        let g = &got_bytes[t.offset as usize..(t.offset + t.len) as usize];
        let w = &orig_bytes[o.offset as usize..(o.offset + o.len) as usize];
        assert!(g == w, "tensor {} bytes differ", t.name);
    }
}

#[test]
fn chosen_tensors_are_written_as_valid_safetensors_with_the_original_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = new_vault(dir.path());
    let src = corpus().join(SILERO);
    put(&mut v, &src, "s");
    let out = dir.path().join("out/two.safetensors");
    let want = ["lstm_cell.weight_ih", "final_conv.bias"];
    let rep = v
        .get_tensors("s", &VersionRef::Latest, &names(&want), &out, &TensorGetOptions::default(), &NoProgress)
        .unwrap();
    assert_tensors_match(&out, &src, &want);
    assert_eq!(rep.bytes, std::fs::metadata(&out).unwrap().len());
    assert_eq!(rep.tensors.len(), 2);
    assert_eq!(rep.tensors[0].name, "lstm_cell.weight_ih");
    // 262,144 bytes are cut 262,047 (a 256 KiB page) + 97; 4 bytes are one chunk.
    assert_eq!(rep.chunks_read, 3);
    assert_eq!(rep.chunks_total, 23);
    // No temporary file is left beside the output.
    assert_eq!(files_under(&dir.path().join("out")), vec![out.clone()]);
    // A repeated name is written once.
    let out2 = dir.path().join("one.safetensors");
    v.get_tensors(
        "s",
        &VersionRef::Latest,
        &names(&["conv1.bias", "conv1.bias"]),
        &out2,
        &TensorGetOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert_tensors_match(&out2, &src, &["conv1.bias"]);
}

#[test]
fn a_tensor_spanning_many_chunks_and_gguf_sources() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = new_vault(dir.path());
    let mini = corpus().join("safetensors/all-MiniLM-L6-v2.model.safetensors");
    put(&mut v, &mini, "mini");
    let out = dir.path().join("emb.safetensors");
    // 30522 x 384 F32 = 46.9 MB: about 45 chunks.
    let want = ["embeddings.word_embeddings.weight", "embeddings.position_ids"];
    let rep = v
        .get_tensors("mini", &VersionRef::Latest, &names(&want), &out, &TensorGetOptions::default(), &NoProgress)
        .unwrap();
    assert!(rep.chunks_read > 40, "{}", rep.chunks_read);
    assert!(rep.chunks_read < rep.chunks_total);
    assert_tensors_match(&out, &mini, &want);

    for (rel, dtype) in [
        ("gguf/silero_vad_16k.from-safetensors.f16.gguf", "F16"),
        ("gguf/silero_vad_16k.from-safetensors.f32.gguf", "F32"),
    ] {
        let src = corpus().join(rel);
        put(&mut v, &src, "g");
        let out = dir.path().join(format!("{dtype}.safetensors"));
        let rep = v
            .get_tensors(
                "g",
                &VersionRef::Latest,
                &names(&["stft_conv.weight", "conv1.bias"]),
                &out,
                &TensorGetOptions::default(),
                &NoProgress,
            )
            .unwrap();
        assert!(rep.tensors.iter().all(|t| t.dtype == dtype));
        assert_tensors_match(&out, &src, &["stft_conv.weight", "conv1.bias"]);
    }
}

fn chunk_ids(v: &modelvault::Vault<modelvault::Unlocked>, name: &str) -> Vec<[u8; 32]> {
    v.manifest(name, &VersionRef::Latest).unwrap().files[0].chunks.iter().map(|c| c.id).collect()
}

fn edit_chunks(path: &Path, f: impl FnOnce(&mut tamper::Table<&'static [u8; 32], &'static [u8]>)) {
    tamper::edit(path, CHUNKS, f)
}

#[test]
fn only_the_chunks_of_the_chosen_tensors_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    let src = corpus().join(SILERO);
    put(&mut v, &src, "s");
    let m = v.manifest("s", &VersionRef::Latest).unwrap();
    let ids = chunk_ids(&v, "s");
    // The chunk holding final_conv.bias: the one starting at its offset.
    let bias = m.files[0].tensors.iter().find(|t| t.name == "final_conv.bias").unwrap();
    let mut at = 0u64;
    let mut needed = None;
    for c in &m.files[0].chunks {
        if at == bias.offset {
            needed = Some(c.id);
        }
        at += c.len as u64;
    }
    let needed = needed.expect("a chunk starts at the tensor");
    drop(v);
    // Delete every other chunk (header and the other 14 tensors).
    edit_chunks(&path, |t| {
        for id in ids.iter().filter(|id| **id != needed) {
            t.remove(id).unwrap();
        }
    });
    let v = reopen(&path);
    let out = dir.path().join("bias.safetensors");
    let rep = v
        .get_tensors(
            "s",
            &VersionRef::Latest,
            &names(&["final_conv.bias"]),
            &out,
            &TensorGetOptions::default(),
            &NoProgress,
        )
        .unwrap();
    assert_eq!(rep.chunks_read, 1);
    assert_tensors_match(&out, &src, &["final_conv.bias"]);
    // A tensor whose chunk is gone fails, naming it, and leaves no file.
    let out2 = dir.path().join("w/conv1.safetensors");
    let e = v
        .get_tensors(
            "s",
            &VersionRef::Latest,
            &names(&["conv1.bias"]),
            &out2,
            &TensorGetOptions::default(),
            &NoProgress,
        )
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Damaged(_)), "{msg}");
    assert!(
        msg.contains("model 's' version 1 file 'silero_vad_16k.safetensors': chunk") && msg.contains("is missing"),
        "{msg}"
    );
    assert!(files_under(&dir.path().join("w")).is_empty());
    drop(v);
    // A tampered needed chunk fails authentication.
    edit_chunks(&path, |t| {
        let mut b = t.get(&needed).unwrap().unwrap().value().to_vec();
        let n = b.len();
        b[n - 1] ^= 1;
        t.insert(&needed, b.as_slice()).unwrap();
    });
    let msg = reopen(&path)
        .get_tensors(
            "s",
            &VersionRef::Latest,
            &names(&["final_conv.bias"]),
            &dir.path().join("again.safetensors"),
            &TensorGetOptions::default(),
            &NoProgress,
        )
        .unwrap_err()
        .to_string();
    assert!(msg.contains("authentication failed"), "{msg}");
    assert!(!dir.path().join("again.safetensors").exists());
}

/// A GGUF v3 file with one Q8_0 tensor `q` of 32 elements (one 34-byte block).
fn quantized_gguf() -> Vec<u8> {
    let mut v = b"GGUF".to_vec();
    v.extend(3u32.to_le_bytes());
    v.extend(1u64.to_le_bytes()); // tensors
    v.extend(0u64.to_le_bytes()); // kv
    v.extend(1u64.to_le_bytes());
    v.extend(b"q");
    v.extend(1u32.to_le_bytes()); // n_dims
    v.extend(32u64.to_le_bytes());
    v.extend(8u32.to_le_bytes()); // Q8_0
    v.extend(0u64.to_le_bytes()); // offset
    v.resize(v.len().div_ceil(32) * 32, 0);
    v.extend([7u8; 34]);
    v
}

#[test]
fn refusals_are_one_line_and_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = new_vault(dir.path());
    put(&mut v, &corpus().join(SILERO), "s");
    put(&mut v, &corpus().join("onnx/silero_vad.onnx"), "onnx");
    let q = dir.path().join("q.gguf");
    std::fs::write(&q, quantized_gguf()).unwrap();
    put(&mut v, &q, "q");
    let two = dir.path().join("two");
    std::fs::create_dir(&two).unwrap();
    std::fs::copy(corpus().join(SILERO), two.join("a.safetensors")).unwrap();
    std::fs::copy(corpus().join(SILERO), two.join("b.safetensors")).unwrap();
    put(&mut v, &two, "two");

    let out = dir.path().join("o.safetensors");
    let get = |name: &str, ts: &[&str], opts: &TensorGetOptions| {
        v.get_tensors(name, &VersionRef::Latest, &names(ts), &out, opts, &NoProgress)
    };
    let d = TensorGetOptions::default();
    let cases: Vec<(Error, &str)> = vec![
        (get("s", &["nope"], &d).unwrap_err(), "s@1 has no tensor 'nope': `mvault inspect s@1` lists its tensors"),
        (get("s", &[], &d).unwrap_err(), "no tensor named: pass --tensor NAME"),
        (
            get("onnx", &["x"], &d).unwrap_err(),
            "onnx@1 has no tensor index (its files are onnx): --tensor works on safetensors and GGUF files",
        ),
        (
            get("q", &["q"], &d).unwrap_err(),
            "tensor 'q' of q@1 (file 'q.gguf') has dtype Q8_0, which safetensors cannot express",
        ),
        (
            get("two", &["conv1.bias"], &d).unwrap_err(),
            "tensor 'conv1.bias' is in 2 files of two@1 (a.safetensors, b.safetensors): choose one with --file PATH",
        ),
        (
            get("two", &["conv1.bias"], &TensorGetOptions { file: Some("c.safetensors".into()), ..Default::default() })
                .unwrap_err(),
            "two@1 has no file 'c.safetensors': `mvault inspect two@1` lists its files",
        ),
        (get("nomodel", &["x"], &d).unwrap_err(), "model 'nomodel' not found"),
    ];
    for (e, want) in cases {
        let own = e.to_string();
        assert!(!own.contains("--") && !own.contains("mvault "), "the library's message names the CLI: {own}");
        let msg = cli_exit::message(&e);
        assert!(msg.contains(want), "got {msg:?}, want {want:?}");
        assert!(!msg.contains('\n'), "{msg}");
    }
    assert!(!out.exists());

    // --file settles the ambiguity.
    let opts = TensorGetOptions { file: Some("b.safetensors".into()), ..Default::default() };
    let rep = get("two", &["conv1.bias"], &opts).unwrap();
    assert_eq!(rep.tensors[0].file, "b.safetensors");
    // The output exists now: refused without force, replaced with it.
    let e = get("s", &["conv1.bias"], &d).unwrap_err();
    assert!(matches!(e, Error::OutputExists(_)), "{e}");
    let force = TensorGetOptions { force: true, ..Default::default() };
    get("s", &["final_conv.bias"], &force).unwrap();
    assert_tensors_match(&out, &corpus().join(SILERO), &["final_conv.bias"]);
    // -o naming a directory.
    let e =
        v.get_tensors("s", &VersionRef::Latest, &names(&["conv1.bias"]), dir.path(), &force, &NoProgress).unwrap_err();
    assert!(cli_exit::message(&e).contains("is a directory: with --tensor, -o names the output file"), "{e}");
    assert!(
        e.to_string().contains("is a directory: a tensor read writes one file, which the output path names"),
        "{e}"
    );
}

#[test]
fn cli_get_tensor() {
    let dir = tempfile::tempdir().unwrap();
    cli_init(dir.path());
    mvault(dir.path()).args(["put", corpus().join(SILERO).to_str().unwrap(), "--name", "s"]).assert().success();
    mvault(dir.path())
        .args(["get", "s@1", "--tensor", "conv2.bias", "--tensor", "final_conv.weight", "-o", "t.safetensors"])
        .assert()
        .success()
        .stdout(predicates::str::contains("t.safetensors"))
        .stderr(predicates::str::contains("wrote 2 tensor(s) of s@1, "))
        .stderr(predicates::str::contains("decrypted 2 of 23 chunk(s)"));
    assert_tensors_match(
        &dir.path().join("t.safetensors"),
        &corpus().join(SILERO),
        &["conv2.bias", "final_conv.weight"],
    );
    let out = mvault(dir.path())
        .args(["get", "s", "--tensor", "conv2.bias", "-o", "j.safetensors", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let j: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(j["chunks_read"], 1);
    assert_eq!(j["tensors"][0]["name"], "conv2.bias");
    mvault(dir.path())
        .args(["get", "s", "--tensor", "conv9.bias", "-o", "x.safetensors"])
        .assert()
        .code(5)
        .stderr(predicates::str::contains("s@1 has no tensor 'conv9.bias': `mvault inspect s@1` lists its tensors"));
    mvault(dir.path())
        .args(["get", "s", "--tensor", "conv2.bias", "-o", "t.safetensors"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("pass --force"));
}
