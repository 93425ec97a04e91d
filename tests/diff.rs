//! `diff`: files added, removed and changed; tensors added, removed, reshaped, changed in dtype
//! and changed in value with max |b − a|, relative L2 change and cosine similarity; tensors with
//! equal chunk ids are never decrypted. Corpus cases from MANIFEST.md: one changed tensor,
//! a re-headered copy, and F32 vs F16 GGUF.

mod common;

use std::path::Path;

use crate::common::tables::CHUNKS;
use common::*;
use modelvault::{DiffReport, Error, FileStatus, NoProgress, PutOptions, VersionRef};

const ST: &str = "safetensors";

fn put(v: &mut modelvault::Vault<modelvault::Unlocked>, src: &Path, name: &str) {
    v.put(src, name, &PutOptions::default(), &NoProgress).unwrap();
}

fn diff(v: &modelvault::Vault<modelvault::Unlocked>, a: (&str, u64), b: (&str, u64)) -> DiffReport {
    v.diff(a.0, &VersionRef::Number(a.1), b.0, &VersionRef::Number(b.1)).unwrap()
}

/// The silero safetensors file and its two variants as s@1 (original), s@2 (re-headered),
/// s@3 (one tensor changed).
fn silero_versions(dir: &Path) -> std::path::PathBuf {
    let (path, mut v) = new_vault(dir);
    for f in [
        "silero_vad_16k.safetensors",
        "silero_vad_16k.reheadered.safetensors",
        "silero_vad_16k.one-tensor-changed.safetensors",
    ] {
        put(&mut v, &corpus().join(ST).join(f), "s");
    }
    path
}

#[test]
fn one_changed_tensor_is_found_with_its_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let path = silero_versions(dir.path());
    let v = reopen(&path);
    let d = diff(&v, ("s", 1), ("s", 3));
    assert_eq!((d.a.as_str(), d.b.as_str()), ("s@1", "s@3"));
    assert_eq!(d.files.len(), 1);
    let f = &d.files[0];
    assert_eq!(f.status, FileStatus::Changed);
    assert_eq!(f.path_a.as_deref(), Some("silero_vad_16k.safetensors"));
    assert_eq!(f.path_b.as_deref(), Some("silero_vad_16k.one-tensor-changed.safetensors"));
    let t = f.tensors.as_ref().unwrap();
    assert_eq!(t.changed.len(), 1);
    assert_eq!(t.same, 14);
    assert!(t.added.is_empty() && t.removed.is_empty());
    assert!(t.reshaped.is_empty() && t.dtype_changed.is_empty());
    let c = &t.changed[0];
    assert_eq!(c.name, "final_conv.bias");
    assert_eq!((c.dtype.as_str(), c.shape.as_slice()), ("F32", &[1u64][..]));
    assert_eq!(c.elements_changed, Some(1));
    let max = c.max_abs_diff.unwrap();
    assert!((max - 1.0).abs() < 1e-6, "max abs diff {max}");
    // One element a → a + 1: ‖b − a‖ / ‖a‖ = 1 / |a|, and the cosine of two scalars is ±1.
    let bytes = std::fs::read(corpus().join(ST).join("silero_vad_16k.safetensors")).unwrap();
    let a = f32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap()) as f64;
    assert!((c.rel_l2.unwrap() - max / a.abs()).abs() < 1e-9);
    assert!((c.cosine.unwrap().abs() - 1.0).abs() < 1e-12);
    assert_eq!(d.summary.tensors_changed, 1);
    assert_eq!(d.summary.tensors_same, 14);
    assert_eq!(d.summary.files_changed, 1);
    // Only the changed 4-byte tensor was decrypted, on both sides.
    assert_eq!(d.bytes_decrypted, 8);
}

#[test]
fn a_reheadered_copy_has_no_tensor_changes_and_nothing_is_decrypted() {
    let dir = tempfile::tempdir().unwrap();
    let path = silero_versions(dir.path());
    // With every chunk gone, the comparison must come from the manifests alone.
    delete_chunks(&path, |_| true);
    let v = reopen(&path);
    let d = diff(&v, ("s", 1), ("s", 2));
    let f = &d.files[0];
    assert_eq!(f.status, FileStatus::Changed, "the files' bytes differ");
    let t = f.tensors.as_ref().unwrap();
    assert_eq!(t.same, 15);
    assert!(t.changed.is_empty() && t.added.is_empty() && t.removed.is_empty());
    assert!(t.reshaped.is_empty() && t.dtype_changed.is_empty());
    assert_eq!(f.note.as_deref(), Some("header or metadata only: all 15 tensors are byte-identical"));
    assert_eq!(d.bytes_decrypted, 0);
    // A version against itself: the file is the same.
    let d = diff(&v, ("s", 2), ("s", 2));
    assert_eq!(d.files[0].status, FileStatus::Same);
    assert_eq!(d.summary.files_same, 1);
}

