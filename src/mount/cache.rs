//! The mount's cache of decrypted chunks: a bounded, least-recently-used map from chunk id to
//! the chunk's authenticated plaintext, in process memory only.
//!
//! It holds only chunks that opened (tag and length checked): a chunk that failed is never
//! stored, so every later read of it fails again. Its bound is in bytes of plaintext
//! ([`ChunkCache::new`]); an entry being read by a caller stays alive (shared) until that read
//! is done, so memory can exceed the bound by the chunks of the reads in flight. Evicted
//! plaintext is wiped ([`zeroize::Zeroizing`]) when its last reader lets go. This module must
//! never write a byte to disk or open a sealed value itself.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use zeroize::Zeroizing;

use crate::store::chunks::ChunkId;

/// One cached plaintext chunk, shared with the reads using it.
pub type Plain = Arc<Zeroizing<Vec<u8>>>;

struct Inner {
    /// id → (last use, plaintext).
    map: HashMap<ChunkId, (u64, Plain)>,
    /// last use → id: the eviction order.
    order: BTreeMap<u64, ChunkId>,
    /// Plaintext bytes held.
    bytes: usize,
    tick: u64,
    hits: u64,
    misses: u64,
}

/// A bounded LRU cache of decrypted chunks (see the module docs).
pub struct ChunkCache {
    max_bytes: usize,
    inner: Mutex<Inner>,
}

/// What the cache did so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Chunks found in the cache.
    pub hits: u64,
    /// Chunks that had to be decrypted.
    pub misses: u64,
    /// Plaintext bytes held now.
    pub bytes: usize,
    /// Chunks held now.
    pub chunks: usize,
}

impl ChunkCache {
    /// A cache holding at most `max_bytes` bytes of plaintext (0: nothing is kept).
    pub fn new(max_bytes: usize) -> Self {
        let inner = Inner { map: HashMap::new(), order: BTreeMap::new(), bytes: 0, tick: 0, hits: 0, misses: 0 };
        ChunkCache { max_bytes, inner: Mutex::new(inner) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The state stays consistent at every await-free step, so a panic elsewhere leaves it usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The plaintext of `id` when cached (and marks it used), counting a hit or a miss.
    pub fn get(&self, id: &ChunkId) -> Option<Plain> {
        let mut g = self.lock();
        g.tick += 1;
        let tick = g.tick;
        let Some((used, plain)) = g.map.get_mut(id) else {
            g.misses += 1;
            return None;
        };
        let (old, plain) = (std::mem::replace(used, tick), plain.clone());
        g.order.remove(&old);
        g.order.insert(tick, *id);
        g.hits += 1;
        Some(plain)
    }

    /// Keeps `plain` as the plaintext of `id`, evicting the least recently used chunks to stay
    /// within the bound. A chunk larger than the bound is not kept.
    pub fn insert(&self, id: ChunkId, plain: Plain) {
        if plain.len() > self.max_bytes {
            return;
        }
        let mut g = self.lock();
        g.tick += 1;
        let tick = g.tick;
        if let Some((old, prev)) = g.map.insert(id, (tick, plain.clone())) {
            g.order.remove(&old);
            g.bytes -= prev.len();
        }
        g.order.insert(tick, id);
        g.bytes += plain.len();
        while g.bytes > self.max_bytes {
            let Some((_, victim)) = g.order.pop_first() else { break };
            if let Some((_, p)) = g.map.remove(&victim) {
                g.bytes -= p.len();
            }
        }
    }

    /// Counts and size so far.
    pub fn stats(&self) -> CacheStats {
        let g = self.lock();
        CacheStats { hits: g.hits, misses: g.misses, bytes: g.bytes, chunks: g.map.len() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(n: usize, b: u8) -> Plain {
        Arc::new(Zeroizing::new(vec![b; n]))
    }

    #[test]
    fn keeps_within_the_bound_and_evicts_the_least_recently_used() {
        let c = ChunkCache::new(30);
        c.insert([1; 32], plain(10, 1));
        c.insert([2; 32], plain(10, 2));
        c.insert([3; 32], plain(10, 3));
        assert_eq!(c.get(&[1; 32]).unwrap()[0], 1); // 1 is now the most recent
        c.insert([4; 32], plain(10, 4)); // evicts 2
        assert!(c.get(&[2; 32]).is_none());
        assert_eq!(c.get(&[3; 32]).unwrap()[0], 3);
        assert_eq!(c.get(&[4; 32]).unwrap()[0], 4);
        assert_eq!(c.get(&[1; 32]).unwrap()[0], 1);
        let s = c.stats();
        assert_eq!((s.bytes, s.chunks, s.hits, s.misses), (30, 3, 4, 1));
        // Replacing an entry does not count it twice; one over the bound is not kept.
        c.insert([4; 32], plain(10, 5));
        assert_eq!(c.stats().bytes, 30);
        c.insert([9; 32], plain(31, 9));
        assert!(c.get(&[9; 32]).is_none());
        assert_eq!(c.stats().chunks, 3);
        // A zero bound keeps nothing.
        let z = ChunkCache::new(0);
        z.insert([1; 32], plain(1, 1));
        assert!(z.get(&[1; 32]).is_none());
    }
}
