//! The Python package (`python/`): builds the extension into a venv with maturin and runs its
//! pytest suite (MiniLM and the corpus read back through `safe_open` and compared with
//! `safetensors.numpy.load_file` of the original, errors, passphrases kept out of reprs and
//! tracebacks, decryption without the GIL). The venv is made once under `target/test-servers/`
//! with pinned maturin, pytest, numpy and safetensors from PyPI; the extension is rebuilt from
//! this checkout on every run. torch is not installed here: the `framework="pt"` tests skip,
//! saying so, unless torch is importable.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::s3::{locked, run_install, servers_dir};

const TOOLS: &[&str] = &["maturin==1.16.0", "pytest==8.4.2", "numpy==2.2.6", "safetensors==0.8.0"];

/// The venv with the build and test tools, made once (again when [`TOOLS`] changes).
fn venv() -> PathBuf {
    let dir = servers_dir().join("py-modelvault");
    let marker = dir.join(".installed");
    locked("py-modelvault", || {
        if std::fs::read_to_string(&marker).is_ok_and(|m| m == TOOLS.join("\n")) {
            return;
        }
        let _ = std::fs::remove_dir_all(&dir);
        run_install(
            "python3 -m venv (for the Python package)",
            Command::new("python3").arg("-m").arg("venv").arg(&dir),
        );
        run_install(
            &TOOLS.join(" "),
            Command::new(dir.join("bin/python")).args(["-m", "pip", "install", "-q"]).args(TOOLS),
        );
        std::fs::write(&marker, TOOLS.join("\n")).unwrap();
    });
    dir
}

#[test]
fn the_python_package_builds_and_its_pytest_suite_passes() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = venv();
    let py = venv.join("bin/python");
    let t = Instant::now();
    // Serialised with other runs of this test (one venv, one installed extension).
    let out = locked("py-modelvault-build", || {
        let built = Command::new(&py)
            .args(["-m", "maturin", "develop", "--release", "-q", "-m"])
            .arg(repo.join("python/Cargo.toml"))
            .env("VIRTUAL_ENV", &venv)
            .env_remove("CONDA_PREFIX")
            .output()
            .expect("running maturin");
        assert!(
            built.status.success(),
            "maturin develop failed:\n{}\n{}",
            String::from_utf8_lossy(&built.stdout),
            String::from_utf8_lossy(&built.stderr)
        );
        eprintln!("built and installed the extension in {:.1} s", t.elapsed().as_secs_f64());
        Command::new(&py)
            .args(["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"])
            .arg(repo.join("python/tests"))
            .current_dir(repo)
            .env_remove("MVAULT_PASSPHRASE")
            .output()
            .expect("running pytest")
    });
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{text}");
    assert!(out.status.success(), "pytest failed:\n{text}");
    assert!(text.contains(" passed"), "pytest ran no test:\n{text}");
}
