//! Archives and wrappers: decompression caps, zip flags, CRCs, local headers and nesting,
//! `.npy` object payloads and `__torch__` globals inside and outside TorchScript records.

use super::*;

#[test]
fn gzip_bomb_hits_size_cap() {
    let bomb = gzip(&vec![0u8; 8 << 20]);
    let opts = ScanOptions { max_decompressed_bytes: 1 << 20, ..Default::default() };
    let r = scan_bytes(&bomb, &opts);
    assert_eq!(r.verdict, Verdict::Unscannable);
    assert!(r.findings[0].reason.contains("max_decompressed_bytes"), "{:?}", r.findings);
    // Ratio cap with the default size cap.
    let opts = ScanOptions { max_ratio: 10, ..Default::default() };
    let r = scan_bytes(&bomb, &opts);
    assert_eq!(r.verdict, Verdict::Unscannable);
    assert!(r.findings[0].reason.contains("max_ratio"), "{:?}", r.findings);
}

#[test]
fn wrapped_pickles_keep_strictness() {
    let evil = b"cposix\nsystem\n(S'ls'\ntR.";
    let r = scan(&gzip(evil));
    assert_eq!(dangerous(&r), vec!["posix.system"]);
    assert_eq!(r.findings[0].member.as_deref(), Some("gzip>"));
    // gzip of data that is not a pickle (a gzipped CSV, say) is data, as the raw text would be:
    // the unpickler fails before any import, so nothing can run.
    assert_eq!(scan(&gzip(b"0.0,1.5,2.0\n3.0,4.0,5.0\n")).verdict, Verdict::Clean);
    // A truncated gzipped pickle still reports the import it reaches.
    assert_eq!(dangerous(&scan(&gzip(b"cposix\nsystem\n(S'ls"))), vec!["posix.system"]);
    // Corrupt gzip is Unscannable.
    assert_eq!(scan(b"\x1f\x8b\x08\x00garbage").verdict, Verdict::Unscannable);
}

#[test]
fn zip_flags_are_not_trusted_but_crc_is() {
    let evil = b"\x80\x02cbuiltins\neval\nX\x01\x00\x00\x001\x85R.";
    let crc = zip::crc32(evil);
    for flags in [0x0000, 0x0001, 0x0020, 0x0040, 0x0808] {
        let r = scan(&stored_zip("model/config.pkl", evil, flags, crc));
        assert_eq!(dangerous(&r), vec!["builtins.eval"], "flags {flags:#x}");
        assert_eq!(r.findings[0].member.as_deref(), Some("model/config.pkl"));
    }
    // Wrong CRC (e.g. real encryption): never Clean.
    let benign = b"\x80\x02]q\x00.";
    let r = scan(&stored_zip("data.pkl", benign, 0x0001, 0xdead_beef));
    assert_eq!(r.verdict, Verdict::Unscannable);
    // Truncated archive: Unscannable, member globals still reported.
    let z = stored_zip("data.pkl", evil, 0, crc);
    let r = scan(&z[..z.len() - 30]);
    assert_eq!(r.verdict, Verdict::Dangerous);
    assert!(r.findings.iter().any(|f| f.kind == FindingKind::Unscannable));
    let z2 = stored_zip("data.pkl", benign, 0, zip::crc32(benign));
    assert_eq!(scan(&z2).verdict, Verdict::Clean);
    assert_eq!(scan(&z2[..z2.len() - 30]).verdict, Verdict::Unscannable);
}

#[test]
fn nested_zip_depth_cap() {
    let benign = b"\x80\x02]q\x00.";
    let mut blob = benign.to_vec();
    for i in 0..12 {
        blob = stored_zip(&format!("l{i}.zip"), &blob, 0, zip::crc32(&blob));
    }
    let r = scan(&blob);
    assert_eq!(r.verdict, Verdict::Unscannable);
    assert!(r.findings.iter().any(|f| f.reason.contains("max_depth")));
}

#[test]
fn object_npy_payload_is_scanned() {
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    let header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }";
    let mut h = header.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    npy.extend_from_slice(&(h.len() as u16).to_le_bytes());
    npy.extend_from_slice(h.as_bytes());
    let plain = npy.clone();
    npy.extend_from_slice(b"\x80\x02cnt\nsystem\nq\x00.");
    let r = scan(&npy);
    assert_eq!(dangerous(&r), vec!["nt.system"]);
    assert_eq!(r.findings[0].offset, plain.len() as u64 + 2);
    // Object header without a pickle payload: broken, not Clean.
    assert_eq!(scan(&plain).verdict, Verdict::Unscannable);
}

