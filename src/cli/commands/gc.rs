//! `mvault gc`: deletes chunks no version references and compacts the vault file; exit code 6
//! when referenced chunks are missing. `gc --remote` runs one step of the remote's collection
//! (sweep what old marks named, mark what is unreferenced now).

use modelvault::Result;

use crate::cli::args::Global;
use crate::cli::output;
use crate::cli::progress::Bar;
use crate::cli::session::{damaged, unlock_write};

/// Runs `gc`; returns the exit code.
pub fn run(g: &Global) -> Result<i32> {
    let mut v = unlock_write(g, &Bar::new(g))?;
    let rep = v.gc()?;
    if g.json {
        output::json(&rep);
    } else {
        println!(
            "removed {} chunk(s), {}; kept {}; file {} -> {}",
            rep.chunks_removed,
            output::size(rep.bytes_removed),
            rep.chunks_kept,
            output::size(rep.file_bytes_before),
            output::size(rep.file_bytes_after)
        );
    }
    Ok(if damaged(&rep.missing) { 6 } else { 0 })
}

/// Runs `gc --remote [NAME|URL] [--grace DURATION]`; returns the exit code.
pub fn run_remote(g: &Global, remote: Option<&str>, grace: Option<&str>) -> Result<i32> {
    let grace = grace.map_or(Ok(modelvault::remote::gc::DEFAULT_GRACE_SECS), modelvault::remote::gc::parse_grace)?;
    let v = unlock_write(g, &Bar::new(g))?;
    let (objects, url) = crate::cli::commands::sync::open_remote(&v, remote)?;
    let rep = v.gc_remote(&*objects, &url, grace)?;
    if g.json {
        output::json(&rep);
    } else {
        println!(
            "remote: deleted {} pack(s), {} object(s), {}; marked {}; {} marked within the grace period; kept {} pack(s)",
            rep.packs_deleted,
            rep.objects_deleted,
            output::size(rep.bytes_deleted),
            rep.marked,
            rep.waiting,
            rep.packs_kept
        );
    }
    Ok(0)
}
