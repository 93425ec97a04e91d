//! The vault handle: opening and creating the file, unlocking with a passphrase, and the
//! transaction helper every write goes through.
//!
//! A [`Vault<Locked>`] can say what the file is and list its key slots; only a [`Vault<Unlocked>`]
//! holds keys, and only it has `put`, `get`, `list` and the rest (in [`crate::ops`]). Keys are
//! zeroized when the unlocked vault is dropped.
//!
//! A vault whose file this process may not write is opened read-only (see [`Vault::open`]): every
//! read works, and every write fails when its transaction starts, with
//! [`Error::ReadOnly`] before anything changes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::ReadableTable;
use serde::{Serialize, de::DeserializeOwned};
use zeroize::Zeroizing;

use crate::crypto::aead::{self, NONCE_LIMIT, NONCE_WARN};
use crate::crypto::kdf::Argon2Params;
use crate::crypto::keys::{EpochKeys, IndexKeys};
use crate::crypto::sign::{ManifestSigner, ManifestVerifier};
use crate::crypto::{SecretKey, fill_random};
use crate::store::records::{
    self, FORMAT_VERSION, Header, IndexRecord, MAGIC, OLDEST_FORMAT_VERSION, SignerRecord, SlotRecord, State,
};
use crate::store::{self, META, MODELS, SIGNERS, SLOTS};
use crate::{Error, Result};

/// A passphrase, wiped from memory on drop. Used byte for byte: never trimmed, truncated or
/// normalised (the CLI strips one trailing newline from files; see README).
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl Passphrase {
    /// Wraps passphrase bytes.
    ///
    /// Errors: [`Error::InvalidInput`] if empty.
    pub fn new(bytes: Vec<u8>) -> Result<Self> {
        let p = Passphrase(Zeroizing::new(bytes));
        if p.0.is_empty() {
            return Err(Error::InvalidInput("the passphrase is empty".into()));
        }
        Ok(p)
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// Options for [`Vault::create`].
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Argon2id cost of the first key slot (default RFC 9106: 64 MiB, t=3, p=4).
    pub argon2: Argon2Params,
    /// Name of the first key slot (default `default`).
    pub slot_name: String,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions { argon2: Argon2Params::default(), slot_name: "default".into() }
    }
}

/// Options for [`Vault::open`].
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// If another process holds the vault, retry for this long before [`Error::VaultInUse`].
    pub wait: Option<Duration>,
    /// Open the file read-only even if this process may write it: reading works, every write
    /// fails with [`Error::ReadOnly`]. (A file this process may not write is always opened
    /// read-only.)
    pub read_only: bool,
}

/// Type state: keys not loaded.
pub struct Locked;

/// Type state: keys loaded (zeroized on drop).
pub struct Unlocked {
    /// Encryption keys of the current epoch.
    pub(crate) keys: EpochKeys,
    /// While a master-key rotation runs: the keys of the epoch being rotated away from.
    pub(crate) prev: Option<EpochKeys>,
    /// Keyed-hash keys for record keys and chunk ids.
    pub(crate) index: IndexKeys,
    /// The key slot that opened the vault (right after `create`: the first slot).
    pub(crate) slot: String,
    /// That slot's KEK, so a rotation can wrap the new master key for it without asking again.
    pub(crate) slot_kek: SecretKey,
    /// The master key of `keys.epoch`.
    pub(crate) master: SecretKey,
    pub(crate) signer: ManifestSigner,
    /// Public keys of every signing key this vault has had (active and retired).
    pub(crate) signers: Vec<ManifestVerifier>,
    /// True while the sealed state is of format 1 or 2 (no live-record state yet): model records
    /// of that format are then accepted, and the live checks are skipped until the first write
    /// upgrades the vault. Cleared once that write commits.
    pub(crate) legacy: AtomicBool,
}

/// Most key slots one unlock tries when no slot is named (`--slot NAME` tries one).
pub const MAX_UNLOCK_SLOTS: usize = 8;
/// Most Argon2id work one unlock that tries every slot may spend, in KiB × passes summed over the
/// slots tried (1 GiB × 1 pass; a default slot costs 64 MiB × 3). Slots are tried cheapest
/// first; the first is always tried, whatever it costs (each slot is bounded by
/// [`Argon2Params::check`]).
pub const MAX_UNLOCK_COST: u64 = 1 << 20;

/// The Argon2id work of one derivation with `p`, in KiB × passes.
pub fn unlock_cost(p: &Argon2Params) -> u64 {
    u64::from(p.memory_kib) * u64::from(p.time_cost)
}

/// An open vault file in state `S` ([`Locked`] or [`Unlocked`]).
pub struct Vault<S> {
    pub(crate) db: store::Db,
    pub(crate) path: PathBuf,
    pub(crate) header: Header,
    pub(crate) state: S,
}

