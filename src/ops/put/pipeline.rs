//! The three stages of a put's pipeline after the reader: hashing (SHA-256 and the check of the
//! blocks the analysis saw), sealing (chunk ids, and a sealed value for each chunk the committed
//! index does not hold) and writing (into the transaction's chunk table, checkpointed). See the
//! module docs of `ops::put` for how they overlap. These functions must never write a chunk
//! outside the put's transaction, or seal under anything but the current epoch.

use std::collections::HashSet;

use sha2::{Digest, Sha256};

use super::{CHECKPOINT_BYTES, Stored};
use crate::Result;
use crate::crypto::keys::{EpochKeys, IndexKeys};
use crate::manifest::ChunkRef;
use crate::ops::input::{BlockCheck, Piece, Recycler};
use crate::progress::Progress;
use crate::store;
use crate::store::chunks::{ChunkRead, ChunkStore};
use crate::store::envelope::Envelope;
use crate::vault::Txn;

/// The hashing stage of a put: SHA-256 of the whole file (one sequential computation, so it has
/// a thread of its own and reading, hashing and sealing overlap; a re-put is bound by this
/// stage), and the check of the blocks the analysis saw against these very bytes, which the
/// sealer then seals: a mismatch stops the pipeline (false).
pub(super) fn hash_pieces(
    pieces: crossbeam_channel::Receiver<Piece>,
    hashed: crossbeam_channel::Sender<Piece>,
    mut blocks: BlockCheck,
) -> ([u8; 32], BlockCheck, bool) {
    let mut sha = Sha256::new();
    let mut same = true;
    for piece in pieces {
        sha.update(piece.bytes());
        if !blocks.feed(piece.bytes()) {
            same = false;
            break;
        }
        if hashed.send(piece).is_err() {
            break;
        }
    }
    (sha.finalize().into(), blocks, same)
}

/// The sealing stage of a put: the chunk id of each piece, and its sealed value unless the
/// committed chunk index (one snapshot) already holds that id.
///
/// Errors: [`Error::Storage`]; the envelope's seal errors.
pub(super) fn seal_pieces(
    db: &store::Db,
    keys: &EpochKeys,
    index: &IndexKeys,
    vault_id: [u8; 16],
    pieces: crossbeam_channel::Receiver<Piece>,
    recycler: Recycler,
    sealed: crossbeam_channel::Sender<(ChunkRef, Option<Vec<u8>>)>,
) -> Result<()> {
    let committed = store::read(db)?;
    for piece in pieces {
        let id = index.chunk_id(piece.bytes());
        let r = ChunkRef { id, len: piece.bytes().len() as u32 };
        let known = committed.contains(&id)?;
        let value =
            if known { None } else { Some(Envelope::new(vault_id, keys, None).seal_chunk(&id, piece.bytes())?) };
        recycler.give_back(piece);
        if sealed.send((r, value)).is_err() {
            break;
        }
    }
    Ok(())
}

/// The writing stage of a put, on the calling thread: inserts each new sealed chunk into the
/// transaction's chunk table (and index), counts the seals, and checkpoints every
/// [`CHECKPOINT_BYTES`] of new chunks. Returns the chunk references of the file in order, and
/// how writing ended.
pub(super) fn write_chunks(
    txn: &mut Txn<'_>,
    sealed: &crossbeam_channel::Receiver<(ChunkRef, Option<Vec<u8>>)>,
    stored: &mut Stored,
    progress: &dyn Progress,
) -> (Vec<ChunkRef>, Result<()>) {
    let mut refs = Vec::new();
    let mut seen_here = HashSet::new();
    let mut incoming = sealed.iter();
    let written = loop {
        let (mut batch, mut seals, mut exhausted) = (0u64, 0u64, true);
        let inserted = (|| -> Result<()> {
            let mut chunks = txn.tx.chunks()?;
            for (r, value) in incoming.by_ref() {
                if let Some(v) = value {
                    seals += 1;
                    let present = seen_here.contains(&r.id) || chunks.contains(&r.id)?;
                    if !present {
                        chunks.insert(&r.id, v.as_slice())?;
                        seen_here.insert(r.id);
                        stored.new_chunks += 1;
                        stored.new_bytes += r.len as u64;
                        batch += v.len() as u64;
                    }
                }
                progress.advance(r.len as u64);
                refs.push(r);
                if batch >= CHECKPOINT_BYTES {
                    exhausted = false;
                    break;
                }
            }
            Ok(())
        })();
        if let Err(e) = inserted.and_then(|()| txn.count_chunk_seals(seals)) {
            break Err(e);
        }
        if exhausted {
            break Ok(());
        }
        if let Err(e) = txn.checkpoint() {
            break Err(e);
        }
    };
    (refs, written)
}
