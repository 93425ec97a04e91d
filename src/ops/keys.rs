//! Key management: key slots (`key list|add|remove|passwd`), master-key rotation (`key rotate`,
//! resumable), and cryptographic erasure (`rm --erase`).
//!
//! **Rotation.** A new random master key MK' of epoch e+1 is wrapped for every key slot that is
//! kept (the slot that unlocked, plus every slot whose passphrase is supplied; the others are
//! removed only when the caller says so). Then every sealed value of epoch e is opened and sealed
//! again under epoch e+1's keys, in batches, each its own transaction; then the slots drop their
//! epoch-e wraps; then the file is rewritten into a fresh file ([`crate::store::rewrite`]), so
//! neither MK nor anything sealed under it survives in the file. While it runs, both epochs
//! decrypt, so every model stays readable; killed at any moment, `rotate --resume` (or the next
//! write through the CLI) finishes it. Chunk ids and record keys do not change (they come from the
//! index key), so manifests and their signatures stay as they are.
//!
//! **Erasure.** `erase` removes the versions, deletes every chunk no other version uses, and
//! rewrites the file: afterwards the erased chunks' ciphertexts, their manifests, and every stale
//! copy of a superseded key-slot record are gone from the file, so nothing in it — with every
//! passphrase — opens them. The removal commits together with a sealed record of the erasure
//! (`meta`/`"erase"`), and the rewrite's copy leaves that record out, so an erasure killed at any
//! moment is either not begun or is finished by [`Vault::resume_erasure`] (`rm --erase --resume`,
//! or the next write through the CLI); `verify` reports it meanwhile. This module must never drop
//! that record before the fresh file has replaced the vault. See SECURITY.md for what erasure
//! cannot reach.

use serde::{Deserialize, Serialize};

use super::VersionRef;
use crate::crypto::SecretKey;
use crate::crypto::aead;
use crate::crypto::kdf::Argon2Params;
use crate::crypto::keys::EpochKeys;
use crate::names::{self, escape};
use crate::progress::Progress;
use crate::store::chunks::ChunkStore;
use crate::store::envelope::{Envelope, KeyUse};
use crate::store::records::{self, SlotRecord};
use crate::store::{self, ReadTxn, RecordRead, Table, WriteTxn};
use crate::vault::{Locked, Passphrase, Unlocked, Vault, make_slot};
use crate::{Error, Result};

/// Plaintext bytes re-encrypted per rotation transaction (64 MiB).
pub const ROTATE_BATCH_BYTES: u64 = 64 << 20;

/// A key slot as `key list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SlotInfo {
    /// Slot name.
    pub name: String,
    /// Epoch of the master key it wraps.
    pub epoch: u32,
    /// Argon2id parameters.
    pub argon2: Argon2Params,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// True for the slot that unlocked this handle.
    pub in_use: bool,
    /// True while a rotation has wrapped the next master key for it.
    pub rotating: bool,
}

/// What a rotation did.
#[derive(Debug, Clone, Serialize)]
pub struct RotateReport {
    /// The epoch rotated from.
    pub from_epoch: u32,
    /// The new epoch.
    pub to_epoch: u32,
    /// Slots that now wrap the new master key.
    pub slots_kept: Vec<String>,
    /// Slots removed because no passphrase was given for them.
    pub slots_removed: Vec<String>,
    /// Chunks re-encrypted by this call.
    pub chunks: u64,
    /// Plaintext bytes re-encrypted by this call.
    pub bytes: u64,
    /// Metadata records re-encrypted by this call.
    pub records: u64,
    /// Vault file size after the rewrite, in bytes.
    pub file_bytes: u64,
}

/// AES-GCM key usage of the current epoch (NIST SP 800-38D §8.3 bound for random nonces).
#[derive(Debug, Clone, Serialize)]
pub struct KeyUsage {
    /// Current key epoch.
    pub epoch: u32,
    /// Seals made under this epoch's chunk key.
    pub chunk_seals: u64,
    /// Seals made under this epoch's metadata key.
    pub meta_seals: u64,
    /// Count from which every write warns.
    pub warn_at: u64,
    /// Count at which writes are refused until the master key is rotated.
    pub limit: u64,
}

