//! Output helpers every command shares: the error line, JSON, times, sizes, counts, shapes and
//! text tables. Each command prints its own report (`commands/`) with these. Names from the vault
//! are printed escaped ([`modelvault::names::escape`]) by the callers, so control and
//! bidirectional characters stay visible. Text tables are laid out by [`table`], each column as
//! wide as its widest value, so they stay aligned whatever the length of a name or a tag. It
//! never reads the vault.

use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

/// Prints a failed command's error on stderr: with `--json` one line
/// `{"error": MESSAGE, "code": EXIT_CODE}`, otherwise `mvault: error: MESSAGE`.
pub fn error(json: bool, message: &str, code: i32) {
    if json {
        eprintln!("{}", serde_json::json!({"error": message, "code": code}));
    } else {
        eprintln!("mvault: error: {message}");
    }
}

/// Prints `v` as pretty JSON on stdout.
pub fn json<T: Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).expect("report serialises"));
}

/// Unix seconds as RFC 3339 UTC.
pub fn time(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// Bytes with a binary-unit figure beside them.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// How [`table`] pads a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text: padded on the right.
    Left,
    /// Numbers: padded on the left.
    Right,
}

/// Lays out `rows` under `head` (no header line when `head` is empty) as lines of a table: each
/// column as wide as its widest cell, header included (widths counted in `char`s), columns two
/// spaces apart, trailing spaces removed. `align` gives each column's alignment (missing
/// entries: left). Cells are printed as given: escape vault text before.
pub fn table(head: &[&str], align: &[Align], rows: &[Vec<String>]) -> Vec<String> {
    let cols = rows.iter().map(Vec::len).chain([head.len()]).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for (i, h) in head.iter().enumerate() {
        widths[i] = widths[i].max(h.chars().count());
    }
    for row in rows {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let mut out = String::new();
        for (i, c) in cells.enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            let pad = " ".repeat(widths[i].saturating_sub(c.chars().count()));
            if align.get(i).copied() == Some(Align::Right) {
                out.push_str(&pad);
                out.push_str(c);
            } else {
                out.push_str(c);
                out.push_str(&pad);
            }
        }
        out.trim_end().to_string()
    };
    let mut out = Vec::with_capacity(rows.len() + 1);
    if !head.is_empty() {
        out.push(line(&mut head.iter().copied()));
    }
    for row in rows {
        out.push(line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// Prints each line of [`table`] with `indent` before it.
pub fn print_table(indent: &str, head: &[&str], align: &[Align], rows: &[Vec<String>]) {
    for l in table(head, align, rows) {
        println!("{indent}{l}");
    }
}

/// A count with thousands separators: 1234567 → "1,234,567".
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A shape as `[a, b, c]`.
pub fn shape(s: &[u64]) -> String {
    let dims: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}
