//! `mvault describe`: sets the description of a model (NAME) or of one version (NAME@REF).

use modelvault::{Result, parse_spec};
use serde_json::json;

use crate::cli::args::Global;
use crate::cli::progress::Bar;
use crate::cli::session::{print_done, unlock_write};

/// Runs `describe SPEC TEXT`; returns the exit code.
pub fn run(g: &Global, spec: &str, text: &str) -> Result<i32> {
    let (name, r) = parse_spec(spec)?;
    let has_version = spec.contains('@');
    let v = unlock_write(g, &Bar::new(g))?;
    v.describe(&name, has_version.then_some(&r), text)?;
    print_done(g, json!({"name": name, "described": spec}), &format!("{spec}: description set"));
    Ok(0)
}
