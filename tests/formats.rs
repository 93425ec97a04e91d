//! Model formats at `put`: malformed headers refused with the error bugs.md asks for (B01, B02,
//! B04, B05, B06, B13), dangerous pickles refused (B08, B10, B12 and every file in
//! corpus/malicious), the vault unchanged after each refusal, and tensor-aligned dedup.

mod common;

use common::*;
use modelvault::{Error, NoProgress, PutOptions, VersionRef};

fn refused(v: &mut modelvault::Vault<modelvault::Unlocked>, rel: &str) -> Error {
    v.put(&corpus().join(rel), "m", &PutOptions::default(), &NoProgress).unwrap_err()
}

#[test]
fn malformed_tensor_headers_are_refused_with_specific_messages() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    v.put(&corpus().join("safetensors/silero_vad_16k.safetensors"), "keep", &PutOptions::default(), &NoProgress)
        .unwrap();
    drop(v);
    let before = table_sizes(&path);
    let mut v = reopen(&path);
    let cases = [
        ("B01_safetensors_duplicate_key.safetensors", "duplicate tensor name 'key00' in safetensors header"),
        ("B02a_safetensors_hdrlen_u64max.safetensors", "header length 18446744073709551615 exceeds file size 10"),
        ("B02b_safetensors_hdrlen_200MB_file_tiny.safetensors", "header length 209715200 exceeds file size 66"),
        (
            "B02c_safetensors_truncated_silero_first4096.safetensors",
            "file truncated: tensor 'stft_conv.weight' ends at byte 265408, file has 4096",
        ),
        ("B02d_safetensors_is_git_lfs_pointer.safetensors", "looks like a Git LFS pointer"),
        ("B04a_safetensors_shape_exceeds_offsets.safetensors", "size mismatch for tensor 't'"),
        ("B04b_safetensors_reversed_offsets.safetensors", "reversed data_offsets [8, 0]"),
        ("B04c_safetensors_header_is_json_array.safetensors", "header must be a JSON object"),
        ("B04d_safetensors_header_not_utf8.safetensors", "invalid UTF-8 in header at byte 3"),
        ("B04e_safetensors_shape_product_overflow.safetensors", "overflows"),
        ("B04f_safetensors_unknown_dtype_negative_offset.safetensors", "negative data offset -4"),
        (
            "B05a_gguf_string_len_2pow62.gguf",
            "string length 4611686018427387904 exceeds remaining 4 bytes at offset 0x",
        ),
        ("B05b_gguf_key_len_2pow63.gguf", "exceeds remaining 12 bytes"),
        (
            "B06a_gguf_array_count_2pow63.gguf",
            "array of 9223372036854775808 x 1-byte elements exceeds remaining 3 bytes",
        ),
        ("B06b_gguf_n_kv_2pow63.gguf", "n_kv 9223372036854775808 exceeds"),
        ("B06c_gguf_n_tensors_2pow63.gguf", "9223372036854775808"),
        ("B13a_onnx_external_data_relative_traversal.onnx", "escapes model directory"),
        ("B13b_onnx_external_data_absolute_path.onnx", "escapes model directory"),
        ("derived_truncated_ggml-vocab-bert-bge.first64KiB.gguf", "file truncated or corrupt"),
    ];
    for (file, want) in cases {
        let started = std::time::Instant::now();
        let e = refused(&mut v, &format!("malformed/{file}"));
        let msg = e.to_string();
        assert!(matches!(e, Error::InvalidInput(_)), "{file}: {msg}");
        assert!(msg.contains(want), "{file}: got {msg:?}, want {want:?}");
        assert!(msg.contains(file), "{file}: the message must name the file: {msg}");
        assert!(msg.contains("nothing was stored"), "{msg}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{file} took {:?}", started.elapsed());
    }
    assert_eq!(v.list(None).unwrap().models.len(), 1);
    drop(v);
    // redb rewrites its header on every open, so compare contents, not bytes.
    assert_eq!(table_sizes(&path), before, "a refused put left records behind");
}

