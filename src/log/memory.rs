//! The newest checkpoint this user has seen of each vault's log, kept in the user's state
//! directory (`$MVAULT_STATE_DIR`, else `$XDG_STATE_HOME/modelvault`, else
//! `~/.local/state/modelvault`), one JSON file per vault id: `checkpoints/<vault id>.json`
//! holding, per log id, the size, root and signed note last seen. Opening a vault whose log is
//! shorter than, or not an extension of, what is remembered is a rollback (see
//! `Vault::check_rollback`).
//!
//! The file is the user's own: it is written with mode 0600 by rename of a temporary file, never
//! made to forget a larger size than it holds, and a file that does not parse is an error naming
//! it, never silently replaced. This module must never hold a key or write anything but
//! checkpoints (public values: sizes, roots, signed notes) there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::crypto::sign::hex;
use crate::{Error, Result};

/// Largest memory file read, in bytes.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// The directory checkpoints are remembered in: `$MVAULT_STATE_DIR`, else
/// `$XDG_STATE_HOME/modelvault`, else `$HOME/.local/state/modelvault`; `None` when none is set.
pub fn default_dir() -> Option<PathBuf> {
    let set = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    set("MVAULT_STATE_DIR")
        .or_else(|| set("XDG_STATE_HOME").map(|d| d.join("modelvault")))
        .or_else(|| set("HOME").map(|h| h.join(".local/state/modelvault")))
}

/// One remembered log head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// Entries.
    pub size: u64,
    /// Root hash, hex.
    pub root: String,
    /// The signed note, as `mvault log checkpoint` prints it.
    pub checkpoint: String,
}

impl Seen {
    /// The root as bytes; `None` when the file holds something else.
    pub fn root_bytes(&self) -> Option<[u8; 32]> {
        crate::crypto::sign::unhex::<32>(&self.root)
    }
}

/// What is remembered of one vault: its logs by log id (hex), and which log each path held.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Remembered {
    /// Log id (hex) → newest head seen.
    pub logs: BTreeMap<String, Seen>,
    /// Vault file path (canonical) → the log id (hex) last seen there: another copy of the
    /// vault (a clone, whose log is its own) put in a file's place is then seen.
    #[serde(default)]
    pub paths: BTreeMap<String, String>,
}

/// The memory file of vault `vault_id` under `dir`.
pub fn file(dir: &Path, vault_id: &[u8; 16]) -> PathBuf {
    dir.join("checkpoints").join(format!("{}.json", hex(vault_id)))
}

/// What `dir` remembers of vault `vault_id` (nothing when there is no file).
///
/// Errors: [`Error::InvalidInput`] naming the file when it is over 1 MiB or does not parse;
/// [`Error::Io`].
pub fn load(dir: &Path, vault_id: &[u8; 16]) -> Result<Remembered> {
    let path = file(dir, vault_id);
    let f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Remembered::default()),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    let mut text = String::new();
    use std::io::Read;
    f.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(bad_file(&path, "it is over 1 MiB"));
    }
    let r: Remembered = serde_json::from_str(&text).map_err(|e| bad_file(&path, &e.to_string()))?;
    if r.logs.values().any(|s| s.root_bytes().is_none()) {
        return Err(bad_file(&path, "a root is not 64 hex digits"));
    }
    Ok(r)
}

fn bad_file(path: &Path, why: &str) -> Error {
    Error::InvalidInput(format!(
        "the remembered checkpoints in {} do not parse ({why}): it is not a file this program wrote; move it away to start remembering afresh",
        path.display()
    ))
}

/// Remembers `seen` as the newest head of log `log_id` of vault `vault_id`, unless a larger
/// size is already remembered for it (two processes finishing out of order never make the
/// memory forget) and `replace` is false (a rollback the user accepted); and that the file at
/// `at` (a canonical path) holds that log. Written to a temporary
/// file beside it, synced, and renamed over it.
///
/// Errors: as [`load`]; [`Error::Io`] writing.
pub fn remember(dir: &Path, vault_id: &[u8; 16], log_id: &[u8; 16], at: &str, seen: Seen, replace: bool) -> Result<()> {
    let mut r = load(dir, vault_id)?;
    let key = hex(log_id);
    let same_path = r.paths.get(at) == Some(&key);
    if same_path && r.logs.get(&key).is_some_and(|old| (old.size > seen.size && !replace) || *old == seen) {
        return Ok(());
    }
    r.paths.insert(at.to_string(), key.clone());
    if !r.logs.get(&key).is_some_and(|old| old.size > seen.size && !replace) {
        r.logs.insert(key, seen);
    }
    let path = file(dir, vault_id);
    let parent = path.parent().expect("a file under checkpoints/");
    create_private_dir(parent)?;
    let tmp = parent.join(format!(".{}.tmp-{}", hex(vault_id), std::process::id()));
    let io = |what: &str, p: &Path| {
        let what = format!("{what} {}", p.display());
        move |e| Error::io(what, e)
    };
    {
        use std::io::Write;
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let mut f = o.open(&tmp).map_err(io("writing", &tmp))?;
        let text = serde_json::to_string_pretty(&r).expect("plain data serializes");
        f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).map_err(io("writing", &tmp))?;
    }
    std::fs::rename(&tmp, &path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(format!("replacing {}", path.display()), e)
    })
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))
}