/// What an erasure did.
#[derive(Debug, Clone, Serialize)]
pub struct EraseReport {
    /// The model name.
    pub name: String,
    /// True when this finished an erasure an earlier, interrupted call began.
    pub resumed: bool,
    /// Versions removed.
    pub versions: Vec<u64>,
    /// Chunks deleted (no other version used them).
    pub chunks_removed: u64,
    /// Vault file size before, in bytes.
    pub file_bytes_before: u64,
    /// Vault file size after the rewrite, in bytes.
    pub file_bytes_after: u64,
}

fn read_slots(db: &store::Db) -> Result<Vec<(String, Vec<u8>)>> {
    let rx = store::read(db)?;
    rx.require(Table::Slots, "reading key slots")?;
    rx.slots()
}

fn slot_infos(slots: &[(String, Vec<u8>)], in_use: Option<&str>) -> Result<Vec<SlotInfo>> {
    slots
        .iter()
        .map(|(name, bytes)| {
            let s = SlotRecord::decode(bytes).ok_or_else(|| Error::KeySlotDamaged(name.clone()))?;
            Ok(SlotInfo {
                name: name.clone(),
                epoch: s.epoch,
                argon2: s.params,
                created: s.created,
                in_use: in_use == Some(name.as_str()),
                rotating: s.next.is_some(),
            })
        })
        .collect()
}

impl Vault<Locked> {
    /// Lists the key slots (no passphrase needed: slot names and parameters are not secret).
    ///
    /// Errors: [`Error::KeySlotDamaged`], [`Error::Storage`].
    pub fn slots(&self) -> Result<Vec<SlotInfo>> {
        slot_infos(&read_slots(&self.db)?, None)
    }
}

impl Vault<Unlocked> {
    /// Lists the key slots, marking the one in use.
    pub fn list_slots(&self) -> Result<Vec<SlotInfo>> {
        slot_infos(&read_slots(&self.db)?, Some(&self.state.slot))
    }

    /// How many AES-GCM seals each key of the current epoch has made, and the limits.
    pub fn key_usage(&self) -> Result<KeyUsage> {
        let txn = self.write()?;
        let st = txn.state.clone();
        drop(txn);
        Ok(KeyUsage {
            epoch: self.epoch(),
            chunk_seals: st.chunk_seals,
            meta_seals: st.meta_seals,
            warn_at: aead::NONCE_WARN,
            limit: aead::NONCE_LIMIT,
        })
    }

    /// The name of the key slot that unlocked this handle.
    pub fn unlocked_slot(&self) -> &str {
        &self.state.slot
    }

    /// True while a master-key rotation is unfinished.
    pub fn rotation_pending(&self) -> bool {
        self.state.prev.is_some()
    }

    fn refuse_during_rotation(&self) -> Result<()> {
        if self.rotation_pending() {
            return Err(Error::InvalidInput(
                "a master-key rotation is unfinished: run `mvault key rotate --resume` first".into(),
            ));
        }
        Ok(())
    }

    /// Adds key slot `name` for `passphrase` with Argon2id `params`.
    ///
    /// Errors: [`Error::InvalidName`], [`Error::InvalidInput`] if the slot exists or a rotation
    /// is unfinished or the parameters are out of range.
    pub fn add_slot(&self, name: &str, passphrase: &Passphrase, params: &Argon2Params) -> Result<()> {
        names::check_key("key slot name", name)?;
        params.check()?;
        self.refuse_during_rotation()?;
        if read_slots(&self.db)?.iter().any(|(n, _)| n == name) {
            return Err(Error::InvalidInput(format!(
                "key slot '{name}' already exists: choose another name, or change its passphrase with `mvault key passwd --slot-name {name}`"
            )));
        }
        let (slot, _kek) =
            make_slot(&self.header.vault_id, name, self.epoch(), params, &self.state.master, passphrase)?;
        let mut txn = self.write()?;
        txn.put_slot(name, &slot.encode())?;
        txn.commit()
    }

