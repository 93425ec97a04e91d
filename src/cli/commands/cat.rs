//! `mvault cat`: writes one file of a version to standard output (never onto the vault file).

use modelvault::{Result, parse_spec};

use crate::cli::args::Global;
use crate::cli::session::{refuse_vault_stdout, unlock_read};

/// Only the warnings of a `cat` (standard error stays free of a progress bar).
struct WarnOnly;

impl modelvault::Progress for WarnOnly {
    fn warn(&self, message: &str) {
        eprintln!("warning: {message}");
    }
}

/// Runs `cat SPEC [--file PATH] [--remote NAME|URL] [--no-cache]`; returns the exit code.
pub fn run(g: &Global, spec: &str, file: Option<&str>, remote: Option<&str>, no_cache: bool) -> Result<i32> {
    let (name, r) = parse_spec(spec)?;
    let v = unlock_read(g)?;
    crate::cli::commands::sync::attach_source(g, &v, remote, no_cache)?;
    refuse_vault_stdout(&v)?;
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    v.cat(&name, &r, file, &mut lock, &WarnOnly)?;
    Ok(0)
}
