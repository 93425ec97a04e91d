//! `modelvault._native`: the Python package's extension module over the `modelvault` library.
//! This file owns the module's contents and the two ways in, `open` and `create`; the vault
//! handle is in `vault`, the safetensors-style tensor access in `tensors`, passphrases in
//! `secret`, the exceptions in `errors`. Every vault operation runs without the GIL
//! (`Python::detach`), so other Python threads keep running while chunks are decrypted. It must
//! never write a plaintext file except where the caller asked for files (`get`, `download`),
//! never shell out to `mvault`, and never put a passphrase into a repr, a message or a log.

mod errors;
mod secret;
mod tensors;
mod vault;

use std::path::PathBuf;
use std::time::Duration;

use modelvault::{Argon2Params, CreateOptions, Identities, OpenOptions, Vault};
use pyo3::prelude::*;

use crate::errors::{invalid, to_py};
use crate::vault::PyVault;

/// Opens the vault file at `path` and unlocks it.
///
/// The passphrase comes from `passphrase_file` (its bytes less one trailing newline, as
/// `mvault --passphrase-file` reads it), or from `passphrase` (bytes or str), or, when neither
/// is given, from a `getpass` prompt. The copy this module makes is zeroized once the vault is
/// unlocked; a Python `bytes` or `str` you pass stays in Python's memory until it is collected,
/// so prefer a file. Opening as a writer (the default) fails with `VaultInUse` while another
/// process writes the vault (after retrying for `wait` seconds); `read_only=True` opens beside a
/// writer and refuses every write. Unlocking turns core dumps off for the whole process.
///
/// With `identity_file` (an age identity file or an unprotected OpenSSH private key, as
/// `mvault --identity` reads it), the vault is unlocked by a recipient key slot instead, and no
/// passphrase may be given. The key is read and kept by the library in zeroizing memory; no
/// Python object ever holds it.
///
/// The vault's log is checked against the newest checkpoint this user has seen of it (in
/// `$MVAULT_STATE_DIR`, else `$XDG_STATE_HOME/modelvault`, else `~/.local/state/modelvault`,
/// as `mvault` does), and the newest is remembered there: a vault older than it (a copy put
/// back) raises TamperedData unless `accept_rollback=True`, which warns instead. A state
/// directory that cannot be read or written is a warning.
///
/// Raises: NotFound (no vault at `path`), WrongPassphrase (no slot opens with the passphrase or
/// the identity), VaultInUse, TamperedData (not a vault, a damaged one, or one rolled back),
/// InvalidInput (also a passphrase given with `identity_file`, or an identity file that holds no
/// usable key), VaultError.
#[pyfunction]
#[pyo3(signature = (path, passphrase_file=None, passphrase=None, *, slot=None, read_only=false, wait=None, identity_file=None, accept_rollback=false))]
#[allow(clippy::too_many_arguments)]
fn open(
    py: Python<'_>,
    path: PathBuf,
    passphrase_file: Option<PathBuf>,
    passphrase: Option<&Bound<'_, PyAny>>,
    slot: Option<String>,
    read_only: bool,
    wait: Option<f64>,
    identity_file: Option<PathBuf>,
    accept_rollback: bool,
) -> PyResult<PyVault> {
    let wait = match wait {
        None => None,
        Some(s) if (0.0..=86_400.0).contains(&s) => Some(Duration::from_secs_f64(s)),
        Some(s) => return Err(invalid(format!("wait={s}: give a number of seconds from 0 to 86400"))),
    };
    secret::check_one(passphrase_file.as_deref(), passphrase)?;
    let opts = OpenOptions { wait, read_only };
    if let Some(id) = identity_file {
        if passphrase_file.is_some() || passphrase.is_some() {
            return Err(invalid(
                "identity_file unlocks by a private key: give it without passphrase_file or passphrase",
            ));
        }
        let v = py
            .detach(|| {
                let ids = Identities::from_file(&id)?;
                Vault::open(&path, &opts)?.unlock_identity(&ids, slot.as_deref())
            })
            .map_err(to_py)?;
        return checked(py, v, accept_rollback);
    }
    let locked = py.detach(|| Vault::open(&path, &opts)).map_err(to_py)?;
    locked.check_passphrase_unlock(slot.as_deref()).map_err(to_py)?;
    let pass = secret::obtain(py, &path, passphrase_file.as_deref(), passphrase)?;
    let v = py
        .detach(|| match &slot {
            Some(s) => locked.unlock_slot(s, &pass),
            None => locked.unlock(&pass),
        })
        .map_err(to_py)?;
    drop(pass);
    checked(py, v, accept_rollback)
}

/// The rollback check of [`open`]: an error for a rollback not accepted, a warning for one
/// accepted or for a state directory that does not serve.
fn checked(py: Python<'_>, v: Vault<modelvault::Unlocked>, accept_rollback: bool) -> PyResult<PyVault> {
    let Some(dir) = modelvault::log::memory::default_dir() else {
        crate::vault::warn_all(
            py,
            &["no state directory (set MVAULT_STATE_DIR or HOME): this vault is not checked for rollback".into()],
        )?;
        return Ok(PyVault::new(v));
    };
    match py.detach(|| v.check_rollback(&dir, accept_rollback)) {
        Ok(modelvault::ops::log::RollbackCheck::Accepted(what)) => {
            crate::vault::warn_all(py, &[format!("accepting a rollback as told: {what}")])?
        }
        Ok(_) => {}
        Err(e) if matches!(e.base(), modelvault::Error::Damaged(_)) => return Err(to_py(e)),
        Err(e) => crate::vault::warn_all(py, &[format!("this vault was not checked for rollback: {e}")])?,
    }
    Ok(PyVault::new(v))
}

/// Creates a new vault at `path` (which must not exist) with one key slot for the passphrase
/// (given as for `open`), and returns it unlocked. The Argon2id cost defaults to RFC 9106's
/// (64 MiB, 3 passes, 4 lanes); tests pass smaller values.
///
/// Raises: InvalidInput (a file exists at `path`, bad Argon2 parameters or slot name), VaultError.
#[pyfunction]
#[pyo3(signature = (path, passphrase_file=None, passphrase=None, *, slot="default", argon2_memory_kib=None, argon2_time_cost=None, argon2_lanes=None))]
#[allow(clippy::too_many_arguments)]
fn create(
    py: Python<'_>,
    path: PathBuf,
    passphrase_file: Option<PathBuf>,
    passphrase: Option<&Bound<'_, PyAny>>,
    slot: &str,
    argon2_memory_kib: Option<u32>,
    argon2_time_cost: Option<u32>,
    argon2_lanes: Option<u32>,
) -> PyResult<PyVault> {
    let d = Argon2Params::default();
    let argon2 = Argon2Params {
        memory_kib: argon2_memory_kib.unwrap_or(d.memory_kib),
        time_cost: argon2_time_cost.unwrap_or(d.time_cost),
        lanes: argon2_lanes.unwrap_or(d.lanes),
    };
    let opts = CreateOptions { argon2, slot_name: slot.to_string() };
    let pass = secret::obtain(py, &path, passphrase_file.as_deref(), passphrase)?;
    let v = py.detach(|| Vault::create(&path, &pass, &opts)).map_err(to_py)?;
    drop(pass);
    Ok(PyVault::new(v))
}

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(open, m)?)?;
    m.add_function(wrap_pyfunction!(create, m)?)?;
    m.add_class::<PyVault>()?;
    m.add_class::<vault::Version>()?;
    m.add_class::<tensors::SafeOpen>()?;
    m.add_class::<tensors::TensorSlice>()?;
    errors::register(m)?;
    Ok(())
}
