//! `mvault ls`: lists models and versions, all of them or those a `--where` condition selects;
//! exit code 6 when damaged records were skipped.

use modelvault::names::escape;
use modelvault::{Listing, QueryLimits, Result};

use crate::cli::args::Global;
use crate::cli::output::{self, Align, print_table, size, time};
use crate::cli::session::{damaged, unlock_read};

/// Runs `ls [NAME] [--where EXPR]`; returns the exit code.
pub fn run(g: &Global, name: Option<&str>, where_expr: Option<&str>, limits: QueryLimits) -> Result<i32> {
    let v = unlock_read(g)?;
    let l = match where_expr {
        None => v.list(name)?,
        Some(expr) => {
            let w = v.list_where_limited(name, expr, limits)?;
            for k in &w.unknown_keys {
                eprintln!("mvault: note: no version has {} (it reads as NULL)", escape(k));
            }
            w.listing
        }
    };
    if g.json {
        output::json(&l)
    } else {
        listing(&l)
    }
    Ok(if damaged(&l.problems) { 6 } else { 0 })
}

/// Prints a listing as a table: one line per version.
fn listing(l: &Listing) {
    use Align::{Left as L, Right as R};
    if l.models.is_empty() && l.problems.is_empty() {
        println!("(no models)");
        return;
    }
    let mut rows = Vec::new();
    for m in &l.models {
        for v in &m.versions {
            let tags: Vec<String> = v.tags.iter().map(|(k, val)| format!("{k}={}", escape(val))).collect();
            let aliases: Vec<String> = v.aliases.iter().map(|a| escape(a)).collect();
            rows.push(vec![
                escape(&m.name),
                v.version.to_string(),
                size(v.size_bytes),
                time(v.created),
                aliases.join(","),
                tags.join(" "),
            ]);
        }
    }
    print_table("", &["NAME", "VERSION", "SIZE", "CREATED", "ALIASES", "TAGS"], &[L, R, R, L, L, L], &rows);
}
