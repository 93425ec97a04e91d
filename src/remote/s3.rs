//! [`S3Objects`]: the [`Objects`] interface over an S3-compatible server, through the
//! `object_store` crate (its `aws` client: SigV4 signing, retries with backoff, multipart
//! uploads), driven by a private, small multi-thread tokio runtime so that several threads may
//! call the blocking methods at once. Credentials come from the environment ([`Credentials`]) when
//! connecting and are never stored in the vault, printed, or put in an error: every error detail
//! has them replaced by `[redacted]` before it leaves this module. This module must never retry a
//! create-only write as a plain one, nor start a request from inside an async context of the
//! caller's.

use std::ops::Range;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
};
use zeroize::Zeroizing;

use super::config::RemoteConfig;
use super::objects::{Created, ObjectInfo, Objects, too_large};
use crate::{Error, Result};

/// Objects at or below this size go up in one request; larger ones in parts (8 MiB).
pub const MULTIPART_THRESHOLD: usize = 8 << 20;
/// The size of one part of a multipart upload (S3's minimum is 5 MiB, except for the last).
pub const PART_SIZE: usize = 8 << 20;
/// Parts of one upload in flight at once: a multipart put holds at most this many part copies
/// (32 MiB) besides the caller's buffer.
pub const PARTS_IN_FLIGHT: usize = 4;
/// Worker threads of the private runtime.
pub const RUNTIME_THREADS: usize = 2;
/// Attempts of a create-only write whose outcome a fault left unknown (each attempt is itself
/// retried by the client on a 5xx or a refused connection).
pub const CREATE_ATTEMPTS: usize = 3;

/// S3 credentials: an access key id, a secret key and an optional session token. The secret and
/// token are zeroized on drop; `Debug` shows none of the three. (The HTTP client keeps its own
/// copies while an [`S3Objects`] lives.)
pub struct Credentials {
    access_key_id: Zeroizing<String>,
    secret_access_key: Zeroizing<String>,
    session_token: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials([redacted])")
    }
}

impl Credentials {
    /// Credentials given as values.
    pub fn new(access_key_id: &str, secret_access_key: &str, session_token: Option<&str>) -> Self {
        Credentials {
            access_key_id: Zeroizing::new(access_key_id.to_string()),
            secret_access_key: Zeroizing::new(secret_access_key.to_string()),
            session_token: session_token.map(|t| Zeroizing::new(t.to_string())),
        }
    }

    /// Reads `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and (optional) `AWS_SESSION_TOKEN`.
    ///
    /// Errors: [`Error::Remote`] naming the variable that is not set.
    pub fn from_env() -> Result<Self> {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty()).map(Zeroizing::new);
        let missing = |n: &str| Error::remote("reading credentials", format!("{n} is not set"));
        Ok(Credentials {
            access_key_id: var("AWS_ACCESS_KEY_ID").ok_or_else(|| missing("AWS_ACCESS_KEY_ID"))?,
            secret_access_key: var("AWS_SECRET_ACCESS_KEY").ok_or_else(|| missing("AWS_SECRET_ACCESS_KEY"))?,
            session_token: var("AWS_SESSION_TOKEN"),
        })
    }

    fn redactions(&self) -> Vec<Zeroizing<String>> {
        let mut v = vec![self.secret_access_key.clone(), self.access_key_id.clone()];
        v.extend(self.session_token.clone());
        v.retain(|s| s.len() >= 4);
        v
    }
}

/// An S3-compatible remote: a bucket and key prefix on a server, reached with SigV4-signed
/// requests (path-style URLs; `http://` endpoints are allowed). Keys given to the [`Objects`]
/// methods are relative to the prefix. Safe to share between threads: requests of several
/// threads run in parallel on the private runtime ([`RUNTIME_THREADS`] workers).
///
/// Retries and timeouts follow the config's [`super::config::RetryPolicy`]. A create-only write
/// whose answer was lost (a reset or timeout after sending) is sent again, create-only, at most
/// [`CREATE_ATTEMPTS`] times in all, with the policy's backoff between; if a later attempt finds the key taken, the object is read
/// back, and it counts as created by this call only when it holds exactly the bytes given.
pub struct S3Objects {
    store: Arc<AmazonS3>,
    rt: tokio::runtime::Runtime,
    prefix: String,
    url: String,
    redact: Vec<Zeroizing<String>>,
    backoff: (std::time::Duration, std::time::Duration),
}

impl std::fmt::Debug for S3Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Objects").field("url", &self.url).finish_non_exhaustive()
    }
}

impl S3Objects {
    /// Connects with credentials from the environment ([`Credentials::from_env`]). Sends no
    /// request: the first operation is the first contact.
    ///
    /// Errors: [`Error::Remote`] for missing credentials or a client that cannot be built.
    pub fn connect(config: &RemoteConfig) -> Result<Self> {
        Self::connect_with(config, &Credentials::from_env()?)
    }

