//! The vault handle: opening and creating the file, unlocking with a passphrase, and the
//! transaction helper every write goes through.
//!
//! A [`Vault<Locked>`] can say what the file is and list its key slots; only a [`Vault<Unlocked>`]
//! holds keys, and only it has `put`, `get`, `list` and the rest (in [`crate::ops`]). Keys are
//! zeroized when the unlocked vault is dropped.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableTable};
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
use crate::store::{self, META, SIGNERS, SLOTS};
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
}

/// An open vault file in state `S` ([`Locked`] or [`Unlocked`]).
pub struct Vault<S> {
    pub(crate) db: Database,
    pub(crate) path: PathBuf,
    pub(crate) header: Header,
    pub(crate) state: S,
}

/// Current time in Unix seconds.
pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl<S> Vault<S> {
    /// The vault file's path.
    pub fn path(&self) -> &Path {
        &self.path
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
    /// Errors: [`Error::VaultNotFound`], [`Error::VaultInUse`] (after `opts.wait`),
    /// [`Error::NotAVault`], [`Error::UnsupportedVersion`].
    pub fn open(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<Vault<Locked>> {
        let path = path.as_ref().to_path_buf();
        let db = store::open_db(&path, opts.wait)?;
        let header = read_header(&db, &path)?;
        Ok(Vault { db, path, header, state: Locked })
    }

    /// Unlocks with `passphrase`, trying every key slot (each costs one Argon2id derivation).
    ///
    /// Errors: [`Error::WrongPassphrase`] if no slot opens; [`Error::KeySlotDamaged`] if the only
    /// slots that could have opened are damaged; [`Error::Damaged`] if the state or signer
    /// records fail authentication.
    ///
    /// Before any key is derived it calls [`crate::harden_process`] (no core dumps; its
    /// [`Error::Io`] if that fails).
    pub fn unlock(self, passphrase: &Passphrase) -> Result<Vault<Unlocked>> {
        self.unlock_with(None, passphrase)
    }

    /// Unlocks with the named key slot only (one Argon2id derivation).
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
        for (name, bytes) in &slots {
            if only.is_some_and(|o| o != name) {
                continue;
            }
            let Some(slot) = SlotRecord::decode(bytes) else {
                damaged = Some(name.clone());
                continue;
            };
            let kek = slot.params.derive_kek(passphrase.bytes(), &slot.salt)?;
            let aad = SlotRecord::aad(&self.header.vault_id, name, slot.epoch, &slot.params);
            let Ok(mk) = aead::open(&kek, &aad, &slot.wrapped) else {
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
        let st: State = open_sealed(pick, &vid, "meta", b"state", "vault state record", st_bytes.value())?;
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
        let state = Unlocked { keys, prev, index, signer, signers: publics, slot: slot.to_string(), slot_kek, master };
        Ok(Vault { db: self.db, path: self.path, header: self.header, state })
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
    let (epoch, sealed) = records::split_sealed(value)
        .ok_or_else(|| Error::Damaged(format!("{what}: unreadable value header: the vault is damaged")))?;
    let keys = pick(epoch).ok_or_else(|| {
        Error::Damaged(format!(
            "{what}: sealed under key epoch {epoch}, which this vault does not hold: the vault is damaged"
        ))
    })?;
    records::open_record(&keys.meta, &store::aad(table, vault_id, epoch, key), what, sealed)
}

fn read_header(db: &Database, path: &Path) -> Result<Header> {
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
        let state = Unlocked { keys, prev: None, index, signer, signers, slot: slot_name, slot_kek, master };
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
            tx.state =
                State { epoch, active_signer: 0, next_signer: 1, chunk_seals: 0, meta_seals: 0, rotating_to: None };
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

    /// Starts a write transaction that counts seals and refuses to pass the nonce limit.
    pub(crate) fn write(&self) -> Result<Txn<'_>> {
        let tx = store::begin_write(&self.db)?;
        store::upgrade_format(&tx)?;
        let state = {
            let meta = tx.open_table(META).map_err(|e| Error::storage("reading vault state", e))?;
            let v = meta.get("state").map_err(|e| Error::storage("reading vault state", e))?;
            match v {
                Some(v) => self.open_meta("meta", b"state", "vault state record", v.value())?,
                None => State::default(),
            }
        };
        Ok(Txn { vault: self, tx: TxCell(Some(tx)), state, warned: false })
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
    Ok((SlotRecord { next: None, epoch, params: *params, salt, wrapped, created: now() }, kek))
}

/// A write transaction that counts AES-GCM seals per key and writes the sealed state on commit.
/// Dropping it without [`Txn::commit`] aborts what was written since the last
/// [`Txn::checkpoint`] (or since it began).
pub(crate) struct Txn<'v> {
    pub(crate) vault: &'v Vault<Unlocked>,
    pub(crate) tx: TxCell,
    pub(crate) state: State,
    warned: bool,
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

    /// Seals the state (counting its own seal) into the transaction.
    fn write_state(&mut self) -> Result<()> {
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
        store::commit(self.tx.0.take().expect("open transaction"))
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