/// Current time in Unix seconds.
pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl<S> Vault<S> {
    /// The vault file's path, every symbolic link resolved (see [`Vault::open`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when the vault file was opened read-only (see [`Vault::open`]): reading works, and
    /// every write fails with [`Error::ReadOnly`].
    pub fn is_read_only(&self) -> bool {
        self.db.is_read_only()
    }

    /// The random 128-bit vault id.
    pub fn vault_id(&self) -> [u8; 16] {
        self.header.vault_id
    }

    /// Creation time, Unix seconds.
    pub fn created(&self) -> u64 {
        self.header.created
    }

    /// Names of the key slots.
    pub fn slot_names(&self) -> Result<Vec<String>> {
        let rx = store::begin_read(&self.db)?;
        let t = rx.open_table(SLOTS).map_err(|e| Error::storage("reading key slots", e))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(|e| Error::storage("reading key slots", e))? {
            let (k, _) = row.map_err(|e| Error::storage("reading key slots", e))?;
            out.push(k.value().to_string());
        }
        Ok(out)
    }
}

impl Vault<Locked> {
    /// Opens the vault file at `path` without unlocking it.
    ///
    /// A symbolic link is resolved here, once: [`Vault::path`] is the real file, and a rewrite
    /// (`key rotate`, `rm --erase`) replaces the real file, never the link. A file this process
    /// may not write (or any file, with `opts.read_only`) is opened read-only: every reading
    /// operation works, and every write fails with [`Error::ReadOnly`] before it changes
    /// anything.
    ///
    /// Errors: [`Error::VaultNotFound`], [`Error::VaultInUse`] (after `opts.wait`),
    /// [`Error::NotAVault`], [`Error::UnsupportedVersion`], [`Error::Damaged`], [`Error::Io`],
    /// [`Error::Storage`] (see [`store::open_db`]).
    pub fn open(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<Vault<Locked>> {
        let db = store::open_db(path.as_ref(), opts.wait, opts.read_only)?;
        let path = db.path().to_path_buf();
        let header = read_header(&db, &path)?;
        Ok(Vault { db, path, header, state: Locked })
    }

    /// Unlocks with `passphrase`, trying the key slots cheapest first (each costs one Argon2id
    /// derivation), at most [`MAX_UNLOCK_SLOTS`] of them and at most [`MAX_UNLOCK_COST`] of
    /// Argon2id work in all.
    ///
    /// Errors: [`Error::WrongPassphrase`] if no slot opens; [`Error::UnlockLimit`] if none of the
    /// slots tried opened and a limit stopped the rest (naming the slot and the limit);
    /// [`Error::KeySlotDamaged`] if the only slots that could have opened are damaged;
    /// [`Error::Damaged`] if a slot accepts the passphrase but its wrap does not open under the
    /// header's vault id (the header or the slot was changed), or the state or signer records
    /// fail authentication.
    ///
    /// Before any key is derived it calls [`crate::harden_process`] (no core dumps; its
    /// [`Error::Io`] if that fails).
    pub fn unlock(self, passphrase: &Passphrase) -> Result<Vault<Unlocked>> {
        self.unlock_with(None, passphrase)
    }

    /// Unlocks with the named key slot only (one Argon2id derivation, whatever it costs within
    /// [`Argon2Params::check`]). Errors: as [`Vault::unlock`], and [`Error::NotFound`] for no
    /// slot of that name.
    pub fn unlock_slot(self, slot: &str, passphrase: &Passphrase) -> Result<Vault<Unlocked>> {
        self.unlock_with(Some(slot), passphrase)
    }

    fn unlock_with(self, only: Option<&str>, passphrase: &Passphrase) -> Result<Vault<Unlocked>> {
        crate::harden::harden_process()?;
        let slots = {
            let rx = store::begin_read(&self.db)?;
            let t = rx.open_table(SLOTS).map_err(|e| Error::storage("reading key slots", e))?;
            let mut v = Vec::new();
            for row in t.iter().map_err(|e| Error::storage("reading key slots", e))? {
                let (k, val) = row.map_err(|e| Error::storage("reading key slots", e))?;
                v.push((k.value().to_string(), val.value().to_vec()));
            }
            v
        };
        if let Some(name) = only
            && !slots.iter().any(|(n, _)| n == name)
        {
            return Err(Error::NotFound(format!("no key slot named '{}'", crate::names::escape(name))));
        }
        let mut damaged = None;
        let mut cands = Vec::new();
        for (name, bytes) in &slots {
            if only.is_some_and(|o| o != name) {
                continue;
            }
            match SlotRecord::decode(bytes) {
                Some(slot) => cands.push((name.clone(), slot)),
                None => damaged = Some(name.clone()),
            }
        }
        // Cheapest first, so slots planted with a high cost are reached last, if at all.
        cands.sort_by(|a, b| (unlock_cost(&a.1.params), &a.0).cmp(&(unlock_cost(&b.1.params), &b.0)));
        let (mut tried, mut spent) = (0usize, 0u64);
        for (i, (name, slot)) in cands.iter().enumerate() {
            let cost = unlock_cost(&slot.params);
            if only.is_none() && tried > 0 {
                if tried >= MAX_UNLOCK_SLOTS {
                    let rest: Vec<String> =
                        cands[i..].iter().map(|(n, _)| format!("'{}'", crate::names::escape(n))).collect();
                    return Err(Error::UnlockLimit(format!(
                        "the passphrase opened none of the {tried} key slots tried, the most one unlock tries \
                         without --slot; not tried: {}: if the passphrase is for one of them, unlock with \
                         `--slot NAME`",
                        rest.join(", ")
                    )));
                }
                if spent + cost > MAX_UNLOCK_COST {
                    return Err(Error::UnlockLimit(format!(
                        "the passphrase opened none of the {tried} key slot(s) tried; key slot '{}' was not \
                         tried: its Argon2id cost ({} KiB x {} passes) would bring this unlock to {} KiB-passes, \
                         over the limit of {MAX_UNLOCK_COST} KiB-passes (1 GiB x 1 pass) for an unlock that tries \
                         every slot: if the passphrase is for that slot, unlock with `--slot {}`",
                        crate::names::escape(name),
                        slot.params.memory_kib,
                        slot.params.time_cost,
                        spent + cost,
                        crate::names::escape(name)
                    )));
                }
            }
            tried += 1;
            spent += cost;
            let kek = slot.params.derive_kek(passphrase.bytes(), &slot.salt)?;
            // The check value only tells damage from a wrong passphrase; it is not authenticated
            // (a file holder can rewrite it), so the wrap is tried whatever it says: a wrap that
            // opens proves the passphrase.
            let check = slot.kek_check.map(|c| c == records::kek_check(&kek));
            let aad = SlotRecord::aad(&self.header.vault_id, name, slot.epoch, &slot.params);
            let Ok(mk) = aead::open(&kek, &aad, &slot.wrapped) else {
                if check == Some(true) {
                    return Err(Error::Damaged(format!(
                        "key slot '{}' accepts this passphrase, but the master key it wraps does not open under \
                         the vault id in the header ({}): the vault header or this key slot was changed or \
                         damaged; restore the vault from a backup",
                        crate::names::escape(name),
                        crate::manifest::hex(&self.header.vault_id)
                    )));
                }
                continue;
            };
            let master = to_key(mk);
            let next = match &slot.next {
                Some((e, w)) => {
                    let aad = SlotRecord::aad(&self.header.vault_id, name, *e, &slot.params);
                    let mk = aead::open(&kek, &aad, w).map_err(|_| Error::KeySlotDamaged(name.clone()))?;
                    Some((*e, to_key(mk)))
                }
                None => None,
            };
            return self.finish_unlock(name, kek, master, slot.epoch, next);
        }
        match damaged {
            Some(name) if slots.len() == 1 || only.is_some() => Err(Error::KeySlotDamaged(name)),
            _ => Err(Error::WrongPassphrase),
        }
    }

    fn finish_unlock(
        self,
        slot: &str,
        slot_kek: SecretKey,
        master: SecretKey,
        epoch: u32,
        next: Option<(u32, SecretKey)>,
    ) -> Result<Vault<Unlocked>> {
        let vid = self.header.vault_id;
        let (keys, prev, master) = match next {
            None => (EpochKeys::derive(&master, &vid, epoch), None, master),
            Some((e, mk)) => (EpochKeys::derive(&mk, &vid, e), Some(EpochKeys::derive(&master, &vid, epoch)), mk),
        };
        let pick = |e: u32| if e == keys.epoch { Some(&keys) } else { prev.as_ref().filter(|p| p.epoch == e) };
        let read_err = |e: redb::Error| Error::storage("reading vault state", e);
        let rx = store::begin_read(&self.db)?;
        let meta = rx.open_table(META).map_err(|e| read_err(e.into()))?;
        let missing = |what: &str| Error::Damaged(format!("the {what} record is missing: the vault is damaged"));
        let st_bytes = meta.get("state").map_err(|e| read_err(e.into()))?.ok_or_else(|| missing("vault state"))?;
        let (st, current) =
            open_sealed_with(pick, &vid, "meta", b"state", "vault state record", st_bytes.value(), |b| {
                records::decode_state("vault state record", b)
            })?;
        let ix_bytes = meta.get("index").map_err(|e| read_err(e.into()))?.ok_or_else(|| missing("index key"))?;
        let ix: IndexRecord = open_sealed(pick, &vid, "meta", b"index", "index key record", ix_bytes.value())?;
        let index = IndexKeys::derive(&SecretKey(ix.key), &vid);
        let signers = rx.open_table(SIGNERS).map_err(|e| read_err(e.into()))?;
        let mut signer = None;
        let mut publics = Vec::new();
        for row in signers.iter().map_err(|e| read_err(e.into()))? {
            let (id, v) = row.map_err(|e| read_err(e.into()))?;
            let id = id.value();
            let r: SignerRecord =
                open_sealed(pick, &vid, "signers", &id.to_be_bytes(), "signing key record", v.value())?;
            if id == st.active_signer {
                signer = Some(ManifestSigner::from_seed(&SecretKey(r.seed)));
            }
            // A key that does not decode verifies nothing: the versions it signed fail their check.
            publics.extend(ManifestVerifier::new(&r.public));
        }
        let signer = signer.ok_or_else(|| missing("active signing key"))?;
        drop((meta, signers, st_bytes, ix_bytes, rx));
        let legacy = AtomicBool::new(!current);
        let state =
            Unlocked { keys, prev, index, signer, signers: publics, slot: slot.to_string(), slot_kek, master, legacy };
        let v = Vault { db: self.db, path: self.path, header: self.header, state };
        if !current {
            let rx = store::begin_read(&v.db)?;
            let models = match rx.open_table(MODELS) {
                Ok(t) => Some(t),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(Error::storage("reading models", e)),
            };
            let slots = rx.open_table(SLOTS).map_err(|e| Error::storage("reading key slots", e))?;
            v.check_not_rolled_back(v.header.format_version, models.as_ref(), &slots)?;
        }
        Ok(v)
    }
}

fn to_key(bytes: Vec<u8>) -> SecretKey {
    let bytes = Zeroizing::new(bytes);
    SecretKey(bytes.as_slice().try_into().expect("slot decode checked 32 bytes"))
}

/// Opens a stored sealed record (`0x01 ‖ epoch ‖ nonce ‖ ciphertext ‖ tag`) of `table`/`key` with
/// the keys `pick` gives for the epoch the value names.
///
/// Errors: [`Error::Damaged`] naming `what`.
pub(crate) fn open_sealed<'k, T: DeserializeOwned>(
    pick: impl Fn(u32) -> Option<&'k EpochKeys>,
    vault_id: &[u8; 16],
    table: &str,
    key: &[u8],
    what: &str,
    value: &[u8],
) -> Result<T> {
    open_sealed_with(pick, vault_id, table, key, what, value, |b| records::decode(what, b))
}

