//! Process hardening for a process that holds vault keys: no core dumps.
//!
//! A core dump (SIGQUIT, SIGSEGV, SIGABRT, or `gcore` by the same user) holds everything in the
//! process's memory: the master, chunk and metadata keys, the passphrase and decrypted model
//! bytes. [`harden_process`] turns dumps off for the whole process before any of that is in
//! memory. This module owns only that; it must never use `unsafe` (it goes through `rustix`'s safe
//! wrappers) and never raise a limit.
//!
//! What it does not cover (see SECURITY.md, "Core dumps"): swap (pages can still be written to a
//! swap device), a debugger or `/proc/PID/mem` reader running as root (CAP_SYS_PTRACE), and
//! operating systems other than Linux for the dumpable flag (elsewhere on Unix only the core
//! size limit is set; on other systems nothing is done).

use crate::{Error, Result};

/// Disables core dumps for the calling process, for good:
///
/// - `RLIMIT_CORE` soft and hard limits set to 0 bytes (on every Unix), so no core file is
///   written and nothing in the process can raise the limit again (children inherit it);
/// - on Linux, `prctl(PR_SET_DUMPABLE, 0)`: no core dump whatever the limit or
///   `core_pattern` (including a pipe to a crash collector), and processes of the same user
///   cannot `ptrace` it or read its `/proc/PID/mem`.
///
/// `mvault` calls it first thing, before a passphrase is read; [`crate::Vault::create`] and
/// [`crate::Vault::unlock`] call it before they derive a key, so a program embedding the
/// library is covered from its first vault on. Call it yourself earlier if the program holds a
/// passphrase before that. Calling it again is harmless. It changes the whole process: a
/// debugger of the same user can no longer attach, and on Linux `/proc/self` entries become
/// owned by root.
///
/// Errors: [`Error::Io`] if the system refuses either call (neither is expected to fail).
pub fn harden_process() -> Result<()> {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, setrlimit};
        setrlimit(Resource::Core, Rlimit { current: Some(0), maximum: Some(0) })
            .map_err(|e| Error::io("disabling core dumps (setrlimit RLIMIT_CORE = 0)", e.into()))?;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::process::{DumpableBehavior, set_dumpable_behavior};
        set_dumpable_behavior(DumpableBehavior::NotDumpable)
            .map_err(|e| Error::io("disabling core dumps (prctl PR_SET_DUMPABLE = 0)", e.into()))?;
    }
    Ok(())
}
