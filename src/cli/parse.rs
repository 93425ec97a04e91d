//! Parsing of option values the command line gives as text: `KEY=VALUE` pairs, metrics and
//! version references that must name a version. Errors name the value; nothing here opens the
//! vault.

use modelvault::names::escape;
use modelvault::{Error, Result, VersionRef, parse_spec};

/// Splits `KEY=VALUE` at the first `=`; `what` names the option in the error.
///
/// Errors: [`Error::InvalidInput`] without a `=`.
pub fn split_kv<'a>(s: &'a str, what: &str) -> Result<(&'a str, &'a str)> {
    s.split_once('=').ok_or_else(|| Error::InvalidInput(format!("{what} '{}' is not KEY=VALUE", escape(s))))
}

/// Parses a metric `KEY=NUMBER`.
///
/// Errors: [`Error::InvalidInput`] when it is not `KEY=VALUE` or the value is not a number.
pub fn metric(s: &str) -> Result<(String, f64)> {
    let (k, v) = split_kv(s, "metric")?;
    let n: f64 =
        v.trim().parse().map_err(|_| Error::InvalidInput(format!("metric '{k}': '{}' is not a number", escape(v))))?;
    Ok((k.to_string(), n))
}

/// Requires an explicit version in `spec` (NAME@N or NAME@ALIAS).
///
/// Errors: those of [`parse_spec`]; [`Error::InvalidInput`] for a bare NAME.
pub fn versioned(spec: &str) -> Result<(String, VersionRef)> {
    let (name, r) = parse_spec(spec)?;
    if r == VersionRef::Latest {
        return Err(Error::InvalidInput(format!("'{}' needs a version: write NAME@VERSION", escape(spec))));
    }
    Ok((name, r))
}
