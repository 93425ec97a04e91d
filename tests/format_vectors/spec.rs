//! A reader of vault files written from SECURITY.md, "Byte layout", alone: no item of the
//! `modelvault` crate is used here, only redb, argon2, aes-gcm, hkdf, sha2, blake3, ed25519-dalek
//! and postcard/serde. Every struct below is written from the field lists of the spec, and every
//! function is one step of it, named after the subsection it follows. Each step asserts what the
//! spec says a reader must check; a failed assertion means the file and the spec disagree. The
//! structs repeat the library's on purpose: a reader that imported them would not test the spec.
//! Over 500 lines: one struct per record and one function per subsection, in one file so that it
//! reads top to bottom alongside SECURITY.md.

use std::collections::BTreeMap;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use ed25519_dalek::{Signature, VerifyingKey};
use hkdf::Hkdf;
use redb::{ReadOnlyDatabase, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

// "Container: redb tables": names and redb key and value types.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const SLOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("slots");
const SIGNERS: TableDefinition<u32, &[u8]> = TableDefinition::new("signers");
const TRUST: TableDefinition<&str, &[u8]> = TableDefinition::new("trust");
const MODELS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("models");
const VERSIONS: TableDefinition<&[u8; 40], &[u8]> = TableDefinition::new("versions");
const CHUNKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("chunks");
const CHUNK_IDS: TableDefinition<&[u8; 32], u32> = TableDefinition::new("chunk_ids");

/// "Header".
#[derive(Deserialize)]
pub struct Header {
    pub magic: [u8; 10],
    pub format_version: u32,
    pub vault_id: [u8; 16],
    pub created: u64,
}

/// "Key slots": a slot. Formats 1 and 2 end after `next`; format 3 appends `kek_check` (see
/// [`SlotRecord3`]), which is `None` here for the older layout.
#[derive(Deserialize)]
pub struct Slot {
    pub epoch: u32,
    pub params: Argon2Params,
    pub salt: [u8; 16],
    pub wrapped: Vec<u8>,
    pub created: u64,
    pub next: Option<(u32, Vec<u8>)>,
    /// Not in the older layout: `None`; format 3: `Some(kek_check)`.
    #[serde(skip)]
    pub kek_check: Option<Option<[u8; 32]>>,
}

/// "Key slots": the format 3 layout, the older fields followed by `kek_check`.
#[derive(Deserialize)]
struct SlotRecord3(Slot, Option<[u8; 32]>);

/// "Key slots": the Argon2id parameters.
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub time_cost: u32,
    pub lanes: u32,
}

/// "State". Formats 1 and 2 end after `rotating_to`; format 3 appends `live_models` and
/// `models_digest` (see [`State3`]), which are zero here for the older layout.
#[derive(Deserialize)]
pub struct State {
    pub epoch: u32,
    pub active_signer: u32,
    pub next_signer: u32,
    pub chunk_seals: u64,
    pub meta_seals: u64,
    pub rotating_to: Option<u32>,
    #[serde(skip)]
    pub live_models: u64,
    #[serde(skip)]
    pub models_digest: [u8; 32],
}

/// "State": the format 3 layout.
#[derive(Deserialize)]
struct State3(State, u64, [u8; 32]);

/// "Key hierarchy": the index key record.
#[derive(Deserialize)]
struct IndexRecord {
    key: [u8; 32],
}

/// "Signer records".
#[derive(Deserialize)]
pub struct SignerRecord {
    pub seed: [u8; 32],
    pub public: [u8; 32],
    pub created: u64,
    pub retired: Option<u64>,
}

/// "Model records": one alias move.
#[derive(Deserialize)]
pub struct AliasEvent {
    pub alias: String,
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub at: u64,
}