    /// Removes key slot `name`. The last slot, and the slot this handle was unlocked with, cannot
    /// be removed.
    ///
    /// Errors: [`Error::InvalidInput`] naming the reason.
    pub fn remove_slot(&self, name: &str) -> Result<()> {
        self.refuse_during_rotation()?;
        let slots = read_slots(&self.db)?;
        if !slots.iter().any(|(n, _)| n == name) {
            return Err(Error::NotFound(format!("no key slot named '{}': `mvault key list` lists them", escape(name))));
        }
        if slots.len() == 1 {
            return Err(Error::InvalidInput(format!(
                "key slot '{name}' is the last one: removing it would lock everyone out; add another slot first"
            )));
        }
        if name == self.state.slot {
            return Err(Error::InvalidInput(format!(
                "key slot '{name}' is the one this command unlocked with: unlock with another slot (--slot NAME) to remove it"
            )));
        }
        let mut txn = self.write()?;
        txn.tx.remove_slot(name)?;
        txn.commit()
    }

    /// Gives key slot `name` (default: the slot in use) a new passphrase, and optionally new
    /// Argon2id parameters. Only the slot is rewritten: no data is re-encrypted.
    ///
    /// Errors: [`Error::InvalidInput`] if there is no such slot or a rotation is unfinished.
    pub fn change_passphrase(
        &mut self,
        name: Option<&str>,
        new: &Passphrase,
        params: Option<&Argon2Params>,
    ) -> Result<()> {
        self.refuse_during_rotation()?;
        let name = name.unwrap_or(&self.state.slot).to_string();
        let slots = read_slots(&self.db)?;
        let (_, bytes) = slots.iter().find(|(n, _)| *n == name).ok_or_else(|| {
            Error::NotFound(format!("no key slot named '{}': `mvault key list` lists them", escape(&name)))
        })?;
        let old = SlotRecord::decode(bytes).ok_or_else(|| Error::KeySlotDamaged(name.clone()))?;
        let params = params.copied().unwrap_or(old.params);
        params.check()?;
        let (mut slot, kek) = make_slot(&self.header.vault_id, &name, self.epoch(), &params, &self.state.master, new)?;
        slot.created = old.created;
        let mut txn = self.write()?;
        txn.put_slot(&name, &slot.encode())?;
        txn.commit()?;
        if name == self.state.slot {
            self.state.slot_kek = kek;
        }
        Ok(())
    }

