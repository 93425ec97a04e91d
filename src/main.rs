//! `mvault`: the command-line front end of the modelvault library. See `mvault --help` and the
//! README. Exit codes: 0 ok, 1 other error, 2 bad arguments, 3 wrong passphrase, 4 vault in use,
//! 5 not found, 6 damaged or tampered, 7 invalid input, 8 unsafe pickle refused, 9 wrong signer,
//! 70 internal error; 130, 143, 129 when `get` is interrupted by SIGINT, SIGTERM, SIGHUP. With
//! `--json`, a failure is one JSON line on stderr, `{"error": MESSAGE, "code": EXIT_CODE}`
//! (argument errors too, when `--json` is among the arguments). Before anything else it disables
//! core dumps for the process ([`modelvault::harden_process`]).

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
    let args = match cli::args::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => parse_failed(e),
    };
    let json = args.global.json;
    // Before any passphrase or key is in memory: no core dumps for this process.
    if let Err(e) = modelvault::harden_process() {
        cli::output::error(
            json,
            &format!("{}; refusing to handle keys in a process that can dump core", cli::exit::message(&e)),
            cli::exit::code(&e),
        );
        std::process::exit(cli::exit::code(&e));
    }
    let code = match std::panic::catch_unwind(|| cli::run::run(args)) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            cli::output::error(json, &cli::exit::message(&e), cli::exit::code(&e));
            cli::exit::code(&e)
        }
        Err(_) => {
            let (in_redb, what) = PANIC.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_default();
            if in_redb {
                // redb trusts its pages on hot paths and panics on some corrupt ones; a vault over
                // the size checked at open can reach one. That is damage, not a bug of ours.
                let msg = format!(
                    "the vault file is damaged: the storage engine failed on a corrupt page ({what}); run `mvault verify` and restore the vault from a backup"
                );
                cli::output::error(json, &msg, 6);
                6
            } else {
                let msg = format!(
                    "internal error (a bug; the vault was not changed by this command's unfinished write): {what}"
                );
                if json {
                    cli::output::error(true, &msg, 70);
                } else {
                    eprintln!("mvault: {msg}");
                }
                70
            }
        }
    };
    std::process::exit(code);
}

/// Ends the process after a command line clap could not parse. Help and version requests, and
/// errors without `--json` among the arguments, are printed by clap as text; with `--json`, the
/// error is one JSON line on stderr (its message without the usage text) and the exit code 2.
fn parse_failed(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    let json = std::env::args_os().skip(1).take_while(|a| a != "--").any(|a| a == "--json");
    let shown = matches!(
        e.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if shown || !json {
        e.exit();
    }
    let text = e.render().to_string();
    let message = text.split("\n\n").next().unwrap_or("").trim();
    let message = message.strip_prefix("error: ").unwrap_or(message);
    cli::output::error(true, message, e.exit_code());
    std::process::exit(e.exit_code());
}