/// "Model records". Formats 1 and 2 end after `alias_history`; format 3 appends `live` (see
/// [`ModelRecord3`]).
#[derive(Deserialize)]
struct ModelRecord {
    name: String,
    created: u64,
    next_version: u64,
    aliases: BTreeMap<String, u64>,
    description: String,
    alias_history: Vec<AliasEvent>,
}

/// "Model records": the format 3 layout.
#[derive(Deserialize)]
struct ModelRecord3(ModelRecord, Vec<u64>);

/// "Version records and the signed manifest".
#[derive(Deserialize)]
pub struct VersionRecord {
    pub manifest: Vec<u8>,
    pub signature: Vec<u8>,
    pub signer: [u8; 32],
}

/// "Version records and the signed manifest": the manifest.
#[derive(Serialize, Deserialize, PartialEq, Debug)]
pub struct Manifest {
    pub manifest_version: u32,
    pub vault_id: [u8; 16],
    pub name: String,
    pub version: u64,
    pub created: u64,
    pub revision: u64,
    pub updated: u64,
    pub description: String,
    pub tags: BTreeMap<String, String>,
    pub metrics: BTreeMap<String, f64>,
    pub files: Vec<FileEntry>,
}

/// "Version records and the signed manifest": one file.
#[derive(Serialize, Deserialize, PartialEq, Debug)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub sha256: [u8; 32],
    pub chunks: Vec<ChunkRef>,
    pub format: String,
    pub tensors: Vec<TensorInfo>,
    pub scan: Option<ScanRecord>,
}

/// "Version records and the signed manifest": one chunk of a file.
#[derive(Serialize, Deserialize, PartialEq, Debug)]
pub struct ChunkRef {
    pub id: [u8; 32],
    pub len: u32,
}

/// "Version records and the signed manifest": one tensor of a file.
#[derive(Serialize, Deserialize, PartialEq, Debug)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    pub offset: u64,
    pub len: u64,
}

/// "Version records and the signed manifest": a pickle scan.
#[derive(Serialize, Deserialize, PartialEq, Debug)]
pub struct ScanRecord {
    pub verdict: String,
    pub findings: Vec<String>,
    pub allowed_unsafe: bool,
}

/// "Other records": the allow-list.
#[derive(Deserialize)]
struct AllowRecord {
    globals: Vec<String>,
}

/// "Other records": a trusted key.
#[derive(Deserialize)]
pub struct TrustRecord {
    pub name: String,
    pub public: [u8; 32],
    pub added: u64,
}

/// "Encoding": a record with two layouts is decoded in the format 3 layout first, and in the
/// older one only if that runs out of bytes. `Ok` for the format 3 layout.
fn decode_layouts<N: DeserializeOwned, O: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<N, O> {
    match postcard::from_bytes::<N>(bytes) {
        Ok(n) => Ok(n),
        Err(postcard::Error::DeserializeUnexpectedEnd) => {
            Err(postcard::from_bytes::<O>(bytes).unwrap_or_else(|e| panic!("{what}: neither layout decodes: {e}")))
        }
        Err(e) => panic!("{what}: does not decode: {e}"),
    }
}

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> T {
    postcard::from_bytes(bytes).unwrap_or_else(|e| panic!("{what}: does not decode: {e}"))
}

/// "Container: redb tables" and "Header": an open vault file and its header.
pub struct File {
    _db: ReadOnlyDatabase,
    pub rx: ReadTransaction,
    pub header: Header,
}

/// "Container: redb tables", then "Header": opens the file read-only and checks the magic bytes
/// and the format version (1 to 3).
pub fn open(path: &Path) -> File {
    let db = ReadOnlyDatabase::open(path).unwrap();
    let rx = db.begin_read().unwrap();
    let header: Header = {
        let meta = rx.open_table(META).unwrap();
        decode("header", meta.get("header").unwrap().expect("a header").value())
    };
    assert_eq!(&header.magic, b"modelvault", "magic bytes");
    assert!((1..=3).contains(&header.format_version), "format version {}", header.format_version);
    File { _db: db, rx, header }
}

