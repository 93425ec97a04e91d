//! Output files of `get`, `get --tensor` and `get --to-hf-cache`: how they are created, given
//! their mode and renamed into place, without following a symbolic link and without ever
//! writing over the vault file; and (Unix) the symbolic links of a Hugging Face snapshot,
//! made by their text and renamed into place the same way.
//!
//! Owns [`output_mode`], [`abandon_temp_files`], [`Vault::refuse_vault_output`] and the
//! crate-internal `OutDir` and `TempOut`. The rules (SECURITY.md, "Output files"):
//!
//! - The directory the caller names (DEST, or the directory of `-o FILE`) is opened as given.
//!   Every directory below it is opened relative to its parent's descriptor with `O_NOFOLLOW`
//!   (and created with `mkdirat`), so a symbolic link there, even one swapped in while the
//!   command runs, is refused, never followed.
//! - A file is written under a temporary name `.mvault-tmp-<16 hex digits>` created relative to
//!   its directory's descriptor with `O_CREAT | O_EXCL | O_NOFOLLOW` and mode 0600, so nobody
//!   else can read its plaintext while it is written and before it is verified. Once verified,
//!   its final mode ([`output_mode`]) is set on the open descriptor (`fchmod`), it is synced,
//!   and it is renamed into place relative to the directory's descriptor (a rename never
//!   follows a link; without `--force` the rename refuses to replace anything, where the
//!   system allows). Just before the rename the temporary name must still be the file written,
//!   and just after it the final name must be that file; otherwise the command fails.
//! - A target that is the vault's own file (same device and inode) is refused, `--force` or
//!   not, before anything is written and again before the rename.
//! - Every temporary file being written is listed in a process-wide registry, so the program
//!   can remove them all with [`abandon_temp_files`] when a signal arrives.
//!
//! This module must never follow a symbolic link below the directory the caller named, never
//! change a mode or rename through a path that could have been swapped, never leave plaintext
//! readable by others before it is verified, and never install a signal handler (that is the
//! program's business, not the library's).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::manifest::hex;
use crate::vault::Vault;
use crate::{Error, Result};

/// The umask assumed where the real one cannot be read: owner-only output (mode 0600).
pub const FALLBACK_UMASK: u32 = 0o077;

/// The mode, in Unix permission bits, that a new output file of `get` or `get --tensor` gets
/// once verified: `0o666 & !umask`, as `cp` and `age` give a new file. The umask is read,
/// without changing it, from the `Umask:` line of `/proc/self/status` (Linux); where that
/// cannot be read it is taken to be [`FALLBACK_UMASK`], so the file is readable by its owner
/// only. A file replaced with `--force` gets this mode too, not the old file's.
pub fn output_mode() -> u32 {
    let umask = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| parse_umask(&s));
    0o666 & !umask.unwrap_or(FALLBACK_UMASK)
}

/// The umask in the text of `/proc/self/status`: the octal number after `Umask:`.
fn parse_umask(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        .filter(|&m| m <= 0o777)
}

/// Removes every temporary output file (`.mvault-tmp-*`) that `get` or `get --tensor` is
/// writing in this process, and makes every later attempt to create one fail. Returns how many
/// were removed.
///
/// For a program's signal handling thread (such as one reading `signal_hook`'s
/// `Signals::forever()`), just before it exits on SIGINT or SIGTERM. It takes a lock, so it is
/// not async-signal-safe: never call it from inside a signal handler itself. The library never
/// installs a signal handler.
pub fn abandon_temp_files() -> usize {
    let mut reg = registry();
    reg.abandoned = true;
    let live = std::mem::take(&mut reg.live);
    live.iter().filter(|t| sys::unlink(&t.dir, &t.name).is_ok()).count()
}

/// One temporary file being written.
struct Live {
    id: u64,
    dir: sys::DirHandle,
    name: String,
}

struct Registry {
    abandoned: bool,
    next: u64,
    live: Vec<Live>,
}

static TEMPS: Mutex<Registry> = Mutex::new(Registry { abandoned: false, next: 0, live: Vec::new() });

fn registry() -> MutexGuard<'static, Registry> {
    TEMPS.lock().unwrap_or_else(|p| p.into_inner())
}

