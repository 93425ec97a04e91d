//! Every user-facing error: a non-zero exit, one clear line, and the vault left as it was.

mod common;

use common::tamper::ReadableTable;
use common::*;
use modelvault::{CreateOptions, Error, NoProgress, OpenOptions, Passphrase, PutOptions, Vault};
use predicates::str::contains as has;

fn silero() -> std::path::PathBuf {
    corpus().join("safetensors/silero_vad_16k.safetensors")
}

#[test]
fn wrong_passphrase_is_exit_3_and_distinct_from_damage() {
    let dir = tempfile::tempdir().unwrap();
    cli_init(dir.path());
    std::fs::write(dir.path().join("wrong"), "correct horse battery stapl\n").unwrap();
    mvault(dir.path())
        .env("MVAULT_PASSPHRASE_FILE", dir.path().join("wrong"))
        .args(["ls"])
        .assert()
        .code(3)
        .stderr(has("wrong passphrase"));
}

#[test]
fn long_non_ascii_passphrase_is_used_whole_and_its_prefix_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.mvault");
    let long: String = "пароль-密码-كلمة".chars().cycle().take(100).collect();
    assert_eq!(long.chars().count(), 100);
    let opts = CreateOptions { argon2: test_params(), ..Default::default() };
    drop(Vault::create(&path, &Passphrase::new(long.clone().into_bytes()).unwrap(), &opts).unwrap());
    let open = || Vault::open(&path, &OpenOptions::default()).unwrap();
    open().unlock(&Passphrase::new(long.clone().into_bytes()).unwrap()).unwrap();
    let prefix: String = long.chars().take(99).collect();
    let e = open().unlock(&Passphrase::new(prefix.into_bytes()).unwrap()).err().unwrap();
    assert!(matches!(e, Error::WrongPassphrase), "{e}");
    let fourteen: String = long.chars().take(14).collect();
    assert!(matches!(
        open().unlock(&Passphrase::new(fourteen.into_bytes()).unwrap()).err().unwrap(),
        Error::WrongPassphrase
    ));
}

#[test]
fn damaged_key_slot_is_reported_as_damage_not_wrong_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let (path, v) = new_vault(dir.path());
    drop(v);
    tamper::edit(&path, crate::common::tables::SLOTS, |t| {
        let mut rec = t.get("default").unwrap().unwrap().value().to_vec();
        rec[20] ^= 0x40;
        t.insert("default", rec.as_slice()).unwrap();
    });
    let e = Vault::open(&path, &OpenOptions::default()).unwrap().unlock(&pass()).err().unwrap();
    assert!(matches!(e, Error::KeySlotDamaged(_)), "{e}");
    assert_eq!(e.exit_code(), 6);
    assert!(e.to_string().contains("key slot 'default' is damaged"));
}

#[test]
fn vault_not_found_and_not_a_vault() {
    let dir = tempfile::tempdir().unwrap();
    mvault(dir.path()).args(["ls"]).assert().code(5).stderr(has("vault not found at")).stderr(has("mvault init"));
    std::fs::write(dir.path().join("test.mvault"), b"this is a text file, not a vault").unwrap();
    mvault(dir.path()).args(["ls"]).assert().code(6).stderr(has("is not a modelvault vault"));
}

#[test]
fn init_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    cli_init(dir.path());
    let before = std::fs::read(dir.path().join("test.mvault")).unwrap();
    mvault(dir.path())
        .args(["init", "--argon2-memory-kib", "256", "--argon2-time", "1", "--argon2-lanes", "1"])
        .assert()
        .code(7)
        .stderr(has("already exists"));
    assert_eq!(std::fs::read(dir.path().join("test.mvault")).unwrap(), before);
}

#[test]
fn vault_in_use_says_which_and_wait_retries() {
    let dir = tempfile::tempdir().unwrap();
    let (path, v) = new_vault(dir.path());
    // A reader is not kept out by the writer; a second writer is.
    mvault(dir.path()).args(["ls"]).assert().success();
    let key = format!("58{}", "66".repeat(31));
    let started = std::time::Instant::now();
    mvault(dir.path())
        .args(["trust", "add", "peer", &key, "--wait", "0.5"])
        .assert()
        .code(4)
        .stderr(has(format!("vault {} is in use by another process", path.display())))
        .stderr(has("--wait SECONDS"));
    assert!(started.elapsed() >= std::time::Duration::from_millis(500));
    let holder = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(700));
        drop(v);
    });
    mvault(dir.path()).args(["trust", "add", "peer", &key, "--wait", "10"]).assert().success();
    holder.join().unwrap();
}