/// "Sealed values": the AAD of a value of `table`/`key` sealed under `epoch`.
pub fn aad(table: &str, vault_id: &[u8; 16], epoch: u32, key: &[u8]) -> Vec<u8> {
    let mut a = b"modelvault/v1/".to_vec();
    a.extend_from_slice(table.as_bytes());
    a.push(0);
    a.extend_from_slice(vault_id);
    a.extend_from_slice(&epoch.to_be_bytes());
    a.extend_from_slice(key);
    a
}

/// AES-256-GCM open of `nonce (12 B) ‖ ciphertext ‖ tag (16 B)`.
fn gcm_open(key: &[u8; 32], aad: &[u8], sealed: &[u8], what: &str) -> Vec<u8> {
    assert!(sealed.len() >= 28, "{what}: shorter than nonce + tag");
    let (nonce, ct) = sealed.split_at(12);
    let nonce: [u8; 12] = nonce.try_into().unwrap();
    Aes256Gcm::new_from_slice(key)
        .unwrap()
        .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad })
        .unwrap_or_else(|_| panic!("{what}: the GCM tag does not authenticate"))
}

/// HKDF-SHA256 (RFC 5869) with 32 bytes of output.
fn hkdf32(salt: Option<&[u8]>, ikm: &[u8], info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(salt, ikm).expand(info, &mut out).unwrap();
    out
}

/// "Key slots": reads slot `name`, checks its trailing SHA-256, decodes either layout.
pub fn slot(f: &File, name: &str) -> Slot {
    let t = f.rx.open_table(SLOTS).unwrap();
    let v = t.get(name).unwrap().expect("the slot exists");
    let (body, sum) = v.value().split_at(v.value().len() - 32);
    assert_eq!(Sha256::digest(body).as_slice(), sum, "slot {name}: checksum");
    match decode_layouts::<SlotRecord3, Slot>("slot", body) {
        Ok(SlotRecord3(slot, check)) => Slot { kek_check: Some(check), ..slot },
        Err(slot) => slot,
    }
}

/// "Key slots", step 1: the KEK (Argon2id, parameters bounded first).
pub fn kek(slot: &Slot, passphrase: &[u8]) -> [u8; 32] {
    let p = slot.params;
    assert!((1..=64).contains(&p.lanes) && (1..=64).contains(&p.time_cost), "Argon2 bounds");
    assert!((8 * p.lanes..=4 * 1024 * 1024).contains(&p.memory_kib), "Argon2 memory bound");
    let params = argon2::Params::new(p.memory_kib, p.time_cost, p.lanes, Some(32)).unwrap();
    let mut kek = [0u8; 32];
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(passphrase, &slot.salt, &mut kek)
        .unwrap();
    kek
}

/// "Key slots", step 2: the check value of a KEK.
pub fn kek_check(kek: &[u8; 32]) -> [u8; 32] {
    hkdf32(None, kek, b"modelvault/v1/slot-check")
}

/// "Key slots", steps 3 and 4: the master key of each epoch the slot wraps, `(epoch, MK)`, the
/// current one last.
pub fn master_keys(f: &File, name: &str, slot: &Slot, kek: &[u8; 32]) -> Vec<(u32, [u8; 32])> {
    let unwrap = |epoch: u32, wrapped: &[u8]| {
        assert_eq!(wrapped.len(), 60, "slot {name}: wrap length");
        let mut a = aad("slot", &f.header.vault_id, epoch, name.as_bytes());
        for x in [slot.params.memory_kib, slot.params.time_cost, slot.params.lanes] {
            a.extend_from_slice(&x.to_be_bytes());
        }
        let mk: [u8; 32] = gcm_open(kek, &a, wrapped, "slot wrap").try_into().expect("a 32-byte master key");
        (epoch, mk)
    };
    let mut out = vec![unwrap(slot.epoch, &slot.wrapped)];
    if let Some((e, w)) = &slot.next {
        out.push(unwrap(*e, w));
    }
    out
}

