//! Where a remote is and how it is reached: the `s3://BUCKET/PREFIX` URL parsed strictly, the
//! endpoint and region (given, or from the standard AWS variables), and the bounds on retries and
//! timeouts. This module owns the parsing and the defaults; it must never read, hold or print a
//! credential (those are read from the environment when connecting, in `s3`).

use std::time::Duration;

use crate::names::escape;
use crate::{Error, Result};

/// How hard a request is retried, and how long one may take.
///
/// The defaults bound one operation: at most `max_retries` = 5 retries of a transient fault
/// (connection refused or reset, a 5xx answer, a timeout of a request that may be repeated), with
/// exponential backoff from 100 ms doubling up to 2 s, and none started later than
/// `retry_timeout` = 60 s after the first attempt; each attempt is bounded by `connect_timeout`
/// = 5 s to connect and `request_timeout` = 60 s in all. So one request of a server that never
/// answers fails after at most `retry_timeout` + `request_timeout` + `max_backoff` = 122 s (a
/// timeout is retried only for a request that may be repeated), one of a server that refuses or
/// resets every connection after about 4 s of backoff. A create-only write is tried up to
/// 3 times (`s3::CREATE_ATTEMPTS`), each bounded as above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: none).
    pub max_retries: usize,
    /// First backoff; each next one doubles, up to `max_backoff`.
    pub init_backoff: Duration,
    /// Longest backoff.
    pub max_backoff: Duration,
    /// No retry starts later than this after the first attempt.
    pub retry_timeout: Duration,
    /// Bound on establishing one connection.
    pub connect_timeout: Duration,
    /// Bound on one attempt of a request, from connecting to the end of the answer.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            retry_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// A remote's location: bucket, key prefix, endpoint and region, and the retry bounds. Holds no
/// credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    /// The bucket name (S3 rules: 3 to 63 of `a-z 0-9 . -`, starting and ending with a letter or
    /// digit).
    pub bucket: String,
    /// The key prefix inside the bucket, without leading or trailing `/`; empty for the bucket's
    /// root. Every object of the remote is under `PREFIX/`.
    pub prefix: String,
    /// The server's base URL (`http://` or `https://`, no user or password, no query), or `None`
    /// for AWS S3 itself.
    pub endpoint: Option<String>,
    /// The region (`us-east-1` when none is given or set).
    pub region: String,
    /// Retry and timeout bounds.
    pub retry: RetryPolicy,
}

/// What separates the URL from the endpoint in [`RemoteConfig::seen_label`]; a label without it
/// is one an earlier version recorded by URL alone.
pub const SEEN_AT: &str = " at ";

/// The region used when neither an option nor `AWS_REGION` / `AWS_DEFAULT_REGION` gives one.
pub const DEFAULT_REGION: &str = "us-east-1";

