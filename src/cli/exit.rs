//! What the user sees of a library error: its exit code, and the message with the hint that
//! names this CLI's flags and commands. The library's messages speak of paths, models and
//! limits only; this file owns every `mvault`-specific addition to them. It must never change
//! what a message says, only add the hint after it.

use modelvault::Error;

/// The process exit code for an error (see README, "Exit codes").
///
/// 1 other, 3 wrong passphrase (or no slot opened within the unlock limits), 4 vault in use,
/// 5 not found, 6 damaged or tampered, 7 invalid input, 8 unsafe pickle refused, 9 signed by a
/// key other than the one required. (2 is left to the argument parser.)
pub fn code(e: &Error) -> i32 {
    match e {
        Error::WrongPassphrase | Error::UnlockLimit(_) => 3,
        Error::VaultInUse(_) => 4,
        Error::VaultNotFound(_) | Error::ModelNotFound(_) | Error::VersionNotFound { .. } | Error::NotFound(_) => 5,
        Error::UntrustedSigner { .. } => 9,
        Error::Damaged(_) | Error::BadSignature { .. } | Error::KeySlotDamaged(_) | Error::NotAVault { .. } => 6,
        Error::InvalidName { .. }
        | Error::InvalidInput(_)
        | Error::OutputExists(_)
        | Error::VaultExists(_)
        | Error::UnsupportedVersion { .. } => 7,
        Error::UnsafePickle { .. } => 8,
        _ => 1,
    }
}

/// What to do next with this CLI, for the errors whose remedy is a flag or a command; `None`
/// for the others. The text is appended as it is to the library's message, so it starts with
/// its own punctuation (`": "`, `"; "`, `" ("`).
pub fn hint(e: &Error) -> Option<String> {
    Some(match e {
        Error::VaultNotFound(p) => format!(": create one with `mvault init --vault {}`", p.display()),
        Error::VaultExists(_) => "; choose another --vault path".into(),
        Error::VaultInUse(_) => ": wait for it, or pass --wait SECONDS to retry".into(),
        Error::ModelNotFound(_) => ": `mvault ls` lists the models".into(),
        Error::VersionNotFound { name, .. } => format!(": `mvault ls {name}` lists them"),
        Error::UnsafePickle { .. } => {
            " (to store it anyway: --allow GLOBAL for a global you trust, or --allow-unsafe-pickle)".into()
        }
        Error::OutputExists(_) => "; remove it or pass --force".into(),
        Error::RemoteUnsafe { .. } => {
            " (to use it from one machine at a time: `mvault remote add ... --single-writer`)".into()
        }
        _ => return None,
    })
}

/// The message the user sees: the library's message, then the [`hint`] if there is one.
pub fn message(e: &Error) -> String {
    match hint(e) {
        Some(h) => format!("{e}{h}"),
        None => e.to_string(),
    }
}