/// "Key hierarchy": the keys of one epoch.
pub struct EpochKeys {
    pub chunk: [u8; 32],
    pub meta: [u8; 32],
}

/// "Key hierarchy": the chunk and meta keys of epoch `epoch` from its master key.
pub fn epoch_keys(mk: &[u8; 32], vault_id: &[u8; 16], epoch: u32) -> EpochKeys {
    let info = |purpose: &str| {
        let mut i = format!("modelvault/v1/{purpose}").into_bytes();
        i.extend_from_slice(&epoch.to_be_bytes());
        i
    };
    EpochKeys { chunk: hkdf32(Some(vault_id), mk, &info("chunk")), meta: hkdf32(Some(vault_id), mk, &info("meta")) }
}

/// The keys a reader holds after "Key slots" and "Key hierarchy".
pub struct Keys {
    pub vault_id: [u8; 16],
    pub epochs: BTreeMap<u32, EpochKeys>,
}

impl Keys {
    /// "Sealed values": opens `0x01 ‖ epoch ‖ nonce ‖ ciphertext ‖ tag` of `table`/`key` with the
    /// key of the value's own epoch.
    pub fn open(&self, table: &str, key: &[u8], value: &[u8]) -> Vec<u8> {
        assert!(value.len() >= 5 && value[0] == 0x01, "{table}: sealed-value layout version");
        let epoch = u32::from_be_bytes(value[1..5].try_into().unwrap());
        let keys = self.epochs.get(&epoch).unwrap_or_else(|| panic!("{table}: sealed under unknown epoch {epoch}"));
        let k = if table == "chunks" { &keys.chunk } else { &keys.meta };
        gcm_open(k, &aad(table, &self.vault_id, epoch, key), &value[5..], table)
    }

    fn record<T: DeserializeOwned>(&self, table: &str, key: &[u8], value: &[u8]) -> T {
        decode(table, &self.open(table, key, value))
    }
}

/// "Key slots" and "Key hierarchy" together: unlocks with slot `name`. Returns the keys and the
/// slot.
pub fn unlock(f: &File, name: &str, passphrase: &[u8]) -> (Keys, Slot) {
    let slot = slot(f, name);
    let kek = kek(&slot, passphrase);
    if let Some(Some(check)) = slot.kek_check {
        assert_eq!(check, kek_check(&kek), "slot {name}: the passphrase check");
    }
    let epochs = master_keys(f, name, &slot, &kek)
        .into_iter()
        .map(|(e, mk)| (e, epoch_keys(&mk, &f.header.vault_id, e)))
        .collect();
    (Keys { vault_id: f.header.vault_id, epochs }, slot)
}

/// "State": the sealed state, either layout; `true` for format 3 (the live-model fields of an
/// older state are zero).
pub fn state(f: &File, k: &Keys) -> (State, bool) {
    let meta = f.rx.open_table(META).unwrap();
    let plain = k.open("meta", b"state", meta.get("state").unwrap().expect("a state").value());
    match decode_layouts::<State3, State>("state", &plain) {
        Ok(State3(s, live_models, models_digest)) => (State { live_models, models_digest, ..s }, true),
        Err(s) => (s, false),
    }
}

/// "State": the count and digest of the `models` keys, to compare with a format 3 state.
pub fn live_models(f: &File) -> (u64, [u8; 32]) {
    let models = f.rx.open_table(MODELS).unwrap();
    let mut h = Sha256::new();
    h.update(b"modelvault/v3/live-models\0");
    let mut n = 0;
    for row in models.iter().unwrap() {
        h.update(row.unwrap().0.value());
        n += 1;
    }
    (n, h.finalize().into())
}