fn bad_url(url: &str, why: &str) -> Error {
    Error::InvalidInput(format!("remote URL '{}' {why}", escape(url)))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl RemoteConfig {
    /// Parses `s3://BUCKET/PREFIX` and takes the endpoint and region from `endpoint` and `region`
    /// when given, else from `AWS_ENDPOINT_URL` and `AWS_REGION` (then `AWS_DEFAULT_REGION`, then
    /// [`DEFAULT_REGION`]).
    ///
    /// Errors: [`Error::InvalidInput`] naming what is wrong: a scheme other than `s3://`, an empty
    /// or invalid bucket name, an empty, `.` or `..` prefix segment, a control character, a
    /// query or fragment; an endpoint that is not a plain `http://` or `https://` URL.
    pub fn new(url: &str, endpoint: Option<&str>, region: Option<&str>) -> Result<Self> {
        let (bucket, prefix) = parse_url(url)?;
        let endpoint = match endpoint.map(str::to_string).or_else(|| env("AWS_ENDPOINT_URL")) {
            Some(e) => Some(check_endpoint(&e)?),
            None => None,
        };
        let region = region
            .map(str::to_string)
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| DEFAULT_REGION.to_string());
        check_region(&region)?;
        Ok(RemoteConfig { bucket, prefix, endpoint, region, retry: RetryPolicy::default() })
    }

    /// The label a vault remembers this remote's last log entry under (`meta`/`"remote-seen"`):
    /// the canonical URL and the endpoint, `s3://BUCKET/PREFIX at ENDPOINT` (`at AWS S3` without
    /// one), so one bucket and prefix on two servers are two remotes.
    pub fn seen_label(&self) -> String {
        format!("{}{SEEN_AT}{}", self.url(), self.endpoint.as_deref().unwrap_or("AWS S3"))
    }

    /// The URL in its canonical form, `s3://BUCKET/PREFIX` (`s3://BUCKET` for an empty prefix).
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// Splits `s3://BUCKET/PREFIX` into a checked bucket name and prefix (no leading or trailing
/// `/`).
///
/// Errors: [`Error::InvalidInput`] as for [`RemoteConfig::new`].
pub fn parse_url(url: &str) -> Result<(String, String)> {
    if url.chars().any(char::is_control) {
        return Err(bad_url(url, "holds a control character"));
    }
    let Some(rest) = url.strip_prefix("s3://") else {
        return Err(bad_url(url, "does not start with s3:// (the form is s3://BUCKET/PREFIX)"));
    };
    if rest.contains(['?', '#']) {
        return Err(bad_url(url, "holds a query or fragment ('?' or '#'): the form is s3://BUCKET/PREFIX"));
    }
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    check_bucket(url, bucket)?;
    let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
    if !prefix.is_empty() {
        for seg in prefix.split('/') {
            match seg {
                "" => return Err(bad_url(url, "has an empty path segment ('//' or a leading '/')")),
                "." | ".." => return Err(bad_url(url, "has a '.' or '..' path segment")),
                _ => {}
            }
        }
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

fn check_bucket(url: &str, b: &str) -> Result<()> {
    if b.is_empty() {
        return Err(bad_url(url, "has an empty bucket name (the form is s3://BUCKET/PREFIX)"));
    }
    let ok_chars = b.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-');
    let ends = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !(3..=63).contains(&b.len()) || !ok_chars || !ends(b.bytes().next()) || !ends(b.bytes().last()) {
        return Err(bad_url(
            url,
            "has an invalid bucket name: 3 to 63 lowercase letters, digits, '.' or '-', starting and ending with a letter or digit",
        ));
    }
    if b.contains("..") {
        return Err(bad_url(url, "has an invalid bucket name: two dots in a row"));
    }
    Ok(())
}

/// Checks an endpoint URL: `http://` or `https://`, a host, no user or password, no query or
/// fragment. Returns it without a trailing `/`.
///
/// Errors: [`Error::InvalidInput`] naming what is wrong (the URL is shown without anything
/// after an `@`, which could be a password).
pub fn check_endpoint(e: &str) -> Result<String> {
    let shown = match e.rsplit_once('@') {
        Some((_, host)) => format!("…@{}", escape(host)),
        None => escape(e),
    };
    let bad = |why: &str| Error::InvalidInput(format!("endpoint '{shown}' {why}"));
    let rest = e.strip_prefix("http://").or_else(|| e.strip_prefix("https://"));
    let Some(rest) = rest else {
        return Err(bad("does not start with http:// or https://"));
    };
    if e.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("holds a space or control character"));
    }
    let host = rest.split('/').next().unwrap_or("");
    if host.contains('@') {
        return Err(bad(
            "holds a user name or password: give credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        ));
    }
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    if rest.contains(['?', '#']) {
        return Err(bad("holds a query or fragment"));
    }
    Ok(e.trim_end_matches('/').to_string())
}

fn check_region(r: &str) -> Result<()> {
    if r.is_empty() || r.len() > 64 || !r.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_') {
        return Err(Error::InvalidInput(format!(
            "region '{}' is not a region name (letters, digits, '-' and '_', at most 64)",
            escape(r)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_strictly() {
        assert_eq!(parse_url("s3://models/team/a").unwrap(), ("models".into(), "team/a".into()));
        assert_eq!(parse_url("s3://models/team/").unwrap(), ("models".into(), "team".into()));
        assert_eq!(parse_url("s3://models").unwrap(), ("models".into(), String::new()));
        let err = |u: &str| parse_url(u).unwrap_err().to_string();
        assert!(err("https://models/a").contains("does not start with s3://"), "{}", err("https://x/a"));
        assert!(err("s3:///a").contains("empty bucket name"));
        assert!(err("s3://models/a/../b").contains("'..' path segment"));
        assert!(err("s3://models//a").contains("empty path segment"));
        assert!(err("s3://Models/a").contains("invalid bucket name"));
        assert!(err("s3://ab/a").contains("invalid bucket name"));
        assert!(err("s3://models/a?x=1").contains("query or fragment"));
        assert!(err("s3://models/a\nb").contains("control character"));
    }

    #[test]
    fn endpoints_are_plain_urls_without_credentials() {
        assert_eq!(check_endpoint("http://127.0.0.1:9000/").unwrap(), "http://127.0.0.1:9000");
        assert!(check_endpoint("https://s3.example.com").is_ok());
        let e = check_endpoint("http://key:hunter2@127.0.0.1:9000").unwrap_err().to_string();
        assert!(e.contains("user name or password") && !e.contains("hunter2"), "{e}");
        assert!(check_endpoint("ftp://x").unwrap_err().to_string().contains("http:// or https://"));
        assert!(check_endpoint("http://").unwrap_err().to_string().contains("no host"));
    }

    #[test]
    fn options_win_over_the_environment_and_the_region_has_a_default() {
        let c = RemoteConfig::new("s3://models/p", Some("http://127.0.0.1:1"), Some("eu-west-3")).unwrap();
        assert_eq!((c.endpoint.as_deref(), c.region.as_str()), (Some("http://127.0.0.1:1"), "eu-west-3"));
        assert_eq!(c.url(), "s3://models/p");
        assert_eq!(c.seen_label(), "s3://models/p at http://127.0.0.1:1");
        let aws = RemoteConfig { endpoint: None, ..c.clone() };
        assert_eq!(aws.seen_label(), "s3://models/p at AWS S3");
        assert!(RemoteConfig::new("s3://models/p", None, Some("eu west")).is_err());
    }
}
