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

/// A pack is closed once it holds this many bytes (a 70 GB model is about 4,200 packs).
pub const PACK_TARGET: usize = 16 << 20;
/// Chunks of one pack whose gap is at most this many bytes are read in one ranged request.
pub const COALESCE_GAP: u64 = 1 << 20;
/// Most bytes one ranged read asks for.
pub const MAX_RANGE: u64 = 16 << 20;

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

/// Packs uploaded at once by a push, and ranged reads made at once by a pull.
pub const PARALLEL: usize = 4;

/// A closed pack and its sealed index, ready to upload (pack first, then index).
pub struct FinishedPack {
    /// The pack's key and bytes.
    pub pack: (String, Vec<u8>),
    /// The index's key and bytes.
    pub index: (String, Vec<u8>),
    /// The chunk ids it holds.
    pub ids: Vec<[u8; 32]>,
}

impl FinishedPack {
    /// Uploads the pack, then its index (an index never names a pack that is not there).
    ///
    /// Errors: [`Error::Remote`].
    pub fn upload(&self, objects: &dyn Objects) -> Result<()> {
        objects.put(&self.pack.0, &self.pack.1)?;
        objects.put(&self.index.0, &self.index.1)
    }
}

/// Builds packs of at most about [`PACK_TARGET`] bytes; the caller uploads each one it closes
/// and records it with [`PackWriter::uploaded`].
pub struct PackWriter<'a> {
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
    pub fn new(keys: &'a RemoteKeys, vault_id: [u8; 16]) -> Result<Self> {
        let mut w = PackWriter {
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
        self.buf = Vec::with_capacity(PACK_TARGET + (1 << 20));
        self.buf.extend_from_slice(PACK_MAGIC);
        self.buf.extend_from_slice(&self.salt);
        self.entries.clear();
        Ok(())
    }

    /// Seals chunk `id` into the current pack; returns the pack when this filled it.
    ///
    /// Errors: [`Error::Io`].
    pub fn add(&mut self, id: &[u8; 32], plain: &[u8]) -> Result<Option<FinishedPack>> {
        if self.written.contains_key(id) || self.entries.iter().any(|e| &e.id == id) {
            return Ok(None);
        }
        let sealed = format::seal_chunk(&self.key, &self.vault_id, id, plain)?;
        let offset = self.buf.len() as u64;
        self.buf.extend_from_slice(&sealed);
        self.entries.push(PackEntry { id: *id, offset, sealed_len: sealed.len() as u32 });
        if self.buf.len() >= PACK_TARGET { self.finish() } else { Ok(None) }
    }

    /// Closes the current pack (if it holds a chunk) and seals its index.
    ///
    /// Errors: [`Error::Io`].
    pub fn finish(&mut self) -> Result<Option<FinishedPack>> {
        if self.entries.is_empty() {
            return Ok(None);
        }
        let bytes = std::mem::take(&mut self.buf);
        let pack = format::content_name(PACKS, &bytes);
        let ix = PackIndex { pack: pack.clone(), salt: self.salt, entries: std::mem::take(&mut self.entries) };
        let sealed = format::seal_index(self.keys, &self.vault_id, &ix)?;
        let name = format::content_name(INDEX, &sealed);
        let ids = ix.entries.iter().map(|e| e.id).collect();
        self.reset()?;
        Ok(Some(FinishedPack { pack: (pack, bytes), index: (name, sealed), ids }))
    }

    /// Records an uploaded pack: its chunks are on the remote, listed by its index.
    pub fn uploaded(&mut self, index: &str, ids: &[[u8; 32]], bytes: u64) {
        self.traffic.packs += 1;
        self.traffic.chunks += ids.len() as u64;
        self.traffic.bytes += bytes;
        for id in ids {
            self.written.insert(*id, index.to_string());
        }
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
        let ix = read_index(objects, keys, vault_id, name)?
            .ok_or_else(|| tampered(&format!("remote pack index {name}"), "it is missing (deleted)"))?;
        for e in ix.entries {
            let loc = Location { index: name.clone(), pack: ix.pack.clone(), salt: ix.salt, entry: e.clone() };
            out.entry(e.id).or_insert(loc);
        }
    }
    Ok(out)
}

