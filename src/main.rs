//! `mvault`: the command-line front end of the modelvault library. See `mvault --help` and the
//! README. Exit codes: 0 ok, 1 other error, 2 bad arguments, 3 wrong passphrase, 4 vault in use,
//! 5 not found, 6 damaged or tampered, 7 invalid input, 70 internal error.

mod cli;

use clap::Parser;

fn main() {
    std::panic::set_hook(Box::new(|info| {
        // `println!` panics when stdout is a closed pipe (`mvault ls | head`): that is not a bug,
        // so end quietly as a SIGPIPE'd process would.
        let msg = info.payload().downcast_ref::<String>().map(String::as_str).unwrap_or("");
        if msg.contains("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        eprintln!(
            "mvault: internal error (a bug; the vault was not changed by this command's unfinished write): {info}"
        );
        std::process::exit(70);
    }));
    let args = cli::args::Cli::parse();
    let code = match cli::run::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mvault: error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
