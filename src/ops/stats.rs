//! `stats`, `similar` and `families`: how much the vault's versions share, from the chunk lists in
//! their signed manifests, computed over the chunk index of a metadata snapshot
//! (`ChunkIndex`, in `query::chunk_index`, which `query` also uses for its `chunks` table).
//! It must never read model data or write to the vault.
//!
//! Sizes: *logical* bytes are file bytes as put (each version counted in full); *unique* bytes are
//! the plaintext bytes of distinct chunks; *stored* bytes are what distinct chunks occupy sealed,
//! `plaintext + `[`STORED_OVERHEAD`] (version byte, epoch, nonce, GCM tag) each. Stored sizes come
//! from that fixed layout, not from reading the chunk table, so these commands read only
//! metadata, never model data. The dedup ratio is logical / unique bytes.
//!
//! Similarity is over chunk sets: two versions share a chunk when both manifests list its id.
//! `jaccard` = |A ∩ B| / |A ∪ B| over distinct chunk ids (P. Jaccard, 1901); rankings are by
//! shared stored bytes, which weighs a shared 1 MiB tensor chunk above a shared config file.

use std::collections::HashMap;

use serde::Serialize;

use super::VersionRef;
use super::query::{ChunkIndex, Snapshot};
#[cfg(doc)]
use crate::chunk::STORED_OVERHEAD;
use crate::names::escape;
use crate::store::{self, RecordRead};
use crate::vault::{Unlocked, Vault};
use crate::{Error, Result};

/// Default `min_shared` for [`Vault::families`]: versions sharing at least half of the smaller
/// one's stored bytes are one family.
pub const DEFAULT_MIN_SHARED: f64 = 0.5;

/// Vault-wide storage figures (see the module docs for logical, unique and stored bytes).
#[derive(Debug, Clone, Serialize)]
pub struct VaultStats {
    /// Models.
    pub models: u64,
    /// Versions.
    pub versions: u64,
    /// Files over all versions.
    pub files: u64,
    /// File bytes over all versions, each counted in full.
    pub logical_bytes: u64,
    /// Plaintext bytes of distinct referenced chunks.
    pub unique_bytes: u64,
    /// Sealed bytes of distinct referenced chunks.
    pub stored_bytes: u64,
    /// `logical_bytes / unique_bytes` (1.0 for an empty vault).
    pub dedup_ratio: f64,
    /// Distinct referenced chunks.
    pub chunks: u64,
    /// Chunk references over all files (with repeats).
    pub chunk_refs: u64,
    /// Chunk records in the vault file, referenced or not.
    pub chunks_in_file: u64,
    /// `chunks_in_file - chunks`: chunks `gc` would delete (exact when `verify` finds no
    /// missing chunk).
    pub unreferenced_chunks: u64,
    /// The key epoch new data is sealed under.
    pub key_epoch: u32,
    /// Size of the vault file in bytes.
    pub file_bytes: u64,
    /// One entry per model, by name.
    pub per_model: Vec<ModelStats>,
    /// Records that could not be read and so are not counted.
    pub problems: Vec<String>,
}

/// Storage figures for one model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelStats {
    /// Model name.
    pub name: String,
    /// Versions.
    pub versions: u64,
    /// File bytes over its versions.
    pub logical_bytes: u64,
    /// Plaintext bytes of the distinct chunks its versions use.
    pub unique_bytes: u64,
    /// Sealed bytes of those chunks.
    pub stored_bytes: u64,
    /// `logical_bytes / unique_bytes` within the model (1.0 when empty).
    pub dedup_ratio: f64,
    /// Plaintext bytes of chunks no other model uses (what removing the model and `gc` frees).
    pub exclusive_bytes: u64,
}

/// A version sharing chunks with the one asked about.
#[derive(Debug, Clone, Serialize)]
pub struct SimilarVersion {
    /// Model name.
    pub name: String,
    /// Version number.
    pub version: u64,
    /// Distinct chunks both use.
    pub shared_chunks: u64,
    /// Stored bytes of those chunks.
    pub shared_bytes: u64,
    /// |A ∩ B| / |A ∪ B| over distinct chunk ids, 0 to 1.
    pub jaccard: f64,
}