/// "Key hierarchy": the keyed-hash keys from the index key.
pub struct IndexKeys {
    pub chunk_id: [u8; 32],
    pub name: [u8; 32],
}

impl IndexKeys {
    /// "Model records": the record key of a model name.
    pub fn model_key(&self, name: &str) -> [u8; 32] {
        *blake3::keyed_hash(&self.name, name.as_bytes()).as_bytes()
    }

    /// "Chunks": the id of a chunk plaintext.
    pub fn chunk_id(&self, plain: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&self.chunk_id, plain).as_bytes()
    }
}

/// "Key hierarchy": opens `meta`/`"index"` and derives the chunk-id and name keys.
pub fn index_keys(f: &File, k: &Keys) -> IndexKeys {
    let meta = f.rx.open_table(META).unwrap();
    let ix: IndexRecord = k.record("meta", b"index", meta.get("index").unwrap().expect("an index key").value());
    let vid = &f.header.vault_id;
    IndexKeys {
        chunk_id: hkdf32(Some(vid), &ix.key, b"modelvault/v1/chunk-id"),
        name: hkdf32(Some(vid), &ix.key, b"modelvault/v1/name"),
    }
}

/// "Signer records": every record by id (AAD key: the id as u32 big-endian), each public key
/// checked against its seed.
pub fn signers(f: &File, k: &Keys) -> Vec<(u32, SignerRecord)> {
    let t = f.rx.open_table(SIGNERS).unwrap();
    let mut out = Vec::new();
    for row in t.iter().unwrap() {
        let (id, v) = row.unwrap();
        let id = id.value();
        let rec: SignerRecord = k.record("signers", &id.to_be_bytes(), v.value());
        let public = ed25519_dalek::SigningKey::from_bytes(&rec.seed).verifying_key().to_bytes();
        assert_eq!(public, rec.public, "signer {id}: the public key of its seed");
        out.push((id, rec));
    }
    out
}

/// "Other records": the allow-list (empty when absent).
pub fn allow_list(f: &File, k: &Keys) -> Vec<String> {
    let meta = f.rx.open_table(META).unwrap();
    let v = meta.get("allow").unwrap();
    v.map(|v| k.record::<AllowRecord>("meta", b"allow", v.value()).globals).unwrap_or_default()
}

/// "Other records": true when an erasure record is present.
pub fn erasure_pending(f: &File) -> bool {
    f.rx.open_table(META).unwrap().get("erase").unwrap().is_some()
}

/// "Other records": the trusted keys, each named as its record key (none when the table is
/// absent).
pub fn trusted(f: &File, k: &Keys) -> Vec<TrustRecord> {
    let Ok(t) = f.rx.open_table(TRUST) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for row in t.iter().unwrap() {
        let (name, v) = row.unwrap();
        let rec: TrustRecord = k.record("trust", name.value().as_bytes(), v.value());
        assert_eq!(rec.name, name.value(), "trusted key: name and record key");
        out.push(rec);
    }
    out
}

/// "Model records": a model, either layout, with its live versions.
pub struct Model {
    pub key: [u8; 32],
    pub name: String,
    pub created: u64,
    pub next_version: u64,
    pub aliases: BTreeMap<String, u64>,
    pub description: String,
    pub alias_history: Vec<AliasEvent>,
    /// The record's `live` (format 3), or the version records present (older layout).
    pub live: Vec<u64>,
    pub format3: bool,
}

/// "Model records": the version numbers with a record under model key `mk`, ascending.
pub fn present_versions(f: &File, mk: &[u8; 32]) -> Vec<u64> {
    let t = f.rx.open_table(VERSIONS).unwrap();
    let mut lo = [0u8; 40];
    lo[..32].copy_from_slice(mk);
    let mut hi = lo;
    hi[32..].copy_from_slice(&u64::MAX.to_be_bytes());
    let rows = t.range::<&[u8; 40]>(&lo..=&hi).unwrap();
    rows.map(|row| u64::from_be_bytes(row.unwrap().0.value()[32..].try_into().unwrap())).collect()
}

