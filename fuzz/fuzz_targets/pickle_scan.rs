//! `formats::pickle::scan_bytes` and `scan_reader` on arbitrary bytes, default options.
//! Properties: no panic; the verdict is the worst of the findings (Clean only with no finding);
//! `globals` is sorted and distinct; scanning from memory and from a reader give the same
//! verdict (a file must not be Clean one way and blocked the other).
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use modelvault::formats::pickle::{self, FindingKind, ScanOptions, Verdict};

fuzz_target!(|data: &[u8]| {
    modelvault_fuzz::let_library_catch_decoder_panics();
    let opts = ScanOptions::default();
    let rep = pickle::scan_bytes(data, &opts);
    let dangerous = rep.findings.iter().any(|f| f.kind == FindingKind::Dangerous);
    let expected = if dangerous {
        Verdict::Dangerous
    } else if rep.findings.is_empty() {
        Verdict::Clean
    } else {
        Verdict::Unscannable
    };
    assert_eq!(rep.verdict, expected, "verdict is not the worst of the findings");
    assert!(
        rep.globals.windows(2).all(|w| w[0] < w[1]),
        "globals not sorted and distinct"
    );
    let from_reader = pickle::scan_reader(Cursor::new(data), data.len() as u64, &opts);
    assert_eq!(
        rep.verdict, from_reader.verdict,
        "scan_bytes and scan_reader disagree: {:?} vs {:?}",
        rep.findings, from_reader.findings
    );
});