/// Checks that an index's entries lie in its pack one after another: sorted by offset, none
/// overlapping the one before, no end past `u64::MAX`. (Only a key holder can seal an index, but
/// one that breaks this must be refused, not make a reader slice out of bounds.)
///
/// Errors: [`Error::Damaged`] naming the index.
fn check_entries(name: &str, entries: &[PackEntry]) -> Result<()> {
    let mut end = 0u64;
    for e in entries {
        let next = e.offset.checked_add(u64::from(e.sealed_len));
        match next {
            Some(n) if e.offset >= end => end = n,
            _ => return Err(tampered(&format!("remote pack index {name}"), "its entries overlap or overflow")),
        }
    }
    Ok(())
}

/// Like [`locate`] over a listing, for a push deciding which chunks the remote holds: an index
/// deleted since it was listed (a sweep of `gc --remote` under way) is skipped, not an error, and
/// so is an index whose pack is absent or too short for its entries (an orphan index whose pack
/// was deleted: its chunks are sent again rather than relied on). The packs' sizes come from one
/// listing of `packs/`.
///
/// Errors: as [`locate`].
pub fn locate_present(
    objects: &dyn Objects,
    keys: &RemoteKeys,
    vault_id: &[u8; 16],
    names: &[String],
) -> Result<HashMap<[u8; 32], Location>> {
    let sizes: HashMap<String, u64> = objects.list(PACKS)?.into_iter().map(|o| (o.key, o.size)).collect();
    let mut out = HashMap::new();
    for name in names {
        let Some(ix) = read_index(objects, keys, vault_id, name)? else { continue };
        let end = ix.entries.iter().map(|e| e.offset + u64::from(e.sealed_len)).max().unwrap_or(0);
        if sizes.get(&ix.pack).is_none_or(|s| *s < end) {
            continue;
        }
        for e in ix.entries {
            let loc = Location { index: name.clone(), pack: ix.pack.clone(), salt: ix.salt, entry: e.clone() };
            out.entry(e.id).or_insert(loc);
        }
    }
    Ok(out)
}

/// Reads and opens one pack index; `None` when it is absent.
///
/// Errors: [`Error::Damaged`] for an index that fails its checks or is over the size limit;
/// [`Error::Remote`].
pub fn read_index(
    objects: &dyn Objects,
    keys: &RemoteKeys,
    vault_id: &[u8; 16],
    name: &str,
) -> Result<Option<PackIndex>> {
    let Some(bytes) = objects.get_bounded(name, MAX_META_OBJECT)? else { return Ok(None) };
    let ix = format::open_index(keys, vault_id, name, &bytes)?;
    check_entries(name, &ix.entries)?;
    Ok(Some(ix))
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

/// One ranged read: a pack, its key, and the chunks (sorted by offset) it covers.
struct Job<'l> {
    pack: &'l str,
    key: SecretKey,
    run: Vec<&'l Location>,
}

/// Fetches the chunks `wanted` (id → plaintext length) with ranged reads, [`PARALLEL`] at once,
/// coalescing chunks of one pack closer than [`COALESCE_GAP`], and hands each checked plaintext
/// to `sink` (on this thread). At most [`PARALLEL`] ranges of [`MAX_RANGE`] bytes and a queue of
/// 16 chunks are in memory.
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
    let jobs = plan_reads(fk, places, wanted)?;
    let traffic = std::sync::Mutex::new(Traffic::default());
    let (job_tx, job_rx) = crossbeam_channel::unbounded::<Job<'_>>();
    for j in jobs {
        job_tx.send(j).expect("the receiver is alive");
    }
    drop(job_tx);
    let (out_tx, out_rx) = crossbeam_channel::bounded::<Result<([u8; 32], Vec<u8>)>>(16);
    std::thread::scope(|s| {
        for _ in 0..PARALLEL {
            let (job_rx, out_tx, traffic) = (job_rx.clone(), out_tx.clone(), &traffic);
            s.spawn(move || {
                for job in job_rx {
                    if read_run(objects, fk, wanted, &job, &out_tx, traffic).is_err() {
                        return; // the receiver stopped: an error is being reported
                    }
                }
            });
        }
        drop(out_tx);
        // Owned here, so an error returned below drops it: the readers' sends then fail and they
        // stop, instead of waiting forever on a full queue while the scope waits for them.
        let out_rx = out_rx;
        for item in out_rx.iter() {
            let (id, plain) = item?;
            sink(&id, plain)?;
        }
        Ok::<(), Error>(())
    })?;
    Ok(traffic.into_inner().unwrap_or_else(|e| e.into_inner()))
}