    /// Rotates the master key (see the module docs). `others` gives passphrases for slots other
    /// than the one in use; with `remove_others`, slots with no passphrase given are removed,
    /// otherwise their presence is an error and nothing changes.
    ///
    /// Errors: [`Error::InvalidInput`] (a slot with no passphrase, a passphrase that does not open
    /// its slot), [`Error::Damaged`], [`Error::Storage`], [`Error::Io`].
    pub fn rotate(
        &mut self,
        others: &[(String, Passphrase)],
        remove_others: bool,
        progress: &dyn Progress,
    ) -> Result<RotateReport> {
        if self.rotation_pending() {
            return self.resume_rotation(progress);
        }
        self.check_live_records("key rotate")?;
        // An unfinished erasure's unreferenced chunks must not be carried into the new epoch.
        if self.erasure_pending()? {
            self.resume_erasure()?;
        }
        let slots = read_slots(&self.db)?;
        let vid = self.header.vault_id;
        let from = self.epoch();
        let to = from.checked_add(1).ok_or_else(|| Error::InvalidInput("key epoch counter exhausted".into()))?;
        let new_master = SecretKey::random()?;
        let mut kept = Vec::new();
        let mut removed = Vec::new();
        let mut updates = Vec::new();
        for (name, bytes) in &slots {
            let mut slot = SlotRecord::decode(bytes).ok_or_else(|| Error::KeySlotDamaged(name.clone()))?;
            let kek = if *name == self.state.slot {
                self.state.slot_kek.clone()
            } else if let Some((_, p)) = others.iter().find(|(n, _)| n == name) {
                let kek = slot.params.derive_kek(p.bytes(), &slot.salt)?;
                let opened = aead::open(&kek, &SlotRecord::aad(&vid, name, slot.epoch, &slot.params), &slot.wrapped);
                if opened.map(zeroize::Zeroizing::new).ok().as_deref().map(Vec::as_slice)
                    != Some(self.state.master.expose().as_slice())
                {
                    return Err(Error::InvalidInput(format!(
                        "the passphrase given for key slot '{name}' does not open it; nothing was changed"
                    )));
                }
                kek
            } else if remove_others {
                removed.push(name.clone());
                continue;
            } else {
                return Err(Error::InvalidInput(format!(
                    "no passphrase given for key slot '{name}': give it (--slot-passphrase-file {name}=FILE) or pass --remove-other-slots to drop slots without one; nothing was changed"
                )));
            };
            let wrapped = aead::seal(&kek, &SlotRecord::aad(&vid, name, to, &slot.params), new_master.expose())?;
            slot.next = Some((to, wrapped));
            kept.push(name.clone());
            updates.push((name.clone(), slot));
        }
        for (name, _) in others {
            if !slots.iter().any(|(n, _)| n == name) {
                return Err(Error::NotFound(format!("no key slot named '{}'; nothing was changed", escape(name))));
            }
        }
        let mut txn = self.write()?;
        for (name, slot) in &updates {
            txn.put_slot(name, &slot.encode())?;
        }
        for name in &removed {
            txn.tx.remove_slot(name)?;
        }
        txn.state.rotating_to = Some(to);
        txn.state.chunk_seals = 0;
        txn.state.meta_seals = 0;
        txn.commit()?;
        let old_keys = std::mem::replace(&mut self.state.keys, EpochKeys::derive(&new_master, &vid, to));
        self.state.prev = Some(old_keys);
        self.state.master = new_master;
        let mut report = self.resume_rotation(progress)?;
        report.slots_kept = kept;
        report.slots_removed = removed;
        Ok(report)
    }

    /// Finishes an unfinished rotation: builds a fresh vault file in which every value sealed
    /// under the old epoch is sealed again under the new one and every key slot wraps only the new
    /// master key, then renames it over the old file (one pass over the data; the old file stays
    /// complete and readable until the rename). Killed part-way, it starts over.
    ///
    /// Errors: [`Error::InvalidInput`] when no rotation is unfinished; as [`Vault::rotate`].
    pub fn resume_rotation(&mut self, progress: &dyn Progress) -> Result<RotateReport> {
        let Some(prev) = self.state.prev.as_ref() else {
            return Err(Error::InvalidInput("no master-key rotation is unfinished".into()));
        };
        let mut report = RotateReport {
            from_epoch: prev.epoch,
            to_epoch: self.state.keys.epoch,
            slots_kept: Vec::new(),
            slots_removed: Vec::new(),
            chunks: 0,
            bytes: 0,
            records: 0,
            file_bytes: 0,
        };
        self.check_live_records("key rotate")?;
        let state = {
            let txn = self.write()?;
            txn.state.clone()
        };
        let prev = self.state.prev.as_ref().expect("checked above");
        let ctx = Reseal { env: Envelope::new(self.header.vault_id, &self.state.keys, Some(prev)) };
        let path = self.path.clone();
        store::rewrite_with(&mut self.db, &path, |old, fresh| ctx.copy(old, fresh, state, &mut report, progress))?;
        self.state.prev = None;
        report.file_bytes = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        Ok(report)
    }

    /// True while an erasure is unfinished: its versions are removed but the vault file may still
    /// hold their chunks, manifests and records (see [`Vault::resume_erasure`]).
    ///
    /// Errors: [`Error::Storage`].
    pub fn erasure_pending(&self) -> Result<bool> {
        Ok(store::read(&self.db)?.meta(ERASE_KEY)?.is_some())
    }