/// As [`open_sealed`], decoding the plaintext with `dec`.
pub(crate) fn open_sealed_with<'k, T>(
    pick: impl Fn(u32) -> Option<&'k EpochKeys>,
    vault_id: &[u8; 16],
    table: &str,
    key: &[u8],
    what: &str,
    value: &[u8],
    dec: impl FnOnce(&[u8]) -> Result<T>,
) -> Result<T> {
    let (epoch, sealed) = records::split_sealed(value)
        .ok_or_else(|| Error::Damaged(format!("{what}: unreadable value header: the vault is damaged")))?;
    let keys = pick(epoch).ok_or_else(|| {
        Error::Damaged(format!(
            "{what}: sealed under key epoch {epoch}, which this vault does not hold: the vault is damaged"
        ))
    })?;
    records::open_record_with(&keys.meta, &store::aad(table, vault_id, epoch, key), what, sealed, dec)
}

fn read_header(db: &store::Db, path: &Path) -> Result<Header> {
    let not_vault = |reason: &str| Error::NotAVault { path: path.to_path_buf(), reason: reason.into() };
    let rx = store::begin_read(db)?;
    let t = rx.open_table(META).map_err(|_| not_vault("it has no modelvault header table"))?;
    let v = t
        .get("header")
        .map_err(|e| Error::storage("reading the header", e))?
        .ok_or_else(|| not_vault("it has no modelvault header"))?;
    let h: Header = postcard::from_bytes(v.value()).map_err(|_| not_vault("its header does not decode"))?;
    if h.magic != MAGIC {
        return Err(not_vault("its header has the wrong magic bytes"));
    }
    if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&h.format_version) {
        return Err(Error::UnsupportedVersion { found: h.format_version, supported: FORMAT_VERSION });
    }
    Ok(h)
}