#[test]
fn name_and_version_not_found() {
    let dir = tempfile::tempdir().unwrap();
    cli_init(dir.path());
    mvault(dir.path()).args(["put"]).arg(silero()).args(["--name", "s"]).assert().success().stdout("s@1\n");
    mvault(dir.path()).args(["show", "nope"]).assert().code(5).stderr(has("model 'nope' not found"));
    mvault(dir.path()).args(["show", "s@7"]).assert().code(5).stderr(has("model 's' has no version or alias '7'"));
    mvault(dir.path()).args(["get", "s@prod", "-o", "x"]).assert().code(5).stderr(has("no version or alias 'prod'"));
    mvault(dir.path()).args(["rm", "s@2"]).assert().code(5);
    assert!(!dir.path().join("x").exists());
}

#[test]
fn hostile_names_are_refused_at_every_entry_point() {
    let names: Vec<String> =
        serde_json::from_slice(&std::fs::read(corpus().join("malformed/B18_registry_names.json")).unwrap()).unwrap();
    assert_eq!(names.len(), 22);
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    let accepted: Vec<&String> =
        names.iter().filter(|n| v.put(&silero(), n, &PutOptions::default(), &NoProgress).is_ok()).collect();
    // Only `a/b` (one namespace, as in `org/name`) and the Windows device names pass the rule;
    // no path is ever built from a name.
    assert_eq!(accepted, ["a/b", "CON", "nul"]);
    for n in &names {
        if accepted.contains(&n) {
            continue;
        }
        let e = v.put(&silero(), n, &PutOptions::default(), &NoProgress).unwrap_err();
        assert!(matches!(e, Error::InvalidName { what: "model name", .. }), "{n:?}: {e}");
        assert!(!e.to_string().contains('\u{202e}'), "the RTL override must be shown escaped");
    }
    let listing = v.list(None).unwrap();
    assert_eq!(listing.models.len(), 3);
    drop(v);
    // The CLI refuses them too, with exit 7, at put, show, rm and alias.
    std::fs::write(dir.path().join("passphrase"), format!("{PASS}\n")).unwrap();
    let _ = path;
    for n in ["../../etc/passwd", "a/b/c", "team:model", "model-with-trailing-space ", "model\u{202e}gnp.exe", ""] {
        mvault(dir.path())
            .arg("put")
            .arg(silero())
            .args(["--name", n])
            .assert()
            .code(7)
            .stderr(has("invalid model name"));
        mvault(dir.path()).args(["show", n]).assert().code(7);
        mvault(dir.path()).args(["rm", "--yes", n]).assert().code(7);
        mvault(dir.path()).args(["alias", &format!("{n}@1"), "prod"]).assert().code(7);
    }
    mvault(dir.path()).args(["show", "model\u{202e}gnp.exe"]).assert().stderr(has("model\\u{202e}gnp.exe"));
}

#[test]
fn deleting_a_never_touches_a_space_or_capital_a() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = new_vault(dir.path());
    v.put(&silero(), "a", &PutOptions::default(), &NoProgress).unwrap();
    v.put(&silero(), "A", &PutOptions::default(), &NoProgress).unwrap();
    assert!(v.put(&silero(), "a ", &PutOptions::default(), &NoProgress).is_err());
    v.remove_version("a", &modelvault::VersionRef::Number(1)).unwrap();
    let l = v.list(None).unwrap();
    assert_eq!(l.models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["A"]);
    assert_eq!(l.models[0].versions.len(), 1);
}

#[test]
fn symlinks_and_special_files_are_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    let src = dir.path().join("model");
    std::fs::create_dir(&src).unwrap();
    std::fs::copy(silero(), src.join("w.safetensors")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", src.join("link")).unwrap();
    let e = v.put(&src, "m", &PutOptions::default(), &NoProgress).unwrap_err();
    assert!(e.to_string().contains("is a symbolic link inside the model directory"), "{e}");
    std::fs::remove_file(src.join("link")).unwrap();
    let fifo = src.join("pipe");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let e = v.put(&src, "m", &PutOptions::default(), &NoProgress).unwrap_err();
    assert!(e.to_string().contains("is a special file"), "{e}");
    assert!(v.list(None).unwrap().models.is_empty());
    drop(v);
    let _ = path;
}

