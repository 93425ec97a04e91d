//! The safetensors surface over a version: `SafeOpen` (what `safetensors.safe_open` returns:
//! `keys()`, `metadata()`, `get_tensor(name)`, `get_slice(name)`) and `TensorSlice`. The tensor
//! index comes from the signed manifest; `metadata()` from the file's own header, read through
//! the vault. A tensor is decrypted straight into one Python-owned `bytearray` of its size,
//! without the GIL, and wrapped by `modelvault._frameworks` as a numpy array or torch tensor
//! over that buffer (no copy). It must never write a file nor hold more than the tensor asked
//! for and one decrypted chunk; it never hands out a byte of a chunk that failed its check.

use std::collections::BTreeMap;
use std::sync::Arc;

use modelvault::formats::tensor::TensorInfo;
use modelvault::manifest::Manifest;
use modelvault::{Error, parse_spec};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyDict};

use crate::errors::{NotFound, invalid, to_py};
use crate::vault::{PyVault, check_framework};

/// Longest safetensors header read for `metadata()` (100 MB, the safetensors crate's limit).
const MAX_HEADER: u64 = 100_000_000;

/// One tensor: the file of the version holding it and its index entry.
struct Entry {
    file: String,
    info: TensorInfo,
}

/// The safetensors files of one version, opened for tensor access (use it in a `with`
/// statement, as with `safetensors.safe_open`).
#[pyclass(module = "modelvault", frozen)]
pub struct SafeOpen {
    vault: Py<PyVault>,
    manifest: Arc<Manifest>,
    spec: String,
    framework: String,
    tensors: BTreeMap<String, Entry>,
    metadata: Option<BTreeMap<String, String>>,
}

impl SafeOpen {
    /// Opens `spec` of `vault`: loads and checks its manifest, indexes the tensors of its
    /// safetensors files (or of `file` only) and reads the `__metadata__` of their headers.
    pub fn new(vault: &Bound<'_, PyVault>, spec: &str, framework: &str, file: Option<String>) -> PyResult<Self> {
        check_framework(framework)?;
        let py = vault.py();
        let (name, r) = parse_spec(spec).map_err(to_py)?;
        let v = vault.get();
        let m = v.read(py, |v| v.manifest(&name, &r))?;
        let shown = format!("{}@{}", modelvault::names::escape(&m.name), m.version);
        let files: Vec<&modelvault::manifest::FileEntry> = match &file {
            Some(p) => vec![m.files.iter().find(|f| &f.path == p).ok_or_else(|| {
                to_py(Error::NotFound(format!("{shown} has no file '{}'", modelvault::names::escape(p))))
            })?],
            None => m.files.iter().filter(|f| f.format == "safetensors").collect(),
        };
        if files.is_empty() || files.iter().any(|f| f.format != "safetensors") {
            return Err(invalid(format!(
                "{shown} has no safetensors file{}",
                file.map(|p| format!(" '{p}'")).unwrap_or_default()
            )));
        }
        let mut tensors = BTreeMap::new();
        let mut metadata: Option<BTreeMap<String, String>> = None;
        for f in &files {
            for t in &f.tensors {
                if tensors.insert(t.name.clone(), Entry { file: f.path.clone(), info: t.clone() }).is_some() {
                    return Err(invalid(format!(
                        "tensor '{}' is in more than one file of {shown}: choose one with file=",
                        modelvault::names::escape(&t.name)
                    )));
                }
            }
            if let Some(md) = v.read(py, |v| header_metadata(v, &m, &f.path, f.size))? {
                metadata.get_or_insert_with(BTreeMap::new).extend(md);
            }
        }
        let manifest = Arc::new(m);
        Ok(SafeOpen {
            vault: vault.clone().unbind(),
            manifest,
            spec: shown,
            framework: framework.into(),
            tensors,
            metadata,
        })
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.tensors.keys().map(String::as_str).collect()
    }

    fn entry(&self, name: &str) -> PyResult<&Entry> {
        self.tensors.get(name).ok_or_else(|| {
            NotFound::new_err(format!("{} has no tensor '{}'", self.spec, modelvault::names::escape(name)))
        })
    }

    /// Bytes `[start, start + len)` of tensor `e`'s data decrypted into a new bytearray, without
    /// the GIL.
    fn read_bytes<'py>(&self, py: Python<'py>, e: &Entry, start: u64, len: u64) -> PyResult<Bound<'py, PyByteArray>> {
        let len =
            usize::try_from(len).map_err(|_| invalid("the tensor is larger than this machine's address space"))?;
        let buf = PyByteArray::new_with(py, len, |_| Ok(()))?;
        // SAFETY: `buf` was just created here and no other reference to it exists (it has not
        // been handed to Python code yet), so nothing can resize or read it while the GIL is
        // released; the slice is dropped before `buf` is returned.
        let bytes: &mut [u8] = unsafe { buf.as_bytes_mut() };
        let (m, file, at) = (&self.manifest, e.file.as_str(), e.info.offset + start);
        self.vault.get().read(py, |v| v.read_range(m, file, at, bytes))?;
        Ok(buf)
    }

    /// Tensor `name` as an array of the framework.
    pub fn tensor<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let e = self.entry(name)?;
        let buf = self.read_bytes(py, e, 0, e.info.len)?;
        wrap(py, &buf, &e.info.dtype, &e.info.shape, &self.framework)
    }
}

