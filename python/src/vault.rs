//! The `Vault` class: one unlocked vault, with `put`, `ls`, `show`, `get`, `download`, `query`,
//! `safe_open` and `load_state_dict`. Each call takes the vault's lock and runs the library
//! operation without the GIL; the lock is only ever taken with the GIL released, so a thread
//! waiting for it never blocks one waiting for the GIL. Lists and dicts are the library's JSON
//! (the same fields as `mvault ... --json`). It must never print, and never hold a passphrase
//! (the library keeps only derived keys, zeroized on `close` or when the object is collected).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use modelvault::{GetOptions, NoProgress, PutOptions, QueryLimits, SqlValue, Unlocked, Vault, parse_spec};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::errors::{VaultError, invalid, to_py};
use crate::tensors::SafeOpen;

/// An open, unlocked vault. Use it as a context manager, or call `close()`, to drop its keys.
#[pyclass(name = "Vault", module = "modelvault", frozen)]
pub struct PyVault {
    inner: RwLock<Option<Vault<Unlocked>>>,
    path: PathBuf,
    read_only: bool,
}

/// What `Vault.put` stored.
#[pyclass(module = "modelvault", frozen, get_all)]
pub struct Version {
    /// Model name.
    pub name: String,
    /// The new version's number (from 1).
    pub version: u64,
    /// Files stored.
    pub files: usize,
    /// Bytes of those files.
    pub bytes: u64,
    /// Chunks newly stored.
    pub new_chunks: u64,
    /// Bytes of plaintext in those new chunks.
    pub new_bytes: u64,
    /// Chunks the vault held already (deduplicated).
    pub reused_chunks: u64,
}

#[pymethods]
impl Version {
    fn __repr__(&self) -> String {
        format!(
            "Version(name={:?}, version={}, files={}, bytes={}, new_chunks={}, new_bytes={}, reused_chunks={})",
            self.name, self.version, self.files, self.bytes, self.new_chunks, self.new_bytes, self.reused_chunks
        )
    }
}

fn closed() -> PyErr {
    VaultError::new_err("the vault is closed")
}

impl PyVault {
    /// Wraps an unlocked vault.
    pub fn new(v: Vault<Unlocked>) -> Self {
        let path = v.path().to_path_buf();
        let read_only = v.is_read_only();
        PyVault { inner: RwLock::new(Some(v)), path, read_only }
    }

    /// Runs `f` on the vault without the GIL, beside other readers.
    pub fn read<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&Vault<Unlocked>) -> modelvault::Result<T> + Send,
    ) -> PyResult<T> {
        py.detach(|| {
            let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
            f(g.as_ref().ok_or_else(closed)?).map_err(to_py)
        })
    }

    /// Runs `f` on the vault without the GIL, alone.
    fn write<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Vault<Unlocked>) -> modelvault::Result<T> + Send,
    ) -> PyResult<T> {
        py.detach(|| {
            let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
            f(g.as_mut().ok_or_else(closed)?).map_err(to_py)
        })
    }

    /// Hands the warnings the vault kept (say, of a write) to Python's `warnings`.
    fn warn_kept(&self, py: Python<'_>) -> PyResult<()> {
        let kept = self.read(py, |v| Ok(v.take_warnings()))?;
        warn_all(py, &kept)
    }
}

/// Issues each of `msgs` as a `UserWarning`.
pub fn warn_all(py: Python<'_>, msgs: &[String]) -> PyResult<()> {
    let warnings = py.import("warnings")?;
    for m in msgs {
        warnings.call_method1("warn", (m.as_str(),))?;
    }
    Ok(())
}

/// `value` as Python objects, through its JSON form.
pub fn to_python<'py>(py: Python<'py>, value: &impl serde::Serialize) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value).map_err(|e| VaultError::new_err(format!("encoding a result: {e}")))?;
    py.import("json")?.call_method1("loads", (text,))
}

