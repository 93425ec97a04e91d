//! The ONNX messages the walker descends into (`ModelProto`, `GraphProto`, `NodeProto`,
//! `AttributeProto`, `FunctionProto`, `TrainingInfoProto`, `TensorProto`,
//! `SparseTensorProto`, `StringStringEntryProto`), by the field numbers of `onnx.proto`, and the
//! tensors they list.
//!
//! Payloads are skipped, never read; rank is held to [`MAX_RANK`] and nesting to
//! [`MAX_DEPTH`](super::MAX_DEPTH) (through `wire`). It must never read a field through anything
//! but the bounded `wire` reader.

use std::io::{Read, Seek};

use super::wire::{Val, Walker};
use super::*;

impl<R: Read + Seek> Walker<R> {
    pub(super) fn model_proto(&mut self, end: u64) -> Result<(), FormatError> {
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
