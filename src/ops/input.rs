//! Reading a model file for `put`: consecutive pieces at increasing offsets, in buffers that the
//! last stage reading them hands back for reuse.
//!
//! A put of a 2 GiB model reads about 2,100 pieces of up to 1 MiB. Allocating a buffer for each
//! meant zero-filling or page-faulting it in (measured: 3-4% of a cold put's CPU, memset in the
//! reader thread and page faults); with buffers handed back ([`PieceReader::recycler`]) a put
//! allocates a few dozen. Measured on the 2 GiB model: warm re-put 1.79-1.83 s against
//! 1.94-2.03 s with a new buffer per piece.
//!
//! It also binds the analysis pass to the store pass ([`CheckedView`], [`BlockCheck`]): a file
//! rewritten between the two through a shared memory map keeps its size, modification and change
//! times, so `stat` cannot see it. Every block of the file the analysis (format detection, tensor
//! index, pickle scan) looked at is remembered by its BLAKE3 digest, a block shown twice must show
//! the same bytes, and the store pass re-hashes those blocks from the very buffers it seals: the
//! verdict and the chunk cuts are then about exactly the bytes stored, or the put is refused.
//! This module must never let a block the analysis saw be stored with other bytes unnoticed.
//!
//! Reads go through the page cache, so the kernel's readahead overlaps them with the pipeline.
//! (Direct I/O, `O_DIRECT`, removed the copy out of the page cache, 15% of a cold put's CPU, but
//! without readahead each read waited on the disk: a cold re-put took 3.4-4.7 s against
//! 2.7-3.1 s, a warm one 3.3-3.7 s against 1.9-2.0 s, and a first put gained nothing measurable.)

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

/// One piece of the file: the first `len` bytes of `buf`.
pub struct Piece {
    buf: Vec<u8>,
    len: usize,
}

impl Piece {
    /// The piece's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Gives the buffer back for reuse.
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads a file in consecutive pieces, at increasing offsets.
pub struct PieceReader {
    file: File,
    pos: u64,
    spare: crossbeam_channel::Receiver<Vec<u8>>,
    recycle: crossbeam_channel::Sender<Vec<u8>>,
}

/// What went wrong reading a piece.
pub enum ReadError {
    /// The file ended before the piece did.
    Short,
    /// Any other I/O error.
    Io(io::Error),
}

impl PieceReader {
    /// Reads `file` from offset 0; at most `spare_buffers` handed-back buffers are kept.
    pub fn new(file: File, spare_buffers: usize) -> PieceReader {
        let (recycle, spare) = crossbeam_channel::bounded(spare_buffers);
        PieceReader { file, pos: 0, spare, recycle }
    }

    /// A handle through which later stages hand buffers back; extra buffers are dropped.
    pub fn recycler(&self) -> Recycler {
        Recycler(self.recycle.clone())
    }

    /// Reads the next `len` bytes.
    ///
    /// Errors: [`ReadError::Short`] when the file ends first, [`ReadError::Io`] otherwise.
    pub fn read_piece(&mut self, len: usize) -> Result<Piece, ReadError> {
        let mut buf = self.buffer(len);
        read_full_at(&self.file, &mut buf[..len], self.pos)?;
        self.pos += len as u64;
        Ok(Piece { buf, len })
    }

    /// True when nothing follows the pieces read so far.
    ///
    /// Errors: the read's.
    pub fn at_end(&self) -> io::Result<bool> {
        let mut probe = [0u8; 1];
        loop {
            match pread(&self.file, &mut probe, self.pos) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return Ok(other? == 0),
            }
        }
    }

    /// A buffer of at least `len` initialised bytes: a handed-back one if any, else a new one.
    fn buffer(&self, len: usize) -> Vec<u8> {
        let mut buf = self.spare.try_recv().unwrap_or_default();
        if buf.len() < len {
            buf.resize(len, 0);
        }
        buf
    }
}

/// Hands piece buffers back to their [`PieceReader`].
#[derive(Clone)]
pub struct Recycler(crossbeam_channel::Sender<Vec<u8>>);

impl Recycler {
    /// Returns `piece`'s buffer for reuse (dropped if enough are waiting).
    pub fn give_back(&self, piece: Piece) {
        let _ = self.0.try_send(piece.into_buffer());
    }
}

/// Size of the blocks [`CheckedView`] remembers, in bytes (64 KiB).
pub const VIEW_BLOCK: u64 = 64 * 1024;
/// Blocks [`CheckedView`] keeps in memory to serve small reads without reading again.
const VIEW_CACHE_BLOCKS: usize = 8;

/// A read-only, seekable view of a file of a fixed length for the analysis pass, which
/// remembers the BLAKE3 digest of every [`VIEW_BLOCK`]-sized block it showed. A block read again
/// (after it left the small cache) must have the same digest, and the file must still be at
/// least the length given; otherwise the read fails and [`CheckedView::changed`] is true.
/// [`CheckedView::into_seen`] gives the digests to a [`BlockCheck`] for the store pass.
pub struct CheckedView<'f> {
    file: &'f File,
    len: u64,
    pos: u64,
    seen: HashMap<u64, [u8; 32]>,
    cache: VecDeque<(u64, Vec<u8>)>,
    changed: bool,
}