    /// The unfinished erasure, if any: the model name and the versions it removed.
    ///
    /// Errors: [`Error::Damaged`] if the erasure record does not open; [`Error::Storage`].
    pub fn unfinished_erasure(&self) -> Result<Option<UnfinishedErasure>> {
        let Some(v) = store::read(&self.db)?.meta(ERASE_KEY)? else {
            return Ok(None);
        };
        let rec: EraseIntent = self.open_meta("meta", ERASE_KEY.as_bytes(), "erasure record", &v)?;
        Ok(Some(UnfinishedErasure { name: rec.name, versions: rec.versions, started: rec.started }))
    }

    /// Cryptographic erasure of `name@r` (or of every version of `name` when `r` is `None`):
    /// removes the versions, deletes the chunks no other version uses, and rewrites the file so
    /// that none of their bytes, nor any stale copy of an older key slot, remains in it.
    ///
    /// The removal and a sealed record of the erasure (`meta`/`"erase"`) commit in one
    /// transaction, before anything is deleted; the record goes away only with the rename of the
    /// fresh file, whose copy leaves it out. Killed at any moment after that commit,
    /// [`Vault::resume_erasure`] (which the CLI runs before every writing command) finishes it.
    /// An erasure already unfinished is finished first.
    ///
    /// Errors: as [`Vault::remove_version`] and [`Vault::gc`]; [`Error::InvalidInput`] during an
    /// unfinished rotation.
    pub fn erase(&mut self, name: &str, r: Option<&VersionRef>) -> Result<EraseReport> {
        self.refuse_during_rotation()?;
        if self.erasure_pending()? {
            self.resume_erasure()?;
        }
        self.check_live_records("rm --erase")?;
        let file_bytes_before = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        {
            let mut txn = self.write()?;
            let versions = match r {
                Some(r) => vec![self.remove_version_in(&mut txn, name, r)?],
                None => self.remove_model_in(&mut txn, name)?,
            };
            let pad = erase_pad(name);
            let intent = EraseIntent { name: name.to_string(), versions, started: crate::vault::now(), pad };
            let v = txn.seal_meta("meta", ERASE_KEY.as_bytes(), &intent)?;
            txn.put_plain_meta(ERASE_KEY, &v)?;
            txn.commit()?;
        }
        let mut report = self.resume_erasure()?.expect("the erasure record was just committed");
        report.file_bytes_before = file_bytes_before;
        report.resumed = false;
        Ok(report)
    }

    /// Finishes an unfinished erasure (see [`Vault::erase`]): deletes every chunk no remaining
    /// version references ([`Vault::gc`]), then rewrites the vault into a fresh file that holds
    /// every live record but the erasure record, and renames it over the old one. Killed
    /// part-way, it can run again. Returns `None` when no erasure is unfinished.
    ///
    /// An erasure record that does not open is finished all the same (the report then names no
    /// model and no versions).
    ///
    /// Errors: as [`Vault::gc`]; [`Error::Storage`], [`Error::Io`].
    pub fn resume_erasure(&mut self) -> Result<Option<EraseReport>> {
        if !self.erasure_pending()? {
            return Ok(None);
        }
        // A record that does not open still means "unfinished": finishing needs nothing from it
        // (gc and the rewrite look only at what is live), and refusing would block every write.
        let pending = self.unfinished_erasure().ok().flatten();
        let (name, versions) = pending.map(|p| (p.name, p.versions)).unwrap_or_default();
        self.check_live_records("rm --erase --resume")?;
        let file_bytes_before = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        let gc = self.gc()?;
        let path = self.path.clone();
        store::rewrite_with(&mut self.db, &path, copy_without_erase_record)?;
        let file_bytes_after = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        Ok(Some(EraseReport {
            name,
            versions,
            chunks_removed: gc.chunks_removed,
            file_bytes_before,
            file_bytes_after,
            resumed: true,
        }))
    }
}

/// The `meta` key of the sealed record of an unfinished erasure.
pub const ERASE_KEY: &str = "erase";

/// The sealed record of an unfinished erasure (`meta`/`"erase"`, see SECURITY.md).
#[derive(Serialize, Deserialize)]
struct EraseIntent {
    name: String,
    versions: Vec<u64>,
    started: u64,
    /// Zero bytes making `name` and `pad` encode to [`ERASE_NAME_FIELD_BYTES`] together, so the
    /// sealed length does not tell a file holder how long the erased model's name is.
    pad: Vec<u8>,
}

