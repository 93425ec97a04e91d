//! Key management: key slots (`key list|add|remove|passwd`) here, master-key rotation
//! (`key rotate`, resumable) in `rotate`, and cryptographic erasure (`rm --erase`) in `erase`.
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

mod erase;
mod rotate;

pub use erase::{ERASE_KEY, EraseReport, UnfinishedErasure};
pub use rotate::{ROTATE_BATCH_BYTES, RotateReport};

use crate::log::Op;
use serde::Serialize;

use crate::crypto::aead;
use crate::crypto::kdf::Argon2Params;
use crate::crypto::recipient::Recipient;
use crate::names::{self, escape};
use crate::store::records::{RecipientSlot, SlotRecord, State};
use crate::store::{self, RecordRead, Table};
use crate::vault::{Locked, Passphrase, Unlocked, Vault, make_slot, recipient_body};
use crate::{Error, Result};

/// How a key slot is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SlotKind {
    /// By a passphrase (Argon2id KEK, AES-256-GCM wrap).
    Passphrase,
    /// By a private key: an age identity or an SSH key (an age file to its recipients).
    Recipient,
}

/// A key slot as `key list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SlotInfo {
    /// Slot name.
    pub name: String,
    /// How it is opened.
    pub kind: SlotKind,
    /// Epoch of the master key it wraps.
    pub epoch: u32,
    /// Argon2id parameters (passphrase slots; `None` for recipient slots).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argon2: Option<Argon2Params>,
    /// The public keys a recipient slot is encrypted to (empty for passphrase slots).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// True for the slot that unlocked this handle.
    pub in_use: bool,
    /// True while a rotation has wrapped the next master key for it.
    pub rotating: bool,
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

