//! Unit tests for the pickle scanner on synthetic inputs, by subject: pickle streams
//! (`streams`: opcode table, STACK_GLOBAL operand resolution, multi-pickle and legacy-torch
//! rules, truncation, `extra_allowed`, the allow-list, joblib payload skipping and its desync
//! guards, robustness), archives and wrappers (`archives`: decompression caps, zip flags, CRCs
//! and local headers, nesting, `.npy` object payloads, TorchScript records) and tar archives
//! (`tars`: legacy `torch.save` tars, extension headers, corrupt and oversized tars). This file
//! holds the input builders and checks they share.

use std::io::Write;

use super::*;

mod archives;
mod streams;
mod tars;

fn scan(b: &[u8]) -> ScanReport {
    scan_bytes(b, &ScanOptions::default())
}

fn dangerous(r: &ScanReport) -> Vec<String> {
    r.findings.iter().filter(|f| f.kind == FindingKind::Dangerous).map(|f| f.global.clone()).collect()
}

fn legacy_torch(tail: &[u8]) -> Vec<u8> {
    let mut p = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.".to_vec();
    p.extend_from_slice(b"\x80\x02M\xe9\x03.");
    p.extend_from_slice(b"\x80\x02}q\x00.");
    p.extend_from_slice(b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01.");
    p.extend_from_slice(b"\x80\x02]q\x00.");
    p.extend_from_slice(tail);
    p
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// joblib-style stream: a bare NumpyArrayWrapper (NEWOBJ, no args) for an
/// int8 array of `n` elements, followed by `payload` then `tail`.
fn joblib_stream(n: u8, payload: &[u8], tail: &[u8], reduce_ctor: bool) -> Vec<u8> {
    let mut p = b"\x80\x02cjoblib.numpy_pickle\nNumpyArrayWrapper\nq\x00".to_vec();
    if reduce_ctor {
        p.extend_from_slice(b"N\x85R");
    } else {
        p.extend_from_slice(b")\x81");
    }
    p.extend_from_slice(b"}(U\x05shapeK");
    p.push(n);
    p.extend_from_slice(b"\x85U\x05dtypecnumpy\ndtype\nU\x02i1\x89\x88\x87R");
    p.extend_from_slice(b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tbub");
    p.extend_from_slice(payload);
    p.extend_from_slice(tail);
    p
}

fn stored_zip(name: &str, data: &[u8], flags: u16, crc: u32) -> Vec<u8> {
    let mut z = Vec::new();
    let le16 = |v: &mut Vec<u8>, x: u16| v.extend_from_slice(&x.to_le_bytes());
    let le32 = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&x.to_le_bytes());
    for central in [false, true] {
        let mut h = Vec::new();
        le32(&mut h, if central { 0x0201_4b50 } else { 0x0403_4b50 });
        if central {
            le16(&mut h, 20);
        }
        for x in [20u16, flags, 0, 0, 0] {
            le16(&mut h, x);
        }
        le32(&mut h, crc);
        le32(&mut h, data.len() as u32);
        le32(&mut h, data.len() as u32);
        le16(&mut h, name.len() as u16);
        le16(&mut h, 0);
        if central {
            for x in [0u16, 0, 0] {
                le16(&mut h, x);
            }
            le32(&mut h, 0);
            le32(&mut h, 0);
        }
        h.extend_from_slice(name.as_bytes());
        if !central {
            h.extend_from_slice(data);
        }
        z.extend_from_slice(&h);
    }
    let cd_len = 46 + name.len();
    let cd_off = z.len() - cd_len;
    z.extend_from_slice(b"PK\x05\x06\x00\x00\x00\x00\x01\x00\x01\x00");
    le32(&mut z, cd_len as u32);
    le32(&mut z, cd_off as u32);
    le16(&mut z, 0);
    z
}

/// A zip of stored members with correct CRCs (local headers, central directory, EOCD).
fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let le16 = |v: &mut Vec<u8>, x: u16| v.extend_from_slice(&x.to_le_bytes());
    let le32 = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&x.to_le_bytes());
    let (mut z, mut cd) = (Vec::new(), Vec::new());
    for (name, data) in members {
        let at = z.len() as u32;
        let crc = zip::crc32(data);
        le32(&mut z, 0x0403_4b50);
        for x in [20u16, 0, 0, 0, 0] {
            le16(&mut z, x);
        }
        for x in [crc, data.len() as u32, data.len() as u32] {
            le32(&mut z, x);
        }
        le16(&mut z, name.len() as u16);
        le16(&mut z, 0);
        z.extend_from_slice(name.as_bytes());
        z.extend_from_slice(data);
        le32(&mut cd, 0x0201_4b50);
        for x in [20u16, 20, 0, 0, 0, 0] {
            le16(&mut cd, x);
        }
        for x in [crc, data.len() as u32, data.len() as u32] {
            le32(&mut cd, x);
        }
        for x in [name.len() as u16, 0, 0, 0, 0] {
            le16(&mut cd, x);
        }
        le32(&mut cd, 0);
        le32(&mut cd, at);
        cd.extend_from_slice(name.as_bytes());
    }
    let cd_off = z.len() as u32;
    z.extend_from_slice(&cd);
    z.extend_from_slice(b"PK\x05\x06\x00\x00\x00\x00");
    le16(&mut z, members.len() as u16);
    le16(&mut z, members.len() as u16);
    le32(&mut z, cd.len() as u32);
    le32(&mut z, cd_off);
    le16(&mut z, 0);
    z
}

fn reasons(r: &ScanReport) -> Vec<String> {
    r.findings.iter().map(|f| format!("{:?} {:?}: {}", f.kind, f.member, f.reason)).collect()
}