#[pymethods]
impl PyVault {
    /// Stores the file or directory at `path` as a new version of model `name` and returns what
    /// was stored. Pickles are scanned as by `mvault put`: one that can run code raises
    /// UnsafePickle unless its globals are in `allow` or `allow_unsafe_pickle` is true.
    ///
    /// Raises: InvalidInput (bad name, alias, tag or path), UnsafePickle, NotFound, VaultError
    /// (a read-only vault, I/O).
    #[pyo3(signature = (path, name, *, aliases=None, tags=None, metrics=None, description=String::new(), allow_unsafe_pickle=false, allow=None))]
    #[allow(clippy::too_many_arguments)]
    fn put(
        &self,
        py: Python<'_>,
        path: PathBuf,
        name: String,
        aliases: Option<Vec<String>>,
        tags: Option<BTreeMap<String, String>>,
        metrics: Option<BTreeMap<String, f64>>,
        description: String,
        allow_unsafe_pickle: bool,
        allow: Option<Vec<String>>,
    ) -> PyResult<Version> {
        let opts = PutOptions {
            aliases: aliases.unwrap_or_default(),
            tags: tags.unwrap_or_default(),
            metrics: metrics.unwrap_or_default(),
            description,
            allow_unsafe_pickle,
            allow_globals: allow.unwrap_or_default(),
            ..Default::default()
        };
        let r = self.write(py, |v| v.put(&path, &name, &opts, &NoProgress))?;
        self.warn_kept(py)?;
        Ok(Version {
            name: r.name,
            version: r.version,
            files: r.files,
            bytes: r.bytes,
            new_chunks: r.new_chunks,
            new_bytes: r.new_bytes,
            reused_chunks: r.reused_chunks,
        })
    }

    /// Adds key slot `name`, opened by the private key of any of `recipients` (age X25519
    /// recipients `age1…`, or SSH public key lines `ssh-ed25519 …` / `ssh-rsa …`), as
    /// `mvault key add NAME --recipient R…` does. No private key is needed.
    ///
    /// Raises: InvalidInput (a recipient that does not parse, none or more than 64, a bad or
    /// existing slot name, an unfinished rotation), VaultError (a read-only vault).
    fn add_recipient_slot(&self, py: Python<'_>, name: String, recipients: Vec<String>) -> PyResult<()> {
        self.write(py, |v| {
            let parsed = recipients.iter().map(|r| modelvault::Recipient::parse(r)).collect::<Result<Vec<_>, _>>()?;
            v.add_recipient_slot(&name, &parsed)
        })
    }

