//! `mvault get`: writes a version's files (or, with `--tensor`, chosen tensors as one
//! safetensors file) to a directory, a file or standard output, after checking the signer when
//! asked. Temporary output files are removed when a signal ends the process.

use std::path::Path;

use modelvault::names::escape;
use modelvault::{GetOptions, Result, TensorGetOptions, Unlocked, Vault, VersionRef, parse_spec};

use crate::cli::args::Global;
use crate::cli::output::{self, group, shape, size};
use crate::cli::progress::{Bar, Relabel, tensor_label};
use crate::cli::session::{refuse_vault_stdout, unlock_read};

/// What `get` was asked for, as the command line gave it.
pub struct GetArgs<'a> {
    /// `NAME[@REF]`.
    pub spec: &'a str,
    /// `-o`: a directory, a file (with `--tensor`) or `-`.
    pub dest: &'a Path,
    /// `--force`: overwrite existing files.
    pub force: bool,
    /// `--tensor NAME`, repeated.
    pub tensor: &'a [String],
    /// `--file PATH`: the file the tensors are in.
    pub file: Option<&'a str>,
    /// `--require-signer TRUST-NAME`.
    pub require_signer: Option<&'a str>,
    /// `--remote NAME|URL`: where chunks the vault lacks are read from.
    pub remote: Option<&'a str>,
    /// `--no-cache`: do not keep chunks read from the remote.
    pub no_cache: bool,
}

/// Runs `get`; returns the exit code.
pub fn run(g: &Global, a: &GetArgs) -> Result<i32> {
    let bar = Bar::new(g);
    let (name, r) = parse_spec(a.spec)?;
    let v = unlock_read(g)?;
    crate::cli::commands::sync::attach_source(g, &v, a.remote, a.no_cache)?;
    crate::cli::signals::remove_temp_files_on_signals()?;
    // Pin the version first, so the check and the read are of the same version.
    let r = match a.require_signer {
        Some(signer) => VersionRef::Number(v.require_signer(&name, &r, signer)?),
        None => r,
    };
    if !a.tensor.is_empty() {
        return tensors(g, &v, &name, &r, a, &bar);
    }
    let rep = v.get(&name, &r, a.dest, &GetOptions { force: a.force }, &bar)?;
    if g.json {
        output::json(&rep);
    } else {
        for f in &rep.files {
            println!("{}", f.display());
        }
        eprintln!(
            "wrote {}@{}: {} file(s), {} (SHA-256 and signature verified)",
            rep.name,
            rep.version,
            rep.files.len(),
            output::size(rep.bytes)
        );
    }
    Ok(0)
}

/// `get --tensor`: the tensors named, as one safetensors file at `-o` or on standard output.
fn tensors(g: &Global, v: &Vault<Unlocked>, name: &str, r: &VersionRef, a: &GetArgs, bar: &Bar) -> Result<i32> {
    let opts = TensorGetOptions { force: a.force, file: a.file.map(str::to_string) };
    let bar = &Relabel { inner: bar, words: tensor_label };
    if a.dest.as_os_str() == "-" {
        // The file goes to standard output; the report to standard error.
        refuse_vault_stdout(v)?;
        let stdout = std::io::stdout();
        let rep = v.get_tensors_to(name, r, a.tensor, &mut stdout.lock(), &opts, bar)?;
        if g.json {
            eprintln!("{}", serde_json::to_string_pretty(&rep).expect("report serialises"));
        } else {
            tensor_get(&rep);
        }
        return Ok(0);
    }
    let rep = v.get_tensors(name, r, a.tensor, a.dest, &opts, bar)?;
    if g.json {
        output::json(&rep);
    } else {
        tensor_get(&rep);
    }
    Ok(0)
}

/// Prints `get --tensor`: the file written on stdout (nothing there with `-o -`, where stdout
/// carries the file itself), what went into it on stderr.
fn tensor_get(r: &modelvault::TensorGetReport) {
    // `-o -`: standard output carries the file itself.
    if r.output.as_os_str() != "-" {
        println!("{}", r.output.display());
    }
    for t in &r.tensors {
        eprintln!(
            "  {} {} {} ({} bytes, from {})",
            escape(&t.name),
            t.dtype,
            shape(&t.shape),
            group(t.bytes),
            escape(&t.file)
        );
    }
    eprintln!(
        "wrote {} tensor(s) of {}@{}, {}; decrypted {} of {} chunk(s)",
        r.tensors.len(),
        escape(&r.name),
        r.version,
        size(r.bytes),
        r.chunks_read,
        r.chunks_total
    );
}