/// A model (all its versions together) sharing chunks with the version asked about.
#[derive(Debug, Clone, Serialize)]
pub struct SimilarModel {
    /// Model name.
    pub name: String,
    /// Distinct chunks the version and the model's versions both use.
    pub shared_chunks: u64,
    /// Stored bytes of those chunks.
    pub shared_bytes: u64,
    /// Jaccard index of the version's chunk set and the union of the model's chunk sets.
    pub jaccard: f64,
}

/// The result of [`Vault::similar`].
#[derive(Debug, Clone, Serialize)]
pub struct Similarity {
    /// Model asked about.
    pub name: String,
    /// Version asked about (resolved).
    pub version: u64,
    /// Its distinct chunks.
    pub chunks: u64,
    /// Their stored bytes.
    pub stored_bytes: u64,
    /// Other versions (of any model) sharing at least one chunk, most shared bytes first.
    pub versions: Vec<SimilarVersion>,
    /// Other models sharing at least one chunk, most shared bytes first.
    pub models: Vec<SimilarModel>,
}

/// One member of a family.
#[derive(Debug, Clone, Serialize)]
pub struct FamilyMember {
    /// Model name.
    pub name: String,
    /// Version number.
    pub version: u64,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// Logical size in bytes.
    pub size_bytes: u64,
    /// Fraction (0 to 1) of this member's stored bytes that the family's base also has.
    pub shared_with_base: f64,
}

/// Versions that share most of their bytes, such as a base model and its fine-tunes.
#[derive(Debug, Clone, Serialize)]
pub struct Family {
    /// The earliest-created member (the likely base model).
    pub base: FamilyMember,
    /// Every member, the base first, then by creation time.
    pub members: Vec<FamilyMember>,
    /// Logical bytes over the members.
    pub logical_bytes: u64,
    /// Plaintext bytes of the distinct chunks the members use.
    pub unique_bytes: u64,
}

/// The result of [`Vault::families`].
#[derive(Debug, Clone, Serialize)]
pub struct Families {
    /// The threshold used (see [`Vault::families`]).
    pub min_shared: f64,
    /// Families of two or more versions, largest first.
    pub families: Vec<Family>,
    /// Versions in no family.
    pub singletons: u64,
    /// Records that could not be read and so are not counted.
    pub problems: Vec<String>,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

/// Size of the intersection of two ascending sets, and its stored bytes.
fn intersect(a: &[u32], b: &[u32], idx: &ChunkIndex) -> (u64, u64) {
    let (mut i, mut j, mut n, mut bytes) = (0, 0, 0u64, 0u64);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                bytes += idx.stat(a[i]).stored_bytes();
                i += 1;
                j += 1;
            }
        }
    }
    (n, bytes)
}

struct UnionFind(Vec<usize>);

impl UnionFind {
    fn find(&mut self, mut x: usize) -> usize {
        while self.0[x] != x {
            self.0[x] = self.0[self.0[x]];
            x = self.0[x];
        }
        x
    }
    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.0[ra.max(rb)] = ra.min(rb);
        }
    }
}

/// Links every two versions of `idx` whose shared stored bytes are at least `min_shared` of the
/// smaller one's (see [`Vault::families`]); the sets of the result are the families.
fn link_versions(idx: &ChunkIndex, min_shared: f64) -> UnionFind {
    let n = idx.versions.len();
    // Inverted index: chunk → versions using it, ascending.
    let mut users: Vec<Vec<u32>> = vec![Vec::new(); idx.ids.len()];
    for (vi, v) in idx.versions.iter().enumerate() {
        for &c in &v.set {
            users[c as usize].push(vi as u32);
        }
    }
    let mut uf = UnionFind((0..n).collect());
    let mut acc = vec![0u64; n];
    let mut touched = Vec::new();
    for (a, va) in idx.versions.iter().enumerate() {
        for &c in &va.set {
            let us = &users[c as usize];
            let from = us.partition_point(|&b| (b as usize) <= a);
            let bytes = idx.stat(c).stored_bytes();
            for &b in &us[from..] {
                if acc[b as usize] == 0 {
                    touched.push(b as usize);
                }
                acc[b as usize] += bytes;
            }
        }
        for &b in &touched {
            let smaller = va.stored_bytes.min(idx.versions[b].stored_bytes);
            if acc[b] as f64 >= min_shared * smaller as f64 {
                uf.union(a, b);
            }
            acc[b] = 0;
        }
        touched.clear();
    }
    uf
}

