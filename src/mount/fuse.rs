//! The FUSE adapter (feature `mount`): serves a [`VaultFs`] to the kernel through the `fuser`
//! crate (pure Rust; it mounts with mount(2) when permitted, else through `fusermount3` or
//! `fusermount`), and unmounts it ([`Unmounter`], [`unmount`]).
//!
//! The mount is read-only (`ro`, and every write request is refused with `EROFS`), `nosuid`,
//! `nodev`, with the kernel checking permissions (`default_permissions`): files are mode 0400 and
//! directories 0500, owned by the mounting user, and without `allow_other` the kernel lets no
//! other user (root included) reach it. A read whose chunk does not open fails with `EIO` and is
//! reported to the log callback; the kernel never receives a byte of it. This module must never
//! write to the vault, build a host path from a vault name, or print (it reports through the
//! callback it is given).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, KernelConfig,
    LockOwner, MountOption, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen,
    Request, Session, SessionUnmounter,
};

use super::tree::Kind;
use super::{Attr, VaultFs};
use crate::{Error, Result};

/// The name the mount carries in `/proc/mounts` (its source; the type is `fuse` or `fuse.mvault`).
pub const FS_NAME: &str = "mvault";

/// How long the kernel may keep names and attributes: the tree never changes while mounted.
const TTL: Duration = Duration::from_secs(3600);

/// Where a failed read is reported (one line, naming model, version, file and chunk).
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// The [`fuser::Filesystem`] over a [`VaultFs`].
pub struct FuseFs {
    fs: Arc<VaultFs>,
    uid: u32,
    gid: u32,
    log: Log,
}

impl FuseFs {
    fn attr(&self, a: &Attr) -> FileAttr {
        let t = UNIX_EPOCH + Duration::from_secs(a.mtime);
        let (kind, perm, nlink) = match a.kind {
            Kind::Dir => (FileType::Directory, 0o500, 2),
            Kind::File => (FileType::RegularFile, 0o400, 1),
            Kind::Link => (FileType::Symlink, 0o777, 1),
        };
        FileAttr {
            ino: INodeNo(a.ino),
            size: a.size,
            blocks: a.size.div_ceil(512),
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind,
            perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 128 * 1024,
            flags: 0,
        }
    }
}

fn file_type(k: Kind) -> FileType {
    match k {
        Kind::Dir => FileType::Directory,
        Kind::File => FileType::RegularFile,
        Kind::Link => FileType::Symlink,
    }
}