#[test]
fn get_refuses_to_overwrite_and_never_follows_a_symlinked_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = new_vault(dir.path());
    let src = dir.path().join("model");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/f.bin"), b"payload").unwrap();
    v.put(&src, "m", &PutOptions::default(), &NoProgress).unwrap();
    let out = dir.path().join("out");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join("sub")).unwrap();
    let e = v.get("m", &modelvault::VersionRef::Latest, &out, &Default::default(), &NoProgress).unwrap_err();
    assert!(e.to_string().contains("refusing to write through it"), "{e}");
    assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none(), "a file was written through the symlink");
    std::fs::remove_file(out.join("sub")).unwrap();
    v.get("m", &modelvault::VersionRef::Latest, &out, &Default::default(), &NoProgress).unwrap();
    let e = v.get("m", &modelvault::VersionRef::Latest, &out, &Default::default(), &NoProgress).unwrap_err();
    assert!(matches!(e, Error::OutputExists(_)), "{e}");
}

#[test]
fn no_passphrase_source_and_no_terminal_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    cli_init(dir.path());
    mvault(dir.path())
        .env_remove("MVAULT_PASSPHRASE_FILE")
        .args(["ls"])
        .assert()
        .code(7)
        .stderr(has("no passphrase source given and no terminal"));
}

#[test]
fn rm_of_a_whole_model_needs_yes_without_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    cli_init(dir.path());
    mvault(dir.path()).arg("put").arg(silero()).args(["--name", "s"]).assert().success();
    mvault(dir.path()).args(["rm", "s"]).assert().code(7).stderr(has("Refusing without --yes"));
    mvault(dir.path()).args(["show", "s"]).assert().success();
    mvault(dir.path()).args(["rm", "s", "--yes"]).assert().success();
    mvault(dir.path()).args(["show", "s"]).assert().code(5);
}

#[test]
fn an_endless_passphrase_source_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    cli_init(dir.path());
    let started = std::time::Instant::now();
    mvault(dir.path())
        .env("MVAULT_PASSPHRASE_FILE", "/dev/zero")
        .args(["ls"])
        .assert()
        .code(7)
        .stderr(has("longer than 65536 bytes"));
    mvault(dir.path())
        .env_remove("MVAULT_PASSPHRASE_FILE")
        .args(["--passphrase-command", "cat /dev/zero", "ls"])
        .assert()
        .code(7)
        .stderr(has("longer than 65536 bytes"));
    mvault(dir.path())
        .env_remove("MVAULT_PASSPHRASE_FILE")
        .args(["--passphrase-fd", "99", "ls"])
        .assert()
        .code(7)
        .stderr(has("no such open file descriptor"));
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

/// Rewrites 8 bytes of the source in place the first time the put reports progress.
struct Saboteur(std::path::PathBuf, std::sync::atomic::AtomicBool);

impl modelvault::Progress for Saboteur {
    fn advance(&self, _bytes: u64) {
        if !self.1.swap(true, std::sync::atomic::Ordering::SeqCst) {
            use std::io::{Seek, Write};
            std::thread::sleep(std::time::Duration::from_millis(20));
            let mut f = std::fs::OpenOptions::new().write(true).open(&self.0).unwrap();
            f.seek(std::io::SeekFrom::Start(100)).unwrap();
            f.write_all(b"CHANGED!").unwrap();
        }
    }
}

#[test]
fn a_file_rewritten_in_place_during_put_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = new_vault(dir.path());
    let f = dir.path().join("weights.bin");
    std::fs::write(&f, vec![7u8; 3 << 20]).unwrap();
    let sab = Saboteur(f.clone(), std::sync::atomic::AtomicBool::new(false));
    let e = v.put(&f, "m", &PutOptions::default(), &sab).unwrap_err();
    assert!(e.to_string().contains("changed while it was being stored; nothing was stored"), "{e}");
    assert_eq!(e.exit_code(), 7);
    assert!(v.list(None).unwrap().models.is_empty());
}

#[test]
fn get_force_checks_every_target_before_writing_any() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = new_vault(dir.path());
    let src = dir.path().join("model");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.txt"), b"first").unwrap();
    std::fs::write(src.join("b.txt"), b"second").unwrap();
    v.put(&src, "m", &PutOptions::default(), &NoProgress).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(out.join("b.txt")).unwrap();
    let opts = modelvault::GetOptions { force: true };
    let e = v.get("m", &modelvault::VersionRef::Latest, &out, &opts, &NoProgress).unwrap_err();
    assert!(e.to_string().contains("is not a regular file"), "{e}");
    assert!(!out.join("a.txt").exists(), "a.txt was written before the refusal");
}

