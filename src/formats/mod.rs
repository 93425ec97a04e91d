//! Model formats: content sniffing and bounded header parsers (bytes in, bounded structs out).
//! Nothing here touches the vault; [`analyze`] is what `put` calls.
//!
//! - [`detect`]: which format a file is, from its first 64 KiB, never from its name.
//! - [`safetensors`], [`gguf`], [`numpy`], [`onnx`]: header parsers that check every length and
//!   count against the bytes that remain before allocating.
//! - [`pickle`]: the pickle scanner that blocks code execution on load.
//! - [`tensor`]: the shared [`tensor::TensorInfo`] and [`tensor::FormatError`].

pub mod detect;
pub mod gguf;
pub mod numpy;
pub mod onnx;
pub mod pickle;
pub mod safetensors;
pub mod tensor;

use std::io::{Read, Seek, SeekFrom};

use detect::Format;
use tensor::{FormatError, TensorInfo};

/// Bytes of a file's head that [`detect::detect`] looks at (64 KiB).
pub const SNIFF_LEN: usize = 64 * 1024;

/// What `put` learns about one file before storing it.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The detected format.
    pub format: Format,
    /// Tensors with absolute byte ranges, in offset order (empty for formats without an index).
    pub tensors: Vec<TensorInfo>,
    /// The pickle scan: for formats that can carry a pickle (pickle, PyTorch, joblib, NumPy,
    /// zip, tar, compressed streams) and for any file that is also a tar, always; for any other file only if reading it as a pickle
    /// reaches an import (or cannot be finished), `None` when it is plain data.
    pub scan: Option<pickle::ScanReport>,
    /// Offsets where a chunk must end (tensor starts and ends), ascending, each in `1..len`.
    /// Cutting there makes a tensor's chunks depend only on its own bytes, so a tensor that did
    /// not change dedups whatever happened to the header or to other tensors.
    pub cuts: Vec<u64>,
}

/// Largest non-zip file the pickle scanner reads into memory (128 MiB); a larger legacy
/// PyTorch pickle stream is judged from its leading pickles, anything else larger (a tar
/// included) is unscannable.
pub const MAX_SCAN_IN_MEMORY: u64 = 128 << 20;

/// True for formats that can carry a pickle and so must be scanned. Unrecognised files are
/// scanned too when they start with an LZMA-alone or 7z header (joblib's `.lzma`, archives).
pub fn may_hold_pickle(format: &Format, head: &[u8]) -> bool {
    match format {
        Format::Pickle
        | Format::PytorchZip
        | Format::TorchScript
        | Format::PytorchLegacy
        | Format::Numpy
        | Format::Npz
        | Format::Zip
        | Format::Tar
        | Format::Gzip
        | Format::Bzip2
        | Format::Xz
        | Format::Zlib => true,
        Format::Opaque => head.starts_with(&[0x5d, 0, 0]) || head.starts_with(b"7z\xbc\xaf\x27\x1c"),
        _ => false,
    }
}

/// Sniffs the file `r` of `len` bytes; for tensor formats parses the header, and for formats
/// that can hold a pickle runs the pickle scanner with `scan_opts`.
///
/// Errors: [`FormatError`] for a file that claims a tensor format and breaks its rules (see
/// bugs.md B01–B06, B13), or for a Git LFS pointer saved in place of the real file.
pub fn analyze<R: Read + Seek>(r: &mut R, len: u64, scan_opts: &pickle::ScanOptions) -> Result<Analysis, FormatError> {
    let mut head = Vec::with_capacity(SNIFF_LEN.min(len as usize));
    r.seek(SeekFrom::Start(0)).map_err(|source| FormatError::Io { offset: 0, source })?;
    r.by_ref().take(SNIFF_LEN as u64).read_to_end(&mut head).map_err(|source| FormatError::Io { offset: 0, source })?;
    let format = detect::detect(&head, len);
    r.seek(SeekFrom::Start(0)).map_err(|source| FormatError::Io { offset: 0, source })?;
    let tensors = match format {
        Format::Safetensors => safetensors::parse(r, len)?.tensors,
        Format::Gguf { .. } => gguf::parse(r, len)?.tensors,
        Format::GitLfsPointer => {
            return Err(FormatError::GitLfsPointer { format: "a model file" });
        }
        Format::Onnx => {
            let model = onnx::parse(r, len)?;
            onnx::check_external_data(&model)?;
            Vec::new()
        }
        _ => Vec::new(),
    };
    let opts = pickle::ScanOptions { max_in_memory_bytes: MAX_SCAN_IN_MEMORY, ..scan_opts.clone() };
    r.seek(SeekFrom::Start(0)).map_err(|source| FormatError::Io { offset: 0, source })?;
    // `torch.load` opens any non-zip file whose first block is a valid tar header as a tar,
    // whatever else its bytes say (a GGUF, NumPy or safetensors file can be one too).
    let scan = if may_hold_pickle(&format, &head) || pickle::is_tar(&head) {
        Some(pickle::scan_reader(&mut *r, len, &opts))
    } else {
        // Every other file is still read the way an unpickler would: a file that is also a
        // pickle (a no-op opcode in front of a payload, a polyglot) must not pass as data.
        pickle::sniff_reader(&mut *r, len, &opts)
    };
    let mut cuts: Vec<u64> =
        tensors.iter().flat_map(|t| [t.offset, t.offset.saturating_add(t.len)]).filter(|&c| c > 0 && c < len).collect();
    cuts.sort_unstable();
    cuts.dedup();
    Ok(Analysis { format, tensors, scan, cuts })
}

/// The lower-case name of a format, as stored in manifests and shown by `inspect`.
pub fn format_name(f: &Format) -> String {
    match f {
        Format::Gguf { version } => format!("gguf-v{version}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// The scan of one file on disk, as `mvault scan` reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileScan {
    /// The file.
    pub path: std::path::PathBuf,
    /// Its detected format.
    pub format: String,
    /// The pickle scan; `None` when the format cannot carry a pickle.
    pub report: Option<pickle::ScanReport>,
    /// A header error for a tensor format that breaks its rules (the file would be refused).
    pub error: Option<String>,
}

/// Sniffs and scans one file on disk (no vault needed).
///
/// Errors: `std::io::Error` when the file cannot be opened or read.
pub fn scan_file(path: &std::path::Path, opts: &pickle::ScanOptions) -> std::io::Result<FileScan> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut head = Vec::new();
    (&mut f).take(SNIFF_LEN as u64).read_to_end(&mut head)?;
    let format = detect::detect(&head, len);
    let (report, error) = match analyze(&mut f, len, opts) {
        Ok(a) => (a.scan, None),
        Err(e) => (None, Some(e.to_string())),
    };
    Ok(FileScan { path: path.to_path_buf(), format: format_name(&format), report, error })
}