    /// The key slots, each a dict as `mvault key list --json` prints them: `name`, `kind`
    /// ("passphrase" or "recipient"), `epoch`, `argon2` (a dict, or None for a recipient slot),
    /// `recipients` (public keys; empty for a passphrase slot), `created` (Unix seconds),
    /// `in_use` (the slot this handle was unlocked with) and `rotating`.
    ///
    /// Raises: TamperedData (a slot record that does not decode), VaultError.
    fn key_slots<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let slots = self.read(py, |v| v.list_slots())?;
        to_python(py, &slots)
    }

    /// The log, oldest entry first, each a dict as `mvault log --json` prints it: `seq`, `time`
    /// (Unix seconds), `op`, `slot`, `model`, `versions`, `detail`, `erased`.
    ///
    /// Raises: TamperedData (an entry that does not open), VaultError.
    fn log<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let entries = self.read(py, |v| v.log_entries())?;
        to_python(py, &entries)
    }

    /// A signed checkpoint of the log (a C2SP signed note, as `mvault log checkpoint` prints it),
    /// or None when the log has not begun.
    ///
    /// Raises: TamperedData, VaultError.
    fn log_checkpoint(&self, py: Python<'_>) -> PyResult<Option<String>> {
        self.read(py, |v| v.log_checkpoint())
    }

    /// Checks the log (as `mvault log verify` does), and with `since` (a checkpoint's text) that
    /// the log extends it. Returns a dict: `size`, `root`, `since`, `problems` (sentences; empty
    /// when the log holds).
    ///
    /// Raises: InvalidInput (`since` is not a checkpoint of this vault), TamperedData (its
    /// signature does not verify), VaultError.
    #[pyo3(signature = (since=None))]
    fn verify_log<'py>(&self, py: Python<'py>, since: Option<String>) -> PyResult<Bound<'py, PyAny>> {
        let r = self.read(py, |v| v.verify_log(since.as_deref().map(str::as_bytes)))?;
        to_python(py, &r)
    }

    /// The models (all, or the one named), each a dict with its versions, as `mvault ls --json`
    /// lists them under "models". Records that could not be read are skipped with a warning.
    ///
    /// Raises: NotFound (no such model), TamperedData, VaultError.
    #[pyo3(signature = (name=None))]
    fn ls<'py>(&self, py: Python<'py>, name: Option<String>) -> PyResult<Bound<'py, PyAny>> {
        let l = self.read(py, |v| v.list(name.as_deref()))?;
        warn_all(py, &l.problems.iter().map(|p| format!("damaged: {p}")).collect::<Vec<_>>())?;
        to_python(py, &l.models)
    }

    /// One version in full (`NAME`, `NAME@N` or `NAME@ALIAS`), as `mvault show --json` prints it.
    ///
    /// Raises: NotFound, TamperedData, InvalidInput (a bad reference).
    fn show<'py>(&self, py: Python<'py>, r#ref: &str) -> PyResult<Bound<'py, PyAny>> {
        let (name, r) = parse_spec(r#ref).map_err(to_py)?;
        let info = self.read(py, |v| v.show(&name, &r))?;
        to_python(py, &info)
    }

    /// Writes every file of the version into the directory `dest`, each checked against its
    /// SHA-256 before it gets its name; returns the paths written.
    ///
    /// Raises: NotFound, TamperedData, InvalidInput (a file exists, without `force`), VaultError.
    #[pyo3(signature = (r#ref, dest, *, force=false))]
    fn get(&self, py: Python<'_>, r#ref: &str, dest: PathBuf, force: bool) -> PyResult<Vec<PathBuf>> {
        let (name, r) = parse_spec(r#ref).map_err(to_py)?;
        let rep = self.read(py, |v| v.get(&name, &r, &dest, &GetOptions { force }, &NoProgress))?;
        Ok(rep.files)
    }

    /// Writes one file of the version to `local_dir/filename` (`local_dir` defaults to the
    /// current directory) and returns its path, like `huggingface_hub.hf_hub_download`. The
    /// file is written under a temporary name and renamed once its SHA-256 matches, replacing a
    /// file of that name.
    ///
    /// Raises: NotFound (no such file), TamperedData, InvalidInput (a path that leaves
    /// `local_dir`), VaultError.
    #[pyo3(signature = (r#ref, filename, local_dir=None))]
    fn download(&self, py: Python<'_>, r#ref: &str, filename: &str, local_dir: Option<PathBuf>) -> PyResult<PathBuf> {
        let (name, r) = parse_spec(r#ref).map_err(to_py)?;
        let parts = modelvault::names::check_file_path(filename).map_err(to_py)?;
        let mut target = local_dir.unwrap_or_else(|| PathBuf::from("."));
        target.extend(&parts);
        self.read(py, |v| download_to(v, &name, &r, filename, &target))?;
        Ok(target)
    }

    /// Runs one read-only SQL query over the vault's metadata (the tables of `mvault query`) and
    /// returns its rows as dicts, column name to value (None, int, float, str or bytes).
    ///
    /// Raises: InvalidInput (bad SQL, a limit reached), TamperedData, VaultError.
    #[pyo3(signature = (sql, *, max_seconds=None, max_memory_mib=None))]
    fn query<'py>(
        &self,
        py: Python<'py>,
        sql: &str,
        max_seconds: Option<f64>,
        max_memory_mib: Option<u64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let d = QueryLimits::default();
        let limits = QueryLimits {
            max_seconds: max_seconds.unwrap_or(d.max_seconds),
            max_memory_mib: max_memory_mib.unwrap_or(d.max_memory_mib),
        };
        let res = self.read(py, |v| v.query_limited(sql, limits))?;
        warn_all(py, &res.problems.iter().map(|p| format!("damaged: {p}")).collect::<Vec<_>>())?;
        let rows = PyList::empty(py);
        for row in &res.rows {
            let d = PyDict::new(py);
            for (c, val) in res.columns.iter().zip(row) {
                d.set_item(c, sql_value(py, val)?)?;
            }
            rows.append(d)?;
        }
        Ok(rows)
    }

    /// The safetensors files of a version, opened for tensor access like `safetensors.safe_open`
    /// (see `SafeOpen`); `file` picks one file of the version, otherwise the tensors of all its
    /// safetensors files are offered together (shards).
    ///
    /// Raises: NotFound, TamperedData, InvalidInput (no safetensors file; an unknown framework).
    #[pyo3(signature = (r#ref, framework="numpy", *, file=None))]
    fn safe_open(slf: &Bound<'_, Self>, r#ref: &str, framework: &str, file: Option<String>) -> PyResult<SafeOpen> {
        SafeOpen::new(slf, r#ref, framework, file)
    }

    /// Every tensor of the version's safetensors files, name to array (`framework="numpy"`) or
    /// torch tensor (`"pt"`, when torch is installed).
    ///
    /// Raises: as `safe_open` and `SafeOpen.get_tensor`.
    #[pyo3(signature = (r#ref, framework="numpy", *, file=None))]
    fn load_state_dict<'py>(
        slf: &Bound<'py, Self>,
        r#ref: &str,
        framework: &str,
        file: Option<String>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let f = SafeOpen::new(slf, r#ref, framework, file)?;
        let out = PyDict::new(slf.py());
        for k in f.names() {
            out.set_item(k, f.tensor(slf.py(), k)?)?;
        }
        Ok(out)
    }

    /// Drops the vault's keys and closes its file; later calls raise VaultError.
    fn close(&self, py: Python<'_>) {
        py.detach(|| {
            let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
            *g = None;
        })
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close(py);
        false
    }

    /// The vault file.
    #[getter]
    fn path(&self) -> &Path {
        &self.path
    }

    /// True when opened read-only (every write raises VaultError).
    #[getter]
    fn read_only(&self) -> bool {
        self.read_only
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let open = py.detach(|| self.inner.read().unwrap_or_else(|e| e.into_inner()).is_some());
        format!(
            "<modelvault.Vault path={:?} read_only={} {}>",
            self.path.display().to_string(),
            if self.read_only { "True" } else { "False" },
            if open { "open" } else { "closed" }
        )
    }
}

/// A query cell as a Python value.
fn sql_value<'py>(py: Python<'py>, v: &SqlValue) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        SqlValue::Null => py.None().into_bound(py),
        SqlValue::Integer(i) => i.into_pyobject(py)?.into_any(),
        SqlValue::Real(f) => f.into_pyobject(py)?.into_any(),
        SqlValue::Text(s) => s.into_pyobject(py)?.into_any(),
        SqlValue::Blob(b) => PyBytes::new(py, b).into_any(),
    })
}

