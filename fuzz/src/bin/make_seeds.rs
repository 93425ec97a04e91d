//! Writes seed inputs for the record and manifest fuzz targets, encoded by the library itself.
//!
//! Usage: `make_seeds <shared corpus dir> <fuzz corpus dir>`. Writes
//! `<out>/manifest_decode/*`, `<out>/slot_record/*`, `<out>/records/*`.
//!
//! Manifests are built the way `put` builds them: each corpus file (up to 4 MiB) goes through
//! `formats::analyze` for its format, tensors and pickle scan, and `chunk::plan_with_cuts` for its
//! chunk list; the manifest is encoded with `Manifest::encode` and checked with
//! `decode_canonical` and `check` before it is written. Records use `records::encode` and
//! `SlotRecord::encode`. The seeds are deterministic (no clock, no randomness).

use std::collections::BTreeMap;
use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use modelvault::Argon2Params;
use modelvault::formats::{self, pickle};
use modelvault::manifest::{self, ChunkRef, FileEntry, MANIFEST_VERSION, Manifest, ScanRecord};
use modelvault::store::records::{
    self, AliasEvent, CHUNK_VALUE_VERSION, FORMAT_VERSION, Header, IndexRecord, MAGIC,
    ModelRecord, SignerRecord, SlotRecord, State, VersionRecord,
};
use sha2::{Digest, Sha256};

const MAX_FILE: u64 = 4 << 20;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: make_seeds <shared corpus dir> <fuzz corpus dir>");
        std::process::exit(2);
    }
    let corpus = PathBuf::from(&args[1]);
    let out = PathBuf::from(&args[2]);
    let (dm, ds, dr) = (out.join("manifest_decode"), out.join("slot_record"), out.join("records"));
    for d in [&dm, &ds, &dr] {
        fs::create_dir_all(d).expect("create seed dir");
    }

    // ---- manifests from real files -------------------------------------------------------
    let mut files = Vec::new();
    walk(&corpus, &mut files);
    files.sort();
    let mut entries = Vec::new();
    for p in &files {
        let Ok(bytes) = fs::read(p) else { continue };
        let rel = p.strip_prefix(&corpus).unwrap().to_string_lossy().replace('\\', "/");
        entries.push(file_entry(&rel, &bytes));
    }
    let mut n = 0;
    let write_manifest = |m: &Manifest, tag: &str| {
        let b = m.encode();
        let back = manifest::decode_canonical("seed", &b).expect("seed manifest decodes");
        back.check().expect("seed manifest passes check()");
        fs::write(dm.join(format!("{tag}.bin")), &b).unwrap();
        b
    };
    let mut version_manifests = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let m = sample_manifest(i as u64 + 1, vec![e.clone()]);
        let b = write_manifest(&m, &format!("one_{i:03}"));
        if i % 8 == 0 {
            version_manifests.push(b);
        }
        n += 1;
    }
    // A multi-file version, an empty version, and one with metadata edited (revision > 0).
    let multi: Vec<FileEntry> = entries.iter().take(6).cloned().collect();
    let mut multi_sorted = multi;
    multi_sorted.sort_by(|a, b| a.path.cmp(&b.path));
    version_manifests.push(write_manifest(&sample_manifest(100, multi_sorted), "multi"));
    version_manifests.push(write_manifest(&sample_manifest(101, Vec::new()), "empty"));
    let mut edited = sample_manifest(102, entries.iter().take(1).cloned().collect());
    edited.revision = 3;
    edited.updated = edited.created + 3600;
    edited.description = "retrained on the full set; see notes".into();
    edited.tags.insert("stage".into(), "prod".into());
    edited.metrics.insert("f1".into(), -0.0);
    edited.metrics.insert("loss".into(), 1e-300);
    write_manifest(&edited, "edited");
    n += 3;

    // ---- slot records ----------------------------------------------------------------------
    let params = [
        Argon2Params { memory_kib: 64 << 10, time_cost: 3, lanes: 4 },
        Argon2Params { memory_kib: 1024, time_cost: 1, lanes: 1 },
        Argon2Params { memory_kib: 256 << 10, time_cost: 3, lanes: 4 },
    ];
    for (i, p) in params.iter().enumerate() {
        let rec = SlotRecord {
            epoch: i as u32,
            params: *p,
            salt: seeded::<16>(&format!("salt{i}")),
            wrapped: seeded::<60>(&format!("wrapped{i}")).to_vec(),
            created: 1_790_000_000 + i as u64,
            // The last slot is mid-rotation: it also wraps the next epoch's master key.
            next: (i == 2).then(|| (i as u32 + 1, seeded::<60>("next").to_vec())),
            // Format 3 slots carry a check value; the first one is as a format 2 slot was.
            kek_check: (i > 0).then(|| seeded::<32>(&format!("check{i}"))),
        };
        let enc = rec.encode();
        assert!(SlotRecord::decode(&enc).is_some(), "seed slot decodes");
        // Mode byte 0: decode as is (checksum included).
        fs::write(ds.join(format!("slot_raw_{i}.bin")), [&[0u8][..], &enc].concat()).unwrap();
        // Mode byte 1: the body only; the target appends the checksum.
        let body = &enc[..enc.len() - 32];
        fs::write(ds.join(format!("slot_body_{i}.bin")), [&[1u8][..], body].concat()).unwrap();
    }

    // ---- other records (selector byte = the target's `sel % 7`) ----------------------------
    let rec_seed = |sel: u8, tag: &str, bytes: &[u8]| {
        fs::write(dr.join(format!("{sel}_{tag}.bin")), [&[sel][..], bytes].concat()).unwrap();
    };
    let models = [
        ModelRecord {
            name: "demo".into(),
            created: 1_790_000_000,
            next_version: 2,
            aliases: BTreeMap::new(),
            description: String::new(),
            alias_history: Vec::new(),
            live: vec![1],
            legacy: false,
        },
        ModelRecord {
            name: "org/llama-3-8b-instruct".into(),
            created: 1_790_000_000,
            next_version: 17,
            aliases: BTreeMap::from([("prod".into(), 12), ("staging".into(), 16)]),
            description: "fine-tuned; see the model card".into(),
            alias_history: vec![
                AliasEvent { alias: "prod".into(), from: None, to: Some(3), at: 1_790_000_100 },
                AliasEvent { alias: "prod".into(), from: Some(3), to: Some(12), at: 1_790_000_200 },
                AliasEvent { alias: "old".into(), from: Some(1), to: None, at: 1_790_000_300 },
            ],
            live: vec![1, 3, 12, 16],
            legacy: false,
        },
    ];
    for (i, m) in models.iter().enumerate() {
        let b = records::encode(m);
        let back: ModelRecord = records::decode("seed", &b).unwrap();
        assert_eq!(&back, m);
        rec_seed(0, &format!("model{i}"), &b);
    }
    for (i, mb) in version_manifests.iter().enumerate() {
        let v = VersionRecord {
            manifest: mb.clone(),
            signature: seeded::<64>(&format!("sig{i}")).to_vec(),
            signer: seeded::<32>("signer"),
        };
        rec_seed(1, &format!("version{i}"), &records::encode(&v));
    }
    let states = [
        State::default(),
        State { epoch: 3, active_signer: 2, next_signer: 3, chunk_seals: 1 << 33, meta_seals: 12_345, ..State::default() },
        State { epoch: 4, rotating_to: Some(5), ..State::default() },
    ];
    for (i, s) in states.iter().enumerate() {
        rec_seed(2, &format!("state{i}"), &records::encode(s));
    }
    for (i, retired) in [None, Some(1_795_000_000u64)].into_iter().enumerate() {
        let s = SignerRecord {
            seed: seeded::<32>(&format!("seed{i}")),
            public: seeded::<32>(&format!("pub{i}")),
            created: 1_790_000_000,
            retired,
        };
        rec_seed(3, &format!("signer{i}"), &records::encode(&s));
    }
    let h = Header {
        magic: MAGIC,
        format_version: FORMAT_VERSION,
        vault_id: seeded::<16>("vault"),
        created: 1_790_000_000,
    };
    rec_seed(4, "header", &records::encode(&h));
    rec_seed(5, "index", &records::encode(&IndexRecord { key: seeded::<32>("index") }));
    for (i, len) in [0usize, 16, 1000].into_iter().enumerate() {
        let mut v = vec![CHUNK_VALUE_VERSION];
        v.extend_from_slice(&(i as u32).to_be_bytes());
        v.extend(std::iter::repeat_n(0xa5u8, 12 + len + 16));
        rec_seed(6, &format!("chunk{i}"), &v);
    }
    eprintln!(
        "make_seeds: {n} manifests, {} slot records, {} other records",
        2 * params.len(),
        fs::read_dir(&dr).unwrap().count()
    );
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(md) = e.metadata() else { continue };
        if md.is_dir() {
            walk(&p, out);
        } else if md.is_file() && md.len() <= MAX_FILE && p.file_name().is_some_and(|n| n != "MANIFEST.md") {
            out.push(p);
        }
    }
}

