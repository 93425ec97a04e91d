//! Master-key rotation (`key rotate`, resumable): the new master key wrapped for the slots kept,
//! then a fresh file in which every value sealed under the old epoch is sealed again under the
//! new one (see the module docs of `ops::keys` and SECURITY.md). It must never leave a value of
//! the old epoch in the file that replaces the vault, or a slot wrapping the old master key.

use crate::log::Op;
use serde::Serialize;

use super::read_slots;
use crate::crypto::keys::{EpochKeys, SlotMacKey};
use crate::crypto::{SecretKey, aead};
use crate::names::escape;
use crate::progress::Progress;
use crate::store::chunks::ChunkStore;
use crate::store::envelope::{Envelope, KeyUse};
use crate::store::records::{self, RecipientSlot, SlotRecord};
use crate::store::{self, ReadTxn, RecordRead, Table, WriteTxn};
use crate::vault::{Passphrase, Unlocked, Vault, recipient_body};
use crate::{Error, Result};

/// Plaintext bytes re-encrypted per rotation transaction (64 MiB).
pub const ROTATE_BATCH_BYTES: u64 = 64 << 20;

/// The slots a rotation keeps (with their records wrapping the new master key as `next`) and
/// removes.
struct Wraps {
    kept: Vec<String>,
    removed: Vec<String>,
    updates: Vec<(String, Vec<u8>)>,
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
    /// Slots removed: passphrase slots whose passphrase was not given, and recipient slots whose
    /// wrap of the new master key does not verify (planted or changed during the rotation).
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

impl Vault<Unlocked> {
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
        self.check_live_records(crate::ops::Refused::Op("key rotate"))?;
        // An unfinished erasure's unreferenced chunks must not be carried into the new epoch.
        if self.erasure_pending()? {
            self.resume_erasure()?;
        }
        let slots = read_slots(&self.db)?;
        let vid = self.header.vault_id;
        let from = self.epoch();
        let to = from.checked_add(1).ok_or_else(|| Error::InvalidInput("key epoch counter exhausted".into()))?;
        let new_master = SecretKey::random()?;
        let mut txn = self.write(Op::KeyRotate)?;
        let Wraps { kept, removed, updates } =
            self.wrap_new_master(&txn.state, &slots, others, remove_others, to, &new_master)?;
        for (name, _) in others {
            if !slots.iter().any(|(n, _)| n == name) {
                return Err(Error::NotFound(format!("no key slot named '{}'; nothing was changed", escape(name))));
            }
        }
        for (name, slot) in &updates {
            txn.put_slot(name, slot)?;
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

    /// The slot records that wrap `new_master` of epoch `to` as their `next`: every recipient
    /// slot (from its public keys), the slot in use and every passphrase slot whose passphrase
    /// is in `others`; with `remove_others` the other passphrase slots are listed to remove.
    ///
    /// Errors: as [`Vault::rotate`].
    fn wrap_new_master(
        &self,
        state: &records::State,
        slots: &[(String, Vec<u8>)],
        others: &[(String, Passphrase)],
        remove_others: bool,
        to: u32,
        new_master: &SecretKey,
    ) -> Result<Wraps> {
        let vid = self.header.vault_id;
        let mut kept = Vec::new();
        let mut removed = Vec::new();
        let mut updates = Vec::new();
        for (name, bytes) in slots {
            if let Some(mut slot) = RecipientSlot::decode(bytes) {
                // Public keys are all a recipient slot needs, but only a list a master-key holder
                // wrote may receive the new master key.
                if !self.recipient_slot_live(state, name, &slot) {
                    return Err(Error::InvalidInput(format!(
                        "key slot '{}' lists recipients that no holder of the master key authenticated (the slot \
                         was written by an earlier version, or planted, changed or put back after its removal in the \
                         file): the new master key is not encrypted to them; nothing was changed",
                        escape(name)
                    ))
                    .with_remedy(crate::Remedy::AddRecipientSlotAgain { slot: escape(name) }));
                }
                let recipients = super::stored_recipients(name, &slot)?;
                slot.next = Some((to, recipient_body(&vid, name, to, new_master, &recipients)?));
                slot.authenticate_next(&self.state.keys.slot_mac, &vid, name);
                kept.push(name.clone());
                updates.push((name.clone(), slot.encode()));
                continue;
            }
            let mut slot = SlotRecord::decode(bytes).ok_or_else(|| Error::KeySlotDamaged(name.clone()))?;
            let kek = if *name == self.state.slot {
                self.state.slot_kek.clone().ok_or_else(|| Error::KeySlotDamaged(name.clone()))?
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
                return Err(Error::InvalidInput(format!("no passphrase given for key slot '{name}'"))
                    .with_remedy(crate::Remedy::SlotPassphrase { slot: name.clone() }));
            };
            let wrapped = aead::seal(&kek, &SlotRecord::aad(&vid, name, to, &slot.params), new_master.expose())?;
            slot.next = Some((to, wrapped));
            kept.push(name.clone());
            updates.push((name.clone(), slot.encode()));
        }
        Ok(Wraps { kept, removed, updates })
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
        self.check_live_records(crate::ops::Refused::Op("key rotate"))?;
        let state = {
            let txn = self.write(Op::KeyRotate)?;
            txn.state.clone()
        };
        let prev = self.state.prev.as_ref().expect("checked above");
        let ctx = Reseal {
            env: Envelope::new(self.header.vault_id, &self.state.keys, Some(prev)),
            prev_mac: &prev.slot_mac,
            new_mac: &self.state.keys.slot_mac,
            slot: &self.state.slot,
        };
        let path = self.path.clone();
        store::rewrite_with(&mut self.db, &path, |old, fresh| ctx.copy(old, fresh, state, &mut report, progress))?;
        self.state.prev = None;
        report.file_bytes = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        Ok(report)
    }
}

/// What a rotation's copy needs: the envelope of the new epoch that also opens the old one.
struct Reseal<'k> {
    env: Envelope<'k>,
    /// The slot MAC key of the epoch rotated from, which authenticates the recipient slots' next
    /// wraps, and of the new epoch, which authenticates them once promoted.
    prev_mac: &'k SlotMacKey,
    new_mac: &'k SlotMacKey,
    /// The key slot that unlocked the vault (for the log entry of the reseal).
    slot: &'k str,
}

/// The tables of sealed records a rotation seals again, with the key of each row (as its AAD
/// names it) the copy leaves out: the state, which the copy writes last.
const RESEALED_RECORDS: [Table; 7] =
    [Table::Meta, Table::Signers, Table::Trust, Table::Remotes, Table::Models, Table::Versions, Table::Log];

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
            if rx.has_table(table)? {
                tx.create_table(table)?; // an empty table stays, as in the old file
            }
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
        // The tree's hashes are not sealed: copied as they are, the log keeps its root.
        store::copy_table(&rx, &mut tx, Table::LogHashes)?;
        let live = self.copy_slots(&rx, &mut tx, &state, report)?;
        // Every record and slot is new bytes now: the log binds them in one entry.
        let records = tx.take_written();
        let (mut tx, chunk_seals) = self.copy_chunks(&rx, tx, fresh, report, progress)?;
        let a = crate::log::Append {
            vault_id: self.env.vault_id(),
            slot: self.slot,
            op: &Op::Reseal,
            subjects: &Default::default(),
            records,
        };
        state.log = Some(crate::log::append(&mut tx, state.log, a, |seq, e| {
            meta_seals += 1;
            self.env.seal_record(&Table::Log, &seq.to_be_bytes(), e)
        })?);
        state.recipient_slots = Some(live);
        state.epoch = self.env.epoch();
        state.rotating_to = None;
        state.chunk_seals = chunk_seals;
        state.meta_seals = meta_seals + 1;
        tx.put_meta("state", &self.env.seal_record(&Table::Meta, b"state", &state)?)?;
        tx.commit()
    }

    /// Copies the key slots, each keeping the wrap of the new master key only; a slot without
    /// one is left out (and reported removed); a recipient slot also when `old`, the state the
    /// rotation started from, does not list it as live. Returns the recipient
    /// slots kept, as (name, MAC under the new epoch's key), for the new state.
    ///
    /// Errors: [`Error::KeySlotDamaged`]; [`Error::Damaged`] when no slot is kept.
    fn copy_slots(
        &self,
        rx: &ReadTxn,
        tx: &mut WriteTxn,
        old: &records::State,
        report: &mut RotateReport,
    ) -> Result<Vec<(String, [u8; 32])>> {
        rx.require(Table::Slots, "re-encrypting into a fresh file")?;
        let epoch = self.env.epoch();
        let vid = self.env.vault_id();
        let mut live = Vec::new();
        for (name, v) in rx.slots()? {
            // The wrap of the new epoch becomes the slot's wrap; a slot with none is dropped.
            let record = if let Some(mut slot) = RecipientSlot::decode(&v) {
                // Its next wrap is kept only when a holder of the old master key vouched for it
                // (the rotation itself); it then gets its MAC under the new epoch's key.
                // And only when the state the rotation started from lists it as live (an old
                // record of a removed slot, whose next wrap a former rotation made, put back).
                let listed = old.lists_recipient_slot(&name, slot.mac);
                let fresh = listed && slot.next_authentic(self.prev_mac, &vid, epoch, &name);
                let next = slot.next.take().filter(|_| fresh);
                slot.next_mac = None;
                let kept = next.is_some() && promote(&mut slot.epoch, &mut slot.body, next, epoch);
                if kept {
                    slot.authenticate(self.new_mac, &vid, &name);
                    live.push((name.clone(), slot.mac.expect("just authenticated")));
                }
                kept.then(|| slot.encode())
            } else {
                let mut slot = SlotRecord::decode(&v).ok_or_else(|| Error::KeySlotDamaged(name.clone()))?;
                promote(&mut slot.epoch, &mut slot.wrapped, slot.next.take(), epoch).then(|| slot.encode())
            };
            match record {
                Some(r) => {
                    tx.put_slot(&name, &r)?;
                    report.slots_kept.push(name);
                }
                None => report.slots_removed.push(name),
            }
        }
        if report.slots_kept.is_empty() {
            return Err(Error::Damaged("no key slot wraps the new master key: the rotation cannot finish".into()));
        }
        Ok(live)
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

/// Makes a slot's `next` wrap (when it is of `epoch`) its wrap; true when the slot then wraps
/// the master key of `epoch`, false when it is to be dropped.
fn promote(slot_epoch: &mut u32, wrap: &mut Vec<u8>, next: Option<(u32, Vec<u8>)>, epoch: u32) -> bool {
    match next {
        Some((e, w)) if e == epoch => {
            *slot_epoch = e;
            *wrap = w;
            true
        }
        _ => *slot_epoch == epoch,
    }
}
