//! The log's Merkle tree over the `log_hashes` table, through the `tlog_tiles` crate (a port of
//! Go's `sumdb/tlog`): RFC 6962 hashing, stored hashes numbered as C2SP tlog-tiles numbers
//! them, the root of any prefix and consistency proofs between two sizes. It must never trust a
//! stored hash it was not asked to check: [`check_all`] recomputes every one from the leaves.

use tlog_tiles::{Hash, HashReader};

use crate::store::LogRead;
use crate::store::records::LogHead;
use crate::{Error, Result};

/// The stored hashes of a transaction as `tlog_tiles` reads them. A missing hash is an error
/// (the table was cut short), never a zero hash.
pub(crate) struct Stored<'a, R: LogRead>(pub &'a R);

impl<R: LogRead> HashReader for Stored<'_, R> {
    fn read_hashes(&self, indexes: &[u64]) -> std::result::Result<Vec<Hash>, tlog_tiles::Error> {
        let got = self.0.log_hashes(indexes).map_err(|e| tlog_tiles::Error::InvalidInput(e.to_string()))?;
        got.into_iter()
            .zip(indexes)
            .map(|(h, i)| {
                h.map(Hash).ok_or_else(|| tlog_tiles::Error::InvalidInput(format!("stored hash {i} is missing")))
            })
            .collect()
    }
}

fn damaged(what: impl std::fmt::Display) -> Error {
    Error::Damaged(format!("the vault's log is damaged: {what}; restore the vault from a backup"))
}

/// The stored hashes leaf `seq` adds (its record hash first) and the index of the first, for a
/// tree that holds leaves `0..seq`.
///
/// Errors: [`Error::Damaged`] when a stored hash it needs is missing; [`Error::Storage`].
pub(crate) fn hashes_for(r: &impl LogRead, seq: u64, leaf: &[u8]) -> Result<(u64, Vec<[u8; 32]>)> {
    let hashes = tlog_tiles::stored_hashes(seq, leaf, &Stored(r)).map_err(damaged)?;
    Ok((tlog_tiles::stored_hash_index(0, seq), hashes.into_iter().map(|h| h.0).collect()))
}

/// The root of the tree of the first `size` leaves (RFC 6962's empty-tree hash for 0).
///
/// Errors: [`Error::Damaged`] when a stored hash it needs is missing; [`Error::Storage`].
pub(crate) fn root(r: &impl LogRead, size: u64) -> Result<[u8; 32]> {
    tlog_tiles::tree_hash(size, &Stored(r)).map(|h| h.0).map_err(damaged)
}

/// Checks that the tree `(old_size, old_root)` is a prefix of `head`: a consistency proof built
/// from the stored hashes and checked with `tlog_tiles::check_tree`. `Ok(false)` when it is not
/// (the log was rewritten, or cut short: `old_size > head.size`).
///
/// Errors: [`Error::Storage`]; [`Error::Damaged`] when a stored hash the proof needs is missing.
pub(crate) fn extends(r: &impl LogRead, head: &LogHead, old_size: u64, old_root: &[u8; 32]) -> Result<bool> {
    if old_size > head.size {
        return Ok(false);
    }
    if old_size == head.size {
        return Ok(old_root == &head.root);
    }
    if old_size == 0 {
        return Ok(old_root == &tlog_tiles::EMPTY_HASH.0);
    }
    let proof = tlog_tiles::prove_tree(head.size, old_size, &Stored(r)).map_err(damaged)?;
    Ok(tlog_tiles::check_tree(&proof, head.size, Hash(head.root), old_size, Hash(*old_root)).is_ok())
}

