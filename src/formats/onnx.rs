//! ONNX model walker: a minimal, bounded protobuf wire-format reader over
//! `ModelProto` that lists tensors (initializers, sparse initializers and tensors
//! inside node attributes, including nested subgraphs, functions and training
//! graphs) and finds externally stored data and its `location`.
//!
//! Spec: <https://github.com/onnx/onnx/blob/main/onnx/onnx.proto> (field numbers)
//! and <https://protobuf.dev/programming-guides/encoding/> (wire format).
//!
//! Limits: message nesting depth <= [`MAX_DEPTH`]; every length is bounded by the
//! enclosing message and the file; groups (wire types 3/4) and malformed varints
//! are refused; strings kept (names, external-data keys/values) <= [`MAX_STRING`]
//! bytes; rank <= [`MAX_RANK`]. Tensor payloads (`raw_data` etc.) are skipped with
//! seeks, so memory is O(number of tensors), time O(file size).

use super::tensor::{Bounded, FormatError, esc};
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek};

const FMT: &str = "ONNX";
/// Maximum protobuf message nesting depth (graphs, nodes, attributes, tensors).
pub const MAX_DEPTH: u32 = 32;
/// Maximum length in bytes of a string that is kept (names, producer name, opset domain,
/// external-data keys and values): 64 KiB.
pub const MAX_STRING: u64 = 64 * 1024;
/// Maximum number of `dims` per tensor.
pub const MAX_RANK: usize = 64;

/// Where a tensor was found.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorSite {
    /// `GraphProto.initializer` (field 5) of the main graph or a subgraph.
    Initializer,
    /// The `values` or `indices` tensor of a `GraphProto.sparse_initializer` (field 15).
    SparseInitializer,
    /// A tensor-valued node attribute (e.g. `Constant.value`).
    Attribute,
}

/// External data reference of a tensor (`TensorProto.external_data`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ExternalData {
    /// The `location` entry as written (a path relative to the model's directory); empty if absent.
    pub location: String,
    /// The `offset` entry: byte offset of the data within the external file, if given.
    pub offset: Option<u64>,
    /// The `length` entry: length of the data in bytes, if given.
    pub length: Option<u64>,
    /// All key/value entries as written.
    pub entries: Vec<(String, String)>,
}

/// One tensor found in the model.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct OnnxTensor {
    /// `TensorProto.name` (field 8); empty if absent.
    pub name: String,
    /// safetensors-style dtype name (F32, I64, F16 ...), `UNKNOWN(n)` otherwise.
    pub dtype: String,
    /// `TensorProto.dims` (field 1), in the order written.
    pub dims: Vec<i64>,
    /// Where in the model the tensor was found.
    pub site: TensorSite,
    /// True for initializers / sparse initializers of the main graph.
    pub top_level: bool,
    /// `data_location == EXTERNAL` (field 14 == 1).
    pub data_location_external: bool,
    /// `TensorProto.external_data` (field 13); `Some` if any entry is present or the data
    /// location is external.
    pub external: Option<ExternalData>,
}

/// Summary of an ONNX model.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct OnnxModel {
    /// `ModelProto.ir_version` (field 1), if present.
    pub ir_version: Option<u64>,
    /// `ModelProto.producer_name` (field 2), escaped with [`esc`], if present.
    pub producer_name: Option<String>,
    /// (domain, version) pairs of `opset_import`.
    pub opsets: Vec<(String, i64)>,
    /// Every tensor found (initializers, sparse initializers, attributes, subgraphs), in file order.
    pub tensors: Vec<OnnxTensor>,
}

impl OnnxModel {
    /// Initializers of the main graph.
    pub fn initializers(&self) -> impl Iterator<Item = &OnnxTensor> {
        self.tensors.iter().filter(|t| t.top_level && t.site == TensorSite::Initializer)
    }
    /// Tensors stored outside the model file.
    pub fn external_tensors(&self) -> impl Iterator<Item = &OnnxTensor> {
        self.tensors.iter().filter(|t| t.data_location_external || t.external.is_some())
    }
}