impl Vault<Unlocked> {
    /// Creates a new vault at `path` (which must not exist) with one key slot for `passphrase`, a
    /// random master key (epoch 1) and a new Ed25519 signing key.
    ///
    /// Errors: [`Error::VaultExists`], [`Error::InvalidInput`] for bad Argon2 parameters or slot
    /// name, [`Error::Io`]. Before any key exists it calls [`crate::harden_process`] (no core
    /// dumps).
    pub fn create(path: impl AsRef<Path>, passphrase: &Passphrase, opts: &CreateOptions) -> Result<Vault<Unlocked>> {
        crate::harden::harden_process()?;
        let path = path.as_ref().to_path_buf();
        opts.argon2.check()?;
        crate::names::check_key("key slot name", &opts.slot_name)?;
        let mut vault_id = [0u8; 16];
        fill_random(&mut vault_id)?;
        let header = Header { magic: MAGIC, format_version: FORMAT_VERSION, vault_id, created: now() };
        let epoch = 1;
        let master = SecretKey::random()?;
        let (slot, slot_kek) = make_slot(&vault_id, &opts.slot_name, epoch, &opts.argon2, &master, passphrase)?;
        let keys = EpochKeys::derive(&master, &vault_id, epoch);
        let index_rec = IndexRecord { key: *SecretKey::random()?.expose() };
        let index = IndexKeys::derive(&SecretKey(index_rec.key), &vault_id);
        let signer = ManifestSigner::generate()?;
        let db = store::create_db(&path)?;
        let signers = vec![ManifestVerifier::new(&signer.public_key()).expect("a fresh key decodes")];
        let slot_name = opts.slot_name.clone();
        let legacy = AtomicBool::new(false);
        let state = Unlocked { keys, prev: None, index, signer, signers, slot: slot_name, slot_kek, master, legacy };
        let vault = Vault { db, path, header, state };
        let result = (|| {
            let mut tx = vault.write()?;
            tx.put_plain_meta("header", &records::encode(&vault.header))?;
            tx.put_slot(&opts.slot_name, &slot.encode())?;
            let rec = SignerRecord {
                seed: *vault.state.signer.seed().expose(),
                public: vault.state.signer.public_key(),
                created: now(),
                retired: None,
            };
            tx.state = State { epoch, active_signer: 0, next_signer: 1, ..State::default() };
            tx.put_signer(0, &rec)?;
            let ix = tx.seal_meta("meta", b"index", &index_rec)?;
            tx.put_plain_meta("index", &ix)?;
            tx.commit()
        })();
        if let Err(e) = result {
            let p = vault.path.clone();
            drop(vault);
            let _ = std::fs::remove_file(&p);
            return Err(e);
        }
        Ok(vault)
    }

