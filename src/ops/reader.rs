//! The chunk reader: one file of a version, read back from its chunk list through
//! [`std::io::Read`] and [`std::io::Seek`] (any byte of the file, or a byte range of it), over
//! any [`ChunkRead`]. `get`, `cat`, `get --tensor` and `diff` read through it.
//!
//! Every chunk is authenticated before a byte of it is handed out: its sealed value opens
//! ([`Envelope::open_chunk`]: header, epoch, AES-GCM tag under the AAD that binds the chunk id)
//! and its plaintext has the length the signed manifest gives. It holds at most one decrypted
//! chunk. The file's SHA-256 covers every chunk, so it can only be checked by a caller that reads
//! the whole file (`get`, `cat`); a range read is as good as its chunks' tags, which bind each
//! chunk's plaintext to its id, and the ids come from the signed manifest.
//!
//! It lives in `ops`, not in `store`, because it reads a manifest's file entry: the store holds
//! sealed blobs and never interprets a manifest. Errors name the model, version, file and chunk
//! ("model 'm' version 1 file 'f': chunk 2 of 9 (id 0123456789abcdef) ..."). It never returns a
//! byte of a chunk that failed authentication, and allocates only for the chunk it opens (its
//! plaintext is at most the stored value's length).

use std::io::{self, Read, Seek, SeekFrom};

use crate::manifest::{ChunkRef, FileEntry, Manifest, hex};
use crate::names::escape;
use crate::store::chunks::ChunkRead;
use crate::store::envelope::Envelope;
use crate::{Error, Result};

/// "model 'x' version N file 'p'", as every chunk error names it.
pub(crate) fn file_where(m: &Manifest, f: &FileEntry) -> String {
    format!("model '{}' version {} file '{}'", escape(&m.name), m.version, escape(&f.path))
}

/// Reads chunk `i` of the `n` of a file named `where_` from `store` and opens it: tag and
/// length checked.
///
/// Errors: [`Error::Damaged`] naming the chunk (missing, unreadable header, unknown epoch, tag,
/// length); [`Error::Storage`].
pub(crate) fn open_chunk<S: ChunkRead + ?Sized>(
    store: &S,
    env: &Envelope<'_>,
    c: &ChunkRef,
    where_: &str,
    i: usize,
    n: usize,
) -> Result<Vec<u8>> {
    let which = || format!("{where_}: chunk {} of {n} (id {})", i + 1, &hex(&c.id)[..16]);
    let v = store.get(&c.id)?.ok_or_else(|| {
        Error::Damaged(format!("{} is missing: the vault is damaged; other models remain readable", which()))
    })?;
    let plain = env.open_chunk(&c.id, v.as_ref(), which)?;
    if plain.len() != c.len as usize {
        return Err(Error::Damaged(format!("{} has {} bytes, the manifest says {}", which(), plain.len(), c.len)));
    }
    Ok(plain)
}

/// Where a [`ChunkReader`] gets a chunk's checked plaintext: any [`ChunkRead`] (the sealed
/// value opened by [`open_chunk`]), or the on-demand reader, which hands out chunks fetched from
/// a remote and checked there.
pub(crate) trait OpenChunk {
    /// Chunk `c`, the `i`-th of the `n` of the file named `where_`, opened and checked.
    ///
    /// Errors: as [`open_chunk`].
    fn open_chunk(&self, env: &Envelope<'_>, c: &ChunkRef, where_: &str, i: usize, n: usize) -> Result<Vec<u8>>;
}

impl<S: ChunkRead + ?Sized> OpenChunk for S {
    fn open_chunk(&self, env: &Envelope<'_>, c: &ChunkRef, where_: &str, i: usize, n: usize) -> Result<Vec<u8>> {
        open_chunk(self, env, c, where_, i, n)
    }
}

/// One piece of a byte range: `take` bytes from `skip` in chunk `chunk` of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    /// Index of the chunk in the file's chunk list.
    pub chunk: usize,
    /// Bytes to skip at the chunk's start.
    pub skip: usize,
    /// Bytes to take after that.
    pub take: usize,
}

/// A file's chunk layout: where each chunk starts (cumulative manifest lengths), and how errors
/// name the file. Built once per file and shared by its readers.
pub(crate) struct FileChunks<'f> {
    file: &'f FileEntry,
    starts: Vec<u64>,
    /// Bytes the chunks cover (their lengths' sum, which the manifest checks equals the size).
    covered: u64,
    where_: String,
}

impl<'f> FileChunks<'f> {
    /// The layout of `f` of version `m`.
    pub fn new(m: &Manifest, f: &'f FileEntry) -> Self {
        let mut starts = Vec::with_capacity(f.chunks.len());
        let mut at = 0u64;
        for c in &f.chunks {
            starts.push(at);
            at = at.saturating_add(c.len as u64);
        }
        FileChunks { file: f, starts, covered: at, where_: file_where(m, f) }
    }