/// The position of `name` version `version` in snapshot order (the order of
/// [`ChunkIndex::versions`]), or `None` if the snapshot does not hold it.
fn position(snap: &Snapshot, name: &str, version: u64) -> Option<usize> {
    let mut vi = 0;
    let mut tpos = None;
    for m in &snap.models {
        for (man, _) in &m.versions {
            if m.rec.name == name && man.version == version {
                tpos = Some(vi);
            }
            vi += 1;
        }
    }
    tpos
}

impl Vault<Unlocked> {
    /// Storage figures for the whole vault and per model. Reads metadata only (no model data).
    ///
    /// Errors: [`Error::Storage`].
    pub fn stats(&self) -> Result<VaultStats> {
        let snap = self.snapshot(None)?;
        let idx = ChunkIndex::build(&snap);
        let chunks_in_file = store::read(&self.db)?.chunk_count()?;
        let mut per_model = Vec::new();
        let mut seen_in_model = vec![usize::MAX; idx.ids.len()];
        let mut vi = 0;
        let (mut files, mut logical) = (0u64, 0u64);
        for (mi, m) in snap.models.iter().enumerate() {
            let mut ms = ModelStats {
                name: m.rec.name.clone(),
                versions: m.versions.len() as u64,
                logical_bytes: 0,
                unique_bytes: 0,
                stored_bytes: 0,
                dedup_ratio: 1.0,
                exclusive_bytes: 0,
            };
            for (man, _) in &m.versions {
                ms.logical_bytes += man.total_size();
                files += man.files.len() as u64;
                for &c in &idx.versions[vi].set {
                    if seen_in_model[c as usize] != mi {
                        seen_in_model[c as usize] = mi;
                        let s = idx.stat(c);
                        ms.unique_bytes += s.plain_bytes;
                        ms.stored_bytes += s.stored_bytes();
                        if s.models == 1 {
                            ms.exclusive_bytes += s.plain_bytes;
                        }
                    }
                }
                vi += 1;
            }
            ms.dedup_ratio = ratio(ms.logical_bytes, ms.unique_bytes);
            logical += ms.logical_bytes;
            per_model.push(ms);
        }
        let unique: u64 = idx.chunks.values().map(|s| s.plain_bytes).sum();
        let stored: u64 = idx.chunks.values().map(|s| s.stored_bytes()).sum();
        let refs: u64 = idx.chunks.values().map(|s| s.refcount).sum();
        let chunks = idx.chunks.len() as u64;
        Ok(VaultStats {
            models: snap.models.len() as u64,
            versions: idx.versions.len() as u64,
            files,
            logical_bytes: logical,
            unique_bytes: unique,
            stored_bytes: stored,
            dedup_ratio: ratio(logical, unique),
            chunks,
            chunk_refs: refs,
            chunks_in_file,
            unreferenced_chunks: chunks_in_file.saturating_sub(chunks),
            key_epoch: self.epoch(),
            file_bytes: std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0),
            per_model,
            problems: snap.problems,
        })
    }

    /// Versions and models ranked by the stored bytes they share with `name@r` (see the module
    /// docs). The version itself is left out of `versions`, its own model out of `models`.
    ///
    /// Errors: [`Error::ModelNotFound`], [`Error::VersionNotFound`], [`Error::Storage`].
    pub fn similar(&self, name: &str, r: &VersionRef) -> Result<Similarity> {
        let target = self.show(name, r)?;
        let snap = self.snapshot(None)?;
        let idx = ChunkIndex::build(&snap);
        // Locate the target in snapshot order.
        let tpos = position(&snap, name, target.version)
            .ok_or_else(|| Error::VersionNotFound { name: escape(name), reference: r.to_string() })?;
        let tv = &idx.versions[tpos];
        let mut in_target = vec![false; idx.ids.len()];
        for &c in &tv.set {
            in_target[c as usize] = true;
        }
        let mut versions = Vec::new();
        let mut models = Vec::new();
        let mut vi = 0;
        let mut seen_in_model = vec![usize::MAX; idx.ids.len()];
        for (mi, m) in snap.models.iter().enumerate() {
            let (mut m_shared, mut m_bytes, mut m_size) = (0u64, 0u64, 0u64);
            for (man, _) in &m.versions {
                let v = &idx.versions[vi];
                if vi != tpos {
                    let (n, bytes) = intersect(&tv.set, &v.set, &idx);
                    if n > 0 {
                        let union = (tv.set.len() + v.set.len()) as u64 - n;
                        versions.push(SimilarVersion {
                            name: m.rec.name.clone(),
                            version: man.version,
                            shared_chunks: n,
                            shared_bytes: bytes,
                            jaccard: ratio(n, union),
                        });
                    }
                }
                for &c in &v.set {
                    if seen_in_model[c as usize] != mi {
                        seen_in_model[c as usize] = mi;
                        m_size += 1;
                        if in_target[c as usize] {
                            m_shared += 1;
                            m_bytes += idx.stat(c).stored_bytes();
                        }
                    }
                }
                vi += 1;
            }
            if m.rec.name != name && m_shared > 0 {
                models.push(SimilarModel {
                    name: m.rec.name.clone(),
                    shared_chunks: m_shared,
                    shared_bytes: m_bytes,
                    jaccard: ratio(m_shared, tv.set.len() as u64 + m_size - m_shared),
                });
            }
        }
        versions.sort_by(|a, b| {
            b.shared_bytes
                .cmp(&a.shared_bytes)
                .then(b.jaccard.total_cmp(&a.jaccard))
                .then_with(|| (&a.name, a.version).cmp(&(&b.name, b.version)))
        });
        models.sort_by(|a, b| {
            b.shared_bytes.cmp(&a.shared_bytes).then(b.jaccard.total_cmp(&a.jaccard)).then_with(|| a.name.cmp(&b.name))
        });
        Ok(Similarity {
            name: name.to_string(),
            version: target.version,
            chunks: tv.set.len() as u64,
            stored_bytes: tv.stored_bytes,
            versions,
            models,
        })
    }

    /// Groups versions into families: two versions are linked when the stored bytes they share
    /// are at least `min_shared` (0 < min_shared ≤ 1; [`DEFAULT_MIN_SHARED`]) of the smaller one's
    /// stored bytes, and a family is a connected group of links (union-find). Cost: the sum over
    /// chunks of (versions using it)², which is small unless one chunk is in very many versions.
    ///
    /// Errors: [`Error::InvalidInput`] for `min_shared` outside (0, 1]; [`Error::Storage`].
    pub fn families(&self, min_shared: f64) -> Result<Families> {
        if !(min_shared > 0.0 && min_shared <= 1.0) {
            return Err(Error::InvalidInput(format!(" {min_shared}: give a fraction greater than 0 and at most 1"))
                .about(crate::Input::MinShared));
        }
        let snap = self.snapshot(None)?;
        let idx = ChunkIndex::build(&snap);
        let n = idx.versions.len();
        let mut uf = link_versions(&idx, min_shared);
        // Flatten the snapshot to (name, manifest) in index order.
        let flat: Vec<(&str, &crate::manifest::Manifest)> =
            snap.models.iter().flat_map(|m| m.versions.iter().map(move |(v, _)| (m.rec.name.as_str(), v))).collect();
        let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
        for v in 0..n {
            groups.entry(uf.find(v)).or_default().push(v);
        }
        let mut families = Vec::new();
        let mut singletons = 0;
        for (_, mut members) in groups {
            if members.len() < 2 {
                singletons += 1;
                continue;
            }
            members.sort_by_key(|&v| (flat[v].1.created, flat[v].0, flat[v].1.version));
            let base = members[0];
            let member = |v: usize| {
                let (_, shared) = intersect(&idx.versions[v].set, &idx.versions[base].set, &idx);
                FamilyMember {
                    name: flat[v].0.to_string(),
                    version: flat[v].1.version,
                    created: flat[v].1.created,
                    size_bytes: flat[v].1.total_size(),
                    shared_with_base: ratio(shared, idx.versions[v].stored_bytes),
                }
            };
            let mut seen = std::collections::HashSet::new();
            let mut unique = 0u64;
            for &v in &members {
                for &c in &idx.versions[v].set {
                    if seen.insert(c) {
                        unique += idx.stat(c).plain_bytes;
                    }
                }
            }
            let list: Vec<FamilyMember> = members.iter().map(|&v| member(v)).collect();
            families.push(Family {
                base: list[0].clone(),
                logical_bytes: list.iter().map(|m| m.size_bytes).sum(),
                unique_bytes: unique,
                members: list,
            });
        }
        families.sort_by(|a, b| {
            b.members
                .len()
                .cmp(&a.members.len())
                .then_with(|| (&a.base.name, a.base.version).cmp(&(&b.base.name, b.base.version)))
        });
        Ok(Families { min_shared, families, singletons, problems: snap.problems })
    }
}
