//! Tests of the GGUF parser: real files from the corpus, synthetic layouts, every prefix of a
//! real file, and the `general.alignment` rule.

use super::*;
use crate::formats::tensor::test_util::read;
use std::io::Cursor;

fn parse_bytes(b: &[u8]) -> Result<GgufHeader, FormatError> {
    parse(&mut Cursor::new(b), b.len() as u64)
}
fn err(rel: &str) -> String {
    let t = std::time::Instant::now();
    let e = parse_bytes(&read(rel)).expect_err(rel).to_string();
    assert!(t.elapsed().as_millis() < 200, "{rel} took {:?}", t.elapsed());
    assert!(!e.contains('\n'), "{e}");
    e
}

#[test]
fn vocab_files_have_no_tensors() {
    for f in ["ggml-vocab-bert-bge.gguf", "ggml-vocab-phi-3.gguf", "ggml-vocab-gpt-2.gguf"] {
        let h = parse_bytes(&read(&format!("gguf/{f}"))).unwrap();
        assert_eq!(h.version, 3, "{f}");
        assert!(h.tensors.is_empty(), "{f}");
        let tokens = h.kv.iter().find(|(k, _)| k == "tokenizer.ggml.tokens").map(|(_, v)| v.clone());
        match tokens {
            Some(GgufValueSummary::Array { elem_type, count }) => {
                assert_eq!(elem_type, "STRING");
                assert!(count > 10_000, "{f}: {count}");
            }
            other => panic!("{f}: tokens {other:?}"),
        }
    }
}

#[test]
fn silero_f32_matches_safetensors() {
    let g = parse_bytes(&read("gguf/silero_vad_16k.from-safetensors.f32.gguf")).unwrap();
    assert_eq!(g.tensors.len(), 15);
    assert!(g.tensors.iter().all(|t| t.dtype == "F32"));
    let arch = g.kv.iter().find(|(k, _)| k == "general.architecture").unwrap();
    assert_eq!(arch.1.as_str(), Some("silero-vad"));
    assert_eq!(g.alignment, 32);
    let st_bytes = read("safetensors/silero_vad_16k.safetensors");
    let st = crate::formats::safetensors::parse(&mut Cursor::new(&st_bytes), st_bytes.len() as u64).unwrap();
    let g_bytes = read("gguf/silero_vad_16k.from-safetensors.f32.gguf");
    for t in &g.tensors {
        let s = st.tensors.iter().find(|s| s.name == t.name).unwrap_or_else(|| panic!("{}", t.name));
        assert_eq!(s.len, t.len, "{}", t.name);
        assert_eq!(s.param_count(), t.param_count(), "{}", t.name);
        let (a, b) = (s.offset as usize, t.offset as usize);
        assert_eq!(st_bytes[a..a + s.len as usize], g_bytes[b..b + t.len as usize], "{}", t.name);
    }
    assert!(g.tensors.iter().all(|t| t.offset % 32 == 0));
    let f16 = parse_bytes(&read("gguf/silero_vad_16k.from-safetensors.f16.gguf")).unwrap();
    assert_eq!(f16.tensors.len(), 15);
    for t in &f16.tensors {
        let f = g.tensors.iter().find(|x| x.name == t.name).unwrap();
        assert_eq!(t.dtype, "F16");
        assert_eq!(t.shape, f.shape);
        assert_eq!(t.len * 2, f.len);
    }
}

#[test]
fn bug_log_b05_b06() {
    let e = err("malformed/B05a_gguf_string_len_2pow62.gguf");
    assert!(e.contains("string length 4611686018427387904 exceeds remaining 4 bytes at offset 0x"), "{e}");
    let e = err("malformed/B05b_gguf_key_len_2pow63.gguf");
    assert!(e.contains("key length 9223372036854775807 exceeds remaining 12 bytes at offset 0x"), "{e}");
    let e = err("malformed/B06a_gguf_array_count_2pow63.gguf");
    assert!(e.contains("array of 9223372036854775808 x 1-byte elements exceeds remaining 3 bytes"), "{e}");
    let e = err("malformed/B06b_gguf_n_kv_2pow63.gguf");
    assert!(e.contains("n_kv 9223372036854775808 exceeds what 0 remaining bytes can hold"), "{e}");
    let e = err("malformed/B06c_gguf_n_tensors_2pow63.gguf");
    assert!(e.contains("n_tensors 9223372036854775808 exceeds what 0 remaining bytes can hold"), "{e}");
    let e = err("malformed/derived_truncated_ggml-vocab-bert-bge.first64KiB.gguf");
    assert!(e.contains("truncated"), "{e}");
}