#[test]
fn scanner_limits_never_hide_a_zip_member() {
    // 1.1M NONEs overflow the symbolic stack cap before the payload; in a
    // zip member (sniff mode) that must still be Unscannable, not "data".
    let mut p = vec![b'N'; 1_100_000];
    p.extend_from_slice(b"cos\nsystem\n(tR.");
    let r = scan(&stored_zip("x", &p, 0, zip::crc32(&p)));
    assert_eq!(r.verdict, Verdict::Unscannable, "{:?}", r.findings);
    assert!(r.findings[0].reason.contains("scanner limit"));
}

#[test]
fn overlapping_zip_entries_are_bounded() {
    let mut benign = b"\x80\x03B\x10\x27\x00\x00".to_vec();
    benign.extend(std::iter::repeat_n(0u8, 10_000));
    benign.push(b'.');
    let z = stored_zip("a.pkl", &benign, 0, zip::crc32(&benign));
    // Duplicate the central entry 50 times, all pointing at the same bytes.
    let cd_len = 46 + 5;
    let cd_off = z.len() - 22 - cd_len;
    let entry = z[cd_off..cd_off + cd_len].to_vec();
    let mut big = z[..cd_off].to_vec();
    for _ in 0..50 {
        big.extend_from_slice(&entry);
    }
    big.extend_from_slice(b"PK\x05\x06\x00\x00\x00\x00\x32\x00\x32\x00");
    big.extend_from_slice(&((cd_len * 50) as u32).to_le_bytes());
    big.extend_from_slice(&(cd_off as u32).to_le_bytes());
    big.extend_from_slice(&[0, 0]);
    assert_eq!(scan_bytes(&big[..], &ScanOptions::default()).verdict, Verdict::Clean);
    let opts = ScanOptions { max_decompressed_bytes: 64, ..Default::default() };
    let r = scan_bytes(&big, &opts);
    assert_eq!(r.verdict, Verdict::Unscannable);
    assert!(r.findings.iter().any(|f| f.reason.contains("overlap")));
}

/// `__torch__.evil` called with no arguments, protocol 2.
const TORCH_EVIL: &[u8] = b"\x80\x02c__torch__\nevil\n)R.";

#[test]
fn torch_globals_are_dangerous_outside_torchscript_archives() {
    // A plain pickle: `pickle.load` imports `__torch__` as a module.
    let r = scan(TORCH_EVIL);
    assert_eq!(dangerous(&r), vec!["__torch__.evil"], "{r:?}");
    assert!(r.findings[0].reason.contains("outside a TorchScript archive"), "{r:?}");
    let r = scan(b"c__torch__.vad.model\nVAD\n)R.");
    assert_eq!(dangerous(&r), vec!["__torch__.vad.model.VAD"]);
    // A `torch.save` zip: `torch.load` uses Python's unpickler.
    let r = scan(&zip_of(&[("archive/data.pkl", TORCH_EVIL), ("archive/version", b"3\n")]));
    assert_eq!(dangerous(&r), vec!["__torch__.evil"], "{r:?}");
    assert_eq!(r.findings[0].member.as_deref(), Some("archive/data.pkl"));
    // `constants.pkl` without `code/` (or `code/` without `constants.pkl`) is not TorchScript.
    let r = scan(&zip_of(&[("archive/data.pkl", TORCH_EVIL), ("archive/constants.pkl", b"\x80\x02).")]));
    assert_eq!(dangerous(&r), vec!["__torch__.evil"], "{r:?}");
    let r = scan(&zip_of(&[("archive/data.pkl", TORCH_EVIL), ("archive/code/__torch__.py", b"class evil:\n")]));
    assert_eq!(dangerous(&r), vec!["__torch__.evil"], "{r:?}");
    // Wrapped in gzip: still a plain pickle.
    assert_eq!(dangerous(&scan(&gzip(TORCH_EVIL))), vec!["__torch__.evil"]);
}

