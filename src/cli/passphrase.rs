//! Where a passphrase comes from: a file, a file descriptor, a command, or a no-echo prompt on the
//! terminal. Never from the command line. From a file, descriptor or command, one trailing `\n`
//! (or `\r\n`) is removed and nothing else: no trimming, truncation or normalisation.

use std::io::Read;
use std::path::Path;

use modelvault::{Error, Passphrase, Result};
use zeroize::Zeroizing;

use super::args::Global;

fn strip_newline(mut v: Vec<u8>) -> Vec<u8> {
    if v.last() == Some(&b'\n') {
        v.pop();
        if v.last() == Some(&b'\r') {
            v.pop();
        }
    }
    v
}

/// Longest passphrase read from a file, descriptor or command (64 KiB): a source that never ends
/// (a device, a runaway command) fails fast instead of filling memory.
pub const MAX_PASSPHRASE_BYTES: u64 = 64 * 1024;

fn read_all(r: impl Read, what: &str) -> Result<Passphrase> {
    let mut buf = Zeroizing::new(Vec::new());
    r.take(MAX_PASSPHRASE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::Io { context: format!("reading the passphrase from {what}"), source: e })?;
    if buf.len() as u64 > MAX_PASSPHRASE_BYTES {
        return Err(Error::InvalidInput(format!(
            "the passphrase from {what} is longer than {MAX_PASSPHRASE_BYTES} bytes: is it the right file?"
        )));
    }
    let v = strip_newline(std::mem::take(&mut *buf));
    Passphrase::new(v).map_err(|_| Error::InvalidInput(format!("the passphrase from {what} is empty")))
}

/// True if a non-interactive source was given.
pub fn has_source(g: &Global) -> bool {
    g.passphrase_file.is_some() || g.passphrase_fd.is_some() || g.passphrase_command.is_some()
}

/// Reads the passphrase from the first source given, else prompts (`confirm`: ask twice).
///
/// Errors: [`Error::InvalidInput`] when no source is given and there is no terminal.
pub fn obtain(g: &Global, prompt: &str, confirm: bool) -> Result<Passphrase> {
    if let Some(f) = &g.passphrase_file {
        let file = std::fs::File::open(f)
            .map_err(|e| Error::Io { context: format!("opening passphrase file {}", f.display()), source: e })?;
        return read_all(file, &format!("file {}", f.display()));
    }
    if let Some(fd) = g.passphrase_fd {
        let path = format!("/dev/fd/{fd}");
        let file = std::fs::File::open(Path::new(&path)).map_err(|_| {
            Error::InvalidInput(format!("--passphrase-fd {fd}: no such open file descriptor in this process"))
        })?;
        return read_all(file, &format!("file descriptor {fd}"));
    }
    if let Some(cmd) = &g.passphrase_command {
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .map_err(|e| Error::Io { context: "running --passphrase-command".into(), source: e })?;
        let out = child.stdout.take().expect("stdout is piped");
        let read = read_all(out, "--passphrase-command");
        let killed = matches!(&read, Err(e) if e.to_string().contains("longer than"));
        if killed {
            let _ = child.kill();
        }
        let status =
            child.wait().map_err(|e| Error::Io { context: "running --passphrase-command".into(), source: e })?;
        if !status.success() && !killed {
            return Err(Error::InvalidInput(format!("--passphrase-command failed ({status})")));
        }
        let pass = read?;
        return Ok(pass);
    }
    let no_tty = || {
        Error::InvalidInput(
            "no passphrase source given and no terminal to ask on: use --passphrase-file, --passphrase-fd, --passphrase-command or MVAULT_PASSPHRASE_FILE".into(),
        )
    };
    let first = Zeroizing::new(rpassword::prompt_password(prompt).map_err(|_| no_tty())?);
    if confirm {
        let second = Zeroizing::new(rpassword::prompt_password("Repeat the passphrase: ").map_err(|_| no_tty())?);
        if *first != *second {
            return Err(Error::InvalidInput("the two passphrases differ".into()));
        }
    }
    Passphrase::new(first.as_bytes().to_vec())
}
