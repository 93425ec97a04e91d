//! `formats::onnx::parse` (and `check_external_data`, as `analyze` runs it) on arbitrary bytes.
//! Properties: no panic; rank bounded; every tensor counted by the helpers comes from the list.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use modelvault::formats::onnx;

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let Ok(m) = onnx::parse(&mut Cursor::new(data), len) else {
        return;
    };
    for t in &m.tensors {
        assert!(t.dims.len() <= onnx::MAX_RANK, "rank {} over MAX_RANK", t.dims.len());
        if let Some(e) = &t.external {
            let _ = onnx::external_data_escapes(&e.location);
        }
    }
    assert!(m.initializers().count() <= m.tensors.len());
    let ext = m.external_tensors().count();
    assert!(ext <= m.tensors.len());
    let checked = onnx::check_external_data(&m);
    if ext == 0 {
        assert!(checked.is_ok(), "no external tensors but check_external_data failed");
    }
    if let Err(e) = checked {
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "error message is not one line: {msg:?}");
    }
});