/// The recipients of a stored recipient slot, parsed again (to wrap a new master key to them).
///
/// Errors: [`Error::KeySlotDamaged`] when one no longer parses.
pub(super) fn stored_recipients(name: &str, slot: &RecipientSlot) -> Result<Vec<Recipient>> {
    slot.recipients.iter().map(|r| Recipient::parse(r).map_err(|_| Error::KeySlotDamaged(name.to_string()))).collect()
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
            if let Some(r) = RecipientSlot::decode(bytes) {
                return Ok(SlotInfo {
                    name: name.clone(),
                    kind: SlotKind::Recipient,
                    epoch: r.epoch,
                    argon2: None,
                    recipients: r.recipients,
                    created: r.created,
                    in_use: in_use == Some(name.as_str()),
                    rotating: r.next.is_some(),
                });
            }
            let s = SlotRecord::decode(bytes).ok_or_else(|| Error::KeySlotDamaged(name.clone()))?;
            Ok(SlotInfo {
                name: name.clone(),
                kind: SlotKind::Passphrase,
                epoch: s.epoch,
                argon2: Some(s.params),
                recipients: Vec::new(),
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

    /// How many AES-GCM seals each key of the current epoch has made, and the limits. Read from
    /// the sealed state in a read snapshot, so it works on a vault opened read-only.
    ///
    /// Errors: [`Error::Damaged`] for a missing or unreadable state; [`Error::Storage`].
    pub fn key_usage(&self) -> Result<KeyUsage> {
        let rx = store::read(&self.db)?;
        rx.require(Table::Meta, "reading vault state")?;
        let v = rx
            .state()?
            .ok_or_else(|| Error::Damaged("the vault state record is missing: the vault is damaged".into()))?;
        let (st, _) = self.open_state(&v)?;
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

    pub(super) fn refuse_during_rotation(&self) -> Result<()> {
        if self.rotation_pending() {
            return Err(Error::InvalidInput("a master-key rotation is unfinished".into())
                .with_remedy(crate::Remedy::ResumeRotation));
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
            return Err(Error::InvalidInput(format!("key slot '{name}' already exists"))
                .with_remedy(crate::Remedy::ChangeSlotPassphrase { slot: name.to_string() }));
        }
        let (slot, _kek) =
            make_slot(&self.header.vault_id, name, self.epoch(), params, &self.state.master, passphrase)?;
        let mut txn = self.write(Op::KeyAdd)?;
        txn.about(None, Vec::new(), Some(name));
        txn.put_slot(name, &slot.encode())?;
        txn.commit()
    }

    /// Adds key slot `name`, opened by the private key of any of `recipients` (age X25519
    /// recipients or SSH public keys, see [`Recipient::parse`]): the master key is wrapped to
    /// them as one age file. No secret of theirs is needed, now or at a rotation.
    ///
    /// Errors: [`Error::InvalidName`]; [`Error::InvalidInput`] if the slot exists, a rotation is
    /// unfinished, or there are no recipients or more than
    /// [`crate::crypto::recipient::MAX_RECIPIENTS`].
    pub fn add_recipient_slot(&self, name: &str, recipients: &[Recipient]) -> Result<()> {
        names::check_key("key slot name", name)?;
        self.refuse_during_rotation()?;
        if read_slots(&self.db)?.iter().any(|(n, _)| n == name) {
            return Err(Error::InvalidInput(format!(
                "key slot '{name}' already exists: remove it first, or pick another name"
            )));
        }
        let vid = self.header.vault_id;
        let body = recipient_body(&vid, name, self.epoch(), &self.state.master, recipients)?;
        let slots = read_slots(&self.db)?;
        let mut slot = RecipientSlot {
            epoch: self.epoch(),
            recipients: recipients.iter().map(|r| r.text().to_string()).collect(),
            body,
            created: crate::vault::now(),
            next: None,
            mac: None,
            next_mac: None,
        };
        slot.authenticate(&self.state.keys.slot_mac, &vid, name);
        let mut txn = self.write(Op::KeyAdd)?;
        txn.about(None, Vec::new(), Some(name));
        let mut live = self.live_recipient_slots(&txn.state, &slots);
        live.push((name.to_string(), slot.mac.expect("just authenticated")));
        txn.state.recipient_slots = Some(live);
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
            return Err(
                Error::NotFound(format!("no key slot named '{}'", escape(name))).with_remedy(crate::Remedy::ListSlots)
            );
        }
        if slots.len() == 1 {
            return Err(Error::InvalidInput(format!(
                "key slot '{name}' is the last one: removing it would lock everyone out; add another slot first"
            )));
        }
        if name == self.state.slot {
            return Err(Error::InvalidInput(format!("key slot '{name}' is the one"))
                .with_remedy(crate::Remedy::UnlockWithAnotherSlot));
        }
        let mut txn = self.write(Op::KeyRemove)?;
        txn.about(None, Vec::new(), Some(name));
        let live = self.live_recipient_slots(&txn.state, &slots).into_iter().filter(|(n, _)| n != name).collect();
        txn.state.recipient_slots = Some(live);
        txn.tx.remove_slot(name)?;
        txn.commit()
    }

    /// The live recipient slots, as (name, MAC): those the sealed `state` lists, or, for a state
    /// that lists none yet (written before the list was kept), every recipient slot in `slots`
    /// whose MAC verifies under the current epoch's key.
    pub(crate) fn live_recipient_slots(&self, state: &State, slots: &[(String, Vec<u8>)]) -> Vec<(String, [u8; 32])> {
        if let Some(live) = &state.recipient_slots {
            return live.clone();
        }
        let (vid, epoch) = (self.header.vault_id, self.epoch());
        slots
            .iter()
            .filter_map(|(n, b)| RecipientSlot::decode(b).map(|s| (n, s)))
            .filter(|(n, s)| s.authentic(&self.state.keys.slot_mac, &vid, epoch, n))
            .filter_map(|(n, s)| s.mac.map(|m| (n.clone(), m)))
            .collect()
    }

    /// True when recipient slot `name` is live: its MAC verifies under the current epoch's key
    /// and the sealed `state` lists it with that MAC (see [`State::recipient_slots`]).
    pub(crate) fn recipient_slot_live(&self, state: &State, name: &str, slot: &RecipientSlot) -> bool {
        let (vid, epoch) = (self.header.vault_id, self.epoch());
        slot.authentic(&self.state.keys.slot_mac, &vid, epoch, name) && state.lists_recipient_slot(name, slot.mac)
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
            Error::NotFound(format!("no key slot named '{}'", escape(&name))).with_remedy(crate::Remedy::ListSlots)
        })?;
        if RecipientSlot::decode(bytes).is_some() {
            return Err(Error::InvalidInput(format!(
                "key slot '{}' is opened by a private key, not a passphrase: it has no passphrase to change \
                 (remove it and add a passphrase slot, or add a slot for a new key)",
                escape(&name)
            )));
        }
        let old = SlotRecord::decode(bytes).ok_or_else(|| Error::KeySlotDamaged(name.clone()))?;
        let params = params.copied().unwrap_or(old.params);
        params.check()?;
        let (mut slot, kek) = make_slot(&self.header.vault_id, &name, self.epoch(), &params, &self.state.master, new)?;
        slot.created = old.created;
        let mut txn = self.write(Op::KeyPasswd)?;
        txn.about(None, Vec::new(), Some(&name));
        txn.put_slot(&name, &slot.encode())?;
        txn.commit()?;
        if name == self.state.slot {
            self.state.slot_kek = Some(kek);
        }
        Ok(())
    }
}