/// Deletes, through redb, every chunk for which `pick(id)` holds.
fn delete_chunks(path: &Path, pick: impl Fn(&[u8; 32]) -> bool) {
    tamper::remove_where(path, CHUNKS, pick);
}

#[test]
fn only_tensors_whose_chunks_differ_are_decrypted() {
    let dir = tempfile::tempdir().unwrap();
    let path = silero_versions(dir.path());
    let v = reopen(&path);
    // The chunk holding final_conv.bias (4 bytes: one chunk starting at its offset) in s@1, s@3.
    let bias_chunk = |n| {
        let m = v.manifest("s", &VersionRef::Number(n)).unwrap();
        let f = &m.files[0];
        let t = f.tensors.iter().find(|t| t.name == "final_conv.bias").unwrap();
        let mut at = 0u64;
        for c in &f.chunks {
            if at == t.offset {
                assert_eq!(c.len, 4);
                return c.id;
            }
            at += c.len as u64;
        }
        panic!("no chunk starts at the tensor");
    };
    let keep = [bias_chunk(1), bias_chunk(3)];
    drop(v);
    delete_chunks(&path, |id| !keep.contains(id));
    let d = diff(&reopen(&path), ("s", 1), ("s", 3));
    assert_eq!(d.summary.tensors_changed, 1);
    assert_eq!(d.summary.tensors_same, 14);
    // Deleting a chunk the comparison needs is reported, naming model, version, file, chunk.
    delete_chunks(&path, |id| *id == keep[1]);
    let e = reopen(&path).diff("s", &VersionRef::Number(1), "s", &VersionRef::Number(3)).unwrap_err();
    assert!(matches!(e, Error::Damaged(_)), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("model 's' version 3 file 'silero_vad_16k.one-tensor-changed.safetensors': chunk")
            && msg.contains("is missing"),
        "{msg}"
    );
}

#[test]
fn f32_and_f16_gguf_differ_in_dtype_for_all_15_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = new_vault(dir.path());
    put(&mut v, &corpus().join("gguf/silero_vad_16k.from-safetensors.f32.gguf"), "g");
    put(&mut v, &corpus().join("gguf/silero_vad_16k.from-safetensors.f16.gguf"), "g");
    let d = diff(&v, ("g", 1), ("g", 2));
    let t = d.files[0].tensors.as_ref().unwrap();
    assert_eq!(t.dtype_changed.len(), 15);
    assert!(t.dtype_changed.iter().all(|x| x.dtype_a == "F32" && x.dtype_b == "F16" && x.shape_a == x.shape_b));
    assert_eq!(d.summary.tensors_dtype_changed, 15);
    assert_eq!((d.summary.tensors_changed, d.summary.tensors_same, d.summary.tensors_reshaped), (0, 0, 0));
    // Across formats (safetensors vs the F32 GGUF holding the same bytes): all tensors same.
    put(&mut v, &corpus().join(ST).join("silero_vad_16k.safetensors"), "s");
    let d = diff(&v, ("s", 1), ("g", 1));
    assert_eq!(d.summary.tensors_same, 15);
    assert_eq!(d.files[0].format_b.as_deref(), Some("gguf-v3"));
    assert_eq!(d.bytes_decrypted, 0);
}

#[test]
fn files_are_paired_by_path_in_directory_models() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = new_vault(dir.path());
    let (v1, v2) = (dir.path().join("v1"), dir.path().join("v2"));
    for d in [&v1, &v2] {
        std::fs::create_dir(d).unwrap();
        std::fs::write(d.join("notes.txt"), b"same").unwrap();
    }
    std::fs::copy(corpus().join(ST).join("silero_vad_16k.safetensors"), v1.join("model.safetensors")).unwrap();
    std::fs::copy(
        corpus().join(ST).join("silero_vad_16k.one-tensor-changed.safetensors"),
        v2.join("model.safetensors"),
    )
    .unwrap();
    std::fs::write(v1.join("old.bin"), b"old").unwrap();
    std::fs::write(v2.join("new.bin"), b"new").unwrap();
    put(&mut v, &v1, "d");
    put(&mut v, &v2, "d");
    let d = diff(&v, ("d", 1), ("d", 2));
    let status =
        |p: &str| d.files.iter().find(|f| f.path_a.as_deref() == Some(p) || f.path_b.as_deref() == Some(p)).unwrap();
    assert_eq!(status("notes.txt").status, FileStatus::Same);
    assert_eq!(status("old.bin").status, FileStatus::Removed);
    assert_eq!(status("new.bin").status, FileStatus::Added);
    assert!(status("new.bin").path_a.is_none());
    let m = status("model.safetensors");
    assert_eq!(m.status, FileStatus::Changed);
    assert_eq!(m.tensors.as_ref().unwrap().changed[0].name, "final_conv.bias");
    assert!(status("notes.txt").tensors.is_none(), "not a tensor format");
    let s = &d.summary;
    assert_eq!((s.files_added, s.files_removed, s.files_changed, s.files_same), (1, 1, 1, 1));
}

