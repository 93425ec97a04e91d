//! `store::records::SlotRecord::decode` on arbitrary bytes.
//! Input layout: first byte selects the mode. Even: the rest is decoded as is (exercises the
//! checksum check). Odd: the rest is a slot body and the fuzzer appends its correct SHA-256,
//! so mutations reach the postcard decoder behind the checksum.
//! Properties: no panic; an accepted record has a 60-byte wrapped key, and its own encoding
//! decodes to the same record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelvault::store::records::SlotRecord;
use sha2::{Digest, Sha256};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let mut b = rest.to_vec();
        b.extend_from_slice(&Sha256::digest(rest));
        b
    };
    let Some(rec) = SlotRecord::decode(&bytes) else {
        return;
    };
    assert_eq!(rec.wrapped.len(), 60, "accepted a wrapped key of {} bytes", rec.wrapped.len());
    if let Some((_, w)) = &rec.next {
        assert_eq!(w.len(), 60, "accepted a next-epoch wrapped key of {} bytes", w.len());
    }
    let enc = rec.encode();
    let back = SlotRecord::decode(&enc).expect("a decoded slot record re-encodes to a decodable one");
    assert_eq!(back.encode(), enc, "slot record does not round-trip");
    assert_eq!((back.epoch, back.params, back.salt, back.created), (rec.epoch, rec.params, rec.salt, rec.created));
    assert_eq!(back.wrapped, rec.wrapped);
    assert_eq!(back.next, rec.next);
});