/// A file's identity: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(meta: &std::fs::Metadata) -> Option<FileId> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Some(FileId { dev: meta.dev(), ino: meta.ino() })
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            None
        }
    }
}

/// What a directory entry is, looked at without following a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Regular,
    Directory,
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    id: Option<FileId>,
    kind: Kind,
}

/// The vault's own file, which no output may replace.
pub(crate) struct VaultFile {
    id: Option<FileId>,
    path: PathBuf,
}

impl VaultFile {
    /// The identity of the vault file at `path` (the open vault's).
    ///
    /// Errors: [`Error::Io`] when the file cannot be examined.
    pub fn of(path: &Path) -> Result<VaultFile> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(format!("examining {}", path.display()), e))?;
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        Ok(VaultFile { id: FileId::of(&meta), path })
    }

    fn is(&self, id: Option<FileId>, shown: &Path) -> bool {
        match (self.id, id) {
            (Some(a), Some(b)) => a == b,
            // Without inode numbers, compare where the paths lead.
            _ => std::fs::canonicalize(shown).is_ok_and(|p| p == self.path),
        }
    }

    fn refuse(&self, shown: &Path) -> Error {
        Error::InvalidInput(format!(
            "{} is this vault's own file ({}): refusing to write over it",
            shown.display(),
            self.path.display()
        ))
        .with_remedy(crate::Remedy::OtherOutput)
    }
}

impl<S> Vault<S> {
    /// Refuses an output that is already open (standard output, say, described by `meta`) when
    /// it is this vault's own file; `what` names it in the error.
    ///
    /// Errors: [`Error::InvalidInput`] naming the output and the vault; [`Error::Io`] when the
    /// vault file cannot be examined.
    pub fn refuse_vault_output(&self, meta: &std::fs::Metadata, what: &str) -> Result<()> {
        let v = VaultFile::of(&self.path)?;
        if v.id.is_some() && v.id == FileId::of(meta) {
            return Err(v.refuse(Path::new(what)));
        }
        Ok(())
    }
}

/// An open output directory.
#[derive(Clone)]
pub(crate) struct OutDir {
    handle: sys::DirHandle,
    shown: PathBuf,
}

impl OutDir {
    /// Opens the directory `path` as the caller named it (a symbolic link the caller named is
    /// followed, as `cp` does), creating it and its parents first when `create`. `None` when it
    /// does not exist and `create` is false.
    ///
    /// Errors: [`Error::InvalidInput`] (not a directory), [`Error::Io`].
    pub fn open(path: &Path, create: bool) -> Result<Option<OutDir>> {
        if create {
            std::fs::create_dir_all(path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        }
        match sys::open_root(path) {
            Ok(handle) => Ok(Some(OutDir { handle, shown: path.to_path_buf() })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => Ok(None),
            Err(_) if path.exists() && !path.is_dir() => {
                Err(Error::InvalidInput(format!("{} exists and is not a directory", path.display())))
            }
            Err(e) => Err(Error::io(format!("opening {}", path.display()), e)),
        }
    }

    /// Opens the directory `name` inside this one without following a symbolic link, creating
    /// it (mode 0777 less the umask, as `mkdir` does) when `create`. `None` when it does not
    /// exist and `create` is false.
    ///
    /// Errors: [`Error::InvalidInput`] (a symbolic link or a non-directory is in the way),
    /// [`Error::Io`].
    pub fn sub(&self, name: &str, create: bool) -> Result<Option<OutDir>> {
        let shown = self.shown.join(name);
        let refuse = || {
            Error::InvalidInput(format!(
                "{} exists and is not a directory (or is a symbolic link): refusing to write through it",
                shown.display()
            ))
        };
        match self.entry(name)? {
            Some(e) if e.kind != Kind::Directory => return Err(refuse()),
            None if !create => return Ok(None),
            None => match sys::mkdir(&self.handle, name) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io(format!("creating {}", shown.display()), e)),
            },
            Some(_) => {}
        }
        match sys::open_sub(&self.handle, name) {
            Ok(handle) => Ok(Some(OutDir { handle, shown })),
            // Swapped for a link or a file since it was looked at.
            Err(e) if sys::is_not_dir(&e) => Err(refuse()),
            Err(e) => Err(Error::io(format!("opening {}", shown.display()), e)),
        }
    }