/// Row counts of the chunk, version and model tables.
fn table_sizes(path: &std::path::Path) -> (u64, u64, u64) {
    (
        tamper::len(path, crate::common::tables::CHUNKS),
        tamper::len(path, crate::common::tables::VERSIONS),
        tamper::len(path, crate::common::tables::MODELS),
    )
}

#[test]
fn every_malicious_file_is_refused_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = new_vault(dir.path());
    let files = files_under(&corpus().join("malicious"));
    assert!(files.len() >= 40);
    for f in &files {
        let e = v.put(f, "m", &PutOptions::default(), &NoProgress).unwrap_err();
        assert!(matches!(e, Error::UnsafePickle { .. }), "{}: {e}", f.display());
        assert_eq!(e.exit_code(), 8);
    }
    let check = |rel: &str, global: &str| {
        let e = v_err(&corpus().join("malicious").join(rel));
        assert!(e.contains(global), "{rel}: {e}");
    };
    fn v_err(p: &std::path::Path) -> String {
        let dir = tempfile::tempdir().unwrap();
        let (_p, mut v) = new_vault(dir.path());
        v.put(p, "m", &PutOptions::default(), &NoProgress).unwrap_err().to_string()
    }
    check("B10_picklescan_malicious23.pkl", "os.system");
    for f in [
        "B12a_gzip_wrapped_malicious.pkl.gz",
        "B12b_bz2_wrapped_malicious.pkl.bz2",
        "B12c_xz_wrapped_malicious.joblib",
        "B12d_zlib_wrapped_malicious.joblib",
    ] {
        check(f, "posix.system");
    }
    for f in [
        "B08_picklescan_malicious1_0x1.zip",
        "B08_picklescan_malicious1_0x20.zip",
        "B08_picklescan_malicious1_0x40.zip",
    ] {
        check(f, "builtins.eval");
        check(f, "model/config.pkl");
    }
    assert!(v.list(None).unwrap().models.is_empty());
}

#[test]
fn unscannable_files_are_refused_never_called_clean() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = new_vault(dir.path());
    for rel in [
        "malformed/derived_truncated_silero_vad.jit.first1MiB.pt",
        "malformed/picklescan_benign_password_protected.zip",
        "malformed/modelscan_password_protected.zip",
        "malformed/picklescan_not_a_pickle.bin",
        "malformed/picklescan_broken_model.pkl",
    ] {
        let e = refused(&mut v, rel);
        assert!(matches!(e, Error::UnsafePickle { .. }), "{rel}: {e}");
    }
    assert!(refused(&mut v, "malformed/picklescan_broken_model.pkl").to_string().contains("builtins.exec"));
}

#[test]
fn allow_unsafe_pickle_stores_and_records_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = new_vault(dir.path());
    let f = corpus().join("malicious/B10_picklescan_malicious23.pkl");
    let opts = PutOptions { allow_unsafe_pickle: true, ..Default::default() };
    v.put(&f, "evil", &opts, &NoProgress).unwrap();
    let m = v.manifest("evil", &VersionRef::Latest).unwrap();
    let scan = m.files[0].scan.as_ref().unwrap();
    assert_eq!(scan.verdict, "dangerous");
    assert!(scan.allowed_unsafe);
    assert!(scan.findings[0].contains("os.system"));
    // --allow for the exact global makes it clean.
    let opts = PutOptions { allow_globals: vec!["os.system".into()], ..Default::default() };
    v.put(&f, "evil", &opts, &NoProgress).unwrap();
    assert_eq!(v.manifest("evil", &VersionRef::Latest).unwrap().files[0].scan.as_ref().unwrap().verdict, "clean");
}

