//! `mvault untag`: removes tags from a version.

use modelvault::Result;
use serde_json::json;

use crate::cli::args::Global;
use crate::cli::parse::versioned;
use crate::cli::progress::Bar;
use crate::cli::session::{print_done, unlock_write};

/// Runs `untag SPEC KEY...`; returns the exit code.
pub fn run(g: &Global, spec: &str, keys: &[String]) -> Result<i32> {
    let (name, r) = versioned(spec)?;
    let v = unlock_write(g, &Bar::new(g))?;
    let n = v.remove_tags(&name, &r, keys)?;
    let mut j = json!({"name": name, "version": n, "removed_tags": keys});
    if let [one] = keys {
        j["removed_tag"] = json!(one);
    }
    print_done(g, j, &format!("{name}@{n}: tag {} removed", keys.join(", ")));
    Ok(0)
}
