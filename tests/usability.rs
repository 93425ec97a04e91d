//! The command line as a new user meets it: several tag/metric pairs in one command, `scan` of
//! several paths, `verify` of one model or version, `rm` of a version aliases point to, errors
//! as JSON under `--json`, the order of `--help`, tables that stay aligned with long values, and
//! `examples/demo.sh` under `CARGO_TARGET_DIR`.

mod common;

use std::path::Path;

use common::*;
use predicates::str::contains as has;
use serde_json::Value;

fn json(out: &[u8]) -> Value {
    serde_json::from_slice(out).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(out)))
}

fn stdout(c: &mut assert_cmd::Command) -> String {
    let out = c.output().unwrap();
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `show NAME@REF --json`.
fn show(d: &Path, spec: &str) -> Value {
    json(&mvault(d).args(["show", "--json", spec]).output().unwrap().stdout)
}

fn silero() -> std::path::PathBuf {
    corpus().join("safetensors/silero_vad_16k.safetensors")
}

/// A vault in `d` holding `silero@1`.
fn one_model(d: &Path) {
    cli_init(d);
    mvault(d).arg("put").arg(silero()).args(["--name", "silero", "--quiet"]).assert().success();
}

#[test]
fn several_tags_and_metrics_make_one_revision_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    one_model(d);
    mvault(d).args(["tag", "silero@1", "a=1", "b=two", "c=3"]).assert().success().stdout(has("tag a, b, c set"));
    let s = show(d, "silero@1");
    assert_eq!(s["revision"], 1, "three tags, one revision");
    assert_eq!(
        (s["tags"]["a"].as_str(), s["tags"]["b"].as_str(), s["tags"]["c"].as_str()),
        (Some("1"), Some("two"), Some("3"))
    );

    // A bad pair anywhere refuses the whole command; nothing changes.
    mvault(d).args(["tag", "silero@1", "d=4", "novalue"]).assert().code(7).stderr(has("'novalue' is not KEY=VALUE"));
    mvault(d).args(["tag", "silero@1", "d=4", "bad key=5"]).assert().code(7).stderr(has("bad key"));
    mvault(d).args(["tag", "silero@1", "d=4", "d=5"]).assert().code(7).stderr(has("'d' is given twice"));
    let s = show(d, "silero@1");
    assert_eq!(s["revision"], 1);
    assert!(s["tags"].get("d").is_none(), "{s}");

    let m = json(&mvault(d).args(["metric", "--json", "silero@1", "acc=0.9", "f1=0.5"]).output().unwrap().stdout);
    assert_eq!((m["metric"]["acc"].as_f64(), m["metric"]["f1"].as_f64()), (Some(0.9), Some(0.5)));
    let s = show(d, "silero@1");
    assert_eq!(s["revision"], 2, "two metrics, one revision");
    mvault(d).args(["metric", "silero@1", "x=1", "y=NaN"]).assert().code(7).stderr(has("finite"));
    mvault(d).args(["metric", "silero@1", "x=1", "y=abc"]).assert().code(7).stderr(has("is not a number"));
    let s = show(d, "silero@1");
    assert_eq!(s["revision"], 2);
    assert!(s["metrics"].get("x").is_none(), "{s}");

    // untag: a key the version lacks refuses the whole command, naming it.
    mvault(d).args(["untag", "silero@1", "a", "zz"]).assert().code(7).stderr(has("has no tag 'zz'"));
    let s = show(d, "silero@1");
    assert_eq!((s["revision"].as_u64(), s["tags"]["a"].as_str()), (Some(2), Some("1")));
    mvault(d).args(["untag", "silero@1", "a", "b"]).assert().success().stdout(has("tag a, b removed"));
    let s = show(d, "silero@1");
    assert_eq!(s["revision"], 3, "two tags removed, one revision");
    assert_eq!(s["tags"], serde_json::json!({"c": "3"}));
    // One key still works as before.
    mvault(d).args(["tag", "silero@1", "e=5"]).assert().success();
    mvault(d).args(["untag", "silero@1", "e"]).assert().success();
    mvault(d).args(["tag", "silero@1"]).assert().code(2);
}