impl<'f> CheckedView<'f> {
    /// A view of the first `len` bytes of `file` (its size when it was opened).
    pub fn new(file: &'f File, len: u64) -> CheckedView<'f> {
        CheckedView { file, len, pos: 0, seen: HashMap::new(), cache: VecDeque::new(), changed: false }
    }

    /// True when a block read twice differed, or the file ended before `len`.
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// The digests of the blocks shown, for [`BlockCheck::new`].
    pub fn into_seen(self) -> SeenBlocks {
        SeenBlocks { len: self.len, blocks: self.seen.into_iter().collect() }
    }

    fn changed_error(&mut self) -> io::Error {
        self.changed = true;
        io::Error::other("the file changed while it was being read")
    }

    /// The bytes of block `idx` (shorter for the last block), read and checked if not cached.
    fn block(&mut self, idx: u64) -> io::Result<&[u8]> {
        if let Some(i) = self.cache.iter().position(|(b, _)| *b == idx) {
            return Ok(&self.cache[i].1);
        }
        let start = idx * VIEW_BLOCK;
        let want = VIEW_BLOCK.min(self.len - start) as usize;
        let mut buf = match self.cache.len() {
            n if n >= VIEW_CACHE_BLOCKS => self.cache.pop_front().map(|(_, b)| b).unwrap_or_default(),
            _ => Vec::new(),
        };
        buf.resize(want, 0);
        match read_full_at(self.file, &mut buf, start) {
            Ok(()) => {}
            Err(ReadError::Short) => return Err(self.changed_error()),
            Err(ReadError::Io(e)) => return Err(e),
        }
        let digest: [u8; 32] = blake3::hash(&buf).into();
        if *self.seen.entry(idx).or_insert(digest) != digest {
            return Err(self.changed_error());
        }
        self.cache.push_back((idx, buf));
        Ok(&self.cache.back().expect("just pushed").1)
    }
}

impl Read for CheckedView<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || out.is_empty() {
            return Ok(0);
        }
        let idx = self.pos / VIEW_BLOCK;
        let at = (self.pos - idx * VIEW_BLOCK) as usize;
        let block = self.block(idx)?;
        let n = out.len().min(block.len() - at);
        out[..n].copy_from_slice(&block[at..at + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for CheckedView<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let Some(p) = target else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "seek before the start of the file"));
        };
        self.pos = p;
        Ok(p)
    }
}

/// The blocks a [`CheckedView`] showed: block index → BLAKE3 digest, and the file length.
#[derive(Debug, Clone, Default)]
pub struct SeenBlocks {
    len: u64,
    blocks: BTreeMap<u64, [u8; 32]>,
}

/// Checks, piece by piece in file order, that the bytes being stored hash block by block to
/// the digests the analysis pass saw ([`SeenBlocks`]).
pub struct BlockCheck {
    seen: SeenBlocks,
    pos: u64,
    hasher: blake3::Hasher,
    checked: usize,
}

impl BlockCheck {
    /// Starts at offset 0 of the file the blocks came from.
    pub fn new(seen: SeenBlocks) -> BlockCheck {
        BlockCheck { seen, pos: 0, hasher: blake3::Hasher::new(), checked: 0 }
    }

    /// Feeds the next consecutive `bytes` of the file. False as soon as a block the analysis saw
    /// holds other bytes now (or the file runs past the analysed length).
    pub fn feed(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            if self.pos >= self.seen.len {
                return false;
            }
            let idx = self.pos / VIEW_BLOCK;
            let end = ((idx + 1) * VIEW_BLOCK).min(self.seen.len);
            let take = bytes.len().min((end - self.pos) as usize);
            if let Some(want) = self.seen.blocks.get(&idx) {
                self.hasher.update(&bytes[..take]);
                if self.pos + take as u64 == end {
                    let got: [u8; 32] = self.hasher.finalize().into();
                    self.hasher.reset();
                    if got != *want {
                        return false;
                    }
                    self.checked += 1;
                }
            }
            self.pos += take as u64;
            bytes = &bytes[take..];
        }
        true
    }

    /// True when every block the analysis saw was fed whole and matched.
    pub fn complete(&self) -> bool {
        self.checked == self.seen.blocks.len() && self.pos == self.seen.len
    }
}

/// One positioned read (`pread(2)`; `seek_read` on Windows).
fn pread(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    #[cfg(unix)]
    return std::os::unix::fs::FileExt::read_at(file, buf, at);
    #[cfg(windows)]
    return std::os::windows::fs::FileExt::seek_read(file, buf, at);
    #[cfg(not(any(unix, windows)))]
    {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = file;
        f.seek(SeekFrom::Start(at))?;
        f.read(buf)
    }
}