    /// Connects with the credentials given.
    ///
    /// Errors: [`Error::Remote`] for a client that cannot be built.
    pub fn connect_with(config: &RemoteConfig, creds: &Credentials) -> Result<Self> {
        let url = config.url();
        let r = &config.retry;
        let retry = RetryConfig {
            backoff: BackoffConfig { init_backoff: r.init_backoff, max_backoff: r.max_backoff, base: 2.0 },
            max_retries: r.max_retries,
            retry_timeout: r.retry_timeout,
        };
        let options = ClientOptions::new()
            .with_allow_http(true)
            .with_connect_timeout(r.connect_timeout)
            .with_timeout(r.request_timeout);
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(creds.access_key_id.as_str())
            .with_secret_access_key(creds.secret_access_key.as_str())
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_retry(retry)
            .with_client_options(options);
        if let Some(t) = &creds.session_token {
            b = b.with_token(t.as_str());
        }
        if let Some(e) = &config.endpoint {
            b = b.with_endpoint(e).with_allow_http(true).with_virtual_hosted_style_request(false);
        }
        let redact = creds.redactions();
        let store = b.build().map_err(|e| Error::remote(format!("connecting to {url}"), scrub(&redact, &e)))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_THREADS)
            .thread_name("mvault-remote")
            .enable_all()
            .build()
            .map_err(|e| Error::remote(format!("connecting to {url}"), format!("cannot start the I/O runtime: {e}")))?;
        let backoff = (r.init_backoff, r.max_backoff);
        Ok(S3Objects { store: Arc::new(store), rt, prefix: config.prefix.clone(), url, redact, backoff })
    }

    /// The remote's URL, `s3://BUCKET/PREFIX`.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn path(&self, key: &str, doing: &str) -> Result<Path> {
        let bad = |why: &str| Error::remote(format!("{doing} {key} in {}", self.url), why.to_string());
        if key.is_empty() || key.starts_with('/') || key.ends_with('/') || key.contains("//") {
            return Err(bad("the key is empty or has an empty path segment"));
        }
        if key.split('/').any(|s| s == "." || s == "..") || key.chars().any(char::is_control) {
            return Err(bad("the key has a '.' or '..' segment or a control character"));
        }
        let full = if self.prefix.is_empty() { key.to_string() } else { format!("{}/{key}", self.prefix) };
        Path::parse(&full).map_err(|e| bad(&e.to_string()))
    }

    fn err(&self, doing: &str, key: &str, e: &object_store::Error) -> Error {
        Error::remote(format!("{doing} {key} in {}", self.url), scrub(&self.redact, e))
    }

    fn relative(&self, location: &Path) -> Option<String> {
        let s = location.as_ref();
        if self.prefix.is_empty() {
            return Some(s.to_string());
        }
        // A listing names keys under the prefix; anything else a server returns is skipped.
        s.strip_prefix(self.prefix.as_str()).and_then(|r| r.strip_prefix('/')).map(str::to_string)
    }

    async fn put_parts(&self, path: &Path, key: &str, bytes: &[u8]) -> Result<()> {
        let mut upload =
            self.store.put_multipart(path).await.map_err(|e| self.err("starting the upload of", key, &e))?;
        let mut parts = bytes.chunks(PART_SIZE);
        let mut in_flight = FuturesUnordered::new();
        let result: Result<()> = loop {
            while in_flight.len() < PARTS_IN_FLIGHT {
                let Some(p) = parts.next() else { break };
                in_flight.push(upload.put_part(PutPayload::from(bytes::Bytes::copy_from_slice(p))));
            }
            match in_flight.next().await {
                None => break Ok(()),
                Some(Ok(())) => {}
                Some(Err(e)) => break Err(self.err("uploading a part of", key, &e)),
            }
        };
        drop(in_flight);
        if let Err(e) = result {
            let _ = upload.abort().await; // best effort: the error that matters is the part's
            return Err(e);
        }
        upload.complete().await.map_err(|e| self.err("completing the upload of", key, &e))?;
        Ok(())
    }

    async fn create(&self, path: &Path, key: &str, bytes: &[u8]) -> Result<Created> {
        let mut last = None;
        let mut wait = self.backoff.0;
        for attempt in 0..CREATE_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(self.backoff.1);
            }
            let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
            let payload = PutPayload::from(bytes::Bytes::copy_from_slice(bytes));
            match self.store.put_opts(path, payload, opts).await {
                Ok(_) => return Ok(Created::Created),
                Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                    // Always read back: besides a lost answer of an earlier attempt here, the
                    // client retries a 5xx answer itself, so a write the server applied but
                    // answered 5xx comes back as "exists". Create-only objects hold a fresh nonce,
                    // so the same bytes mean this writer made them.
                    // An object of another size is another writer's: it is not read.
                    let held = match self.store.get(path).await {
                        Ok(r) if r.meta.size != bytes.len() as u64 => Ok(None),
                        Ok(r) => r.bytes().await.map(Some),
                        Err(e) => Err(e),
                    };
                    return match held {
                        Ok(Some(b)) if b.as_ref() == bytes => Ok(Created::Created),
                        Ok(_) => Ok(Created::AlreadyExists),
                        Err(e) => Err(self.err("reading back", key, &e)),
                    };
                }
                Err(e @ object_store::Error::Generic { .. }) => last = Some(e),
                Err(e) => return Err(self.err("writing (create-only)", key, &e)),
            }
        }
        Err(self.err("writing (create-only)", key, &last.expect("at least one attempt")))
    }
}

