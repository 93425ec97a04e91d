//! What most commands share: finding and unlocking the vault named by the global options,
//! asking for confirmation, reporting damaged records and printing a short result. It holds no
//! state of its own and never prints a secret.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use modelvault::{Error, OpenOptions, Progress, Result, Unlocked, Vault};

use super::args::Global;
use super::{output, passphrase};

/// The vault path from `--vault` or `MVAULT_VAULT`.
///
/// Errors: [`Error::InvalidInput`] when neither is given.
pub fn vault_path(g: &Global) -> Result<PathBuf> {
    g.vault.clone().ok_or_else(|| Error::InvalidInput("no vault given: pass --vault PATH or set MVAULT_VAULT".into()))
}

/// The open options of a reading command: read-only, beside any writer (`--wait` plays no part).
///
/// Errors: as [`open_opts`].
pub fn read_opts(g: &Global) -> Result<OpenOptions> {
    Ok(OpenOptions { read_only: true, ..open_opts(g)? })
}

/// The open options of a writing command, from `--wait SECONDS` (or `MVAULT_WAIT`).
///
/// Errors: [`Error::InvalidInput`] for a wait outside 0..=86400 seconds.
pub fn open_opts(g: &Global) -> Result<OpenOptions> {
    let wait = match g.wait {
        None => None,
        Some(s) if (0.0..=86_400.0).contains(&s) => Some(Duration::from_secs_f64(s)),
        Some(s) => {
            return Err(Error::InvalidInput(format!("--wait {s}: give a number of seconds from 0 to 86400")));
        }
    };
    Ok(OpenOptions { wait, ..Default::default() })
}

/// Unlocks for a command that writes: an interrupted master-key rotation is finished first.
pub fn unlock_write(g: &Global, progress: &dyn Progress) -> Result<Vault<Unlocked>> {
    let mut v = unlock(g)?;
    if v.rotation_pending() {
        eprintln!("mvault: finishing an interrupted master-key rotation first");
        v.resume_rotation(progress)?;
    }
    if v.erasure_pending()? {
        eprintln!("mvault: finishing an interrupted erasure first");
        v.resume_erasure()?;
    }
    Ok(v)
}

/// Opens the vault for a reading command (read-only: it runs beside a writer and other readers)
/// and unlocks it as [`unlock`] does.
pub fn unlock_read(g: &Global) -> Result<Vault<Unlocked>> {
    unlock_with(g, &read_opts(g)?)
}

/// Opens the vault for writing and unlocks it with the passphrase from the global options (or a
/// prompt), with the slot named by `--slot` if there is one.
pub fn unlock(g: &Global) -> Result<Vault<Unlocked>> {
    unlock_with(g, &open_opts(g)?)
}

fn unlock_with(g: &Global, opts: &OpenOptions) -> Result<Vault<Unlocked>> {
    let path = vault_path(g)?;
    let locked = Vault::open(&path, opts)?;
    if let Some(file) = &g.identity {
        let ids = modelvault::Identities::from_file(file)?;
        let v = locked.unlock_identity(&ids, g.slot.as_deref())?;
        v.set_warning_sink(Box::new(|m| eprintln!("warning: {m}")));
        return check_rollback(g, v);
    }
    // A recipient slot named, or a vault of recipient slots only: say so before asking.
    locked.check_passphrase_unlock(g.slot.as_deref())?;
    let pass = passphrase::obtain(g, &format!("Passphrase for {}: ", path.display()), false)?;
    let v = match &g.slot {
        Some(s) => locked.unlock_slot(s, &pass),
        None => locked.unlock(&pass),
    }?;
    v.set_warning_sink(Box::new(|m| eprintln!("warning: {m}")));
    check_rollback(g, v)
}

/// Checks the vault against the newest checkpoint this user has seen of it (and remembers the
/// newest from now on): a rollback is refused unless `--accept-rollback`.
fn check_rollback(g: &Global, v: Vault<Unlocked>) -> Result<Vault<Unlocked>> {
    let Some(dir) = modelvault::log::memory::default_dir() else {
        eprintln!("warning: no state directory (set MVAULT_STATE_DIR or HOME): this vault is not checked for rollback");
        return Ok(v);
    };
    match v.check_rollback(&dir, g.accept_rollback) {
        Ok(modelvault::ops::log::RollbackCheck::Accepted(what)) => {
            eprintln!("warning: accepting a rollback as told: {what}")
        }
        Ok(_) => {}
        // A rollback found is an error; a memory this user cannot read or write is a warning
        // (the vault itself is as it was).
        Err(e) if matches!(e.base(), Error::Damaged(_)) => return Err(e),
        Err(e) => eprintln!("warning: this vault was not checked for rollback: {e}"),
    }
    Ok(v)
}

/// Prints `j` with `--json`, otherwise the line `text`.
pub fn print_done(g: &Global, j: serde_json::Value, text: &str) {
    if g.json { output::json(&j) } else { println!("{text}") }
}

/// Reports records that could not be read on stderr; true if there were any.
pub fn damaged(problems: &[String]) -> bool {
    for p in problems {
        eprintln!("mvault: damaged: {p}");
    }
    !problems.is_empty()
}

/// Refuses to write to standard output when it is the vault's own file (`>> vault`).
pub fn refuse_vault_stdout(v: &Vault<Unlocked>) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        let fd = std::io::stdout().as_fd().try_clone_to_owned();
        if let Ok(meta) = fd.map(std::fs::File::from).and_then(|f| f.metadata()) {
            v.refuse_vault_output(&meta, "standard output")?;
        }
    }
    #[cfg(not(unix))]
    let _ = v;
    Ok(())
}

/// Asks `question` on the terminal; Ok only for a yes.
///
/// Errors: [`Error::InvalidInput`] without a terminal, or when the answer is not yes.
pub fn confirm(question: &str) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::InvalidInput(format!("{question} Refusing without --yes: there is no terminal to ask on")));
    }
    eprint!("{question} [y/N] ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| Error::Io { context: "reading the answer".into(), source: e })?;
    if matches!(line.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Error::InvalidInput("not confirmed: nothing removed".into()))
    }
}