#[test]
fn library_messages_name_no_flag_and_the_cli_adds_its_hint() {
    use std::path::PathBuf;
    let p = || PathBuf::from("/d/models.vault");
    let unsafe_pickle =
        Error::UnsafePickle { file: "m.pkl".into(), verdict: "dangerous".into(), detail: "os.system".into() };
    // (error, what the user sees, exit code): the texts `mvault` has always printed.
    let cases = [
        (
            Error::VaultNotFound(p()),
            "vault not found at /d/models.vault: create one with `mvault init --vault /d/models.vault`",
            5,
        ),
        (
            Error::VaultExists(p()),
            "a file already exists at /d/models.vault: refusing to overwrite it; choose another --vault path",
            7,
        ),
        (
            Error::VaultInUse(p()),
            "vault /d/models.vault is in use by another process: wait for it, or pass --wait SECONDS to retry",
            4,
        ),
        (Error::ModelNotFound("m".into()), "model 'm' not found: `mvault ls` lists the models", 5),
        (
            Error::VersionNotFound { name: "m".into(), reference: "9".into() },
            "model 'm' has no version or alias '9': `mvault ls m` lists them",
            5,
        ),
        (
            unsafe_pickle,
            "m.pkl: pickle scan verdict dangerous: os.system; nothing was stored (to store it anyway: --allow GLOBAL \
             for a global you trust, or --allow-unsafe-pickle)",
            8,
        ),
        (
            Error::OutputExists(p()),
            "/d/models.vault already exists: refusing to overwrite it; remove it or pass --force",
            7,
        ),
    ];
    for (e, shown, code) in cases.into_iter().chain(common::guided::cases()) {
        let own = e.to_string();
        assert!(!own.contains("mvault ") && !own.contains("--"), "the library's message names the CLI: {own}");
        assert!(!own.starts_with("-o "), "the library's message names the CLI: {own}");
        assert_eq!(cli_exit::message(&e), shown);
        assert_eq!(e.exit_code(), code, "{shown}");
    }
    // An error without a hint is shown as the library says it.
    assert_eq!(cli_exit::message(&Error::WrongPassphrase), Error::WrongPassphrase.to_string());
    assert!(cli_exit::hint(&Error::WrongPassphrase).is_none());
}

#[test]
fn a_problems_remedy_is_data_and_the_cli_words_it() {
    use modelvault::{Problem, Remedy};
    let p = |r| Problem { model: None, version: None, file: None, detail: "d".into(), remedy: Some(r) };
    for (r, shown) in [
        (Remedy::FinishErasure, "d; run `mvault rm --erase --resume` to finish it"),
        (Remedy::RebuildIndex, "d; run `mvault gc`, which rebuilds the index"),
    ] {
        let problem = p(r.clone());
        assert!(!problem.message().contains("mvault ") && !problem.message().contains("--"), "{}", problem.message());
        assert_eq!(format!("{}{}", problem.detail, cli_exit::remedy(&r)), shown);
        let j = serde_json::to_value(&problem).unwrap();
        assert_eq!(j["remedy"], serde_json::to_value(&r).unwrap());
    }
    assert!(serde_json::to_value(Problem { remedy: None, ..p(Remedy::RebuildIndex) }).unwrap().get("remedy").is_none());
}

/// Every string literal in the library's source (not the CLI's, not comments): none names a
/// flag (`--word`) or an `mvault` command. The CLI words what the library says
/// ([`modelvault::Remedy`], [`modelvault::Input`], `src/cli/exit.rs`).
#[test]
fn no_library_string_names_a_flag_or_a_command() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    let mut dirs = vec![root.join("src")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p != root.join("src/cli") {
                    dirs.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "rs") && p != root.join("src/main.rs") {
                files.push(p);
            }
        }
    }
    assert!(files.len() > 50, "{}", files.len());
    let mut hits = Vec::new();
    let mut literals = 0;
    for f in &files {
        for (line, lit) in common::literals::string_literals(&std::fs::read_to_string(f).unwrap()) {
            literals += 1;
            if common::literals::names_the_cli(&lit) {
                hits.push(format!("{}:{line}: {lit}", f.strip_prefix(root).unwrap().display()));
            }
        }
    }
    assert!(literals > 1000, "{literals}");
    assert!(hits.is_empty(), "{} library string(s) name a CLI flag or command:\n{}", hits.len(), hits.join("\n"));
    // The scanner sees what it must: a flag after a line continuation, in a raw string, and
    // nothing in comments or char literals.
    let sample = "// \"--in-comment\"\nlet c = '\"'; let q = '\\''; let a = \"x \\\n  --flag\"; let b = r#\"mvault ls\"#; /* \"--no\" */";
    let found: Vec<String> = common::literals::string_literals(sample)
        .into_iter()
        .map(|(_, s)| s)
        .filter(|s| common::literals::names_the_cli(s))
        .collect();
    assert_eq!(found, ["x --flag", "mvault ls"]);
}
