//! Where a passphrase comes from: a file, bytes given by the caller, or a `getpass` prompt. The
//! bytes are copied once into a zeroizing buffer that becomes the library's `Passphrase` (wiped
//! on drop, after unlock). It must never keep, print or put a passphrase into an error; a file is
//! read like `mvault --passphrase-file` reads one (one trailing newline removed, at most 64 KiB).

use std::io::Read;
use std::path::Path;

use modelvault::Passphrase;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyString};
use zeroize::Zeroizing;

use crate::errors::{invalid, to_py};

/// Longest passphrase read from a file (64 KiB), as the command line allows.
const MAX_PASSPHRASE_BYTES: u64 = 64 * 1024;

/// Refuses a passphrase given both ways, before anything is opened.
pub fn check_one(file: Option<&Path>, given: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    if file.is_some() && given.is_some() {
        return Err(invalid("give passphrase_file or passphrase, not both"));
    }
    Ok(())
}

/// The passphrase from exactly one of `file`, `given` (bytes, bytearray or str) or, with
/// neither, a `getpass` prompt naming `vault`.
///
/// Errors: `InvalidInput` when both are given, for a value of another type, an empty passphrase
/// or a file that is too long; `VaultError` when the file cannot be read.
pub fn obtain(
    py: Python<'_>,
    vault: &Path,
    file: Option<&Path>,
    given: Option<&Bound<'_, PyAny>>,
) -> PyResult<Passphrase> {
    let bytes = match (file, given) {
        (Some(_), Some(_)) => return Err(invalid("give passphrase_file or passphrase, not both")),
        (Some(f), None) => read_file(f)?,
        (None, Some(g)) => from_value(g)?,
        (None, None) => {
            let prompt = format!("Passphrase for {}: ", vault.display());
            let answer = py.import("getpass")?.call_method1("getpass", (prompt,))?;
            from_value(&answer)?
        }
    };
    Passphrase::new(bytes).map_err(|_| invalid("the passphrase is empty"))
}

/// A copy of the bytes of a `bytes`, `bytearray` or `str` (UTF-8) value.
fn from_value(v: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = v.cast::<PyBytes>() {
        Ok(b.as_bytes().to_vec())
    } else if let Ok(b) = v.cast::<PyByteArray>() {
        Ok(b.to_vec())
    } else if let Ok(s) = v.cast::<PyString>() {
        Ok(s.to_str()?.as_bytes().to_vec())
    } else {
        Err(invalid("the passphrase must be bytes or str"))
    }
}

/// The passphrase in `path`, less one trailing `\n` or `\r\n`.
fn read_file(path: &Path) -> PyResult<Vec<u8>> {
    let what = path.display();
    let f = std::fs::File::open(path).map_err(|e| {
        to_py(modelvault::Error::Io { context: format!("opening the passphrase file {what}"), source: e })
    })?;
    // Room for the whole limit up front: no reallocation leaves a copy behind.
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_PASSPHRASE_BYTES as usize + 1));
    f.take(MAX_PASSPHRASE_BYTES + 1).read_to_end(&mut buf).map_err(|e| {
        to_py(modelvault::Error::Io { context: format!("reading the passphrase file {what}"), source: e })
    })?;
    if buf.len() as u64 > MAX_PASSPHRASE_BYTES {
        return Err(invalid(format!(
            "the passphrase file {what} is longer than {MAX_PASSPHRASE_BYTES} bytes: is it the right file?"
        )));
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    Ok(std::mem::take(&mut *buf))
}