impl Filesystem for FuseFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Read ahead up to one chunk (about 1 MiB), the unit of decryption; the kernel may cap it.
        let _ = config.set_max_readahead(1 << 20);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match name.to_str().and_then(|n| self.fs.lookup(parent.0, n)) {
            Some(a) => reply.entry(&TTL, &self.attr(&a), Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.fs.attr(ino.0) {
            Some(a) => reply.attr(&TTL, &self.attr(&a)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.fs.readlink(ino.0) {
            Some(t) => reply.data(t.as_bytes()),
            None => reply.error(Errno::EINVAL),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        match self.fs.attr(ino.0).map(|a| a.kind) {
            // The contents never change: the kernel may keep its page cache across opens.
            Some(Kind::File) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            Some(Kind::Dir) => reply.error(Errno::EISDIR),
            Some(Kind::Link) => reply.error(Errno::ELOOP),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.fs.read(ino.0, offset, size) {
            Ok(b) => reply.data(&b),
            Err(e) => {
                (self.log)(&format!("read of {size} bytes at offset {offset} failed with EIO: {e}"));
                reply.error(Errno::EIO)
            }
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let Some(entries) = self.fs.entries(ino.0) else {
            return reply.error(Errno::ENOTDIR);
        };
        for (i, (name, c, kind)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*c), (i + 1) as u64, file_type(*kind), name) {
                break;
            }
        }
        reply.ok()
    }
}

/// A mounted vault, served by [`Mounted::run`].
pub struct Mounted {
    session: Session<FuseFs>,
    unmounter: Unmounter,
}

/// Unmounts a [`Mounted`] from another thread (a signal handler's thread, say).
#[derive(Clone)]
pub struct Unmounter {
    inner: Arc<Mutex<SessionUnmounter>>,
    mountpoint: PathBuf,
}

impl Unmounter {
    /// Unmounts. When a file in the mount is still open the kernel refuses a plain unmount; it
    /// is then detached (lazily: gone from the namespace now, released when the last file
    /// closes), so [`Mounted::run`] returns once nothing uses it.
    ///
    /// Errors: [`Error::Io`] when neither works.
    pub fn unmount(&self) -> Result<()> {
        let mut u = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        match u.unmount() {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => {
                rustix::mount::unmount(&self.mountpoint, rustix::mount::UnmountFlags::DETACH)
                    .map_err(|e| Error::io(format!("unmounting {}", self.mountpoint.display()), e.into()))
            }
            Err(e) => Err(Error::io(format!("unmounting {}", self.mountpoint.display()), e)),
        }
    }
}

impl Mounted {
    /// A handle that unmounts this mount.
    pub fn unmounter(&self) -> Unmounter {
        self.unmounter.clone()
    }

    /// Serves requests until the filesystem is unmounted (by [`Unmounter::unmount`],
    /// [`unmount`], `fusermount -u` or `umount`).
    ///
    /// Errors: [`Error::Io`] when the FUSE connection fails.
    pub fn run(self) -> Result<()> {
        let at = self.unmounter.mountpoint.clone();
        self.session.run().map_err(|e| Error::io(format!("serving the mount at {}", at.display()), e))
    }
}

/// Mounts `fs` read-only at the directory `mountpoint`, for the calling user only, serving
/// requests on up to 4 threads once [`Mounted::run`] is called. `log` receives one line per
/// failed read.
///
/// Errors: [`Error::InvalidInput`] when `mountpoint` is not a directory; [`Error::Io`] when
/// the mount fails (no `/dev/fuse`, no permission to mount, no `fusermount`).
pub fn mount(fs: VaultFs, mountpoint: &Path, log: Log) -> Result<Mounted> {
    check_mountpoint(mountpoint)?;
    let shown = mountpoint.display();
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(FS_NAME.into()),
        MountOption::Subtype(FS_NAME.into()),
        MountOption::RO,
        MountOption::NoSuid,
        MountOption::NoDev,
        MountOption::DefaultPermissions,
    ];
    config.n_threads = Some(std::thread::available_parallelism().map_or(1, |n| n.get().min(4)));
    let ids = (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw());
    let ffs = FuseFs { fs: Arc::new(fs), uid: ids.0, gid: ids.1, log };
    let mut session =
        Session::new(ffs, mountpoint, &config).map_err(|e| Error::io(format!("mounting at {shown}"), e))?;
    let unmounter = Unmounter {
        inner: Arc::new(Mutex::new(session.unmount_callable())),
        mountpoint: mountpoint.canonicalize().unwrap_or_else(|_| mountpoint.to_path_buf()),
    };
    Ok(Mounted { session, unmounter })
}

/// Checks that `mountpoint` is an existing, empty directory and that FUSE is available
/// ([`check_fuse_device`]); call it before unlocking, so a typo costs no passphrase.
///
/// Errors: [`Error::InvalidInput`] naming the path and what is wrong with it.
pub fn check_mountpoint(mountpoint: &Path) -> Result<()> {
    let shown = mountpoint.display();
    match std::fs::metadata(mountpoint) {
        Ok(m) if m.is_dir() => {
            let entries = std::fs::read_dir(mountpoint)
                .map_err(|e| Error::InvalidInput(format!("mount point {shown} cannot be read ({e})")))?;
            if entries.take(1).count() > 0 {
                return Err(Error::InvalidInput(format!(
                    "mount point {shown} is not empty: the mount would hide its files; mount on an empty directory"
                )));
            }
            check_fuse_device(Path::new(FUSE_DEVICE))
        }
        Ok(_) => {
            Err(Error::InvalidInput(format!("mount point {shown} is not a directory: mount on an empty directory")))
        }
        Err(e) => {
            Err(Error::InvalidInput(format!("mount point {shown} cannot be used ({e}): create an empty directory")))
        }
    }
}

/// The FUSE device the kernel serves mounts through.
pub const FUSE_DEVICE: &str = "/dev/fuse";

/// Checks that `device` (the FUSE device, [`FUSE_DEVICE`]) exists and that a `fusermount3` or
/// `fusermount` program is on `PATH` (the unprivileged mount goes through it).
///
/// Errors: [`Error::InvalidInput`] naming what is missing and what to install.
pub fn check_fuse_device(device: &Path) -> Result<()> {
    if !device.exists() {
        return Err(Error::InvalidInput(format!(
            "{} is missing: this system offers no FUSE (load the kernel's fuse module, or give a container the \
             host's /dev/fuse device)",
            device.display()
        )));
    }
    let on_path =
        |bin: &str| std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()));
    if !on_path("fusermount3") && !on_path("fusermount") {
        return Err(Error::InvalidInput(
            "neither fusermount3 nor fusermount is on PATH: install the fuse3 package (Debian/Ubuntu: apt-get install fuse3)"
                .into(),
        ));
    }
    Ok(())
}

