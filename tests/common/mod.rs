//! Shared test helpers: where the corpus is, a vault with test-sized Argon2 parameters, and a
//! way to run the `mvault` binary; `tamper` holds the hand-made redb edits of a vault file.
#![allow(dead_code)]

pub mod faults;
pub mod guided;
pub mod hfhub;
pub mod keys;
pub mod literals;
pub mod s3;
pub mod tamper;

use std::path::{Path, PathBuf};

use modelvault::{Argon2Params, CreateOptions, OpenOptions, Passphrase, Unlocked, Vault};

/// `../shared/corpus` beside the repository.
pub fn corpus() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    assert!(p.join("MANIFEST.md").exists(), "the test corpus is expected at {}", p.display());
    p
}

/// Cheap Argon2 parameters for tests (the default costs 64 MiB and ~0.1 s per unlock).
pub fn test_params() -> Argon2Params {
    Argon2Params { memory_kib: 256, time_cost: 1, lanes: 1 }
}

pub const PASS: &str = "correct horse battery staple";

pub fn pass() -> Passphrase {
    Passphrase::new(PASS.as_bytes().to_vec()).unwrap()
}

/// A new vault in `dir`, unlocked.
pub fn new_vault(dir: &Path) -> (PathBuf, Vault<Unlocked>) {
    let path = dir.join("test.mvault");
    let v = Vault::create(&path, &pass(), &CreateOptions { argon2: test_params(), ..Default::default() }).unwrap();
    (path, v)
}

/// Opens and unlocks an existing vault.
pub fn reopen(path: &Path) -> Vault<Unlocked> {
    Vault::open(path, &OpenOptions::default()).unwrap().unlock(&pass()).unwrap()
}

/// The state directory (remembered log checkpoints) of the user a test in `dir` plays: beside
/// `dir`, so that copies of one vault in several test directories are several users' vaults,
/// and no file appears in `dir` itself.
pub fn state_dir(dir: &Path) -> PathBuf {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dir.with_file_name(format!("{name}.mvault-state"))
}

/// A command running the built `mvault` with the vault, a passphrase file and the user's state
/// directory ([`state_dir`]) set.
pub fn mvault(dir: &Path) -> assert_cmd::Command {
    let pf = dir.join("passphrase");
    if !pf.exists() {
        std::fs::write(&pf, format!("{PASS}\n")).unwrap();
    }
    let mut c = assert_cmd::Command::cargo_bin("mvault").unwrap();
    c.env("MVAULT_VAULT", dir.join("test.mvault"))
        .env("MVAULT_PASSPHRASE_FILE", &pf)
        .env_remove("MVAULT_PASSPHRASE")
        .env("MVAULT_STATE_DIR", state_dir(dir))
        .current_dir(dir);
    c
}

/// `mvault init` with test parameters in `dir`.
pub fn cli_init(dir: &Path) {
    mvault(dir)
        .args(["init", "--argon2-memory-kib", "256", "--argon2-time", "1", "--argon2-lanes", "1"])
        .assert()
        .success();
}

/// Every file under `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() { stack.push(p) } else { out.push(p) }
        }
    }
    out.sort();
    out
}

/// Does `haystack` contain `needle`?
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Runs the built `mvault` with `args` on the vault in `dir`, SIGKILLs it after `delay_ms`, and
/// returns whether it had finished successfully before the kill landed.
pub fn run_killed(dir: &Path, args: &[&std::ffi::OsStr], delay_ms: u64) -> bool {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("mvault"))
        .args(args)
        .env("MVAULT_VAULT", dir.join("test.mvault"))
        .env("MVAULT_PASSPHRASE_FILE", dir.join("passphrase"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(delay_ms));
    let _ = child.kill();
    child.wait().unwrap().success()
}

/// The `mvault` binary's exit-code mapping and hints (src/cli/exit.rs), compiled into the tests
/// so a library-level test can assert the exit code and the message the user would see.
#[path = "../../src/cli/exit.rs"]
pub mod cli_exit;

/// `e.exit_code()`: the exit code `mvault` ends with for this library error.
pub trait ExitCode {
    /// The code, as [`cli_exit::code`] maps it.
    fn exit_code(&self) -> i32;
}

impl ExitCode for modelvault::Error {
    fn exit_code(&self) -> i32 {
        cli_exit::code(self)
    }
}

/// The vault file's tables as a file holder sees them (SECURITY.md, "Byte layout"): the tests
/// that tamper with the file open it with redb directly. The library keeps its own definitions
/// private to `modelvault::store`.
pub mod tables {
    use redb::TableDefinition;

    pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
    pub const SLOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("slots");
    pub const SIGNERS: TableDefinition<u32, &[u8]> = TableDefinition::new("signers");
    pub const MODELS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("models");
    pub const VERSIONS: TableDefinition<&[u8; 40], &[u8]> = TableDefinition::new("versions");
    pub const TRUST: TableDefinition<&str, &[u8]> = TableDefinition::new("trust");
    pub const CHUNKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("chunks");
    pub const CHUNK_IDS: TableDefinition<&[u8; 32], u32> = TableDefinition::new("chunk_ids");
}