/// ONNX `TensorProto.DataType` -> dtype name.
pub fn dtype_name(t: u64) -> String {
    let s = match t {
        1 => "F32",
        2 => "U8",
        3 => "I8",
        4 => "U16",
        5 => "I16",
        6 => "I32",
        7 => "I64",
        8 => "STRING",
        9 => "BOOL",
        10 => "F16",
        11 => "F64",
        12 => "U32",
        13 => "U64",
        14 => "C64",
        15 => "C128",
        16 => "BF16",
        17 => "F8_E4M3",
        18 => "F8_E4M3FNUZ",
        19 => "F8_E5M2",
        20 => "F8_E5M2FNUZ",
        21 => "U4",
        22 => "I4",
        23 => "F4",
        24 => "F8_E8M0",
        25 => "U2",
        26 => "I2",
        0 => "UNDEFINED",
        n => return format!("UNKNOWN({n})"),
    };
    s.to_string()
}

/// True if an external-data `location` could point outside the model directory:
/// empty, NUL, absolute (`/`, `\`), Windows drive or UNC paths, any `:`, or a
/// `..` that climbs above the start after normalising `.`/`..` components.
pub fn external_data_escapes(location: &str) -> bool {
    if location.is_empty() || location.contains('\0') || location.contains(':') {
        return true;
    }
    if location.starts_with('/') || location.starts_with('\\') {
        return true;
    }
    let mut depth: usize = 0;
    for comp in location.split(['/', '\\']) {
        match comp {
            "" | "." => {}
            ".." => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return true,
            },
            _ => depth += 1,
        }
    }
    depth == 0 // a location that normalises to the directory itself is not a file
}

/// Error for the first tensor whose external-data location escapes the model directory.
pub fn check_external_data(model: &OnnxModel) -> Result<(), FormatError> {
    for t in model.external_tensors() {
        let loc = t.external.as_ref().map(|e| e.location.as_str()).unwrap_or("");
        if external_data_escapes(loc) {
            return Err(FormatError::ExternalDataEscapes { location: esc(loc) });
        }
    }
    Ok(())
}

/// Walk an ONNX `ModelProto` read from offset 0 of `r`.
pub fn parse<R: Read + Seek>(r: &mut R, file_len: u64) -> Result<OnnxModel, FormatError> {
    let mut w = Walker { b: Bounded::new(r, file_len)?, model: OnnxModel::default() };
    w.model_proto(file_len)?;
    Ok(w.model)
}

enum Val {
    Varint(u64),
    /// Length-delimited payload starting at the current position, ending at `end`.
    Len(u64),
    Fixed,
}

struct Walker<R: Read + Seek> {
    b: Bounded<R>,
    model: OnnxModel,
}

impl<R: Read + Seek> Walker<R> {
    fn err(&self, msg: String) -> FormatError {
        FormatError::invalid(FMT, msg)
    }

    fn varint(&mut self, end: u64) -> Result<u64, FormatError> {
        let start = self.b.pos;
        let mut v: u64 = 0;
        for i in 0..10 {
            if self.b.pos >= end {
                return Err(
                    self.err(format!("varint at offset 0x{start:x} runs past the end of its message at 0x{end:x}"))
                );
            }
            let byte = self.b.u8("varint")?;
            if i == 9 && byte > 1 {
                return Err(self.err(format!("varint at offset 0x{start:x} overflows 64 bits")));
            }
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err(format!("varint at offset 0x{start:x} is longer than 10 bytes")))
    }

