//! Tests of the safetensors parser: real files from the corpus and synthetic headers and
//! layouts.

use super::*;
use crate::formats::tensor::test_util::read;
use std::io::Cursor;

fn parse_bytes(b: &[u8]) -> Result<SafetensorsHeader, FormatError> {
    parse(&mut Cursor::new(b), b.len() as u64)
}
fn err(rel: &str) -> String {
    let t = std::time::Instant::now();
    let e = parse_bytes(&read(rel)).expect_err(rel).to_string();
    assert!(t.elapsed().as_millis() < 500, "{rel} took {:?}", t.elapsed());
    assert!(!e.contains('\n'), "{e}");
    e
}
fn build(json: &str, data: usize) -> Vec<u8> {
    let mut v = (json.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(json.as_bytes());
    v.extend(std::iter::repeat_n(0u8, data));
    v
}

#[test]
fn minilm_real() {
    let path = crate::formats::tensor::test_util::corpus().join("safetensors/all-MiniLM-L6-v2.model.safetensors");
    let mut f = std::fs::File::open(&path).unwrap();
    let len = f.metadata().unwrap().len();
    let h = parse(&mut f, len).unwrap();
    assert_eq!(h.header_len, 11_408);
    assert_eq!(h.data_start, 11_416);
    assert_eq!(h.tensors.len(), 104);
    assert_eq!(h.tensors.iter().filter(|t| t.dtype == "F32").count(), 103);
    assert_eq!(h.tensors.iter().filter(|t| t.dtype == "I64").count(), 1);
    assert_eq!(h.metadata.get("format").map(String::as_str), Some("pt"));
    assert_eq!(h.tensors[0].offset, h.data_start);
    let last = h.tensors.last().unwrap();
    assert_eq!(last.offset + last.len, len);
    for w in h.tensors.windows(2) {
        assert_eq!(w[0].offset + w[0].len, w[1].offset);
    }
    for t in &h.tensors {
        assert_eq!(t.param_count().unwrap() * dtype_bits(&t.dtype).unwrap() / 8, t.len);
    }
}

#[test]
fn silero_variants() {
    let a = parse_bytes(&read("safetensors/silero_vad_16k.safetensors")).unwrap();
    assert_eq!(a.tensors.len(), 15);
    assert!(a.tensors.iter().all(|t| t.dtype == "F32"));
    assert!(a.metadata.is_empty());
    let b = parse_bytes(&read("safetensors/silero_vad_16k.reheadered.safetensors")).unwrap();
    assert_eq!(b.tensors.len(), 15);
    assert_eq!(b.metadata.get("format").map(String::as_str), Some("np"));
    let c = parse_bytes(&read("safetensors/silero_vad_16k.one-tensor-changed.safetensors")).unwrap();
    let bias = c.tensors.iter().find(|t| t.name == "final_conv.bias").unwrap();
    assert_eq!(bias.shape, vec![1]);
    let mut names_a: Vec<_> = a.tensors.iter().map(|t| (&t.name, &t.shape, t.len)).collect();
    let mut names_b: Vec<_> = b.tensors.iter().map(|t| (&t.name, &t.shape, t.len)).collect();
    names_a.sort();
    names_b.sort();
    assert_eq!(names_a, names_b);
}

#[test]
fn bug_log_b01_b02_b04() {
    let e = err("malformed/B01_safetensors_duplicate_key.safetensors");
    assert!(e.contains("duplicate tensor name 'key00' in safetensors header"), "{e}");
    let e = err("malformed/B02a_safetensors_hdrlen_u64max.safetensors");
    assert!(e.contains("header length 18446744073709551615 exceeds file size 10"), "{e}");
    let e = err("malformed/B02b_safetensors_hdrlen_200MB_file_tiny.safetensors");
    assert!(e.contains("header length 209715200 exceeds file size 66"), "{e}");
    let e = err("malformed/B02c_safetensors_truncated_silero_first4096.safetensors");
    assert!(e.contains("file truncated: tensor '") && e.contains("file has 4096"), "{e}");
    let e = err("malformed/B02d_safetensors_is_git_lfs_pointer.safetensors");
    assert!(e.contains("looks like a Git LFS pointer, not safetensors"), "{e}");
    let e = err("malformed/B04a_safetensors_shape_exceeds_offsets.safetensors");
    assert!(e.contains("size mismatch for tensor 't'") && e.contains("4000000") && e.contains("span 4 bytes"), "{e}");
    let e = err("malformed/B04b_safetensors_reversed_offsets.safetensors");
    assert!(e.contains("reversed data_offsets [8, 0]"), "{e}");
    let e = err("malformed/B04c_safetensors_header_is_json_array.safetensors");
    assert!(e.contains("header must be a JSON object"), "{e}");
    let e = err("malformed/B04d_safetensors_header_not_utf8.safetensors");
    assert!(e.contains("invalid UTF-8 in header at byte 3"), "{e}");
    let e = err("malformed/B04e_safetensors_shape_product_overflow.safetensors");
    assert!(e.contains("overflows"), "{e}");
    let e = err("malformed/B04f_safetensors_unknown_dtype_negative_offset.safetensors");
    assert!(e.contains("negative data offset -4") || e.contains("unknown dtype 'F33'"), "{e}");
}

#[test]
fn layout_errors() {
    let two = |a: &str, b: &str| {
        format!(
            r#"{{"a":{{"dtype":"U8","shape":[4],"data_offsets":{a}}},"b":{{"dtype":"U8","shape":[4],"data_offsets":{b}}}}}"#
        )
    };
    let e = parse_bytes(&build(&two("[0,4]", "[2,6]"), 6)).unwrap_err().to_string();
    assert!(e.contains("overlaps"), "{e}");
    let e = parse_bytes(&build(&two("[0,4]", "[6,10]"), 10)).unwrap_err().to_string();
    assert!(e.contains("hole of 2 bytes"), "{e}");
    let e = parse_bytes(&build(&two("[0,4]", "[4,8]"), 9)).unwrap_err().to_string();
    assert!(e.contains("1 trailing bytes"), "{e}");
    let ok = parse_bytes(&build(&two("[4,8]", "[0,4]"), 8)).unwrap();
    assert_eq!(ok.tensors[0].name, "b");
    let e = parse_bytes(&build(r#"{"t":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, 4)).unwrap_err();
    assert!(e.to_string().contains("non-integer shape dimension"), "{e}");
    let e = parse_bytes(&build(r#"{"":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}"#, 0)).unwrap_err();
    assert!(e.to_string().contains("empty tensor name"), "{e}");
    let e =
        parse_bytes(&build("{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0)).unwrap_err();
    assert!(e.to_string().contains("NUL"), "{e}");
    let e = parse_bytes(&build(r#"{"__metadata__":{"a":1}}"#, 0)).unwrap_err();
    assert!(e.to_string().contains("__metadata__ must be a string->string map"), "{e}");
    let e = parse_bytes(&build(r#"{"t":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#, 2)).unwrap_err();
    assert!(e.to_string().contains("whole number of bytes"), "{e}");
    assert!(parse_bytes(&build(r#"{"t":{"dtype":"F4","shape":[4],"data_offsets":[0,2]}}   "#, 2)).is_ok());
    assert!(parse_bytes(&build("{}", 0)).unwrap().tensors.is_empty());
    let e = parse_bytes(&[1, 0, 0]).unwrap_err().to_string();
    assert!(e.contains("file truncated"), "{e}");
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let e = parse_bytes(&build(&format!(r#"{{"__metadata__":{deep}}}"#), 0)).unwrap_err();
    assert!(e.to_string().contains("__metadata__"), "{e}");
}

#[test]
fn header_cap_is_named() {
    // Claimed length above the cap but within the (claimed) file size.
    let mut b = (MAX_HEADER_LEN + 1).to_le_bytes().to_vec();
    b.push(b'{');
    let e = parse(&mut Cursor::new(&b), MAX_HEADER_LEN + 100).unwrap_err().to_string();
    assert!(e.contains("100000000-byte header cap"), "{e}");
}
