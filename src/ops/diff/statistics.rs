//! The statistics of a changed tensor: both sides read through [`ChunkReader`] over the same
//! byte range, one chunk of each side at a time (a carry buffer holds an element split across
//! chunks), compared element by element and summed in f64 (see the parent module for what is
//! computed). Owns nothing else: which tensors are compared is decided in [`super::pairing`].
//! It never holds a whole tensor in memory.

use super::TensorChange;
use crate::Result;
use crate::formats::safetensors::dtype_bits;
use crate::formats::tensor::TensorInfo;
use crate::names::escape;
use crate::ops::reader::{ChunkReader, FileChunks};
use crate::store::chunks::ChunkRead;
use crate::store::envelope::Envelope;

/// How the elements of a dtype are read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    F64,
    F32,
    F16,
    BF16,
    /// Whole-byte elements compared as bytes (ints, bools, 8-bit floats).
    Bytes(usize),
    /// Sub-byte or block-quantized: bytes compared, no element count.
    Opaque,
}

impl Kind {
    pub(super) fn of(dtype: &str) -> Kind {
        match dtype {
            "F64" => Kind::F64,
            "F32" => Kind::F32,
            "F16" => Kind::F16,
            "BF16" => Kind::BF16,
            d => match dtype_bits(d) {
                Some(bits) if bits % 8 == 0 => Kind::Bytes((bits / 8) as usize),
                _ => Kind::Opaque,
            },
        }
    }

    fn size(self) -> usize {
        match self {
            Kind::F64 => 8,
            Kind::F32 => 4,
            Kind::F16 | Kind::BF16 => 2,
            Kind::Bytes(n) => n.max(1),
            Kind::Opaque => 1,
        }
    }

    fn is_float(self) -> bool {
        matches!(self, Kind::F64 | Kind::F32 | Kind::F16 | Kind::BF16)
    }

    /// Decodes one little-endian element (`e.len() == self.size()`).
    fn decode(self, e: &[u8]) -> f64 {
        match self {
            Kind::F64 => f64::from_le_bytes(e.try_into().unwrap_or([0; 8])),
            Kind::F32 => f32::from_le_bytes(e.try_into().unwrap_or([0; 4])) as f64,
            Kind::F16 => half::f16::from_le_bytes(e.try_into().unwrap_or([0; 2])).to_f64(),
            Kind::BF16 => half::bf16::from_le_bytes(e.try_into().unwrap_or([0; 2])).to_f64(),
            Kind::Bytes(_) | Kind::Opaque => 0.0,
        }
    }
}

/// Running sums over a tensor pair.
#[derive(Default)]
struct Acc {
    changed: u64,
    trailing_differs: bool,
    non_finite: u64,
    finite_pairs: u64,
    max_abs: f64,
    saa: f64,
    sbb: f64,
    sab: f64,
    sdd: f64,
}

impl Acc {
    fn feed(&mut self, kind: Kind, a: &[u8], b: &[u8]) {
        let es = kind.size();
        if a == b {
            if kind.is_float() {
                // Equal elements still count toward the norms.
                for ea in a.chunks_exact(es) {
                    let x = kind.decode(ea);
                    if x.is_finite() {
                        self.finite_pairs += 1;
                        self.saa += x * x;
                        self.sbb += x * x;
                        self.sab += x * x;
                    } else {
                        self.non_finite += 1;
                    }
                }
            }
            return;
        }
        for (ea, eb) in a.chunks_exact(es).zip(b.chunks_exact(es)) {
            if ea != eb {
                self.changed += 1;
            }
            if kind.is_float() {
                let (x, y) = (kind.decode(ea), kind.decode(eb));
                if x.is_finite() && y.is_finite() {
                    let d = y - x;
                    self.finite_pairs += 1;
                    self.max_abs = self.max_abs.max(d.abs());
                    self.saa += x * x;
                    self.sbb += y * y;
                    self.sab += x * y;
                    self.sdd += d * d;
                } else {
                    self.non_finite += 1;
                }
            }
        }
    }

    fn differs(&self) -> bool {
        self.changed > 0 || self.trailing_differs
    }
}

/// `Some(x)` when `x` is finite (JSON has no NaN or infinity).
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// Where compared tensors are read from: the chunk store and the envelope that opens its values.
pub(super) struct Source<'a, S: ChunkRead + ?Sized> {
    /// The chunk store.
    pub chunks: &'a S,
    /// Opens the chunks.
    pub env: Envelope<'a>,
}