/// A safetensors file from (name, dtype, shape, little-endian bytes).
fn safetensors_file(tensors: &[(&str, &str, Vec<u64>, Vec<u8>)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, dtype, shape, bytes) in tensors {
        let begin = data.len();
        data.extend_from_slice(bytes);
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [begin, data.len()]}),
        );
    }
    let h = serde_json::to_vec(&serde_json::Value::Object(header)).unwrap();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(data);
    out
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
fn f16s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect()
}
fn bf16s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect()
}
fn i64s(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Two safetensors files (A, B) whose tensors differ in every way a diff reports: a big F32
/// tensor over several chunks with three elements changed, F16, BF16 and I64 changes, NaN and
/// all-zero sides, one the same, one reshaped, one retyped, one removed and one added. Also
/// returns the big tensor's values on each side.
fn files_with_every_kind_of_change() -> (Vec<u8>, Vec<u8>, Vec<f32>, Vec<f32>) {
    // 700,000 F32 = 2.8 MB: three chunks at least, compared chunk by chunk.
    const N: usize = 700_000;
    let big_a: Vec<f32> = (0..N).map(|i| ((i % 1000) as f32 - 500.0) / 100.0).collect();
    let mut big_b = big_a.clone();
    big_b[0] += 0.5;
    big_b[N - 1] -= 2.0;
    big_b[400_000] *= 1.5;
    let a = safetensors_file(&[
        ("big", "F32", vec![700, 1000], f32s(&big_a)),
        ("h", "F16", vec![4], f16s(&[1.0, 2.0, 3.0, 4.0])),
        ("bf", "BF16", vec![2], bf16s(&[1.0, -2.0])),
        ("ids", "I64", vec![3], i64s(&[1, 2, 3])),
        ("nan", "F32", vec![2], f32s(&[f32::NAN, 1.0])),
        ("zeros", "F32", vec![2], f32s(&[0.0, 0.0])),
        ("same", "F32", vec![3], f32s(&[1.0, 2.0, 3.0])),
        ("r", "F32", vec![2, 3], f32s(&[1.0; 6])),
        ("t", "F32", vec![2], f32s(&[1.0, 2.0])),
        ("old", "F32", vec![1], f32s(&[9.0])),
    ]);
    let b = safetensors_file(&[
        ("big", "F32", vec![700, 1000], f32s(&big_b)),
        ("h", "F16", vec![4], f16s(&[1.0, 2.0, 3.0, 5.0])),
        ("bf", "BF16", vec![2], bf16s(&[1.0, -2.5])),
        ("ids", "I64", vec![3], i64s(&[1, 5, 3])),
        ("nan", "F32", vec![2], f32s(&[0.0, 2.0])),
        ("zeros", "F32", vec![2], f32s(&[1.0, 0.0])),
        ("same", "F32", vec![3], f32s(&[1.0, 2.0, 3.0])),
        ("r", "F32", vec![3, 2], f32s(&[1.0; 6])),
        ("t", "F16", vec![2], f16s(&[1.0, 2.0])),
        ("new", "F32", vec![1], f32s(&[9.0])),
    ]);
    (a, b, big_a, big_b)
}

/// The big tensor's statistics, computed here independently in f64 from the f32 values.
fn assert_big_statistics(big: &modelvault::TensorChange, big_a: &[f32], big_b: &[f32]) {
    let (mut max, mut saa, mut sbb, mut sab, mut sdd) = (0f64, 0f64, 0f64, 0f64, 0f64);
    for (x, y) in big_a.iter().zip(big_b) {
        let (x, y) = (*x as f64, *y as f64);
        max = max.max((y - x).abs());
        saa += x * x;
        sbb += y * y;
        sab += x * y;
        sdd += (y - x) * (y - x);
    }
    assert_eq!(big.elements_changed, Some(3));
    assert_eq!(big.max_abs_diff, Some(max));
    assert!((big.max_abs_diff.unwrap() - 2.5).abs() < 1e-6);
    assert!((big.rel_l2.unwrap() - sdd.sqrt() / saa.sqrt()).abs() < 1e-12);
    assert!((big.cosine.unwrap() - sab / (saa.sqrt() * sbb.sqrt())).abs() < 1e-12);
    assert!(big.cosine.unwrap() < 1.0 && big.cosine.unwrap() > 0.99);
}

#[test]
fn every_kind_of_tensor_change_with_statistics_streamed_over_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = new_vault(dir.path());
    let (a, b, big_a, big_b) = files_with_every_kind_of_change();
    let (fa, fb) = (dir.path().join("a.safetensors"), dir.path().join("b.safetensors"));
    std::fs::write(&fa, &a).unwrap();
    std::fs::write(&fb, &b).unwrap();
    put(&mut v, &fa, "x");
    put(&mut v, &fb, "x");
    let d = diff(&v, ("x", 1), ("x", 2));
    let t = d.files[0].tensors.as_ref().unwrap();
    let names = |v: Vec<&str>| v.into_iter().map(String::from).collect::<Vec<_>>();
    assert_eq!(t.added.iter().map(|x| x.name.clone()).collect::<Vec<_>>(), names(vec!["new"]));
    assert_eq!(t.removed.iter().map(|x| x.name.clone()).collect::<Vec<_>>(), names(vec!["old"]));
    assert_eq!(t.reshaped.len(), 1);
    assert_eq!((t.reshaped[0].shape_a.clone(), t.reshaped[0].shape_b.clone()), (vec![2, 3], vec![3, 2]));
    assert_eq!(t.dtype_changed.len(), 1);
    assert_eq!((t.dtype_changed[0].name.as_str(), t.dtype_changed[0].dtype_b.as_str()), ("t", "F16"));
    assert_eq!(t.same, 1);
    let ch = |n: &str| t.changed.iter().find(|c| c.name == n).unwrap();
    assert_eq!(t.changed.len(), 6);

    assert_big_statistics(ch("big"), &big_a, &big_b);

    let h = ch("h");
    assert_eq!(h.max_abs_diff, Some(1.0));
    assert!((h.rel_l2.unwrap() - 1.0 / 30f64.sqrt()).abs() < 1e-12);
    let bf = ch("bf");
    assert_eq!(bf.max_abs_diff, Some(0.5));
    let ids = ch("ids");
    assert_eq!(ids.elements_changed, Some(1));
    assert_eq!((ids.max_abs_diff, ids.rel_l2, ids.cosine), (None, None, None));
    assert!(ids.note.as_deref().unwrap().contains("no numeric statistics for dtype I64"));
    let nan = ch("nan");
    assert_eq!(nan.max_abs_diff, Some(1.0));
    assert!(nan.note.as_deref().unwrap().contains("1 element(s) are NaN or infinite on one side"), "{:?}", nan.note);
    let z = ch("zeros");
    assert_eq!((z.max_abs_diff, z.rel_l2, z.cosine), (Some(1.0), None, None));
    assert_eq!(z.note.as_deref(), Some("A is all zeros: no relative change"));
    // Decrypted: the six changed tensors, both sides; nothing else.
    let changed_bytes = 4 * big_a.len() as u64 + 8 + 4 + 24 + 8 + 8;
    assert_eq!(d.bytes_decrypted, 2 * changed_bytes);
    // The report serialises (no NaN or infinity reaches JSON).
    let j = serde_json::to_value(&d).unwrap();
    assert_eq!(j["summary"]["tensors_changed"], 6);
}

