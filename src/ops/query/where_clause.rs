//! The `--where` expression compiler: rewrites `metric.KEY` and `tag.KEY` into scalar
//! subqueries over one `versions` row ([`compile_where`]), and maps SQLite's error offsets back to
//! the user's text.
//!
//! It must never let an expression end early or reach past its row: it refuses `;`, a `)`
//! without its `(`, unterminated strings, quoted identifiers and comments, and quotes every key
//! it writes into SQL. It runs nothing itself.

use std::collections::BTreeSet;

use super::MAX_SQL_BYTES;
use crate::{Error, Result};

/// Text in front of a compiled `--where` expression. The expression sees one `versions` row
/// (aliased `v`) and nothing else.
pub(super) const WHERE_PREFIX: &str = "SELECT v.name, v.version FROM versions AS v WHERE (";
pub(super) const WHERE_SUFFIX: &str = "\n)";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum RefKind {
    Metric,
    Tag,
}

impl RefKind {
    /// The kind a word `metric` or `tag` (any case) names.
    fn of_word(word: &str) -> Option<RefKind> {
        if word.eq_ignore_ascii_case("metric") {
            Some(RefKind::Metric)
        } else if word.eq_ignore_ascii_case("tag") {
            Some(RefKind::Tag)
        } else {
            None
        }
    }

    /// The scalar subquery that reads `key` of this kind for the row `v`.
    fn subquery(self, key: &str) -> String {
        let (table, col) = match self {
            RefKind::Metric => ("metrics", "value"),
            RefKind::Tag => ("tags", "value"),
        };
        format!(
            "(SELECT {col} FROM {table} WHERE {table}.name = v.name AND {table}.version = v.version AND {table}.key = '{}')",
            key.replace('\'', "''")
        )
    }

    pub(super) fn word(self) -> &'static str {
        match self {
            RefKind::Metric => "metric",
            RefKind::Tag => "tag",
        }
    }
}

/// A `--where` expression with `metric.KEY` / `tag.KEY` rewritten into scalar subqueries.
#[derive(Debug, Clone)]
pub(super) struct CompiledWhere {
    /// The rewritten expression.
    pub(super) sql: String,
    /// (compiled offset, user offset, compiled length, user length) of each rewritten token.
    rewrites: Vec<(usize, usize, usize, usize)>,
    /// The metric and tag keys referenced.
    pub(super) refs: BTreeSet<(RefKind, String)>,
}

impl CompiledWhere {
    /// Maps a byte offset in the full compiled statement back to one in the user's expression.
    pub(super) fn user_offset(&self, o: usize) -> Option<usize> {
        let o = o.checked_sub(WHERE_PREFIX.len())?;
        let mut shift: isize = 0;
        for &(c, u, clen, ulen) in &self.rewrites {
            if o < c {
                break;
            }
            if o < c + clen {
                return Some(u);
            }
            shift += ulen as isize - clen as isize;
        }
        Some((o as isize + shift).max(0) as usize)
    }
}

fn where_err(expr: &str, at: usize, what: &str) -> Error {
    let col = expr[..expr.floor_char_boundary(at)].chars().count() + 1;
    Error::InvalidInput(format!(": {what} at character {col} of: {}", visible(expr))).about(crate::Input::Condition)
}