#[test]
fn tensor_index_is_recorded_in_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = new_vault(dir.path());
    v.put(
        &corpus().join("safetensors/all-MiniLM-L6-v2.model.safetensors"),
        "minilm",
        &PutOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let m = v.manifest("minilm", &VersionRef::Latest).unwrap();
    let f = &m.files[0];
    assert_eq!(f.format, "safetensors");
    assert_eq!(f.tensors.len(), 104);
    assert_eq!(f.tensors.iter().filter(|t| t.dtype == "F32").count(), 103);
    assert_eq!(f.tensors.iter().filter(|t| t.dtype == "I64").count(), 1);
    v.put(&corpus().join("gguf/silero_vad_16k.from-safetensors.f16.gguf"), "g", &PutOptions::default(), &NoProgress)
        .unwrap();
    let g = v.manifest("g", &VersionRef::Latest).unwrap();
    assert_eq!(g.files[0].format, "gguf-v3");
    assert_eq!(g.files[0].tensors.len(), 15);
    assert!(g.files[0].tensors.iter().all(|t| t.dtype == "F16"));
}

#[test]
fn reheadered_model_adds_under_64_kib_and_one_changed_tensor_adds_about_that_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = new_vault(dir.path());
    let st = corpus().join("safetensors");
    let r0 = v.put(&st.join("silero_vad_16k.safetensors"), "s", &PutOptions::default(), &NoProgress).unwrap();
    assert_eq!(r0.new_bytes, 1_239_748);
    let r1 =
        v.put(&st.join("silero_vad_16k.reheadered.safetensors"), "s", &PutOptions::default(), &NoProgress).unwrap();
    assert!(r1.new_bytes < 64 * 1024, "re-headered copy stored {} new bytes", r1.new_bytes);
    let r2 = v
        .put(&st.join("silero_vad_16k.one-tensor-changed.safetensors"), "s", &PutOptions::default(), &NoProgress)
        .unwrap();
    // The changed tensor (final_conv.bias, 4 bytes) and the header are new; nothing else.
    let m = v.manifest("s", &VersionRef::Number(3)).unwrap();
    let header = m.files[0].tensors[0].offset;
    assert!(
        r2.new_bytes <= header + 4,
        "one changed 4-byte tensor stored {} new bytes (header {header})",
        r2.new_bytes
    );
    assert_eq!(r2.new_chunks, 2);
}

#[test]
fn a_payload_behind_no_op_opcodes_or_inside_a_polyglot_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = new_vault(dir.path());
    let cases: [(&str, &[u8]); 4] = [
        ("none-pop.bin", b"N0cos\nsystem\n(S'id'\ntR."),
        ("looks-like.csv", b"S'a,b'\n0cos\nsystem\n(S'id'\ntR."),
        ("dict-pop.dat", b"}0cos\nsystem\n(S'id'\ntR."),
        ("binint-pop.dat", b"K\x010cos\nsystem\n(S'id'\ntR."),
    ];
    for (name, bytes) in cases {
        let f = dir.path().join(name);
        std::fs::write(&f, bytes).unwrap();
        let e = v.put(&f, "m", &PutOptions::default(), &NoProgress).unwrap_err();
        assert!(matches!(e, Error::UnsafePickle { .. }), "{name}: {e}");
        assert!(e.to_string().contains("os.system"), "{name}: {e}");
    }
    // A zip with data in front of it (Python's zipfile opens it) is not waved through as data.
    let mut z = b"junk in front ".to_vec();
    z.extend(std::fs::read(corpus().join("malicious/picklescan_malicious1.zip")).unwrap());
    let f = dir.path().join("prefixed.zip");
    std::fs::write(&f, &z).unwrap();
    let e = v.put(&f, "m", &PutOptions::default(), &NoProgress).unwrap_err();
    assert!(e.to_string().contains("zip archive with data in front"), "{e}");
    // Plain data still goes in.
    for (name, bytes) in [("notes.txt", &b"hello world\n"[..]), ("config.json", b"{\"a\": 1}")] {
        let f = dir.path().join(name);
        std::fs::write(&f, bytes).unwrap();
        v.put(&f, "data", &PutOptions::default(), &NoProgress).unwrap();
    }
    assert_eq!(v.list(None).unwrap().models.len(), 1);
}