/// The ranged reads that fetch `wanted`: per pack, runs of chunks sorted by offset.
fn plan_reads<'l>(
    fk: &FetchKeys<'_>,
    places: &'l HashMap<[u8; 32], Location>,
    wanted: &BTreeMap<[u8; 32], u32>,
) -> Result<Vec<Job<'l>>> {
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
    let mut jobs = Vec::new();
    for (pack, mut locs) in by_pack {
        locs.sort_by_key(|l| l.entry.offset);
        for run in runs(&locs) {
            jobs.push(Job { pack, key: fk.keys.pack_key(&run[0].salt), run: run.to_vec() });
        }
    }
    Ok(jobs)
}

/// Reads one run and sends each checked chunk (or the first error) to `out`; `Err(())` when
/// `out` is closed.
fn read_run(
    objects: &dyn Objects,
    fk: &FetchKeys<'_>,
    wanted: &BTreeMap<[u8; 32], u32>,
    job: &Job<'_>,
    out: &crossbeam_channel::Sender<Result<([u8; 32], Vec<u8>)>>,
    traffic: &std::sync::Mutex<Traffic>,
) -> std::result::Result<(), ()> {
    let send = |r| out.send(r).map_err(|_| ());
    // The run's end is the furthest end of any of its chunks (two indexes may name one pack).
    let start = job.run[0].entry.offset;
    let end = job.run.iter().map(|l| end_of(l)).max().unwrap_or(start);
    let bytes = match objects.get_range(job.pack, start..end) {
        Ok(b) if b.len() as u64 == end - start => b,
        Ok(b) => {
            return send(Err(Error::remote(
                format!("reading {}", job.pack),
                format!("{} bytes came back, not {}", b.len(), end - start),
            )));
        }
        Err(e) => return send(Err(e)),
    };
    {
        let mut t = traffic.lock().unwrap_or_else(|e| e.into_inner());
        t.ranges += 1;
        t.bytes += bytes.len() as u64;
        t.chunks += job.run.len() as u64;
    }
    for l in &job.run {
        let at = (l.entry.offset - start) as usize;
        let sealed = &bytes[at..at + l.entry.sealed_len as usize];
        let checked = format::open_chunk(&job.key, &fk.vault_id, &l.entry.id, sealed, job.pack).and_then(|plain| {
            if fk.index.chunk_id(&plain) != l.entry.id || plain.len() as u32 != wanted[&l.entry.id] {
                return Err(tampered(
                    &format!("a chunk of remote pack {}", job.pack),
                    "its content does not match its id",
                ));
            }
            Ok((l.entry.id, plain))
        });
        let failed = checked.is_err();
        send(checked)?;
        if failed {
            return Err(());
        }
    }
    Ok(())
}

fn end_of(l: &Location) -> u64 {
    l.entry.offset.saturating_add(u64::from(l.entry.sealed_len))
}

/// Splits chunks sorted by offset into runs read with one request each.
fn runs<'a, 'l>(locs: &'a [&'l Location]) -> Vec<&'a [&'l Location]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=locs.len() {
        let split = i == locs.len() || {
            let gap = locs[i].entry.offset.saturating_sub(end_of(locs[i - 1]));
            gap > COALESCE_GAP || end_of(locs[i]).saturating_sub(locs[start].entry.offset) > MAX_RANGE
        };
        if split {
            out.push(&locs[start..i]);
            start = i;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(offset: u64, sealed_len: u32) -> PackEntry {
        PackEntry { id: [0; 32], offset, sealed_len }
    }

    #[test]
    fn an_index_whose_entries_overlap_or_overflow_is_refused() {
        assert!(check_entries("index/a", &[entry(40, 10), entry(50, 10), entry(70, 5)]).is_ok());
        for bad in
            [vec![entry(40, 10), entry(45, 10)], vec![entry(50, 10), entry(40, 5)], vec![entry(u64::MAX - 3, 10)]]
        {
            let e = check_entries("index/a", &bad).unwrap_err().to_string();
            assert!(e.contains("index/a") && e.contains("overlap or overflow"), "{e}");
        }
    }
}