/// A file entry as `put` would record it (without storing anything).
fn file_entry(path: &str, bytes: &[u8]) -> FileEntry {
    let len = bytes.len() as u64;
    let analysis = formats::analyze(&mut Cursor::new(bytes), len, &pickle::ScanOptions::default());
    let (format, tensors, scan, cuts) = match analysis {
        Ok(a) => (formats::format_name(&a.format), a.tensors, a.scan, a.cuts),
        Err(_) => ("opaque".to_string(), Vec::new(), None, Vec::new()),
    };
    let mut chunks = Vec::new();
    let mut at = 0usize;
    for piece in modelvault::chunk::plan_with_cuts(len, &cuts) {
        let id: [u8; 32] = Sha256::digest(&bytes[at..at + piece]).into();
        chunks.push(ChunkRef { id, len: piece as u32 });
        at += piece;
    }
    let scan = scan.map(|r| ScanRecord {
        verdict: format!("{:?}", r.verdict).to_lowercase(),
        findings: r
            .findings
            .iter()
            .map(|f| format!("{} {:?} @{} {}", f.global, f.member, f.offset, f.reason))
            .collect(),
        allowed_unsafe: r.verdict != pickle::Verdict::Clean,
    });
    FileEntry {
        path: path.to_string(),
        size: len,
        sha256: Sha256::digest(bytes).into(),
        chunks,
        format,
        tensors,
        scan,
    }
}

fn sample_manifest(version: u64, files: Vec<FileEntry>) -> Manifest {
    Manifest {
        manifest_version: MANIFEST_VERSION,
        vault_id: seeded::<16>("vault"),
        name: format!("corpus/model-{}", version % 7),
        version,
        created: 1_790_000_000 + version,
        revision: 0,
        updated: 1_790_000_000 + version,
        description: String::new(),
        tags: BTreeMap::from([("source".into(), "shared-corpus".into())]),
        metrics: BTreeMap::from([("acc".into(), 0.5 + version as f64 / 1000.0)]),
        files,
    }
}

/// Deterministic pseudo-random bytes (SHA-256 of a label, repeated as needed).
fn seeded<const N: usize>(label: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let mut i = 0u32;
    for chunk in out.chunks_mut(32) {
        let d = Sha256::digest(format!("{label}/{i}").as_bytes());
        chunk.copy_from_slice(&d[..chunk.len()]);
        i += 1;
    }
    out
}