    /// The file entry.
    pub fn file(&self) -> &'f FileEntry {
        self.file
    }

    /// "model 'x' version N file 'p'".
    pub fn where_(&self) -> &str {
        &self.where_
    }

    /// The index of the chunk holding byte `pos`, `None` past the end.
    fn chunk_at(&self, pos: u64) -> Option<usize> {
        (pos < self.covered).then(|| self.starts.partition_point(|&s| s <= pos).saturating_sub(1))
    }

    /// The pieces of every chunk overlapping `[offset, offset + len)`, in order. A range past the
    /// last chunk yields only the part the chunks cover (callers check the total).
    pub fn pieces(&self, offset: u64, len: u64) -> Vec<Piece> {
        pieces_in(&self.starts, &self.file.chunks, offset, len)
    }
}

/// [`FileChunks::pieces`] over a file's chunk list `chunks` whose chunk `i` starts at byte
/// `starts[i]` (the cumulative lengths; one start per chunk).
pub(crate) fn pieces_in(starts: &[u64], chunks: &[ChunkRef], offset: u64, len: u64) -> Vec<Piece> {
    let end = offset.saturating_add(len);
    let covered = match (starts.last(), chunks.last()) {
        (Some(s), Some(c)) => s.saturating_add(c.len as u64),
        _ => 0,
    };
    let mut out = Vec::new();
    if len == 0 || offset >= covered {
        return out;
    }
    let first = starts.partition_point(|&s| s <= offset).saturating_sub(1);
    for i in first..starts.len().min(chunks.len()) {
        let (s, l) = (starts[i], chunks[i].len as u64);
        if s >= end {
            break;
        }
        let (lo, hi) = (offset.max(s), end.min(s + l));
        if hi > lo {
            out.push(Piece { chunk: i, skip: (lo - s) as usize, take: (hi - lo) as usize });
        }
    }
    out
}

/// Reads one file's bytes from its chunks, authenticating each chunk before it yields a byte
/// of it (see the module documentation). Holds at most one decrypted chunk.
pub(crate) struct ChunkReader<'a, S: OpenChunk + ?Sized> {
    store: &'a S,
    env: Envelope<'a>,
    layout: &'a FileChunks<'a>,
    pos: u64,
    /// Reading stops here (the end of the range, or of the file).
    end: u64,
    /// The chunk last opened: its index and plaintext.
    cur: Option<(usize, Vec<u8>)>,
    chunks_read: usize,
}

impl<'a, S: OpenChunk + ?Sized> ChunkReader<'a, S> {
    /// A reader of the whole file laid out by `layout`, at its first byte.
    pub fn new(store: &'a S, env: Envelope<'a>, layout: &'a FileChunks<'a>) -> Self {
        ChunkReader { store, env, layout, pos: 0, end: layout.covered, cur: None, chunks_read: 0 }
    }

    /// Moves to `offset` and stops reads at `offset + len` (or at the end the chunks cover, if
    /// that is sooner). Only the end is a limit: a later seek may go anywhere in the file, before
    /// `offset` too, and reads from there stop at the same end.
    pub fn set_range(&mut self, offset: u64, len: u64) {
        self.pos = offset;
        self.end = offset.saturating_add(len).min(self.layout.covered);
    }

    /// Chunks opened so far.
    pub fn chunks_read(&self) -> usize {
        self.chunks_read
    }

    fn open(&mut self, i: usize) -> Result<Vec<u8>> {
        let chunks = &self.layout.file.chunks;
        let plain = self.store.open_chunk(&self.env, &chunks[i], &self.layout.where_, i, chunks.len())?;
        self.chunks_read += 1;
        Ok(plain)
    }

    /// The authenticated bytes from the position to the end of its chunk (or of the range),
    /// opening that chunk if needed; empty at the end. [`ChunkReader::consume`] moves on.
    ///
    /// Errors: [`Error::Damaged`] naming model, version, file and chunk; [`Error::Storage`].
    pub fn fill(&mut self) -> Result<&[u8]> {
        let Some(i) = self.layout.chunk_at(self.pos).filter(|_| self.pos < self.end) else {
            return Ok(&[]);
        };
        if self.cur.as_ref().is_none_or(|(c, _)| *c != i) {
            self.cur = None;
            self.cur = Some((i, self.open(i)?));
        }
        let start = self.layout.starts[i];
        let plain = &self.cur.as_ref().expect("opened above").1;
        let skip = (self.pos - start) as usize;
        let stop = ((self.end - start) as usize).min(plain.len());
        Ok(&plain[skip..stop])
    }

