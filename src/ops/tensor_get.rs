//! `get --tensor`: write chosen tensors of a version into a new safetensors file, decrypting
//! only the chunks that hold them.
//!
//! Owns [`Vault::get_tensors`], its options and report. A tensor is read as the byte range
//! `[offset, offset + len)` of its file through `ops::reader::ChunkReader`. At `put`, chunks
//! are cut at every tensor boundary, so a chunk's byte range lies inside one tensor or outside
//! all of them; a chunk that straddles a boundary gives only the overlapping bytes.
//!
//! Output follows the safetensors format (<https://github.com/huggingface/safetensors>, README
//! "Format"): `u64` little-endian header length N, N bytes of JSON mapping each tensor name to
//! `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets relative to the data buffer),
//! right-padded with spaces so the data starts 8-byte aligned, then the data. No `__metadata__`
//! is written. The file is written like a file of `get` ([`super::outfile`]): under a temporary
//! name (`.mvault-tmp-*`, mode 0600) in its directory, given its final mode on the open file and
//! renamed into place only when complete, never through a symbolic link and never over the
//! vault's own file. [`Vault::get_tensors_to`] streams the same bytes to a writer instead
//! (`-o -`: standard output).
//!
//! Integrity: every chunk read passes its AES-GCM tag and length check; the file's SHA-256 is
//! not re-checked, as that would need every chunk. Memory: one chunk at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::VersionRef;
use super::outfile::{OutDir, VaultFile};
use super::reader::{ChunkReader, FileChunks, file_where};
use crate::formats::safetensors::dtype_bits;
use crate::formats::tensor::{TensorInfo, checked_product};
use crate::manifest::{FileEntry, Manifest};
use crate::names::escape;
use crate::progress::Progress;
use crate::store;
use crate::vault::{Unlocked, Vault};
use crate::{Error, Input, Remedy, Result};

/// Options for [`Vault::get_tensors`].
#[derive(Debug, Clone, Default)]
pub struct TensorGetOptions {
    /// Overwrite the output file if it exists.
    pub force: bool,
    /// Take tensors from this file of the version only (needed when a name is in several).
    pub file: Option<String>,
}

/// What [`Vault::get_tensors`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct TensorGetReport {
    /// Model name.
    pub name: String,
    /// Version read.
    pub version: u64,
    /// The safetensors file written.
    pub output: PathBuf,
    /// Tensors written, in file order, with the file of the version each came from.
    pub tensors: Vec<TensorSource>,
    /// Size of the written file in bytes.
    pub bytes: u64,
    /// Chunks decrypted.
    pub chunks_read: usize,
    /// Chunks in the source file(s) those tensors came from.
    pub chunks_total: usize,
}

/// One tensor written by [`Vault::get_tensors`].
#[derive(Debug, Clone, Serialize)]
pub struct TensorSource {
    /// Tensor name.
    pub name: String,
    /// The file of the version it came from.
    pub file: String,
    /// dtype (safetensors spelling).
    pub dtype: String,
    /// Row-major shape.
    pub shape: Vec<u64>,
    /// Bytes of data.
    pub bytes: u64,
}

/// What the progress label of a tensor read ends with: the label is `get NAME@N tensors`.
pub const TENSOR_LABEL_SUFFIX: &str = " tensors";

fn tensor_label(spec: &str) -> String {
    format!("get {spec}{TENSOR_LABEL_SUFFIX}")
}

/// True for formats whose manifest entry carries a tensor index.
pub(crate) fn is_tensor_format(format: &str) -> bool {
    format == "safetensors" || format.starts_with("gguf")
}

