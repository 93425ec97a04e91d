//! The `mvault` command line: argument parsing (clap), passphrase sources, progress bars and
//! output formats. Every command is a thin call into the library.

pub mod args;
pub mod keys;
pub mod output;
pub mod passphrase;
pub mod run;
pub mod signals;