/// Build a GGUF v3 file from KV bytes and tensor-info bytes.
fn build(n_tensors: u64, n_kv: u64, body: &[u8], pad_to: usize) -> Vec<u8> {
    let mut v = b"GGUF".to_vec();
    v.extend(3u32.to_le_bytes());
    v.extend(n_tensors.to_le_bytes());
    v.extend(n_kv.to_le_bytes());
    v.extend_from_slice(body);
    v.resize(v.len().max(pad_to), 0);
    v
}
fn gstr(s: &str) -> Vec<u8> {
    let mut v = (s.len() as u64).to_le_bytes().to_vec();
    v.extend(s.as_bytes());
    v
}
fn tinfo(name: &str, ne: &[u64], ty: u32, off: u64) -> Vec<u8> {
    let mut v = gstr(name);
    v.extend((ne.len() as u32).to_le_bytes());
    for d in ne {
        v.extend(d.to_le_bytes());
    }
    v.extend(ty.to_le_bytes());
    v.extend(off.to_le_bytes());
    v
}

#[test]
fn synthetic_layouts() {
    // Q4_0 tensor 64x2 -> 2 blocks per row x 2 rows x 18 bytes = 72 bytes; shape reversed.
    let body = [tinfo("a", &[64, 2], 2, 0), tinfo("b", &[4], 0, 96)].concat();
    let h = parse_bytes(&build(2, 0, &body, 256)).unwrap();
    assert_eq!(h.tensors[0].shape, vec![2, 64]);
    assert_eq!(h.tensors[0].len, 72);
    assert_eq!(h.tensors[0].dtype, "Q4_0");
    assert_eq!(h.tensors[1].offset, h.data_start + 96);
    let overlap = [tinfo("a", &[64, 2], 2, 0), tinfo("b", &[4], 0, 64)].concat();
    assert!(parse_bytes(&build(2, 0, &overlap, 256)).unwrap_err().to_string().contains("overlaps"));
    let unaligned = tinfo("a", &[4], 0, 4);
    assert!(parse_bytes(&build(1, 0, &unaligned, 256)).unwrap_err().to_string().contains("alignment"));
    let scalar_q = tinfo("a", &[], 2, 0);
    assert!(parse_bytes(&build(1, 0, &scalar_q, 256)).unwrap_err().to_string().contains("block size 32"));
    let unknown = tinfo("a", &[4], 4, 0);
    assert!(parse_bytes(&build(1, 0, &unknown, 256)).unwrap_err().to_string().contains("ggml type 4"));
    let past = tinfo("a", &[1000], 0, 0);
    let e = parse_bytes(&build(1, 0, &past, 256)).unwrap_err().to_string();
    assert!(e.contains("file truncated: tensor 'a' ends at byte"), "{e}");
    let overflow = tinfo("a", &[1 << 32, 1 << 32, 4], 0, 0);
    assert!(parse_bytes(&build(1, 0, &overflow, 256)).unwrap_err().to_string().contains("overflow"));
    let dup = [tinfo("a", &[4], 0, 0), tinfo("a", &[4], 0, 32)].concat();
    assert!(parse_bytes(&build(2, 0, &dup, 256)).unwrap_err().to_string().contains("duplicate tensor name 'a'"));
    // Bad alignment value (3), and a valid one (64).
    let kv = [gstr("general.alignment"), 4u32.to_le_bytes().to_vec(), 3u32.to_le_bytes().to_vec()].concat();
    assert!(parse_bytes(&build(0, 1, &kv, 0)).unwrap_err().to_string().contains("power of two"));
    let kv = [gstr("general.alignment"), 4u32.to_le_bytes().to_vec(), 64u32.to_le_bytes().to_vec()].concat();
    assert_eq!(parse_bytes(&build(0, 1, &kv, 0)).unwrap().alignment, 64);
    // A dimension above i64::MAX (negative in ggml), even where the product is 0.
    let neg = tinfo("a", &[1 << 63, 0], 0, 0);
    let e = parse_bytes(&build(1, 0, &neg, 256)).unwrap_err().to_string();
    assert!(e.contains("tensor 'a' dimension 0 is 9223372036854775808, above the int64 limit"), "{e}");
    // Nested arrays beyond the depth cap.
    let mut nested = gstr("k");
    nested.extend(9u32.to_le_bytes());
    for _ in 0..20 {
        nested.extend(9u32.to_le_bytes());
        nested.extend(1u64.to_le_bytes());
    }
    let e = parse_bytes(&build(0, 1, &nested, 400)).unwrap_err().to_string();
    assert!(e.contains("nesting deeper than 8"), "{e}");
    // Big-endian / unsupported versions.
    let mut be = build(0, 0, &[], 0);
    be[4..8].copy_from_slice(&3u32.to_be_bytes());
    assert!(parse_bytes(&be).unwrap_err().to_string().contains("big-endian"));
}

