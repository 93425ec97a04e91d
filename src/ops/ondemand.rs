//! On-demand chunks: a vault pulled without its chunks (metadata only) reads a missing chunk
//! from a remote set with [`Vault::set_chunk_source`]. Before a file (or a tensor's byte range)
//! is read, the chunks it needs that the vault lacks are located through the remote's signed
//! log and pack indexes, and fetched with the pull's coalesced ranged reads
//! ([`crate::remote::packs::fetch`]), each checked exactly as a pull checks it (pack seal,
//! keyed-hash id recomputed from the plaintext, length from the signed manifest).
//!
//! Kept (the vault file is a cache): all of them are fetched first and stored in one write
//! transaction, through the path `pull` keeps chunks by (`Txn::keep_fetched`:
//! sealed under the vault's chunk key, every seal counted against the key's limit). A vault
//! opened read-only takes the writer lock for that transaction only, on a second handle of the
//! same file ([`store::open_writer_beside`]), without waiting unless told to. When keeping is
//! off, or the writer is busy, or the file may not be written, the chunks are streamed: fetched
//! in batches of at most [`ChunkSource::batch_bytes`] of plaintext, in the order the read needs
//! them, each batch dropped before the next is fetched. Streamed chunks are never sealed again
//! (their plaintext goes from the check straight to the reader), so they use no nonce.
//!
//! This module must never hand the reader a chunk that did not check, write anything but chunks
//! the signed manifest names, or hold more than one batch of a streamed read.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::crypto::keys::RemoteKeys;
use crate::manifest::{ChunkRef, Manifest};
use crate::progress::Progress;
use crate::remote::log::{self, LogKeys};
use crate::remote::objects::Objects;
use crate::remote::packs::{self, FetchKeys, Location, Traffic};
use crate::remote::state;
use crate::store::chunks::ChunkRead;
use crate::store::envelope::Envelope;
use crate::store::{self, Beside};
use crate::vault::{Unlocked, Vault};
use crate::{Error, Result};

use super::reader::OpenChunk;

/// Plaintext bytes a streamed read holds at most in one batch (32 MiB: two of the pull's
/// parallel ranged reads' worth, so a batch keeps them busy).
pub const STREAM_BATCH_BYTES: u64 = 32 << 20;

/// Where missing chunks come from, and whether to keep them.
#[derive(Clone)]
pub struct ChunkSource {
    /// The remote.
    pub objects: Arc<dyn Objects>,
    /// The label this vault knows the remote by (its URL), for the log's rollback check.
    pub label: String,
    /// Keep fetched chunks in the vault (false: stream them without keeping).
    pub cache: bool,
    /// How long to wait for the writer lock when keeping (`None`: do not wait; a busy writer
    /// means the chunks are streamed instead).
    pub wait: Option<Duration>,
    /// Most plaintext bytes a streamed read holds at once ([`STREAM_BATCH_BYTES`]; one chunk
    /// more than this when a single chunk is larger).
    pub batch_bytes: u64,
}

impl ChunkSource {
    /// A source that keeps what it fetches, without waiting for the writer lock, streaming in
    /// batches of [`STREAM_BATCH_BYTES`].
    pub fn new(objects: Arc<dyn Objects>, label: impl Into<String>) -> Self {
        ChunkSource { objects, label: label.into(), cache: true, wait: None, batch_bytes: STREAM_BATCH_BYTES }
    }
}

/// What on-demand reads did in this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FetchedTotals {
    /// Chunks, bytes and ranged reads fetched.
    pub traffic: Traffic,
    /// Chunks kept in the vault.
    pub kept: u64,
    /// Chunks streamed without being kept (a chunk fetched twice counts twice).
    pub streamed: u64,
    /// Most plaintext bytes of streamed chunks held in memory at once.
    pub peak_held: u64,
}

/// The remote end of a read: the source, its keys, and where each chunk it holds is.
struct Reach {
    src: ChunkSource,
    keys: RemoteKeys,
    places: HashMap<[u8; 32], Location>,
}

