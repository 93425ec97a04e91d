//! Tests of the ONNX walker: real models, hostile protobuf, external-data escape rules, deep
//! nesting.

use super::*;
use crate::formats::tensor::test_util::read;
use std::io::Cursor;

fn parse_bytes(b: &[u8]) -> Result<OnnxModel, FormatError> {
    parse(&mut Cursor::new(b), b.len() as u64)
}

#[test]
fn real_models() {
    let m = parse_bytes(&read("onnx/silero_vad_half.onnx")).unwrap();
    assert_eq!((m.ir_version, m.producer_name.as_deref()), (Some(8), Some("pytorch")));
    assert_eq!(m.initializers().count(), 15);
    let m = parse_bytes(&read("onnx/magika_standard_v3_3.model.onnx")).unwrap();
    assert_eq!(m.initializers().count(), 36);
    let kinds: std::collections::BTreeSet<_> = m.initializers().map(|t| t.dtype.clone()).collect();
    assert_eq!(kinds, ["F32", "I32", "I64"].iter().map(|s| s.to_string()).collect());
    assert!(m.opsets.contains(&("ai.onnx.ml".to_string(), 2)));
    let m = parse_bytes(&read("onnx/onnx-backend_light_resnet50.onnx")).unwrap();
    assert_eq!((m.ir_version, m.initializers().count()), (Some(3), 269));
    let m = parse_bytes(&read("onnx/onnx-backend_test_Conv2d.model.onnx")).unwrap();
    assert_eq!(m.initializers().count(), 2);
    let m = parse_bytes(&read("onnx/onnx-backend_test_single_relu.model.onnx")).unwrap();
    assert_eq!((m.ir_version, m.tensors.len()), (Some(4), 0));
    let m = parse_bytes(&read("onnx/silero_vad.onnx")).unwrap();
    assert_eq!(m.initializers().count(), 0);
    assert!(m.tensors.iter().any(|t| !t.top_level), "weights live in subgraphs / Constant attributes");
    for f in [
        "silero_vad.onnx",
        "silero_vad_half.onnx",
        "magika_standard_v3_3.model.onnx",
        "onnx-backend_light_resnet50.onnx",
    ] {
        let m = parse_bytes(&read(&format!("onnx/{f}"))).unwrap();
        assert_eq!(m.external_tensors().count(), 0, "{f}");
        check_external_data(&m).unwrap();
    }
}

#[test]
fn bug_log_b13() {
    for f in ["B13a_onnx_external_data_relative_traversal.onnx", "B13b_onnx_external_data_absolute_path.onnx"] {
        let m = parse_bytes(&read(&format!("malformed/{f}"))).unwrap();
        let ext: Vec<_> = m.external_tensors().collect();
        assert_eq!(ext.len(), 1, "{f}");
        assert_eq!((ext[0].name.as_str(), ext[0].dtype.as_str(), ext[0].dims.as_slice()), ("W", "F32", &[4i64][..]));
        let x = ext[0].external.as_ref().unwrap();
        assert_eq!((x.offset, x.length), (Some(0), Some(16)), "{f}");
        assert!(external_data_escapes(&x.location), "{f}: {}", x.location);
        let e = check_external_data(&m).unwrap_err().to_string();
        assert!(e.starts_with("external data location '") && e.ends_with("' escapes model directory"), "{e}");
    }
}

#[test]
fn escape_rules() {
    for bad in [
        "",
        "/etc/passwd",
        "\\\\server\\share\\w",
        "C:\\w.bin",
        "c:w",
        "../w",
        "a/../../w",
        "a\\..\\..\\w",
        "w\0",
        ".",
        "a/..",
    ] {
        assert!(external_data_escapes(bad), "{bad:?}");
    }
    for ok in ["w.bin", "weights/w.bin", "./w.bin", "a/../w.bin", "a//b"] {
        assert!(!external_data_escapes(ok), "{ok:?}");
    }
}

#[test]
fn hostile_protobuf() {
    // Length larger than the file.
    let e = parse_bytes(&[0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f]).unwrap_err().to_string();
    assert!(e.contains("field 7 length 4294967295 exceeds remaining 0 bytes"), "{e}");
    // Group wire type, bad varint, field 0.
    assert!(parse_bytes(&[0x0b]).unwrap_err().to_string().contains("group"));
    assert!(parse_bytes(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]).is_err());
    assert!(parse_bytes(&[0x00]).is_err());
    // Deep nesting: graph -> node -> attribute(g) -> graph -> ...
    assert!(parse_bytes(&nested_graphs(5)).is_ok());
    let e = parse_bytes(&nested_graphs(200)).unwrap_err().to_string();
    assert!(e.contains("nesting deeper than 32"), "{e}");
    // Every prefix of a real model errors or parses, never panics.
    let full = read("onnx/onnx-backend_test_Conv2d.model.onnx");
    for cut in 0..full.len() {
        let _ = parse_bytes(&full[..cut]);
    }
}

fn nested_graphs(levels: usize) -> Vec<u8> {
    let mut deep: Vec<u8> = Vec::new();
    for _ in 0..levels {
        let mut attr = vec![0x32]; // AttributeProto.g (6)
        push_varint(&mut attr, deep.len() as u64);
        attr.extend(&deep);
        let mut node = vec![0x2a]; // NodeProto.attribute (5)
        push_varint(&mut node, attr.len() as u64);
        node.extend(&attr);
        let mut graph = vec![0x0a]; // GraphProto.node (1)
        push_varint(&mut graph, node.len() as u64);
        graph.extend(&node);
        deep = graph;
    }
    let mut model = vec![0x3a]; // ModelProto.graph (7)
    push_varint(&mut model, deep.len() as u64);
    model.extend(&deep);
    model
}

fn push_varint(v: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        v.push((x as u8) | 0x80);
        x >>= 7;
    }
    v.push(x as u8);
}
