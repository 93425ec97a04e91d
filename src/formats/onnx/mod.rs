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
//!
//! This file owns the model's public shape and the external-data rules; `wire` reads the
//! protobuf wire format, `walk` the ONNX messages. None of them may read past the enclosing
//! message or the file, nor allocate what a length merely claims.

use super::tensor::{Bounded, FormatError, esc};
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek};

mod walk;
mod wire;

use wire::Walker;

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

#[cfg(test)]
mod tests;
