//! `mvault rm`: removes a version or a model (its chunks stay until `gc`), or with `--erase`
//! erases it from the vault file at once; `--resume` finishes an interrupted erasure. Asks
//! before removing a whole model or a version that aliases point to, unless `--yes`.

use modelvault::names::escape;
use modelvault::{Error, Result, Unlocked, Vault, VersionRef, parse_spec};
use serde_json::json;

use crate::cli::args::Global;
use crate::cli::output;
use crate::cli::progress::Bar;
use crate::cli::session::{confirm, print_done, unlock, unlock_write};

/// Runs `rm [SPEC] [--yes] [--erase] [--resume]`; returns the exit code.
pub fn run(g: &Global, spec: Option<&str>, yes: bool, erase: bool, resume: bool) -> Result<i32> {
    if resume {
        return resume_erasure(g);
    }
    let spec = spec.ok_or_else(|| Error::InvalidInput("rm: give NAME or NAME@REF".into()))?;
    let (name, r) = parse_spec(spec)?;
    let bar = Bar::new(g);
    let one_version = spec.contains('@');
    if erase {
        if !one_version && !yes {
            confirm(&format!("Erase every version of '{name}'?"))?;
        }
        let mut v = unlock_write(g, &bar)?;
        let r = if one_version { confirm_aliases(&v, &name, &r, yes)?.0 } else { r };
        let rep = v.erase(&name, one_version.then_some(&r))?;
        let vs: Vec<String> = rep.versions.iter().map(|n| n.to_string()).collect();
        print_done(
            g,
            serde_json::to_value(&rep).expect("report serialises"),
            &format!(
                "erased {name}@{}: {} chunk(s) deleted, vault file rewritten ({} -> {})",
                vs.join(","),
                rep.chunks_removed,
                output::size(rep.file_bytes_before),
                output::size(rep.file_bytes_after)
            ),
        );
    } else if one_version {
        let v = unlock_write(g, &bar)?;
        let (r, aliases) = confirm_aliases(&v, &name, &r, yes)?;
        let n = v.remove_version(&name, &r)?;
        let also =
            if aliases.is_empty() { String::new() } else { format!(" and its alias(es) {}", aliases.join(", ")) };
        print_done(
            g,
            json!({"name": name, "removed_version": n, "removed_aliases": aliases}),
            &format!("removed {name}@{n}{also} (run `mvault gc` to reclaim its chunks)"),
        );
    } else {
        if !yes {
            confirm(&format!("Remove every version of '{name}'?"))?;
        }
        let v = unlock_write(g, &bar)?;
        let n = v.remove_model(&name)?;
        print_done(
            g,
            json!({"name": name, "removed_versions": n}),
            &format!("removed {name}: {n} version(s) (run `mvault gc` to reclaim its chunks)"),
        );
    }
    Ok(0)
}

/// `rm --resume`: finishes an interrupted erasure, if there is one.
fn resume_erasure(g: &Global) -> Result<i32> {
    let mut v = unlock(g)?;
    match v.resume_erasure()? {
        Some(rep) => {
            let vs: Vec<String> = rep.versions.iter().map(|n| n.to_string()).collect();
            print_done(
                g,
                serde_json::to_value(&rep).expect("report serialises"),
                &format!(
                    "finished erasing {}@{}: {} chunk(s) deleted, vault file rewritten ({} -> {})",
                    escape(&rep.name),
                    vs.join(","),
                    rep.chunks_removed,
                    output::size(rep.file_bytes_before),
                    output::size(rep.file_bytes_after)
                ),
            );
        }
        None => print_done(g, json!({"resumed": false}), "no erasure was unfinished: nothing to do"),
    }
    Ok(0)
}

/// Before removing the version `r` of `name`: finds the aliases that point at it and, if there
/// are any and `yes` is false, asks (or, without a terminal, refuses with an error naming them).
/// Returns the version pinned by number, so the version asked about is the one removed, and the
/// aliases. A model record that cannot be read gives no aliases; the removal then reports it.
///
/// Errors: [`Error::ModelNotFound`]; [`Error::InvalidInput`] when not confirmed.
fn confirm_aliases(v: &Vault<Unlocked>, name: &str, r: &VersionRef, yes: bool) -> Result<(VersionRef, Vec<String>)> {
    let listing = v.list(Some(name))?;
    let Some(model) = listing.models.iter().find(|m| m.name == name) else {
        return Ok((r.clone(), Vec::new()));
    };
    let n = match r {
        VersionRef::Number(n) => Some(*n),
        VersionRef::Alias(a) => model.aliases.get(a).copied(),
        VersionRef::Latest => model.versions.iter().map(|x| x.version).max(),
    };
    let Some(n) = n else { return Ok((r.clone(), Vec::new())) };
    let aliases: Vec<String> = model.aliases.iter().filter(|(_, to)| **to == n).map(|(a, _)| escape(a)).collect();
    if !aliases.is_empty() && !yes {
        confirm(&format!(
            "Removing {}@{n} also removes the alias(es) pointing to it: {}. Remove it?",
            escape(name),
            aliases.join(", ")
        ))?;
    }
    Ok((VersionRef::Number(n), aliases))
}