/// Compares two tensors of the same name, dtype and shape, `ta` in the file laid out by `a` and
/// `tb` in `b`: `None` when their bytes are equal. Tensors whose chunks have the same ids are
/// equal without a chunk being opened; otherwise both are read and `bytes_decrypted` grows by
/// the bytes read of both sides.
///
/// Errors: [`crate::Error::Damaged`] (a chunk missing or failing authentication).
pub(super) fn compare<S: ChunkRead + ?Sized>(
    src: &Source<'_, S>,
    (a, ta): (&FileChunks<'_>, &TensorInfo),
    (b, tb): (&FileChunks<'_>, &TensorInfo),
    bytes_decrypted: &mut u64,
) -> Result<Option<TensorChange>> {
    if ta.len != tb.len {
        return Ok(Some(change(
            ta,
            Some(format!(
                "the tensor index gives {} bytes in A and {} in B for the same dtype and shape",
                ta.len, tb.len
            )),
        )));
    }
    let (pa, pb) = (a.pieces(ta.offset, ta.len), b.pieces(tb.offset, tb.len));
    let ids_equal = pa.len() == pb.len()
        && pa.iter().zip(&pb).all(|(x, y)| {
            a.file().chunks[x.chunk].id == b.file().chunks[y.chunk].id && x.skip == y.skip && x.take == y.take
        });
    if ids_equal {
        return Ok(None);
    }
    let kind = Kind::of(&ta.dtype);
    let mut ra = ChunkReader::new(src.chunks, src.env, a);
    ra.set_range(ta.offset, ta.len);
    let mut rb = ChunkReader::new(src.chunks, src.env, b);
    rb.set_range(tb.offset, tb.len);
    let acc = accumulate(kind, &mut ra, &mut rb, bytes_decrypted)?;
    Ok(acc.differs().then(|| statistics(kind, &acc, ta)))
}

/// A change of `t` with no statistics yet.
fn change(t: &TensorInfo, note: Option<String>) -> TensorChange {
    TensorChange {
        name: t.name.clone(),
        dtype: t.dtype.clone(),
        shape: t.shape.clone(),
        elements_changed: None,
        max_abs_diff: None,
        rel_l2: None,
        cosine: None,
        note,
    }
}

/// Feeds both readers' bytes, element-aligned, into one [`Acc`].
fn accumulate<S: ChunkRead + ?Sized>(
    kind: Kind,
    ra: &mut ChunkReader<'_, S>,
    rb: &mut ChunkReader<'_, S>,
    bytes_decrypted: &mut u64,
) -> Result<Acc> {
    let es = kind.size();
    let (mut ba, mut pos_a) = (Vec::new(), 0usize);
    let (mut bb, mut pos_b) = (Vec::new(), 0usize);
    let mut acc = Acc::default();
    loop {
        refill(ra, &mut ba, &mut pos_a, es, bytes_decrypted)?;
        refill(rb, &mut bb, &mut pos_b, es, bytes_decrypted)?;
        let (left_a, left_b) = (ba.len() - pos_a, bb.len() - pos_b);
        if left_a < es || left_b < es {
            // The end (a whole number of elements), or a ragged tail left by an inconsistent
            // index: compare the tail as bytes.
            if ba[pos_a..] != bb[pos_b..] {
                acc.trailing_differs = true;
            }
            return Ok(acc);
        }
        let n = left_a.min(left_b) / es * es;
        acc.feed(kind, &ba[pos_a..pos_a + n], &bb[pos_b..pos_b + n]);
        pos_a += n;
        pos_b += n;
    }
}

/// The change of `t` that `acc` describes.
fn statistics(kind: Kind, acc: &Acc, t: &TensorInfo) -> TensorChange {
    let mut c = change(t, None);
    if kind != Kind::Opaque {
        c.elements_changed = Some(acc.changed);
    }
    if !kind.is_float() {
        c.note = Some(match kind {
            Kind::Opaque => format!("bytes differ; no element statistics for dtype {}", escape(&t.dtype)),
            _ => format!("no numeric statistics for dtype {} (F32, F16, BF16, F64 only)", escape(&t.dtype)),
        });
        return c;
    }
    if acc.finite_pairs > 0 {
        c.max_abs_diff = finite(acc.max_abs);
        if acc.saa > 0.0 {
            c.rel_l2 = finite(acc.sdd.sqrt() / acc.saa.sqrt());
        }
        if acc.saa > 0.0 && acc.sbb > 0.0 {
            c.cosine = finite(acc.sab / (acc.saa.sqrt() * acc.sbb.sqrt())).map(|x| x.clamp(-1.0, 1.0));
        }
    }
    if acc.non_finite > 0 {
        c.note = Some(format!(
            "{} element(s) are NaN or infinite on one side; statistics cover the other {}",
            acc.non_finite, acc.finite_pairs
        ));
    } else if c.rel_l2.is_none() {
        c.note = Some("A is all zeros: no relative change".into());
    }
    c
}

/// Tops `buf` up (from `pos`) to at least `es` bytes from `r`, dropping consumed bytes; stops
/// short at the end of the range. Every byte read is counted in `bytes_decrypted`.
fn refill<S: ChunkRead + ?Sized>(
    r: &mut ChunkReader<'_, S>,
    buf: &mut Vec<u8>,
    pos: &mut usize,
    es: usize,
    bytes_decrypted: &mut u64,
) -> Result<()> {
    while buf.len() - *pos < es {
        let Some(next) = r.next_owned()? else {
            return Ok(());
        };
        *bytes_decrypted += next.len() as u64;
        if *pos == buf.len() {
            *buf = next;
        } else {
            buf.drain(..*pos);
            buf.extend_from_slice(&next);
        }
        *pos = 0;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_in_f64() {
        let enc = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let mut acc = Acc::default();
        acc.feed(Kind::F32, &enc(&[1.0, 2.0, 3.0]), &enc(&[1.0, 2.0, 4.0]));
        assert_eq!(acc.changed, 1);
        assert_eq!(acc.max_abs, 1.0);
        assert!((acc.sdd.sqrt() / acc.saa.sqrt() - 1.0 / 14f64.sqrt()).abs() < 1e-12);
        let h = |x: f32| half::f16::from_f32(x).to_le_bytes();
        assert_eq!(Kind::F16.decode(&h(0.5)), 0.5);
        let bf = half::bf16::from_f32(-2.0).to_le_bytes();
        assert_eq!(Kind::BF16.decode(&bf), -2.0);
        // Non-finite values are counted, not folded into the sums.
        let mut acc = Acc::default();
        acc.feed(Kind::F32, &enc(&[f32::NAN, 1.0]), &enc(&[0.0, 1.0]));
        assert_eq!((acc.non_finite, acc.finite_pairs), (1, 1));
        assert_eq!(Kind::of("Q4_0").size(), 1);
        assert!(Kind::of("I64") == Kind::Bytes(8));
        // A short element never panics.
        assert_eq!(Kind::F32.decode(&[1, 2]), 0.0);
    }
}
