//! One file per command. Each has a `run(global, args)` that parses what the library cannot take
//! as given, calls one library operation and prints its report (text, or JSON with `--json`);
//! it returns the exit code for outcomes that are not errors but still fail (damage found). No
//! command reads the vault other than through the library.

pub mod alias;
pub mod allow;
pub mod cat;
pub mod describe;
pub mod diff;
pub mod families;
pub mod forget;
pub mod gc;
pub mod get;
pub mod info;
pub mod init;
pub mod inspect;
pub mod key;
pub mod log;
pub mod ls;
pub mod metric;
pub mod mount;
pub mod put;
pub mod query;
pub mod remote;
pub mod rm;
pub mod scan;
pub mod show;
pub mod signer;
pub mod similar;
pub mod stats;
pub mod sync;
pub mod tag;
pub mod trust;
pub mod untag;
pub mod verify;
