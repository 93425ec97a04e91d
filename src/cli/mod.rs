//! The `mvault` command line: argument parsing (clap), passphrase sources, progress bars,
//! output formats, exit codes and hints. Every command is a thin call into the library
//! (`commands/`); nothing here reads or writes the vault file itself.

pub mod args;
pub mod commands;
pub mod exit;
pub mod output;
pub mod parse;
pub mod passphrase;
pub mod progress;
pub mod run;
pub mod session;
pub mod signals;
