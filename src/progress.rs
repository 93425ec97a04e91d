//! Progress reporting from long operations. The library never prints; it calls a [`Progress`]
//! implementation, which the CLI backs with a progress bar on a terminal.

/// Receives progress events. All methods default to doing nothing.
pub trait Progress: Sync {
    /// A phase starts; `total_bytes` is its size in bytes (0 if unknown).
    fn begin(&self, _label: &str, _total_bytes: u64) {}
    /// `bytes` more bytes are done.
    fn advance(&self, _bytes: u64) {}
    /// The phase ended.
    fn end(&self) {}
    /// A warning the user should see (e.g. a key near its usage limit); `message` has no
    /// `warning:` prefix and no newline. The library never prints it itself.
    fn warn(&self, _message: &str) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}