#[test]
fn scan_reports_every_path_and_exits_with_the_worst() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = silero();
    let evil = corpus().join("malicious/B10_picklescan_malicious23.pkl");
    let missing = d.join("no-such-file");
    let out = mvault(d).arg("scan").args([&good, &evil, &missing]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(8), "a refused pickle outranks the unreadable path: {text}");
    assert!(text.contains(&good.display().to_string()), "{text}");
    assert!(text.contains("B10_picklescan_malicious23.pkl") && text.contains("os.system"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("ERROR") && l.contains("no-such-file")), "{text}");
    assert!(text.contains("2 file(s) scanned in 3 path(s), 1 refused, 1 could not be read"), "{text}");

    let out = mvault(d).args(["scan", "--json"]).args([&good, &missing]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "an unreadable path is an I/O error");
    let j = json(&out.stdout);
    let rows = j.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["verdict"], "no-pickle");
    assert_eq!((rows[1]["verdict"].as_str(), rows[1]["code"].as_i64()), (Some("error"), Some(1)));
    mvault(d).arg("scan").arg(&good).assert().success();
}

/// Deletes one chunk of the latest version of `name` from the vault file.
fn delete_a_chunk(path: &Path, name: &str) {
    let id = {
        let v = reopen(path);
        v.manifest(name, &modelvault::VersionRef::Latest).unwrap().files[0].chunks[0].id
    };
    tamper::edit(path, crate::common::tables::CHUNKS, |t| assert!(t.remove(&id).unwrap().is_some()));
}

#[test]
fn verify_checks_one_model_or_one_version() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    one_model(d);
    mvault(d).arg("put").arg(silero()).args(["--name", "silero", "--alias", "prod", "--quiet"]).assert().success();
    let onnx = corpus().join("onnx/silero_vad.onnx");
    mvault(d).arg("put").arg(&onnx).args(["--name", "onnx", "--quiet"]).assert().success();

    mvault(d).args(["verify"]).assert().success().stdout(has("ok: 2 model(s), 3 version(s)"));
    mvault(d).args(["verify", "silero"]).assert().success().stdout(has("ok: 1 model(s), 2 version(s)"));
    mvault(d).args(["verify", "silero@1"]).assert().success().stdout(has("ok: 1 model(s), 1 version(s)"));
    let rep = json(&mvault(d).args(["verify", "--json", "--read-data", "silero@prod"]).output().unwrap().stdout);
    assert_eq!((rep["models"].as_u64(), rep["versions"].as_u64()), (Some(1), Some(1)));
    assert_eq!(rep["bytes_read"], 1_239_748, "only silero@2 was decrypted");
    mvault(d).args(["verify", "nosuch"]).assert().code(5).stderr(has("nosuch"));
    mvault(d).args(["verify", "silero@9"]).assert().code(5);
    mvault(d).args(["verify", "silero@nosuchalias"]).assert().code(5);

    // Damage in one model fails that model's check and the whole vault's, not the other model's.
    delete_a_chunk(&d.join("test.mvault"), "onnx");
    mvault(d).args(["verify", "silero", "--read-data"]).assert().success();
    mvault(d).args(["verify", "onnx"]).assert().code(6).stdout(has("DAMAGED")).stdout(has("is missing"));
    mvault(d).args(["verify"]).assert().code(6).stdout(has("FAILED: 2 model(s)"));
}

#[test]
fn rm_of_an_aliased_version_names_the_aliases_and_needs_yes_without_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_init(d);
    let put = |args: &[&str]| mvault(d).arg("put").arg(silero()).args(args).assert().success();
    put(&["--name", "silero", "--alias", "prod", "--alias", "stable"]);
    put(&["--name", "silero"]);
    put(&["--name", "silero", "--alias", "canary"]);

    // No terminal on stdin, no --yes: refused, the aliases named, nothing removed.
    let refused = mvault(d).args(["rm", "silero@1"]).assert().code(7);
    let err = String::from_utf8(refused.get_output().stderr.clone()).unwrap();
    assert!(err.contains("prod, stable") && err.contains("--yes"), "{err}");
    mvault(d).args(["rm", "silero@prod"]).assert().code(7).stderr(has("prod, stable"));
    let ls = json(&mvault(d).args(["ls", "--json"]).output().unwrap().stdout);
    assert_eq!(ls["models"][0]["versions"].as_array().unwrap().len(), 3);
    assert_eq!(ls["models"][0]["aliases"]["prod"], 1);
    let e = mvault(d).args(["rm", "--json", "silero@3"]).assert().code(7);
    let e = json(&e.get_output().stderr);
    assert!(e["error"].as_str().unwrap().contains("canary"), "{e}");
    assert_eq!(e["code"], 7);

    // A version no alias points to goes without asking.
    mvault(d).args(["rm", "silero@2"]).assert().success().stdout(has("removed silero@2 (run"));
    mvault(d)
        .args(["rm", "silero@prod", "--yes"])
        .assert()
        .success()
        .stdout(has("removed silero@1 and its alias(es) prod, stable"));
    let ls = json(&mvault(d).args(["ls", "--json"]).output().unwrap().stdout);
    assert_eq!(ls["models"][0]["aliases"], serde_json::json!({"canary": 3}));
    let rm = json(&mvault(d).args(["rm", "--json", "--yes", "silero@3"]).output().unwrap().stdout);
    assert_eq!(rm["removed_aliases"], serde_json::json!(["canary"]));
}

