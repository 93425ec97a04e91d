//! `mvault stats`: storage figures of the vault and of each model; exit code 6 when damaged
//! records were left out.

use modelvault::Result;
use modelvault::names::escape;

use crate::cli::args::Global;
use crate::cli::output::{self, Align, group, print_table, size};
use crate::cli::session::{damaged, unlock_read};

/// Runs `stats`; returns the exit code.
pub fn run(g: &Global) -> Result<i32> {
    let v = unlock_read(g)?;
    let st = v.stats()?;
    if g.json {
        output::json(&st)
    } else {
        print(&st)
    }
    Ok(if damaged(&st.problems) { 6 } else { 0 })
}

/// Prints `stats`: vault totals, then one line per model.
fn print(s: &modelvault::VaultStats) {
    println!("models:        {}", group(s.models));
    println!("versions:      {} ({} files)", group(s.versions), group(s.files));
    println!("logical bytes: {} ({} bytes)", size(s.logical_bytes), group(s.logical_bytes));
    println!("unique bytes:  {} ({} bytes)", size(s.unique_bytes), group(s.unique_bytes));
    println!("stored bytes:  {} ({} bytes, sealed)", size(s.stored_bytes), group(s.stored_bytes));
    println!("dedup ratio:   {:.2}x", s.dedup_ratio);
    println!(
        "chunks:        {} distinct, {} references; {} in the file, {} unreferenced (gc frees them)",
        group(s.chunks),
        group(s.chunk_refs),
        group(s.chunks_in_file),
        group(s.unreferenced_chunks)
    );
    println!("key epoch:     {}", s.key_epoch);
    println!("vault file:    {}", size(s.file_bytes));
    if s.per_model.is_empty() {
        return;
    }
    println!();
    use Align::{Left as L, Right as R};
    let rows: Vec<Vec<String>> = s
        .per_model
        .iter()
        .map(|m| {
            vec![
                escape(&m.name),
                m.versions.to_string(),
                size(m.logical_bytes),
                size(m.unique_bytes),
                size(m.stored_bytes),
                format!("{:.2}x", m.dedup_ratio),
                size(m.exclusive_bytes),
            ]
        })
        .collect();
    print_table(
        "",
        &["MODEL", "VERSIONS", "LOGICAL", "UNIQUE", "STORED", "DEDUP", "EXCLUSIVE"],
        &[L, R, R, R, R, R, R],
        &rows,
    );
}
