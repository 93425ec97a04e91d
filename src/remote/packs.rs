//! Packs: writing chunks into large immutable pack objects with one sealed index each, and
//! reading chunks back with ranged reads of just the chunks wanted, adjacent ones coalesced.
//! Every chunk read is opened (AES-256-GCM, AAD binding the vault and the chunk id) and its id
//! recomputed from the plaintext before it is handed on. It must never hold more than one pack
//! (plus one read range) in memory, nor hand out a chunk that did not check.

use std::collections::{BTreeMap, HashMap};

use crate::crypto::SecretKey;
use crate::crypto::keys::{IndexKeys, RemoteKeys};
use crate::remote::format::{self, INDEX, MAX_META_OBJECT, PACK_MAGIC, PACKS, PackEntry, PackIndex, tampered};
use crate::remote::objects::Objects;
use crate::{Error, Result};

/// A pack is uploaded once it holds this many bytes (a 70 GB model is about 2,100 packs).
pub const PACK_TARGET: usize = 32 << 20;
/// Chunks of one pack whose gap is at most this many bytes are read in one ranged request.
pub const COALESCE_GAP: u64 = 1 << 20;
/// Most bytes one ranged read asks for.
pub const MAX_RANGE: u64 = 32 << 20;

/// Request and byte counts of a transfer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Traffic {
    /// Packs written.
    pub packs: u64,
    /// Chunks written into packs, or read from them.
    pub chunks: u64,
    /// Bytes of packs and indexes written, or of ranges read.
    pub bytes: u64,
    /// Ranged reads made.
    pub ranges: u64,
}

/// Builds packs of at most about [`PACK_TARGET`] bytes and uploads each, then its index.
pub struct PackWriter<'a> {
    objects: &'a dyn Objects,
    keys: &'a RemoteKeys,
    vault_id: [u8; 16],
    salt: [u8; 32],
    key: SecretKey,
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
    /// Every chunk uploaded so far, with the index that lists it.
    pub written: HashMap<[u8; 32], String>,
    /// What was uploaded.
    pub traffic: Traffic,
}

impl<'a> PackWriter<'a> {
    /// A writer with an empty first pack.
    ///
    /// Errors: [`Error::Io`] (no randomness).
    pub fn new(objects: &'a dyn Objects, keys: &'a RemoteKeys, vault_id: [u8; 16]) -> Result<Self> {
        let mut w = PackWriter {
            objects,
            keys,
            vault_id,
            salt: [0; 32],
            key: SecretKey([0; 32]),
            buf: Vec::new(),
            entries: Vec::new(),
            written: HashMap::new(),
            traffic: Traffic::default(),
        };
        w.reset()?;
        Ok(w)
    }

    fn reset(&mut self) -> Result<()> {
        crate::crypto::fill_random(&mut self.salt)?;
        self.key = self.keys.pack_key(&self.salt);
        self.buf.clear();
        self.buf.extend_from_slice(PACK_MAGIC);
        self.buf.extend_from_slice(&self.salt);
        self.entries.clear();
        Ok(())
    }

    /// Seals chunk `id` into the current pack, uploading the pack when it is full.
    ///
    /// Errors: [`Error::Remote`], [`Error::Io`].
    pub fn add(&mut self, id: &[u8; 32], plain: &[u8]) -> Result<()> {
        if self.written.contains_key(id) || self.entries.iter().any(|e| &e.id == id) {
            return Ok(());
        }
        let sealed = format::seal_chunk(&self.key, &self.vault_id, id, plain)?;
        let offset = self.buf.len() as u64;
        self.buf.extend_from_slice(&sealed);
        self.entries.push(PackEntry { id: *id, offset, sealed_len: sealed.len() as u32 });
        if self.buf.len() >= PACK_TARGET {
            self.flush()?;
        }
        Ok(())
    }

    /// Uploads the current pack (if it holds a chunk) and then its index.
    ///
    /// Errors: [`Error::Remote`], [`Error::Io`].
    pub fn flush(&mut self) -> Result<()> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let pack = format::content_name(PACKS, &self.buf);
        self.objects.put(&pack, &self.buf)?;
        let ix = PackIndex { pack, salt: self.salt, entries: std::mem::take(&mut self.entries) };
        let sealed = format::seal_index(self.keys, &self.vault_id, &ix)?;
        let name = format::content_name(INDEX, &sealed);
        self.objects.put(&name, &sealed)?;
        self.traffic.packs += 1;
        self.traffic.chunks += ix.entries.len() as u64;
        self.traffic.bytes += (self.buf.len() + sealed.len()) as u64;
        for e in &ix.entries {
            self.written.insert(e.id, name.clone());
        }
        self.reset()
    }
}