#[test]
fn errors_are_one_json_line_on_stderr_under_json() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    one_model(d);
    let check = |args: &[&str], code: i32, needle: &str| {
        let out = mvault(d).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", String::from_utf8_lossy(&out.stdout));
        // Progress events (`"event"`) may come first; the error is one line after them.
        let err = String::from_utf8(out.stderr).unwrap();
        let err: Vec<&str> = err.lines().filter(|l| !l.starts_with("{\"bytes_done\"")).collect();
        assert_eq!(err.len(), 1, "{args:?}: one line: {err:?}");
        let err = err[0];
        let j = json(err.as_bytes());
        assert_eq!(j["code"], code, "{err}");
        assert!(j["error"].as_str().unwrap().contains(needle), "{args:?}: {err}");
        assert_eq!(j.as_object().unwrap().len(), 2, "{err}");
    };
    check(&["--json", "show", "nosuch"], 5, "nosuch");
    check(&["show", "nosuch@1", "--json"], 5, "nosuch");
    check(&["--json", "tag", "silero@1", "novalue"], 7, "is not KEY=VALUE");
    check(&["--json", "verify", "silero@7"], 5, "silero");
    // Argument errors, when --json is among the arguments.
    check(&["--json", "no-such-command"], 2, "no-such-command");
    check(&["tag", "--json"], 2, "required");
    // Without --json: text.
    mvault(d).args(["show", "nosuch"]).assert().code(5).stderr(predicates::str::starts_with("mvault: error: "));
    mvault(d).args(["no-such-command"]).assert().code(2).stderr(has("error:"));
}

#[test]
fn help_lists_a_commands_own_options_before_the_global_ones() {
    for (cmd, own) in [("rm", "--yes"), ("verify", "--read-data"), ("put", "--alias"), ("get", "--force")] {
        let out = assert_cmd::Command::cargo_bin("mvault").unwrap().args([cmd, "--help"]).output().unwrap();
        assert!(out.status.success());
        let help = String::from_utf8(out.stdout).unwrap();
        let own_at = help.find(own).unwrap_or_else(|| panic!("{cmd}: {help}"));
        let global_at = help.find("Global options:").unwrap_or_else(|| panic!("{cmd}: no global heading: {help}"));
        let vault_at = help.find("--vault").unwrap();
        assert!(own_at < global_at && global_at < vault_at, "{cmd}: {help}");
    }
}

/// Checks that every row of a text table lines up with its header: a left-aligned column starts
/// where its header starts, a right-aligned one ends where its header ends.
fn assert_aligned(lines: &[&str], cols: &[(&str, bool)]) {
    let head = lines[0];
    for (name, right) in cols {
        let start = head.find(name).unwrap_or_else(|| panic!("no {name} in {head}"));
        let end = start + name.len();
        for row in &lines[1..] {
            let c: Vec<char> = row.chars().collect();
            let at = |i: usize| c.get(i).copied().unwrap_or(' ');
            if *right {
                assert!(at(end - 1) != ' ' && at(end) == ' ', "column {name} (right-aligned):\n{head}\n{row}");
            } else {
                // An empty cell is blank; a filled one starts exactly under its header.
                assert!(start == 0 || (at(start - 1) == ' ' && at(start - 2) == ' '), "column {name}:\n{head}\n{row}");
            }
        }
    }
}

