//! `mvault mount`: the vault served read-only through FUSE and read by unmodified readers
//! (`sha256sum`-equivalent of every file against the signed manifest, the `safetensors` crate
//! and Python's `safetensors` over a memory map, random-offset reads), a damaged chunk failing
//! only its reads with EIO, and clean unmounts (`mvault umount`, `fusermount -u`, SIGTERM,
//! SIGINT) that leave nothing in `/proc/mounts`. Each test that mounts is skipped, saying so,
//! where `/dev/fuse` is absent or mounting is not permitted.

mod common;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use modelvault::{NoProgress, PutOptions, VersionRef};
use sha2::{Digest, Sha256};

const MINILM: &str = "safetensors/all-MiniLM-L6-v2.model.safetensors";
const SILERO: &str = "safetensors/silero_vad_16k.safetensors";

/// A running `mvault mount`; killed and unmounted on drop if a test failed before unmounting.
struct Mount {
    child: Child,
    dir: PathBuf,
    at: PathBuf,
}

impl Drop for Mount {
    fn drop(&mut self) {
        if mounted(&self.at) {
            let _ = Command::new(env!("CARGO_BIN_EXE_mvault")).arg("umount").arg(&self.at).output();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mount {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mount.log")).unwrap_or_default()
    }

    /// Waits up to 10 s for the process to end; its exit code.
    fn wait_exit(&mut self) -> i32 {
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            assert!(t.elapsed() < Duration::from_secs(10), "mvault mount did not end; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// True when `/proc/mounts` lists a mount at `at`.
fn mounted(at: &Path) -> bool {
    let real = at.canonicalize().unwrap_or_else(|_| at.to_path_buf());
    let want = real.to_str().unwrap().replace(' ', "\\040");
    std::fs::read_to_string("/proc/mounts").unwrap().lines().any(|l| l.split(' ').nth(1) == Some(want.as_str()))
}

/// Mounts the vault of `dir` at `dir/mnt` with `extra` arguments; `None` (after saying why)
/// where FUSE is not available.
fn mount(dir: &Path, extra: &[&str]) -> Option<Mount> {
    if !Path::new("/dev/fuse").exists() {
        eprintln!("SKIPPED: /dev/fuse is absent on this machine");
        return None;
    }
    let at = dir.join("mnt");
    std::fs::create_dir_all(&at).unwrap();
    let pf = dir.join("passphrase");
    std::fs::write(&pf, format!("{PASS}\n")).unwrap();
    let log = File::create(dir.join("mount.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_mvault"))
        .arg("mount")
        .arg(&at)
        .args(extra)
        .env("MVAULT_VAULT", dir.join("test.mvault"))
        .env("MVAULT_PASSPHRASE_FILE", &pf)
        .env_remove("MVAULT_PASSPHRASE")
        .stdin(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut m = Mount { child, dir: dir.to_path_buf(), at: at.clone() };
    let t = Instant::now();
    while !mounted(&at) {
        if let Some(s) = m.child.try_wait().unwrap() {
            let log = m.log();
            assert!(log.contains("mounting at"), "mvault mount failed ({s}) before mounting:\n{log}");
            eprintln!("SKIPPED: mounting is not permitted here: {log}");
            return None;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "not mounted after 20 s; log:\n{}", m.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(m)
}

/// A vault in `dir` with `silero` (v1, v2 = MiniLM, alias prod -> 1) and the ONNX directory as `onnx`.
fn vault(dir: &Path) {
    let (_, mut v) = new_vault(dir);
    let put = |v: &mut modelvault::Vault<_>, src: &str, name: &str, alias: &[&str]| {
        let o = PutOptions { aliases: alias.iter().map(|s| s.to_string()).collect(), ..Default::default() };
        v.put(&corpus().join(src), name, &o, &NoProgress).unwrap();
    };
    put(&mut v, SILERO, "silero", &["prod"]);
    put(&mut v, MINILM, "silero", &[]);
    put(&mut v, "onnx", "onnx", &[]);
}

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn every_file_reads_back_with_its_manifest_sha256_and_the_layout_is_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    vault(dir.path());
    let Some(m) = mount(dir.path(), &[]) else { return };
    let v = reopen(&dir.path().join("test.mvault"));
    let mut n = 0;
    for (name, version) in [("silero", 1), ("silero", 2), ("onnx", 1)] {
        let man = v.manifest(name, &VersionRef::Number(version)).unwrap();
        for f in &man.files {
            let got = std::fs::read(m.at.join(name).join(version.to_string()).join(&f.path)).unwrap();
            assert_eq!(got.len() as u64, f.size, "{name}@{version} {}", f.path);
            assert_eq!(sha256_hex(&got), modelvault::manifest::hex(&f.sha256), "{name}@{version} {}", f.path);
            n += 1;
        }
    }
    assert_eq!(n, 9);
    // latest and aliases are links to the version directory beside them.
    assert_eq!(std::fs::read_link(m.at.join("silero/latest")).unwrap(), Path::new("2"));
    assert_eq!(std::fs::read_link(m.at.join("silero/prod")).unwrap(), Path::new("1"));
    let via_alias = std::fs::read(m.at.join("silero/prod/silero_vad_16k.safetensors")).unwrap();
    assert_eq!(via_alias, std::fs::read(corpus().join(SILERO)).unwrap());
    let mut top: Vec<String> =
        std::fs::read_dir(&m.at).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    top.sort();
    assert_eq!(top, ["onnx", "silero"]);
    // Read-only, for the owner only.
    let file = m.at.join("silero/1/silero_vad_16k.safetensors");
    let e = std::fs::OpenOptions::new().write(true).open(&file).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(30), "EROFS expected: {e}");
    assert!(std::fs::write(m.at.join("silero/1/new"), b"x").is_err());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o400);
    // `mvault umount` ends the mount process cleanly.
    let out = mvault(dir.path()).arg("umount").arg(&m.at).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("unmounted {}", m.at.display()));
    let mut m = m;
    assert_eq!(m.wait_exit(), 0, "{}", m.log());
    assert!(!mounted(&m.at));
    assert!(m.log().contains("mounted 2 model(s) read-only at"), "{}", m.log());
}

#[test]
fn safetensors_readers_and_mmap_see_the_original_bytes() {
    let dir = tempfile::tempdir().unwrap();
    vault(dir.path());
    let Some(m) = mount(dir.path(), &["--cache-mib", "8"]) else { return };
    let original = std::fs::read(corpus().join(MINILM)).unwrap();
    let mounted_file = m.at.join("silero/latest/all-MiniLM-L6-v2.model.safetensors");
    let f = File::open(&mounted_file).unwrap();
    // SAFETY: the mapped file is read-only and never changes while mounted.
    let map = unsafe { memmap2::Mmap::map(&f) }.unwrap();
    assert!(map[..] == original[..], "the mapping differs from the original file");
    let a = safetensors::SafeTensors::deserialize(&map).unwrap();
    let b = safetensors::SafeTensors::deserialize(&original).unwrap();
    assert_eq!(a.len(), 104);
    for (name, t) in b.tensors() {
        let u = a.tensor(&name).unwrap();
        assert_eq!((u.dtype(), u.shape(), u.data()), (t.dtype(), t.shape(), t.data()), "{name}");
    }
    python_safetensors(dir.path(), &mounted_file, &corpus().join(MINILM));
}

/// `safetensors.numpy.load_file` and `safe_open` of the mounted file against the original, in
/// a venv made once under target/test-servers (skipped, saying so, where it cannot be made).
fn python_safetensors(dir: &Path, mounted_file: &Path, original: &Path) {
    let Some(py) = safetensors_venv() else { return };
    let script = dir.join("check.py");
    std::fs::write(
        &script,
        r#"import sys
from safetensors import safe_open
from safetensors.numpy import load_file
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
assert a.keys() == b.keys()
for k in a:
    assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes(), k
n = 0
with safe_open(sys.argv[1], framework="numpy") as f:
    for k in f.keys():
        assert f.get_tensor(k).tobytes() == b[k].tobytes(), k
        n += 1
print(f"{len(a)} tensors identical, {n} through safe_open")
"#,
    )
    .unwrap();
    let out = Command::new(py).arg(&script).arg(mounted_file).arg(original).output().unwrap();
    let so = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{so}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(so.trim(), "104 tensors identical, 104 through safe_open");
}

fn safetensors_venv() -> Option<PathBuf> {
    let d = common::s3::servers_dir().join("py-safetensors");
    let py = d.join("bin/python");
    if d.join(".installed").exists() {
        return Some(py);
    }
    let _ = std::fs::remove_dir_all(&d);
    let ok = |c: &mut Command| c.output().map(|o| o.status.success()).unwrap_or(false);
    if !ok(Command::new("python3").args(["-m", "venv"]).arg(&d))
        || !ok(Command::new(d.join("bin/pip")).args(["install", "-q", "safetensors==0.8.0", "numpy"]))
    {
        eprintln!("SKIPPED (Python part): a venv with safetensors and numpy could not be made");
        return None;
    }
    std::fs::write(d.join(".installed"), "safetensors==0.8.0 numpy").unwrap();
    Some(py)
}

#[test]
fn random_offset_reads_return_the_original_bytes() {
    let dir = tempfile::tempdir().unwrap();
    vault(dir.path());
    // A 2 MiB cache: about two chunks, so reads keep evicting and reopening chunks.
    let Some(m) = mount(dir.path(), &["--cache-mib", "2"]) else { return };
    let original = std::fs::read(corpus().join(MINILM)).unwrap();
    let f = File::open(m.at.join("silero/2/all-MiniLM-L6-v2.model.safetensors")).unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..300 {
        let off = next() % original.len() as u64;
        let len = 1 + (next() % (3 << 20)) as usize;
        let mut buf = vec![0u8; len];
        let mut got = 0;
        while got < len {
            let n = f.read_at(&mut buf[got..], off + got as u64).unwrap();
            if n == 0 {
                break;
            }
            got += n;
        }
        let want = &original[off as usize..(off as usize + len).min(original.len())];
        assert!(buf[..got] == *want, "bytes differ at offset {off}, {len} bytes");
    }
    let mut b = [0u8; 8];
    assert_eq!(f.read_at(&mut b, original.len() as u64).unwrap(), 0);
}

#[test]
fn a_damaged_chunk_fails_its_reads_with_eio_and_other_files_read() {
    let dir = tempfile::tempdir().unwrap();
    vault(dir.path());
    let path = dir.path().join("test.mvault");
    let man = reopen(&path).manifest("silero", &VersionRef::Number(1)).unwrap();
    let chunks = &man.files[0].chunks;
    let bad = chunks[1].id;
    tamper::edit(&path, common::tables::CHUNKS, |t| {
        use common::tamper::ReadableTable;
        let mut v = t.get(&bad).unwrap().unwrap().value().to_vec();
        v[40] ^= 1;
        t.insert(&bad, v.as_slice()).unwrap();
    });
    let Some(m) = mount(dir.path(), &[]) else { return };
    let original = std::fs::read(corpus().join(SILERO)).unwrap();
    let f = File::open(m.at.join("silero/1/silero_vad_16k.safetensors")).unwrap();
    let start = chunks[0].len as u64;
    let mut b = vec![0u8; chunks[1].len as usize];
    let e = f.read_at(&mut b, start).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(5), "EIO expected: {e}");
    let e = std::fs::read(m.at.join("silero/1/silero_vad_16k.safetensors")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(5), "EIO expected for the whole file: {e}");
    // The end of the same file (other chunks) and the other files read as stored.
    let tail = original.len() - 4096;
    let mut t = vec![0u8; 4096];
    f.read_exact_at(&mut t, tail as u64).unwrap();
    assert_eq!(t, original[tail..]);
    let minilm = std::fs::read(m.at.join("silero/2/all-MiniLM-L6-v2.model.safetensors")).unwrap();
    assert!(minilm == std::fs::read(corpus().join(MINILM)).unwrap());
    let onnx = std::fs::read(m.at.join("onnx/1/silero_vad.onnx")).unwrap();
    assert!(onnx == std::fs::read(corpus().join("onnx/silero_vad.onnx")).unwrap());
    let log = m.log();
    assert!(log.contains("failed with EIO"), "{log}");
    assert!(
        log.contains(&format!(
            "model 'silero' version 1 file 'silero_vad_16k.safetensors': chunk 2 of {}",
            chunks.len()
        )),
        "{log}"
    );
    assert!(log.contains("authentication failed"), "{log}");
}

#[test]
fn sigterm_sigint_and_fusermount_unmount_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    vault(dir.path());
    for sig in ["-TERM", "-INT"] {
        let Some(mut m) = mount(dir.path(), &[]) else { return };
        // A file open when the signal comes: the mount is detached and ends once it is closed.
        let f = File::open(m.at.join("onnx/1/silero_vad.onnx")).unwrap();
        let st = Command::new("kill").arg(sig).arg(m.child.id().to_string()).status().unwrap();
        assert!(st.success());
        let t = Instant::now();
        while mounted(&m.at) {
            assert!(t.elapsed() < Duration::from_secs(10), "{sig}: still mounted; log:\n{}", m.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(f);
        assert_eq!(m.wait_exit(), 0, "{sig}: {}", m.log());
        assert!(m.log().contains("unmounted"), "{}", m.log());
        assert!(!mounted(&m.at));
    }
    for bin in ["fusermount3", "fusermount"] {
        if Command::new(bin).arg("-V").output().is_err() {
            eprintln!("{bin} is not installed: its unmount is not tested");
            continue;
        }
        let Some(mut m) = mount(dir.path(), &[]) else { return };
        let out = Command::new(bin).arg("-u").arg(&m.at).output().unwrap();
        assert!(out.status.success(), "{bin} -u: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(m.wait_exit(), 0, "{}", m.log());
        assert!(!mounted(&m.at));
    }
}

#[test]
fn bad_mount_arguments_are_refused_before_the_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    cli_init(dir.path());
    let run = |args: &[&str]| {
        let o = mvault(dir.path()).args(args).output().unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (code, err) = run(&["mount", "no-such-dir"]);
    assert_eq!(code, Some(7), "{err}");
    assert!(
        err.contains("mount point no-such-dir cannot be used") && err.contains("create an empty directory"),
        "{err}"
    );
    std::fs::write(dir.path().join("file"), b"x").unwrap();
    let (code, err) = run(&["mount", "file"]);
    assert_eq!(code, Some(7), "{err}");
    assert!(err.contains("mount point file is not a directory"), "{err}");
    std::fs::create_dir(dir.path().join("d")).unwrap();
    let (code, err) = run(&["mount", "d", "--cache-mib", "70000"]);
    assert_eq!(code, Some(7), "{err}");
    assert!(err.contains("a cache of 70000 MiB is over the limit of 65536 MiB"), "{err}");
    std::fs::write(dir.path().join("d/kept"), b"x").unwrap();
    let (code, err) = run(&["mount", "d"]);
    assert_eq!(code, Some(7), "{err}");
    assert!(err.contains("mount point d is not empty: the mount would hide its files"), "{err}");
    std::fs::remove_file(dir.path().join("d/kept")).unwrap();
    // No fusermount on PATH: named, with the package to install, before the passphrase.
    let empty = tempfile::tempdir().unwrap();
    let o = mvault(dir.path()).args(["mount", "d"]).env("PATH", empty.path()).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(7), "{err}");
    assert!(err.contains("neither fusermount3 nor fusermount is on PATH: install the fuse3 package"), "{err}");
    let e = modelvault::mount::fuse::check_fuse_device(Path::new("/nonexistent/fuse")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/fuse is missing: this system offers no FUSE"), "{e}");
    // A wrong passphrase is the same error as for any other command, and nothing is mounted.
    let bad = dir.path().join("bad-pass");
    std::fs::write(&bad, "not the passphrase\n").unwrap();
    let o = mvault(dir.path()).args(["mount", "d"]).env("MVAULT_PASSPHRASE_FILE", &bad).output().unwrap();
    let ls = mvault(dir.path()).args(["ls"]).env("MVAULT_PASSPHRASE_FILE", &bad).output().unwrap();
    assert_eq!(o.status.code(), ls.status.code());
    assert_ne!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).contains("wrong passphrase"), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!mounted(&dir.path().join("d")));
    let (code, err) = run(&["umount", "d"]);
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("no vault is mounted at d"), "{err}");
    let (code, err) = run(&["umount", "no-such-dir"]);
    assert_eq!(code, Some(7), "{err}");
    assert!(err.contains("mount point no-such-dir cannot be used"), "{err}");
}

#[test]
fn writes_into_the_mount_fail_with_erofs() {
    let dir = tempfile::tempdir().unwrap();
    vault(dir.path());
    let Some(m) = mount(dir.path(), &[]) else { return };
    let erofs = |r: std::io::Result<()>| r.map_err(|e| e.raw_os_error()).unwrap_err();
    let existing = m.at.join("silero/1/silero_vad_16k.safetensors");
    assert!(existing.exists());
    assert_eq!(erofs(std::fs::OpenOptions::new().write(true).open(&existing).map(drop)), Some(30));
    assert_eq!(erofs(std::fs::write(m.at.join("silero/1/new"), b"x")), Some(30));
    assert_eq!(erofs(std::fs::create_dir(m.at.join("newdir"))), Some(30));
    assert_eq!(erofs(std::fs::remove_file(&existing)), Some(30));
    assert_eq!(erofs(std::fs::rename(&existing, m.at.join("silero/1/moved"))), Some(30));
}

/// A venv with onnx, made once under target/test-servers; `None` (after saying why) where it
/// cannot be made (no network to PyPI, no wheel for this Python).
fn onnx_venv() -> Option<PathBuf> {
    const PKGS: &[&str] = &["onnx==1.23.2", "numpy"];
    let d = common::s3::servers_dir().join("py-onnx");
    common::s3::locked("py-onnx", || {
        if d.join(".installed").exists() {
            return Some(d.join("bin/python"));
        }
        let _ = std::fs::remove_dir_all(&d);
        let ok = |c: &mut Command| c.output().map(|o| o.status.success()).unwrap_or(false);
        if !ok(Command::new("python3").args(["-m", "venv"]).arg(&d))
            || !ok(Command::new(d.join("bin/pip")).args(["install", "-q"]).args(PKGS))
        {
            eprintln!("SKIPPED (onnx part): a venv with {} could not be made", PKGS.join(" "));
            return None;
        }
        std::fs::write(d.join(".installed"), PKGS.join(" ")).unwrap();
        Some(d.join("bin/python"))
    })
}

#[test]
fn onnx_loads_every_corpus_onnx_model_from_the_mount_as_from_the_original() {
    let dir = tempfile::tempdir().unwrap();
    vault(dir.path());
    let Some(m) = mount(dir.path(), &[]) else { return };
    let Some(py) = onnx_venv() else { return };
    let script = dir.path().join("check_onnx.py");
    std::fs::write(
        &script,
        r#"import pathlib, sys
import onnx
orig, mounted = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
n = 0
for p in sorted(orig.rglob("*.onnx")):
    a = onnx.load(str(p))
    b = onnx.load(str(mounted / p.relative_to(orig)))
    assert a.SerializeToString() == b.SerializeToString(), p
    assert len(b.graph.node) == len(a.graph.node), p
    n += 1
print(f"{n} ONNX models load identically")
"#,
    )
    .unwrap();
    let want = common::files_under(&corpus().join("onnx"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .count();
    assert!(want >= 5, "{want}");
    let out = Command::new(py).arg(&script).arg(corpus().join("onnx")).arg(m.at.join("onnx/1")).output().unwrap();
    let so = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{so}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(so.trim(), format!("{want} ONNX models load identically"));
}
