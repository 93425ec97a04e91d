//! The package's exceptions and the one mapping from a library error to them. The classes mirror
//! the `mvault` exit codes (README, "Exit codes"): each carries the code as `exit_code`, and the
//! mapping reads the library error's kind through `Error::base`, as the command line does, never
//! its message. It must never put a passphrase or key material into a message: messages are the
//! library's own, which never hold a secret.

use modelvault::Error;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(modelvault, VaultError, PyException, "Any error of a vault operation (exit code 1 of mvault).");
create_exception!(modelvault, WrongPassphrase, VaultError, "No key slot opened with the passphrase (exit code 3).");
create_exception!(modelvault, VaultInUse, VaultError, "Another process writes the vault (exit code 4).");
create_exception!(
    modelvault,
    NotFound,
    VaultError,
    "No such vault, model, version, alias, file or tensor (exit code 5)."
);
create_exception!(
    modelvault,
    TamperedData,
    VaultError,
    "A record, chunk or signature failed its check: the vault is damaged or was tampered with (exit code 6)."
);
create_exception!(
    modelvault,
    UntrustedSigner,
    TamperedData,
    "A version is signed by a key other than the one required (exit code 9)."
);
create_exception!(modelvault, InvalidInput, VaultError, "A bad argument, name, file or option value (exit code 7).");
create_exception!(modelvault, UnsafePickle, VaultError, "A pickle that can run code was refused (exit code 8).");

/// The exception class for `e` and the `mvault` exit code it stands for, as src/cli/exit.rs
/// maps them.
fn class<'py>(py: Python<'py>, e: &Error) -> (Bound<'py, pyo3::types::PyType>, i32) {
    match e.base() {
        Error::WrongPassphrase | Error::WrongIdentity(_) | Error::UnlockLimit(_) => {
            (py.get_type::<WrongPassphrase>(), 3)
        }
        Error::VaultInUse(_) => (py.get_type::<VaultInUse>(), 4),
        Error::VaultNotFound(_) | Error::ModelNotFound(_) | Error::VersionNotFound { .. } | Error::NotFound(_) => {
            (py.get_type::<NotFound>(), 5)
        }
        Error::UntrustedSigner { .. } => (py.get_type::<UntrustedSigner>(), 9),
        Error::Damaged(_) | Error::BadSignature { .. } | Error::KeySlotDamaged(_) | Error::NotAVault { .. } => {
            (py.get_type::<TamperedData>(), 6)
        }
        Error::InvalidName { .. }
        | Error::InvalidInput(_)
        | Error::OutputExists(_)
        | Error::VaultExists(_)
        | Error::UnsupportedVersion { .. } => (py.get_type::<InvalidInput>(), 7),
        Error::UnsafePickle { .. } => (py.get_type::<UnsafePickle>(), 8),
        _ => (py.get_type::<VaultError>(), 1),
    }
}

/// The Python exception for a library error: its class by kind, its message the library's.
pub fn to_py(e: Error) -> PyErr {
    Python::attach(|py| {
        let (cls, _) = class(py, &e);
        PyErr::from_type(cls, e.to_string())
    })
}

/// An [`InvalidInput`] with `msg`.
pub fn invalid(msg: impl Into<String>) -> PyErr {
    InvalidInput::new_err(msg.into())
}

/// Adds the exception classes to the module, each with its `exit_code`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let classes = [
        (py.get_type::<VaultError>(), 1),
        (py.get_type::<WrongPassphrase>(), 3),
        (py.get_type::<VaultInUse>(), 4),
        (py.get_type::<NotFound>(), 5),
        (py.get_type::<TamperedData>(), 6),
        (py.get_type::<InvalidInput>(), 7),
        (py.get_type::<UnsafePickle>(), 8),
        (py.get_type::<UntrustedSigner>(), 9),
    ];
    for (cls, code) in classes {
        cls.setattr("exit_code", code)?;
        m.add(cls.name()?, cls)?;
    }
    Ok(())
}
