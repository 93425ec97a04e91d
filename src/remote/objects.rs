//! The blocking object interface a remote is reached through: whole reads bounded by a size limit
//! checked before the body is read, ranged reads, size queries, plain
//! writes of immutable objects, create-only writes (`If-None-Match: *`) for the objects that
//! decide an order (log entries), listing and deleting, all under the remote's prefix. It also
//! holds [`MemoryObjects`], an in-process store for tests, which can be told to ignore the
//! create-only condition as some servers do. It must never retry a create-only write as a plain
//! one, nor report a write as done before the store said so.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Mutex;

pub use crate::remote::format::MAX_META_OBJECT;
use crate::{Error, Result};

/// The error for an object over the limit of a whole read: [`Error::Damaged`] naming the key,
/// its size (or "more than" the limit when only a bounded read was made) and the limit.
pub fn too_large(key: &str, size: Option<u64>, limit: u64) -> Error {
    let size = size.map_or(format!("more than {limit}"), |s| s.to_string());
    Error::Damaged(format!(
        "remote object {key} is {size} bytes, over the {limit}-byte limit of a whole read: it was not read; the \
         remote was damaged or tampered with"
    ))
}

/// One object of a listing: its key (relative to the remote's prefix) and size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Key relative to the remote's prefix, `/`-separated.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// The outcome of a create-only write ([`Objects::put_if_absent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The object did not exist and now holds the bytes given.
    Created,
    /// An object of that key existed (HTTP 412 Precondition Failed); nothing was written.
    AlreadyExists,
}

/// A remote object store, as the rest of the library sees it. Keys are relative to the remote's
/// prefix and use `/` as separator. Every method blocks until the store has answered; transient
/// faults (connection reset, timeout, 5xx) are retried inside the implementation, a bounded number
/// of times, before an error is returned.
///
/// Errors: every method returns [`Error::Remote`] for a fault the retries did not get past (the
/// context names the operation and key, never a secret).
pub trait Objects: Send + Sync {
    /// The whole object, or `None` when no object has that key, refused without reading it all
    /// when it holds more than `limit` bytes (the size comes from the store's metadata before the
    /// body is read, and the read stops at `limit` + 1 bytes whatever the metadata said).
    ///
    /// Errors: [`too_large`] ([`Error::Damaged`]) naming the key and the limit; [`Error::Remote`].
    fn get_bounded(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>>;
    /// The whole object within the limit on one metadata object ([`MAX_META_OBJECT`], 256 MiB):
    /// [`Objects::get_bounded`] with that limit.
    ///
    /// Errors: as [`Objects::get_bounded`].
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.get_bounded(key, MAX_META_OBJECT)
    }
    /// The object's size in bytes (a HEAD request), or `None` when no object has that key.
    fn head(&self, key: &str) -> Result<Option<u64>>;
    /// Bytes `range` (start inclusive, end exclusive) of the object. A range past the object's end
    /// or an absent object is an error.
    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>>;
    /// Writes the object whatever exists under the key (for immutable, content-named objects,
    /// where a second writer writes the same bytes). Large objects may go up in parts.
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()>;
    /// Writes the object only if no object has that key (`If-None-Match: *`).
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<Created>;
    /// Every object whose key starts with `prefix`, in key order.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;
    /// Deletes the object; deleting an absent object is not an error.
    fn delete(&self, key: &str) -> Result<()>;
}

/// An in-memory [`Objects`] for tests and for programs that embed the library. With
/// [`MemoryObjects::ignoring_conditions`] it behaves like a server that accepts a create-only write
/// of an existing key (it overwrites and answers "created"), so fork detection can be tested.
#[derive(Debug, Default)]
pub struct MemoryObjects {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    ignore_conditions: bool,
}

impl MemoryObjects {
    /// An empty store that honours create-only writes.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that ignores the create-only condition (overwrites, reports
    /// [`Created::Created`]).
    pub fn ignoring_conditions() -> Self {
        MemoryObjects { ignore_conditions: true, ..Self::default() }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        // A panic while holding the lock leaves a map that is still consistent (each operation
        // is one insert, remove or read), so a poisoned lock is taken over.
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Objects for MemoryObjects {
    fn get_bounded(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        match self.map().get(key) {
            Some(b) if b.len() as u64 > limit => Err(too_large(key, Some(b.len() as u64), limit)),
            found => Ok(found.cloned()),
        }
    }

    fn head(&self, key: &str) -> Result<Option<u64>> {
        Ok(self.map().get(key).map(|b| b.len() as u64))
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let map = self.map();
        let obj = map.get(key).ok_or_else(|| Error::remote(format!("reading {key}"), "no such object"))?;
        if range.start > range.end || range.end > obj.len() as u64 {
            return Err(Error::remote(
                format!("reading bytes {}..{} of {key}", range.start, range.end),
                format!("the object holds {} bytes", obj.len()),
            ));
        }
        Ok(obj[range.start as usize..range.end as usize].to_vec())
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.map().insert(key.to_string(), bytes.to_vec());
        Ok(())
    }

    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<Created> {
        let mut map = self.map();
        if map.contains_key(key) && !self.ignore_conditions {
            return Ok(Created::AlreadyExists);
        }
        map.insert(key.to_string(), bytes.to_vec());
        Ok(Created::Created)
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        Ok(self
            .map()
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| ObjectInfo { key: k.clone(), size: v.len() as u64 })
            .collect())
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.map().remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_only_writes_have_one_winner_unless_conditions_are_ignored() {
        let honest = MemoryObjects::new();
        assert_eq!(honest.put_if_absent("log/1", b"a").unwrap(), Created::Created);
        assert_eq!(honest.put_if_absent("log/1", b"b").unwrap(), Created::AlreadyExists);
        assert_eq!(honest.get("log/1").unwrap().as_deref(), Some(&b"a"[..]));

        let lax = MemoryObjects::ignoring_conditions();
        assert_eq!(lax.put_if_absent("log/1", b"a").unwrap(), Created::Created);
        assert_eq!(lax.put_if_absent("log/1", b"b").unwrap(), Created::Created);
        assert_eq!(lax.get("log/1").unwrap().as_deref(), Some(&b"b"[..]));
    }

    #[test]
    fn listing_is_by_prefix_in_key_order_and_ranges_are_bounded() {
        let s = MemoryObjects::new();
        for k in ["packs/b", "log/2", "packs/a", "log/1", "logx"] {
            s.put(k, k.as_bytes()).unwrap();
        }
        let keys: Vec<_> = s.list("log/").unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(keys, ["log/1", "log/2"]);
        assert_eq!(s.get_range("packs/a", 1..4).unwrap(), b"ack");
        let e = s.get_range("packs/a", 2..9).unwrap_err().to_string();
        assert!(e.contains("bytes 2..9 of packs/a") && e.contains("holds 7 bytes"), "{e}");
        assert!(s.get_range("none", 0..1).is_err());
        assert_eq!(s.head("packs/a").unwrap(), Some(7));
        assert_eq!(s.get_bounded("packs/a", 7).unwrap().as_deref(), Some(&b"packs/a"[..]));
        let e = s.get_bounded("packs/a", 6).unwrap_err().to_string();
        assert!(e.contains("packs/a is 7 bytes, over the 6-byte limit"), "{e}");
        s.delete("packs/a").unwrap();
        s.delete("packs/a").unwrap();
        assert_eq!(s.get("packs/a").unwrap(), None);
    }
}
