//! `mvault cat`: writes one file of a version to standard output (never onto the vault file).

use modelvault::{Result, parse_spec};

use crate::cli::args::Global;
use crate::cli::session::{refuse_vault_stdout, unlock_read};

/// Runs `cat SPEC [--file PATH]`; returns the exit code.
pub fn run(g: &Global, spec: &str, file: Option<&str>) -> Result<i32> {
    let (name, r) = parse_spec(spec)?;
    let v = unlock_read(g)?;
    refuse_vault_stdout(&v)?;
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    v.cat(&name, &r, file, &mut lock, &modelvault::NoProgress)?;
    Ok(0)
}
