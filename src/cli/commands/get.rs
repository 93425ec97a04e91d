//! `mvault get`: writes a version's files (or, with `--tensor`, chosen tensors as one
//! safetensors file) to a directory, a file or standard output, or (with `--to-hf-cache`) into
//! a Hugging Face hub cache, after checking the signer when asked. Temporary output files are
//! removed when a signal ends the process.

use std::path::Path;

use modelvault::names::escape;
use modelvault::ops::hf_export::HfExportOptions;
use modelvault::{GetOptions, Result, TensorGetOptions, Unlocked, Vault, VersionRef, parse_spec};

use crate::cli::args::{GetArgs, Global};
use crate::cli::output::{self, group, shape, size};
use crate::cli::progress::{Bar, Relabel, tensor_label};
use crate::cli::session::{refuse_vault_stdout, unlock_read};

/// Runs `get`; returns the exit code.
pub fn run(g: &Global, a: &GetArgs) -> Result<i32> {
    let bar = Bar::new(g);
    let (name, r) = parse_spec(&a.spec)?;
    let v = unlock_read(g)?;
    crate::cli::commands::sync::attach_source(g, &v, a.remote.as_deref(), a.no_cache)?;
    crate::cli::signals::remove_temp_files_on_signals()?;
    // Pin the version first, so the check and the read are of the same version.
    let r = match a.require_signer.as_deref() {
        Some(signer) => VersionRef::Number(v.require_signer(&name, &r, signer)?),
        None => r,
    };
    if let Some(cache) = &a.to_hf_cache {
        return to_hf_cache(g, &v, &name, &r, cache, a, &bar);
    }
    let Some(dest) = a.output.as_deref() else {
        return Err(modelvault::Error::InvalidInput("get needs -o DEST or --to-hf-cache DIR".into()));
    };
    if !a.tensor.is_empty() {
        return tensors(g, &v, &name, &r, dest, a, &bar);
    }
    let rep = v.get(&name, &r, dest, &GetOptions { force: a.force }, &bar)?;
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
fn tensors(
    g: &Global,
    v: &Vault<Unlocked>,
    name: &str,
    r: &VersionRef,
    dest: &Path,
    a: &GetArgs,
    bar: &Bar,
) -> Result<i32> {
    let opts = TensorGetOptions { force: a.force, file: a.file.clone() };
    let bar = &Relabel { inner: bar, words: tensor_label };
    if dest.as_os_str() == "-" {
        // The file goes to standard output; the report to standard error.
        refuse_vault_stdout(v)?;
        let stdout = std::io::stdout();
        let rep = v.get_tensors_to(name, r, &a.tensor, &mut stdout.lock(), &opts, bar)?;
        if g.json {
            eprintln!("{}", serde_json::to_string_pretty(&rep).expect("report serialises"));
        } else {
            tensor_get(&rep);
        }
        return Ok(0);
    }
    let rep = v.get_tensors(name, r, &a.tensor, dest, &opts, bar)?;
    if g.json {
        output::json(&rep);
    } else {
        tensor_get(&rep);
    }
    Ok(0)
}

/// `get --to-hf-cache DIR`: the version as a repository of the hub cache at DIR. The snapshot
/// folder goes to standard output, what was written to standard error.
fn to_hf_cache(
    g: &Global,
    v: &Vault<Unlocked>,
    name: &str,
    r: &VersionRef,
    cache: &Path,
    a: &GetArgs,
    bar: &Bar,
) -> Result<i32> {
    let opts = HfExportOptions { repo_id: a.repo_id.clone(), revision: a.revision.clone(), force: a.force };
    let rep = v.get_to_hf_cache(name, r, cache, &opts, bar)?;
    if g.json {
        output::json(&rep);
        return Ok(0);
    }
    println!("{}", rep.snapshot.display());
    let lfs = rep.files.iter().filter(|f| f.lfs).count();
    eprintln!(
        "wrote {}@{} as {} revision {} (refs/main): {} file(s) ({lfs} LFS), {} (SHA-256 and signature verified)",
        rep.name,
        rep.version,
        rep.repo_id,
        rep.commit,
        rep.files.len(),
        output::size(rep.bytes),
    );
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
