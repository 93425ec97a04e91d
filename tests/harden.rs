//! No core dumps while keys are in memory: `mvault` sets `RLIMIT_CORE` to 0 before it reads a
//! passphrase. (The library side is in `harden_lib.rs`: it changes the whole test process, so it
//! runs in a binary of its own.)

mod common;

use common::*;

/// The soft and hard "Max core file size" of a `/proc/PID/limits` text.
fn core_limits(limits: &str) -> (String, String) {
    let line = limits.lines().find(|l| l.starts_with("Max core file size")).expect("a core size line");
    let f: Vec<&str> = line["Max core file size".len()..].split_whitespace().collect();
    (f[0].to_string(), f[1].to_string())
}

#[test]
fn mvault_disables_core_dumps_before_it_reads_the_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    cli_init(dir.path());
    let seen = dir.path().join("limits.txt");
    // The passphrase command runs while mvault waits for the passphrase: it reads the limits of
    // its parent, the mvault process. mvault is started with core dumps allowed.
    let cmd =
        format!("cat /proc/$PPID/limits > '{}'; cat '{}'", seen.display(), dir.path().join("passphrase").display());
    let out = std::process::Command::new("sh")
        .args(["-c", "ulimit -c unlimited && exec \"$0\" \"$@\""])
        .arg(assert_cmd::cargo::cargo_bin("mvault"))
        .args(["--passphrase-command", &cmd, "ls"])
        .env("MVAULT_VAULT", dir.path().join("test.mvault"))
        .env_remove("MVAULT_PASSPHRASE_FILE")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(core_limits(&std::fs::read_to_string(&seen).unwrap()), ("0".into(), "0".into()));
    // The same shell without mvault does allow core dumps: the limit above is mvault's doing.
    let plain = std::process::Command::new("sh").args(["-c", "ulimit -c unlimited && cat /proc/self/limits"]).output();
    let plain = String::from_utf8(plain.unwrap().stdout).unwrap();
    assert_eq!(core_limits(&plain).0, "unlimited");
}