/// Checks that `t` can be written as a safetensors tensor and that its index entry is
/// self-consistent (shape × dtype size = length).
fn check_expressible(m: &Manifest, f: &FileEntry, t: &TensorInfo) -> Result<()> {
    let Some(bits) = dtype_bits(&t.dtype) else {
        return Err(Error::InvalidInput(format!(
            "tensor '{}' of {}@{} (file '{}') has dtype {}, which safetensors cannot express",
            escape(&t.name),
            escape(&m.name),
            m.version,
            escape(&f.path),
            escape(&t.dtype)
        ))
        .with_remedy(Remedy::WholeFile));
    };
    let bytes = checked_product(&t.shape).and_then(|n| n.checked_mul(bits)).filter(|b| b % 8 == 0).map(|b| b / 8);
    if bytes != Some(t.len) {
        return Err(Error::Damaged(format!(
            "{}: tensor '{}' is indexed as {} {:?} but {} bytes long: the manifest's tensor index is inconsistent",
            file_where(m, f),
            escape(&t.name),
            escape(&t.dtype),
            t.shape,
            t.len
        )));
    }
    Ok(())
}

/// What [`Vault::get_tensors`] will write: the tensors chosen and the safetensors header.
struct Plan<'m> {
    spec: String,
    chosen: Vec<(&'m FileEntry, &'m TensorInfo)>,
    header: Vec<u8>,
    data_len: u64,
    total: u64,
}

impl Vault<Unlocked> {
    /// Writes the tensors named in `tensors` (in that order; repeats ignored) of `name@r` into a
    /// new safetensors file at `out`, decrypting only the chunks holding them. Tensors may come
    /// from several files of the version (shards); a name found in more than one file needs
    /// `opts.file`. Sources: safetensors files, and GGUF files for dtypes safetensors can
    /// express (F32, F16, BF16, F64, I8, I16, I32, I64); quantized GGUF types are refused.
    /// The file is written like a file of [`Vault::get`]: under a temporary name with mode
    /// 0600, then given mode [`super::outfile::output_mode`] (0666 less the umask) and renamed
    /// to `out`; a symbolic link at `out` is never followed, and `out` is never the vault's
    /// own file.
    ///
    /// Errors: [`Error::InvalidInput`] (no tensor named; unknown tensor or file, pointing at
    /// `mvault inspect`; a name in several files; a dtype safetensors cannot express; a version
    /// without a tensor index; `out` is a directory, a symbolic link or the vault's own file),
    /// [`Error::OutputExists`] (without `force`), [`Error::ModelNotFound`],
    /// [`Error::VersionNotFound`], [`Error::BadSignature`], [`Error::Damaged`] (a needed chunk
    /// missing or failing authentication), [`Error::Io`].
    pub fn get_tensors(
        &self,
        name: &str,
        r: &VersionRef,
        tensors: &[String],
        out: &Path,
        opts: &TensorGetOptions,
        progress: &dyn Progress,
    ) -> Result<TensorGetReport> {
        let m = self.manifest(name, r)?;
        let plan = plan(&m, tensors, opts)?;
        if std::fs::symlink_metadata(out).is_ok_and(|meta| meta.is_dir()) {
            return Err(Error::InvalidInput(format!("{} is a directory", out.display()))
                .with_remedy(Remedy::TensorOutputFile { example: out.join("tensors.safetensors") }));
        }
        let leaf = match out.file_name().map(|n| n.to_str()) {
            Some(Some(n)) => n,
            Some(None) => {
                return Err(Error::InvalidInput(format!(
                    " {}: the file name is not valid UTF-8; choose another name",
                    out.display()
                ))
                .about(Input::Output));
            }
            None => {
                return Err(Error::InvalidInput(format!(" {}", out.display()))
                    .about(Input::Output)
                    .with_remedy(Remedy::TensorOutputFile { example: "tensors.safetensors".into() }));
            }
        };
        let dir = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let vault = VaultFile::of(&self.path)?;
        if let Some(d) = OutDir::open(&dir, false)? {
            d.check_target(leaf, opts.force, &vault)?;
        }
        let d = OutDir::open(&dir, true)?
            .ok_or_else(|| Error::InvalidInput(format!("{} could not be created", dir.display())))?;
        d.check_target(leaf, opts.force, &vault)?;
        let mode = super::outfile::output_mode();
        let mut tmp = d.create_temp()?;
        let shown = tmp.shown();
        progress.begin(&tensor_label(&plan.spec), plan.data_len);
        let chunks_read = {
            let mut w = std::io::BufWriter::new(tmp.file());
            let n = self.write_plan(&m, &plan, &mut w, &shown.display().to_string(), progress)?;
            w.flush().map_err(|e| Error::io(format!("writing {}", shown.display()), e))?;
            n
        };
        tmp.commit(leaf, mode, opts.force, &vault)?;
        progress.end();
        Ok(report(&m, &plan, out.to_path_buf(), chunks_read))
    }

