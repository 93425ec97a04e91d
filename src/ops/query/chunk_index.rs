//! The chunk index of a metadata snapshot ([`ChunkIndex`]): every chunk the snapshot's manifests
//! reference, with its counts, and each version's set of distinct chunks. `query` fills its
//! `chunks` table and the per-version chunk columns from it; `stats`, `similar` and `families`
//! compute from it.
//!
//! Sizes are derived from the manifests alone: stored bytes are `plaintext + `[`STORED_OVERHEAD`]
//! per chunk. It must never read the vault's storage or model data.

use std::collections::HashMap;

use super::snapshot::Snapshot;
use crate::chunk::STORED_OVERHEAD;

/// Counts for one distinct chunk.
#[derive(Debug, Clone)]
pub(crate) struct ChunkStat {
    /// Plaintext length in bytes.
    pub plain_bytes: u64,
    /// References from all files of all versions.
    pub refcount: u64,
    /// Distinct versions referencing it.
    pub versions: u64,
    /// Distinct models referencing it.
    pub models: u64,
    last_version: usize,
    last_model: usize,
}

impl ChunkStat {
    /// Sealed size in bytes.
    pub fn stored_bytes(&self) -> u64 {
        self.plain_bytes + STORED_OVERHEAD as u64
    }
}

/// Per-version chunk facts, in snapshot order (models by name, versions ascending).
#[derive(Debug, Clone, Default)]
pub(crate) struct VersionChunks {
    /// Chunk references (with repeats).
    pub chunks: u64,
    /// Distinct chunk indices, ascending.
    pub set: Vec<u32>,
    /// Plaintext bytes of distinct chunks.
    pub unique_bytes: u64,
    /// Stored bytes of distinct chunks.
    pub stored_bytes: u64,
    /// Plaintext bytes of chunks no other version references (what `rm` + `gc` would free).
    pub exclusive_bytes: u64,
}

/// Every referenced chunk with its counts, and each version's chunk set.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChunkIndex {
    /// Chunk id → index into `stats`.
    pub chunks: HashMap<[u8; 32], ChunkStat>,
    /// Chunk ids by dense index.
    pub ids: Vec<[u8; 32]>,
    /// One entry per version of the snapshot, in order.
    pub versions: Vec<VersionChunks>,
}

impl ChunkIndex {
    /// Indexes every chunk reference of every manifest in `snap`.
    pub fn build(snap: &Snapshot) -> ChunkIndex {
        let mut dense: HashMap<[u8; 32], u32> = HashMap::new();
        let mut ids: Vec<[u8; 32]> = Vec::new();
        let mut stats: Vec<ChunkStat> = Vec::new();
        let mut versions = Vec::new();
        for (mi, m) in snap.models.iter().enumerate() {
            for (man, _) in &m.versions {
                let vi = versions.len();
                let mut vc = VersionChunks::default();
                for c in man.files.iter().flat_map(|f| &f.chunks) {
                    vc.chunks += 1;
                    let idx = *dense.entry(c.id).or_insert_with(|| {
                        ids.push(c.id);
                        stats.push(ChunkStat {
                            plain_bytes: c.len as u64,
                            refcount: 0,
                            versions: 0,
                            models: 0,
                            last_version: usize::MAX,
                            last_model: usize::MAX,
                        });
                        (ids.len() - 1) as u32
                    });
                    let s = &mut stats[idx as usize];
                    s.refcount += 1;
                    if s.last_version != vi {
                        s.last_version = vi;
                        s.versions += 1;
                        vc.set.push(idx);
                        vc.unique_bytes += s.plain_bytes;
                        vc.stored_bytes += s.stored_bytes();
                    }
                    if s.last_model != mi {
                        s.last_model = mi;
                        s.models += 1;
                    }
                }
                vc.set.sort_unstable();
                versions.push(vc);
            }
        }
        for vc in &mut versions {
            vc.exclusive_bytes =
                vc.set.iter().map(|&i| &stats[i as usize]).filter(|s| s.versions == 1).map(|s| s.plain_bytes).sum();
        }
        let chunks = ids.iter().copied().zip(stats.iter().cloned()).collect();
        ChunkIndex { chunks, ids, versions }
    }

    /// The stat of dense chunk `i`.
    pub(crate) fn stat(&self, i: u32) -> &ChunkStat {
        &self.chunks[&self.ids[i as usize]]
    }
}
