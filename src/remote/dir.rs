//! A remote in a local directory (`file:///PATH`): each object one file under the directory,
//! written to a temporary name and renamed into place, create-only writes by `link(2)`, which
//! fails when the name exists (so two processes racing for one log position get one winner).
//! For a shared file system, a removable disk, or tests of the command line. It must never
//! follow a key outside the directory (keys are checked: lower-case letters, digits, `/`, `-`),
//! follow a symbolic link inside it (every directory on a key's path is checked with
//! `symlink_metadata`, the object itself is opened with `O_NOFOLLOW`), nor read anything but a
//! regular file (opened with `O_NONBLOCK`, so a FIFO does not block, then checked with `fstat`).
//! The root is canonicalised when the store is opened.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::remote::objects::{Created, ObjectInfo, Objects, too_large};
use crate::{Error, Result};

/// An object store in a directory.
#[derive(Debug, Clone)]
pub struct DirObjects {
    root: PathBuf,
}

impl DirObjects {
    /// The store in `root`, created if missing; the root is canonicalised (symbolic links in it
    /// resolved once, here).
    ///
    /// Errors: [`Error::Remote`] when it cannot be created or is not a directory.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        let fail = |e: std::io::Error| Error::remote(format!("opening {}", root.display()), e.to_string());
        fs::create_dir_all(root).map_err(fail)?;
        let root = fs::canonicalize(root).map_err(fail)?;
        Ok(DirObjects { root })
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        let ok = !key.is_empty()
            && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'/' || b == b'-')
            && !key.starts_with('/')
            && !key.contains("//");
        if !ok {
            return Err(Error::remote(format!("object key {key:?}"), "not a key this store writes"));
        }
        let p = self.root.join(key);
        let mut dir = self.root.clone();
        for seg in key.split('/').take(key.split('/').count() - 1) {
            dir.push(seg);
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.file_type().is_dir() => {}
                Ok(_) => {
                    return Err(Error::remote(
                        format!("reaching {}", p.display()),
                        format!("{} is not a directory (a symbolic link or another file): refused", dir.display()),
                    ));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => return Err(err("reaching", &dir, e)),
            }
        }
        Ok(p)
    }

    fn temp(&self, path: &Path, bytes: &[u8]) -> Result<PathBuf> {
        let dir = path.parent().expect("a key has a parent");
        fs::create_dir_all(dir).map_err(|e| err("creating", dir, e))?;
        let mut r = [0u8; 8];
        crate::crypto::fill_random(&mut r)?;
        let tmp = dir.join(format!(".tmp-{}", crate::manifest::hex(&r)));
        let mut f =
            fs::OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(|e| err("writing", &tmp, e))?;
        f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| err("writing", &tmp, e))?;
        Ok(tmp)
    }
}

fn err(what: &str, p: &Path, e: std::io::Error) -> Error {
    Error::remote(format!("{what} {}", p.display()), e.to_string())
}

/// Opens `p` for reading if it is a regular file (not following a symbolic link, not blocking on
/// a FIFO); `None` when nothing has that name. Returns the file and its size.
fn open_regular(p: &Path) -> Result<Option<(fs::File, u64)>> {
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let f = match fs::OpenOptions::new().read(true).custom_flags(flags.bits() as i32).open(p) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(not_regular(p));
        }
        Err(e) => return Err(err("reading", p, e)),
    };
    let m = f.metadata().map_err(|e| err("reading", p, e))?;
    if !m.file_type().is_file() {
        return Err(not_regular(p));
    }
    Ok(Some((f, m.len())))
}

fn not_regular(p: &Path) -> Error {
    Error::remote(
        format!("reading {}", p.display()),
        "it is not a regular file (a symbolic link, FIFO, device or directory): refused",
    )
}

impl Objects for DirObjects {
    fn get_bounded(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let p = self.path(key)?;
        let Some((f, len)) = open_regular(&p)? else { return Ok(None) };
        if len > limit {
            return Err(too_large(key, Some(len), limit));
        }
        let mut out = Vec::with_capacity(len as usize);
        f.take(limit.saturating_add(1)).read_to_end(&mut out).map_err(|e| err("reading", &p, e))?;
        if out.len() as u64 > limit {
            return Err(too_large(key, None, limit));
        }
        Ok(Some(out))
    }

