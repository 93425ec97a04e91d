//! Tar archives: legacy `torch.save` tars, pickles in any member, corrupt and truncated tars,
//! pax/GNU extension headers and tars over the in-memory limit.

use super::*;

/// One ustar header block for a member `name` of `size` bytes and type `kind`.
fn tar_header(name: &[u8], size: u64, kind: u8) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[..name.len()].copy_from_slice(name);
    h[100..108].copy_from_slice(b"0000644\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = kind;
    h[257..265].copy_from_slice(b"ustar\x0000");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// A tar of regular members, with the two end-of-archive blocks.
fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut t = Vec::new();
    for (name, data) in members {
        t.extend(tar_header(name.as_bytes(), data.len() as u64, b'0'));
        t.extend_from_slice(data);
        t.resize(t.len().div_ceil(512) * 512, 0);
    }
    t.extend([0u8; 1024]);
    t
}

/// `storages` of a legacy `torch.save` tar: one FloatStorage of two elements whose raw bytes
/// are `raw` (8 bytes), then `views` as the storage-views pickle.
fn legacy_storages(raw: &[u8], views: &[u8]) -> Vec<u8> {
    let mut s = b"\x80\x02K\x01.".to_vec();
    s.extend_from_slice(b"\x80\x02X\x01\x00\x00\x000X\x03\x00\x00\x00cpuctorch\nFloatStorage\n\x87.");
    s.extend(2u64.to_le_bytes());
    s.extend_from_slice(raw);
    s.extend_from_slice(views);
    s
}

/// `tensors` of a legacy tar: one rank-1 FloatTensor over storage `0`.
fn legacy_tensors() -> Vec<u8> {
    let mut s = b"\x80\x02K\x01.".to_vec();
    s.extend_from_slice(b"\x80\x02X\x01\x00\x00\x001X\x01\x00\x00\x000ctorch\nFloatTensor\n\x87.");
    s.extend(1i32.to_le_bytes());
    s.extend([0u8; 4]);
    for x in [2i64, 1, 0] {
        s.extend(x.to_le_bytes());
    }
    s
}

const LEGACY_PICKLE: &[u8] =
    b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00wq\x02X\x01\x00\x00\x001Qs.";
const POSIX_SYSTEM: &[u8] = b"cposix\nsystem\n(S'ls'\ntR.";

fn legacy_tar(storages: &[u8], tensors: &[u8], pickle: &[u8]) -> Vec<u8> {
    tar_of(&[("sys_info", b"\x80\x02}q\x00."), ("storages", storages), ("tensors", tensors), ("pickle", pickle)])
}

#[test]
fn legacy_torch_tar_is_walked() {
    let benign = legacy_tar(&legacy_storages(&[0; 8], b"\x80\x02]q\x00."), &legacy_tensors(), LEGACY_PICKLE);
    assert!(is_tar(&benign));
    let r = scan(&benign);
    assert_eq!(r.verdict, Verdict::Clean, "{:?}", reasons(&r));
    for g in ["collections.OrderedDict", "torch.FloatStorage", "torch.FloatTensor"] {
        assert!(r.globals.contains(&g.to_string()), "{g}: {:?}", r.globals);
    }
    // A malicious `pickle` member (what `torch.load(weights_only=False)` unpickles last).
    let r = scan(&legacy_tar(&legacy_storages(&[0; 8], b"\x80\x02]q\x00."), &legacy_tensors(), POSIX_SYSTEM));
    assert_eq!(dangerous(&r), vec!["posix.system"], "{:?}", reasons(&r));
    assert_eq!(r.findings[0].member.as_deref(), Some("pickle"));
    // In the storage-views pickle, after the raw elements.
    let r = scan(&legacy_tar(&legacy_storages(&[0; 8], POSIX_SYSTEM), &legacy_tensors(), LEGACY_PICKLE));
    assert_eq!(dangerous(&r), vec!["posix.system"], "{:?}", reasons(&r));
    assert_eq!(r.findings[0].member.as_deref(), Some("storages"));
    // Raw storage bytes are never unpickled: opcodes there are data.
    let r = scan(&legacy_tar(&legacy_storages(b"cos\nsys\n", b"\x80\x02]q\x00."), &legacy_tensors(), LEGACY_PICKLE));
    assert_eq!(r.verdict, Verdict::Clean, "{:?}", reasons(&r));
    // A storage class that is no storage: reported, and the layout cannot be followed.
    let bad =
        [b"\x80\x02K\x01.".as_slice(), b"\x80\x02X\x01\x00\x00\x000N\x8c\x05posix\x8c\x06system\x93\x87."].concat();
    let r = scan(&legacy_tar(&bad, &legacy_tensors(), LEGACY_PICKLE));
    assert_eq!(dangerous(&r), vec!["posix.system"], "{:?}", reasons(&r));
    assert!(r.findings.iter().any(|f| f.reason.contains("element size of posix.system is unknown")));
    // In a later tensor record.
    let mut t = legacy_tensors();
    t[3] = 2;
    t.extend_from_slice(POSIX_SYSTEM);
    let r = scan(&legacy_tar(&legacy_storages(&[0; 8], b"\x80\x02]q\x00."), &t, LEGACY_PICKLE));
    assert_eq!(dangerous(&r), vec!["posix.system"], "{:?}", reasons(&r));
    assert_eq!(r.findings[0].member.as_deref(), Some("tensors"));
}

