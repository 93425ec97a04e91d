//! Real keys for recipient slots, from the real `age-keygen` and `ssh-keygen` (installed by
//! `.ci/run`), and age files from the real `age` command. It must never make a key itself.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `cmd`, panicking with its stderr when it fails.
pub fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e} (is it installed? .ci/run installs it)"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// A fresh age identity file from `age-keygen`; returns (file, recipient).
pub fn age_identity(dir: &Path, name: &str) -> (PathBuf, String) {
    let f = dir.join(name);
    run(Command::new("age-keygen").arg("-o").arg(&f));
    let text = std::fs::read_to_string(&f).unwrap();
    let r = text.lines().find_map(|l| l.strip_prefix("# public key: ")).expect("age-keygen names the public key");
    (f, r.to_string())
}

/// A fresh unprotected SSH key of `kind` (ed25519, rsa) from `ssh-keygen`; returns (private key
/// file, public key line).
pub fn ssh_identity(dir: &Path, name: &str, kind: &str) -> (PathBuf, String) {
    let f = dir.join(name);
    let mut c = Command::new("ssh-keygen");
    c.args(["-q", "-t", kind, "-N", "", "-C", "test@host", "-f"]).arg(&f);
    if kind == "rsa" {
        c.args(["-b", "2048"]);
    }
    run(&mut c);
    (f.clone(), std::fs::read_to_string(f.with_extension("pub")).unwrap().trim().to_string())
}

/// `payload` encrypted to `recipient` by the `age` command, as a binary age file.
pub fn age_encrypt(recipient: &str, payload: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("age")
        .args(["-r", recipient])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("age is installed (.ci/run installs it)");
    child.stdin.take().unwrap().write_all(payload).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "age -r failed");
    out.stdout
}