/// `buf` as an array of `framework` with `dtype` and `shape` (by `modelvault._frameworks`).
fn wrap<'py>(
    py: Python<'py>,
    buf: &Bound<'py, PyByteArray>,
    dtype: &str,
    shape: &[u64],
    framework: &str,
) -> PyResult<Bound<'py, PyAny>> {
    py.import("modelvault._frameworks")?.call_method1("to_array", (buf, dtype, shape.to_vec(), framework))
}

/// The `__metadata__` of the safetensors header of `path` (`size` bytes): read through the
/// vault, bounded by the file's size and [`MAX_HEADER`].
fn header_metadata(
    v: &modelvault::Vault<modelvault::Unlocked>,
    m: &Manifest,
    path: &str,
    size: u64,
) -> modelvault::Result<Option<BTreeMap<String, String>>> {
    let bad = |why: &str| Error::Damaged(format!("{}@{} file '{path}': {why}", m.name, m.version));
    let mut n = [0u8; 8];
    v.read_range(m, path, 0, &mut n)?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER || n > size.saturating_sub(8) {
        return Err(bad("its safetensors header length is out of bounds"));
    }
    let mut head = vec![0u8; n as usize];
    v.read_range(m, path, 8, &mut head)?;
    let json: serde_json::Value =
        serde_json::from_slice(&head).map_err(|_| bad("its safetensors header is not JSON"))?;
    let Some(md) = json.get("__metadata__") else { return Ok(None) };
    let md: BTreeMap<String, String> =
        serde_json::from_value(md.clone()).map_err(|_| bad("its __metadata__ is not a map of strings"))?;
    Ok(Some(md))
}

#[pymethods]
impl SafeOpen {
    /// The tensor names, sorted (as `safetensors.safe_open(...).keys()`).
    fn keys(&self) -> Vec<&str> {
        self.names()
    }

    /// The header's `__metadata__` (str to str), or None when the file has none.
    fn metadata(&self) -> Option<BTreeMap<String, String>> {
        self.metadata.clone()
    }

    /// Tensor `name`, byte-identical to `safetensors.numpy.load_file` of the original file:
    /// only its chunks are decrypted (without the GIL), into one buffer the array wraps.
    ///
    /// Raises: NotFound (no such tensor), TamperedData (a chunk fails its check), InvalidInput
    /// (a dtype the framework cannot hold, such as BF16 in numpy).
    fn get_tensor<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        self.tensor(py, name)
    }

    /// A lazy view of tensor `name`: `get_shape()`, `get_dtype()`, and indexing (`[a:b]`,
    /// `[a:b, ...]`), which decrypts only the rows asked for when the first index is a slice
    /// with step 1.
    ///
    /// Raises: NotFound.
    fn get_slice(slf: &Bound<'_, Self>, name: &str) -> PyResult<TensorSlice> {
        slf.get().entry(name)?;
        Ok(TensorSlice { open: slf.clone().unbind(), name: name.to_string() })
    }

    /// Dtype, shape and file of every tensor: name to dict.
    fn tensor_info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, e) in &self.tensors {
            let t = PyDict::new(py);
            t.set_item("dtype", &e.info.dtype)?;
            t.set_item("shape", e.info.shape.clone())?;
            t.set_item("file", &e.file)?;
            d.set_item(k, t)?;
        }
        Ok(d)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        false
    }

    fn __repr__(&self) -> String {
        format!("<modelvault.SafeOpen {} framework={:?} tensors={}>", self.spec, self.framework, self.tensors.len())
    }
}

/// One tensor of a `SafeOpen`, read when indexed.
#[pyclass(module = "modelvault", frozen)]
pub struct TensorSlice {
    open: Py<SafeOpen>,
    name: String,
}

#[pymethods]
impl TensorSlice {
    /// The tensor's shape.
    fn get_shape(&self) -> Vec<u64> {
        self.open.get().tensors[&self.name].info.shape.clone()
    }

    /// The tensor's dtype, in safetensors spelling ("F32", "I64", ...).
    fn get_dtype(&self) -> String {
        self.open.get().tensors[&self.name].info.dtype.clone()
    }

    /// Rows `[start, stop)` of the first dimension (clamped to it), as an array.
    fn _read_rows<'py>(&self, py: Python<'py>, start: u64, stop: u64) -> PyResult<Bound<'py, PyAny>> {
        let o = self.open.get();
        let e = &o.tensors[&self.name];
        let shape = &e.info.shape;
        let rows = shape.first().copied().unwrap_or(1);
        let (start, stop) = (start.min(rows), stop.min(rows).max(start.min(rows)));
        let row_bytes = e.info.len.checked_div(rows).unwrap_or(0);
        let buf = o.read_bytes(py, e, start * row_bytes, (stop - start) * row_bytes)?;
        let mut sub = shape.clone();
        if let Some(first) = sub.first_mut() {
            *first = stop - start;
        }
        wrap(py, &buf, &e.info.dtype, &sub, &o.framework)
    }

    /// The whole tensor.
    fn _read_all<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.open.get().tensor(py, &self.name)
    }

    fn __getitem__<'py>(slf: &Bound<'py, Self>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        slf.py().import("modelvault._frameworks")?.call_method1("getitem", (slf, key))
    }

    fn __repr__(&self) -> String {
        let e = &self.open.get().tensors[&self.name];
        format!("<modelvault.TensorSlice {:?} {} {:?}>", self.name, e.info.dtype, e.info.shape)
    }
}
