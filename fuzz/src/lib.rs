//! Shared property checks for the modelvault fuzz targets.
//!
//! Every check panics (so libFuzzer records a crash) when a property that the parsers document
//! does not hold for an input they accepted.

use modelvault::formats::tensor::TensorInfo;

/// Every tensor's byte range `[offset, offset + len)` lies within a file of `file_len` bytes,
/// without overflow, and tensors are listed in offset order.
pub fn assert_tensors_within(what: &str, tensors: &[TensorInfo], file_len: u64) {
    let mut prev_offset = 0u64;
    for t in tensors {
        let end = t.offset.checked_add(t.len).unwrap_or_else(|| {
            panic!("{what}: tensor {:?} offset {} + len {} overflows", t.name, t.offset, t.len)
        });
        assert!(
            end <= file_len,
            "{what}: tensor {:?} range {}..{end} lies outside the {file_len}-byte input",
            t.name,
            t.offset
        );
        assert!(
            t.offset >= prev_offset,
            "{what}: tensors not in offset order ({:?} at {} after offset {prev_offset})",
            t.name,
            t.offset
        );
        prev_offset = t.offset;
    }
}

/// Tensors do not overlap (each starts at or after the previous one's end), all at or after
/// `data_start`.
pub fn assert_no_overlap(what: &str, tensors: &[TensorInfo], data_start: u64) {
    let mut prev_end = data_start;
    for t in tensors {
        assert!(
            t.offset >= prev_end,
            "{what}: tensor {:?} at {} overlaps the previous tensor or the header (ends at {prev_end})",
            t.name,
            t.offset
        );
        prev_end = t.offset + t.len;
    }
}

/// Lets the library's own `catch_unwind` around third-party decoders work under the fuzzer.
///
/// `formats::pickle::wrappers::inflate` runs the xz/LZMA/gzip/bzip2 decoders inside
/// `catch_unwind` and turns a decoder panic into an error (lzma-rs 0.3 overflows a `u32` on a
/// crafted xz index size, which panics where overflow checks are on, as in fuzz builds).
/// libfuzzer-sys installs a panic hook that aborts before any unwinding, so that guard never ran
/// here. This hook only prints; a panic nothing catches still reaches libfuzzer-sys's own
/// `catch_unwind` around the target, which aborts and records the crash.
pub fn let_library_catch_decoder_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("panic (caught or fatal): {info}"))));
}
