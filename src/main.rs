//! `mvault`: the command-line front end of the modelvault library. See `mvault --help` and the
//! README. Exit codes: 0 ok, 1 other error, 2 bad arguments, 3 wrong passphrase, 4 vault in use,
//! 5 not found, 6 damaged or tampered, 7 invalid input, 70 internal error. Before anything else
//! it disables core dumps for the process ([`modelvault::harden_process`]).

mod cli;

use clap::Parser;

/// Where the last panic happened, and whether it was inside the storage engine.
static PANIC: std::sync::Mutex<Option<(bool, String)>> = std::sync::Mutex::new(None);

fn main() {
    std::panic::set_hook(Box::new(|info| {
        // `println!` panics when stdout is a closed pipe (`mvault ls | head`): that is not a bug,
        // so end quietly as a SIGPIPE'd process would.
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        let in_redb = info.location().is_some_and(|l| l.file().contains("/redb-"));
        let mut slot = PANIC.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some((in_redb, info.to_string()));
        }
    }));
    let args = cli::args::Cli::parse();
    // Before any passphrase or key is in memory: no core dumps for this process.
    if let Err(e) = modelvault::harden_process() {
        eprintln!("mvault: error: {e}; refusing to handle keys in a process that can dump core");
        std::process::exit(e.exit_code());
    }
    let code = match std::panic::catch_unwind(|| cli::run::run(args)) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            eprintln!("mvault: error: {e}");
            e.exit_code()
        }
        Err(_) => {
            let (in_redb, what) = PANIC.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_default();
            if in_redb {
                // redb trusts its pages on hot paths and panics on some corrupt ones; a vault over
                // the size checked at open can reach one. That is damage, not a bug of ours.
                eprintln!(
                    "mvault: error: the vault file is damaged: the storage engine failed on a corrupt page ({what}); run `mvault verify` and restore the vault from a backup"
                );
                6
            } else {
                eprintln!(
                    "mvault: internal error (a bug; the vault was not changed by this command's unfinished write): {what}"
                );
                70
            }
        }
    };
    std::process::exit(code);
}