/// Streams file `filename` of `name@r` into a temporary file beside `target` (created with
/// O_EXCL, mode 0600), then renames it to `target` once `cat` has checked its SHA-256.
fn download_to(
    v: &Vault<Unlocked>,
    name: &str,
    r: &modelvault::VersionRef,
    filename: &str,
    target: &Path,
) -> modelvault::Result<()> {
    let io = |what: String| move |e| modelvault::Error::Io { context: what, source: e };
    let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let leaf = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{leaf}.mvault-tmp-{:016x}", temp_suffix()));
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    let mut f = open.open(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
    let res = v.cat(name, r, Some(filename), &mut f, &NoProgress).and_then(|()| {
        f.flush().map_err(io(format!("writing {}", tmp.display())))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::Permissions::from_mode(modelvault::ops::outfile::output_mode());
            f.set_permissions(mode).map_err(io(format!("setting the mode of {}", tmp.display())))?;
        }
        std::fs::rename(&tmp, target).map_err(io(format!("renaming {} to {}", tmp.display(), target.display())))
    });
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// A temporary name's suffix: the time in nanoseconds and the process id (the file is created
/// with O_EXCL, so a clash fails instead of sharing a file).
fn temp_suffix() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    (t as u64) ^ ((std::process::id() as u64) << 48)
}

/// Raised for an unknown framework name.
pub fn check_framework(framework: &str) -> PyResult<()> {
    match framework {
        "numpy" | "np" | "pt" | "torch" => Ok(()),
        other => Err(invalid(format!("framework={other:?}: use \"numpy\" or \"pt\""))),
    }
}