    /// Moves the position `n` bytes on (at most what [`ChunkReader::fill`] returned).
    pub fn consume(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n as u64);
    }

    /// The next authenticated bytes as an owned buffer (a whole chunk, without a copy, when the
    /// position is at a chunk's start and the chunk ends inside the range), `None` at the end.
    ///
    /// Errors: as [`ChunkReader::fill`].
    pub fn next_owned(&mut self) -> Result<Option<Vec<u8>>> {
        if let Some(i) = self.layout.chunk_at(self.pos).filter(|_| self.pos < self.end)
            && self.layout.starts[i] == self.pos
            && self.pos + self.layout.file.chunks[i].len as u64 <= self.end
            && self.cur.as_ref().is_none_or(|(c, _)| *c != i)
        {
            let plain = self.open(i)?;
            self.pos += plain.len() as u64;
            return Ok(Some(plain));
        }
        let b = self.fill()?.to_vec();
        self.consume(b.len());
        Ok((!b.is_empty()).then_some(b))
    }
}

/// Turns a crate error into an I/O error that [`from_io`] turns back.
fn to_io(e: Error) -> io::Error {
    io::Error::other(e)
}

/// The crate error inside an I/O error from a [`ChunkReader`]'s `Read` or `Seek`, or an
/// [`Error::Io`] for any other I/O error.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn from_io(e: io::Error) -> Error {
    match e.downcast::<Error>() {
        Ok(e) => e,
        Err(e) => Error::io("reading a file of the vault", e),
    }
}