    /// The key epoch in use.
    pub fn epoch(&self) -> u32 {
        self.state.keys.epoch
    }

    /// The public key that signs new manifests.
    pub fn signer_public_key(&self) -> [u8; 32] {
        self.state.signer.public_key()
    }

    /// Starts a write transaction that counts seals and refuses to pass the nonce limit. A
    /// format 1 or 2 vault is upgraded to [`FORMAT_VERSION`] inside it (see
    /// [`store::upgrade_format`]; the model records are sealed again with their live versions,
    /// the slot in use gets its passphrase check).
    ///
    /// Errors: [`Error::Damaged`] when the model records present do not match the live models
    /// the sealed state records (a write would otherwise seal that loss into the state);
    /// [`Error::Storage`].
    pub(crate) fn write(&self) -> Result<Txn<'_>> {
        let tx = store::begin_write(&self.db)?;
        let header_was_old = store::upgrade_format(&tx)?;
        let (state, current) = {
            let meta = tx.open_table(META).map_err(|e| Error::storage("reading vault state", e))?;
            let v = meta.get("state").map_err(|e| Error::storage("reading vault state", e))?;
            match v {
                Some(v) => self.open_state(v.value()).map(|(s, c)| (s, Some(c)))?,
                None => (State::default(), None), // the transaction that creates the vault
            }
        };
        if current == Some(true) {
            let models = tx.open_table(MODELS).map_err(|e| Error::storage("reading models", e))?;
            if let Some(e) = model_set_damage(&state, &models)? {
                return Err(Error::Damaged(format!("{e}; nothing was written")));
            }
        }
        let mut txn = Txn { vault: self, tx: TxCell(Some(tx)), state, warned: false, upgraded: false };
        if current == Some(false) {
            {
                let format = if header_was_old { OLDEST_FORMAT_VERSION } else { FORMAT_VERSION };
                let models = txn.tx.open_table(MODELS).map_err(|e| Error::storage("reading models", e))?;
                let slots = txn.tx.open_table(SLOTS).map_err(|e| Error::storage("reading key slots", e))?;
                self.check_not_rolled_back(format, Some(&models), &slots)?;
            }
            txn.upgrade_records()?;
        }
        Ok(txn)
    }

    /// For a vault whose sealed state is of the format before 3: refuses when anything says the
    /// vault was already upgraded (a header of format 3 or later, a format 3 model record, a
    /// key slot with a passphrase check), i.e. only the state record was rolled back to a copy
    /// from before the upgrade. Such a state carries no live-model set, and the next write
    /// would re-derive every live list from the records present and seal any loss.
    ///
    /// Errors: [`Error::Damaged`]; [`Error::Storage`].
    fn check_not_rolled_back(
        &self,
        header_format: u32,
        models: Option<&impl ReadableTable<&'static [u8; 32], &'static [u8]>>,
        slots: &impl ReadableTable<&'static str, &'static [u8]>,
    ) -> Result<()> {
        let damaged = |why: String| {
            Err(Error::Damaged(format!(
                "the vault state was rolled back past the format {FORMAT_VERSION} upgrade ({why}): \
                 the vault was tampered with; nothing was written; restore it from a backup"
            )))
        };
        if header_format >= FORMAT_VERSION {
            return damaged(format!(
                "the header says format {header_format} but the sealed state is of an older format"
            ));
        }
        for row in slots.iter().map_err(|e| Error::storage("reading key slots", e))? {
            let (k, v) = row.map_err(|e| Error::storage("reading key slots", e))?;
            if SlotRecord::decode(v.value()).is_some_and(|s| s.kek_check.is_some()) {
                return damaged(format!("key slot '{}' has a format {FORMAT_VERSION} passphrase check", k.value()));
            }
        }
        let Some(models) = models else {
            return Ok(());
        };
        for row in models.iter().map_err(|e| Error::storage("reading models", e))? {
            let (k, v) = row.map_err(|e| Error::storage("reading models", e))?;
            if let Ok(rec) = self.open_model(k.value(), "a model record", v.value())
                && !rec.legacy
            {
                let key = crate::manifest::hex(k.value());
                return damaged(format!("model record {}… is of format {FORMAT_VERSION}", &key[..16]));
            }
        }
        Ok(())
    }

    /// Opens the sealed state record: `(state, true)` for format 3, `(state, false)` before.
    pub(crate) fn open_state(&self, value: &[u8]) -> Result<(State, bool)> {
        open_sealed_with(
            |e| self.epoch_keys(e),
            &self.header.vault_id,
            "meta",
            b"state",
            "vault state record",
            value,
            |b| records::decode_state("vault state record", b),
        )
    }

    /// Opens a stored model record of key `key` (format 1 or 2 encodings only while the vault
    /// itself is of that format).
    ///
    /// Errors: [`Error::Damaged`] naming `what`.
    pub(crate) fn open_model(&self, key: &[u8; 32], what: &str, value: &[u8]) -> Result<records::ModelRecord> {
        let legacy_ok = self.state.legacy.load(Ordering::Acquire);
        open_sealed_with(
            |e| self.epoch_keys(e),
            &self.header.vault_id,
            "models",
            key,
            what,
            value,
            |b| records::decode_model(what, b, legacy_ok),
        )
    }

    /// In a read snapshot of its own: `Some(description)` when the model records present do not
    /// match the live models the sealed state records (a model's records were deleted, or an
    /// older one put back), `None` when they match or the vault is not yet of format 3.
    ///
    /// Errors: [`Error::Damaged`] for a missing or unreadable state; [`Error::Storage`].
    pub(crate) fn model_set_problem(&self) -> Result<Option<String>> {
        let rx = store::begin_read(&self.db)?;
        let meta = rx.open_table(META).map_err(|e| Error::storage("reading vault state", e))?;
        let v = meta
            .get("state")
            .map_err(|e| Error::storage("reading vault state", e))?
            .ok_or_else(|| Error::Damaged("the vault state record is missing: the vault is damaged".into()))?;
        let (state, current) = self.open_state(v.value())?;
        if !current {
            return Ok(None);
        }
        match rx.open_table(MODELS) {
            Ok(models) => model_set_damage(&state, &models),
            Err(redb::TableError::TableDoesNotExist(_)) => {
                Ok((state.live_models != 0).then(|| set_message(state.live_models, 0)))
            }
            Err(e) => Err(Error::storage("reading models", e)),
        }
    }

    /// AAD for a sealed record of `table` at `key` in the current epoch.
    pub(crate) fn aad(&self, table: &str, key: &[u8]) -> Vec<u8> {
        store::aad(table, &self.header.vault_id, self.state.keys.epoch, key)
    }

    /// Opens a stored sealed metadata record of `table`/`key`.
    ///
    /// Errors: [`Error::Damaged`] naming `what`.
    pub(crate) fn open_meta<T: DeserializeOwned>(
        &self,
        table: &str,
        key: &[u8],
        what: &str,
        value: &[u8],
    ) -> Result<T> {
        open_sealed(|e| self.epoch_keys(e), &self.header.vault_id, table, key, what, value)
    }

    /// The envelope that seals under the current epoch and opens values of the current epoch
    /// and, during a rotation, of the one rotated away from.
    pub(crate) fn envelope(&self) -> crate::store::envelope::Envelope<'_> {
        crate::store::envelope::Envelope::new(self.header.vault_id, &self.state.keys, self.state.prev.as_ref())
    }

    /// The keys of `epoch`: the current epoch, or during a rotation the one rotated away from.
    pub(crate) fn epoch_keys(&self, epoch: u32) -> Option<&EpochKeys> {
        if epoch == self.state.keys.epoch {
            Some(&self.state.keys)
        } else {
            self.state.prev.as_ref().filter(|p| p.epoch == epoch)
        }
    }
}

