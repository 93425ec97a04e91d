//! What to do about an error or a problem, and which of the caller's inputs it is about, as
//! data: [`Remedy`] and [`Input`]. Their `Display` says it in the library's own terms (paths,
//! versions, slots, limits); a front end words them its own way (the `mvault` CLI names its
//! flags and commands, `src/cli/exit.rs`). This module must never name a front end's flag or
//! command.

use std::fmt;
use std::path::PathBuf;

/// Which of the caller's inputs an error is about ([`crate::Error::Guided`]). Its `Display`
/// (the library's name for it) comes right before the error's own message, which starts with
/// its own punctuation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub enum Input {
    /// The SQL condition that selects versions ([`crate::Vault::list_where`]'s `expr`).
    Condition,
    /// The fraction of stored bytes two versions share to be linked
    /// ([`crate::Vault::families`]'s `min_shared`).
    MinShared,
    /// The output path of a tensor read ([`crate::Vault::get_tensors`]'s `out`).
    Output,
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Input::Condition => "the query condition",
            Input::MinShared => "the minimum shared fraction",
            Input::Output => "the output path",
        })
    }
}

/// What the caller can do next about an error ([`crate::Error::Guided`]) or a problem
/// ([`crate::Problem::remedy`]). Its `Display` comes right after the message it completes and
/// starts with its own punctuation (`": "`, `"; "`, `", "` or a space). Names in it are escaped
/// for display.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub enum Remedy {
    /// Read the whole file: its tensor cannot be written as safetensors.
    WholeFile,
    /// Read whole files: tensors are read from safetensors and GGUF files only.
    TensorFormats,
    /// The output of a tensor read names the one file to write, such as `example`.
    TensorOutputFile {
        /// An output path that would do.
        example: PathBuf,
    },
    /// Name at least one tensor; the version's inspection lists them.
    NameTensor,
    /// The inspection of `version` (`name@number`) lists its files.
    InspectFiles {
        /// The version, `name@number`.
        version: String,
    },
    /// The inspection of `version` (`name@number`) lists its tensors.
    InspectTensors {
        /// The version, `name@number`.
        version: String,
    },
    /// The version's listing names its files.
    ListFiles,
    /// Choose one of the version's files by its path.
    ChooseFile,
    /// The vault's allow-list shows what is on it.
    ListAllowed,
    /// Give key slot `slot` a passphrase for the rotation, or let the rotation remove the slots
    /// without one; nothing was changed.
    SlotPassphrase {
        /// The slot without a passphrase.
        slot: String,
    },
    /// Resume the unfinished master-key rotation first.
    ResumeRotation,
    /// Choose another slot name, or change the passphrase of slot `slot`.
    ChangeSlotPassphrase {
        /// The slot that exists.
        slot: String,
    },
    /// The vault's list of key slots names them.
    ListSlots,
    /// Unlock with another slot to remove the slot this handle was unlocked with.
    UnlockWithAnotherSlot,
    /// Unlock with one of the slots not tried, by name.
    UnlockByName {
        /// The slots not tried, escaped.
        not_tried: Vec<String>,
    },
    /// Unlock with a private key (an age identity or SSH key) instead of a passphrase.
    UnlockWithIdentity,
    /// If the older copy is wanted (a backup restored on purpose), open it telling the vault to
    /// accept the rollback.
    AcceptRollback,
    /// Check the recipients listed for slot `slot`; if they are right, add a recipient slot for
    /// them under a new name, then remove this one.
    AddRecipientSlotAgain {
        /// The slot, escaped.
        slot: String,
    },
    /// Unlock with slot `slot` by name.
    UnlockSlot {
        /// The slot not tried, escaped.
        slot: String,
    },
    /// A public key is written as the vault's signing key is shown: 64 hex digits.
    SignerKeyForm,
    /// The list of trusted keys names them.
    ListTrusted,
    /// Trust the key under that name first.
    TrustKey,
    /// Open the vault once for writing, as a user who may write the file: that repairs it.
    RepairByWriting,
    /// Choose another output path: the vault's own file is never written over, even when told
    /// to overwrite.
    OtherOutput,
    /// Raise the query's memory limit, or narrow the query.
    RaiseMemoryLimit,
    /// Raise the query's time limit, or narrow the query.
    RaiseTimeLimit,
    /// The query limits must be a positive number of seconds and at least 1 MiB.
    FixQueryLimits,
    /// Finish the unfinished erasure (resume it).
    FinishErasure,
    /// Collect garbage: that rebuilds the chunk index.
    RebuildIndex,
    /// An erasure (or, with `resuming`, finishing one) was refused and nothing was deleted:
    /// restore the damaged record from a backup.
    RestoreBeforeErasing {
        /// True when finishing an unfinished erasure was refused.
        resuming: bool,
    },
}