    fn head(&self, key: &str) -> Result<Option<u64>> {
        let p = self.path(key)?;
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_file() => Ok(Some(m.len())),
            Ok(_) => Err(not_regular(&p)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(err("reading", &p, e)),
        }
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let p = self.path(key)?;
        let (mut f, len) =
            open_regular(&p)?.ok_or_else(|| Error::remote(format!("reading {}", p.display()), "no such object"))?;
        if range.start > range.end || range.end > len {
            return Err(Error::remote(
                format!("reading bytes {}..{} of {key}", range.start, range.end),
                format!("the object holds {len} bytes"),
            ));
        }
        let mut out = vec![0u8; (range.end - range.start) as usize];
        f.seek(SeekFrom::Start(range.start)).and_then(|_| f.read_exact(&mut out)).map_err(|e| err("reading", &p, e))?;
        Ok(out)
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let p = self.path(key)?;
        let tmp = self.temp(&p, bytes)?;
        fs::rename(&tmp, &p).map_err(|e| err("writing", &p, e))
    }

    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<Created> {
        let p = self.path(key)?;
        let tmp = self.temp(&p, bytes)?;
        let r = fs::hard_link(&tmp, &p);
        let _ = fs::remove_file(&tmp);
        match r {
            Ok(()) => Ok(Created::Created),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Created::AlreadyExists),
            Err(e) => Err(err("writing", &p, e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        walk(&self.root, "", &mut out)?;
        out.retain(|o| o.key.starts_with(prefix));
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let p = self.path(key)?;
        match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(err("deleting", &p, e)),
            _ => Ok(()),
        }
    }
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<ObjectInfo>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(err("listing", dir, e)),
    };
    for e in entries {
        let e = e.map_err(|e| err("listing", dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let t = e.file_type().map_err(|x| err("listing", &e.path(), x))?;
        if t.is_dir() {
            walk(&e.path(), &format!("{prefix}{name}/"), out)?;
        } else if t.is_file() {
            let size = e.metadata().map_err(|x| err("listing", &e.path(), x))?.len();
            out.push(ObjectInfo { key: format!("{prefix}{name}"), size });
        }
    }
    Ok(())
}

/// Opens the remote a URL names: `file:///PATH` (a directory, created if missing). Returns the
/// store and the URL in canonical form (`file://` and the canonical path: symbolic links and
/// `.`/`..` resolved), which is what a vault remembers the remote by. Other schemes are refused.
///
/// Errors: [`Error::InvalidInput`] for another scheme or a relative path; [`Error::Remote`].
pub fn open_url(url: &str) -> Result<(Box<dyn Objects>, String)> {
    match url.strip_prefix("file://") {
        Some(path) if path.starts_with('/') => {
            let d = DirObjects::open(path)?;
            let canonical = format!("file://{}", d.root.display());
            Ok((Box::new(d), canonical))
        }
        _ => Err(Error::InvalidInput(format!(
            "remote URL '{}': this build reaches file:///ABSOLUTE/PATH remotes",
            crate::names::escape(url)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_only_writes_have_one_winner_and_keys_stay_inside() {
        let d = tempfile::tempdir().unwrap();
        let s = DirObjects::open(d.path()).unwrap();
        assert_eq!(s.put_if_absent("log/000000000001", b"a").unwrap(), Created::Created);
        assert_eq!(s.put_if_absent("log/000000000001", b"b").unwrap(), Created::AlreadyExists);
        assert_eq!(s.get("log/000000000001").unwrap().as_deref(), Some(&b"a"[..]));
        s.put("packs/ab", b"0123456789").unwrap();
        assert_eq!(s.get_range("packs/ab", 2..5).unwrap(), b"234");
        assert!(s.get_range("packs/ab", 2..50).is_err());
        let keys: Vec<_> = s.list("").unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(keys, ["log/000000000001", "packs/ab"]);
        assert!(s.get("../x").is_err() && s.put("/etc/x", b"").is_err());
        s.delete("packs/ab").unwrap();
        s.delete("packs/ab").unwrap();
        assert_eq!(s.get("packs/ab").unwrap(), None);
    }
}
