//! What the user sees of a library error: its exit code, and the message with the hint that
//! names this CLI's flags and commands. The library's messages speak of paths, models and
//! limits only; this file owns every `mvault`-specific addition to them: hints after a message,
//! and this CLI's words for a library [`Remedy`] or [`Input`] (a flag where the library names
//! its input, a command where it says what to do). It must never change what a message says
//! otherwise.

use modelvault::{Error, Input, Remedy};

/// The process exit code for an error (see README, "Exit codes").
///
/// 1 other, 3 wrong passphrase (or no slot opened within the unlock limits), 4 vault in use,
/// 5 not found, 6 damaged or tampered, 7 invalid input, 8 unsafe pickle refused, 9 signed by a
/// key other than the one required. (2 is left to the argument parser.)
pub fn code(e: &Error) -> i32 {
    match e.base() {
        Error::WrongPassphrase | Error::WrongIdentity(_) | Error::UnlockLimit(_) => 3,
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

/// The message the user sees: the library's message, then the [`hint`] if there is one; for
/// an [`Error::Guided`], the [`flag`] of its input, its error's message and the [`remedy`]'s
/// words.
pub fn message(e: &Error) -> String {
    if let Error::Guided { input, error, remedy: r } = e {
        return format!(
            "{}{}{}",
            input.map(flag).unwrap_or_default(),
            message(error),
            r.as_ref().map(remedy).unwrap_or_default()
        );
    }
    match hint(e) {
        Some(h) => format!("{e}{h}"),
        None => e.to_string(),
    }
}

/// The flag that gives a library [`Input`].
pub fn flag(i: Input) -> &'static str {
    match i {
        Input::Condition => "--where",
        Input::MinShared => "--min-shared",
        Input::Output => "-o",
        _ => "",
    }
}

/// This CLI's words for a library [`Remedy`], with the same leading punctuation as the
/// remedy's own `Display`; a remedy this build does not know is shown as the library says it.
pub fn remedy(r: &Remedy) -> String {
    match r {
        Remedy::WholeFile => ": `mvault get` without --tensor writes the whole file".into(),
        Remedy::TensorFormats => {
            ": --tensor works on safetensors and GGUF files; `mvault get` without --tensor writes whole files".into()
        }
        Remedy::TensorOutputFile { example } => {
            format!(": with --tensor, -o names the output file (e.g. -o {})", example.display())
        }
        Remedy::NameTensor => ": pass --tensor NAME (`mvault inspect` lists them)".into(),
        Remedy::InspectFiles { version } => format!(": `mvault inspect {version}` lists its files"),
        Remedy::InspectTensors { version } => format!(": `mvault inspect {version}` lists its tensors"),
        Remedy::ListFiles => ": `mvault show` lists its files".into(),
        Remedy::ChooseFile => ": choose one with --file PATH".into(),
        Remedy::ListAllowed => ": `mvault allow list` shows it".into(),
        Remedy::SlotPassphrase { slot } => format!(
            ": give it (--slot-passphrase-file {slot}=FILE) or pass --remove-other-slots to drop slots without one; \
             nothing was changed"
        ),
        Remedy::ResumeRotation => ": run `mvault key rotate --resume` first".into(),
        Remedy::ChangeSlotPassphrase { slot } => {
            format!(": choose another name, or change its passphrase with `mvault key passwd --slot-name {slot}`")
        }
        Remedy::ListSlots => ": `mvault key list` lists them".into(),
        Remedy::UnlockWithAnotherSlot => {
            " this command unlocked with: unlock with another slot (--slot NAME) to remove it".into()
        }
        Remedy::UnlockByName { not_tried } => format!(
            " without --slot; not tried: {}: if the passphrase is for one of them, unlock with `--slot NAME`",
            modelvault::remedy::quoted(not_tried)
        ),
        Remedy::UnlockWithIdentity => ": pass --identity FILE (or set MVAULT_IDENTITY_FILE) instead".into(),
        Remedy::AcceptRollback => ": if you put this copy here on purpose (a backup restored), run the command \
             again with --accept-rollback; otherwise do not trust it, and find the copy you last used"
            .into(),
        Remedy::AddRecipientSlotAgain { slot } => format!(
            ": check its recipients in `mvault key list`; if they are right, add them again under a new name \
             (`mvault key add NEW --recipient ...`), then run `mvault key remove {slot}`"
        ),
        Remedy::UnlockSlot { slot } => format!(": if the passphrase is for that slot, unlock with `--slot {slot}`"),
        Remedy::SignerKeyForm => ", as `mvault signer show` prints them".into(),
        Remedy::ListTrusted => ": `mvault trust list` lists them".into(),
        Remedy::TrustKey => ": add it with `mvault trust add NAME PUBKEY`".into(),
        Remedy::RepairByWriting => ": run any mvault command on it once as a user who may write the file".into(),
        Remedy::OtherOutput => ", whatever --force says; choose another output path".into(),
        Remedy::RaiseMemoryLimit => "; raise it with --max-memory-mib N (or narrow the query)".into(),
        Remedy::RaiseTimeLimit => "; raise it with --max-seconds N (or narrow the query)".into(),
        Remedy::FixQueryLimits => " --max-seconds must be a positive number and --max-memory-mib at least 1".into(),
        Remedy::FinishErasure => "; run `mvault rm --erase --resume` to finish it".into(),
        Remedy::RebuildIndex => "; run `mvault gc`, which rebuilds the index".into(),
        Remedy::RestoreBeforeErasing { resuming } => format!(
            "; rm --erase{} refused: nothing was deleted; restore the record from a backup",
            if *resuming { " --resume" } else { "" }
        ),
        other => other.to_string(),
    }
}
