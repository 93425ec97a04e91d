//! The read-only filesystem view of a vault (`mvault mount`): the inode table ([`tree`]),
//! lookups, directory listings and reads that decrypt only the chunks they touch, through a
//! bounded in-memory cache of decrypted chunks ([`cache`]). The FUSE adapter that serves it to
//! the kernel is [`fuse`] (feature `mount`); everything here works without it.
//!
//! A [`VaultFs`] takes one read snapshot of the vault when it is made and serves that snapshot
//! for its whole life: the tree (models, versions, aliases, files) is built from the manifests
//! of that snapshot, each checked as every read checks it (authenticated, signature verified,
//! canonical, bound to this vault), and chunks are read from the same snapshot, so a `put`,
//! `rm` or `gc` made while it is mounted changes nothing it shows (remount to see them).
//!
//! Every byte a read returns comes from a chunk that opened (AES-GCM tag under the AAD binding
//! its id, epoch, length equal to the signed manifest's); a chunk that does not open fails the
//! whole read with [`Error::Damaged`] and nothing of it is returned or cached. A read cannot
//! check a file's SHA-256 (it sees only part of the file); a whole-file read is as strong as
//! `get` through the chunk ids of the signed manifest. Plaintext lives only in memory (the
//! cache and the buffer of a read in flight); this module must never write a byte to disk,
//! build a host path from a name, or accept a write.

pub mod cache;
#[cfg(feature = "mount")]
pub mod fuse;
pub mod tree;

use std::sync::Arc;

use zeroize::Zeroizing;

use self::cache::{CacheStats, ChunkCache, Plain};
use self::tree::{Body, Ino, Kind, ModelEntry, Tree};
use crate::manifest::{FileEntry, Manifest};
use crate::names::escape;
use crate::ops::reader::{file_where, open_chunk, pieces_in};
use crate::store::{self, ReadTxn, RecordRead};
use crate::vault::{Unlocked, Vault};
use crate::{Error, Result};

/// Default bound of the decrypted-chunk cache, in MiB.
pub const DEFAULT_CACHE_MIB: usize = 256;

/// Largest cache bound accepted, in MiB (64 GiB).
pub const MAX_CACHE_MIB: usize = 64 * 1024;

/// Options of a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountOptions {
    /// Bound of the decrypted-chunk cache in MiB of plaintext (0 keeps no chunk: every read
    /// decrypts). Memory only; chunks are about 1 MiB each.
    pub cache_mib: usize,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions { cache_mib: DEFAULT_CACHE_MIB }
    }
}

impl MountOptions {
    /// Checks the options.
    ///
    /// Errors: [`Error::InvalidInput`] for a cache over [`MAX_CACHE_MIB`].
    pub fn check(&self) -> Result<()> {
        if self.cache_mib > MAX_CACHE_MIB {
            return Err(Error::InvalidInput(format!(
                "a cache of {} MiB is over the limit of {MAX_CACHE_MIB} MiB",
                self.cache_mib
            )));
        }
        Ok(())
    }
}

/// The attributes of an inode, as `stat` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// Inode number.
    pub ino: Ino,
    /// Directory, file or link.
    pub kind: Kind,
    /// Bytes: a file's size, a link target's length, 0 for a directory.
    pub size: u64,
    /// Modification time, Unix seconds (a version's creation time).
    pub mtime: u64,
}

/// The read-only filesystem of one vault snapshot (see the module docs). Shared by the threads
/// that serve requests: every method takes `&self`.
pub struct VaultFs {
    vault: Vault<Unlocked>,
    rx: ReadTxn,
    tree: Tree,
    cache: ChunkCache,
    problems: Vec<String>,
}

impl VaultFs {
    /// Takes a read snapshot of `vault` and builds the tree of every live version of every
    /// model. Records that do not open or check are left out and listed in
    /// [`VaultFs::problems`]; the rest is served.
    ///
    /// Errors: [`Error::InvalidInput`] for bad options; [`Error::Storage`]; [`Error::Damaged`]
    /// when the vault state cannot be read.
    pub fn new(vault: Vault<Unlocked>, opts: &MountOptions) -> Result<VaultFs> {
        opts.check()?;
        let rx = store::read(&vault.db)?;
        let (models, mut problems) = load_models(&vault, &rx)?;
        let (tree, more) = Tree::build(models, vault.created());
        problems.extend(more);
        let cache = ChunkCache::new(opts.cache_mib.saturating_mul(1 << 20));
        Ok(VaultFs { vault, rx, tree, cache, problems })
    }

    /// What was left out of the tree, one line each.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// The vault served.
    pub fn vault(&self) -> &Vault<Unlocked> {
        &self.vault
    }

    /// The tree served.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// Cache counts so far.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// The entry `name` of directory `parent`, `None` when there is none.
    pub fn lookup(&self, parent: Ino, name: &str) -> Option<Attr> {
        self.attr(self.tree.child(parent, name)?)
    }

