//! `mvault families`: groups of versions that share most of their bytes; exit code 6 when
//! damaged records were left out.

use modelvault::Result;
use modelvault::names::escape;

use crate::cli::args::Global;
use crate::cli::output::{self, Align, group, print_table, size, time};
use crate::cli::session::{damaged, unlock_read};

/// Runs `families --min-shared FRACTION`; returns the exit code.
pub fn run(g: &Global, min_shared: f64) -> Result<i32> {
    let v = unlock_read(g)?;
    let f = v.families(min_shared)?;
    if g.json {
        output::json(&f)
    } else {
        print(&f)
    }
    Ok(if damaged(&f.problems) { 6 } else { 0 })
}

/// Prints `families`: each family's base, then its members with the share they have in common
/// with the base.
fn print(f: &modelvault::Families) {
    if f.families.is_empty() {
        println!("no versions share at least {:.0}% of their bytes", f.min_shared * 100.0);
    }
    for (i, fam) in f.families.iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!(
            "family of {}@{}: {} version(s), {} logical, {} unique",
            escape(&fam.base.name),
            fam.base.version,
            fam.members.len(),
            size(fam.logical_bytes),
            size(fam.unique_bytes)
        );
        let rows: Vec<Vec<String>> = fam
            .members
            .iter()
            .map(|m| {
                vec![
                    format!("{}@{}", escape(&m.name), m.version),
                    size(m.size_bytes),
                    time(m.created),
                    format!("{:.1}%", m.shared_with_base * 100.0),
                    "shared with base".to_string(),
                ]
            })
            .collect();
        use Align::{Left as L, Right as R};
        print_table("  ", &[], &[L, R, L, R, L], &rows);
    }
    println!("{} version(s) in no family", group(f.singletons));
}
