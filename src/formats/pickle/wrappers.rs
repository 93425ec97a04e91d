//! Compression wrappers and NumPy `.npy` containers around pickles.
//!
//! Owns: sniffing by magic and bounded decompression of gzip (`1f 8b`),
//! bzip2 (`BZh1`..`BZh9`), xz (`fd 37 7a 58 5a 00`), lzma-alone (properties
//! byte `0x5d`, as joblib's `.lzma` writes) and zlib (`78 01/5e/9c/da`, as
//! joblib `compress=` writes); and parsing the `.npy` header to find the
//! pickle payload of object-dtype arrays.
//!
//! Specs: RFC 1952 (gzip), RFC 1950 (zlib), the xz file format
//! (<https://tukaani.org/xz/xz-file-format.txt>), the lzma-alone header
//! (props, u32 dict size, u64 size), the NumPy `.npy` format
//! (<https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>).
//!
//! Limits: output is capped by the caller's byte budget and by a ratio cap
//! (output > ratio × input, once past [`RATIO_FLOOR`] bytes); hitting a cap
//! is an error naming the cap. Decoders run under `catch_unwind` as a
//! defence in depth. `.npy` object detection looks for a type string of
//! kind `O` in `descr` (a field *named* like `'O...'` in a structured dtype
//! also matches; that only makes the scan stricter).

use std::io::{self, Read, Write};

/// Output size below which the ratio cap is not applied.
pub const RATIO_FLOOR: u64 = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wrapper {
    Gzip,
    Bzip2,
    Xz,
    LzmaAlone,
    Zlib,
}

impl Wrapper {
    pub fn label(self) -> &'static str {
        match self {
            Wrapper::Gzip => "gzip",
            Wrapper::Bzip2 => "bzip2",
            Wrapper::Xz => "xz",
            Wrapper::LzmaAlone => "lzma",
            Wrapper::Zlib => "zlib",
        }
    }
    /// Whether these magic bytes are also a plausible pickle opening
    /// (`B` = BINBYTES, `]` = EMPTY_LIST), so both readings must be scanned.
    pub fn ambiguous(self) -> bool {
        matches!(self, Wrapper::Bzip2 | Wrapper::LzmaAlone)
    }
}

/// Identify a compression wrapper by its magic bytes.
pub fn sniff(d: &[u8]) -> Option<Wrapper> {
    if d.starts_with(&[0x1f, 0x8b]) {
        return Some(Wrapper::Gzip);
    }
    if d.len() >= 4 && d.starts_with(b"BZh") && (b'1'..=b'9').contains(&d[3]) {
        return Some(Wrapper::Bzip2);
    }
    if d.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        return Some(Wrapper::Xz);
    }
    if d.len() >= 2 && d[0] == 0x78 && matches!(d[1], 0x01 | 0x5e | 0x9c | 0xda) {
        return Some(Wrapper::Zlib);
    }
    if d.len() >= 13 && d[0] == 0x5d {
        let dict = u32::from_le_bytes([d[1], d[2], d[3], d[4]]);
        if dict.is_power_of_two() || dict.count_ones() == 2 {
            return Some(Wrapper::LzmaAlone);
        }
    }
    None
}