fn read_full_at(file: &File, buf: &mut [u8], mut at: u64) -> Result<(), ReadError> {
    let mut got = 0;
    while got < buf.len() {
        match pread(file, &mut buf[got..], at) {
            Ok(0) => return Err(ReadError::Short),
            Ok(n) => {
                got += n;
                at += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn pieces(path: &Path, lens: &[usize]) -> (Vec<u8>, usize) {
        let mut r = PieceReader::new(File::open(path).unwrap(), 4);
        let recycler = r.recycler();
        let mut out = Vec::new();
        for &n in lens {
            let Ok(p) = r.read_piece(n) else { panic!("piece of {n} bytes") };
            out.extend_from_slice(p.bytes());
            recycler.give_back(p);
        }
        assert!(r.at_end().unwrap());
        (out, r.spare.len())
    }

    #[test]
    fn pieces_rebuild_the_file_and_reuse_one_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..300_001u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let lens = [1, 4095, 4096, 4097, 100_000, 7, 187_705];
        assert_eq!(lens.iter().sum::<usize>(), data.len());
        let (got, spare) = pieces(&path, &lens);
        assert_eq!(got, data);
        assert_eq!(spare, 1, "each piece reused the buffer handed back before it");
    }

    #[test]
    fn a_file_shorter_than_its_pieces_is_reported_short() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 10_000]).unwrap();
        let mut r = PieceReader::new(File::open(&path).unwrap(), 4);
        assert!(r.read_piece(6_000).is_ok());
        assert!(matches!(r.read_piece(6_000), Err(ReadError::Short)));
    }

    #[test]
    fn a_file_longer_than_its_pieces_is_not_at_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 10_000]).unwrap();
        let mut r = PieceReader::new(File::open(&path).unwrap(), 4);
        assert!(r.read_piece(9_999).is_ok());
        assert!(!r.at_end().unwrap());
    }

    /// Reads `f` through a view the way the analysis pass does: all of it, then its head again.
    fn view_all(file: &File, len: u64) -> (Vec<u8>, CheckedView<'_>) {
        let mut v = CheckedView::new(file, len);
        let mut all = Vec::new();
        v.read_to_end(&mut all).unwrap();
        (all, v)
    }

    #[test]
    fn a_view_shows_the_file_and_the_stored_bytes_match_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..300_001u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        let (all, mut v) = view_all(&file, data.len() as u64);
        assert_eq!(all, data);
        v.seek(SeekFrom::Start(70_000)).unwrap();
        let mut eight = [0u8; 8];
        v.read_exact(&mut eight).unwrap();
        assert_eq!(eight, data[70_000..70_008]);
        assert!(!v.changed());
        let mut check = BlockCheck::new(v.into_seen());
        for piece in data.chunks(100_003) {
            assert!(check.feed(piece));
        }
        assert!(check.complete());
    }

    #[test]
    fn stored_bytes_other_than_the_analysed_ones_are_caught_in_any_seen_block() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data = vec![3u8; 200_000];
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        // Only the head and the tail are analysed, as for a safetensors header plus a sniff.
        let mut v = CheckedView::new(&file, data.len() as u64);
        let mut head = vec![0u8; 100];
        v.read_exact(&mut head).unwrap();
        v.seek(SeekFrom::End(-10)).unwrap();
        let mut tail = Vec::new();
        v.read_to_end(&mut tail).unwrap();
        let seen = v.into_seen();
        for flip in [5usize, 199_995] {
            let mut stored = data.clone();
            stored[flip] ^= 1;
            let mut check = BlockCheck::new(seen.clone());
            assert!(!stored.chunks(65_000).all(|p| check.feed(p)), "a flip at {flip} went unnoticed");
        }
        // A block the analysis never read may differ: the analysis did not depend on it.
        let mut stored = data.clone();
        stored[100_000] ^= 1;
        let mut check = BlockCheck::new(seen.clone());
        assert!(stored.chunks(65_000).all(|p| check.feed(p)) && check.complete());
        // A stored file longer than the analysed one is refused.
        let mut check = BlockCheck::new(seen);
        assert!(!check.feed(&[data.clone(), vec![0]].concat()));
    }

    #[test]
    fn a_block_that_reads_differently_the_second_time_marks_the_view_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![1u8; 40 * VIEW_BLOCK as usize]).unwrap();
        let file = File::open(&path).unwrap();
        let mut v = CheckedView::new(&file, 40 * VIEW_BLOCK);
        let mut b = [0u8; 4];
        v.read_exact(&mut b).unwrap();
        // Read enough other blocks to push block 0 out of the cache, then change it.
        for i in 1..=(VIEW_CACHE_BLOCKS as u64 + 1) {
            v.seek(SeekFrom::Start(i * VIEW_BLOCK)).unwrap();
            v.read_exact(&mut b).unwrap();
        }
        std::os::unix::fs::FileExt::write_all_at(
            &std::fs::OpenOptions::new().write(true).open(&path).unwrap(),
            b"X",
            9,
        )
        .unwrap();
        v.seek(SeekFrom::Start(0)).unwrap();
        assert!(v.read_exact(&mut b).is_err());
        assert!(v.changed());
        // A file cut shorter than the view's length is a change too.
        let mut v = CheckedView::new(&file, 41 * VIEW_BLOCK);
        v.seek(SeekFrom::Start(40 * VIEW_BLOCK)).unwrap();
        assert!(v.read_exact(&mut b).is_err());
        assert!(v.changed());
    }
}