#[test]
fn any_tar_member_holding_a_pickle_is_scanned() {
    let r = scan(&tar_of(&[("README", b"hello\n"), ("model.pkl", POSIX_SYSTEM)]));
    assert_eq!(dangerous(&r), vec!["posix.system"], "{:?}", reasons(&r));
    assert_eq!(r.findings[0].member.as_deref(), Some("model.pkl"));
    assert_eq!(scan(&tar_of(&[("a.txt", b"1,2\n")])).verdict, Verdict::Clean);
    // Inside gzip (`.tar.gz`) and inside a zip.
    let r = scan(&gzip(&tar_of(&[("model.pkl", POSIX_SYSTEM)])));
    assert_eq!(dangerous(&r), vec!["posix.system"], "{:?}", reasons(&r));
    assert_eq!(r.findings[0].member.as_deref(), Some("gzip>model.pkl"));
    let r = scan(&zip_of(&[("x.tar", &tar_of(&[("pickle", POSIX_SYSTEM)]))]));
    assert_eq!(dangerous(&r), vec!["posix.system"], "{:?}", reasons(&r));
}

#[test]
fn corrupt_or_truncated_tar_is_unscannable() {
    let benign = legacy_tar(&legacy_storages(&[0; 8], b"\x80\x02]q\x00."), &legacy_tensors(), LEGACY_PICKLE);
    assert_eq!(scan(&benign).verdict, Verdict::Clean);
    let has = |b: &[u8], want: &str| {
        let r = scan(b);
        assert_eq!(r.verdict, Verdict::Unscannable, "{want}: {:?}", reasons(&r));
        assert!(r.findings.iter().any(|f| f.reason.contains(want)), "{want}: {:?}", reasons(&r));
    };
    // Cut inside a member's data, at a header boundary, inside a header.
    has(&benign[..1536 + 10], "data bytes exceed the file");
    has(&benign[..1024], "without an end-of-archive block");
    has(&benign[..1024 + 100], "truncated");
    // A later header with a bad checksum.
    let mut bad = benign.clone();
    bad[1024 + 5] ^= 1;
    has(&bad, "bad checksum");
    // Counts and sizes are bounded by the bytes that remain.
    let mut huge = legacy_storages(&[0; 8], b"\x80\x02]q\x00.");
    let at = huge.len() - 6 - 8 - 8;
    huge[at..at + 8].copy_from_slice(&(1u64 << 62).to_le_bytes());
    has(&legacy_tar(&huge, &legacy_tensors(), LEGACY_PICKLE), "claims 4611686018427387904 elements of 4 bytes");
    let many =
        [b"\x80\x02\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x40.".as_slice(), &legacy_storages(&[0; 8], b"")[5..]].concat();
    has(&legacy_tar(&many, &legacy_tensors(), LEGACY_PICKLE), "storage count 4611686018427387904 exceeds");
    let mut t = legacy_tensors();
    let at = t.len() - 32;
    t[at..at + 4].copy_from_slice(&(-1i32).to_le_bytes());
    has(&legacy_tar(&legacy_storages(&[0; 8], b"\x80\x02]q\x00."), &t, LEGACY_PICKLE), "rank Some(-1)");
    // A truncated `pickle` member is not a complete pickle.
    has(
        &legacy_tar(&legacy_storages(&[0; 8], b"\x80\x02]q\x00."), &legacy_tensors(), &LEGACY_PICKLE[..33]),
        "not a complete pickle",
    );
    // A link where torch.load expects the pickle.
    let mut l = tar_header(b"pickle", 0, b'2');
    l.extend([0u8; 1024]);
    has(&l, "not a regular file");
    // Every prefix of a benign legacy tar is never Clean.
    for cut in (0..benign.len() - 1024).step_by(37) {
        assert_ne!(scan(&benign[..cut]).verdict, Verdict::Clean, "cut at {cut}");
    }
}

/// A pax or GNU extension header (type `kind`) carrying `body`, padded to whole blocks.
fn ext_header(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut t = tar_header(b"././@PaxHeader", body.len() as u64, kind);
    t.extend_from_slice(body);
    t.resize(t.len().div_ceil(512) * 512, 0);
    t
}