/// The streamed chunks of one read: the plan (the missing chunks, in the order the read needs
/// them) and the batch held now.
pub(crate) struct Streamer<'v> {
    vault: &'v Vault<Unlocked>,
    reach: Reach,
    what: String,
    plan: Vec<([u8; 32], u32)>,
    at: HashMap<[u8; 32], usize>,
    held: Mutex<HashMap<[u8; 32], Vec<u8>>>,
}

/// The vault's chunks, with the streamed ones (if any) beside them.
pub(crate) struct OnDemand<'a, S: ?Sized> {
    pub base: &'a S,
    pub streamed: Option<&'a Streamer<'a>>,
}

impl<S: ChunkRead + ?Sized> OpenChunk for OnDemand<'_, S> {
    fn open_chunk(&self, env: &Envelope<'_>, c: &ChunkRef, where_: &str, i: usize, n: usize) -> Result<Vec<u8>> {
        match self.streamed {
            Some(s) if s.at.contains_key(&c.id) => s.plain(c),
            _ => super::reader::open_chunk(self.base, env, c, where_, i, n),
        }
    }
}

impl Streamer<'_> {
    /// The checked plaintext of `c`, fetching the batch that starts with it when it is not held.
    fn plain(&self, c: &ChunkRef) -> Result<Vec<u8>> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = held.get(&c.id) {
            return Ok(p.clone());
        }
        held.clear(); // the batch before is dropped before the next is fetched
        let start = self.at[&c.id];
        let (mut wanted, mut bytes) = (BTreeMap::new(), 0u64);
        for (id, len) in &self.plan[start..] {
            if !wanted.is_empty() && bytes + u64::from(*len) > self.reach.src.batch_bytes {
                break;
            }
            wanted.insert(*id, *len);
            bytes += u64::from(*len);
        }
        let v = self.vault;
        let fk = FetchKeys { vault_id: v.header.vault_id, keys: &self.reach.keys, index: &v.state.index };
        let traffic = packs::fetch(&*self.reach.src.objects, &fk, &self.reach.places, &wanted, |id, plain| {
            held.insert(*id, plain);
            Ok(())
        })
        .map_err(|e| on_remote(e, &self.what))?;
        let now: u64 = held.values().map(|p| p.len() as u64).sum();
        v.add_fetched(traffic, 0, wanted.len() as u64, now);
        held.get(&c.id).cloned().ok_or_else(|| Error::Damaged(format!("fetching the chunks of {}", self.what)))
    }
}

impl Vault<Unlocked> {
    /// Reads chunks this vault lacks from `source` from now on (see the module documentation).
    pub fn set_chunk_source(&self, source: ChunkSource) {
        *self.state.source.lock().unwrap_or_else(|e| e.into_inner()) = Some(source);
    }

