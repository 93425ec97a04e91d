//! `mvault stats`, `similar` and `families`: storage figures and chunk-set similarity, checked
//! against vaults whose sharing is known by construction.

mod common;

use std::path::Path;

use common::*;
use modelvault::chunk::{MAX_CHUNK, STORED_OVERHEAD};
use modelvault::{NoProgress, PutOptions, Unlocked, Vault, VersionRef};

/// `n` full chunks of deterministic pseudo-random bytes (xorshift), distinct per `seed`.
fn blob(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n * MAX_CHUNK)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn put(v: &mut Vault<Unlocked>, dir: &Path, name: &str, data: &[u8]) -> u64 {
    let f = dir.join("model.dat");
    std::fs::write(&f, data).unwrap();
    v.put(&f, name, &PutOptions::default(), &NoProgress).unwrap().version
}

/// A fine-tune of `base`: the same bytes with one byte changed in each of the first `k` chunks.
fn tune(base: &[u8], k: usize, salt: u8) -> Vec<u8> {
    let mut t = base.to_vec();
    for c in 0..k {
        t[c * MAX_CHUNK + 7] ^= 0x5A ^ salt;
    }
    t
}

/// base@1 (8 chunks); base@2 identical; tuned@1 shares 6 of 8 chunks with base; tuned@2 shares
/// 7 of 8; other@1 shares nothing.
fn family_vault(dir: &Path) -> Vault<Unlocked> {
    let (_, mut v) = new_vault(dir);
    let base = blob(1, 8);
    put(&mut v, dir, "base", &base);
    put(&mut v, dir, "base", &base);
    put(&mut v, dir, "tuned", &tune(&base, 2, 1));
    put(&mut v, dir, "tuned", &tune(&base, 1, 2));
    put(&mut v, dir, "other", &blob(2, 4));
    v
}

#[test]
fn stats_count_logical_unique_and_stored_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let v = family_vault(dir.path());
    let s = v.stats().unwrap();
    let c = MAX_CHUNK as u64;
    assert_eq!((s.models, s.versions, s.files), (3, 5, 5));
    assert_eq!(s.logical_bytes, (8 + 8 + 8 + 8 + 4) * c);
    // Distinct chunks: base 8, tuned@1 adds 2, tuned@2 adds 1, other 4.
    assert_eq!(s.chunks, 15);
    assert_eq!(s.chunk_refs, 36);
    assert_eq!(s.unique_bytes, 15 * c);
    assert_eq!(s.stored_bytes, 15 * (c + STORED_OVERHEAD as u64));
    assert!((s.dedup_ratio - 36.0 / 15.0).abs() < 1e-9);
    assert_eq!((s.chunks_in_file, s.unreferenced_chunks), (15, 0));
    assert_eq!(s.key_epoch, v.epoch());
    let base = s.per_model.iter().find(|m| m.name == "base").unwrap();
    assert_eq!((base.versions, base.logical_bytes, base.unique_bytes), (2, 16 * c, 8 * c));
    assert!((base.dedup_ratio - 2.0).abs() < 1e-9);
    // Only the two chunks tuned@1's first chunks replaced... base's exclusive chunks are those
    // neither tuned version uses: chunk 0 is replaced in both, chunk 1 in tuned@1 only.
    assert_eq!(base.exclusive_bytes, c);
    let other = s.per_model.iter().find(|m| m.name == "other").unwrap();
    assert_eq!(other.exclusive_bytes, 4 * c);

    // Removing a version and not collecting leaves unreferenced chunks, which stats reports.
    v.remove_version("other", &VersionRef::Number(1)).unwrap();
    let s = v.stats().unwrap();
    assert_eq!((s.chunks, s.chunks_in_file, s.unreferenced_chunks), (11, 15, 4));
}

