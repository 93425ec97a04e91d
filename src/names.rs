//! The naming rules: one rule for model names, aliases and tag/metric keys, and one for file paths
//! inside a model. Every entry point (CLI and library) goes through these functions, and no
//! filesystem path is ever built from a model name.
//!
//! **Names** (model, alias, tag key, metric key): 1 to 128 bytes of ASCII letters, digits, `.`,
//! `_` and `-`, starting with a letter or digit, with no `..`. So separators (`/`, `\`, `:`),
//! `%`, spaces, control characters, NUL, Unicode look-alikes (fullwidth letters, NFD accents,
//! right-to-left overrides) and the names `.` and `..` are all refused: two names that look the
//! same on screen are the same bytes. Case is significant (`a` and `A` are different models).
//! An alias may not be all digits, so `NAME@3` always means version 3.
//!
//! A **model name** may also carry one namespace, `ORG/NAME`, as Hugging Face and MLflow users
//! write them (`sentence-transformers/all-MiniLM-L6-v2`): exactly one `/`, with each side a name
//! by the rule above, and 128 bytes in all. Aliases and keys take no `/`. The `/` is part of the
//! name's bytes only: no filesystem path is ever built from a model name.
//!
//! **File paths** inside a model: UTF-8, `/`-separated relative paths of at most 64 components
//! and 4096 bytes; each component 1 to 255 bytes, not `.` or `..`, with no NUL, control
//! character, backslash or bidirectional-override character.

use crate::{Error, Result};

/// Most characters of a user-supplied string that [`escape`] shows.
pub const MAX_SHOWN_CHARS: usize = 200;
/// Longest model name, alias or key, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Longest tag value, in bytes.
pub const MAX_TAG_VALUE_LEN: usize = 4096;
/// Longest description, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 64 * 1024;
/// Longest file path inside a model, in bytes.
pub const MAX_PATH_LEN: usize = 4096;
/// Deepest file path inside a model, in components.
pub const MAX_PATH_DEPTH: usize = 64;

/// Shows a user-supplied string with every control, format (bidi), whitespace other than space,
/// and non-alphanumeric non-ASCII character escaped as `\u{..}`, so nothing invisible hides in it.
///
/// Output is capped at [`MAX_SHOWN_CHARS`] characters, with the full length said after `…`, so a
/// hostile megabyte-long name cannot flood a terminal or a log.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(4 * MAX_SHOWN_CHARS));
    for (i, c) in s.chars().enumerate() {
        if i == MAX_SHOWN_CHARS {
            out.push_str(&format!("…({} bytes in all)", s.len()));
            break;
        }
        if c.is_ascii_graphic() || c == ' ' || (!c.is_ascii() && c.is_alphanumeric()) {
            if c == '\\' || c == '"' {
                out.push('\\');
            }
            out.push(c);
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    out
}

fn invalid(what: &'static str, s: &str, reason: impl Into<String>) -> Error {
    Error::InvalidName { what, shown: escape(s), reason: reason.into() }
}

fn check_name_like(what: &'static str, s: &str) -> Result<()> {
    if s.is_empty() {
        return Err(invalid(what, s, "it is empty"));
    }
    if s.len() > MAX_NAME_LEN {
        return Err(invalid(what, s, format!("it is {} bytes; the limit is {MAX_NAME_LEN}", s.len())));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(invalid(
            what,
            s,
            format!("character {} is not allowed: use ASCII letters, digits, '.', '_' and '-'", escape_char(c)),
        ));
    }
    if !s.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(invalid(what, s, "it must start with a letter or digit"));
    }
    if s.contains("..") {
        return Err(invalid(what, s, "it must not contain '..'"));
    }
    Ok(())
}

fn escape_char(c: char) -> String {
    let mut b = [0u8; 4];
    let e = escape(c.encode_utf8(&mut b));
    format!("'{e}'")
}

/// Checks a model name against the rule in the module docs: a name, or `ORG/NAME`.
///
/// Errors: [`Error::InvalidName`] naming the broken rule.
pub fn check_model_name(s: &str) -> Result<()> {
    check_namespaced("model name", s)
}

/// Checks a Hugging Face repo id (`ORG/NAME` or `NAME`) by the model name rule, which also
/// keeps it from holding `..` or any separator but its one `/`; and no `--`, which the Hub
/// refuses (its cache folders spell `/` as `--`).
///
/// Errors: [`Error::InvalidName`] with `what = "Hugging Face repo id"`.
pub fn check_repo_id(s: &str) -> Result<()> {
    const W: &str = "Hugging Face repo id";
    check_namespaced(W, s)?;
    if s.contains("--") {
        return Err(invalid(W, s, "it contains '--', which the Hub does not allow in a repo id"));
    }
    Ok(())
}

fn check_namespaced(what: &'static str, s: &str) -> Result<()> {
    let Some((org, rest)) = s.split_once('/') else {
        return check_name_like(what, s);
    };
    if s.len() > MAX_NAME_LEN {
        return Err(invalid(what, s, format!("it is {} bytes; the limit is {MAX_NAME_LEN}", s.len())));
    }
    if rest.contains('/') {
        return Err(invalid(what, s, format!("it has more than one '/': a {what} is NAME or ORG/NAME")));
    }
    if org.is_empty() || rest.is_empty() {
        return Err(invalid(what, s, format!("a side of its '/' is empty: a {what} is NAME or ORG/NAME")));
    }
    for part in [org, rest] {
        if let Err(Error::InvalidName { reason, .. }) = check_name_like(what, part) {
            return Err(invalid(what, s, format!("'{}': {reason}", escape(part))));
        }
    }
    Ok(())
}