/// "Model records": opens the record of `name` (key: the keyed hash of the name) and checks
/// its name, its live list against the version records present, and its aliases.
pub fn model(f: &File, k: &Keys, ix: &IndexKeys, name: &str) -> Model {
    let mk = ix.model_key(name);
    let t = f.rx.open_table(MODELS).unwrap();
    let plain = k.open("models", &mk, t.get(&mk).unwrap().unwrap_or_else(|| panic!("model {name}: record")).value());
    let present = present_versions(f, &mk);
    let (r, live, format3) = match decode_layouts::<ModelRecord3, ModelRecord>("model", &plain) {
        Ok(ModelRecord3(r, live)) => (r, live, true),
        Err(r) => (r, present.clone(), false),
    };
    let m = Model {
        key: mk,
        name: r.name,
        created: r.created,
        next_version: r.next_version,
        aliases: r.aliases,
        description: r.description,
        alias_history: r.alias_history,
        live,
        format3,
    };
    assert_eq!(m.name, name, "model record key and name");
    assert_eq!(m.live, present, "model {name}: the live versions are the version records present");
    assert!(m.live.is_sorted() && m.live.last().is_none_or(|&v| v < m.next_version), "model {name}: live list");
    for (alias, v) in &m.aliases {
        assert!(m.live.contains(v), "model {name}: alias {alias} points at a live version");
    }
    m
}

/// "Version records and the signed manifest": opens the record of `name@version`, checks the
/// signer (one of `publics`), the signature, the canonical encoding and that the manifest names
/// this vault, model and version, and the file sizes against the chunk lengths.
pub fn version(f: &File, k: &Keys, publics: &[[u8; 32]], m: &Model, version: u64) -> (VersionRecord, Manifest) {
    let at = format!("{}@{version}", m.name);
    let mut key = [0u8; 40];
    key[..32].copy_from_slice(&m.key);
    key[32..].copy_from_slice(&version.to_be_bytes());
    let t = f.rx.open_table(VERSIONS).unwrap();
    let rec: VersionRecord =
        k.record("versions", &key, t.get(&key).unwrap().unwrap_or_else(|| panic!("{at}: record")).value());
    // Step 1: the signer is one of the vault's signing keys.
    assert!(publics.contains(&rec.signer), "{at}: signed by a key of this vault");
    // Step 2: Ed25519 verify_strict over the domain prefix and the stored bytes.
    let sig: [u8; 64] = rec.signature.as_slice().try_into().expect("a 64-byte signature");
    let mut msg = b"modelvault manifest signature v1\0".to_vec();
    msg.extend_from_slice(&rec.manifest);
    let key = VerifyingKey::from_bytes(&rec.signer).expect("a public key on the curve");
    key.verify_strict(&msg, &Signature::from_bytes(&sig)).unwrap_or_else(|e| panic!("{at}: signature: {e}"));
    // Step 3: the canonical manifest of this vault, model and version.
    let man: Manifest = decode("manifest", &rec.manifest);
    assert_eq!(postcard::to_stdvec(&man).unwrap(), rec.manifest, "{at}: canonical encoding");
    assert_eq!(man.manifest_version, 1, "{at}: manifest version");
    assert!(man.metrics.values().all(|x| x.is_finite()), "{at}: finite metrics");
    assert_eq!((man.vault_id, man.name.as_str(), man.version), (f.header.vault_id, m.name.as_str(), version));
    for file in &man.files {
        assert_eq!(file.chunks.iter().map(|c| u64::from(c.len)).sum::<u64>(), file.size, "{at}: {}", file.path);
        assert!(file.tensors.iter().all(|t| t.offset + t.len <= file.size), "{at}: {} tensors", file.path);
    }
    (rec, man)
}

