//! The storage engine's failure, kept whole as the source of [`crate::Error::Storage`]: its kind
//! is matched on (never its text) and its message is shown as the error's detail. This module
//! must never turn a storage failure into text only, and keeps the engine's error type out of
//! public signatures.

/// What kind of storage failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// An earlier write of this handle failed with an I/O error; the engine refuses every later
    /// operation until the file is opened again. The earlier error is the one to report.
    PreviousIo,
    /// The operating system failed a read or write (a full disk among them).
    Io,
    /// The file is damaged: the engine found a corrupt page, or a page it needed lies past the
    /// end of the file (a truncated file reads as an I/O error of kind `UnexpectedEof`).
    Corrupt,
    /// Anything else: a corrupt page, a table of an unexpected type, a value too large.
    Other,
}

/// A storage engine error (for the redb file: the engine's own error, boxed).
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    source: Box<redb::Error>,
}

impl StoreError {
    /// The kind of failure.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

impl<E: Into<redb::Error>> From<E> for StoreError {
    fn from(e: E) -> Self {
        let e: redb::Error = e.into();
        let kind = match &e {
            redb::Error::PreviousIo => StoreErrorKind::PreviousIo,
            redb::Error::Corrupted(_) => StoreErrorKind::Corrupt,
            redb::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => StoreErrorKind::Corrupt,
            redb::Error::Io(_) => StoreErrorKind::Io,
            _ => StoreErrorKind::Other,
        };
        StoreError { kind, source: Box::new(e) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kind is read from the engine's error, and the message is the engine's, unchanged.
    #[test]
    fn kind_and_message_come_from_the_engine_error() {
        let e = StoreError::from(redb::StorageError::PreviousIo);
        assert_eq!(e.kind(), StoreErrorKind::PreviousIo);
        assert_eq!(e.to_string(), redb::Error::PreviousIo.to_string());
        let io = StoreError::from(redb::StorageError::Io(std::io::Error::other("disk full")));
        assert_eq!(io.kind(), StoreErrorKind::Io);
        let short = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "failed to fill whole buffer");
        assert_eq!(StoreError::from(redb::StorageError::Io(short)).kind(), StoreErrorKind::Corrupt);
        let bad = StoreError::from(redb::StorageError::Corrupted("bad page".into()));
        assert_eq!(bad.kind(), StoreErrorKind::Corrupt);
        let t = StoreError::from(redb::TableError::TableDoesNotExist("x".into()));
        assert_eq!(t.kind(), StoreErrorKind::Other);
        assert!(std::error::Error::source(&e).is_some());
    }
}