/// Builds a key slot wrapping `master` under a KEK from `passphrase` (one Argon2id derivation);
/// returns the slot and its KEK.
pub(crate) fn make_slot(
    vault_id: &[u8; 16],
    name: &str,
    epoch: u32,
    params: &Argon2Params,
    master: &SecretKey,
    passphrase: &Passphrase,
) -> Result<(SlotRecord, SecretKey)> {
    let mut salt = [0u8; 16];
    fill_random(&mut salt)?;
    let kek = params.derive_kek(passphrase.bytes(), &salt)?;
    let wrapped = aead::seal(&kek, &SlotRecord::aad(vault_id, name, epoch, params), master.expose())?;
    let kek_check = Some(records::kek_check(&kek));
    Ok((SlotRecord { next: None, epoch, params: *params, salt, wrapped, created: now(), kek_check }, kek))
}

/// Compares the model records present with the live-model count and digest of `state`.
fn model_set_damage(
    state: &State,
    models: &impl ReadableTable<&'static [u8; 32], &'static [u8]>,
) -> Result<Option<String>> {
    let (n, digest) = models_now(models)?;
    if n == state.live_models && digest == state.models_digest {
        return Ok(None);
    }
    Ok(Some(set_message(state.live_models, n)))
}

fn set_message(recorded: u64, present: u64) -> String {
    let how = if present < recorded {
        "a model's records were deleted"
    } else if present > recorded {
        "a deleted model's records were put back"
    } else {
        "a model's records were deleted and another's put back"
    };
    format!(
        "the vault state records {recorded} live model(s), and {present} model record(s) are present, not the same set: \
         {how}; the vault is damaged or was tampered with: restore it from a backup"
    )
}

