//! `Vault::read_range`: any byte range of a stored file comes back byte-identical to the original
//! file, decrypting only the chunks that hold it; a range past the end, an unknown file or a
//! manifest of another vault is refused, and a damaged chunk is never handed out.

mod common;

use common::*;
use modelvault::{Error, NoProgress, PutOptions, VersionRef};

/// How many chunks of `f` hold a byte of `[offset, offset + len)`.
fn overlapping(f: &modelvault::manifest::FileEntry, offset: u64, len: u64) -> usize {
    let mut at = 0u64;
    let mut n = 0;
    for c in &f.chunks {
        let end = at + c.len as u64;
        if end > offset && at < offset + len {
            n += 1;
        }
        at = end;
    }
    n
}

#[test]
fn every_tensor_of_minilm_reads_back_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut v) = new_vault(dir.path());
    let src = corpus().join("safetensors/all-MiniLM-L6-v2.model.safetensors");
    let orig = std::fs::read(&src).unwrap();
    v.put(&src, "minilm", &PutOptions::default(), &NoProgress).unwrap();
    let m = v.manifest("minilm", &VersionRef::Latest).unwrap();
    let f = &m.files[0];
    assert_eq!(f.tensors.len(), 104);
    let total_chunks = f.chunks.len();
    for t in &f.tensors {
        let mut buf = vec![0u8; t.len as usize];
        let n = v.read_range(&m, &f.path, t.offset, &mut buf).unwrap();
        assert_eq!(buf, &orig[t.offset as usize..(t.offset + t.len) as usize], "tensor {}", t.name);
        // Exactly the chunks overlapping the tensor's bytes were decrypted.
        assert_eq!(n, overlapping(f, t.offset, t.len), "tensor {}", t.name);
        assert!(n < total_chunks);
    }
    // The header, across no tensor, and the last byte.
    let mut head = [0u8; 8];
    v.read_range(&m, &f.path, 0, &mut head).unwrap();
    assert_eq!(u64::from_le_bytes(head), 11_408);
    let mut last = [0u8; 1];
    v.read_range(&m, &f.path, orig.len() as u64 - 1, &mut last).unwrap();
    assert_eq!(last[0], *orig.last().unwrap());
    assert_eq!(v.read_range(&m, &f.path, orig.len() as u64, &mut []).unwrap(), 0);
}

#[test]
fn refusals_name_the_file_and_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut v) = new_vault(dir.path());
    let src = corpus().join("safetensors/silero_vad_16k.safetensors");
    v.put(&src, "silero", &PutOptions::default(), &NoProgress).unwrap();
    let m = v.manifest("silero", &VersionRef::Latest).unwrap();
    let path = m.files[0].path.clone();
    let mut two = [0u8; 2];
    let e = v.read_range(&m, &path, 1_239_747, &mut two).unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!("model 'silero' version 1 file '{path}': bytes 1239747..1239749 are past its end (1239748 bytes)")
    );
    let e = v.read_range(&m, &path, u64::MAX, &mut two).unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
    let e = v.read_range(&m, "nope.bin", 0, &mut two).unwrap_err();
    assert!(matches!(e.base(), Error::NotFound(_)), "{e:?}");
    assert!(e.to_string().contains("silero@1 has no file 'nope.bin'"), "{e}");
    let mut other = m.clone();
    other.vault_id = [0; 16];
    let e = v.read_range(&other, &path, 0, &mut two).unwrap_err();
    assert!(e.to_string().contains("belongs to another vault"), "{e}");
}
