//! On-demand chunks: a vault pulled without its chunks (metadata only) reads a missing chunk
//! from a remote set with [`Vault::set_chunk_source`]. Before a file (or a tensor's byte range)
//! is read, the chunks it needs that the vault lacks are located through the remote's pack
//! indexes and fetched with the pull's coalesced ranged reads ([`crate::remote::packs::fetch`]),
//! each checked exactly as a pull checks it (pack seal, keyed-hash id recomputed from the
//! plaintext, length from the signed manifest). They are then kept in the vault in one write
//! transaction (the file is a cache), or, when keeping is off or the vault cannot be written
//! (a read-only file, a writer holding it), held sealed under the vault's own keys in memory for
//! this read only. The reader opens them like any stored chunk. This module must never hand the
//! reader a chunk that did not check, nor write anything but chunks the signed manifest names.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::manifest::Manifest;
use crate::progress::Progress;
use crate::remote::log::{self, LogKeys};
use crate::remote::objects::Objects;
use crate::remote::packs::{self, FetchKeys, Traffic};
use crate::remote::state;
use crate::store;
use crate::store::chunks::{ChunkRead, ChunkStore};
use crate::vault::{Unlocked, Vault};
use crate::{Error, Result};

/// Where missing chunks come from, and whether to keep them.
#[derive(Clone)]
pub struct ChunkSource {
    /// The remote.
    pub objects: Arc<dyn Objects>,
    /// The label this vault knows the remote by (its URL), for the log's rollback check.
    pub label: String,
    /// Keep fetched chunks in the vault (false: stream them without keeping).
    pub cache: bool,
}

/// What on-demand reads did in this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FetchedTotals {
    /// Chunks, bytes and ranged reads fetched.
    pub traffic: Traffic,
    /// Chunks kept in the vault.
    pub kept: u64,
    /// Chunks streamed without being kept.
    pub streamed: u64,
}

/// Chunks fetched for one read and not kept: id → value sealed under the vault's keys.
#[derive(Default)]
pub(crate) struct Fetched(HashMap<[u8; 32], Vec<u8>>);

/// The vault's chunks, with the fetched ones over them.
pub(crate) struct Overlay<'a, S: ?Sized> {
    pub base: &'a S,
    pub extra: &'a Fetched,
}

/// A value from the vault or from the fetched ones.
pub(crate) enum Either<'a, V> {
    Base(V),
    Extra(&'a [u8]),
}

impl<V: AsRef<[u8]>> AsRef<[u8]> for Either<'_, V> {
    fn as_ref(&self) -> &[u8] {
        match self {
            Either::Base(v) => v.as_ref(),
            Either::Extra(b) => b,
        }
    }
}

impl<S: ChunkRead + ?Sized> ChunkRead for Overlay<'_, S> {
    type Value<'b>
        = Either<'b, S::Value<'b>>
    where
        Self: 'b;
    fn get(&self, id: &[u8; 32]) -> Result<Option<Self::Value<'_>>> {
        if let Some(v) = self.extra.0.get(id) {
            return Ok(Some(Either::Extra(v)));
        }
        Ok(self.base.get(id)?.map(Either::Base))
    }
    fn contains(&self, id: &[u8; 32]) -> Result<bool> {
        Ok(self.extra.0.contains_key(id) || self.base.contains(id)?)
    }
    fn ids(&self) -> Result<Vec<([u8; 32], u32)>> {
        self.base.ids()
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

    /// The chunks of `m` among `wanted` (id → length) the vault lacks, fetched from the chunk
    /// source: kept in the vault (returned empty) or returned sealed for this read. Without a
    /// source nothing is fetched (a missing chunk is then reported by the reader as damage).
    ///
    /// Errors: [`Error::Damaged`] (the remote's log, an index or a chunk fails its checks, or no
    /// index lists a chunk); [`Error::Remote`] (the remote cannot be reached); [`Error::Storage`].
    pub(crate) fn fetch_missing(
        &self,
        m: &Manifest,
        wanted: BTreeMap<[u8; 32], u32>,
        progress: &dyn Progress,
    ) -> Result<Fetched> {
        let mut missing = BTreeMap::new();
        {
            let rx = store::read(&self.db)?;
            for (id, len) in wanted {
                if !rx.contains(&id)? {
                    missing.insert(id, len);
                }
            }
        }
        let source = self.state.source.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (Some(src), false) = (source, missing.is_empty()) else {
            return Ok(Fetched::default());
        };
        let objects = &*src.objects;
        let keys = self.remote_keys()?;
        let lk = LogKeys { vault_id: self.header.vault_id, keys: &keys, verifiers: &self.state.signers };
        let seen = state::load_seen(self, &src.label)?;
        let remote = state::replay(self, &log::read(objects, &lk, seen)?)?;
        let places = packs::locate(objects, &keys, &self.header.vault_id, &remote.indexes)?;
        let fk = FetchKeys { vault_id: self.header.vault_id, keys: &keys, index: &self.state.index };
        let what = format!("model '{}' version {}", crate::names::escape(&m.name), m.version);
        let txn = if src.cache {
            match self.write_reporting(progress) {
                Ok(t) => Some(t),
                Err(e) => {
                    progress.warn(&format!(
                        "the chunks of {what} fetched from the remote are streamed without being kept: the vault cannot be written now ({e})"
                    ));
                    None
                }
            }
        } else {
            None
        };
        let mut out = Fetched::default();
        let (mut kept, mut streamed) = (0u64, 0u64);
        let traffic = match txn {
            Some(mut txn) => {
                let mut batch = 0u64;
                let t = packs::fetch(objects, &fk, &places, &missing, |id, plain| {
                    let sealed = txn.vault.envelope().seal_chunk(id, &plain)?;
                    txn.count_chunk_seals(1)?;
                    txn.tx.chunks()?.insert(id, &sealed)?;
                    batch += sealed.len() as u64;
                    kept += 1;
                    if batch >= crate::ops::put::CHECKPOINT_BYTES {
                        batch = 0;
                        txn.checkpoint()?;
                    }
                    Ok(())
                })
                .map_err(|e| on_remote(e, &what))?;
                txn.commit()?;
                t
            }
            None => packs::fetch(objects, &fk, &places, &missing, |id, plain| {
                out.0.insert(*id, self.envelope().seal_chunk(id, &plain)?);
                streamed += 1;
                Ok(())
            })
            .map_err(|e| on_remote(e, &what))?,
        };
        let mut totals = self.state.fetched.lock().unwrap_or_else(|e| e.into_inner());
        totals.traffic.chunks += traffic.chunks;
        totals.traffic.bytes += traffic.bytes;
        totals.traffic.ranges += traffic.ranges;
        totals.kept += kept;
        totals.streamed += streamed;
        Ok(out)
    }
}

/// Names the version an on-demand fetch was for in a damage error.
fn on_remote(e: Error, what: &str) -> Error {
    match e {
        Error::Damaged(s) => Error::Damaged(format!("fetching the chunks of {what} from the remote: {s}")),
        e => e,
    }
}
