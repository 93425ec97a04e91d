//! Content-based format detection ("sniffing") from the first bytes of a file.
//! Never looks at file names.
//!
//! Magic numbers: safetensors (u64 LE length + `{`), GGUF
//! (<https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>), ZIP local file
//! headers (APPNOTE 4.3.7; PyTorch / TorchScript / .npz told apart by member
//! names), `.npy` (`\x93NUMPY`), pickle (PROTO 0x80 + 2..=5, or a plausible
//! protocol-0/1 first opcode), legacy PyTorch (pickled magic 0x1950a86a20f9469cfc6c),
//! gzip, bzip2, xz, zlib, tar (a first header with a valid checksum), Parquet, Git LFS pointer text, ONNX (a protobuf
//! `ModelProto` plausibility walk of the first tags), CSV.
//!
//! Limits: looks only at `head` (callers pass up to the first 64 KiB). Zip
//! classification only sees member names whose local headers lie in `head`: a
//! TorchScript archive is recognised by `code/` / `constants.pkl` members or by a
//! `data/N` storage record written before `data.pkl` (TorchScript's writer order).
//! Formats without a variant (7z, raw lzma, JSON, images ...) are `Opaque`.

use serde::Serialize;

/// A file format, as decided by [`detect`] from the file's content.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// safetensors (<https://github.com/huggingface/safetensors>): `{` or `[` at byte 8, after
    /// an 8-byte little-endian header length with at least one non-printable byte.
    Safetensors,
    /// GGUF (<https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>): magic `GGUF`.
    Gguf {
        /// The u32 little-endian version at bytes 4..8, as written (not validated here).
        version: u32,
    },
    /// ONNX `ModelProto` (<https://github.com/onnx/onnx/blob/main/onnx/onnx.proto>), by a
    /// plausibility walk of the first protobuf fields.
    Onnx,
    /// ZIP archive in `torch.save`'s zip layout (a `data.pkl` member, not TorchScript).
    PytorchZip,
    /// ZIP archive written by TorchScript (`code/` or `constants.pkl` members, or a `data/N`
    /// storage record before `data.pkl`).
    TorchScript,
    /// Legacy (non-zip) `torch.save` file: a pickle starting with the pickled magic number
    /// 0x1950a86a20f9469cfc6c.
    PytorchLegacy,
    /// Python pickle: PROTO opcode 0x80 with protocol 2..=5, or a plausible protocol-0/1 start.
    Pickle,
    /// NumPy `.npy` (<https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>):
    /// magic `\x93NUMPY`.
    Numpy,
    /// NumPy `.npz`: a ZIP archive whose members (those seen in the head) all end in `.npy`.
    Npz,
    /// Any other ZIP archive (local file header `PK\x03\x04`).
    Zip,
    /// A tar archive: a first 512-byte header with a valid checksum, as Python's `tarfile`
    /// accepts it (the pre-1.6 `torch.save` format with `storages`, `tensors` and `pickle`
    /// members, which `torch.load` still opens, among others).
    Tar,
    /// gzip stream (magic `1f 8b`).
    Gzip,
    /// bzip2 stream (`BZh` followed by a block-size digit `1`..=`9`).
    Bzip2,
    /// xz stream (magic `fd 37 7a 58 5a 00`).
    Xz,
    /// zlib stream (`78` followed by `01`, `5e`, `9c` or `da`).
    Zlib,
    /// CSV text: printable, not starting like JSON, with a comma in the first line.
    Csv,
    /// Apache Parquet (magic `PAR1`, file at least 12 bytes).
    Parquet,
    /// Git LFS pointer text (`version https://git-lfs.github.com/spec/v1`) in place of the real file.
    GitLfsPointer,
    /// Anything not recognised above (7z, raw lzma, JSON, images ...).
    Opaque,
}