/// Count and [`records::models_digest`] of the model record keys in `models`.
fn models_now(models: &impl ReadableTable<&'static [u8; 32], &'static [u8]>) -> Result<(u64, [u8; 32])> {
    let mut keys = Vec::new();
    for row in models.iter().map_err(|e| Error::storage("reading models", e))? {
        let (k, _) = row.map_err(|e| Error::storage("reading models", e))?;
        keys.push(*k.value());
    }
    Ok((keys.len() as u64, records::models_digest(keys.iter())))
}

/// A write transaction that counts AES-GCM seals per key and writes the sealed state on commit.
/// Dropping it without [`Txn::commit`] aborts what was written since the last
/// [`Txn::checkpoint`] (or since it began).
pub(crate) struct Txn<'v> {
    pub(crate) vault: &'v Vault<Unlocked>,
    pub(crate) tx: TxCell,
    pub(crate) state: State,
    warned: bool,
    /// This transaction upgraded the vault to format 3 (see [`Vault::write`]).
    upgraded: bool,
}

/// The redb write transaction inside a [`Txn`]; always present except for the instant a
/// checkpoint swaps it.
pub(crate) struct TxCell(Option<redb::WriteTransaction>);

impl std::ops::Deref for TxCell {
    type Target = redb::WriteTransaction;
    fn deref(&self) -> &redb::WriteTransaction {
        self.0.as_ref().expect("a write transaction is open outside a checkpoint")
    }
}

