//! `mvault similar`: the versions and models that share the most stored bytes with one version.

use modelvault::names::escape;
use modelvault::{Result, parse_spec};

use crate::cli::args::Global;
use crate::cli::output::{self, Align, group, print_table, size};
use crate::cli::session::unlock_read;

/// Runs `similar SPEC`, keeping the first `limit` rows of each list (0: all); returns the exit code.
pub fn run(g: &Global, spec: &str, limit: usize) -> Result<i32> {
    let (name, r) = parse_spec(spec)?;
    let v = unlock_read(g)?;
    let mut sim = v.similar(&name, &r)?;
    if limit > 0 {
        sim.versions.truncate(limit);
        sim.models.truncate(limit);
    }
    if g.json {
        output::json(&sim)
    } else {
        print(&sim)
    }
    Ok(0)
}

/// Prints `similar`: the version asked about, then versions and models by shared bytes.
fn print(s: &modelvault::Similarity) {
    println!(
        "{}@{}: {} distinct chunk(s), {} stored",
        escape(&s.name),
        s.version,
        group(s.chunks),
        size(s.stored_bytes)
    );
    if s.versions.is_empty() && s.models.is_empty() {
        println!("no other version shares a chunk with it");
        return;
    }
    use Align::{Left as L, Right as R};
    if !s.versions.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = s
            .versions
            .iter()
            .map(|v| {
                vec![
                    format!("{}@{}", escape(&v.name), v.version),
                    size(v.shared_bytes),
                    v.shared_chunks.to_string(),
                    format!("{:.3}", v.jaccard),
                ]
            })
            .collect();
        print_table("", &["VERSION", "SHARED", "CHUNKS", "JACCARD"], &[L, R, R, R], &rows);
    }
    if !s.models.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = s
            .models
            .iter()
            .map(|m| {
                vec![escape(&m.name), size(m.shared_bytes), m.shared_chunks.to_string(), format!("{:.3}", m.jaccard)]
            })
            .collect();
        print_table("", &["MODEL", "SHARED", "CHUNKS", "JACCARD"], &[L, R, R, R], &rows);
    }
}
