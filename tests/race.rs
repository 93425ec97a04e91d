//! A file rewritten through a shared memory map while `put` reads it: the size, modification and
//! change times stay the same, so only the bytes can tell. Every stored version's recorded pickle
//! verdict must be the verdict of its stored bytes; a put that saw two different files is refused
//! with "changed while it was being stored; nothing was stored" (exit 7).
//!
//! The writer is a Python 3 child process holding a `MAP_SHARED` mapping of the file (`mmap`).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use modelvault::{Error, NoProgress, PutOptions, Unlocked, Vault, VersionRef};

/// A pickle that runs `os.system` on load (protocol 0 opcodes after a protocol 2 header).
const EVIL: &[u8] = b"cposix\nsystem\n(S'echo pwned'\ntR.";

/// A harmless pickle tail of the same length as [`EVIL`]: one string.
fn benign() -> Vec<u8> {
    let mut b = b"S'".to_vec();
    b.resize(EVIL.len() - 3, b'x');
    b.extend_from_slice(b"'\n.");
    assert_eq!(b.len(), EVIL.len());
    b
}

/// Maps FILE shared and writes A at OFF. `loop`: then writes B and A there, alternately, until
/// killed. `once`: says "ready", waits for a line, writes B, says "done", waits for EOF.
const FLIPPER: &str = r#"
import mmap, sys
f = open(sys.argv[1], "r+b")
m = mmap.mmap(f.fileno(), 0)
a, b, off = bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3]), int(sys.argv[4])
m[off:off + len(a)] = a
print("ready", flush=True)
if sys.argv[5] == "loop":
    while True:
        m[off:off + len(b)] = b
        m[off:off + len(a)] = a
else:
    sys.stdin.readline()
    m[off:off + len(b)] = b
    print("done", flush=True)
    sys.stdin.read()
"#;

