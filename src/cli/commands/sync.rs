//! `mvault push`, `mvault pull` and `mvault clone`: parse the references, open the remote its URL
//! names, call the library's push, pull or clone and print what moved (text, or JSON with
//! `--json`). The remote's URL is the label under which the vault remembers the last log entry
//! it saw there.

use std::path::Path;

use modelvault::{Error, Result, Vault, VersionRef, parse_spec};
use serde_json::json;

use crate::cli::args::Global;
use crate::cli::output;
use crate::cli::passphrase;
use crate::cli::progress::Bar;
use crate::cli::session::unlock_write;

fn specs(raw: &[String]) -> Result<Vec<(String, VersionRef)>> {
    raw.iter().map(|s| parse_spec(s)).collect()
}

fn versions(list: &[(String, u64)]) -> String {
    if list.is_empty() {
        return "nothing".into();
    }
    list.iter().map(|(n, v)| format!("{}@{v}", modelvault::names::escape(n))).collect::<Vec<_>>().join(", ")
}

/// Runs `push`; returns the exit code.
pub fn push(g: &Global, raw: &[String], url: &str) -> Result<i32> {
    let specs = specs(raw)?;
    let remote = modelvault::remote::open_url(url)?;
    let bar = Bar::new(g);
    let v = unlock_write(g, &bar)?;
    let rep = v.push(&*remote, url, &specs, &bar)?;
    if g.json {
        output::json(&rep);
        return Ok(0);
    }
    for (name, from, to) in &rep.renumbered {
        println!(
            "{}@{from} is {}@{to} now: the remote had given {from} to another version",
            modelvault::names::escape(name),
            modelvault::names::escape(name)
        );
    }
    let entry = rep.entry.map_or("no log entry needed".into(), |e| format!("log entry {e}"));
    println!(
        "pushed {} ({entry}): {} pack(s), {} chunk(s), {} uploaded",
        versions(&rep.pushed),
        rep.traffic.packs,
        rep.traffic.chunks,
        output::size(rep.traffic.bytes)
    );
    Ok(0)
}

/// Runs `pull`; returns the exit code.
pub fn pull(g: &Global, raw: &[String], url: &str) -> Result<i32> {
    let specs = specs(raw)?;
    let remote = modelvault::remote::open_url(url)?;
    let bar = Bar::new(g);
    let v = unlock_write(g, &bar)?;
    let rep = v.pull(&*remote, url, &specs, &bar)?;
    print_pull(g, &rep);
    Ok(0)
}

fn print_pull(g: &Global, rep: &modelvault::remote::PullReport) {
    if g.json {
        output::json(rep);
        return;
    }
    for (name, from, to) in &rep.moved {
        println!(
            "local {}@{from} is {}@{to} now: the remote holds another version {from}",
            modelvault::names::escape(name),
            modelvault::names::escape(name)
        );
    }
    println!(
        "pulled {} (log entry {}): {} chunk(s), {} in {} ranged read(s)",
        versions(&rep.pulled),
        rep.head,
        rep.traffic.chunks,
        output::size(rep.traffic.bytes),
        rep.traffic.ranges
    );
}

/// Runs `clone`; returns the exit code.
pub fn clone(g: &Global, url: &str, path: &Path) -> Result<i32> {
    if path.exists() {
        return Err(Error::VaultExists(path.to_path_buf()));
    }
    let remote = modelvault::remote::open_url(url)?;
    let pass = passphrase::obtain(g, &format!("Passphrase for the vault at {url}: "), false)?;
    let bar = Bar::new(g);
    let (v, rep) = Vault::clone_from(&*remote, path, &pass, url, &bar)?;
    if g.json {
        output::json(&json!({"vault": path, "vault_id": modelvault::manifest::hex(&v.vault_id()), "pull": rep}));
    } else {
        println!("cloned vault {} (id {}) into {}", url, modelvault::manifest::hex(&v.vault_id()), path.display());
        print_pull(g, &rep);
    }
    Ok(0)
}
