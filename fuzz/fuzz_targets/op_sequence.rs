//! Sequences of up to [`MAX_OPS`] vault operations (put, tag, untag, alias, unalias, rm of a
//! version or a model, rm --erase, gc, key rotation, close and reopen) run through the library's
//! public API against an in-memory model of what the vault must hold: models, their versions,
//! each version's bytes and tags, each model's aliases, and the number the next put gets.
//! An operation the model says must fail must fail and change nothing; one it says must succeed
//! must succeed. After every step the vault is compared with the model through the public API
//! only: `list`, `show` of an absent version, `cat` of every version (by number, by alias and as
//! the latest), and `verify --read-data` with no problem.
//!
//! Payloads are a few KiB cut from six shared pieces, as safetensors files (one chunk per
//! tensor, so versions share chunks and dedup, gc and erasure meet shared chunks) or as raw
//! files. The vault lives in /dev/shm when there is one (fsync is free there), with test-sized
//! Argon2 costs. It never opens the file with redb and never reaches into the library's
//! internals.
#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use modelvault::{
    Argon2Params, CreateOptions, Error, NoProgress, OpenOptions, Passphrase, PutOptions, Unlocked, Vault, VersionRef,
};
use sha2::{Digest, Sha256};

/// Longest operation sequence one input runs.
const MAX_OPS: usize = 32;
const MODELS: [&str; 3] = ["m0", "m1", "m2"];
const ALIASES: [&str; 3] = ["prod", "dev", "canary"];
const TAG_KEYS: [&str; 3] = ["k0", "k1", "k2"];
const TAG_VALUES: [&str; 3] = ["v0", "v1", "v2"];
/// Shared pieces payloads are cut from, and the bytes of each.
const PIECES: usize = 6;
const PIECE_LEN: usize = 4096;
const PASS: &[u8] = b"op-sequence passphrase";

/// Which version an operation names.
#[derive(Debug, Clone, Copy)]
enum Sel {
    Latest,
    /// A version number, 1..=6 (often absent).
    Number(u64),
    Alias(usize),
}

/// One span of a payload: `len` bytes of piece `piece` from `start`.
#[derive(Debug, Clone, Copy)]
struct Span {
    piece: usize,
    start: usize,
    len: usize,
}

#[derive(Debug, Clone)]
struct Payload {
    /// A safetensors file with one U8 tensor per span, or a raw file of the spans.
    safetensors: bool,
    spans: Vec<Span>,
}

#[derive(Debug, Clone)]
enum Op {
    Put { model: usize, payload: Payload, tag: Option<(usize, usize)>, alias: Option<usize> },
    Tag { model: usize, sel: Sel, key: usize, value: usize },
    Untag { model: usize, sel: Sel, key: usize },
    Alias { model: usize, sel: Sel, alias: usize },
    Unalias { model: usize, alias: usize },
    RmVersion { model: usize, sel: Sel },
    RmModel { model: usize },
    Erase { model: usize, sel: Option<Sel> },
    Gc,
    Rotate,
    Reopen,
}

// The encoding is compact (one byte per choice, most operations two or three bytes) so that
// short inputs already hold long sequences: libFuzzer starts with inputs of a few bytes.

/// One byte, `0` once the input is used up.
fn byte(u: &mut Unstructured) -> arbitrary::Result<usize> {
    Ok(usize::from(u.arbitrary::<u8>()?))
}

impl<'a> Arbitrary<'a> for Sel {
    /// One byte: the low two bits choose latest / an alias / a number, the rest which one.
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let b = byte(u)?;
        Ok(match b & 3 {
            0 => Sel::Latest,
            1 => Sel::Alias((b >> 2) % ALIASES.len()),
            _ => Sel::Number(1 + (b >> 2) as u64 % 6),
        })
    }
}

