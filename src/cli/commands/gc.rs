//! `mvault gc`: deletes chunks no version references and compacts the vault file; exit code 6
//! when referenced chunks are missing.

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
