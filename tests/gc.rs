//! Removal and garbage collection: bugs.md B19. Deleting a version never frees a chunk another
//! version uses; deleting everything gives every byte back; gc is idempotent; a missing chunk is
//! reported, not fatal.

mod common;

use std::collections::HashSet;

use crate::common::tables::CHUNKS;
use common::*;
use modelvault::{GetOptions, NoProgress, PutOptions, VersionRef};

fn ids(v: &modelvault::Vault<modelvault::Unlocked>, r: u64) -> HashSet<[u8; 32]> {
    v.manifest("s", &VersionRef::Number(r)).unwrap().files[0].chunks.iter().map(|c| c.id).collect()
}

#[test]
fn gc_keeps_shared_chunks_reclaims_everything_and_is_idempotent_b19() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    let empty_size = std::fs::metadata(&path).unwrap().len();
    let a = corpus().join("safetensors/silero_vad_16k.safetensors");
    let b = corpus().join("safetensors/silero_vad_16k.one-tensor-changed.safetensors");
    v.put(&a, "s", &PutOptions::default(), &NoProgress).unwrap();
    v.put(&b, "s", &PutOptions::default(), &NoProgress).unwrap();
    let (v1, v2) = (ids(&v, 1), ids(&v, 2));
    let shared = v1.intersection(&v2).count();

    v.remove_version("s", &VersionRef::Number(1)).unwrap();
    let g = v.gc().unwrap();
    assert_eq!(g.chunks_removed as usize, v1.len() - shared);
    assert_eq!(g.chunks_kept as usize, v2.len());
    assert!(g.missing.is_empty());
    let out = dir.path().join("out");
    v.get("s", &VersionRef::Number(2), &out, &GetOptions::default(), &NoProgress).unwrap();
    assert_eq!(std::fs::read(out.join(b.file_name().unwrap())).unwrap(), std::fs::read(&b).unwrap());

    let again = v.gc().unwrap();
    assert_eq!((again.chunks_removed, again.bytes_removed), (0, 0), "a second gc must be a no-op");

    v.remove_version("s", &VersionRef::Number(2)).unwrap();
    let g = v.gc().unwrap();
    assert_eq!(g.chunks_removed as usize, v2.len());
    assert_eq!(g.chunks_kept, 0);
    assert!(v.list(None).unwrap().models.is_empty());
    drop(v);
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(
        size <= empty_size + 64 * 1024,
        "after deleting everything the file is {size} bytes; empty was {empty_size}"
    );
    assert_eq!(tamper::keys(&path, CHUNKS).len(), 0);
}

#[test]
fn gc_reports_a_missing_chunk_and_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    let a = corpus().join("safetensors/silero_vad_16k.safetensors");
    v.put(&a, "s", &PutOptions::default(), &NoProgress).unwrap();
    v.put(&corpus().join("gguf/silero_vad_16k.from-safetensors.f16.gguf"), "g", &PutOptions::default(), &NoProgress)
        .unwrap();
    v.remove_version("g", &VersionRef::Number(1)).unwrap();
    let victim = *ids(&v, 1).iter().next().unwrap();
    drop(v);
    tamper::edit(&path, CHUNKS, |t| {
        t.remove(&victim).unwrap();
    });
    let mut v = reopen(&path);
    let g = v.gc().unwrap();
    assert_eq!(g.missing.len(), 1, "{:?}", g.missing);
    assert!(g.missing[0].contains("model 's' version 1 file 'silero_vad_16k.safetensors'"), "{}", g.missing[0]);
    assert!(g.chunks_removed > 0, "the removed model's chunks are still collected");
    let g2 = v.gc().unwrap();
    assert_eq!(g2.chunks_removed, 0);
    assert_eq!(g2.missing.len(), 1);
}

#[test]
fn removing_a_version_drops_its_aliases_and_the_last_one_drops_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = new_vault(dir.path());
    let a = corpus().join("safetensors/silero_vad_16k.safetensors");
    let opts = PutOptions { aliases: vec!["prod".into()], ..Default::default() };
    v.put(&a, "s", &opts, &NoProgress).unwrap();
    v.put(&a, "s", &PutOptions::default(), &NoProgress).unwrap();
    assert_eq!(v.show("s", &VersionRef::Alias("prod".into())).unwrap().version, 1);
    v.remove_version("s", &VersionRef::Alias("prod".into())).unwrap();
    assert!(v.show("s", &VersionRef::Alias("prod".into())).is_err());
    assert_eq!(v.show("s", &VersionRef::Latest).unwrap().version, 2);
    v.remove_version("s", &VersionRef::Latest).unwrap();
    assert!(matches!(v.show("s", &VersionRef::Latest).unwrap_err(), modelvault::Error::ModelNotFound(_)));
}
