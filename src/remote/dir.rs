//! A remote in a local directory (`file:///PATH`): each object one file under the directory,
//! written to a temporary name and renamed into place, create-only writes by `link(2)`, which
//! fails when the name exists (so two processes racing for one log position get one winner).
//! For a shared file system, a removable disk, or tests of the command line. It must never
//! follow a key outside the directory (keys are checked: lower-case letters, digits, `/`, `-`).

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::remote::objects::{Created, ObjectInfo, Objects};
use crate::{Error, Result};

/// An object store in a directory.
#[derive(Debug, Clone)]
pub struct DirObjects {
    root: PathBuf,
}

impl DirObjects {
    /// The store in `root`, created if missing.
    ///
    /// Errors: [`Error::Remote`] when it cannot be created.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        fs::create_dir_all(&root).map_err(|e| Error::remote(format!("opening {}", root.display()), e.to_string()))?;
        Ok(DirObjects { root })
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        let ok = !key.is_empty()
            && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'/' || b == b'-')
            && !key.starts_with('/')
            && !key.contains("//");
        if !ok {
            return Err(Error::remote(format!("object key {key:?}"), "not a key this store writes"));
        }
        Ok(self.root.join(key))
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

impl Objects for DirObjects {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let p = self.path(key)?;
        match fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(err("reading", &p, e)),
        }
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let p = self.path(key)?;
        let mut f = fs::File::open(&p).map_err(|e| err("reading", &p, e))?;
        let len = f.metadata().map_err(|e| err("reading", &p, e))?.len();
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

/// Opens the remote a URL names: `file:///PATH` (a directory). Other schemes are refused.
///
/// Errors: [`Error::InvalidInput`] for another scheme; [`Error::Remote`].
pub fn open_url(url: &str) -> Result<Box<dyn Objects>> {
    match url.strip_prefix("file://") {
        Some(path) if path.starts_with('/') => Ok(Box::new(DirObjects::open(path)?)),
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
