//! `mvault query`: one read-only SQL query over the vault's metadata, printed as a table, CSV or
//! JSON; exit code 6 when damaged records were left out.

use modelvault::names::escape;
use modelvault::{Error, QueryLimits, Result};

use crate::cli::args::Global;
use crate::cli::output;
use crate::cli::session::{damaged, unlock_read};

/// Runs `query SQL`; returns the exit code.
pub fn run(g: &Global, sql: &str, csv: bool, limits: QueryLimits) -> Result<i32> {
    if csv && g.json {
        return Err(Error::InvalidInput("--csv and --json cannot be used together: pick one".into()));
    }
    let v = unlock_read(g)?;
    let r = v.query_limited(sql, limits)?;
    if g.json {
        output::json(&r)
    } else if csv {
        print_csv(&r)
    } else {
        table(&r)
    }
    Ok(if damaged(&r.problems) { 6 } else { 0 })
}

/// Prints a query result as an aligned table: a header, then one line per row; numbers right-
/// aligned, text left-aligned and escaped, NULL as empty. The row count goes to stderr.
fn table(r: &modelvault::QueryResult) {
    use modelvault::SqlValue;
    let cells: Vec<Vec<String>> =
        r.rows.iter().map(|row| row.iter().map(|v| escape(&v.to_string())).collect()).collect();
    let heads: Vec<String> = r.columns.iter().map(|c| escape(c)).collect();
    let mut widths: Vec<usize> = heads.iter().map(|h| h.chars().count()).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let last = widths.len().saturating_sub(1);
    let line: Vec<String> = heads
        .iter()
        .enumerate()
        .map(|(i, h)| if i == last { h.clone() } else { format!("{h:<w$}", w = widths[i]) })
        .collect();
    println!("{}", line.join("  ").trim_end());
    for (row, vals) in cells.iter().zip(&r.rows) {
        let line: Vec<String> = row
            .iter()
            .zip(vals)
            .enumerate()
            .map(|(i, (c, v))| match v {
                SqlValue::Integer(_) | SqlValue::Real(_) => format!("{c:>w$}", w = widths[i]),
                _ if i == last => c.clone(),
                _ => format!("{c:<w$}", w = widths[i]),
            })
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    eprintln!("({} row(s))", r.rows.len());
}

/// Prints a query result as CSV (RFC 4180): a header line, then one line per row; fields with a
/// comma, quote, CR or LF are quoted, quotes doubled; NULL is an empty field.
fn print_csv(r: &modelvault::QueryResult) {
    fn field(s: &str) -> String {
        if s.contains([',', '"', '\r', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
    }
    let head: Vec<String> = r.columns.iter().map(|c| field(c)).collect();
    println!("{}", head.join(","));
    for row in &r.rows {
        let line: Vec<String> = row.iter().map(|v| field(&v.to_string())).collect();
        println!("{}", line.join(","));
    }
}