struct Flipper {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Flipper {
    fn start(file: &Path, a: &[u8], b: &[u8], off: u64, mode: &str) -> Flipper {
        let hex = |x: &[u8]| x.iter().map(|c| format!("{c:02x}")).collect::<String>();
        let mut child = Command::new("python3")
            .args(["-c", FLIPPER])
            .arg(file)
            .args([hex(a), hex(b), off.to_string(), mode.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 is needed to write through a shared mapping");
        let stdin = child.stdin.take();
        let mut f = Flipper { stdout: BufReader::new(child.stdout.take().unwrap()), stdin, child };
        f.expect_line("ready");
        f
    }

    fn expect_line(&mut self, want: &str) {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), want, "the flipper did not start");
    }
}

impl Drop for Flipper {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Flips the file through the mapping the first time the put reports progress: after the scan,
/// while the store pass is still far from the flipped bytes.
struct FlipOnFirstChunk(Mutex<Option<Flipper>>, Mutex<bool>);

impl modelvault::Progress for FlipOnFirstChunk {
    fn advance(&self, _bytes: u64) {
        let mut done = self.1.lock().unwrap();
        if !*done {
            *done = true;
            let mut g = self.0.lock().unwrap();
            let f = g.as_mut().unwrap();
            writeln!(f.stdin.as_mut().unwrap(), "flip").unwrap();
            f.expect_line("done");
        }
    }
}

/// The recorded verdict of every stored version, and the verdict `scan` gives its stored bytes.
fn recorded_and_rescanned(v: &Vault<Unlocked>, dir: &Path, name: &str) -> Vec<(u64, String, String, bool)> {
    let Ok(listing) = v.list(Some(name)) else { return Vec::new() };
    let mut out = Vec::new();
    for ver in &listing.models[0].versions {
        let r = VersionRef::Number(ver.version);
        let recorded = v.inspect(name, &r).unwrap().files[0].scan_verdict.clone();
        let mut bytes = Vec::new();
        v.cat(name, &r, None, &mut bytes, &NoProgress).unwrap();
        let back = dir.join("fetched.pkl");
        std::fs::write(&back, &bytes).unwrap();
        let scan = modelvault::formats::scan_file(&back, &Default::default()).unwrap();
        let rescanned = match scan.report.map(|r| r.verdict) {
            Some(modelvault::formats::pickle::Verdict::Clean) => "clean",
            Some(modelvault::formats::pickle::Verdict::Dangerous) => "dangerous",
            Some(modelvault::formats::pickle::Verdict::Unscannable) => "unscannable",
            None => "not-applicable",
        };
        out.push((ver.version, recorded, rescanned.to_string(), contains(&bytes, b"posix\nsystem")));
    }
    out
}

#[test]
fn a_flip_through_a_shared_mapping_after_the_scan_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = new_vault(dir.path());
    // protocol 4: 48 MiB of BINBYTES8 data, POP, then the tail the scan judges.
    let n: u64 = 48 << 20;
    let mut data = b"\x80\x04\x8e".to_vec();
    data.extend_from_slice(&n.to_le_bytes());
    data.resize(data.len() + n as usize, 0);
    data.push(b'0');
    let tail_at = data.len() as u64;
    data.extend_from_slice(&benign());
    let f = dir.path().join("model.pkl");
    std::fs::write(&f, &data).unwrap();
    assert_eq!(modelvault::formats::scan_file(&f, &Default::default()).unwrap().report.unwrap().verdict, {
        modelvault::formats::pickle::Verdict::Clean
    });
    let flipper = Flipper::start(&f, &benign(), EVIL, tail_at, "once");
    let before = std::fs::metadata(&f).unwrap();
    let hook = FlipOnFirstChunk(Mutex::new(Some(flipper)), Mutex::new(false));
    let e = v.put(&f, "m", &PutOptions::default(), &hook).err();
    let after = std::fs::metadata(&f).unwrap();
    assert!(*hook.1.lock().unwrap(), "the flip happened");
    assert!(contains(&std::fs::read(&f).unwrap(), EVIL), "the file on disk now holds the payload");
    {
        use std::os::unix::fs::MetadataExt;
        // What makes this case hard: nothing `stat` shows has changed.
        assert_eq!((before.mtime(), before.mtime_nsec()), (after.mtime(), after.mtime_nsec()));
    }
    let stored = recorded_and_rescanned(&v, dir.path(), "m");
    assert!(stored.is_empty(), "a version was stored (version, recorded, rescanned, has payload): {stored:?}");
    let e = e.expect("the put was refused");
    assert!(e.to_string().contains("changed while it was being stored; nothing was stored"), "{e}");
    assert_eq!(e.exit_code(), 7);
    assert!(v.list(None).unwrap().models.is_empty());
}

#[test]
fn puts_racing_a_mapped_writer_store_only_what_they_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = new_vault(dir.path());
    let f = dir.path().join("model.pkl");
    let mut data = b"\x80\x02".to_vec();
    data.extend_from_slice(&benign());
    std::fs::write(&f, &data).unwrap();
    let flipper = Flipper::start(&f, &benign(), EVIL, 2, "loop");
    let (mut refused_changed, mut refused_unsafe, mut stored) = (0, 0, 0);
    let started = Instant::now();
    let mut i = 0;
    while i < 400 && (started.elapsed() < Duration::from_secs(6) || refused_changed == 0 && i < 2000) {
        let opts = PutOptions { allow_unsafe_pickle: i % 2 == 1, ..Default::default() };
        match v.put(&f, "m", &opts, &NoProgress) {
            Ok(_) => stored += 1,
            Err(e @ Error::InvalidInput(_)) => {
                assert!(e.to_string().contains("changed while it was being stored; nothing was stored"), "{e}");
                assert_eq!(e.exit_code(), 7);
                refused_changed += 1;
            }
            Err(Error::UnsafePickle { .. }) => refused_unsafe += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
        i += 1;
    }
    drop(flipper);
    let versions = recorded_and_rescanned(&v, dir.path(), "m");
    assert_eq!(versions.len(), stored);
    let wrong: Vec<_> = versions.iter().filter(|(_, rec, again, _)| rec != again).collect();
    assert!(
        wrong.is_empty(),
        "{} of {stored} stored versions have a verdict that is not their bytes' (version, recorded, rescanned, has payload): {wrong:?}",
        wrong.len()
    );
    let evil_clean = versions.iter().filter(|(_, rec, _, evil)| *evil && rec == "clean").count();
    assert_eq!(evil_clean, 0);
    eprintln!("{i} puts: {stored} stored, {refused_changed} refused as changed, {refused_unsafe} refused as unsafe");
    assert!(refused_changed > 0, "no put saw the file change ({i} puts): the race did not happen");
}
