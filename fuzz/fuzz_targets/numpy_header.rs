//! `formats::numpy::parse` on arbitrary bytes.
//! Properties: no panic; the data range `[data_offset, data_offset + data_len)` lies within the
//! input; object dtypes carry no data length; rank is bounded.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use modelvault::formats::numpy;

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let Ok(h) = numpy::parse(&mut Cursor::new(data), len) else {
        return;
    };
    assert!(h.data_offset <= len, "data_offset {} past the {len}-byte input", h.data_offset);
    assert!(h.data_offset >= 10, "data_offset {} inside the fixed preamble", h.data_offset);
    if let Some(dl) = h.data_len {
        let end = h.data_offset.checked_add(dl).expect("data_offset + data_len overflows");
        assert!(end <= len, "array data {}..{end} lies outside the {len}-byte input", h.data_offset);
    }
    if h.is_object {
        assert!(h.data_len.is_none(), "object dtype with a data length");
    }
    assert!(h.shape.len() <= numpy::MAX_RANK, "rank {} over MAX_RANK", h.shape.len());
    assert!(matches!(h.version.0, 1..=3), "accepted major version {}", h.version.0);
});
