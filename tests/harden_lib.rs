//! Unlocking a vault through the library disables core dumps for the process (`RLIMIT_CORE` 0,
//! not dumpable). Alone in its binary: it changes the whole test process for good.

mod common;

use common::*;
use modelvault::{OpenOptions, Vault};

#[test]
fn unlocking_a_vault_makes_the_process_non_dumpable() {
    use rustix::process::{DumpableBehavior, Resource, Rlimit, dumpable_behavior, getrlimit, setrlimit};
    let dir = tempfile::tempdir().unwrap();
    cli_init(dir.path());
    // Start from a process that could dump core.
    let hard = getrlimit(Resource::Core).maximum;
    setrlimit(Resource::Core, Rlimit { current: hard, maximum: hard }).unwrap();
    assert_eq!(dumpable_behavior().unwrap(), DumpableBehavior::Dumpable);
    let v = Vault::open(dir.path().join("test.mvault"), &OpenOptions::default()).unwrap().unlock(&pass()).unwrap();
    assert_eq!(dumpable_behavior().unwrap(), DumpableBehavior::NotDumpable);
    assert_eq!(getrlimit(Resource::Core), Rlimit { current: Some(0), maximum: Some(0) });
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let core = limits.lines().find(|l| l.starts_with("Max core file size")).unwrap();
    assert_eq!(core.split_whitespace().skip(4).take(2).collect::<Vec<_>>(), ["0", "0"], "{core}");
    // A second unlock (and so a second call) is harmless.
    drop(v);
    let v = Vault::open(dir.path().join("test.mvault"), &OpenOptions::default()).unwrap().unlock(&pass()).unwrap();
    assert_eq!(dumpable_behavior().unwrap(), DumpableBehavior::NotDumpable);
    drop(v);
}