impl Txn<'_> {
    /// Counts `n` more chunk seals, refusing past the limit.
    pub(crate) fn count_chunk_seals(&mut self, n: u64) -> Result<()> {
        self.state.chunk_seals += n;
        self.check_limit("chunk", self.state.chunk_seals)
    }

    fn check_limit(&mut self, key: &'static str, count: u64) -> Result<()> {
        if count >= NONCE_LIMIT {
            return Err(Error::KeyUsageLimit { key, count, limit: NONCE_LIMIT });
        }
        if count >= NONCE_WARN && !self.warned {
            self.warned = true;
            eprintln!(
                "warning: the {key} key has sealed {count} messages of the {NONCE_LIMIT} NIST SP 800-38D allows; rotate the master key soon"
            );
        }
        Ok(())
    }

    /// Seals a metadata record for `table`/`key`.
    pub(crate) fn seal_meta<T: Serialize>(&mut self, table: &str, key: &[u8], v: &T) -> Result<Vec<u8>> {
        self.state.meta_seals += 1;
        self.check_limit("metadata", self.state.meta_seals)?;
        records::seal_record(&self.vault.state.keys, &self.vault.aad(table, key), v)
    }

    /// Writes a value of the `meta` table as given (the header, or an already sealed record).
    pub(crate) fn put_plain_meta(&mut self, key: &str, v: &[u8]) -> Result<()> {
        let mut t = self.tx.open_table(META).map_err(|e| Error::storage("writing the header", e))?;
        t.insert(key, v).map_err(|e| Error::storage("writing the header", e))?;
        Ok(())
    }

    /// Writes a key slot record.
    pub(crate) fn put_slot(&mut self, name: &str, v: &[u8]) -> Result<()> {
        let mut t = self.tx.open_table(SLOTS).map_err(|e| Error::storage("writing a key slot", e))?;
        t.insert(name, v).map_err(|e| Error::storage("writing a key slot", e))?;
        Ok(())
    }

    /// Seals and writes a signing key record.
    pub(crate) fn put_signer(&mut self, id: u32, rec: &SignerRecord) -> Result<()> {
        let v = self.seal_meta("signers", &id.to_be_bytes(), rec)?;
        let mut t = self.tx.open_table(SIGNERS).map_err(|e| Error::storage("writing a signing key", e))?;
        t.insert(id, v.as_slice()).map_err(|e| Error::storage("writing a signing key", e))?;
        Ok(())
    }

    /// Seals every model record again in the format 3 encoding, with the live versions read from
    /// the version records present, and gives the slot in use its passphrase check. A model
    /// record that does not open is left as it is (it stays reported as damaged).
    fn upgrade_records(&mut self) -> Result<()> {
        let rows: Vec<([u8; 32], Vec<u8>)> = {
            let models = self.tx.open_table(MODELS).map_err(|e| Error::storage("reading models", e))?;
            let mut rows = Vec::new();
            for row in models.iter().map_err(|e| Error::storage("reading models", e))? {
                let (k, v) = row.map_err(|e| Error::storage("reading models", e))?;
                rows.push((*k.value(), v.value().to_vec()));
            }
            rows
        };
        for (key, sealed) in rows {
            let Ok(mut rec) = self.vault.open_model(&key, "model record", &sealed) else {
                continue;
            };
            rec.live = {
                let versions =
                    self.tx.open_table(store::VERSIONS).map_err(|e| Error::storage("reading versions", e))?;
                let mut live = Vec::new();
                for row in store::version_range(&versions, &key)? {
                    let (k, _) = row.map_err(|e| Error::storage("reading versions", e))?;
                    live.push(u64::from_be_bytes(k.value()[32..].try_into().expect("40-byte key")));
                }
                live
            };
            rec.legacy = false;
            let v = self.seal_meta("models", &key, &rec)?;
            let mut t = self.tx.open_table(MODELS).map_err(|e| Error::storage("writing a model", e))?;
            t.insert(&key, v.as_slice()).map_err(|e| Error::storage("writing a model", e))?;
        }
        let name = self.vault.state.slot.clone();
        let slot = {
            let t = self.tx.open_table(SLOTS).map_err(|e| Error::storage("reading key slots", e))?;
            t.get(name.as_str()).map_err(|e| Error::storage("reading key slots", e))?.map(|v| v.value().to_vec())
        };
        if let Some(mut slot) = slot.as_deref().and_then(SlotRecord::decode) {
            slot.kek_check = Some(records::kek_check(&self.vault.state.slot_kek));
            self.put_slot(&name, &slot.encode())?;
        }
        self.upgraded = true;
        Ok(())
    }

    /// Seals the state (counting its own seal, and the live models as the models table holds
    /// them now) into the transaction.
    fn write_state(&mut self) -> Result<()> {
        {
            let models = self.tx.open_table(MODELS).map_err(|e| Error::storage("reading models", e))?;
            (self.state.live_models, self.state.models_digest) = models_now(&models)?;
        }
        self.state.meta_seals += 1;
        self.check_limit("metadata", self.state.meta_seals)?;
        let v = records::seal_record(&self.vault.state.keys, &self.vault.aad("meta", b"state"), &self.state)?;
        let mut t = self.tx.open_table(META).map_err(|e| Error::storage("writing vault state", e))?;
        t.insert("state", v.as_slice()).map_err(|e| Error::storage("writing vault state", e))?;
        Ok(())
    }

    /// Writes the sealed state and commits durably (one fsync).
    pub(crate) fn commit(mut self) -> Result<()> {
        self.write_state()?;
        store::commit(self.tx.0.take().expect("open transaction"))?;
        if self.upgraded {
            self.vault.state.legacy.store(false, Ordering::Release);
        }
        Ok(())
    }

    /// Commits what was written so far without waiting for the disk, and goes on in a new
    /// transaction. A crash may lose a checkpointed part but never tears it, and a later durable
    /// [`Txn::commit`] makes it durable. `put` checkpoints its chunks every
    /// [`crate::ops::put::CHECKPOINT_BYTES`], which keeps redb from writing dirty pages twice
    /// under cache pressure; chunks of a put that never committed its manifest are garbage that
    /// `gc` collects.
    pub(crate) fn checkpoint(&mut self) -> Result<()> {
        self.write_state()?;
        let mut tx = self.tx.0.take().expect("open transaction");
        tx.set_durability(redb::Durability::None).map_err(|e| Error::storage("checkpointing", e))?;
        store::commit(tx)?;
        self.tx = TxCell(Some(store::begin_write(&self.vault.db)?));
        Ok(())
    }
}