/// Encoded size of an [`EraseIntent`]'s `name` and `pad` together, bytes (postcard: a varint
/// length and the bytes of each). Every name of 1 to 128 bytes fits with a pad of at least 128
/// bytes, so both length prefixes have a fixed size.
const ERASE_NAME_FIELD_BYTES: usize = 400;

/// The pad for `name` (see [`EraseIntent::pad`]).
fn erase_pad(name: &str) -> Vec<u8> {
    let varint = |n: usize| {
        if n < 128 {
            1
        } else if n < 16384 {
            2
        } else {
            3
        }
    };
    let used = varint(name.len()) + name.len();
    let len = (1..=3)
        .map(|l| ERASE_NAME_FIELD_BYTES.saturating_sub(used + l))
        .find(|&p| used + varint(p) + p == ERASE_NAME_FIELD_BYTES)
        .unwrap_or(0);
    vec![0; len]
}

/// An erasure whose versions are removed but whose file rewrite has not finished.
#[derive(Debug, Clone, Serialize)]
pub struct UnfinishedErasure {
    /// The model name.
    pub name: String,
    /// The versions removed.
    pub versions: Vec<u64>,
    /// When it started, Unix seconds.
    pub started: u64,
}

/// Copies every live record of `old` into `fresh` except the erasure record (the fill of an
/// erasure's [`store::rewrite_with`]): once the fresh file replaces the vault, the erasure is
/// finished and no record of it (nor of what it erased) is left.
fn copy_without_erase_record(old: &store::Db, fresh: &store::Db) -> Result<()> {
    let rx = store::read(old)?;
    let mut tx = store::write(fresh)?;
    rx.scan(Table::Meta, None, |k, v| {
        if k != ERASE_KEY.as_bytes() {
            tx.put_row(Table::Meta, k, v)?;
        }
        Ok(true)
    })?;
    for table in Table::ALL.into_iter().filter(|t| *t != Table::Meta) {
        store::copy_table(&rx, &mut tx, table)?;
    }
    tx.commit()
}

/// What a rotation's copy needs: the envelope of the new epoch that also opens the old one.
struct Reseal<'k> {
    env: Envelope<'k>,
}

/// The tables of sealed records a rotation seals again, with the key of each row (as its AAD
/// names it) the copy leaves out: the state, which the copy writes last.
const RESEALED_RECORDS: [Table; 5] = [Table::Meta, Table::Signers, Table::Trust, Table::Models, Table::Versions];