/// Decide the format of a file from its first bytes (`head`, up to 64 KiB) and length.
pub fn detect(head: &[u8], file_len: u64) -> Format {
    let h = head;
    if h.starts_with(b"GGUF") && h.len() >= 8 {
        return Format::Gguf { version: u32::from_le_bytes([h[4], h[5], h[6], h[7]]) };
    }
    if h.starts_with(b"PK\x03\x04") {
        return classify_zip(h);
    }
    if h.starts_with(b"\x93NUMPY") {
        return Format::Numpy;
    }
    if h.starts_with(b"\x1f\x8b") {
        return Format::Gzip;
    }
    if h.len() >= 4 && h.starts_with(b"BZh") && (b'1'..=b'9').contains(&h[3]) {
        return Format::Bzip2;
    }
    if h.starts_with(b"\xfd7zXZ\x00") {
        return Format::Xz;
    }
    if crate::formats::pickle::is_tar(h) {
        return Format::Tar;
    }
    if h.starts_with(b"PAR1") && file_len >= 12 {
        return Format::Parquet;
    }
    if h.starts_with(b"version https://git-lfs.github.com/spec/v1") {
        return Format::GitLfsPointer;
    }
    if h.len() >= 10 && matches!(h[8], b'{' | b'[') && h[..8].iter().any(|c| !c.is_ascii_graphic() && *c != b' ') {
        return Format::Safetensors;
    }
    if h.len() >= 2 && h[0] == 0x80 && (2..=5).contains(&h[1]) {
        return if legacy_torch_magic(&h[2..]) { Format::PytorchLegacy } else { Format::Pickle };
    }
    if h.len() >= 2 && h[0] == 0x78 && matches!(h[1], 0x01 | 0x5e | 0x9c | 0xda) {
        return Format::Zlib;
    }
    if looks_like_onnx(h, file_len) {
        return Format::Onnx;
    }
    if legacy_torch_magic(h) {
        return Format::PytorchLegacy;
    }
    if looks_like_csv(h) {
        return Format::Csv;
    }
    if looks_like_proto01_pickle(h) {
        return Format::Pickle;
    }
    Format::Opaque
}

/// The legacy torch.save magic number pickled as a long: LONG1 (0x8a) with 10
/// little-endian bytes, or protocol-0 text `L119547037146038801333356L\n`.
fn legacy_torch_magic(h: &[u8]) -> bool {
    const LE: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
    let h = match h.first() {
        Some(0x95) if h.len() >= 9 => &h[9..], // protocol-4 FRAME + u64 size
        _ => h,
    };
    (h.len() >= 12 && h[0] == 0x8a && h[1] == 10 && h[2..12] == LE) || h.starts_with(b"L119547037146038801333356")
}

/// Walk the local file headers in `head` and classify the archive by member names.
fn classify_zip(h: &[u8]) -> Format {
    let mut names: Vec<&[u8]> = Vec::new();
    let mut i = 0;
    // Scan for local-header signatures: robust to data descriptors (flag 0x08),
    // where the local header does not give the member size.
    while i + 30 <= h.len() && names.len() < 4096 {
        if &h[i..i + 4] == b"PK\x03\x04" {
            let n = u16::from_le_bytes([h[i + 26], h[i + 27]]) as usize;
            if let Some(name) = h.get(i + 30..i + 30 + n) {
                names.push(name);
                i += 30 + n;
                continue;
            }
        }
        i += 1;
    }
    let is_storage = |n: &[u8]| {
        let s = String::from_utf8_lossy(n);
        let tail = s.rsplit_once("data/").map(|(pre, t)| (pre.is_empty() || pre.ends_with('/'), t));
        matches!(tail, Some((true, t)) if !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit()))
    };
    let ends = |n: &[u8], suffix: &[u8]| n.ends_with(suffix);
    let torchscript = names
        .iter()
        .any(|n| ends(n, b"constants.pkl") || n.starts_with(b"code/") || n.windows(6).any(|w| w == b"/code/"));
    let first_pkl = names.iter().position(|n| ends(n, b"data.pkl"));
    let first_storage = names.iter().position(|n| is_storage(n));
    if torchscript {
        return Format::TorchScript;
    }
    match (first_storage, first_pkl) {
        (Some(0), None) => return Format::TorchScript,
        (Some(s), Some(p)) if s < p => return Format::TorchScript,
        (_, Some(_)) => return Format::PytorchZip,
        _ => {}
    }
    if !names.is_empty() && names.iter().all(|n| ends(n, b".npy")) {
        return Format::Npz;
    }
    Format::Zip
}

