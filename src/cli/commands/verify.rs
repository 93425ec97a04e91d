//! `mvault verify`: checks every record (and with `--read-data`, every chunk) of the vault or of
//! one model or version; exit code 6 when anything is damaged.

use modelvault::names::escape;
use modelvault::store::PageCheck;
use modelvault::{Error, Result, Unlocked, Vault, VersionRef, parse_spec};

use crate::cli::args::Global;
use crate::cli::output;
use crate::cli::progress::Bar;
use crate::cli::session::unlock_read;

/// Runs `verify [SPEC] [--read-data]`; returns the exit code.
pub fn run(g: &Global, spec: Option<&str>, read_data: bool, remote: Option<&str>) -> Result<i32> {
    let bar = Bar::new(g);
    let v = unlock_read(g)?;
    // A reader's open cannot check the file's pages (see SECURITY.md, "Storage and atomicity").
    let why = match v.check_pages()? {
        PageCheck::WriterActive => Some("another process is writing the vault"),
        PageCheck::Replaced => Some("a key rotation or an erasure replaced the vault file meanwhile"),
        _ => None,
    };
    if let Some(why) = why {
        eprintln!("note: the storage pages were not checked, since {why}; run verify again when it is done");
    }
    // Chunks a metadata-only pull left on the vault's remote are not damage.
    crate::cli::commands::sync::attach_source(g, &v, remote, false)?;
    let only = spec.map(|s| target(&v, s)).transpose()?;
    let mut rep = v.verify_only(read_data, only.as_ref().map(|(n, ver)| (n.as_str(), *ver)), &bar)?;
    // A problem's remedy, in this CLI's words, completes its detail (in the JSON too).
    for p in &mut rep.problems {
        if let Some(r) = p.remedy.take() {
            p.detail.push_str(&crate::cli::exit::remedy(&r));
        }
    }
    if let Some((n, ver)) = &only {
        if rep.models == 0 {
            return Err(Error::ModelNotFound(escape(n)));
        }
        if let Some(ver) = ver
            && rep.versions == 0
            && rep.problems.is_empty()
        {
            return Err(Error::VersionNotFound { name: escape(n), reference: ver.to_string() });
        }
    }
    if g.json {
        output::json(&rep);
    } else {
        for p in &rep.problems {
            println!("DAMAGED {}", p.detail);
        }
        println!(
            "{}: {} model(s), {} version(s), {} chunk reference(s){}{}{}",
            if rep.ok() { "ok" } else { "FAILED" },
            rep.models,
            rep.versions,
            rep.chunks,
            match rep.not_held_locally {
                0 => String::new(),
                n => format!(", {n} not held locally (on the remote)"),
            },
            if read_data { format!(", {} decrypted and hashed", output::size(rep.bytes_read)) } else { String::new() },
            match spec {
                Some(s) => format!(" (only {})", escape(s)),
                None => String::new(),
            }
        );
    }
    Ok(if rep.ok() { 0 } else { 6 })
}

/// What `verify SPEC` checks: the model name, and the version number (`None`: every version).
/// An alias is resolved through the model record, so a version whose manifest is damaged can
/// still be named by its alias.
///
/// Errors: [`Error::ModelNotFound`]; [`Error::VersionNotFound`] for an unknown alias.
fn target(v: &Vault<Unlocked>, spec: &str) -> Result<(String, Option<u64>)> {
    let (name, r) = parse_spec(spec)?;
    let version = match &r {
        VersionRef::Latest => None,
        VersionRef::Number(n) => Some(*n),
        VersionRef::Alias(a) => {
            let listing = v.list(Some(&name))?;
            let to = listing.models.iter().find(|m| m.name == name).and_then(|m| m.aliases.get(a)).copied();
            Some(to.ok_or_else(|| Error::VersionNotFound { name: escape(&name), reference: escape(a) })?)
        }
    };
    Ok((name, version))
}