impl<'a> Arbitrary<'a> for Payload {
    /// One byte (bit 0: raw rather than safetensors; bits 1-2: 1 to 4 spans), then one byte per
    /// span: the piece, and from 0xc0 up a slice of it (two more bytes: start, length) rather
    /// than the whole piece.
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let b = byte(u)?;
        let safetensors = b & 1 == 0;
        let n = 1 + ((b >> 1) & 3);
        let mut spans = Vec::with_capacity(n);
        for _ in 0..n {
            let s = byte(u)?;
            let piece = s % PIECES;
            let (start, len) = if s >= 0xc0 {
                let start = byte(u)? * PIECE_LEN / 256;
                (start, 1 + byte(u)? * (PIECE_LEN - start) / 256)
            } else {
                (0, PIECE_LEN)
            };
            spans.push(Span { piece, start, len });
        }
        Ok(Payload { safetensors, spans })
    }
}

impl<'a> Arbitrary<'a> for Op {
    /// One byte: the low four bits the operation, the high four the model; then its arguments.
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let b = byte(u)?;
        let model = (b >> 4) % MODELS.len();
        Ok(match b & 15 {
            0..=4 => {
                let payload = u.arbitrary()?;
                // One byte: bit 0 a tag (bits 1-4 which), bit 5 an alias (bits 6-7 which).
                let f = byte(u)?;
                let tag = (f & 1 == 1).then_some(((f >> 1) % TAG_KEYS.len(), (f >> 3) % TAG_VALUES.len()));
                let alias = (f & 32 == 32).then_some((f >> 6) % ALIASES.len());
                Op::Put { model, payload, tag, alias }
            }
            5 | 6 => {
                let sel = u.arbitrary()?;
                let kv = byte(u)?;
                Op::Tag { model, sel, key: kv % TAG_KEYS.len(), value: (kv >> 2) % TAG_VALUES.len() }
            }
            7 => Op::Untag { model, sel: u.arbitrary()?, key: byte(u)? % TAG_KEYS.len() },
            8 | 9 => Op::Alias { model, sel: u.arbitrary()?, alias: byte(u)? % ALIASES.len() },
            10 => Op::Unalias { model, alias: byte(u)? % ALIASES.len() },
            11 => Op::RmVersion { model, sel: u.arbitrary()? },
            12 => {
                // One byte: 0-63 the whole model by `rm`, 64-127 by `rm --erase`, else one
                // version by `rm --erase` (the byte is also the version's selector).
                let c = byte(u)?;
                match c {
                    0..=63 => Op::RmModel { model },
                    64..=127 => Op::Erase { model, sel: None },
                    _ => Op::Erase { model, sel: Some(Unstructured::new(&[c as u8]).arbitrary()?) },
                }
            }
            13 => Op::Gc,
            14 => Op::Rotate,
            _ => Op::Reopen,
        })
    }
}

/// The input: a bounded operation sequence.
#[derive(Debug)]
struct Ops(Vec<Op>);

impl<'a> Arbitrary<'a> for Ops {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut ops = Vec::new();
        while ops.len() < MAX_OPS && !u.is_empty() {
            ops.push(u.arbitrary()?);
        }
        Ok(Ops(ops))
    }
}