/// Checks an alias: the name rule, and not all digits.
pub fn check_alias(s: &str) -> Result<()> {
    check_name_like("alias", s)?;
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("alias", s, "it is all digits and would be read as a version number"));
    }
    Ok(())
}

/// Checks a tag or metric key.
pub fn check_key(what: &'static str, s: &str) -> Result<()> {
    check_name_like(what, s)
}

fn has_bad_char(s: &str, allow_newline: bool) -> Option<char> {
    s.chars().find(|&c| {
        (c.is_control() && !(allow_newline && (c == '\n' || c == '\t')))
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
    })
}

/// Checks a tag value: at most [`MAX_TAG_VALUE_LEN`] bytes, no control or bidi characters.
pub fn check_tag_value(s: &str) -> Result<()> {
    if s.len() > MAX_TAG_VALUE_LEN {
        return Err(invalid("tag value", s, format!("it is {} bytes; the limit is {MAX_TAG_VALUE_LEN}", s.len())));
    }
    if let Some(c) = has_bad_char(s, false) {
        return Err(invalid("tag value", s, format!("character {} is not allowed", escape_char(c))));
    }
    Ok(())
}

/// Checks a description: at most [`MAX_DESCRIPTION_LEN`] bytes; newlines and tabs allowed, other
/// control and bidi characters not.
pub fn check_description(s: &str) -> Result<()> {
    if s.len() > MAX_DESCRIPTION_LEN {
        return Err(Error::InvalidInput(format!(
            "description is {} bytes; the limit is {MAX_DESCRIPTION_LEN}",
            s.len()
        )));
    }
    if let Some(c) = has_bad_char(s, true) {
        return Err(invalid("description", s, format!("character {} is not allowed", escape_char(c))));
    }
    Ok(())
}

/// Checks a metric value: a finite number.
pub fn check_metric_value(key: &str, v: f64) -> Result<()> {
    if !v.is_finite() {
        return Err(Error::InvalidInput(format!("metric '{key}' must be a finite number, got {v}")));
    }
    Ok(())
}

/// Checks a file path inside a model (see module docs). Returns its components.
///
/// Errors: [`Error::InvalidName`] with `what = "file path"`.
pub fn check_file_path(p: &str) -> Result<Vec<&str>> {
    const W: &str = "file path";
    if p.is_empty() {
        return Err(invalid(W, p, "it is empty"));
    }
    if p.len() > MAX_PATH_LEN {
        return Err(invalid(W, p, format!("it is {} bytes; the limit is {MAX_PATH_LEN}", p.len())));
    }
    if p.starts_with('/') {
        return Err(invalid(W, p, "it is absolute; paths inside a model are relative"));
    }
    let parts: Vec<&str> = p.split('/').collect();
    if parts.len() > MAX_PATH_DEPTH {
        return Err(invalid(W, p, format!("it has {} components; the limit is {MAX_PATH_DEPTH}", parts.len())));
    }
    for part in &parts {
        if part.is_empty() {
            return Err(invalid(W, p, "it has an empty component ('//' or a trailing '/')"));
        }
        if *part == "." || *part == ".." {
            return Err(invalid(W, p, "it has a '.' or '..' component"));
        }
        if part.len() > 255 {
            return Err(invalid(W, p, format!("a component is {} bytes; the limit is 255", part.len())));
        }
        if part.contains('\\') {
            return Err(invalid(W, p, "it contains a backslash"));
        }
        if let Some(c) = has_bad_char(part, false) {
            return Err(invalid(W, p, format!("character {} is not allowed", escape_char(c))));
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names_pass() {
        for n in ["bert", "MiniLM-L6-v2", "a", "A", "llama.3_8b", "7b", "sentence-transformers/all-MiniLM-L6-v2", "a/b"]
        {
            check_model_name(n).unwrap();
        }
    }

    #[test]
    fn a_namespace_is_one_slash_between_two_names() {
        for (bad, why) in [
            ("a/b/c", "more than one '/'"),
            ("/a", "a side of its '/' is empty"),
            ("a/", "a side of its '/' is empty"),
            ("../a", "'..': it must start with a letter or digit"),
            ("a/..", "'..': it must start with a letter or digit"),
            ("a/b..c", "'b..c': it must not contain '..'"),
            ("a/.b", "'.b': it must start with a letter or digit"),
            ("a\\b/c", "'a\\\\b': character"),
            ("a/b c", "'b c': character ' ' is not allowed"),
        ] {
            let e = check_model_name(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        let long = format!("{}/{}", "o".repeat(64), "n".repeat(64));
        assert!(check_model_name(&long).unwrap_err().to_string().contains("129 bytes; the limit is 128"));
        check_model_name(&long[1..]).unwrap();
        assert!(check_alias("a/b").is_err());
        assert!(check_key("tag key", "a/b").is_err());
    }

    #[test]
    fn aliases_cannot_be_numbers() {
        assert!(check_alias("123").unwrap_err().to_string().contains("version number"));
        check_alias("prod").unwrap();
    }

    #[test]
    fn escape_shows_invisible_characters() {
        assert_eq!(escape("model\u{202e}gnp.exe"), "model\\u{202e}gnp.exe");
        assert_eq!(escape("tab\tname"), "tab\\u{9}name");
        assert_eq!(escape("café"), "café");
    }

    #[test]
    fn file_paths() {
        assert_eq!(check_file_path("a/b.bin").unwrap(), vec!["a", "b.bin"]);
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a//b", "a/", "a\\b", "a\u{0}b", ".", "x/\u{202e}y"] {
            assert!(check_file_path(bad).is_err(), "{bad:?} accepted");
        }
    }
}