    fn entry(&self, name: &str) -> Result<Option<Entry>> {
        sys::entry(&self.handle, name)
            .map_err(|e| Error::io(format!("examining {}", self.shown.join(name).display()), e))
    }

    /// Checks that `name` in this directory may become an output file: never the vault's own
    /// file; when something is already there, only with `force` and only a regular file.
    ///
    /// Errors: [`Error::InvalidInput`] (the vault's file; a directory, symbolic link or special
    /// file in the way), [`Error::OutputExists`] (without `force`), [`Error::Io`].
    pub fn check_target(&self, name: &str, force: bool, vault: &VaultFile) -> Result<()> {
        let shown = self.shown.join(name);
        let Some(e) = self.entry(name)? else {
            return Ok(());
        };
        if e.kind == Kind::Regular && vault.is(e.id, &shown) {
            return Err(vault.refuse(&shown));
        }
        if !force {
            return Err(Error::OutputExists(shown));
        }
        if e.kind != Kind::Regular {
            return Err(Error::InvalidInput(format!(
                "{} exists and is not a regular file (a directory, a symbolic link or a special file): refusing to replace it",
                shown.display()
            )));
        }
        Ok(())
    }

    /// Creates a new temporary file (`.mvault-tmp-<16 hex digits>`, mode 0600, `O_EXCL`,
    /// `O_NOFOLLOW`) in this directory and lists it for [`abandon_temp_files`].
    ///
    /// Errors: [`Error::Io`] (also once [`abandon_temp_files`] has run).
    pub fn create_temp(&self) -> Result<TempOut> {
        let mut rnd = [0u8; 8];
        crate::crypto::fill_random(&mut rnd)?;
        let name = format!(".mvault-tmp-{}", hex(&rnd));
        let shown = self.shown.join(&name);
        // Held while the file is created, so a concurrent abandon either sees it or runs first.
        let mut reg = registry();
        if reg.abandoned {
            return Err(Error::io(
                format!("creating {}", shown.display()),
                std::io::Error::new(std::io::ErrorKind::Interrupted, "interrupted by a signal"),
            ));
        }
        let file =
            sys::create_excl(&self.handle, &name).map_err(|e| Error::io(format!("creating {}", shown.display()), e))?;
        let id = reg.next;
        reg.next += 1;
        reg.live.push(Live { id, dir: self.handle.clone(), name: name.clone() });
        Ok(TempOut { dir: self.clone(), name, file, reg_id: id, renamed: false })
    }
}

#[cfg(unix)]
impl OutDir {
    /// Makes `name` in this directory a symbolic link with the text `target`, which is never
    /// followed here. A link already there with that text is left as it is (returns false).
    /// Anything else there is replaced only with `force`, and only when it is a symbolic link
    /// or a regular file that is not the vault's own: the new link is made under a temporary
    /// name (`.mvault-tmp-<16 hex digits>`) and renamed over it.
    ///
    /// Errors: [`Error::OutputExists`] (without `force`), [`Error::InvalidInput`] (a directory
    /// or special file in the way, or the vault's file), [`Error::Io`].
    pub fn link(&self, name: &str, target: &str, force: bool, vault: &VaultFile) -> Result<bool> {
        let shown = self.shown.join(name);
        if let Some(e) = self.entry(name)? {
            let old = sys::read_link(&self.handle, name)
                .map_err(|e| Error::io(format!("reading the link {}", shown.display()), e))?;
            if old.as_deref() == Some(target) {
                return Ok(false);
            }
            if e.kind == Kind::Regular && vault.is(e.id, &shown) {
                return Err(vault.refuse(&shown));
            }
            if !force {
                return Err(Error::OutputExists(shown));
            }
            if e.kind != Kind::Regular && old.is_none() {
                return Err(Error::InvalidInput(format!(
                    "{} exists and is not a regular file or a symbolic link (a directory or a special file): refusing to replace it",
                    shown.display()
                )));
            }
        }
        let mut rnd = [0u8; 8];
        crate::crypto::fill_random(&mut rnd)?;
        let tmp = format!(".mvault-tmp-{}", hex(&rnd));
        sys::symlink(&self.handle, target, &tmp)
            .map_err(|e| Error::io(format!("creating the link {}", self.shown.join(&tmp).display()), e))?;
        sys::rename(&self.handle, &tmp, name, !force).map_err(|e| {
            let _ = sys::unlink(&self.handle, &tmp);
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::OutputExists(shown.clone())
            } else {
                Error::io(format!("renaming into {}", shown.display()), e)
            }
        })?;
        Ok(true)
    }
}