// ---------------------------------------------------------------------------------------------
// The model: what the vault must hold
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq)]
struct ModelVersion {
    bytes: Vec<u8>,
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
struct Model {
    /// The number the next put gets.
    next: u64,
    versions: BTreeMap<u64, ModelVersion>,
    aliases: BTreeMap<String, u64>,
}

/// Models by name; a model with no version left is not there (its next put starts at 1).
type Expected = BTreeMap<String, Model>;

/// What the model says an operation must do.
#[derive(Debug, PartialEq)]
enum Outcome {
    Ok,
    /// It must fail and change nothing.
    Fails,
}

/// The version `sel` names in `m`, if any.
fn resolve(m: Option<&Model>, sel: Sel) -> Option<u64> {
    let m = m?;
    match sel {
        Sel::Latest => m.versions.keys().next_back().copied(),
        Sel::Number(n) => m.versions.contains_key(&n).then_some(n),
        Sel::Alias(a) => m.aliases.get(ALIASES[a]).copied(),
    }
}

fn version_ref(sel: Sel) -> VersionRef {
    match sel {
        Sel::Latest => VersionRef::Latest,
        Sel::Number(n) => VersionRef::Number(n),
        Sel::Alias(a) => VersionRef::Alias(ALIASES[a].to_string()),
    }
}

/// Removes version `v` of `name` from the model, with the aliases pointing at it; the model
/// goes when its last version does.
fn model_remove_version(exp: &mut Expected, name: &str, v: u64) {
    let m = exp.get_mut(name).unwrap();
    m.versions.remove(&v);
    m.aliases.retain(|_, t| *t != v);
    if m.versions.is_empty() {
        exp.remove(name);
    }
}

/// Applies `op` to the model and says whether the vault must accept it.
fn apply_to_model(exp: &mut Expected, op: &Op) -> Outcome {
    match op {
        Op::Put { model, payload, tag, alias } => {
            let m = exp.entry(MODELS[*model].to_string()).or_insert_with(|| Model {
                next: 1,
                versions: BTreeMap::new(),
                aliases: BTreeMap::new(),
            });
            let v = m.next;
            m.next += 1;
            let tags = tag.iter().map(|(k, x)| (TAG_KEYS[*k].to_string(), TAG_VALUES[*x].to_string())).collect();
            m.versions.insert(v, ModelVersion { bytes: payload_bytes(payload), tags });
            if let Some(a) = alias {
                m.aliases.insert(ALIASES[*a].to_string(), v);
            }
            Outcome::Ok
        }
        Op::Tag { model, sel, key, value } => {
            let name = MODELS[*model];
            let Some(v) = resolve(exp.get(name), *sel) else { return Outcome::Fails };
            let tags = &mut exp.get_mut(name).unwrap().versions.get_mut(&v).unwrap().tags;
            tags.insert(TAG_KEYS[*key].to_string(), TAG_VALUES[*value].to_string());
            Outcome::Ok
        }
        Op::Untag { model, sel, key } => {
            let name = MODELS[*model];
            let Some(v) = resolve(exp.get(name), *sel) else { return Outcome::Fails };
            let tags = &mut exp.get_mut(name).unwrap().versions.get_mut(&v).unwrap().tags;
            if tags.remove(TAG_KEYS[*key]).is_none() { Outcome::Fails } else { Outcome::Ok }
        }
        Op::Alias { model, sel, alias } => {
            let name = MODELS[*model];
            let Some(v) = resolve(exp.get(name), *sel) else { return Outcome::Fails };
            exp.get_mut(name).unwrap().aliases.insert(ALIASES[*alias].to_string(), v);
            Outcome::Ok
        }
        Op::Unalias { model, alias } => {
            let Some(m) = exp.get_mut(MODELS[*model]) else { return Outcome::Fails };
            if m.aliases.remove(ALIASES[*alias]).is_none() { Outcome::Fails } else { Outcome::Ok }
        }
        Op::RmVersion { model, sel } | Op::Erase { model, sel: Some(sel) } => {
            let name = MODELS[*model];
            let Some(v) = resolve(exp.get(name), *sel) else { return Outcome::Fails };
            model_remove_version(exp, name, v);
            Outcome::Ok
        }
        Op::RmModel { model } | Op::Erase { model, sel: None } => {
            if exp.remove(MODELS[*model]).is_none() {
                Outcome::Fails
            } else {
                Outcome::Ok
            }
        }
        Op::Gc | Op::Rotate | Op::Reopen => Outcome::Ok,
    }
}

// ---------------------------------------------------------------------------------------------
// The vault under test
// ---------------------------------------------------------------------------------------------

/// Six pieces of 4 KiB of fixed pseudo-random bytes: piece `i` is SHA-256("piece i/j") for
/// j = 0, 1, ... concatenated.
fn pieces() -> &'static [Vec<u8>] {
    static P: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    P.get_or_init(|| {
        (0..PIECES)
            .map(|i| (0..PIECE_LEN / 32).flat_map(|j| Sha256::digest(format!("piece {i}/{j}").as_bytes())).collect())
            .collect()
    })
}

