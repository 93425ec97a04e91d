//! Real S3-compatible servers for the tests, on 127.0.0.1 only: moto (PyPI `moto[server]` 5.2.5,
//! run serving one request at a time, so that its create-only writes are exclusive) and s3s-fs (crates.io 0.14.1, enforces SigV4, checks then writes
//! without a lock). Each is installed once into `target/test-servers/` when missing (under a file
//! lock, so parallel tests install once; moto needs `python3` with `venv`, s3s-fs needs `cargo`),
//! started on a free port with a bounded readiness wait, and killed when its [`Server`] drops
//! (also when a test panics).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use modelvault::remote::{Credentials, RemoteConfig, S3Objects};

pub const MOTO_VERSION: &str = "5.2.5";
pub const S3S_FS_VERSION: &str = "0.14.1";
/// The bucket every test server has.
pub const BUCKET: &str = "vault-test";
const READY_WITHIN: Duration = Duration::from_secs(30);

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Moto,
    S3sFs,
}

/// A running server; killed on drop.
pub struct Server {
    pub kind: Kind,
    pub port: u16,
    pub access_key: String,
    pub secret_key: String,
    child: Child,
    _data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A config for `s3://BUCKET/prefix` on this server.
    pub fn config(&self, prefix: &str) -> RemoteConfig {
        RemoteConfig::new(&format!("s3://{BUCKET}/{prefix}"), Some(&self.endpoint()), Some("us-east-1")).unwrap()
    }

    pub fn credentials(&self) -> Credentials {
        Credentials::new(&self.access_key, &self.secret_key, None)
    }

    /// A client of `s3://BUCKET/prefix`.
    pub fn objects(&self, prefix: &str) -> S3Objects {
        S3Objects::connect_with(&self.config(prefix), &self.credentials()).unwrap()
    }

    /// Sets the endpoint, region and credentials variables on a command.
    pub fn env(&self, c: &mut assert_cmd::Command) {
        c.env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .env_remove("AWS_SESSION_TOKEN");
    }
}

/// `target/test-servers`.
pub fn servers_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("test-servers");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `f` holding an exclusive lock on `target/test-servers/NAME.lock`.
pub fn locked<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let lock = std::fs::File::create(servers_dir().join(format!("{name}.lock"))).unwrap();
    lock.lock().unwrap();
    let out = f();
    drop(lock);
    out
}