/// A temporary output file being written; removed when dropped unless committed.
pub(crate) struct TempOut {
    dir: OutDir,
    name: String,
    file: File,
    reg_id: u64,
    renamed: bool,
}

impl TempOut {
    /// The temporary file's path, for messages.
    pub fn shown(&self) -> PathBuf {
        self.dir.shown.join(&self.name)
    }

    /// The open file, to write into.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Gives the verified file its final `mode` (on the descriptor), syncs it, and renames it
    /// to `target` in its directory (see the module docs for the checks). Returns the final
    /// path.
    ///
    /// Errors: as [`OutDir::check_target`]; [`Error::Io`] when the temporary file was replaced
    /// or removed by another process, when the final name is not the file written just after
    /// the rename, or when a system call fails.
    pub fn commit(mut self, target: &str, mode: u32, force: bool, vault: &VaultFile) -> Result<PathBuf> {
        let tmp = self.shown();
        let shown = self.dir.shown.join(target);
        let io = |what: &str, p: &Path, e| Error::io(format!("{what} {}", p.display()), e);
        set_mode(&self.file, mode).map_err(|e| io("setting the mode of", &tmp, e))?;
        self.file.sync_all().map_err(|e| io("syncing", &tmp, e))?;
        let mine = FileId::of(&self.file.metadata().map_err(|e| io("examining", &tmp, e))?);
        self.dir.check_target(target, force, vault)?;
        let swapped = |what: &Path, how: &str| {
            Error::io(
                format!("writing {}", shown.display()),
                std::io::Error::other(format!(
                    "{} {how} by another process while it was written: refusing it; check who else writes to {}",
                    what.display(),
                    self.dir.shown.display()
                )),
            )
        };
        {
            let mut reg = registry();
            match self.dir.entry(&self.name)? {
                Some(e) if e.kind == Kind::Regular && (mine.is_none() || e.id == mine) => {}
                _ => return Err(swapped(&tmp, "was replaced or removed")),
            }
            sys::rename(&self.dir.handle, &self.name, target, !force).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::OutputExists(shown.clone())
                } else {
                    io("renaming into", &shown, e)
                }
            })?;
            self.renamed = true;
            reg.live.retain(|t| t.id != self.reg_id);
        }
        match self.dir.entry(target)? {
            Some(e) if e.kind == Kind::Regular && (mine.is_none() || e.id == mine) => {}
            _ => return Err(swapped(&shown, "was replaced right after it was renamed into place")),
        }
        let _ = sys::sync_dir(&self.dir.handle);
        Ok(shown)
    }
}

impl Drop for TempOut {
    fn drop(&mut self) {
        let mut reg = registry();
        let before = reg.live.len();
        reg.live.retain(|t| t.id != self.reg_id);
        // Not listed any more: renamed, or already removed by abandon_temp_files.
        if reg.live.len() != before && !self.renamed {
            let _ = sys::unlink(&self.dir.handle, &self.name);
        }
    }
}

fn set_mode(f: &File, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let (_, _) = (f, mode);
        Ok(())
    }
}

/// Descriptor-relative file system calls (Unix, through `rustix`).
#[cfg(unix)]
#[path = "sys_unix.rs"]
mod sys;

/// Path-based fallbacks where descriptor-relative calls are not available.
#[cfg(not(unix))]
#[path = "sys_other.rs"]
mod sys;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn umask_is_read_from_the_status_text() {
        let status = "Name:\tmvault\nUmask:\t0027\nState:\tR (running)\n";
        assert_eq!(parse_umask(status), Some(0o027));
        assert_eq!(parse_umask("Umask:\t0077\n"), Some(0o077));
        assert_eq!(parse_umask("Name:\tx\n"), None);
        assert_eq!(parse_umask("Umask:\tzz\n"), None);
        assert_eq!(parse_umask("Umask:\t7777\n"), None);
    }
}