    /// Like [`Vault::get_tensors`], but streams the safetensors file to `out` (standard output,
    /// say) instead of a file; the report's `output` is `-`. Every byte written has passed its
    /// chunk's authentication, but a failure part-way leaves a prefix written (and an error).
    /// The caller checks that `out` is not the vault's own file
    /// ([`Vault::refuse_vault_output`]).
    ///
    /// Errors: as [`Vault::get_tensors`], without the output-file ones.
    pub fn get_tensors_to(
        &self,
        name: &str,
        r: &VersionRef,
        tensors: &[String],
        out: &mut dyn Write,
        opts: &TensorGetOptions,
        progress: &dyn Progress,
    ) -> Result<TensorGetReport> {
        let m = self.manifest(name, r)?;
        let plan = plan(&m, tensors, opts)?;
        progress.begin(&tensor_label(&plan.spec), plan.data_len);
        let chunks_read = {
            let mut w = std::io::BufWriter::new(&mut *out);
            let n = self.write_plan(&m, &plan, &mut w, "standard output", progress)?;
            w.flush().map_err(|e| Error::io("writing to standard output", e))?;
            n
        };
        progress.end();
        Ok(report(&m, &plan, PathBuf::from("-"), chunks_read))
    }

    /// Writes the header and the chosen tensors' bytes to `w`; returns the chunks decrypted.
    fn write_plan(
        &self,
        m: &Manifest,
        plan: &Plan<'_>,
        w: &mut dyn Write,
        shown: &str,
        progress: &dyn Progress,
    ) -> Result<usize> {
        let mut order = Vec::new();
        for (f, t) in &plan.chosen {
            for p in FileChunks::new(m, f).pieces(t.offset, t.len) {
                order.push((f.chunks[p.chunk].id, f.chunks[p.chunk].len));
            }
        }
        let streamed = self.on_demand(m, order.into_iter(), progress)?;
        let werr = |e| Error::io(format!("writing {shown}"), e);
        w.write_all(&(plan.header.len() as u64).to_le_bytes()).map_err(werr)?;
        w.write_all(&plan.header).map_err(werr)?;
        let base = store::read(&self.db)?;
        let chunks = super::ondemand::OnDemand { base: &base, streamed: streamed.as_ref() };
        let mut layouts: BTreeMap<&str, FileChunks<'_>> = BTreeMap::new();
        let mut chunks_read = 0usize;
        for (f, t) in &plan.chosen {
            let layout = layouts.entry(f.path.as_str()).or_insert_with(|| FileChunks::new(m, f));
            let mut rd = ChunkReader::new(&chunks, self.envelope(), layout);
            rd.set_range(t.offset, t.len);
            let mut got = 0u64;
            loop {
                let b = rd.fill()?;
                if b.is_empty() {
                    break;
                }
                w.write_all(b).map_err(werr)?;
                let n = b.len();
                got += n as u64;
                progress.advance(n as u64);
                rd.consume(n);
            }
            chunks_read += rd.chunks_read();
            if got != t.len {
                return Err(Error::Damaged(format!(
                    "{}: tensor '{}' should have {} bytes but its chunks hold {got}: the manifest is inconsistent",
                    layout.where_(),
                    escape(&t.name),
                    t.len
                )));
            }
        }
        Ok(chunks_read)
    }
}

