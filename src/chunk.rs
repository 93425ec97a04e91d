//! Cutting a file's bytes into chunks whose stored values fit redb's pages.
//!
//! redb 4.6 has no overflow pages: a value lives in a leaf page whose size is the next power of
//! two at or above value + key + leaf overhead. With a 32-byte chunk id as key, a value of
//! 2^20 − 40 bytes was measured to fit a 1 MiB page and 2^20 − 36 to take 2 MiB. A stored chunk is
//! its plaintext plus [`STORED_OVERHEAD`] bytes (version, epoch, nonce, tag), so a full chunk
//! holds [`MAX_CHUNK`] = 2^20 − 64 − 33 bytes of plaintext: 64 bytes of page budget keep a margin.
//!
//! A span of bytes (a tensor, a header, or a whole file of a format without a tensor index) is
//! cut into full
//! chunks, and its tail is cut by binary decomposition into pieces of 2^k − 97 bytes for
//! decreasing k down to 64 KiB; what is left (under 64 KiB) is one piece, and small pieces share
//! leaf pages. So the stored size stays within about 1% of the plaintext.

use crate::crypto::aead::OVERHEAD;
use crate::store::records::CHUNK_HEADER_LEN;

/// Bytes a stored chunk value adds to its plaintext (version + epoch + nonce + tag).
pub const STORED_OVERHEAD: usize = CHUNK_HEADER_LEN + OVERHEAD;
/// Page budget reserved for the key and redb's leaf overhead.
const PAGE_BUDGET: usize = 64;
/// Largest chunk plaintext, in bytes (2^20 − 97).
pub const MAX_CHUNK: usize = (1 << 20) - PAGE_BUDGET - STORED_OVERHEAD;
/// Smallest power-of-two page the tail decomposition targets (64 KiB).
const MIN_SPLIT_ORDER: u32 = 16;

/// The piece sizes, in order, that a span of `len` bytes is cut into. Sums to `len`; every piece
/// is at most [`MAX_CHUNK`] and none is empty.
pub fn plan(len: u64) -> impl Iterator<Item = usize> {
    let full = len / MAX_CHUNK as u64;
    let mut tail = (len % MAX_CHUNK as u64) as usize;
    let mut tail_pieces = Vec::new();
    for order in (MIN_SPLIT_ORDER..20).rev() {
        let piece = (1usize << order) - PAGE_BUDGET - STORED_OVERHEAD;
        while tail >= piece {
            tail_pieces.push(piece);
            tail -= piece;
        }
    }
    if tail > 0 {
        tail_pieces.push(tail);
    }
    std::iter::repeat_n(MAX_CHUNK, full as usize).chain(tail_pieces)
}

/// The piece sizes for a file of `len` bytes that must be cut at each offset in `cuts`
/// (ascending, each in `1..len`; others are ignored): every span between cuts is cut by [`plan`].
pub fn plan_with_cuts(len: u64, cuts: &[u64]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut start = 0u64;
    for &c in cuts.iter().filter(|&&c| c > 0 && c < len) {
        if c > start {
            out.extend(plan(c - start));
            start = c;
        }
    }
    out.extend(plan(len - start));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_sums_to_length_and_respects_limits() {
        for len in [0u64, 1, 65_000, MAX_CHUNK as u64, MAX_CHUNK as u64 + 1, 90_868_376, 3 << 30] {
            let pieces: Vec<usize> = plan(len).collect();
            assert_eq!(pieces.iter().map(|&p| p as u64).sum::<u64>(), len);
            assert!(pieces.iter().all(|&p| p > 0 && p <= MAX_CHUNK));
        }
        assert_eq!(plan(0).count(), 0);
        assert_eq!(MAX_CHUNK, 1_048_479);
    }

    #[test]
    fn cuts_split_spans_and_bad_cuts_are_ignored() {
        let p = plan_with_cuts(3_000_000, &[0, 100, 100, 2_000_000, 5_000_000]);
        assert_eq!(p.iter().map(|&x| x as u64).sum::<u64>(), 3_000_000);
        assert_eq!(p[0], 100);
        let mut acc = 0u64;
        let ends: Vec<u64> = p
            .iter()
            .map(|&x| {
                acc += x as u64;
                acc
            })
            .collect();
        assert!(ends.contains(&100) && ends.contains(&2_000_000));
    }

    #[test]
    fn tail_is_decomposed_into_page_sized_pieces() {
        let pieces: Vec<usize> = plan(MAX_CHUNK as u64 + 600_000).collect();
        // 600,000 = 524,191 (512 KiB page) + 65,439 (64 KiB page) + 10,370.
        assert_eq!(pieces, vec![MAX_CHUNK, 524_191, 65_439, 10_370]);
    }
}