/// The file a payload describes.
fn payload_bytes(p: &Payload) -> Vec<u8> {
    let data: Vec<&[u8]> = p.spans.iter().map(|s| &pieces()[s.piece][s.start..s.start + s.len]).collect();
    if !p.safetensors {
        let mut out = b"op-sequence raw payload\n".to_vec();
        data.iter().for_each(|d| out.extend_from_slice(d));
        return out;
    }
    let mut header = String::from("{");
    let mut at = 0usize;
    for (i, d) in data.iter().enumerate() {
        if i > 0 {
            header.push(',');
        }
        header += &format!(r#""t{i}":{{"dtype":"U8","shape":[{}],"data_offsets":[{at},{}]}}"#, d.len(), at + d.len());
        at += d.len();
    }
    header.push('}');
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    data.iter().for_each(|d| out.extend_from_slice(d));
    out
}

fn pass() -> Passphrase {
    Passphrase::new(PASS.to_vec()).unwrap()
}

/// This process's scratch directory (reused by every input).
fn scratch() -> &'static Path {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
        // libFuzzer exits without running destructors: remove what earlier processes left.
        if let Ok(entries) = std::fs::read_dir(&base) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("mvault-op-sequence-") {
                    if !Path::new("/proc").join(pid).exists() {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let d = base.join(format!("mvault-op-sequence-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

/// A new, empty vault with test-sized Argon2 costs, created once per process; each input starts
/// from a copy of it (creating one per input would take most of the time).
fn empty_vault() -> &'static Path {
    static V: OnceLock<PathBuf> = OnceLock::new();
    V.get_or_init(|| {
        let path = scratch().join("empty.mvault");
        let _ = std::fs::remove_file(&path);
        let argon2 = Argon2Params { memory_kib: 256, time_cost: 1, lanes: 1 };
        Vault::create(&path, &pass(), &CreateOptions { argon2, ..Default::default() }).expect("create a vault");
        path
    })
}

/// Runs `op` (any but [`Op::Reopen`]) on the vault; `Ok(())` when the vault accepted it.
fn apply_to_vault(vault: &mut Vault<Unlocked>, op: &Op) -> Result<(), Error> {
    match op {
        Op::Put { model, payload, tag, alias } => {
            let file = scratch().join(if payload.safetensors { "model.safetensors" } else { "model.bin" });
            std::fs::write(&file, payload_bytes(payload)).unwrap();
            let opts = PutOptions {
                tags: tag.iter().map(|(k, x)| (TAG_KEYS[*k].to_string(), TAG_VALUES[*x].to_string())).collect(),
                aliases: alias.iter().map(|a| ALIASES[*a].to_string()).collect(),
                ..Default::default()
            };
            vault.put(&file, MODELS[*model], &opts, &NoProgress).map(drop)
        }
        Op::Tag { model, sel, key, value } => {
            vault.set_tag(MODELS[*model], &version_ref(*sel), TAG_KEYS[*key], TAG_VALUES[*value]).map(drop)
        }
        Op::Untag { model, sel, key } => vault.remove_tag(MODELS[*model], &version_ref(*sel), TAG_KEYS[*key]).map(drop),
        Op::Alias { model, sel, alias } => {
            vault.set_alias(MODELS[*model], &version_ref(*sel), ALIASES[*alias]).map(drop)
        }
        Op::Unalias { model, alias } => vault.remove_alias(MODELS[*model], ALIASES[*alias]),
        Op::RmVersion { model, sel } => vault.remove_version(MODELS[*model], &version_ref(*sel)).map(drop),
        Op::RmModel { model } => vault.remove_model(MODELS[*model]).map(drop),
        Op::Erase { model, sel } => vault.erase(MODELS[*model], sel.map(version_ref).as_ref()).map(drop),
        Op::Gc => vault.gc().map(drop),
        Op::Rotate => vault.rotate(&[], false, &NoProgress).map(drop),
        // Closed and reopened by the caller (the old handle must go first: the file is locked).
        Op::Reopen => unreachable!("reopen is run by the caller"),
    }
}

fn cat(vault: &Vault<Unlocked>, name: &str, r: &VersionRef) -> Vec<u8> {
    let mut out = Vec::new();
    vault.cat(name, r, None, &mut out, &NoProgress).unwrap_or_else(|e| panic!("cat {name}@{r}: {e}"));
    out
}

/// Compares the vault with the model through the public API.
fn check(vault: &Vault<Unlocked>, exp: &Expected, step: usize, op: &Op) {
    let ctx = format!("after step {step} ({op:?})");
    let listing = vault.list(None).unwrap_or_else(|e| panic!("{ctx}: list: {e}"));
    assert!(listing.problems.is_empty(), "{ctx}: list reports problems: {:?}", listing.problems);
    let names: Vec<&str> = listing.models.iter().map(|m| m.name.as_str()).collect();
    let want: Vec<&str> = exp.keys().map(String::as_str).collect();
    assert_eq!(names, want, "{ctx}: models");
    for (info, (name, m)) in listing.models.iter().zip(exp) {
        let versions: Vec<u64> = info.versions.iter().map(|v| v.version).collect();
        assert_eq!(versions, m.versions.keys().copied().collect::<Vec<_>>(), "{ctx}: versions of {name}");
        assert_eq!(info.aliases, m.aliases, "{ctx}: aliases of {name}");
        for (vi, (n, mv)) in info.versions.iter().zip(&m.versions) {
            assert_eq!(vi.tags, mv.tags, "{ctx}: tags of {name}@{n}");
            assert_eq!(vi.size_bytes, mv.bytes.len() as u64, "{ctx}: size of {name}@{n}");
            let pointing: Vec<&String> = m.aliases.iter().filter(|(_, t)| *t == n).map(|(a, _)| a).collect();
            assert_eq!(vi.aliases.iter().collect::<Vec<_>>(), pointing, "{ctx}: aliases at {name}@{n}");
            assert!(cat(vault, name, &VersionRef::Number(*n)) == mv.bytes, "{ctx}: bytes of {name}@{n} differ");
        }
        let (latest, bytes) = m.versions.last_key_value().unwrap();
        assert!(cat(vault, name, &VersionRef::Latest) == bytes.bytes, "{ctx}: {name} latest is not {latest}");
        for (a, t) in &m.aliases {
            let got = cat(vault, name, &VersionRef::Alias(a.clone()));
            assert!(got == m.versions[t].bytes, "{ctx}: {name}@{a} does not read as version {t}");
        }
        // The next number is not there yet.
        let e = vault.show(name, &VersionRef::Number(m.next)).map(drop);
        assert!(matches!(e, Err(Error::VersionNotFound { .. })), "{ctx}: show {name}@{}: {e:?}", m.next);
    }
    for name in MODELS.iter().filter(|n| !exp.contains_key(**n)) {
        let e = vault.show(name, &VersionRef::Latest).map(drop);
        assert!(matches!(e, Err(Error::ModelNotFound(..))), "{ctx}: show {name}: {e:?}");
    }
    let rep = vault.verify(true, &NoProgress).unwrap_or_else(|e| panic!("{ctx}: verify: {e}"));
    assert!(rep.problems.is_empty(), "{ctx}: verify --read-data: {:?}", rep.problems);
    let in_model: u64 = exp.values().map(|m| m.versions.len() as u64).sum();
    assert_eq!(rep.versions, in_model, "{ctx}: versions verified");
}

fuzz_target!(|ops: Ops| {
    let path = scratch().join("vault.mvault");
    std::fs::copy(empty_vault(), &path).expect("copy the empty vault");
    let mut vault = Vault::open(&path, &OpenOptions::default()).and_then(|v| v.unlock(&pass())).expect("open a vault");
    let mut exp = Expected::new();
    for (step, op) in ops.0.iter().enumerate() {
        let before = exp.clone();
        let want = apply_to_model(&mut exp, op);
        let got = if let Op::Reopen = op {
            drop(vault);
            vault = Vault::open(&path, &OpenOptions::default())
                .and_then(|v| v.unlock(&pass()))
                .unwrap_or_else(|e| panic!("step {step}: reopen: {e}"));
            Ok(())
        } else {
            apply_to_vault(&mut vault, op)
        };
        match (&want, &got) {
            (Outcome::Ok, Err(e)) => panic!("step {step} ({op:?}): the vault refused: {e}"),
            (Outcome::Fails, Ok(())) => panic!("step {step} ({op:?}): the vault accepted what must fail"),
            (Outcome::Fails, Err(e)) => {
                assert_eq!(exp, before, "step {step}: a failing op changed the model");
                assert!(
                    matches!(e, Error::ModelNotFound(..) | Error::VersionNotFound { .. } | Error::InvalidInput(..)),
                    "step {step} ({op:?}): unexpected kind of error: {e:?}"
                );
            }
            (Outcome::Ok, Ok(())) => {}
        }
        check(&vault, &exp, step, op);
    }
});
