//! `formats::detect::detect` on an arbitrary head (at most `SNIFF_LEN` bytes, as `analyze`
//! passes it) and an arbitrary file length at least the head's length.
//! Input layout: 8 bytes of little-endian "extra length" (the file continues past the head),
//! then the head.
//! Properties: no panic; deterministic; the GGUF version is bytes 4..8; `format_name` and
//! `may_hold_pickle` do not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelvault::formats::{self, SNIFF_LEN, detect};

fuzz_target!(|data: &[u8]| {
    let (extra, head) = if data.len() >= 8 {
        let (a, b) = data.split_at(8);
        (u64::from_le_bytes(a.try_into().unwrap()) % (1 << 40), b)
    } else {
        (0, data)
    };
    let head = &head[..head.len().min(SNIFF_LEN)];
    for len in [head.len() as u64, head.len() as u64 + extra] {
        let f = detect::detect(head, len);
        assert_eq!(f, detect::detect(head, len), "detect is not deterministic");
        if let detect::Format::Gguf { version } = f {
            assert!(head.starts_with(b"GGUF"));
            assert_eq!(version, u32::from_le_bytes(head[4..8].try_into().unwrap()));
        }
        assert!(!formats::format_name(&f).is_empty());
        let _ = formats::may_hold_pickle(&f, head);
    }
});
