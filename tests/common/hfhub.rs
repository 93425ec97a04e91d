//! The real `huggingface_hub` (PyPI, pinned) as the oracle of the hub cache layout: installed
//! once into a venv under `target/test-servers/` when missing (under the same file lock as the
//! S3 servers' installs; needs `python3` with `venv`), and run offline (`HF_HUB_OFFLINE=1`,
//! `HF_HOME` inside the test's folder), so it reads the cache and never the network.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::s3::{locked, run_install, servers_dir};

pub const HF_HUB_VERSION: &str = "2.4.0";

/// The venv's `python`, with `huggingface_hub` installed (the venv counts as installed once
/// its `.installed` marker exists, written after pip succeeded).
pub fn python() -> PathBuf {
    let dir = servers_dir().join(format!("huggingface_hub-{HF_HUB_VERSION}"));
    let marker = dir.join(".installed");
    locked("huggingface_hub", || {
        if marker.exists() {
            return;
        }
        let _ = std::fs::remove_dir_all(&dir);
        run_install("python3 -m venv (for huggingface_hub)", Command::new("python3").arg("-m").arg("venv").arg(&dir));
        let spec = format!("huggingface_hub=={HF_HUB_VERSION}");
        run_install(&spec, Command::new(dir.join("bin/pip")).args(["install", "-q", &spec]));
        std::fs::write(&marker, &spec).unwrap();
    });
    let bin = dir.join("bin/python");
    assert!(bin.exists(), "{} missing after install", bin.display());
    bin
}

/// Runs `script` with the venv's python, offline, `HF_HOME` at `home` (so no user's cache or
/// token is read), with `args` as `sys.argv[1:]`.
pub fn run(home: &Path, script: &str, args: &[&str]) -> Output {
    Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HOME", home)
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .output()
        .expect("running python")
}