    /// Next field of a message ending at `end`, or `None` at the end.
    fn next(&mut self, end: u64) -> Result<Option<(u64, Val)>, FormatError> {
        if self.b.pos >= end {
            return Ok(None);
        }
        let off = self.b.pos;
        let tag = self.varint(end)?;
        let (field, wire) = (tag >> 3, tag & 7);
        if field == 0 {
            return Err(self.err(format!("field number 0 at offset 0x{off:x}")));
        }
        let val = match wire {
            0 => Val::Varint(self.varint(end)?),
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                self.skip_to(self.b.pos + n, end, off)?;
                Val::Fixed
            }
            2 => {
                let len_off = self.b.pos;
                let len = self.varint(end)?;
                let rem = end - self.b.pos;
                if len > rem {
                    return Err(FormatError::LengthExceedsRemaining {
                        what: format!("field {field} length"),
                        len,
                        remaining: rem,
                        offset: len_off,
                    });
                }
                Val::Len(self.b.pos + len)
            }
            3 | 4 => {
                return Err(self.err(format!("protobuf group (wire type {wire}) at offset 0x{off:x} is not supported")));
            }
            _ => return Err(self.err(format!("invalid wire type {wire} at offset 0x{off:x}"))),
        };
        Ok(Some((field, val)))
    }

    fn skip_to(&mut self, target: u64, end: u64, off: u64) -> Result<(), FormatError> {
        if target > end {
            return Err(FormatError::LengthExceedsRemaining {
                what: "fixed-size field".into(),
                len: target - self.b.pos,
                remaining: end - self.b.pos,
                offset: off,
            });
        }
        let n = target - self.b.pos;
        self.b.skip(n, "field length", off)
    }

    /// Skip the rest of a length-delimited value or finish a sub-message.
    fn skip_val(&mut self, v: &Val) -> Result<(), FormatError> {
        if let Val::Len(end) = *v {
            let off = self.b.pos;
            self.skip_to(end, end, off)?;
        }
        Ok(())
    }

    fn string(&mut self, end: u64, what: &str) -> Result<String, FormatError> {
        let off = self.b.pos;
        let len = end - off;
        if len > MAX_STRING {
            return Err(self.err(format!("{what} of {len} bytes at offset 0x{off:x} exceeds limit {MAX_STRING}")));
        }
        let bytes = self.b.bytes(len, what, off)?;
        String::from_utf8(bytes).map_err(|e| {
            FormatError::invalid(
                FMT,
                format!("invalid UTF-8 in {what} at byte {}", off + e.utf8_error().valid_up_to() as u64),
            )
        })
    }

    fn enter(&self, depth: u32) -> Result<u32, FormatError> {
        if depth >= MAX_DEPTH {
            return Err(self.err(format!("message nesting deeper than {MAX_DEPTH} at offset 0x{:x}", self.b.pos)));
        }
        Ok(depth + 1)
    }

    fn model_proto(&mut self, end: u64) -> Result<(), FormatError> {
        while let Some((f, v)) = self.next(end)? {
            match (f, &v) {
                (1, Val::Varint(x)) => self.model.ir_version = Some(*x),
                (2, Val::Len(e)) => self.model.producer_name = Some(esc(&self.string(*e, "producer_name")?)),
                (7, Val::Len(e)) => self.graph(*e, 1, true)?,
                (8, Val::Len(e)) => self.opset(*e)?,
                (20, Val::Len(e)) => self.generic(*e, 1, &[(1, Msg::Graph), (2, Msg::Graph)])?,
                (25, Val::Len(e)) => self.generic(*e, 1, &[(7, Msg::Node)])?,
                _ => self.skip_val(&v)?,
            }
        }
        Ok(())
    }

    fn opset(&mut self, end: u64) -> Result<(), FormatError> {
        let (mut domain, mut version) = (String::new(), 0i64);
        while let Some((f, v)) = self.next(end)? {
            match (f, &v) {
                (1, Val::Len(e)) => domain = esc(&self.string(*e, "opset domain")?),
                (2, Val::Varint(x)) => version = *x as i64,
                _ => self.skip_val(&v)?,
            }
        }
        self.model.opsets.push((domain, version));
        Ok(())
    }

    fn graph(&mut self, end: u64, depth: u32, top: bool) -> Result<(), FormatError> {
        let d = self.enter(depth)?;
        while let Some((f, v)) = self.next(end)? {
            match (f, &v) {
                (1, Val::Len(e)) => self.generic(*e, d, &[(5, Msg::Attribute)])?,
                (5, Val::Len(e)) => self.tensor(*e, d, TensorSite::Initializer, top)?,
                (15, Val::Len(e)) => self.sparse(*e, d, TensorSite::SparseInitializer, top)?,
                _ => self.skip_val(&v)?,
            }
        }
        Ok(())
    }

    /// Walk a message whose listed fields are sub-messages of the given kinds.
    fn generic(&mut self, end: u64, depth: u32, fields: &[(u64, Msg)]) -> Result<(), FormatError> {
        let d = self.enter(depth)?;
        while let Some((f, v)) = self.next(end)? {
            let kind = fields.iter().find(|(n, _)| *n == f).map(|(_, k)| *k);
            match (kind, &v) {
                (Some(Msg::Graph), Val::Len(e)) => self.graph(*e, d, false)?,
                (Some(Msg::Node), Val::Len(e)) => self.generic(*e, d, &[(5, Msg::Attribute)])?,
                (Some(Msg::Attribute), Val::Len(e)) => self.attribute(*e, d)?,
                _ => self.skip_val(&v)?,
            }
        }
        Ok(())
    }

    fn attribute(&mut self, end: u64, depth: u32) -> Result<(), FormatError> {
        let d = self.enter(depth)?;
        while let Some((f, v)) = self.next(end)? {
            match (f, &v) {
                (5 | 10, Val::Len(e)) => self.tensor(*e, d, TensorSite::Attribute, false)?,
                (6 | 11, Val::Len(e)) => self.graph(*e, d, false)?,
                (22 | 23, Val::Len(e)) => self.sparse(*e, d, TensorSite::Attribute, false)?,
                _ => self.skip_val(&v)?,
            }
        }
        Ok(())
    }

    fn sparse(&mut self, end: u64, depth: u32, site: TensorSite, top: bool) -> Result<(), FormatError> {
        let d = self.enter(depth)?;
        while let Some((f, v)) = self.next(end)? {
            match (f, &v) {
                (1 | 2, Val::Len(e)) => self.tensor(*e, d, site, top)?,
                _ => self.skip_val(&v)?,
            }
        }
        Ok(())
    }

    fn tensor(&mut self, end: u64, depth: u32, site: TensorSite, top: bool) -> Result<(), FormatError> {
        let d = self.enter(depth)?;
        let mut t = OnnxTensor {
            name: String::new(),
            dtype: dtype_name(0),
            dims: Vec::new(),
            site,
            top_level: top,
            data_location_external: false,
            external: None,
        };
        let mut entries = Vec::new();
        while let Some((f, v)) = self.next(end)? {
            match (f, &v) {
                (1, Val::Varint(x)) => self.push_dim(&mut t, *x)?,
                (1, Val::Len(e)) => {
                    while self.b.pos < *e {
                        let x = self.varint(*e)?;
                        self.push_dim(&mut t, x)?;
                    }
                }
                (2, Val::Varint(x)) => t.dtype = dtype_name(*x),
                (8, Val::Len(e)) => t.name = self.string(*e, "tensor name")?,
                (13, Val::Len(e)) => entries.push(self.entry(*e, d)?),
                (14, Val::Varint(x)) => t.data_location_external = *x == 1,
                _ => self.skip_val(&v)?,
            }
        }
        if t.data_location_external || !entries.is_empty() {
            let find = |k: &str| entries.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.clone());
            let num = |k: &str| -> Result<Option<u64>, FormatError> {
                match find(k) {
                    None => Ok(None),
                    Some(s) => s.trim().parse::<u64>().map(Some).map_err(|_| {
                        FormatError::invalid(
                            FMT,
                            format!(
                                "external_data {k} '{}' of tensor '{}' is not a non-negative integer",
                                esc(&s),
                                esc(&t.name)
                            ),
                        )
                    }),
                }
            };
            let (offset, length) = (num("offset")?, num("length")?);
            t.external = Some(ExternalData { location: find("location").unwrap_or_default(), offset, length, entries });
        }
        self.model.tensors.push(t);
        Ok(())
    }

    fn push_dim(&self, t: &mut OnnxTensor, x: u64) -> Result<(), FormatError> {
        if t.dims.len() >= MAX_RANK {
            return Err(self.err(format!("tensor has more than {MAX_RANK} dims at offset 0x{:x}", self.b.pos)));
        }
        t.dims.push(x as i64);
        Ok(())
    }

    fn entry(&mut self, end: u64, depth: u32) -> Result<(String, String), FormatError> {
        self.enter(depth)?;
        let (mut k, mut val) = (String::new(), String::new());
        while let Some((f, v)) = self.next(end)? {
            match (f, &v) {
                (1, Val::Len(e)) => k = self.string(*e, "external_data key")?,
                (2, Val::Len(e)) => val = self.string(*e, "external_data value")?,
                _ => self.skip_val(&v)?,
            }
        }
        Ok((k, val))
    }
}

#[derive(Clone, Copy)]
enum Msg {
    Graph,
    Node,
    Attribute,
}

#[cfg(test)]
mod tests {
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
            assert_eq!(
                (ext[0].name.as_str(), ext[0].dtype.as_str(), ext[0].dims.as_slice()),
                ("W", "F32", &[4i64][..])
            );
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
}