    /// The attributes of `ino`, `None` for an unknown inode.
    pub fn attr(&self, ino: Ino) -> Option<Attr> {
        let n = self.tree.node(ino)?;
        let (kind, size) = match &n.body {
            Body::Dir(_) => (Kind::Dir, 0),
            Body::File { version, file } => (Kind::File, version.manifest.files[*file].size),
            Body::Link(t) => (Kind::Link, t.len() as u64),
        };
        Some(Attr { ino, kind, size, mtime: n.mtime })
    }

    /// The entries of directory `ino`, `.` and `..` first, then in name order; `None` when
    /// `ino` is not a directory.
    pub fn entries(&self, ino: Ino) -> Option<Vec<(String, Ino, Kind)>> {
        let n = self.tree.node(ino)?;
        let Body::Dir(children) = &n.body else { return None };
        let mut out = vec![(".".to_string(), ino, Kind::Dir), ("..".to_string(), n.parent, Kind::Dir)];
        for (name, &c) in children {
            out.push((name.clone(), c, self.attr(c)?.kind));
        }
        Some(out)
    }

    /// The target of link `ino` (a version number), `None` when it is not a link.
    pub fn readlink(&self, ino: Ino) -> Option<&str> {
        match &self.tree.node(ino)?.body {
            Body::Link(t) => Some(t),
            _ => None,
        }
    }

    /// The manifest and file entry behind file `ino`.
    pub fn file_of(&self, ino: Ino) -> Option<(&Manifest, &FileEntry)> {
        match &self.tree.node(ino)?.body {
            Body::File { version, file } => Some((&version.manifest, &version.manifest.files[*file])),
            _ => None,
        }
    }

    /// Reads up to `size` bytes of file `ino` from `offset` (fewer only at the end of the file;
    /// none from or past it). Only the chunks overlapping the range are opened (or taken from
    /// the cache); each is authenticated before a byte of it is copied.
    ///
    /// Errors: [`Error::NotFound`] when `ino` is not a file; [`Error::Damaged`] naming model,
    /// version, file and chunk when a chunk is missing, does not open or has the wrong length
    /// (no byte is returned then); [`Error::Storage`].
    pub fn read(&self, ino: Ino, offset: u64, size: u32) -> Result<Zeroizing<Vec<u8>>> {
        let Some(Body::File { version, file }) = self.tree.node(ino).map(|n| &n.body) else {
            return Err(Error::NotFound(format!("inode {ino} is not a file of the mount")));
        };
        let f = &version.manifest.files[*file];
        let len = f.size.saturating_sub(offset).min(size as u64);
        let mut out = Zeroizing::new(Vec::with_capacity(len as usize));
        for p in pieces_in(&version.starts[*file], &f.chunks, offset, len) {
            let plain = self.chunk(&version.manifest, f, p.chunk)?;
            out.extend_from_slice(&plain[p.skip..p.skip + p.take]);
        }
        if out.len() as u64 != len {
            return Err(Error::Damaged(format!(
                "{}: its chunks cover fewer bytes than its size",
                file_where(&version.manifest, f)
            )));
        }
        Ok(out)
    }

    /// Chunk `i` of `f`: from the cache, or opened (tag and length checked) and then cached.
    fn chunk(&self, m: &Manifest, f: &FileEntry, i: usize) -> Result<Plain> {
        let c = &f.chunks[i];
        if let Some(p) = self.cache.get(&c.id).filter(|p| p.len() == c.len as usize) {
            return Ok(p);
        }
        let plain = open_chunk(&self.rx, &self.vault.envelope(), c, &file_where(m, f), i, f.chunks.len())?;
        let plain: Plain = Arc::new(Zeroizing::new(plain));
        self.cache.insert(c.id, plain.clone());
        Ok(plain)
    }
}

/// Every model of the snapshot `rx` with its live versions that load and check; each record
/// that does not is described in the list returned.
fn load_models(v: &Vault<Unlocked>, rx: &ReadTxn) -> Result<(Vec<ModelEntry>, Vec<String>)> {
    let mut problems = Vec::new();
    if !v.has_model_tables(rx)? {
        return Ok((Vec::new(), problems));
    }
    problems.extend(v.model_set_problem()?);
    let mut models = Vec::new();
    for (key, value) in rx.models()? {
        let rec = match v.open_model(&key, "a model record", &value) {
            Ok(r) if v.model_key(&r.name) == key => r,
            Ok(r) => {
                problems.push(format!("model '{}': its record is stored under another key", escape(&r.name)));
                continue;
            }
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        problems.extend(v.live_mismatches(rx, &key, &rec)?.into_iter().map(|(_, m)| m));
        let mut versions = Vec::new();
        for n in v.live_versions(rx, &key, &rec)? {
            match v.load_version(rx, &rec.name, n) {
                Ok((m, _)) => versions.push(m),
                Err(e) => problems.push(e.to_string()),
            }
        }
        models.push(ModelEntry { name: rec.name, versions, aliases: rec.aliases });
    }
    models.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((models, problems))
}
