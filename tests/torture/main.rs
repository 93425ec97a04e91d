//! Torture suite: crashes, corruption, tampering, concurrency and a full disk, all through the
//! `mvault` binary (or through redb for tampering), checking that the vault never panics, never
//! hangs, never loses a committed version and never writes out a wrong byte.
//!
//! Run it in release mode (debug builds of redb panic on some corruption on purpose):
//!
//! ```sh
//! cargo test --release --test torture -- --nocapture                      # bounded (CI, a few minutes)
//! MVAULT_TORTURE=long cargo test --release --test torture -- --nocapture  # long (about an hour)
//! MVAULT_TORTURE_SEED=0x1234 cargo test --release --test torture -- --nocapture  # replay a seed
//! ```
//!
//! | part                       | bounded (default)                | long (`MVAULT_TORTURE=long`)       |
//! |----------------------------|----------------------------------|-------------------------------------|
//! | crash: writers SIGKILLed   | 50 landed kills (+1 reopen kill each) | 400 landed kills (+1 reopen kill each) |
//! | (kill moments)             | drawn from each command's measured run; rotate/erase also in the rewrite window | same |
//! | corruption trials          | 500 (8 commands each)            | 5,000                               |
//! | tamper                     | fixed cases                      | same                                |
//! | concurrency rounds         | 1 of each scenario               | 5 of each scenario                  |
//! | disk full (root only)      | 1 tmpfs of 8 MiB                 | same                                |
//!
//! The seed is fixed in bounded mode (so CI is reproducible) and taken from the clock in long
//! mode; every part prints the seed it used, and `MVAULT_TORTURE_SEED` replays it. The random
//! generator is a 64-bit xorshift, so no crate is needed.
//!
//! Outcome tables go to stderr (visible with `--nocapture`); the assertions are on them: no panic
//! (exit 70 or a signal), no hang (20 s per command), no wrong byte written out, no lost version.
//!
//! One module per part: `crash`, `corruption` (random damage, and zeroed pages at open),
//! `tamper`, `concurrency` and `disk_full`; `harness` runs the binary, `../common` holds the
//! helpers shared with the other test files (the hand-made redb edits in `common::tamper`).

#[path = "../common/mod.rs"]
mod common;
mod harness;

mod concurrency;
mod corruption;
mod crash;
mod disk_full;
mod tamper;
