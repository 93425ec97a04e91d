//! `manifest::decode_canonical` on arbitrary bytes.
//! Properties: no panic; a successful decode re-encodes to exactly the input and has the current
//! manifest version; `check()` does not panic, and on a manifest that passes it `total_size()`
//! does not overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelvault::manifest::{self, MANIFEST_VERSION};

fuzz_target!(|data: &[u8]| {
    let Ok(m) = manifest::decode_canonical("fuzz", data) else {
        return;
    };
    assert_eq!(m.encode(), data, "decode_canonical accepted a non-canonical encoding");
    assert_eq!(m.manifest_version, MANIFEST_VERSION);
    let again = manifest::decode_canonical("fuzz", &m.encode()).expect("re-encoding decodes");
    assert_eq!(again, m);
    if m.check().is_ok() {
        let _ = m.total_size();
        for f in &m.files {
            modelvault_fuzz::assert_tensors_within("manifest", &sorted(&f.tensors), f.size);
        }
    }
});

fn sorted(t: &[modelvault::formats::tensor::TensorInfo]) -> Vec<modelvault::formats::tensor::TensorInfo> {
    let mut v = t.to_vec();
    v.sort_by_key(|t| t.offset);
    v
}
