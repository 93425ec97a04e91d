//! `mvault put`: stores a file, a directory or a snapshot of a Hugging Face cache as the next
//! version of a model and prints what was stored.

use std::collections::BTreeMap;

use modelvault::ops::hf_export::{COMMIT_TAG, REPO_TAG};
use modelvault::{Error, Filter, PutOptions, Result};

use crate::cli::args::{Global, PutArgs};
use crate::cli::output;
use crate::cli::parse::{metric, split_kv};
use crate::cli::progress::Bar;
use crate::cli::session::unlock_write;

/// Runs `put`; returns the exit code.
pub fn run(g: &Global, a: &PutArgs) -> Result<i32> {
    let bar = Bar::new(g);
    let mut opts = options(a)?;
    let r = match (&a.from_hf_cache, &a.src) {
        (Some(repo), _) => {
            let snap = hf_snapshot(a, repo, &opts)?;
            // Where the files came from, for `get --to-hf-cache` (a --tag given wins).
            opts.tags.entry(REPO_TAG.to_string()).or_insert_with(|| snap.repo_id.clone());
            opts.tags.entry(COMMIT_TAG.to_string()).or_insert_with(|| snap.commit.to_ascii_lowercase());
            let name = a.name.as_deref().unwrap_or(repo);
            let mut v = unlock_write(g, &bar)?;
            let r = v.put_sources(&snap.sources, name, &opts, &bar)?;
            if !g.json {
                eprintln!("snapshot {} of {} ({})", snap.commit, snap.repo_id, snap.dir.display());
            }
            r
        }
        (None, Some(src)) => {
            let name = a.name.as_deref().unwrap_or_default();
            let mut v = unlock_write(g, &bar)?;
            v.put(src, name, &opts, &bar)?
        }
        (None, None) => unreachable!("clap requires a path or --from-hf-cache"),
    };
    if g.json {
        output::json(&r);
    } else {
        println!("{}@{}", r.name, r.version);
        eprintln!(
            "stored {} file(s), {}; {} new chunk(s) ({}), {} already stored",
            r.files,
            output::size(r.bytes),
            r.new_chunks,
            output::size(r.new_bytes),
            r.reused_chunks
        );
    }
    Ok(0)
}

/// The snapshot `--from-hf-cache REPO_ID` names, from `--cache-dir` or the default cache.
fn hf_snapshot(a: &PutArgs, repo: &str, opts: &PutOptions) -> Result<modelvault::ops::hf::HfSnapshot> {
    let cache = match &a.cache_dir {
        Some(d) => d.clone(),
        None => modelvault::ops::hf::default_cache_dir().ok_or_else(|| {
            Error::InvalidInput(
                "no Hugging Face cache folder: none of HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME and HOME is set; pass --cache-dir DIR".into(),
            )
        })?,
    };
    let filter = Filter::new(&opts.exclude, opts.include_git)?;
    modelvault::ops::hf::snapshot(&cache, repo, &a.revision, &filter)
}

/// The library's options from the command line's.
fn options(a: &PutArgs) -> Result<PutOptions> {
    let mut tags = BTreeMap::new();
    for t in &a.tags {
        let (k, v) = split_kv(t, "tag")?;
        tags.insert(k.to_string(), v.to_string());
    }
    let mut metrics = BTreeMap::new();
    for m in &a.metrics {
        let (k, v) = metric(m)?;
        metrics.insert(k, v);
    }
    Ok(PutOptions {
        aliases: a.aliases.clone(),
        tags,
        metrics,
        description: a.description.clone(),
        allow_unsafe_pickle: a.allow_unsafe_pickle,
        allow_globals: a.allow.clone(),
        exclude: a.exclude.clone(),
        include_git: a.include_git,
    })
}