    /// What on-demand reads fetched, kept and streamed so far.
    pub fn fetched_totals(&self) -> FetchedTotals {
        *self.state.fetched.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add_fetched(&self, t: Traffic, kept: u64, streamed: u64, held: u64) {
        let mut totals = self.state.fetched.lock().unwrap_or_else(|e| e.into_inner());
        totals.traffic.chunks += t.chunks;
        totals.traffic.bytes += t.bytes;
        totals.traffic.ranges += t.ranges;
        totals.kept += kept;
        totals.streamed += streamed;
        totals.peak_held = totals.peak_held.max(held);
    }

    /// The chunks `order` lists (in the order the read needs them) that the vault lacks, from
    /// the chunk source: kept in the vault (`None` is returned: the read finds them there), or,
    /// when they cannot or should not be kept, a [`Streamer`] that fetches them in batches as
    /// the read reaches them (a warning says why they were not kept). Without a source, or with
    /// nothing missing, `None` (a missing chunk is then reported by the reader as damage).
    ///
    /// Errors: [`Error::Damaged`] (the remote's log, an index or a chunk fails its checks, or no
    /// index lists a chunk); [`Error::Remote`] (the remote cannot be reached);
    /// [`Error::KeyUsageLimit`]; [`Error::Storage`].
    pub(crate) fn on_demand<'v>(
        &'v self,
        m: &Manifest,
        order: impl Iterator<Item = ([u8; 32], u32)>,
        progress: &dyn Progress,
    ) -> Result<Option<Streamer<'v>>> {
        let (mut plan, mut at) = (Vec::new(), HashMap::new());
        {
            let rx = store::read(&self.db)?;
            for (id, len) in order {
                if !at.contains_key(&id) && !rx.contains(&id)? {
                    at.insert(id, plan.len());
                    plan.push((id, len));
                }
            }
        }
        let source = self.state.source.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (Some(src), false) = (source, plan.is_empty()) else {
            return Ok(None);
        };
        let what = format!("model '{}' version {}", crate::names::escape(&m.name), m.version);
        let reach = self.reach(src).map_err(|e| on_remote(e, &what))?;
        if let Some((id, _)) = plan.iter().find(|(id, _)| !reach.places.contains_key(id)) {
            return Err(Error::Damaged(format!(
                "fetching the chunks of {what} from the remote: chunk {}… is used by the version but no pack \
                 index on the remote lists it: the remote is damaged",
                &crate::manifest::hex(id)[..16]
            )));
        }
        if reach.src.cache {
            match self.keep_all(&reach, &plan, &what, progress)? {
                None => return Ok(None),
                Some(why) => progress.warn(&format!(
                    "the chunks of {what} are read from the remote without being kept in the vault: {why}"
                )),
            }
        }
        Ok(Some(Streamer { vault: self, reach, what, plan, at, held: Mutex::new(HashMap::new()) }))
    }

    /// The ids of every chunk the chunk source's remote lists in its pack indexes; `None`
    /// without a source.
    pub(crate) fn remote_chunk_ids(&self) -> Option<Result<std::collections::HashSet<[u8; 32]>>> {
        let source = self.state.source.lock().unwrap_or_else(|e| e.into_inner()).clone()?;
        Some(self.reach(source).map(|r| r.places.into_keys().collect()))
    }

    /// The remote's keys and the place of every chunk its pack indexes list (its signed log is
    /// read and checked against what this vault saw of it before).
    fn reach(&self, src: ChunkSource) -> Result<Reach> {
        let objects = &*src.objects;
        self.adopt_remote_signers(objects)?;
        let keys = self.remote_keys()?;
        let lk = LogKeys { vault_id: self.header.vault_id, keys: &keys, verifiers: &self.state.signing.verifiers() };
        let seen = state::load_seen(self, &src.label)?;
        let remote = state::replay(self, &log::read(objects, &lk, seen)?)?;
        let places = packs::locate(objects, &keys, &self.header.vault_id, &remote.indexes)?;
        Ok(Reach { src, keys, places })
    }

    /// Fetches every chunk of `plan` and keeps it, in one write transaction; `Some(why)` when the
    /// vault cannot be written now (nothing was fetched).
    fn keep_all(
        &self,
        reach: &Reach,
        plan: &[([u8; 32], u32)],
        what: &str,
        progress: &dyn Progress,
    ) -> Result<Option<String>> {
        let beside;
        let db = if self.db.is_read_only() {
            match store::open_writer_beside(&self.db, reach.src.wait)? {
                Beside::Writer(w) => {
                    beside = w;
                    &beside
                }
                Beside::Busy => return Ok(Some("another process is writing it".into())),
                Beside::NotWritable => return Ok(Some("this process may not write the vault file".into())),
                Beside::Replaced => return Ok(Some("the vault file was replaced since it was opened".into())),
            }
        } else {
            &self.db
        };
        let wanted: BTreeMap<[u8; 32], u32> = plan.iter().copied().collect();
        let fk = FetchKeys { vault_id: self.header.vault_id, keys: &reach.keys, index: &self.state.index };
        let mut txn = self.write_on(db, progress)?;
        let mut batch = 0u64;
        let traffic = packs::fetch(&*reach.src.objects, &fk, &reach.places, &wanted, |id, plain| {
            txn.keep_fetched(id, &plain, &mut batch)
        })
        .map_err(|e| on_remote(e, what))?;
        txn.commit()?;
        self.add_fetched(traffic, wanted.len() as u64, 0, 0);
        Ok(None)
    }
}

/// Names the version an on-demand fetch was for in a damage error.
fn on_remote(e: Error, what: &str) -> Error {
    match e {
        Error::Damaged(s) => Error::Damaged(format!("fetching the chunks of {what} from the remote: {s}")),
        e => e,
    }
}