/// Unmounts the vault mount at `mountpoint` (made by [`mount`], in this process or another):
/// with umount(2) when permitted, else with `fusermount3 -u` or `fusermount -u`.
///
/// Errors: [`Error::NotFound`] when no vault is mounted there (another filesystem is never
/// unmounted); [`Error::InvalidInput`] when the path does not resolve, or a file in it is open
/// (busy); [`Error::Io`] otherwise.
pub fn unmount(mountpoint: &Path) -> Result<()> {
    let shown = mountpoint.display().to_string();
    let real = mountpoint
        .canonicalize()
        .map_err(|e| Error::InvalidInput(format!("mount point {shown} cannot be used ({e})")))?;
    if !is_vault_mount(&real)? {
        return Err(Error::NotFound(format!("no vault is mounted at {shown}")));
    }
    match rustix::mount::unmount(&real, rustix::mount::UnmountFlags::empty()) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::BUSY) => Err(Error::InvalidInput(format!(
            "{shown} is busy: a file in it is open or a process works in it; close them and unmount again"
        ))),
        Err(rustix::io::Errno::PERM) => fusermount_u(&real, &shown),
        Err(e) => Err(Error::io(format!("unmounting {shown}"), e.into())),
    }
}

/// `fusermount3 -u PATH`, or `fusermount -u PATH` when there is no `fusermount3`.
fn fusermount_u(real: &Path, shown: &str) -> Result<()> {
    let mut last = None;
    for bin in ["fusermount3", "fusermount"] {
        match std::process::Command::new(bin).arg("-u").arg("--").arg(real).output() {
            Ok(o) if o.status.success() => return Ok(()),
            Ok(o) => {
                let why = String::from_utf8_lossy(&o.stderr).trim().to_string();
                return Err(Error::InvalidInput(format!("{bin} could not unmount {shown}: {why}")));
            }
            Err(e) => last = Some(e),
        }
    }
    let e = last.unwrap_or_else(|| std::io::Error::other("no fusermount"));
    Err(Error::io(format!("unmounting {shown} (neither fusermount3 nor fusermount runs)"), e))
}

/// True when `/proc/self/mountinfo` lists a vault mount (source [`FS_NAME`], type `fuse` or
/// `fuse.mvault`) at the absolute path `real`.
///
/// Errors: [`Error::Io`] when the mount table cannot be read.
pub fn is_vault_mount(real: &Path) -> Result<bool> {
    let table =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| Error::io("reading /proc/self/mountinfo", e))?;
    Ok(table.lines().any(|l| mountinfo_is_vault(l, real)))
}

/// One mountinfo line: `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS...] - TYPE SOURCE SUPER`.
fn mountinfo_is_vault(line: &str, real: &Path) -> bool {
    let Some((left, right)) = line.split_once(" - ") else { return false };
    let Some(point) = left.split(' ').nth(4) else { return false };
    let mut r = right.split(' ');
    let (fstype, source) = (r.next().unwrap_or(""), r.next().unwrap_or(""));
    (fstype == "fuse" || fstype == "fuse.mvault") && source == FS_NAME && unescape(point) == real.as_os_str()
}

/// Undoes the octal escapes of mountinfo (`\040` for a space, `\134` for a backslash, ...).
fn unescape(s: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b.get(i + 1..i + 4).filter(|o| b[i] == b'\\' && o.iter().all(|c| (b'0'..=b'7').contains(c)));
        match oct {
            Some(o) => {
                out.push(o.iter().fold(0u8, |n, c| n.wrapping_mul(8).wrapping_add(c - b'0')));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    std::ffi::OsString::from_vec(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_are_matched_exactly() {
        let p = Path::new("/tmp/a b");
        // The source is FS_NAME; the lines are built so no literal reads like a command line.
        let line = |rest: &str| rest.replace("SRC", FS_NAME);
        assert!(mountinfo_is_vault(
            &line(r"90 30 0:51 / /tmp/a\040b ro,nosuid,nodev,relatime - fuse SRC ro,user_id=0"),
            p
        ));
        assert!(mountinfo_is_vault(&line(r"90 30 0:51 / /tmp/a\040b ro shared:5 - fuse.SRC SRC ro"), p));
        assert!(!mountinfo_is_vault(r"90 30 0:51 / /tmp/a\040b ro - fuse sshfs ro", p));
        assert!(!mountinfo_is_vault(&line(r"90 30 0:51 / /tmp/a\040bc ro - fuse SRC ro"), p));
        assert!(!mountinfo_is_vault(&line(r"90 30 0:51 / /tmp/a\040b ro - ext4 SRC ro"), p));
        assert!(!mountinfo_is_vault("garbage", p));
    }
}
