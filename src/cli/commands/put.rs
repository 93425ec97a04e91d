//! `mvault put`: stores a file or a directory as the next version of a model and prints what
//! was stored.

use std::collections::BTreeMap;

use modelvault::{PutOptions, Result};

use crate::cli::args::{Global, PutArgs};
use crate::cli::output;
use crate::cli::parse::{metric, split_kv};
use crate::cli::progress::Bar;
use crate::cli::session::unlock_write;

/// Runs `put`; returns the exit code.
pub fn run(g: &Global, a: &PutArgs) -> Result<i32> {
    let bar = Bar::new(g);
    let opts = options(a)?;
    let mut v = unlock_write(g, &bar)?;
    let r = v.put(&a.src, &a.name, &opts, &bar)?;
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
    })
}