impl<S: OpenChunk + ?Sized> Read for ChunkReader<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let b = self.fill().map_err(to_io)?;
        let n = b.len().min(buf.len());
        buf[..n].copy_from_slice(&b[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<S: OpenChunk + ?Sized> Seek for ChunkReader<'_, S> {
    /// Positions are in the file's bytes; the end is the file's size (or, after
    /// [`ChunkReader::set_range`], still the file's size). Seeking past the end is allowed (reads
    /// then return 0 bytes); before the start is an error.
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.layout.covered.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let p = target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the file's start"))?;
        self.pos = p;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::crypto::SecretKey;
    use crate::crypto::keys::EpochKeys;

    /// Chunks in memory.
    #[derive(Default)]
    struct Mem(BTreeMap<[u8; 32], Vec<u8>>);

    impl ChunkRead for Mem {
        type Value<'a> = &'a [u8];
        fn get(&self, id: &[u8; 32]) -> Result<Option<&[u8]>> {
            Ok(self.0.get(id).map(|v| v.as_slice()))
        }
        fn contains(&self, id: &[u8; 32]) -> Result<bool> {
            Ok(self.0.contains_key(id))
        }
        fn ids(&self) -> Result<Vec<([u8; 32], u32)>> {
            Ok(self.0.iter().map(|(k, v)| (*k, v.len() as u32)).collect())
        }
    }

    fn manifest(f: FileEntry) -> Manifest {
        Manifest {
            manifest_version: 1,
            vault_id: [1; 16],
            name: "m".into(),
            version: 1,
            created: 0,
            revision: 0,
            updated: 0,
            description: String::new(),
            tags: BTreeMap::new(),
            metrics: BTreeMap::new(),
            files: vec![f],
        }
    }

    fn entry(lens: &[u32]) -> FileEntry {
        FileEntry {
            path: "f".into(),
            size: lens.iter().map(|&l| l as u64).sum(),
            sha256: [0; 32],
            chunks: lens.iter().enumerate().map(|(i, &len)| ChunkRef { id: [i as u8; 32], len }).collect(),
            format: "safetensors".into(),
            tensors: Vec::new(),
            scan: None,
        }
    }

    /// A file of chunks of `lens` bytes (byte k of the file = k mod 251), sealed into a store.
    fn sealed(keys: &EpochKeys, lens: &[u32]) -> (Manifest, Mem, Vec<u8>) {
        let f = entry(lens);
        let env = Envelope::new([1; 16], keys, None);
        let data: Vec<u8> = (0..f.size).map(|k| (k % 251) as u8).collect();
        let mut mem = Mem::default();
        let mut at = 0usize;
        for c in &f.chunks {
            let plain = &data[at..at + c.len as usize];
            mem.0.insert(c.id, env.seal_chunk(&c.id, plain).unwrap());
            at += c.len as usize;
        }
        (manifest(f), mem, data)
    }

    #[test]
    fn pieces_cover_exactly_the_range() {
        let m = manifest(entry(&[10, 20, 30]));
        let l = FileChunks::new(&m, &m.files[0]);
        let p = |c, skip, take| Piece { chunk: c, skip, take };
        assert_eq!(l.pieces(10, 20), vec![p(1, 0, 20)]);
        assert_eq!(l.pieces(0, 60), vec![p(0, 0, 10), p(1, 0, 20), p(2, 0, 30)]);
        assert_eq!(l.pieces(5, 10), vec![p(0, 5, 5), p(1, 0, 5)]);
        assert_eq!(l.pieces(59, 1), vec![p(2, 29, 1)]);
        assert!(l.pieces(30, 0).is_empty());
        // Past the end: only what the chunks cover, never a panic.
        assert_eq!(l.pieces(55, 100), vec![p(2, 25, 5)]);
        assert!(l.pieces(u64::MAX, u64::MAX).is_empty());
        let e = manifest(entry(&[]));
        assert!(FileChunks::new(&e, &e.files[0]).pieces(0, 5).is_empty());
    }

    #[test]
    fn reads_and_seeks_any_byte() {
        let k = EpochKeys::derive(&SecretKey([2; 32]), &[1; 16], 0);
        let (m, mem, data) = sealed(&k, &[7, 1, 300, 64]);
        let l = FileChunks::new(&m, &m.files[0]);
        let env = Envelope::new([1; 16], &k, None);
        let mut r = ChunkReader::new(&mem, env, &l);
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        assert_eq!(all, data);
        for start in [0u64, 6, 7, 8, 100, 307, 371] {
            r.seek(SeekFrom::Start(start)).unwrap();
            let mut rest = Vec::new();
            r.read_to_end(&mut rest).unwrap();
            assert_eq!(rest, &data[start as usize..], "from {start}");
        }
        assert_eq!(r.seek(SeekFrom::End(-3)).unwrap(), 369);
        let mut b = [0u8; 2];
        r.read_exact(&mut b).unwrap();
        assert_eq!(&b, &data[369..371]);
        assert_eq!(r.seek(SeekFrom::Current(-10)).unwrap(), 361);
        assert!(r.seek(SeekFrom::Current(-1000)).is_err());
        r.seek(SeekFrom::Start(10_000)).unwrap();
        assert_eq!(r.read(&mut b).unwrap(), 0);
        // A byte range spanning chunks, and one held by one chunk.
        let mut r = ChunkReader::new(&mem, env, &l);
        r.set_range(5, 10);
        let mut got = Vec::new();
        while let Some(b) = r.next_owned().unwrap() {
            got.extend_from_slice(&b);
        }
        assert_eq!(got, &data[5..15]);
        assert_eq!(r.chunks_read(), 3);
        let mut r = ChunkReader::new(&mem, env, &l);
        r.set_range(8, 300);
        let first = r.next_owned().unwrap().unwrap();
        assert_eq!((first.len(), r.chunks_read()), (300, 1));
        assert_eq!(r.next_owned().unwrap(), None);
    }

    #[test]
    fn no_byte_of_a_bad_chunk() {
        let k = EpochKeys::derive(&SecretKey([2; 32]), &[1; 16], 0);
        let env = Envelope::new([1; 16], &k, None);
        let damaged = |mut m: Manifest, mem: Mem| {
            let l = FileChunks::new(&m, &m.files[0]);
            let mut r = ChunkReader::new(&mem, env, &l);
            let mut out = Vec::new();
            let e = from_io(r.read_to_end(&mut out).unwrap_err());
            m.files.clear();
            (out.len(), e.to_string())
        };
        // Chunk 2's value stored again under chunk 3's id: chunks 1 and 2 are read (8 bytes), nothing of chunk 3.
        let (m, mut mem, _) = sealed(&k, &[4, 4, 4]);
        let v = mem.0[&[1; 32]].clone();
        mem.0.insert([2; 32], v);
        let (n, e) = damaged(m, mem);
        assert_eq!(n, 8);
        assert!(
            e.contains("model 'm' version 1 file 'f': chunk 3 of 3 (id 0202020202020202): authentication failed"),
            "{e}"
        );
        // A chunk missing.
        let (m, mut mem, _) = sealed(&k, &[4, 4]);
        mem.0.remove(&[0; 32]);
        let (n, e) = damaged(m, mem);
        assert_eq!(n, 0);
        assert!(e.contains("chunk 1 of 2 (id 0000000000000000) is missing: the vault is damaged"), "{e}");
        // The manifest gives another length than the chunk has.
        let (mut m, mem, _) = sealed(&k, &[4, 4]);
        m.files[0].chunks[1].len = 5;
        let (n, e) = damaged(m, mem);
        assert_eq!(n, 4);
        assert!(e.contains("chunk 2 of 2 (id 0101010101010101) has 4 bytes, the manifest says 5"), "{e}");
    }
}