#[test]
fn unknown_models_and_versions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = silero_versions(dir.path());
    let v = reopen(&path);
    let e = v.diff("s", &VersionRef::Number(1), "t", &VersionRef::Latest).unwrap_err();
    assert!(matches!(e, Error::ModelNotFound(_)), "{e}");
    assert!(e.to_string().contains("model 't' not found"), "{e}");
    let e = v.diff("s", &VersionRef::Number(1), "s", &VersionRef::Number(9)).unwrap_err();
    assert!(e.to_string().contains("model 's' has no version or alias '9'"), "{e}");
}

#[test]
fn cli_diff_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    cli_init(dir.path());
    for f in ["silero_vad_16k.safetensors", "silero_vad_16k.one-tensor-changed.safetensors"] {
        mvault(dir.path()).args(["put", corpus().join(ST).join(f).to_str().unwrap(), "--name", "s"]).assert().success();
    }
    mvault(dir.path())
        .args(["diff", "s@1", "s@2"])
        .assert()
        .success()
        .stdout(predicates::str::contains("diff s@1 s@2"))
        .stdout(predicates::str::contains("changed final_conv.bias F32 [1]: max|diff| 1.000000"))
        .stdout(predicates::str::contains("14 tensor(s) unchanged"))
        .stdout(predicates::str::contains("1 changed, 14 same"));
    let out = mvault(dir.path()).args(["diff", "s@1", "s@2", "--json"]).assert().success().get_output().stdout.clone();
    let j: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(j["summary"]["tensors_changed"], 1);
    assert_eq!(j["files"][0]["tensors"]["changed"][0]["name"], "final_conv.bias");
    mvault(dir.path())
        .args(["diff", "s@1", "s@"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("empty version after '@'"));
    mvault(dir.path())
        .args(["diff", "s@1", "nope@1"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("model 'nope' not found"));
}