#[test]
fn a_fine_tune_that_changed_ten_percent_of_tensors_stores_about_those_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = new_vault(dir.path());
    let orig = corpus().join("safetensors/all-MiniLM-L6-v2.model.safetensors");
    v.put(&orig, "minilm", &PutOptions::default(), &NoProgress).unwrap();
    let m = v.manifest("minilm", &VersionRef::Latest).unwrap();
    let tensors = &m.files[0].tensors;
    assert_eq!(tensors.len(), 104);
    // Change every element of 10 of the 104 tensors (every tenth by size, the largest included),
    // as a fine-tune of those would.
    let mut by_size: Vec<_> = tensors.iter().collect();
    by_size.sort_by_key(|t| std::cmp::Reverse(t.len));
    let mut bytes = std::fs::read(&orig).unwrap();
    let mut changed = 0u64;
    for t in by_size.into_iter().step_by(10).take(10) {
        for b in &mut bytes[t.offset as usize..(t.offset + t.len) as usize] {
            *b ^= 0x5a;
        }
        changed += t.len;
    }
    let tuned = dir.path().join("tuned.safetensors");
    std::fs::write(&tuned, &bytes).unwrap();
    let r = v.put(&tuned, "minilm", &PutOptions::default(), &NoProgress).unwrap();
    let limit = changed * 12 / 10 + 64 * 1024;
    eprintln!("changed tensor bytes {changed}, stored {} new bytes (limit {limit})", r.new_bytes);
    assert!(r.new_bytes <= limit, "stored {} new bytes for {changed} changed tensor bytes", r.new_bytes);
    assert!(r.new_bytes >= changed, "every changed byte must be stored");
}

#[test]
fn a_vault_can_extend_the_allow_list_for_every_put() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = new_vault(dir.path());
    let evil = corpus().join("malicious/B10_picklescan_malicious23.pkl");
    assert!(matches!(v.put(&evil, "m", &PutOptions::default(), &NoProgress).unwrap_err(), Error::UnsafePickle { .. }));
    for bad in ["os", "os.*", "os..system", "1os.system"] {
        let e = v.allow_add(bad).unwrap_err().to_string();
        assert!(e.contains("not an exact global"), "{bad}: {e}");
    }
    v.allow_add("os.system").unwrap();
    assert_eq!(v.allow_list().unwrap(), ["os.system"]);
    v.put(&evil, "m", &PutOptions::default(), &NoProgress).unwrap();
    // The list survives a master-key rotation (it is re-encrypted with the rest).
    v.rotate(&[], false, &NoProgress).unwrap();
    assert_eq!(v.allow_list().unwrap(), ["os.system"]);
    v.allow_remove("os.system").unwrap();
    assert!(matches!(v.allow_remove("os.system").unwrap_err().base(), Error::NotFound(_)));
    assert!(matches!(v.put(&evil, "m", &PutOptions::default(), &NoProgress).unwrap_err(), Error::UnsafePickle { .. }));
}

/// A one-member-per-entry ustar archive with end-of-archive blocks.
fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut t = Vec::new();
    for (name, data) in members {
        let mut h = vec![0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
        h[156] = b'0';
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        t.extend(h);
        t.extend_from_slice(data);
        t.resize(t.len().div_ceil(512) * 512, 0);
    }
    t.extend([0u8; 1024]);
    t
}