/// The error's text with every credential replaced by `[redacted]`.
fn scrub(redact: &[Zeroizing<String>], e: &dyn std::fmt::Display) -> String {
    let mut s = e.to_string();
    for r in redact {
        s = s.replace(r.as_str(), "[redacted]");
    }
    s
}

impl Objects for S3Objects {
    fn get_bounded(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let path = self.path(key, "reading")?;
        self.rt.block_on(async {
            let r = match self.store.get_opts(&path, GetOptions::default()).await {
                Ok(r) => r,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(self.err("reading", key, &e)),
            };
            // The size is the answer's header: an object over the limit is refused before its
            // body is read (dropping the stream closes the connection).
            if r.meta.size > limit {
                return Err(too_large(key, Some(r.meta.size), limit));
            }
            let claimed = r.meta.size.min(8 << 20) as usize;
            let mut body = r.into_stream();
            let mut out = Vec::with_capacity(claimed);
            while let Some(part) = body.next().await {
                let part = part.map_err(|e| self.err("reading", key, &e))?;
                if (out.len() + part.len()) as u64 > limit {
                    return Err(too_large(key, None, limit));
                }
                out.extend_from_slice(&part);
            }
            Ok(Some(out))
        })
    }

    fn head(&self, key: &str) -> Result<Option<u64>> {
        let path = self.path(key, "reading the size of")?;
        self.rt.block_on(async {
            match self.store.head(&path).await {
                Ok(m) => Ok(Some(m.size)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(self.err("reading the size of", key, &e)),
            }
        })
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let doing = format!("reading bytes {}..{} of", range.start, range.end);
        let path = self.path(key, &doing)?;
        if range.start > range.end {
            return Err(Error::remote(format!("{doing} {key} in {}", self.url), "the range is reversed"));
        }
        self.rt.block_on(async {
            let size = self.store.head(&path).await.map_err(|e| self.err(&doing, key, &e))?.size;
            if range.end > size {
                let detail = format!("the object holds {size} bytes");
                return Err(Error::remote(format!("{doing} {key} in {}", self.url), detail));
            }
            if range.is_empty() {
                return Ok(Vec::new());
            }
            let b = self.store.get_range(&path, range.clone()).await.map_err(|e| self.err(&doing, key, &e))?;
            if b.len() as u64 != range.end - range.start {
                let detail = format!("the server sent {} bytes", b.len());
                return Err(Error::remote(format!("{doing} {key} in {}", self.url), detail));
            }
            Ok(b.to_vec())
        })
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(key, "writing")?;
        self.rt.block_on(async {
            if bytes.len() > MULTIPART_THRESHOLD {
                return self.put_parts(&path, key, bytes).await;
            }
            let payload = PutPayload::from(bytes::Bytes::copy_from_slice(bytes));
            self.store.put(&path, payload).await.map(drop).map_err(|e| self.err("writing", key, &e))
        })
    }

    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<Created> {
        let path = self.path(key, "writing (create-only)")?;
        self.rt.block_on(self.create(&path, key, bytes))
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        // object_store lists by directory: list the directory part, keep the keys that match.
        let dir = prefix.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let full = match (self.prefix.is_empty(), dir.is_empty()) {
            (true, _) => dir.to_string(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{dir}", self.prefix),
        };
        let root = Path::parse(&full)
            .map_err(|e| Error::remote(format!("listing {prefix} in {}", self.url), e.to_string()))?;
        let mut out = self.rt.block_on(async {
            let mut s = self.store.list(if full.is_empty() { None } else { Some(&root) });
            let mut out = Vec::new();
            while let Some(m) = s.next().await {
                let m = m.map_err(|e| self.err("listing", prefix, &e))?;
                if let Some(key) = self.relative(&m.location).filter(|k| k.starts_with(prefix)) {
                    out.push(ObjectInfo { key, size: m.size });
                }
            }
            Ok::<_, Error>(out)
        })?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key, "deleting")?;
        self.rt.block_on(async {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(self.err("deleting", key, &e)),
            }
        })
    }
}