pub fn run_install(what: &str, c: &mut Command) {
    let t = Instant::now();
    eprintln!("installing {what} into {} (once)", servers_dir().display());
    let out = c.output().unwrap_or_else(|e| panic!("installing {what}: cannot run {c:?}: {e}"));
    assert!(
        out.status.success(),
        "installing {what} failed ({c:?}):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("installed {what} in {:.1} s", t.elapsed().as_secs_f64());
}

/// The `moto_server` program, installed into a venv when missing (the venv counts as installed
/// once its `.installed` marker exists, written after pip succeeded).
pub fn moto_bin() -> PathBuf {
    let dir = servers_dir().join(format!("moto-{MOTO_VERSION}"));
    let marker = dir.join(".installed");
    locked("moto", || {
        if marker.exists() {
            return;
        }
        let _ = std::fs::remove_dir_all(&dir);
        run_install("python3 -m venv (for moto)", Command::new("python3").arg("-m").arg("venv").arg(&dir));
        let spec = format!("moto[server]=={MOTO_VERSION}");
        run_install(&spec, Command::new(dir.join("bin/pip")).args(["install", "-q", &spec]));
        std::fs::write(&marker, &spec).unwrap();
    });
    let bin = dir.join("bin/moto_server");
    assert!(bin.exists(), "{} missing after install", bin.display());
    bin
}

/// The `s3s-fs` program, installed with `cargo install` when missing.
pub fn s3s_fs_bin() -> PathBuf {
    let dir = servers_dir().join(format!("s3s-fs-{S3S_FS_VERSION}"));
    let bin = dir.join("bin/s3s-fs");
    locked("s3s-fs", || {
        if bin.exists() {
            return;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut c = Command::new(cargo);
        c.args(["install", &format!("s3s-fs@{S3S_FS_VERSION}"), "--locked", "--features", "binary", "--root"])
            .arg(&dir)
            .arg("--target-dir")
            .arg(servers_dir().join("build"))
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS");
        run_install(&format!("s3s-fs {S3S_FS_VERSION}"), &mut c);
    });
    assert!(bin.exists(), "{} missing after install", bin.display());
    bin
}

/// A free port on 127.0.0.1 (bound and released: the server binds it next).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_ready(child: &mut Child, port: u16, log: &Path, what: &str) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what} exited ({status}) before listening:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        assert!(start.elapsed() < READY_WITHIN, "{what} did not listen on 127.0.0.1:{port} within {READY_WITHIN:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One plain HTTP/1.1 request; returns the status code.
pub fn http(port: u16, method: &str, path: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// moto's own `moto_server` with one change: requests are served one at a time. moto 5.2.5
/// checks `If-None-Match: *` and then writes without a lock (`moto/s3/responses.py`, `put_object`),
/// so its threaded server lets two racing create-only writes both succeed now and then (seen: 2 of
/// 8 in one round on a loaded machine). Served one at a time it keeps them exclusive by
/// construction: the server that honours conditional writes, which the tests need.
const MOTO_SERIAL: &str = r#"
import sys
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
app = DomainDispatcherApplication(create_backend_app)
run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=False, request_handler=MotoRequestHandler)
"#;

/// A fresh moto server with the test bucket (moto accepts any credentials), serving one request
/// at a time ([`MOTO_SERIAL`]); `threaded` runs `moto_server` as it ships.
pub fn moto_with(threaded: bool) -> Server {
    let bin = moto_bin();
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = data.path().join("server.log");
    // The venv's python runs moto's module, not the `moto_server` script: the script's first line
    // names the path the venv was made at, which is wrong once a target directory is copied.
    let python = bin.parent().unwrap().join("python");
    let mut c = if threaded {
        let mut c = Command::new(&python);
        c.args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()]);
        c
    } else {
        let mut c = Command::new(&python);
        c.args(["-c", MOTO_SERIAL, &port.to_string()]).env("MOTO_PORT", port.to_string());
        c
    };
    let mut child = c
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(data.path().join("server.err")).unwrap()))
        .spawn()
        .unwrap();
    wait_ready(&mut child, port, &log, "moto_server");
    let server = Server {
        kind: Kind::Moto,
        port,
        access_key: "moto-test-key".into(),
        secret_key: "moto-test-secret".into(),
        child,
        _data: data,
    };
    let status = http(port, "PUT", &format!("/{BUCKET}"));
    assert_eq!(status, 200, "creating the bucket on moto");
    server
}

/// A fresh moto server serving one request at a time, with the test bucket.
pub fn moto() -> Server {
    moto_with(false)
}

/// A fresh s3s-fs server with the test bucket, enforcing SigV4 with `secret`.
pub fn s3s_fs_with(secret: &str) -> Server {
    let bin = s3s_fs_bin();
    let data = tempfile::tempdir().unwrap();
    let root = data.path().join("root");
    std::fs::create_dir_all(root.join(BUCKET)).unwrap();
    let port = free_port();
    let log = data.path().join("server.log");
    let mut child = Command::new(bin)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--access-key",
            "s3s-test-key",
            "--secret-key",
            secret,
        ])
        .arg(&root)
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(data.path().join("server.err")).unwrap()))
        .spawn()
        .unwrap();
    wait_ready(&mut child, port, &log, "s3s-fs");
    Server { kind: Kind::S3sFs, port, access_key: "s3s-test-key".into(), secret_key: secret.into(), child, _data: data }
}

/// A fresh s3s-fs server with the test bucket.
pub fn s3s_fs() -> Server {
    s3s_fs_with("s3s-test-secret-0123456789")
}
