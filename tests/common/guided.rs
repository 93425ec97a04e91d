//! Library errors that carry a remedy or name an input as data ([`modelvault::Error::Guided`]),
//! each with the text `mvault` has always printed for it and its exit code.

use modelvault::Error;

/// Errors that carry a remedy or name an input as data ([`Error::Guided`]), with the texts
/// `mvault` has always printed for them and their exit codes.
pub fn cases() -> Vec<(Error, &'static str, i32)> {
    use modelvault::{Input, Remedy};
    let g = |input: Option<Input>, error: Error, remedy: Option<Remedy>| Error::Guided {
        input,
        error: Box::new(error),
        remedy,
    };
    let bad = |m: &str, r: Remedy| g(None, Error::InvalidInput(m.into()), Some(r));
    let missing = |m: &str, r: Remedy| g(None, Error::NotFound(m.into()), Some(r));
    let slot = || "k".to_string();
    vec![
        (
            bad(
                "tensor 't' of q@1 (file 'q.gguf') has dtype Q8_0, which safetensors cannot express",
                Remedy::WholeFile,
            ),
            "tensor 't' of q@1 (file 'q.gguf') has dtype Q8_0, which safetensors cannot express: `mvault get` without \
             --tensor writes the whole file",
            7,
        ),
        (
            bad("o@1 has no tensor index (its files are onnx)", Remedy::TensorFormats),
            "o@1 has no tensor index (its files are onnx): --tensor works on safetensors and GGUF files; `mvault get` \
             without --tensor writes whole files",
            7,
        ),
        (
            bad("/d is a directory", Remedy::TensorOutputFile { example: "/d/tensors.safetensors".into() }),
            "/d is a directory: with --tensor, -o names the output file (e.g. -o /d/tensors.safetensors)",
            7,
        ),
        (
            g(
                Some(Input::Output),
                Error::InvalidInput(" ..".into()),
                Some(Remedy::TensorOutputFile { example: "tensors.safetensors".into() }),
            ),
            "-o ..: with --tensor, -o names the output file (e.g. -o tensors.safetensors)",
            7,
        ),
        (
            g(
                Some(Input::Output),
                Error::InvalidInput(" x: the file name is not valid UTF-8; choose another name".into()),
                None,
            ),
            "-o x: the file name is not valid UTF-8; choose another name",
            7,
        ),
        (
            bad("no tensor named", Remedy::NameTensor),
            "no tensor named: pass --tensor NAME (`mvault inspect` lists them)",
            7,
        ),
        (
            missing("s@1 has no file 'c'", Remedy::InspectFiles { version: "s@1".into() }),
            "s@1 has no file 'c': `mvault inspect s@1` lists its files",
            5,
        ),
        (
            missing("s@1 has no tensor 'x'", Remedy::InspectTensors { version: "s@1".into() }),
            "s@1 has no tensor 'x': `mvault inspect s@1` lists its tensors",
            5,
        ),
        (missing("s@1 has no file 'c'", Remedy::ListFiles), "s@1 has no file 'c': `mvault show` lists its files", 5),
        (bad("s@1 has 2 files", Remedy::ChooseFile), "s@1 has 2 files: choose one with --file PATH", 7),
        (
            missing("'os.system' is not on this vault's allow-list", Remedy::ListAllowed),
            "'os.system' is not on this vault's allow-list: `mvault allow list` shows it",
            5,
        ),
        (
            bad("no passphrase given for key slot 'k'", Remedy::SlotPassphrase { slot: slot() }),
            "no passphrase given for key slot 'k': give it (--slot-passphrase-file k=FILE) or pass --remove-other-slots \
             to drop slots without one; nothing was changed",
            7,
        ),
        (
            bad("a master-key rotation is unfinished", Remedy::ResumeRotation),
            "a master-key rotation is unfinished: run `mvault key rotate --resume` first",
            7,
        ),
        (
            bad("key slot 'k' already exists", Remedy::ChangeSlotPassphrase { slot: slot() }),
            "key slot 'k' already exists: choose another name, or change its passphrase with `mvault key passwd \
             --slot-name k`",
            7,
        ),
        (missing("no key slot named 'k'", Remedy::ListSlots), "no key slot named 'k': `mvault key list` lists them", 5),
        (
            bad("key slot 'k' is the one", Remedy::UnlockWithAnotherSlot),
            "key slot 'k' is the one this command unlocked with: unlock with another slot (--slot NAME) to remove it",
            7,
        ),
        (
            g(
                None,
                Error::UnlockLimit(
                    "the passphrase opened none of the 8 key slots tried, the most one unlock tries".into(),
                ),
                Some(Remedy::UnlockByName { not_tried: vec!["s7".into(), "s8".into()] }),
            ),
            "the passphrase opened none of the 8 key slots tried, the most one unlock tries without --slot; not tried: \
             's7', 's8': if the passphrase is for one of them, unlock with `--slot NAME`",
            3,
        ),
        (
            g(None, Error::UnlockLimit("... every slot".into()), Some(Remedy::UnlockSlot { slot: "big".into() })),
            "... every slot: if the passphrase is for that slot, unlock with `--slot big`",
            3,
        ),
        (
            bad("'xy' is not an Ed25519 public key: give 64 hex digits", Remedy::SignerKeyForm),
            "'xy' is not an Ed25519 public key: give 64 hex digits, as `mvault signer show` prints them",
            7,
        ),
        (
            missing("no key is trusted as 'a'", Remedy::ListTrusted),
            "no key is trusted as 'a': `mvault trust list` lists them",
            5,
        ),
        (
            missing("no key is trusted as 'a'", Remedy::TrustKey),
            "no key is trusted as 'a': add it with `mvault trust add NAME PUBKEY`",
            5,
        ),
        (
            g(
                None,
                Error::Storage {
                    context: "opening /v read-only".into(),
                    detail: "it needs a repair".into(),
                    source: None,
                },
                Some(Remedy::RepairByWriting),
            ),
            "vault storage error while opening /v read-only: it needs a repair: run any mvault command on it once as a \
             user who may write the file",
            1,
        ),
        (
            bad("/v is this vault's own file (/v): refusing to write over it", Remedy::OtherOutput),
            "/v is this vault's own file (/v): refusing to write over it, whatever --force says; choose another output \
             path",
            7,
        ),
        (
            g(
                Some(Input::MinShared),
                Error::InvalidInput(" 2: give a fraction greater than 0 and at most 1".into()),
                None,
            ),
            "--min-shared 2: give a fraction greater than 0 and at most 1",
            7,
        ),
        (
            bad("query limits:", Remedy::FixQueryLimits),
            "query limits: --max-seconds must be a positive number and --max-memory-mib at least 1",
            7,
        ),
        (
            g(Some(Input::Condition), Error::InvalidInput(": the expression is 9 bytes; the limit is 8".into()), None),
            "--where: the expression is 9 bytes; the limit is 8",
            7,
        ),
        (
            g(
                Some(Input::Condition),
                Error::InvalidInput(" stopped: it ran past the time limit of 0.5 s".into()),
                Some(Remedy::RaiseTimeLimit),
            ),
            "--where stopped: it ran past the time limit of 0.5 s; raise it with --max-seconds N (or narrow the query)",
            7,
        ),
        (
            bad("query stopped: it needs more than the memory limit of 16 MiB", Remedy::RaiseMemoryLimit),
            "query stopped: it needs more than the memory limit of 16 MiB; raise it with --max-memory-mib N (or narrow \
             the query)",
            7,
        ),
        (
            g(None, Error::Damaged("m@2 is missing".into()), Some(Remedy::RestoreBeforeErasing { resuming: true })),
            "m@2 is missing; rm --erase --resume refused: nothing was deleted; restore the record from a backup",
            6,
        ),
    ]
}