/// "Chunks": the bytes of `file`: each chunk opened (chunk key, AAD table `chunks`, key = id),
/// its length and id checked, its `chunk_ids` entry (when the table exists) checked against the
/// stored length, the plaintexts concatenated and the SHA-256 compared.
pub fn file_bytes(f: &File, k: &Keys, ix: &IndexKeys, file: &FileEntry) -> Vec<u8> {
    let chunks = f.rx.open_table(CHUNKS).unwrap();
    let ids = f.rx.open_table(CHUNK_IDS).ok();
    let mut data = Vec::with_capacity(file.size as usize);
    for c in &file.chunks {
        let stored = chunks.get(&c.id).unwrap().unwrap_or_else(|| panic!("{}: a chunk is missing", file.path));
        let plain = k.open("chunks", &c.id, stored.value());
        assert_eq!(plain.len(), c.len as usize, "{}: chunk length", file.path);
        assert_eq!(ix.chunk_id(&plain), c.id, "{}: chunk id", file.path);
        if let Some(ids) = &ids {
            let indexed = ids.get(&c.id).unwrap().expect("an index entry").value();
            assert_eq!(indexed as usize, stored.value().len(), "{}: chunk_ids length", file.path);
        }
        data.extend_from_slice(&plain);
    }
    assert_eq!(<[u8; 32]>::from(Sha256::digest(&data)), file.sha256, "{}: SHA-256", file.path);
    data
}

/// "Chunks": the number of rows of `chunks` and of `chunk_ids` (`None` when the index is absent).
pub fn chunk_counts(f: &File) -> (u64, Option<u64>) {
    use redb::ReadableTableMetadata;
    let n = f.rx.open_table(CHUNKS).unwrap().len().unwrap();
    (n, f.rx.open_table(CHUNK_IDS).ok().map(|t| t.len().unwrap()))
}

/// "Other records": an erasure record.
#[derive(Serialize)]
struct EraseIntent {
    name: String,
    versions: Vec<u64>,
    started: u64,
    pad: Vec<u8>,
}

/// "Sealed values", the other way: seals `plain` as a value of `table`/`key` under `epoch`
/// (nonce from the OS).
pub fn seal(k: &Keys, epoch: u32, table: &str, key: &[u8], plain: &[u8]) -> Vec<u8> {
    let keys = &k.epochs[&epoch];
    let key_bytes = if table == "chunks" { &keys.chunk } else { &keys.meta };
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).unwrap();
    let aad = aad(table, &k.vault_id, epoch, key);
    let ct =
        Aes256Gcm::new_from_slice(key_bytes).unwrap().encrypt(&Nonce::from(nonce), Payload { msg: plain, aad: &aad });
    let mut out = vec![0x01];
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct.unwrap());
    out
}

/// "Other records": the plaintext of an erasure record, with `pad` sized so that the encoded
/// `name` and `pad` fields take 400 bytes together.
pub fn erase_intent(name: &str, versions: &[u64], started: u64) -> Vec<u8> {
    let varint = |n: usize| postcard::to_stdvec(&(n as u64)).unwrap().len();
    let used = varint(name.len()) + name.len();
    let pad = (0..400).find(|&p| used + varint(p) + p == 400).expect("a pad length");
    let rec = EraseIntent { name: name.into(), versions: versions.to_vec(), started, pad: vec![0; pad] };
    let bytes = postcard::to_stdvec(&rec).unwrap();
    assert_eq!(bytes.len(), 400 + postcard::to_stdvec(&rec.versions).unwrap().len() + varint(started as usize));
    bytes
}

/// Writes `value` as `meta`/`key` into the vault file at `path` (a writable redb open).
pub fn put_meta(path: &Path, key: &str, value: &[u8]) {
    let db = redb::Database::open(path).unwrap();
    let tx = db.begin_write().unwrap();
    tx.open_table(META).unwrap().insert(key, value).unwrap();
    tx.commit().unwrap();
}
