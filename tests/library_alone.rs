//! The library stands alone: without the default `cli` feature, the crate's normal dependencies
//! hold none of the command line's crates nor the S3 client's, and the library builds. A program that depends on
//! `modelvault` with `default-features = false` gets neither clap nor a terminal prompt.

use std::process::Command;

/// Crates only the `mvault` binary uses.
const CLI_ONLY: [&str; 5] = ["clap", "indicatif", "rpassword", "humantime", "signal-hook"];
/// Crates only the S3 client (feature `remote`) uses.
const REMOTE_ONLY: [&str; 3] = ["object_store", "tokio", "reqwest"];

/// The crate names in `cargo tree -e normal --prefix none` with `features` (extra arguments).
fn normal_dependencies(features: &[&str]) -> Vec<String> {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "-e", "normal", "--prefix", "none"])
        .args(features)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("cargo tree prints UTF-8");
    text.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_string).collect()
}

#[test]
fn without_default_features_no_cli_crate_is_a_dependency() {
    let alone = normal_dependencies(&["--no-default-features"]);
    assert!(alone.iter().any(|c| c == "modelvault"), "the tree names the crate: {alone:?}");
    assert!(alone.iter().any(|c| c == "redb"), "the library's own dependencies are listed: {alone:?}");
    for c in CLI_ONLY.iter().chain(&REMOTE_ONLY) {
        assert!(!alone.iter().any(|d| d == c), "{c} is a dependency of the library alone");
    }
    // The same listing with the default features does name them, so the check above can see one.
    let full = normal_dependencies(&[]);
    for c in CLI_ONLY.iter().chain(&REMOTE_ONLY) {
        assert!(full.iter().any(|d| d == c), "{c} is not a dependency of the CLI: {full:?}");
    }
}

/// Checks the library alone in its own target directory (so it neither waits for nor disturbs the
/// build running the tests). About 75 s from a clean directory on a loaded two-core machine, a
/// few seconds after that.
#[test]
fn the_library_builds_without_default_features() {
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/library-alone");
    let out = Command::new(env!("CARGO"))
        .args(["check", "--lib", "--no-default-features", "--quiet", "--target-dir"])
        .arg(&target)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "the library alone does not build:\n{}", String::from_utf8_lossy(&out.stderr));
}
