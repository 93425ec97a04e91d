//! `formats::gguf::parse` on arbitrary bytes.
//! Properties: no panic; every tensor range lies within the input, starts in the data section at
//! an aligned offset and does not overlap another; the alignment is a nonzero power of two.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use modelvault::formats::gguf;
use modelvault_fuzz::{assert_no_overlap, assert_tensors_within};

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let Ok(h) = gguf::parse(&mut Cursor::new(data), len) else {
        return;
    };
    assert!(h.alignment.is_power_of_two(), "alignment {} is not a power of two", h.alignment);
    assert!(
        h.tensors.is_empty() || h.data_start <= len,
        "data_start {} past the {len}-byte input",
        h.data_start
    );
    assert_tensors_within("gguf", &h.tensors, len);
    assert_no_overlap("gguf", &h.tensors, h.data_start);
    for t in &h.tensors {
        assert_eq!(
            (t.offset - h.data_start) % h.alignment,
            0,
            "tensor {:?} offset not aligned to {}",
            t.name,
            h.alignment
        );
    }
    for (_, v) in &h.kv {
        let _ = (v.as_u64(), v.as_str());
    }
});
