//! The string literals of a Rust source file, for tests that check what the library's messages
//! say: comments are skipped, char literals and lifetimes are not strings, a `\` line
//! continuation joins lines as the compiler does, and raw strings (`r"…"`, `r#"…"#`) are read
//! to their closing delimiter.

/// Every string literal of `src` (escapes other than a line continuation kept as written), with
/// the 1-based line it starts on.
pub fn string_literals(src: &str) -> Vec<(usize, String)> {
    let b = src.as_bytes();
    let (mut i, mut line, mut out) = (0usize, 1usize, Vec::new());
    while i < b.len() {
        let rest = &src[i..];
        let ident_before = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            let end = rest.find("*/").map_or(rest.len(), |e| e + 2);
            line += rest[..end].matches('\n').count();
            i += end;
        } else if let Some((open, close)) = raw_start(rest).filter(|_| !ident_before) {
            let body = &rest[open..];
            let end = body.find(&close).unwrap_or(body.len());
            out.push((line, body[..end].to_string()));
            line += body[..end].matches('\n').count();
            i += open + end + close.len();
        } else if b[i] == b'\'' {
            i += char_literal_len(rest);
        } else if b[i] == b'"' {
            let (lit, len) = quoted(&rest[1..]);
            out.push((line, lit));
            line += rest[..len + 1].matches('\n').count();
            i += len + 1;
        } else {
            line += usize::from(b[i] == b'\n');
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    out
}

/// For a raw string starting `rest` (`r"`, `r#"`, `br"` …): the length of its opening and its
/// closing delimiter.
fn raw_start(rest: &str) -> Option<(usize, String)> {
    let r = rest.strip_prefix('b').unwrap_or(rest);
    let after_r = r.strip_prefix('r')?;
    let hashes = after_r.len() - after_r.trim_start_matches('#').len();
    after_r[hashes..]
        .starts_with('"')
        .then(|| (rest.len() - after_r.len() + hashes + 1, format!("\"{}", "#".repeat(hashes))))
}

/// The length of a char literal at the start of `rest` (`'a'`, `'\''`, `'\u{1F600}'`), or 1 for
/// a lifetime's quote.
fn char_literal_len(rest: &str) -> usize {
    let body = &rest[1..];
    let first = body.chars().next().map_or(0, char::len_utf8);
    if let Some(escaped) = body.strip_prefix('\\') {
        return escaped.get(1..).and_then(|t| t.find('\'')).map_or(1, |e| e + 4);
    }
    if body[first..].starts_with('\'') { first + 2 } else { 1 }
}

/// The text of a `"…"` literal whose body starts `body`, and the bytes up to and including
/// its closing quote.
fn quoted(body: &str) -> (String, usize) {
    let mut lit = String::new();
    let mut chars = body.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return (lit, at + 1),
            '\\' => match chars.next() {
                Some((_, '\n')) => while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {},
                Some((_, e)) => {
                    lit.push('\\');
                    lit.push(e);
                }
                None => {}
            },
            c => lit.push(c),
        }
    }
    (lit, body.len())
}

/// True when `s` names a CLI flag (`--` then a lowercase letter) or an `mvault` command
/// (`mvault ` then a lowercase letter).
pub fn names_the_cli(s: &str) -> bool {
    let follows = |pat: &str| {
        s.match_indices(pat).any(|(at, _)| s[at + pat.len()..].starts_with(|c: char| c.is_ascii_lowercase()))
    };
    follows("--") || follows("mvault ")
}
