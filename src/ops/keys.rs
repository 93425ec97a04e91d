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
//! passphrase — opens them. See SECURITY.md for what erasure cannot reach.

use std::collections::BTreeSet;

use redb::ReadableTable;
use serde::Serialize;

use super::VersionRef;
use crate::crypto::SecretKey;
use crate::crypto::aead;
use crate::crypto::kdf::Argon2Params;
use crate::crypto::keys::EpochKeys;
use crate::names::{self, escape};
use crate::progress::Progress;
use crate::store::records::{SlotRecord, sealed_prefix, split_sealed};
use crate::store::{self, CHUNKS, META, MODELS, SIGNERS, SLOTS, TRUST, VERSIONS};
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
    /// Versions removed.
    pub versions: Vec<u64>,
    /// Chunks deleted (no other version used them).
    pub chunks_removed: u64,
    /// Vault file size before and after, in bytes.
    pub file_bytes_before: u64,
    /// Vault file size after the rewrite, in bytes.
    pub file_bytes_after: u64,
}

fn read_slots(db: &redb::Database) -> Result<Vec<(String, Vec<u8>)>> {
    let rx = store::begin_read(db)?;
    let t = rx.open_table(SLOTS).map_err(|e| Error::storage("reading key slots", e))?;
    let mut out = Vec::new();
    for row in t.iter().map_err(|e| Error::storage("reading key slots", e))? {
        let (k, v) = row.map_err(|e| Error::storage("reading key slots", e))?;
        out.push((k.value().to_string(), v.value().to_vec()));
    }
    Ok(out)
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
            return Err(Error::NotFound(format!(
                "no key slot named '{}': `mvault key list` lists them",
                escape(name)
            )));
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
        let txn = self.write()?;
        txn.tx
            .open_table(SLOTS)
            .and_then(|mut t| t.remove(name).map(|_| ()).map_err(Into::into))
            .map_err(|e| Error::storage("removing a key slot", e))?;
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
        {
            let mut t = txn.tx.open_table(SLOTS).map_err(|e| Error::storage("removing a key slot", e))?;
            for name in &removed {
                t.remove(name.as_str()).map_err(|e| Error::storage("removing a key slot", e))?;
            }
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

    /// Finishes an unfinished rotation: re-encrypts what is still sealed under the old epoch,
    /// retires the old master key from every slot, and rewrites the file.
    ///
    /// Errors: [`Error::InvalidInput`] when no rotation is unfinished; as [`Vault::rotate`].
    pub fn resume_rotation(&mut self, progress: &dyn Progress) -> Result<RotateReport> {
        let Some(prev) = self.state.prev.as_ref() else {
            return Err(Error::InvalidInput("no master-key rotation is unfinished".into()));
        };
        let (from, to) = (prev.epoch, self.epoch());
        let mut report = RotateReport {
            from_epoch: from,
            to_epoch: to,
            slots_kept: Vec::new(),
            slots_removed: Vec::new(),
            chunks: 0,
            bytes: 0,
            records: 0,
            file_bytes: 0,
        };
        report.records = self.reseal_records()?;
        self.reseal_chunks(&mut report, progress)?;
        // Retire the old epoch from every slot, and end the rotation.
        let mut txn = self.write()?;
        let slots = {
            let t = txn.tx.open_table(SLOTS).map_err(|e| Error::storage("reading key slots", e))?;
            let mut v = Vec::new();
            for row in t.iter().map_err(|e| Error::storage("reading key slots", e))? {
                let (k, val) = row.map_err(|e| Error::storage("reading key slots", e))?;
                v.push((k.value().to_string(), val.value().to_vec()));
            }
            v
        };
        let mut drop_slots = Vec::new();
        for (name, bytes) in slots {
            let mut slot = SlotRecord::decode(&bytes).ok_or_else(|| Error::KeySlotDamaged(name.clone()))?;
            match slot.next.take() {
                Some((e, w)) if e == to => {
                    slot.epoch = e;
                    slot.wrapped = w;
                    txn.put_slot(&name, &slot.encode())?;
                    report.slots_kept.push(name);
                }
                _ if slot.epoch == to => report.slots_kept.push(name),
                _ => drop_slots.push(name),
            }
        }
        {
            let mut t = txn.tx.open_table(SLOTS).map_err(|e| Error::storage("removing a key slot", e))?;
            for name in &drop_slots {
                t.remove(name.as_str()).map_err(|e| Error::storage("removing a key slot", e))?;
            }
        }
        if report.slots_kept.is_empty() {
            return Err(Error::Damaged("no key slot wraps the new master key: the rotation cannot finish".into()));
        }
        report.slots_removed.extend(drop_slots);
        txn.state.epoch = to;
        txn.state.rotating_to = None;
        txn.commit()?;
        self.state.prev = None;
        self.rewrite_file()?;
        report.file_bytes = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        Ok(report)
    }

    /// Rewrites the vault into a fresh file (see [`crate::store::rewrite`]).
    fn rewrite_file(&mut self) -> Result<()> {
        let placeholder = store::create_placeholder()?;
        let db = std::mem::replace(&mut self.db, placeholder);
        self.db = store::rewrite(db, &self.path)?;
        Ok(())
    }

    /// Re-seals every metadata record still under the old epoch, in one transaction.
    fn reseal_records(&self) -> Result<u64> {
        let prev = self.state.prev.as_ref().expect("called during a rotation");
        let mut txn = self.write()?;
        let mut n = 0u64;
        macro_rules! reseal_table {
            ($def:expr, $name:literal, |$k:ident| $key_bytes:expr, $key_ref:expr) => {{
                let mut t = txn.tx.open_table($def).map_err(|e| Error::storage("re-encrypting records", e))?;
                let mut todo = Vec::new();
                for row in t.iter().map_err(|e| Error::storage("re-encrypting records", e))? {
                    let (k, v) = row.map_err(|e| Error::storage("re-encrypting records", e))?;
                    if matches!(split_sealed(v.value()), Some((e, _)) if e == prev.epoch) {
                        todo.push((k.value().to_owned(), v.value().to_vec()));
                    }
                }
                for ($k, v) in todo {
                    let key_bytes: Vec<u8> = $key_bytes;
                    let (_, sealed) = split_sealed(&v).expect("checked above");
                    let aad_old = store::aad($name, &self.header.vault_id, prev.epoch, &key_bytes);
                    let plain = zeroize::Zeroizing::new(aead::open(&prev.meta, &aad_old, sealed).map_err(|e| {
                        Error::Damaged(format!("a record of table {}: {e}: the vault is damaged", $name))
                    })?);
                    let aad_new = store::aad($name, &self.header.vault_id, self.epoch(), &key_bytes);
                    let fresh = aead::seal_with_prefix(&self.state.keys.meta, &aad_new, &sealed_prefix(self.epoch()), &plain)?;
                    t.insert($key_ref, fresh.as_slice()).map_err(|e| Error::storage("re-encrypting records", e))?;
                    n += 1;
                }
            }};
        }
        reseal_table!(MODELS, "models", |k| k.to_vec(), &k);
        reseal_table!(VERSIONS, "versions", |k| k.to_vec(), &k);
        reseal_table!(SIGNERS, "signers", |k| k.to_be_bytes().to_vec(), k);
        reseal_table!(TRUST, "trust", |k| k.as_bytes().to_vec(), k.as_str());
        reseal_table!(META, "meta", |k| k.as_bytes().to_vec(), k.as_str());
        txn.state.meta_seals += n;
        txn.commit()?;
        Ok(n)
    }

    /// Re-seals every chunk still under the old epoch, [`ROTATE_BATCH_BYTES`] per transaction.
    fn reseal_chunks(&self, report: &mut RotateReport, progress: &dyn Progress) -> Result<()> {
        let prev = self.state.prev.as_ref().expect("called during a rotation");
        let vid = self.header.vault_id;
        progress.begin("rotate", 0);
        let mut cursor: Option<[u8; 32]> = None;
        loop {
            let mut txn = self.write()?;
            let mut batch_bytes = 0u64;
            let mut last = None;
            let mut done = true;
            let sealed_here;
            {
                let mut t = txn.tx.open_table(CHUNKS).map_err(|e| Error::storage("re-encrypting chunks", e))?;
                let mut todo = Vec::new();
                let range = match &cursor {
                    Some(c) => t.range::<&[u8; 32]>((std::ops::Bound::Excluded(c), std::ops::Bound::Unbounded)),
                    None => t.range::<&[u8; 32]>(..),
                }
                .map_err(|e| Error::storage("re-encrypting chunks", e))?;
                for row in range {
                    let (k, v) = row.map_err(|e| Error::storage("re-encrypting chunks", e))?;
                    let id = *k.value();
                    last = Some(id);
                    if let Some((e, _)) = split_sealed(v.value())
                        && e == prev.epoch
                    {
                        batch_bytes += v.value().len() as u64;
                        todo.push((id, v.value().to_vec()));
                    }
                    if batch_bytes >= ROTATE_BATCH_BYTES {
                        done = false;
                        break;
                    }
                }
                for (id, v) in &todo {
                    let (_, sealed) = split_sealed(v).expect("checked above");
                    let plain = aead::open(&prev.chunk, &store::aad("chunks", &vid, prev.epoch, id), sealed).map_err(|e| {
                        Error::Damaged(format!("chunk {}…: {e}: the vault is damaged; the rotation stopped and can be resumed after repair", &crate::manifest::hex(id)[..16]))
                    })?;
                    let fresh = aead::seal_with_prefix(
                        &self.state.keys.chunk,
                        &store::aad("chunks", &vid, self.epoch(), id),
                        &sealed_prefix(self.epoch()),
                        &plain,
                    )?;
                    t.insert(id, fresh.as_slice()).map_err(|e| Error::storage("re-encrypting chunks", e))?;
                    report.chunks += 1;
                    report.bytes += plain.len() as u64;
                    progress.advance(plain.len() as u64);
                }
                sealed_here = todo.len() as u64;
            }
            txn.count_chunk_seals(sealed_here)?;
            txn.commit()?;
            cursor = last;
            if done {
                break;
            }
        }
        progress.end();
        Ok(())
    }

    /// Cryptographic erasure of `name@r` (or of every version of `name` when `r` is `None`):
    /// removes the versions, deletes the chunks no other version uses, and rewrites the file so
    /// that none of their bytes, nor any stale copy of an older key slot, remains in it.
    ///
    /// Errors: as [`Vault::remove_version`] and [`Vault::gc`]; [`Error::InvalidInput`] during an
    /// unfinished rotation.
    pub fn erase(&mut self, name: &str, r: Option<&VersionRef>) -> Result<EraseReport> {
        self.refuse_during_rotation()?;
        let file_bytes_before = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        let versions = match r {
            Some(r) => vec![self.remove_version(name, r)?],
            None => {
                let all: BTreeSet<u64> =
                    self.list(Some(name))?.models.iter().flat_map(|m| m.versions.iter().map(|v| v.version)).collect();
                self.remove_model(name)?;
                all.into_iter().collect()
            }
        };
        let gc = self.gc()?;
        self.rewrite_file()?;
        let file_bytes_after = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        Ok(EraseReport { versions, chunks_removed: gc.chunks_removed, file_bytes_before, file_bytes_after })
    }
}
