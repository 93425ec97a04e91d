//! `formats::safetensors::parse` on arbitrary bytes.
//! Properties: no panic; every tensor range lies within the input; tensors tile the data
//! section exactly (no overlap, no hole, no trailing bytes), and each tensor's length matches
//! its dtype and shape.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use modelvault::formats::{safetensors, tensor::checked_product};
use modelvault_fuzz::{assert_no_overlap, assert_tensors_within};

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let Ok(h) = safetensors::parse(&mut Cursor::new(data), len) else {
        return;
    };
    assert_eq!(h.data_start, 8 + h.header_len, "data_start != 8 + header_len");
    assert!(h.data_start <= len, "data_start {} past the {len}-byte input", h.data_start);
    assert_tensors_within("safetensors", &h.tensors, len);
    assert_no_overlap("safetensors", &h.tensors, h.data_start);
    // No holes and no trailing bytes: the tensors cover data_start..len exactly.
    let mut expected = h.data_start;
    for t in &h.tensors {
        assert_eq!(t.offset, expected, "hole before tensor {:?}", t.name);
        expected = t.offset + t.len;
        assert!(t.shape.len() <= safetensors::MAX_RANK, "rank over MAX_RANK");
        let bits = safetensors::dtype_bits(&t.dtype)
            .unwrap_or_else(|| panic!("accepted unknown dtype {:?}", t.dtype));
        let numel = checked_product(&t.shape).expect("accepted a shape whose product overflows");
        let total_bits = (numel as u128) * (bits as u128);
        assert_eq!(total_bits % 8, 0, "tensor {:?} is not a whole number of bytes", t.name);
        assert_eq!((total_bits / 8) as u64, t.len, "tensor {:?} length != dtype x shape", t.name);
    }
    assert_eq!(expected, len, "trailing bytes after the last tensor were accepted");
});