/// Chooses the tensors of `m` named in `tensors` and builds the safetensors header.
fn plan<'m>(m: &'m Manifest, tensors: &[String], opts: &TensorGetOptions) -> Result<Plan<'m>> {
    if tensors.is_empty() {
        return Err(Error::InvalidInput("no tensor named".into()).with_remedy(Remedy::NameTensor));
    }
    let spec = format!("{}@{}", escape(&m.name), m.version);
    let files: Vec<&FileEntry> = match &opts.file {
        Some(p) => vec![m.files.iter().find(|f| &f.path == p).ok_or_else(|| {
            Error::NotFound(format!("{spec} has no file '{}'", escape(p)))
                .with_remedy(Remedy::InspectFiles { version: spec.clone() })
        })?],
        None => m.files.iter().collect(),
    };
    if files.iter().all(|f| f.tensors.is_empty()) {
        let formats: BTreeSet<&str> = files.iter().map(|f| f.format.as_str()).collect();
        return Err(Error::InvalidInput(format!(
            "{spec} has no tensor index (its files are {})",
            formats.into_iter().collect::<Vec<_>>().join(", ")
        ))
        .with_remedy(Remedy::TensorFormats));
    }
    let mut seen = BTreeSet::new();
    let mut chosen: Vec<(&FileEntry, &TensorInfo)> = Vec::new();
    for want in tensors {
        if !seen.insert(want.as_str()) {
            continue;
        }
        let hits: Vec<(&FileEntry, &TensorInfo)> =
            files.iter().filter_map(|f| f.tensors.iter().find(|t| &t.name == want).map(|t| (*f, t))).collect();
        match hits.len() {
            0 => {
                return Err(Error::NotFound(format!("{spec} has no tensor '{}'", escape(want)))
                    .with_remedy(Remedy::InspectTensors { version: spec.clone() }));
            }
            1 => chosen.push(hits[0]),
            n => {
                let paths: Vec<String> = hits.iter().map(|(f, _)| escape(&f.path)).collect();
                return Err(Error::InvalidInput(format!(
                    "tensor '{}' is in {n} files of {spec} ({})",
                    escape(want),
                    paths.join(", ")
                ))
                .with_remedy(Remedy::ChooseFile));
            }
        }
    }
    for (f, t) in &chosen {
        check_expressible(m, f, t)?;
    }

    // The header: offsets follow the requested order.
    let mut header = serde_json::Map::new();
    let mut at = 0u64;
    for (_, t) in &chosen {
        let end = at
            .checked_add(t.len)
            .ok_or_else(|| Error::InvalidInput("the tensors chosen add up to more than 2^64 bytes".into()))?;
        header
            .insert(t.name.clone(), serde_json::json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [at, end]}));
        at = end;
    }
    let data_len = at;
    let mut hbytes = serde_json::to_vec(&serde_json::Value::Object(header))
        .map_err(|e| Error::InvalidInput(format!("building the safetensors header: {e}")))?;
    while (8 + hbytes.len()) % 8 != 0 {
        hbytes.push(b' ');
    }
    let total = (8 + hbytes.len() as u64).saturating_add(data_len);
    Ok(Plan { spec, chosen, header: hbytes, data_len, total })
}

/// The report of a tensor get written to `output`.
fn report(m: &Manifest, plan: &Plan<'_>, output: PathBuf, chunks_read: usize) -> TensorGetReport {
    let mut source_files: Vec<&str> = plan.chosen.iter().map(|(f, _)| f.path.as_str()).collect();
    source_files.sort_unstable();
    source_files.dedup();
    let chunks_total = m.files.iter().filter(|f| source_files.contains(&f.path.as_str())).map(|f| f.chunks.len()).sum();
    TensorGetReport {
        name: m.name.clone(),
        version: m.version,
        output,
        tensors: plan
            .chosen
            .iter()
            .map(|(f, t)| TensorSource {
                name: t.name.clone(),
                file: f.path.clone(),
                dtype: t.dtype.clone(),
                shape: t.shape.clone(),
                bytes: t.len,
            })
            .collect(),
        bytes: plan.total,
        chunks_read,
        chunks_total,
    }
}