/// A `storages` record whose payload sits after the raw elements, where a sniffing walk
/// stops as at inert data: only the strict legacy walk finds it.
fn hidden_storages() -> Vec<u8> {
    legacy_storages(&[0; 8], POSIX_SYSTEM)
}

#[test]
fn tar_extension_headers_are_unscannable() {
    let has = |t: &[u8], want: &str| {
        let r = scan(t);
        assert_eq!(r.verdict, Verdict::Unscannable, "{want}: {:?}", reasons(&r));
        assert!(r.findings.iter().any(|f| f.reason.contains(want)), "{want}: {:?}", reasons(&r));
        assert!(r.findings.iter().any(|f| f.reason.contains("never uses pax or GNU extension headers")));
    };
    // tarfile strips the trailing slash of a pax `path`: torch.load reads this as `storages`.
    let mut t = ext_header(b'x', b"18 path=storages/\n");
    t.extend(tar_of(&[("innocent", &hidden_storages())]));
    has(&t, "pax extended header (type 'x')");
    // tarfile reads pax records from the whole padded block: a record hidden in the padding.
    let mut body = b"17 path=innocent\n".to_vec();
    let shown = body.len();
    body.resize(100, 0);
    body.extend_from_slice(b"17 path=storages\n");
    let mut t = tar_header(b"././@PaxHeader", shown as u64, b'x');
    t.extend_from_slice(&body);
    t.resize(1024, 0);
    t.extend(tar_of(&[("x", &hidden_storages())]));
    has(&t, "pax extended header");
    // A global pax `size` is applied after tarfile has skipped the member's own data, so the
    // header after these 1024 bytes is what Python reads next; a decoy ends the archive early
    // for a reader that skips by the global size.
    let mut t = ext_header(b'g', b"10 size=0\n");
    t.extend(tar_header(b"readme", 1024, b'0'));
    t.extend(tar_header(b"decoy", 0, b'0'));
    t.extend([0u8; 512]);
    t.extend(tar_of(&[("pickle", POSIX_SYSTEM)]));
    has(&t, "pax global header (type 'g')");
    // GNU long names, long links and sparse members.
    let mut t = ext_header(b'L', b"pickle\0");
    t.extend(tar_of(&[("innocent", POSIX_SYSTEM)]));
    has(&t, "GNU long-name header (type 'L')");
    let mut t = ext_header(b'K', b"target\0");
    t.extend(tar_of(&[("innocent", b"1,2\n")]));
    has(&t, "GNU long-link header");
    let mut t = tar_header(b"pickle", 0, b'S');
    t.extend([0u8; 1024]);
    has(&t, "GNU sparse member");
    let mut t = ext_header(b'X', b"15 path=pickle\n");
    t.extend(tar_of(&[("innocent", b"1,2\n")]));
    has(&t, "pax extended header (type 'X')");
}

#[test]
fn every_legacy_named_tar_member_gets_the_strict_walk() {
    // The payload after the raw elements is hidden from a sniffing walk.
    assert_eq!(scan(&tar_of(&[("other", &hidden_storages())])).verdict, Verdict::Clean);
    // A trailing slash does not make `storages` a generic member.
    let r = scan(&tar_of(&[("storages/", &hidden_storages())]));
    assert_eq!(dangerous(&r), vec!["posix.system"], "{:?}", reasons(&r));
    // Nor does a later member of the same name.
    let benign = legacy_storages(&[0; 8], b"\x80\x02]q\x00.");
    let r = scan(&tar_of(&[("storages", &hidden_storages()), ("storages", &benign)]));
    assert_eq!(dangerous(&r), vec!["posix.system"], "{:?}", reasons(&r));
}

#[test]
fn tar_over_the_in_memory_limit_is_unscannable() {
    // A tar whose first header is also a complete legacy PyTorch pickle sequence (magic,
    // protocol, sys_info, object, storage keys); the malicious member comes later.
    let mut first = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.".to_vec();
    first.extend_from_slice(b"\x80\x02M\xe9\x03.\x80\x02}q\x00.\x80\x02}q\x00.\x80\x02]q\x00.");
    let mut t = tar_header(&first, 0, b'0');
    t.extend(tar_of(&[("pickle", POSIX_SYSTEM)]));
    t.resize(4096, 0);
    assert!(is_tar(&t));
    // Walked whole, the payload is found.
    assert_eq!(dangerous(&scan(&t)), vec!["posix.system"]);
    let opts = ScanOptions { max_in_memory_bytes: 2048, ..ScanOptions::default() };
    let r = scan_reader(std::io::Cursor::new(&t), t.len() as u64, &opts);
    assert_eq!(r.verdict, Verdict::Unscannable, "{:?}", reasons(&r));
    assert!(
        r.findings.iter().any(|f| f.reason
            == "tar archive of 4096 bytes exceeds max_in_memory_bytes (2048): its members cannot be walked"),
        "{:?}",
        reasons(&r)
    );
}
