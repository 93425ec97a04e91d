//! `mvault tag`: sets tags (KEY=VALUE) on a version.

use modelvault::Result;
use serde_json::json;

use crate::cli::args::Global;
use crate::cli::parse::{split_kv, versioned};
use crate::cli::progress::Bar;
use crate::cli::session::{print_done, unlock_write};

/// Runs `tag SPEC KEY=VALUE...`; returns the exit code.
pub fn run(g: &Global, spec: &str, tags: &[String]) -> Result<i32> {
    let (name, r) = versioned(spec)?;
    let pairs: Vec<(String, String)> =
        tags.iter().map(|t| split_kv(t, "tag").map(|(k, v)| (k.to_string(), v.to_string()))).collect::<Result<_>>()?;
    let v = unlock_write(g, &Bar::new(g))?;
    let n = v.set_tags(&name, &r, &pairs)?;
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    let set: serde_json::Map<String, serde_json::Value> = pairs.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    print_done(g, json!({"name": name, "version": n, "tag": set}), &format!("{name}@{n}: tag {} set", keys.join(", ")));
    Ok(0)
}