#[test]
fn every_prefix_of_a_real_file_errors_without_panic() {
    let full = read("gguf/silero_vad_16k.from-safetensors.f16.gguf");
    let h = parse_bytes(&full).unwrap();
    for cut in (0..h.data_start as usize + 64).step_by(7) {
        assert!(parse_bytes(&full[..cut]).is_err(), "prefix {cut}");
    }
}

/// One `general.alignment` KV of value type `ty` with the raw value bytes `v`, then one
/// F32 tensor of 8 elements at offset 0, and 64 bytes of data.
fn with_alignment(ty: u32, v: &[u8]) -> Vec<u8> {
    let body = [gstr("general.alignment"), ty.to_le_bytes().to_vec(), v.to_vec(), tinfo("t", &[8], 0, 0)].concat();
    build(1, 1, &body, 0).into_iter().chain([0u8; 1024]).collect()
}

#[test]
fn alignment_must_be_a_bounded_uint32_power_of_two() {
    let e = |ty: u32, v: &[u8]| parse_bytes(&with_alignment(ty, v)).unwrap_err().to_string();
    // Wrong value types, including integers of the right value.
    let m = e(5, &32i32.to_le_bytes());
    assert!(m.contains("general.alignment has value type INT32 (5); it must be UINT32 (4)"), "{m}");
    let m = e(10, &32u64.to_le_bytes());
    assert!(m.contains("general.alignment has value type UINT64 (10); it must be UINT32 (4)"), "{m}");
    let m = e(0, &[32]);
    assert!(m.contains("general.alignment has value type UINT8 (0)"), "{m}");
    let m = e(8, &gstr("32"));
    assert!(m.contains("general.alignment has value type STRING (8)"), "{m}");
    let m = e(4, &0u32.to_le_bytes());
    assert!(m.contains("general.alignment is 0; it must be a nonzero power of two"), "{m}");
    let m = e(4, &48u32.to_le_bytes());
    assert!(m.contains("general.alignment 48 is not a power of two"), "{m}");
    let m = e(4, &(1u32 << 30).to_le_bytes());
    assert!(m.contains("general.alignment 1073741824 exceeds the limit of 1048576 bytes"), "{m}");
    let m = e(4, &(1u32 << 21).to_le_bytes());
    assert!(m.contains("exceeds the limit"), "{m}");
    // The bound itself and small powers of two are accepted.
    for a in [1u32, 32, 4096, 1 << 20] {
        let mut f = with_alignment(4, &a.to_le_bytes());
        f.resize(f.len() + (1 << 20) + 64, 0);
        assert_eq!(parse_bytes(&f).unwrap().alignment, u64::from(a));
    }
}