/// SQL text for a one-line message: control and bidirectional characters escaped (so a newline
/// in a query cannot split the message), everything else, quotes included, as typed.
pub(super) fn visible(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control()
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
            {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Rewrites `metric.KEY` and `tag.KEY` (outside strings, quoted identifiers and comments) into
/// scalar subqueries, and refuses what could end the expression early: `;`, a `)` without its
/// `(`, an unterminated string or comment.
pub(super) fn compile_where(expr: &str) -> Result<CompiledWhere> {
    if expr.trim().is_empty() {
        return Err(Error::InvalidInput(
            ": the expression is empty: give a SQL condition such as \"metric.accuracy > 0.9\"".into(),
        )
        .about(crate::Input::Condition));
    }
    if expr.len() > MAX_SQL_BYTES {
        return Err(Error::InvalidInput(format!(
            ": the expression is {} bytes; the limit is {MAX_SQL_BYTES}",
            expr.len()
        ))
        .about(crate::Input::Condition));
    }
    let b = expr.as_bytes();
    let mut out = String::with_capacity(expr.len() + 64);
    let mut rewrites = Vec::new();
    let mut refs = BTreeSet::new();
    let mut depth = 0usize;
    let mut i = 0;
    let mut copied = 0;
    let ident_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\'' | b'"' | b'`' | b'[' => i = skip_quoted(expr, i)?,
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = b[i..].iter().position(|&x| x == b'\n').map_or(b.len(), |p| i + p);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = expr[i + 2..].find("*/").ok_or_else(|| where_err(expr, i, "unterminated comment"))?;
                i += 2 + end + 2;
            }
            b';' => return Err(where_err(expr, i, "';' is not allowed: give one expression")),
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                if depth == 0 {
                    return Err(where_err(expr, i, "')' has no matching '('"));
                }
                depth -= 1;
                i += 1;
            }
            c if c.is_ascii_digit() => {
                // A number, including forms like 1.5e3: never an identifier start.
                while i < b.len() && (ident_char(b[i]) || b[i] == b'.') {
                    i += 1;
                }
            }
            c if ident_char(c) => {
                let start = i;
                while i < b.len() && ident_char(b[i]) {
                    i += 1;
                }
                let word = &expr[start..i];
                let kind = RefKind::of_word(word);
                let after_dot = start > 0 && b[start - 1] == b'.';
                if let (Some(kind), false, Some(b'.')) = (kind, after_dot, b.get(i)) {
                    let (key, end) = read_key(expr, i + 1)?;
                    out.push_str(&expr[copied..start]);
                    let sub = kind.subquery(&key);
                    rewrites.push((out.len(), start, sub.len(), end - start));
                    out.push_str(&sub);
                    refs.insert((kind, key));
                    copied = end;
                    i = end;
                }
            }
            _ => i += 1,
        }
    }
    if depth != 0 {
        return Err(where_err(expr, expr.len(), "'(' is never closed"));
    }
    out.push_str(&expr[copied..]);
    Ok(CompiledWhere { sql: out, rewrites, refs })
}

/// The byte just past the string or quoted identifier that opens at byte `i` (`'…'`, `"…"`,
/// `` `…` `` with the quote doubled inside, or `[…]`).
fn skip_quoted(expr: &str, i: usize) -> Result<usize> {
    let b = expr.as_bytes();
    let c = b[i];
    let close = if c == b'[' { b']' } else { c };
    let mut j = i + 1;
    loop {
        if j >= b.len() {
            return Err(where_err(expr, i, "unterminated quote"));
        }
        if b[j] == close {
            if close != b']' && j + 1 < b.len() && b[j + 1] == close {
                j += 2;
                continue;
            }
            break;
        }
        j += 1;
    }
    Ok(j + 1)
}

/// Reads the KEY after `metric.` / `tag.` at byte `at`: `"quoted"` (with `""` for `"`) or bare
/// letters, digits, `_` and `.`. Returns the key and the byte just past it.
fn read_key(expr: &str, at: usize) -> Result<(String, usize)> {
    let b = expr.as_bytes();
    if b.get(at) == Some(&b'"') {
        let mut key = String::new();
        let mut j = at + 1;
        loop {
            match b.get(j) {
                None => return Err(where_err(expr, at, "unterminated quoted key")),
                Some(b'"') if b.get(j + 1) == Some(&b'"') => {
                    key.push('"');
                    j += 2;
                }
                Some(b'"') => break,
                Some(_) => {
                    let ch = expr[j..].chars().next().expect("in bounds");
                    key.push(ch);
                    j += ch.len_utf8();
                }
            }
        }
        if key.is_empty() {
            return Err(where_err(expr, at, "empty key"));
        }
        return Ok((key, j + 1));
    }
    let mut j = at;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'.') {
        j += 1;
    }
    while j > at && b[j - 1] == b'.' {
        j -= 1;
    }
    if j == at {
        return Err(where_err(
            expr,
            at,
            "a key must follow 'metric.' or 'tag.' (quote keys with other characters: metric.\"f1-score\")",
        ));
    }
    Ok((expr[at..j].to_string(), j))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_keeps_strings_and_maps_offsets() {
        let c = compile_where("metric.acc > 0.9 AND tag.env = 'metric.x'").unwrap();
        assert_eq!(c.refs.len(), 2);
        assert!(c.sql.ends_with("= 'metric.x'"));
        // The token after the first rewrite maps back to the user's text.
        let at = c.sql.find(" > 0.9").unwrap() + WHERE_PREFIX.len();
        assert_eq!(c.user_offset(at), Some(10));
    }

    #[test]
    fn quoted_and_dotted_keys() {
        let c = compile_where("metric.\"f1-score\" > 1 OR tag.a.b = 'x'").unwrap();
        let keys: Vec<_> = c.refs.iter().map(|(_, k)| k.as_str()).collect();
        assert_eq!(keys, ["f1-score", "a.b"]);
    }

    #[test]
    fn escapes_are_refused() {
        for bad in ["1); DROP TABLE x", "1) OR (1", "(1", "'abc", "metric.", "/* x"] {
            assert!(compile_where(bad).is_err(), "{bad}");
        }
    }
}