#[test]
fn legacy_torch_tar_and_torch_globals_are_refused_at_put() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = new_vault(dir.path());
    let storages = b"\x80\x02K\x00.\x80\x02]q\x00.";
    let tensors = b"\x80\x02K\x00.";
    let evil_tar = tar_of(&[("storages", storages), ("tensors", tensors), ("pickle", b"cposix\nsystem\n(S'ls'\ntR.")]);
    let torch_pickle = b"\x80\x02c__torch__\nevil\n)R.".to_vec();
    for (name, bytes, global) in
        [("legacy.pt", evil_tar, "posix.system"), ("plain.pkl", torch_pickle, "__torch__.evil")]
    {
        let f = dir.path().join(name);
        std::fs::write(&f, bytes).unwrap();
        let e = v.put(&f, "m", &PutOptions::default(), &NoProgress).unwrap_err();
        assert!(matches!(e, Error::UnsafePickle { .. }), "{name}: {e}");
        assert_eq!(e.exit_code(), 8);
        assert!(e.to_string().contains(global), "{name}: {e}");
    }
    // A benign legacy tar is stored, scanned clean.
    let ok = tar_of(&[("storages", storages), ("tensors", tensors), ("pickle", b"\x80\x02}q\x00.")]);
    let f = dir.path().join("ok.pt");
    std::fs::write(&f, ok).unwrap();
    v.put(&f, "ok", &PutOptions::default(), &NoProgress).unwrap();
    assert_eq!(v.list(None).unwrap().models.len(), 1);
}

#[test]
fn a_gguf_that_is_also_a_tar_is_scanned_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = new_vault(dir.path());
    // The first tar header's name field holds a valid GGUF v3 header with no tensors and no
    // keys; `torch.load` of the file (not a zip) opens it as a tar and unpickles `pickle`.
    let gguf = "GGUF\u{3}\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
    let storages = b"\x80\x02K\x00.\x80\x02]q\x00.";
    let evil = tar_of(&[
        (gguf, b""),
        ("storages", storages),
        ("tensors", b"\x80\x02K\x00."),
        ("pickle", b"cposix\nsystem\n(S'ls'\ntR."),
    ]);
    assert!(evil.starts_with(b"GGUF\x03\0\0\0"));
    let f = dir.path().join("model.gguf");
    std::fs::write(&f, &evil).unwrap();
    let scanned = modelvault::formats::scan_file(&f, &Default::default()).unwrap();
    assert_eq!(scanned.format, "gguf-v3");
    let e = v.put(&f, "m", &PutOptions::default(), &NoProgress).unwrap_err();
    assert!(matches!(e, Error::UnsafePickle { .. }), "{e}");
    assert_eq!(e.exit_code(), 8);
    assert!(e.to_string().contains("posix.system"), "{e}");
    assert!(v.list(None).unwrap().models.is_empty());
}

#[test]
fn gguf_alignment_is_checked_at_put() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = new_vault(dir.path());
    let gguf = |ty: u32, val: &[u8]| {
        let mut g = b"GGUF".to_vec();
        g.extend(3u32.to_le_bytes());
        g.extend(0u64.to_le_bytes());
        g.extend(1u64.to_le_bytes());
        g.extend(17u64.to_le_bytes());
        g.extend(b"general.alignment");
        g.extend(ty.to_le_bytes());
        g.extend_from_slice(val);
        g
    };
    for (ty, val, want) in [
        (5u32, 32i32.to_le_bytes().to_vec(), "general.alignment has value type INT32 (5); it must be UINT32 (4)"),
        (4, 0u32.to_le_bytes().to_vec(), "general.alignment is 0"),
        (4, (1u32 << 30).to_le_bytes().to_vec(), "general.alignment 1073741824 exceeds the limit of 1048576 bytes"),
    ] {
        let f = dir.path().join("a.gguf");
        std::fs::write(&f, gguf(ty, &val)).unwrap();
        let e = v.put(&f, "m", &PutOptions::default(), &NoProgress).unwrap_err();
        assert!(matches!(e, Error::InvalidInput(_)), "{e}");
        assert!(e.to_string().contains(want), "{e}");
        assert!(e.to_string().contains("a.gguf"), "{e}");
    }
    assert!(v.list(None).unwrap().models.is_empty());
}
