//! `store::records::decode::<T>` for every record type stored in the vault, and
//! `split_chunk_value` / `split_sealed` (the 5-byte header of every sealed value). Input layout: first byte selects the record type, the rest is the
//! record bytes.
//! Properties: no panic; a decoded record re-encodes to bytes that decode to the same record;
//! `split_chunk_value` accepts exactly the values with a 5-byte header starting with version 1.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelvault::store::records::{
    self, CHUNK_HEADER_LEN, CHUNK_VALUE_VERSION, Header, IndexRecord, ModelRecord, SignerRecord,
    State, VersionRecord,
};
use serde_roundtrip::round_trip;

mod serde_roundtrip {
    use modelvault::store::records;
    use serde::{Serialize, de::DeserializeOwned};

    /// Decodes; on success checks encode(decode(x)) is a fixed point.
    pub fn round_trip<T: Serialize + DeserializeOwned>(what: &str, bytes: &[u8]) -> Option<T> {
        let v: T = records::decode(what, bytes).ok()?;
        let enc = records::encode(&v);
        let back: T = records::decode(what, &enc).expect("re-encoded record decodes");
        assert_eq!(records::encode(&back), enc, "{what}: record does not round-trip");
        Some(v)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    match sel % 7 {
        0 => {
            if let Some(m) = round_trip::<ModelRecord>("model", rest) {
                let back: ModelRecord = records::decode("model", &records::encode(&m)).unwrap();
                assert_eq!(back, m);
            }
        }
        1 => {
            if let Some(v) = round_trip::<VersionRecord>("version", rest) {
                // The manifest inside is untrusted too (it is checked before its signature
                // only by length); decoding it must not panic.
                let _ = modelvault::manifest::decode_canonical("version", &v.manifest);
            }
        }
        2 => {
            let _ = round_trip::<State>("state", rest);
        }
        3 => {
            let _ = round_trip::<SignerRecord>("signer", rest);
        }
        4 => {
            if let Some(h) = round_trip::<Header>("header", rest) {
                let back: Header = records::decode("header", &records::encode(&h)).unwrap();
                assert_eq!(back, h);
            }
        }
        5 => {
            let _ = round_trip::<IndexRecord>("index", rest);
        }
        _ => {
            let got = records::split_chunk_value(rest);
            assert_eq!(got, records::split_sealed(rest), "split_chunk_value != split_sealed");
            let valid = rest.len() >= CHUNK_HEADER_LEN && rest[0] == CHUNK_VALUE_VERSION;
            assert_eq!(got.is_some(), valid, "split_chunk_value accepted/refused wrongly");
            if let Some((epoch, sealed)) = got {
                assert_eq!(epoch, u32::from_be_bytes(rest[1..5].try_into().unwrap()));
                assert_eq!(sealed, &rest[CHUNK_HEADER_LEN..]);
                let rebuilt = [&records::sealed_prefix(epoch)[..], sealed].concat();
                assert_eq!(rebuilt, rest, "sealed_prefix does not rebuild the value");
            }
        }
    }
});