#[test]
fn tables_stay_aligned_with_long_names_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_init(d);
    let long = "a-model-with-a-rather-long-name-that-goes-on-and-on-well-past-any-fixed-column-width";
    mvault(d).arg("put").arg(silero()).args(["--name", "s", "--tag", "k=v", "--quiet"]).assert().success();
    let long_tag = format!("note={}", "x".repeat(70));
    mvault(d)
        .arg("put")
        .arg(silero())
        .args(["--name", long, "--alias", "an-alias-longer-than-sixteen", "--tag", &long_tag, "--quiet"])
        .assert()
        .success();
    mvault(d).arg("put").arg(silero()).args(["--name", "s", "--quiet"]).assert().success();

    let ls = stdout(mvault(d).arg("ls"));
    let lines: Vec<&str> = ls.lines().collect();
    assert_eq!(lines.len(), 4, "{ls}");
    assert_aligned(
        &lines,
        &[("NAME", false), ("VERSION", true), ("SIZE", true), ("CREATED", false), ("ALIASES", false), ("TAGS", false)],
    );
    assert!(ls.contains(&long_tag), "{ls}");

    // `show`: the files of a version with a short and a long path.
    let model = d.join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("a.txt"), b"short").unwrap();
    std::fs::write(model.join(format!("{}.txt", "b".repeat(60))), b"a longer file's bytes").unwrap();
    mvault(d).arg("put").arg(&model).args(["--name", "files", "--quiet"]).assert().success();
    let show = stdout(mvault(d).args(["show", "files"]));
    let files: Vec<&str> = show.lines().skip_while(|l| *l != "files:").skip(1).collect();
    assert_eq!(files.len(), 2, "{show}");
    let at: Vec<usize> = files.iter().map(|l| l.find("sha256:").unwrap()).collect();
    assert_eq!(at[0], at[1], "{show}");

    // `similar`: versions sharing chunks, one of them with the long name.
    let sim = stdout(mvault(d).args(["similar", "s@1"]));
    let table: Vec<&str> =
        sim.lines().skip_while(|l| !l.starts_with("VERSION")).take_while(|l| !l.is_empty()).collect();
    assert_eq!(table.len(), 3, "{sim}");
    assert_aligned(&table, &[("VERSION", false), ("SHARED", true), ("CHUNKS", true), ("JACCARD", true)]);

    // `key list`: a slot name longer than any fixed width.
    std::fs::write(d.join("second"), "another passphrase\n").unwrap();
    let slot = "a-key-slot-name-well-over-twenty-characters";
    mvault(d)
        .args(["key", "add", slot, "--new-passphrase-file", "second"])
        .args(["--argon2-memory-kib", "256", "--argon2-time", "1", "--argon2-lanes", "1"])
        .assert()
        .success();
    let keys = stdout(mvault(d).args(["key", "list"]));
    let table: Vec<&str> = keys.lines().collect();
    assert_eq!(table.len(), 3, "{keys}");
    assert!(keys.contains(slot), "{keys}");
    assert_aligned(
        &table,
        &[("SLOT", false), ("EPOCH", true), ("MEMORY", true), ("TIME", true), ("LANES", true), ("CREATED", false)],
    );

    // `inspect`: a tensor name longer than any fixed width.
    let tname = format!("encoder.{}.weight", "layer".repeat(14));
    let header = format!(
        r#"{{"{tname}":{{"dtype":"F32","shape":[1],"data_offsets":[0,4]}},"b":{{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}}}"#
    );
    let mut st = (header.len() as u64).to_le_bytes().to_vec();
    st.extend_from_slice(header.as_bytes());
    st.extend_from_slice(&[0u8; 12]);
    std::fs::write(d.join("long.safetensors"), &st).unwrap();
    mvault(d).args(["put", "long.safetensors", "--name", "t", "--quiet"]).assert().success();
    let ins = stdout(mvault(d).args(["inspect", "t"]));
    let table: Vec<&str> =
        ins.lines().skip_while(|l| !l.trim_start().starts_with("TENSOR")).take_while(|l| !l.is_empty()).collect();
    assert_eq!(table.len(), 3, "{ins}");
    assert_aligned(&table, &[("TENSOR", false), ("DTYPE", false), ("SHAPE", false), ("PARAMS", true), ("BYTES", true)]);
}

#[test]
fn demo_runs_the_binary_from_cargo_target_dir() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A stand-in `cargo` that builds nothing and reports a target directory elsewhere, whose
    // `mvault` logs each call and runs the real binary.
    let bin = d.join("bin");
    let target = d.join("elsewhere");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(target.join("release")).unwrap();
    let log = d.join("calls.log");
    let real = assert_cmd::cargo::cargo_bin("mvault");
    let script = |p: &Path, body: String| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(p, body).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    script(
        &bin.join("cargo"),
        "#!/bin/sh\ncase \"$1\" in\n  build) exit 0 ;;\n  metadata) printf '{\"packages\":[],\"target_directory\":\"%s\",\"version\":1}\\n' \"$CARGO_TARGET_DIR\" ;;\n  *) exit 9 ;;\nesac\n".to_string(),
    );
    script(
        &target.join("release/mvault"),
        format!("#!/bin/sh\necho \"$1\" >> '{}'\nexec '{}' \"$@\"\n", log.display(), real.display()),
    );
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = std::process::Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo.sh"))
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("MVAULT_VAULT")
        .env_remove("MVAULT_PASSPHRASE_FILE")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("demo: OK"), "{text}");
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(calls, ["init", "put", "ls", "show", "get", "verify"], "the demo ran the binary in CARGO_TARGET_DIR");
}