#[test]
fn torch_globals_are_allowed_only_in_torchscript_records() {
    let ts = |other: &str, data: &[u8]| {
        zip_of(&[
            ("m/data.pkl", TORCH_EVIL),
            ("m/code/__torch__.py", b"class evil:\n  pass\n"),
            ("m/constants.pkl", b"\x80\x02c__torch__\nK\n)R."),
            (other, data),
        ])
    };
    let r = scan(&ts("m/version", b"1\n"));
    assert_eq!(r.verdict, Verdict::Clean, "{r:?}");
    assert!(r.globals.contains(&"__torch__.evil".to_string()));
    // Any other record of the archive is not read by TorchScript's unpickler.
    let r = scan(&ts("m/extra/state.pkl", TORCH_EVIL));
    assert_eq!(dangerous(&r), vec!["__torch__.evil"], "{r:?}");
    assert_eq!(r.findings[0].member.as_deref(), Some("m/extra/state.pkl"));
    // A zip nested in a TorchScript record gets no allowance.
    let inner = zip_of(&[("x/data.pkl", TORCH_EVIL)]);
    let r = scan(&zip_of(&[
        ("m/data.pkl", &inner),
        ("m/code/__torch__.py", b"class evil:\n  pass\n"),
        ("m/constants.pkl", b"\x80\x02)."),
    ]));
    assert_eq!(dangerous(&r), vec!["__torch__.evil"], "{r:?}");
}

#[test]
fn zip_local_header_must_agree_with_central_directory() {
    let benign: &[u8] = b"\x80\x02]q\x00.";
    let good = zip_of(&[("data.pkl", benign)]);
    assert_eq!(scan(&good).verdict, Verdict::Clean);
    let cd = 30 + "data.pkl".len() + benign.len();
    let patched = |at: usize, bytes: &[u8]| {
        let mut z = good.clone();
        z[at..at + bytes.len()].copy_from_slice(bytes);
        z
    };
    let unscannable_with = |z: &[u8], want: &[&str]| {
        let r = scan(z);
        assert_eq!(r.verdict, Verdict::Unscannable, "{:?}", reasons(&r));
        let f = r.findings.iter().find(|f| want.iter().all(|w| f.reason.contains(w)));
        let f = f.unwrap_or_else(|| panic!("no finding with {want:?}: {:?}", reasons(&r)));
        assert_eq!(f.member.as_deref(), Some("data.pkl"));
    };
    // Another name in the local header (Python's zipfile refuses: "File name in directory ...
    // and header ... differ"), although the member is benign.
    unscannable_with(&patched(30, b"x"), &["\"xata.pkl\"", "\"data.pkl\"", "corrupt archive"]);
    // Another CRC-32 in the local header, the data matching the central directory.
    let crc = zip::crc32(benign);
    unscannable_with(&patched(14, &(crc ^ 1).to_le_bytes()), &[&format!("0x{:08x}", crc ^ 1), &format!("0x{crc:08x}")]);
    // The data does not match the central CRC-32: both values are named.
    let mut z = patched(14, &0x1234_5678u32.to_le_bytes());
    z[cd + 16..cd + 20].copy_from_slice(&0x1234_5678u32.to_le_bytes());
    unscannable_with(&z, &["central directory 0x12345678", &format!("member data 0x{crc:08x}")]);
    // Another method or size in the local header.
    unscannable_with(
        &patched(8, &8u16.to_le_bytes()),
        &["compression method differs: local header 8, central directory 0"],
    );
    unscannable_with(&patched(18, &1u32.to_le_bytes()), &["sizes differ: local header 1 compressed"]);
    // Bit 3 defers CRC-32 and sizes to a data descriptor: zeros in the local header are fine.
    let mut z = patched(6, &0x0008u16.to_le_bytes());
    z[14..26].fill(0);
    assert_eq!(scan(&z).verdict, Verdict::Clean, "{:?}", reasons(&scan(&z)));
    // A payload behind a renamed local header is still reported.
    let evil = b"\x80\x02cbuiltins\neval\nX\x01\x00\x00\x001\x85R.";
    let mut z = zip_of(&[("data.pkl", evil)]);
    z[30] = b'x';
    let r = scan(&z);
    assert_eq!(dangerous(&r), vec!["builtins.eval"]);
    assert!(r.findings.iter().any(|f| f.reason.contains("\"xata.pkl\"")), "{:?}", reasons(&r));
}
