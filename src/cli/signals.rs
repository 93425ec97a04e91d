//! Signals: removing partial output on SIGINT, SIGTERM and SIGHUP while `get` writes files, and
//! handing those signals to a callback (`mount` unmounts on them).
//!
//! [`remove_temp_files_on_signals`] starts a thread that waits for those signals (through
//! `signal-hook`, which only records the signal inside the handler). On the first one it asks
//! the library to remove every temporary output file it is writing
//! ([`modelvault::ops::outfile::abandon_temp_files`]) and exits with 128 + the signal number
//! (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP). It must never do work inside the signal
//! handler itself, and is installed only by commands that write output files.

use modelvault::{Error, Result};

/// Installs the handling described in the module docs for the rest of the process.
///
/// Errors: [`Error::Io`] when the handler or its thread cannot be set up.
#[cfg(unix)]
pub fn remove_temp_files_on_signals() -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let io = |e| Error::Io { context: "installing the signal handler".into(), source: e };
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(io)?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let n = modelvault::ops::outfile::abandon_temp_files();
                eprintln!("mvault: interrupted by signal {sig}: removed {n} partial output file(s)");
                std::process::exit(128 + sig);
            }
        })
        .map_err(io)?;
    Ok(())
}

/// Without Unix signals there is nothing to install.
#[cfg(not(unix))]
pub fn remove_temp_files_on_signals() -> Result<()> {
    Ok(())
}

/// Calls `f` with the signal number on the first SIGINT, SIGTERM or SIGHUP (from a thread of
/// its own, never inside the handler). A second such signal ends the process at once with
/// 128 + its number.
///
/// Errors: [`Error::Io`] when the handler or its thread cannot be set up.
#[cfg(unix)]
pub fn on_termination(f: impl FnOnce(i32) + Send + 'static) -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let io = |e| Error::Io { context: "installing the signal handler".into(), source: e };
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(io)?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut it = signals.forever();
            if let Some(sig) = it.next() {
                f(sig);
            }
            if let Some(sig) = it.next() {
                std::process::exit(128 + sig);
            }
        })
        .map_err(io)?;
    Ok(())
}