impl Reseal<'_> {
    /// The value to store for `value` of `table`/`key` in the new file: sealed again under the new
    /// epoch if it was sealed under the old one, else as it is; true when sealed again.
    fn value(&self, table: Table, key: &[u8], value: &[u8]) -> Result<(Vec<u8>, bool)> {
        let usage = if table == Table::Chunks { KeyUse::Chunk } else { KeyUse::Record };
        match self.env.reseal(usage, &table, key, value)? {
            Some(v) => Ok((v, true)),
            None => Ok((value.to_vec(), false)),
        }
    }

    /// Fills `fresh` from `old`, re-sealed (see [`Vault::resume_rotation`]): the records, the key
    /// slots (each keeping the wrap of the new master key only), the chunks (in checkpointed
    /// batches), and last the state of the new epoch, in the final durable commit.
    fn copy(
        &self,
        old: &store::Db,
        fresh: &store::Db,
        mut state: records::State,
        report: &mut RotateReport,
        progress: &dyn Progress,
    ) -> Result<()> {
        let rx = store::read(old)?;
        let mut tx = store::write(fresh)?;
        let mut meta_seals = 0u64;
        for table in RESEALED_RECORDS {
            rx.scan(table, None, |k, v| {
                if table == Table::Meta && k == b"state" {
                    return Ok(true);
                }
                let (value, resealed) = self.value(table, k, v)?;
                if resealed {
                    meta_seals += 1;
                    report.records += 1;
                }
                tx.put_row(table, k, &value).map(|()| true)
            })?;
        }
        self.copy_slots(&rx, &mut tx, report)?;
        let (tx, chunk_seals) = self.copy_chunks(&rx, tx, fresh, report, progress)?;
        state.epoch = self.env.epoch();
        state.rotating_to = None;
        state.chunk_seals = chunk_seals;
        state.meta_seals = meta_seals + 1;
        let mut tx = tx;
        tx.put_meta("state", &self.env.seal_record(&Table::Meta, b"state", &state)?)?;
        tx.commit()
    }

    /// Copies the key slots, each keeping the wrap of the new master key only; a slot without
    /// one is left out (and reported removed).
    ///
    /// Errors: [`Error::KeySlotDamaged`]; [`Error::Damaged`] when no slot is kept.
    fn copy_slots(&self, rx: &ReadTxn, tx: &mut WriteTxn, report: &mut RotateReport) -> Result<()> {
        rx.require(Table::Slots, "re-encrypting into a fresh file")?;
        let epoch = self.env.epoch();
        for (name, v) in rx.slots()? {
            let mut slot = SlotRecord::decode(&v).ok_or_else(|| Error::KeySlotDamaged(name.clone()))?;
            match slot.next.take() {
                Some((e, w)) if e == epoch => {
                    slot.epoch = e;
                    slot.wrapped = w;
                }
                _ if slot.epoch == epoch => {}
                _ => {
                    report.slots_removed.push(name);
                    continue;
                }
            }
            tx.put_slot(&name, &slot.encode())?;
            report.slots_kept.push(name);
        }
        if report.slots_kept.is_empty() {
            return Err(Error::Damaged("no key slot wraps the new master key: the rotation cannot finish".into()));
        }
        Ok(())
    }

    /// Copies the chunks, sealed again, checkpointing (a commit that does not wait for the disk)
    /// every [`ROTATE_BATCH_BYTES`]; returns the open transaction and the chunk seals made.
    ///
    /// Errors: [`Error::Damaged`] for a chunk that does not open; [`Error::Storage`].
    fn copy_chunks(
        &self,
        rx: &ReadTxn,
        mut tx: WriteTxn,
        fresh: &store::Db,
        report: &mut RotateReport,
        progress: &dyn Progress,
    ) -> Result<(WriteTxn, u64)> {
        progress.begin("rotate", 0);
        let mut chunk_seals = 0u64;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let (mut batch, mut exhausted) = (0u64, true);
            let mut last = None;
            {
                let mut dst = tx.chunks()?;
                rx.scan(Table::Chunks, after.as_deref(), |k, v| {
                    let id: [u8; 32] = k.try_into().expect("a chunk id is 32 bytes");
                    let (value, resealed) = self.value(Table::Chunks, k, v)?;
                    if resealed {
                        chunk_seals += 1;
                        report.chunks += 1;
                        let n = (value.len() - store::envelope::OVERHEAD) as u64;
                        report.bytes += n;
                        progress.advance(n);
                    }
                    dst.insert(&id, &value)?;
                    batch += value.len() as u64;
                    last = Some(id);
                    if batch >= ROTATE_BATCH_BYTES {
                        exhausted = false;
                        return Ok(false);
                    }
                    Ok(true)
                })?;
            }
            if exhausted {
                break;
            }
            after = last.map(|id| id.to_vec());
            tx.commit_checkpoint()?;
            tx = store::write(fresh)?;
        }
        progress.end();
        Ok((tx, chunk_seals))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every model name the name rule allows (1 to 128 bytes) gives an erasure record of one
    /// length, so its sealed size says nothing of the name.
    #[test]
    fn erase_records_of_every_name_length_encode_to_one_length() {
        let len = |name: &str| {
            let intent = EraseIntent { name: name.to_string(), versions: vec![3], started: 1, pad: erase_pad(name) };
            postcard::to_stdvec(&intent).unwrap().len()
        };
        let first = len("a");
        for n in 1..=crate::names::MAX_NAME_LEN {
            assert_eq!(len(&"m".repeat(n)), first, "a {n}-byte name");
        }
    }
}