/// Cap violation or decoder failure.
#[derive(Debug, thiserror::Error)]
pub enum InflateError {
    #[error("decompressed size exceeds the {0}-byte cap (max_decompressed_bytes or remaining scan budget)")]
    SizeCap(u64),
    #[error("decompression ratio exceeds the cap of {0}:1 (max_ratio)")]
    RatioCap(u64),
    #[error("{0} stream is corrupt: {1}")]
    Corrupt(&'static str, String),
}

struct CappedSink {
    out: Vec<u8>,
    cap: u64,
    hit: bool,
}

impl Write for CappedSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.cap.saturating_sub(self.out.len() as u64);
        if buf.len() as u64 > room {
            self.hit = true;
            return Err(io::Error::other("size cap"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Decompress `input` with at most `cap` output bytes and `ratio` expansion.
pub fn inflate(w: Wrapper, input: &[u8], cap: u64, ratio: u64) -> Result<Vec<u8>, InflateError> {
    let ratio_cap = (input.len() as u64).saturating_mul(ratio).max(RATIO_FLOOR);
    let limit = cap.min(ratio_cap);
    let mut sink = CappedSink { out: Vec::new(), cap: limit, hit: false };
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> io::Result<()> {
        let mut copy = |r: &mut dyn Read| io::copy(r, &mut sink).map(|_| ());
        match w {
            Wrapper::Gzip => copy(&mut flate2::read::MultiGzDecoder::new(input)),
            Wrapper::Zlib => copy(&mut flate2::read::ZlibDecoder::new(input)),
            Wrapper::Bzip2 => copy(&mut bzip2::read::MultiBzDecoder::new(input)),
            Wrapper::Xz => lzma_rs::xz_decompress(&mut io::BufReader::new(input), &mut sink)
                .map_err(|e| io::Error::other(e.to_string())),
            Wrapper::LzmaAlone => {
                let opts = lzma_rs::decompress::Options {
                    memlimit: Some(usize::try_from(limit).unwrap_or(usize::MAX)),
                    ..Default::default()
                };
                lzma_rs::lzma_decompress_with_options(&mut io::BufReader::new(input), &mut sink, &opts)
                    .map_err(|e| io::Error::other(e.to_string()))
            }
        }
    }));
    let hit = sink.hit;
    match run {
        Ok(Ok(())) => Ok(sink.out),
        _ if hit && limit == cap => Err(InflateError::SizeCap(cap)),
        _ if hit => Err(InflateError::RatioCap(ratio)),
        Ok(Err(e)) => Err(InflateError::Corrupt(w.label(), e.to_string())),
        Err(_) => Err(InflateError::Corrupt(w.label(), "decoder panicked".into())),
    }
}

/// Raw DEFLATE (zip method 8) with the same caps.
pub fn inflate_raw(input: &[u8], cap: u64, ratio: u64) -> Result<Vec<u8>, InflateError> {
    let ratio_cap = (input.len() as u64).saturating_mul(ratio).max(RATIO_FLOOR);
    let limit = cap.min(ratio_cap);
    let mut sink = CappedSink { out: Vec::new(), cap: limit, hit: false };
    let r = io::copy(&mut flate2::read::DeflateDecoder::new(input), &mut sink);
    match r {
        Ok(_) => Ok(sink.out),
        Err(_) if sink.hit && limit == cap => Err(InflateError::SizeCap(cap)),
        Err(_) if sink.hit => Err(InflateError::RatioCap(ratio)),
        Err(e) => Err(InflateError::Corrupt("deflate", e.to_string())),
    }
}

/// Parsed `.npy` header.
#[derive(Debug)]
pub struct Npy {
    /// The array holds Python objects: a pickle follows the header.
    pub object: bool,
    /// Offset of the data (the pickle for object arrays).
    pub data_offset: usize,
}

pub const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// Parse a `.npy` header (versions 1.0, 2.0, 3.0).
pub fn parse_npy(d: &[u8]) -> Result<Npy, String> {
    if !d.starts_with(NPY_MAGIC) || d.len() < 10 {
        return Err("not a .npy file".into());
    }
    let (hlen, start): (usize, usize) = match d[6] {
        1 => (usize::from(u16::from_le_bytes([d[8], d[9]])), 10),
        2 | 3 if d.len() >= 12 => (u32::from_le_bytes([d[8], d[9], d[10], d[11]]) as usize, 12),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let end = start.checked_add(hlen).filter(|&e| e <= d.len()).ok_or(".npy header truncated")?;
    let header = String::from_utf8_lossy(&d[start..end]);
    let descr_at = header.find("'descr'").or_else(|| header.find("\"descr\"")).ok_or(".npy header without descr")?;
    let rest = &header[descr_at + 7..];
    // descr value ends at the next top-level key.
    let stop = ["'fortran_order'", "'shape'", "\"fortran_order\"", "\"shape\""]
        .iter()
        .filter_map(|k| rest.find(k))
        .min()
        .unwrap_or(rest.len());
    let descr = &rest[..stop];
    let object = descr
        .split(['\'', '"'])
        .skip(1)
        .step_by(2)
        .any(|tok| tok.trim_start_matches(['<', '>', '|', '=']).starts_with('O'));
    Ok(Npy { object, data_offset: end })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing `analyze`: an xz stream whose index is followed by 0xff bytes makes
    /// lzma-rs 0.3 compute `(backward_size + 1) << 2` with `backward_size = u32::MAX`, which
    /// panics where overflow checks are on. It must come back as an error either way.
    #[test]
    fn crafted_xz_index_size_is_an_error_not_a_panic() {
        let data = include_bytes!("../../../fuzz/regressions/analyze/xz-index-size-overflow");
        assert_eq!(sniff(data), Some(Wrapper::Xz));
        let e = inflate(Wrapper::Xz, data, 1 << 20, 100).unwrap_err();
        assert!(matches!(e, InflateError::Corrupt("xz", _)), "{e}");
    }
}
