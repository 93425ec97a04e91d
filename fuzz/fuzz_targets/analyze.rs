//! `formats::analyze`, the whole path `put` runs on every file: sniff, header parse, pickle scan.
//! Properties: no panic; the format is what `detect` says of the head; every tensor range lies
//! within the input, in offset order; cuts are strictly ascending and inside `1..len`; a scan is
//! always present for formats that can hold a pickle (other files get one only when reading them
//! as a pickle reaches an import).
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use modelvault::formats::{self, SNIFF_LEN, detect, pickle::ScanOptions};
use modelvault_fuzz::assert_tensors_within;

fuzz_target!(|data: &[u8]| {
    modelvault_fuzz::let_library_catch_decoder_panics();
    let len = data.len() as u64;
    let Ok(a) = formats::analyze(&mut Cursor::new(data), len, &ScanOptions::default()) else {
        return;
    };
    let head = &data[..data.len().min(SNIFF_LEN)];
    assert_eq!(a.format, detect::detect(head, len), "analyze and detect disagree");
    assert_tensors_within("analyze", &a.tensors, len);
    assert!(a.cuts.windows(2).all(|w| w[0] < w[1]), "cuts not strictly ascending");
    assert!(a.cuts.iter().all(|&c| c > 0 && c < len), "cut outside 1..len");
    if formats::may_hold_pickle(&a.format, head) {
        assert!(a.scan.is_some(), "a format that can hold a pickle was not scanned");
    }
    // The chunk plan `put` builds from the cuts must cover the file exactly.
    let plan = modelvault::chunk::plan_with_cuts(len, &a.cuts);
    assert_eq!(plan.iter().map(|&n| n as u64).sum::<u64>(), len, "chunk plan does not cover the file");
});