impl fmt::Display for Remedy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Remedy::WholeFile => f.write_str(": read the whole file instead"),
            Remedy::TensorFormats => {
                f.write_str(": tensors are read from safetensors and GGUF files only; read whole files instead")
            }
            Remedy::TensorOutputFile { example } => {
                write!(f, ": a tensor read writes one file, which the output path names (e.g. {})", example.display())
            }
            Remedy::NameTensor => f.write_str(": name at least one (the version's inspection lists them)"),
            Remedy::InspectFiles { version } => write!(f, ": the inspection of {version} lists its files"),
            Remedy::InspectTensors { version } => write!(f, ": the inspection of {version} lists its tensors"),
            Remedy::ListFiles => f.write_str(": the version's listing names its files"),
            Remedy::ChooseFile => f.write_str(": choose one by its path"),
            Remedy::ListAllowed => f.write_str(": the allow-list shows what is on it"),
            Remedy::SlotPassphrase { .. } => f.write_str(
                ": give a passphrase for it, or let the rotation remove the slots without one; nothing was changed",
            ),
            Remedy::ResumeRotation => f.write_str(": resume it first"),
            Remedy::ChangeSlotPassphrase { .. } => {
                f.write_str(": choose another name, or change that slot's passphrase")
            }
            Remedy::ListSlots => f.write_str(": the vault's list of key slots names them"),
            Remedy::UnlockWithAnotherSlot => {
                f.write_str(" this vault was unlocked with: unlock with another slot to remove it")
            }
            Remedy::UnlockByName { not_tried } => write!(
                f,
                " without a slot named; not tried: {}: if the passphrase is for one of them, unlock with that slot \
                 by name",
                quoted(not_tried)
            ),
            Remedy::UnlockWithIdentity => f.write_str(": unlock it with a private key (an age identity or SSH key)"),
            Remedy::AcceptRollback => f.write_str(
                ": if you put this copy here on purpose (a backup restored), open it accepting the rollback; otherwise do not trust it, and find the copy you last used",
            ),
            Remedy::AddRecipientSlotAgain { slot } => write!(
                f,
                ": check the recipients the vault lists for '{slot}'; if they are right, add a recipient slot for \
                 them under a new name, then remove '{slot}'"
            ),
            Remedy::UnlockSlot { .. } => f.write_str(": if the passphrase is for that slot, unlock with it by name"),
            Remedy::SignerKeyForm => f.write_str(", as a vault shows its signing public key"),
            Remedy::ListTrusted => f.write_str(": the list of trusted keys names them"),
            Remedy::TrustKey => f.write_str(": trust its public key under that name first"),
            Remedy::RepairByWriting => f.write_str(": open it once for writing, as a user who may write the file"),
            Remedy::OtherOutput => f.write_str(", even when told to overwrite; choose another output path"),
            Remedy::RaiseMemoryLimit => f.write_str("; raise the query's memory limit (or narrow the query)"),
            Remedy::RaiseTimeLimit => f.write_str("; raise the query's time limit (or narrow the query)"),
            Remedy::FixQueryLimits => {
                f.write_str(" the time limit must be a positive number of seconds and the memory limit at least 1 MiB")
            }
            Remedy::FinishErasure => f.write_str("; finish it (resume the erasure)"),
            Remedy::RebuildIndex => f.write_str("; collect garbage, which rebuilds the index"),
            Remedy::RestoreBeforeErasing { resuming } => write!(
                f,
                "; {} refused: nothing was deleted; restore the record from a backup",
                if *resuming { "finishing the erasure" } else { "the erasure" }
            ),
        }
    }
}

/// `names` quoted and joined: `'a', 'b'`.
pub fn quoted(names: &[String]) -> String {
    names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")
}