/// Recomputes every stored hash of a tree of `leaves.len()` leaves from the leaves' bytes and
/// compares each with the table. Returns the first index that differs or is missing, as
/// `(stored hash index, leaf it belongs to)`, or `None` when all match and the table holds no
/// more.
///
/// Errors: [`Error::Storage`].
pub(crate) fn check_all(r: &impl LogRead, leaves: &[Vec<u8>]) -> Result<Option<(u64, u64)>> {
    // Rebuild in memory, leaf by leaf, with the same numbering.
    let mut built: Vec<Hash> = Vec::new();
    struct Mem<'a>(&'a [Hash]);
    impl HashReader for Mem<'_> {
        fn read_hashes(&self, ix: &[u64]) -> std::result::Result<Vec<Hash>, tlog_tiles::Error> {
            ix.iter().map(|&i| self.0.get(i as usize).copied().ok_or(tlog_tiles::Error::IndexesNotInTree)).collect()
        }
    }
    for (seq, leaf) in leaves.iter().enumerate() {
        let add = tlog_tiles::stored_hashes(seq as u64, leaf, &Mem(&built)).map_err(damaged)?;
        built.extend(add);
        let first = tlog_tiles::stored_hash_index(0, seq as u64);
        let ix: Vec<u64> = (first..built.len() as u64).collect();
        let stored = r.log_hashes(&ix)?;
        for (i, got) in ix.iter().zip(stored) {
            if got != Some(built[*i as usize].0) {
                return Ok(Some((*i, seq as u64)));
            }
        }
    }
    let count = r.log_hash_count()?;
    if count != built.len() as u64 {
        return Ok(Some((built.len() as u64, leaves.len() as u64)));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ct_merkle::mem_backed_tree::MemoryBackedTree;
    use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
    use sha2::{Digest, Sha256};

    use super::*;

    /// The log tables in memory.
    #[derive(Default)]
    struct Mem {
        hashes: BTreeMap<u64, [u8; 32]>,
    }

    impl LogRead for Mem {
        fn log_entry(&self, _: u64) -> Result<Option<Vec<u8>>> {
            Ok(None)
        }
        fn log_entries(&self) -> Result<Vec<(u64, Vec<u8>)>> {
            Ok(Vec::new())
        }
        fn log_hashes(&self, indexes: &[u64]) -> Result<Vec<Option<[u8; 32]>>> {
            Ok(indexes.iter().map(|i| self.hashes.get(i).copied()).collect())
        }
        fn log_hash_count(&self) -> Result<u64> {
            Ok(self.hashes.len() as u64)
        }
    }

    fn leaf(i: usize) -> Vec<u8> {
        format!("leaf {i}").into_bytes()
    }

    fn digests(p: &[Hash]) -> Vec<ct_merkle::digest::Output<Sha256>> {
        p.iter().map(|h| h.0.into()).collect()
    }

    /// Our tree (stored hashes through `tlog_tiles`, in the table layout the vault writes) and
    /// `ct-merkle`'s, an independent RFC 6962 implementation, agree on the root of every size
    /// from 0 to 300, and every consistency and inclusion proof built from the stored hashes
    /// verifies with `ct-merkle`; a wrong old root or a changed stored hash is caught.
    #[test]
    fn the_tree_agrees_with_an_independent_rfc6962_implementation() {
        let mut mem = Mem::default();
        let mut theirs: MemoryBackedTree<Sha256, Vec<u8>> = MemoryBackedTree::new();
        let mut roots = vec![root(&mem, 0).unwrap()];
        let empty: [u8; 32] = Sha256::digest(b"").into();
        assert_eq!(roots[0], empty, "RFC 6962: the empty tree's hash is SHA-256 of nothing");
        assert_eq!(roots[0].as_slice(), theirs.root().as_bytes().as_slice());
        for i in 0..300usize {
            let (first, add) = hashes_for(&mem, i as u64, &leaf(i)).unwrap();
            for (k, h) in add.into_iter().enumerate() {
                assert!(mem.hashes.insert(first + k as u64, h).is_none(), "a stored hash written twice");
            }
            theirs.push(leaf(i));
            let r = root(&mem, i as u64 + 1).unwrap();
            assert_eq!(r.as_slice(), theirs.root().as_bytes().as_slice(), "root of size {}", i + 1);
            roots.push(r);
        }
        let size = |t: u64| RootHash::<Sha256>::new(roots[t as usize].into(), t);
        for t in 1..=300u64 {
            let head = LogHead { id: [0; 16], size: t, root: roots[t as usize] };
            for n in [1, t / 2, t.saturating_sub(1), (t * 7) % t.max(1)].into_iter().filter(|&n| n >= 1 && n < t) {
                let p = tlog_tiles::prove_tree(t, n, &Stored(&mem)).unwrap();
                let proof = ConsistencyProof::<Sha256>::from_digests(digests(&p).iter());
                size(t).verify_consistency(&size(n), &proof).unwrap_or_else(|e| panic!("{n} -> {t}: {e:?}"));
                assert!(extends(&mem, &head, n, &roots[n as usize]).unwrap());
                assert!(!extends(&mem, &head, n, &roots[n as usize - 1]).unwrap(), "a wrong old root passed");
            }
            assert!(!extends(&mem, &head, t + 1, &roots[t as usize]).unwrap(), "a longer old tree passed");
            for i in [0, t / 3, t - 1] {
                let p = tlog_tiles::prove_record(t, i, &Stored(&mem)).unwrap();
                let proof = InclusionProof::<Sha256>::from_digests(digests(&p).iter());
                size(t).verify_inclusion(&leaf(i as usize), i, &proof).unwrap_or_else(|e| panic!("{i} in {t}: {e:?}"));
            }
        }
        let leaves: Vec<Vec<u8>> = (0..300).map(leaf).collect();
        assert_eq!(check_all(&mem, &leaves).unwrap(), None);
        mem.hashes.get_mut(&77).unwrap()[0] ^= 1;
        assert_eq!(check_all(&mem, &leaves).unwrap().map(|(i, _)| i), Some(77));
        mem.hashes.get_mut(&77).unwrap()[0] ^= 1;
        mem.hashes.insert(10_000, [0; 32]);
        assert!(check_all(&mem, &leaves).unwrap().is_some(), "an extra stored hash passed");
    }
}