/// Where a chunk is: the pack, its salt and the chunk's entry.
#[derive(Debug, Clone)]
pub struct Location {
    /// The index that lists it.
    pub index: String,
    /// The pack's key.
    pub pack: String,
    /// The pack's salt.
    pub salt: [u8; 32],
    /// The chunk's place in the pack.
    pub entry: PackEntry,
}

/// Reads the indexes `names` and maps every chunk they list to its place.
///
/// Errors: [`Error::Damaged`] for an index that fails its checks; [`Error::Remote`].
pub fn locate<'n>(
    objects: &dyn Objects,
    keys: &RemoteKeys,
    vault_id: &[u8; 16],
    names: impl IntoIterator<Item = &'n String>,
) -> Result<HashMap<[u8; 32], Location>> {
    let mut out = HashMap::new();
    for name in names {
        let bytes = objects
            .get(name)?
            .ok_or_else(|| tampered(&format!("remote pack index {name}"), "it is missing (deleted)"))?;
        if bytes.len() as u64 > MAX_META_OBJECT {
            return Err(tampered(&format!("remote pack index {name}"), "it is over the size limit"));
        }
        let ix = format::open_index(keys, vault_id, name, &bytes)?;
        for e in ix.entries {
            let loc = Location { index: name.clone(), pack: ix.pack.clone(), salt: ix.salt, entry: e.clone() };
            out.entry(e.id).or_insert(loc);
        }
    }
    Ok(out)
}

/// What a fetch checks each chunk against: the vault id, the remote keys and the chunk-id key.
pub struct FetchKeys<'a> {
    /// The vault id.
    pub vault_id: [u8; 16],
    /// The remote keys.
    pub keys: &'a RemoteKeys,
    /// The vault's chunk-id key (a chunk's id is recomputed from its plaintext).
    pub index: &'a IndexKeys,
}

/// Fetches the chunks `wanted` (id → plaintext length) with ranged reads, coalescing chunks of
/// one pack closer than [`COALESCE_GAP`], and hands each checked plaintext to `sink`.
///
/// Errors: [`Error::Damaged`] for a chunk no index lists, or one that fails its seal, id or
/// length check; [`Error::Remote`]; whatever `sink` returns.
pub fn fetch(
    objects: &dyn Objects,
    fk: &FetchKeys<'_>,
    places: &HashMap<[u8; 32], Location>,
    wanted: &BTreeMap<[u8; 32], u32>,
    mut sink: impl FnMut(&[u8; 32], Vec<u8>) -> Result<()>,
) -> Result<Traffic> {
    let mut by_pack: BTreeMap<&str, Vec<&Location>> = BTreeMap::new();
    for id in wanted.keys() {
        let loc = places.get(id).ok_or_else(|| {
            Error::Damaged(format!(
                "chunk {}… is used by a version on the remote but no pack index lists it: the remote is damaged",
                &crate::manifest::hex(id)[..16]
            ))
        })?;
        by_pack.entry(&loc.pack).or_default().push(loc);
    }
    let mut traffic = Traffic::default();
    for (pack, mut locs) in by_pack {
        locs.sort_by_key(|l| l.entry.offset);
        let key = fk.keys.pack_key(&locs[0].salt);
        for run in runs(&locs) {
            let (start, end) = (run[0].entry.offset, end_of(run[run.len() - 1]));
            let bytes = objects.get_range(pack, start..end)?;
            traffic.ranges += 1;
            traffic.bytes += bytes.len() as u64;
            for l in run {
                let at = (l.entry.offset - start) as usize;
                let sealed = &bytes[at..at + l.entry.sealed_len as usize];
                let plain = format::open_chunk(&key, &fk.vault_id, &l.entry.id, sealed, pack)?;
                if fk.index.chunk_id(&plain) != l.entry.id || plain.len() as u32 != wanted[&l.entry.id] {
                    return Err(tampered(
                        &format!("a chunk of remote pack {pack}"),
                        "its content does not match its id",
                    ));
                }
                traffic.chunks += 1;
                sink(&l.entry.id, plain)?;
            }
        }
    }
    Ok(traffic)
}

fn end_of(l: &Location) -> u64 {
    l.entry.offset + u64::from(l.entry.sealed_len)
}

/// Splits chunks sorted by offset into runs read with one request each.
fn runs<'l>(locs: &'l [&'l Location]) -> Vec<&'l [&'l Location]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=locs.len() {
        let split = i == locs.len() || {
            let gap = locs[i].entry.offset.saturating_sub(end_of(locs[i - 1]));
            gap > COALESCE_GAP || end_of(locs[i]) - locs[start].entry.offset > MAX_RANGE
        };
        if split {
            out.push(&locs[start..i]);
            start = i;
        }
    }
    out
}
