//! `mvault push`, `mvault pull` and `mvault clone`: parse the references, open the remote a name
//! or URL names, call the library's push, pull or clone and print what moved (text, or JSON with
//! `--json`). The remote's location (URL and endpoint, `RemoteConfig::seen_label`; the canonical
//! `file://` URL of a directory) is the label under which the vault remembers the last log entry
//! it saw there. It must never read, print or pass on a credential (the library reads them).

use std::path::Path;

use modelvault::remote::{Objects, PullOptions, RemoteConfig, S3Objects};
use modelvault::{ChunkSource, Error, RemoteAddOptions, Result, Unlocked, Vault, VersionRef, parse_spec};
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
pub fn push(g: &Global, raw: &[String], remote: Option<&str>) -> Result<i32> {
    let specs = specs(raw)?;
    let bar = Bar::new(g);
    let v = unlock_write(g, &bar)?;
    let (remote, url) = open_remote(&v, remote)?;
    let rep = v.push(&*remote, &url, &specs, &bar)?;
    if g.json {
        output::json(&rep);
        return Ok(0);
    }
    print_signers(&rep.signers);
    for (name, from, to) in &rep.renumbered {
        println!(
            "{}@{from} is {}@{to} now: the remote had given {from} to another version",
            modelvault::names::escape(name),
            modelvault::names::escape(name)
        );
    }
    if !rep.removed.is_empty() {
        println!("removed on the remote: {}", versions(&rep.removed));
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
pub fn pull(g: &Global, raw: &[String], remote: Option<&str>, metadata_only: bool) -> Result<i32> {
    let specs = specs(raw)?;
    let bar = Bar::new(g);
    let v = unlock_write(g, &bar)?;
    let (remote, url) = open_remote(&v, remote)?;
    let rep = v.pull_with(&*remote, &url, &specs, &PullOptions { metadata_only }, &bar)?;
    print_pull(g, &rep);
    Ok(0)
}

fn print_pull(g: &Global, rep: &modelvault::remote::PullReport) {
    if g.json {
        output::json(rep);
        return;
    }
    print_signers(&rep.signers);
    if !rep.removed.is_empty() {
        println!("removed here, as on the remote: {}", versions(&rep.removed));
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

/// Says which signing keys were adopted from the remote's key bundles.
fn print_signers(c: &modelvault::remote::SignerChanges) {
    let key = |k: &[u8; 32]| format!("ed25519:{}", modelvault::crypto::sign::hex(k));
    for k in &c.added {
        println!("signing key {} adopted from the remote", key(k));
    }
    for k in &c.retired {
        println!("signing key {} retired, as on the remote", key(k));
    }
    if let Some(k) = &c.active {
        println!("signing key {} signs new versions now (the one used here was retired)", key(k));
    }
}

/// Runs `clone`; returns the exit code.
pub fn clone(g: &Global, url: &str, path: &Path, metadata_only: bool) -> Result<i32> {
    if path.exists() {
        return Err(Error::VaultExists(path.to_path_buf()));
    }
    let (remote, url, label) = open_url(url)?;
    let bar = Bar::new(g);
    let opts = PullOptions { metadata_only };
    let (v, rep) = match &g.identity {
        Some(file) => {
            let ids = modelvault::Identities::from_file(file)?;
            Vault::clone_from_identity(&*remote, path, &ids, &label, &opts, &bar)?
        }
        None => {
            let pass = passphrase::obtain(g, &format!("Passphrase for the vault at {url}: "), false)?;
            Vault::clone_from_with(&*remote, path, &pass, &label, &opts, &bar)?
        }
    };
    let recorded = record_origin(&v, &url, &*remote);
    if g.json {
        output::json(&json!({"vault": path, "vault_id": modelvault::manifest::hex(&v.vault_id()), "pull": rep}));
    } else {
        println!("cloned vault {} (id {}) into {}", url, modelvault::manifest::hex(&v.vault_id()), path.display());
        print_pull(g, &rep);
        if let Some(note) = recorded {
            eprintln!("mvault: note: {note}");
        }
    }
    Ok(0)
}

/// Sets where `get` and `cat` read chunks the vault lacks: `--remote NAME|URL`, or the vault's
/// only remote (left unset when it cannot be reached now: a missing chunk is then reported).
pub fn attach_source(g: &Global, v: &Vault<Unlocked>, spec: Option<&str>, no_cache: bool) -> Result<()> {
    let wait = crate::cli::session::open_opts(g)?.wait;
    let opened = match spec {
        Some(_) => Some(open_remote(v, spec)?),
        None if v.remote_list()?.len() == 1 => open_remote(v, None).ok(),
        None => None,
    };
    if let Some((objects, label)) = opened {
        v.set_chunk_source(ChunkSource {
            cache: !no_cache,
            wait,
            ..ChunkSource::new(std::sync::Arc::from(objects), label)
        });
    }
    Ok(())
}

/// Records an `s3://` remote a vault was cloned from as `origin` (probing it as `remote add`
/// does); the note to print when that did not happen.
fn record_origin(v: &Vault<Unlocked>, url: &str, objects: &dyn Objects) -> Option<String> {
    if !url.starts_with("s3://") {
        return None;
    }
    let r = RemoteConfig::new(url, None, None)
        .and_then(|c| v.remote_add_with("origin", &c, objects, &RemoteAddOptions::default()));
    r.err()
        .map(|e| format!("the remote was not recorded as 'origin' ({e}); add it with `mvault remote add NAME {url}`"))
}

/// The remote `--remote` names, and the label the vault remembers it under (its location): a URL
/// (`s3://BUCKET/PREFIX`, endpoint, region and credentials from the AWS variables, or
/// `file:///PATH`), a remote's name (`remote add`), or with no `--remote` the vault's only remote.
pub(crate) fn open_remote(v: &Vault<Unlocked>, spec: Option<&str>) -> Result<(Box<dyn Objects>, String)> {
    match spec {
        Some(url) if url.contains("://") => open_url(url).map(|(o, _, label)| (o, label)),
        Some(name) => {
            let label = v.remote(name)?.config()?.seen_label();
            Ok((Box::new(v.connect(name)?), label))
        }
        None => {
            let list = v.remote_list()?;
            match list.as_slice() {
                [only] => Ok((Box::new(v.connect(&only.name)?), only.config()?.seen_label())),
                [] => Err(Error::InvalidInput(
                    "this vault has no remote: add one with `mvault remote add NAME s3://BUCKET/PREFIX`, or give `--remote URL`".into(),
                )),
                _ => Err(Error::InvalidInput(format!(
                    "this vault has {} remotes: name one with `--remote NAME`",
                    list.len()
                ))),
            }
        }
    }
}

/// The store a URL names, its canonical form and the label of its last entry seen.
fn open_url(url: &str) -> Result<(Box<dyn Objects>, String, String)> {
    if url.starts_with("s3://") {
        let config = RemoteConfig::new(url, None, None)?;
        let (canonical, label) = (config.url(), config.seen_label());
        return Ok((Box::new(S3Objects::connect(&config)?), canonical, label));
    }
    let (objects, canonical) = modelvault::remote::open_url(url)?;
    Ok((objects, canonical.clone(), canonical))
}