/// Cheap ModelProto plausibility: the first fields must be known ModelProto
/// fields with the right wire types, `ir_version` (field 1) must appear once with
/// a small value, and a graph (7) or opset_import (8) must be seen.
fn looks_like_onnx(h: &[u8], file_len: u64) -> bool {
    let mut i = 0usize;
    let (mut ir, mut graph_or_opset) = (false, false);
    let varint = |i: &mut usize| -> Option<u64> {
        let mut v = 0u64;
        for k in 0..10 {
            let b = *h.get(*i)?;
            *i += 1;
            v |= u64::from(b & 0x7f) << (7 * k);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    };
    for _ in 0..16 {
        if i >= h.len() {
            break;
        }
        let Some(tag) = varint(&mut i) else {
            return false;
        };
        let (field, wire) = (tag >> 3, tag & 7);
        let expect_len = match field {
            1 | 5 => false,
            2 | 3 | 4 | 6 | 7 | 8 | 14 | 20 | 25 | 26 => true,
            _ => return false,
        };
        if expect_len != (wire == 2) || (!expect_len && wire != 0) {
            return false;
        }
        if wire == 0 {
            let Some(v) = varint(&mut i) else {
                return false;
            };
            if field == 1 {
                if ir || v == 0 || v > 100 {
                    return false;
                }
                ir = true;
            }
        } else {
            let Some(len) = varint(&mut i) else {
                return false;
            };
            if len > file_len.saturating_sub(i as u64) {
                return false;
            }
            if field == 7 || field == 8 {
                graph_or_opset = true;
            }
            match i.checked_add(len as usize) {
                Some(next) if next <= h.len() => i = next,
                _ => break, // the field runs beyond `head`: stop looking
            }
        }
    }
    ir && graph_or_opset
}

/// Printable text whose first line contains a comma (and is not JSON).
fn looks_like_csv(h: &[u8]) -> bool {
    let h = h.strip_prefix(b"\xef\xbb\xbf").unwrap_or(h);
    let sample = &h[..h.len().min(4096)];
    // A multi-byte character may be cut at the end of the sample.
    let text: String = match std::str::from_utf8(sample) {
        Ok(t) => t.to_owned(),
        Err(e) if e.valid_up_to() + 4 > sample.len() => {
            String::from_utf8_lossy(&sample[..e.valid_up_to()]).into_owned()
        }
        Err(_) => return false,
    };
    let printable = text.chars().all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'));
    let first = text.lines().next().unwrap_or("");
    let json = matches!(text.trim_start().chars().next(), Some('{' | '['));
    printable && !json && first.contains(',')
}

/// Plausible protocol-0/1 pickle start (no PROTO opcode).
fn looks_like_proto01_pickle(h: &[u8]) -> bool {
    let line_ok = |s: &[u8], ident: bool| -> Option<usize> {
        let n = s.iter().take(256).position(|&c| c == b'\n')?;
        let line = &s[..n];
        let ok = !ident || (!line.is_empty() && line.iter().all(|c| c.is_ascii_alphanumeric() || b"_.".contains(c)));
        ok.then_some(n + 1)
    };
    match h.first() {
        // GLOBAL module\nname\n: module must look like a dotted identifier.
        Some(b'c') => line_ok(&h[1..], true).is_some_and(|n| line_ok(&h[1 + n..], false).is_some()),
        Some(b'(') => h.get(1).is_some_and(|c| b"lcdtNSVIFLKJMUTX]})(q".contains(c)),
        Some(b'S') => matches!(h.get(1), Some(b'\'' | b'"')) && line_ok(&h[1..], false).is_some(),
        Some(b'I' | b'L' | b'F') => line_ok(&h[1..], false)
            .is_some_and(|n| n > 1 && h[1..1 + n].iter().all(|c| c.is_ascii_digit() || b"-+.eELn\n".contains(c))),
        Some(b'V') => line_ok(&h[1..], false).is_some(),
        Some(b']' | b'}' | b')') => matches!(h.get(1), Some(b'q' | b'(' | b'.' | b'r')),
        Some(b'N') => h.get(1) == Some(&b'.'),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::tensor::test_util::{all_files, corpus};
    use std::io::Read;

    fn head(rel: &str) -> (Vec<u8>, u64) {
        let mut f = std::fs::File::open(corpus().join(rel)).unwrap();
        let len = f.metadata().unwrap().len();
        let mut h = Vec::new();
        f.by_ref().take(64 * 1024).read_to_end(&mut h).unwrap();
        (h, len)
    }

    /// Expected format of every corpus file, by its real content.
    fn expected(rel: &str) -> Format {
        use Format::*;
        let name = rel.rsplit('/').next().unwrap();
        match rel {
            _ if rel.starts_with("safetensors/")
                || rel.starts_with("malformed/B0") && rel.ends_with(".safetensors") =>
            {
                if name.starts_with("B02d") {
                    GitLfsPointer
                } else {
                    Safetensors
                }
            }
            _ if rel.ends_with(".gguf") => Gguf { version: 3 },
            _ if rel.ends_with(".onnx") => Onnx,
            "onnx/onnx-backend_test_Conv2d.input_0.pb" => Opaque,
            "pytorch/silero_vad.jit" | "malformed/derived_truncated_silero_vad.jit.first1MiB.pt" => TorchScript,
            "pytorch/picklescan_zip_pytorch_model.bin" | "malicious/modelscan_unsafe_zip_pytorch.pt" => PytorchZip,
            "malicious/picklescan_malicious1.zip" => PytorchZip, // a bare data.pkl member, torch.save layout
            _ if rel.starts_with("pytorch/") => PytorchLegacy,
            _ if rel.ends_with(".npz") => Npz,
            _ if rel.ends_with(".npy") => Numpy,
            _ if rel.ends_with(".zip") => Zip,
            _ if rel.ends_with(".parquet") => Parquet,
            _ if rel.ends_with(".csv") => Csv,
            _ if rel.ends_with(".gz") || rel.ends_with(".gzip") => Gzip,
            _ if rel.ends_with(".bz2") => Bzip2,
            _ if rel.ends_with(".xz") || name.starts_with("B12c") => Xz,
            _ if name.starts_with("B12d") || name.ends_with("compress3.joblib") => Zlib,
            // raw .lzma (no variant), 7z, PNG bytes named .pt, JSON, markdown
            _ if rel.ends_with(".lzma") || rel.ends_with(".7z") || rel.ends_with(".json") || rel.ends_with(".md") => {
                Opaque
            }
            "malformed/picklescan_bad_pytorch.pt" => Opaque,
            _ => Pickle, // every other .pkl/.pickle/.joblib/.bin in pickle/, malicious/, malformed/
        }
    }

    #[test]
    fn every_corpus_file_detects_as_its_real_format() {
        let files = all_files();
        assert!(files.len() >= 130, "corpus has {} files", files.len());
        let mut wrong = Vec::new();
        for rel in &files {
            let (h, len) = head(rel);
            let got = detect(&h, len);
            if got != expected(rel) {
                wrong.push(format!("{rel}: got {got:?}, expected {:?}", expected(rel)));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn every_parser_on_every_corpus_file_returns_without_panic() {
        use crate::formats::{gguf, numpy, onnx, safetensors};
        for rel in all_files() {
            let open = || std::fs::File::open(corpus().join(&rel)).unwrap();
            let len = open().metadata().unwrap().len();
            let t = std::time::Instant::now();
            let _ = safetensors::parse(&mut open(), len);
            let _ = gguf::parse(&mut open(), len);
            let _ = numpy::parse(&mut open(), len);
            let _ = onnx::parse(&mut open(), len);
            assert!(t.elapsed().as_secs() < 5, "{rel} took {:?}", t.elapsed());
        }
    }

    #[test]
    fn spot_checks() {
        assert_eq!(detect(&head("onnx/onnx-backend_test_Conv2d.input_0.pb").0, 853), Format::Opaque);
        assert_eq!(detect(b"", 0), Format::Opaque);
        assert_eq!(detect(b"GGUF\x02\x00\x00\x00", 8), Format::Gguf { version: 2 });
        assert_eq!(detect(b"a,b\n1,2\n", 8), Format::Csv);
        assert_eq!(detect(b"class,feature\n1,2\n", 18), Format::Csv);
        assert_eq!(detect(b"cos\nsystem\n(S'ls'\ntR.", 21), Format::Pickle);
        assert_eq!(detect(b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15), Format::PytorchLegacy);
        assert_eq!(detect(b"L119547037146038801333356L\n.", 28), Format::PytorchLegacy);
        // A tar is recognised by its first header's checksum, whatever its member names.
        let mut tar = vec![0u8; 1536];
        tar[..8].copy_from_slice(b"storages");
        tar[124..136].copy_from_slice(b"00000000000\0");
        tar[148..156].fill(b' ');
        let sum: u32 = tar[..512].iter().map(|&b| u32::from(b)).sum();
        tar[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        assert_eq!(detect(&tar, 1536), Format::Tar);
        tar[0] = b'S';
        assert_ne!(detect(&tar, 1536), Format::Tar, "a bad checksum is no tar");
        // Never panics on short or random input.
        for n in 0..64 {
            let v: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            let _ = detect(&v, n as u64);
            let _ = detect(&v, 0);
        }
    }
}
