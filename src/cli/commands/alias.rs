//! `mvault alias`: points an alias at a version, or removes it.

use modelvault::{Result, parse_spec};
use serde_json::json;

use crate::cli::args::Global;
use crate::cli::parse::versioned;
use crate::cli::progress::Bar;
use crate::cli::session::{print_done, unlock_write};

/// Runs `alias SPEC ALIAS [--remove]`; returns the exit code.
pub fn run(g: &Global, spec: &str, alias: &str, remove: bool) -> Result<i32> {
    let bar = Bar::new(g);
    if remove {
        let (name, _) = parse_spec(spec)?;
        let v = unlock_write(g, &bar)?;
        v.remove_alias(&name, alias)?;
        print_done(
            g,
            json!({"name": name, "alias": alias, "removed": true}),
            &format!("removed alias {alias} of {name}"),
        );
    } else {
        let (name, r) = versioned(spec)?;
        let v = unlock_write(g, &bar)?;
        let n = v.set_alias(&name, &r, alias)?;
        print_done(g, json!({"name": name, "version": n, "alias": alias}), &format!("{name}@{alias} -> {name}@{n}"));
    }
    Ok(0)
}
