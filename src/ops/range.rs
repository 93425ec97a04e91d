//! Byte ranges of a version's file read into a caller's buffer: what a binding that hands out
//! one tensor at a time (the Python package's `safe_open`) reads through, without a temporary
//! file and without holding more than the range and one decrypted chunk.
//!
//! Owns [`Vault::read_range`]. It reads through `ops::reader::ChunkReader`, so every chunk is
//! authenticated (AES-GCM tag under the AAD binding its id, and its manifest length) before a
//! byte of it is copied; the file's SHA-256 is not re-checked, as that needs every chunk (see
//! the reader's module documentation). It must never write a file nor return a byte of a chunk
//! that failed its check.

use super::reader::{ChunkReader, FileChunks, file_where};
use crate::manifest::Manifest;
use crate::names::escape;
use crate::store;
use crate::vault::{Unlocked, Vault};
use crate::{Error, Remedy, Result};

impl Vault<Unlocked> {
    /// Fills `buf` with bytes `[offset, offset + buf.len())` of the file `path` of the version
    /// whose manifest is `m` (from [`Vault::manifest`], which checked its signature), decrypting
    /// only the chunks holding them. Returns the number of chunks decrypted. An empty `buf` reads
    /// nothing.
    ///
    /// Errors: [`Error::NotFound`] when the version has no file `path`; [`Error::InvalidInput`]
    /// when the range ends past the file's size, or `m` belongs to another vault;
    /// [`Error::Damaged`] naming model, version, file and chunk (a chunk missing or failing
    /// authentication, or fewer bytes than the manifest promises); [`Error::Storage`].
    pub fn read_range(&self, m: &Manifest, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize> {
        if m.vault_id != self.vault_id() {
            return Err(Error::InvalidInput(format!(
                "the manifest of '{}' version {} belongs to another vault",
                escape(&m.name),
                m.version
            )));
        }
        let f = m.files.iter().find(|f| f.path == path).ok_or_else(|| {
            Error::NotFound(format!("{}@{} has no file '{}'", escape(&m.name), m.version, escape(path)))
                .with_remedy(Remedy::ListFiles)
        })?;
        let end = offset.checked_add(buf.len() as u64).filter(|&e| e <= f.size);
        if end.is_none() {
            return Err(Error::InvalidInput(format!(
                "{}: bytes {offset}..{} are past its end ({} bytes)",
                file_where(m, f),
                offset.saturating_add(buf.len() as u64),
                f.size
            )));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let layout = FileChunks::new(m, f);
        let chunks = store::read(&self.db)?;
        let mut rd = ChunkReader::new(&chunks, self.envelope(), &layout);
        rd.set_range(offset, buf.len() as u64);
        let mut got = 0usize;
        loop {
            let b = rd.fill()?;
            if b.is_empty() {
                break;
            }
            let n = b.len().min(buf.len() - got);
            buf[got..got + n].copy_from_slice(&b[..n]);
            got += n;
            rd.consume(n);
        }
        if got != buf.len() {
            return Err(Error::Damaged(format!(
                "{}: bytes {offset}..{} should be there but its chunks hold {got} of them: the manifest is inconsistent",
                layout.where_(),
                offset + buf.len() as u64
            )));
        }
        Ok(rd.chunks_read())
    }
}
