//! `mvault mount MOUNTPOINT` and `mvault umount MOUNTPOINT`: parse, open the vault read-only,
//! hand it to the library's mount (`modelvault::mount`) and wait; unmount on SIGINT, SIGTERM or
//! SIGHUP. Nothing of the filesystem is decided here.

use std::path::{Path, PathBuf};

use clap::Args;
use modelvault::Result;
use modelvault::mount::fuse;
use modelvault::mount::{DEFAULT_CACHE_MIB, MountOptions, VaultFs};

use crate::cli::args::Global;
use crate::cli::session::{damaged, print_done, unlock_read};
use crate::cli::signals;

/// `mvault mount` arguments.
#[derive(Debug, Args)]
pub struct MountArgs {
    /// An existing, empty directory to mount the vault on.
    pub mountpoint: PathBuf,
    /// Bound of the in-memory cache of decrypted chunks, in MiB (0: no cache).
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_CACHE_MIB)]
    pub cache_mib: usize,
}

/// Runs `mount MOUNTPOINT [--cache-mib N]`: serves until unmounted; returns the exit code (0
/// after a clean unmount).
pub fn run(g: &Global, a: &MountArgs) -> Result<i32> {
    let opts = MountOptions { cache_mib: a.cache_mib };
    opts.check()?;
    fuse::check_mountpoint(&a.mountpoint)?;
    let v = unlock_read(g)?;
    let fs = VaultFs::new(v, &opts)?;
    damaged(fs.problems());
    let models = fs.tree().models();
    let mounted = fuse::mount(fs, &a.mountpoint, std::sync::Arc::new(|m: &str| eprintln!("mvault: {m}")))?;
    let unmounter = mounted.unmounter();
    let shown = a.mountpoint.display().to_string();
    signals::on_termination(move |sig| {
        eprintln!("mvault: signal {sig}: unmounting {shown}");
        if let Err(e) = unmounter.unmount() {
            eprintln!("mvault: {e}");
        }
    })?;
    eprintln!(
        "mvault: mounted {models} model(s) read-only at {}; `mvault umount {}` or Ctrl-C unmounts",
        a.mountpoint.display(),
        a.mountpoint.display()
    );
    mounted.run()?;
    eprintln!("mvault: unmounted {}", a.mountpoint.display());
    Ok(0)
}

/// Runs `umount MOUNTPOINT`.
pub fn umount(g: &Global, mountpoint: &Path) -> Result<i32> {
    fuse::unmount(mountpoint)?;
    let shown = mountpoint.display().to_string();
    print_done(g, serde_json::json!({ "unmounted": shown }), &format!("unmounted {shown}"));
    Ok(0)
}