#[test]
fn similar_ranks_by_shared_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let v = family_vault(dir.path());
    let s = v.similar("tuned", &VersionRef::Number(2)).unwrap();
    assert_eq!((s.version, s.chunks), (2, 8));
    let order: Vec<(String, u64, u64)> =
        s.versions.iter().map(|x| (x.name.clone(), x.version, x.shared_chunks)).collect();
    assert_eq!(
        order,
        [("base".into(), 1, 7), ("base".into(), 2, 7), ("tuned".into(), 1, 6)],
        "the unrelated model is absent"
    );
    let stored = (MAX_CHUNK + STORED_OVERHEAD) as u64;
    assert_eq!(s.versions[0].shared_bytes, 7 * stored);
    assert!((s.versions[0].jaccard - 7.0 / 9.0).abs() < 1e-9);
    assert!((s.versions[2].jaccard - 6.0 / 10.0).abs() < 1e-9);
    let models: Vec<&str> = s.models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(models, ["base"], "its own model and unrelated models are left out");
    let lone = v.similar("other", &VersionRef::Latest).unwrap();
    assert!(lone.versions.is_empty() && lone.models.is_empty());
    assert!(matches!(v.similar("nope", &VersionRef::Latest), Err(modelvault::Error::ModelNotFound(_))));
}

#[test]
fn families_group_a_base_and_its_fine_tunes() {
    let dir = tempfile::tempdir().unwrap();
    let v = family_vault(dir.path());
    let f = v.families(0.5).unwrap();
    assert_eq!(f.families.len(), 1);
    assert_eq!(f.singletons, 1);
    let fam = &f.families[0];
    assert_eq!((fam.base.name.as_str(), fam.base.version), ("base", 1));
    let members: Vec<(String, u64)> = fam.members.iter().map(|m| (m.name.clone(), m.version)).collect();
    assert_eq!(members, [("base".into(), 1), ("base".into(), 2), ("tuned".into(), 1), ("tuned".into(), 2)]);
    assert_eq!(fam.unique_bytes, 11 * MAX_CHUNK as u64);
    let t1 = &fam.members[2];
    assert!((t1.shared_with_base - 0.75).abs() < 1e-9, "{}", t1.shared_with_base);
    // A threshold above what the fine-tunes share splits them off.
    let strict = v.families(0.9).unwrap();
    assert_eq!(strict.families.len(), 1);
    assert_eq!(strict.families[0].members.len(), 2);
    assert_eq!(strict.singletons, 3);
    for bad in [0.0, -1.0, 1.5, f64::NAN] {
        let e = v.families(bad).unwrap_err();
        assert!(cli_exit::message(&e).starts_with("--min-shared "), "{e}");
        assert!(e.to_string().starts_with("the minimum shared fraction "), "{e}");
    }
}

#[test]
fn cli_stats_similar_families_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    drop(family_vault(d));
    let out = mvault(d).args(["stats"]).output().unwrap();
    assert!(out.status.success());
    let t = String::from_utf8(out.stdout).unwrap();
    assert!(t.contains("dedup ratio:   2.40x"), "{t}");
    assert!(t.contains("key epoch:"), "{t}");
    let out = mvault(d).args(["--json", "stats"]).output().unwrap();
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["chunks"], 15);
    assert_eq!(j["per_model"].as_array().unwrap().len(), 3);

    let out = mvault(d).args(["similar", "tuned@2", "--limit", "1"]).output().unwrap();
    assert!(out.status.success());
    let t = String::from_utf8(out.stdout).unwrap();
    assert!(t.contains("base@1") && !t.contains("tuned@1 "), "{t}");
    let out = mvault(d).args(["--json", "similar", "tuned@2"]).output().unwrap();
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["versions"].as_array().unwrap().len(), 3);

    let out = mvault(d).args(["families"]).output().unwrap();
    let t = String::from_utf8(out.stdout).unwrap();
    assert!(t.contains("family of base@1: 4 version(s)"), "{t}");
    assert!(t.contains("1 version(s) in no family"), "{t}");
    let out = mvault(d).args(["--json", "families", "--min-shared", "0.9"]).output().unwrap();
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["families"].as_array().unwrap().len(), 1);

    let out = mvault(d).args(["families", "--min-shared", "2"]).output().unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--min-shared 2: give a fraction greater than 0 and at most 1")
    );
    let out = mvault(d).args(["similar", "nope@1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
}

#[test]
fn empty_vault_stats() {
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = new_vault(dir.path());
    let s = v.stats().unwrap();
    assert_eq!((s.models, s.versions, s.chunks, s.logical_bytes), (0, 0, 0, 0));
    assert_eq!(s.dedup_ratio, 1.0);
    assert!(v.families(0.5).unwrap().families.is_empty());
    assert!(v.query("SELECT * FROM versions").unwrap().rows.is_empty());
}
