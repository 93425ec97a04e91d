//! Unlocking: trying the key slots with a passphrase (cheapest first, within the unlock limits),
//! opening the master key, the index key and the signing keys, and refusing a sealed state
//! rolled back past the format 3 upgrade. It must never print, keep a KEK or master key outside
//! the zeroizing key types, or try a slot beyond the limits.

use std::sync::atomic::AtomicBool;

use zeroize::Zeroizing;

use super::{Locked, MAX_RECIPIENT_SLOTS, MAX_UNLOCK_COST, MAX_UNLOCK_SLOTS, Passphrase, Unlocked, Vault, unlock_cost};
use crate::crypto::SecretKey;
use crate::crypto::aead;
use crate::crypto::keys::{EpochKeys, IndexKeys};
use crate::crypto::recipient::Identities;
use crate::crypto::sign::{ManifestSigner, ManifestVerifier};
use crate::store::envelope::Envelope;
use crate::store::records::{self, FORMAT_VERSION, IndexRecord, RecipientSlot, SignerRecord, SlotRecord, State};
use crate::store::{self, RecordRead, Table};
use crate::{Error, Remedy, Result};

/// What opening the sealed state with one epoch's keys found.
enum Probe {
    /// It opens, and says this.
    Opens(Box<State>),
    /// There is no state record.
    Missing,
    /// It does not open with these keys.
    DoesNotOpen,
}

impl Probe {
    /// The epoch an unfinished rotation from `slot_epoch` goes to, when the state opened and
    /// says one is (always `slot_epoch + 1`); `None` otherwise. A slot's next wrap is followed
    /// for this rotation only.
    fn pending_to(&self, slot_epoch: u32) -> Option<u32> {
        match self {
            Probe::Opens(st) => st.rotating_to.filter(|to| slot_epoch.checked_add(1) == Some(*to)),
            Probe::Missing | Probe::DoesNotOpen => None,
        }
    }
}

/// A passphrase slot and its name.
type Named = (String, SlotRecord);

/// The master key a slot gives and, while a rotation runs, the next epoch and its master key.
type SlotKeys = (SecretKey, Option<(u32, SecretKey)>);

impl Vault<Locked> {
    /// Unlocks with `passphrase`, trying the key slots cheapest first (each costs one Argon2id
    /// derivation), at most [`MAX_UNLOCK_SLOTS`] of them and at most [`MAX_UNLOCK_COST`] of
    /// Argon2id work in all.
    ///
    /// Recipient key slots are not tried: a passphrase never opens one.
    ///
    /// Errors: [`Error::WrongPassphrase`] if no slot opens; [`Error::InvalidInput`] (with the
    /// remedy to unlock with a private key) if the vault has no passphrase slot, or `slot` names a
    /// recipient slot; [`Error::UnlockLimit`] if none of the
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
    /// [`crate::crypto::kdf::Argon2Params::check`]). Errors: as [`Vault::unlock`], and [`Error::NotFound`] for no
    /// slot of that name.
    pub fn unlock_slot(self, slot: &str, passphrase: &Passphrase) -> Result<Vault<Unlocked>> {
        self.unlock_with(Some(slot), passphrase)
    }

    /// Unlocks with a private key: tries every recipient key slot (or only the one named
    /// `only`), at most [`MAX_RECIPIENT_SLOTS`] of them, decrypting each slot's age file with
    /// `ids` and checking that what it carries is bound to this vault id, epoch and slot name.
    /// No Argon2id work is done.
    ///
    /// A slot that opens with `ids` but whose payload is bound to another vault id, epoch or
    /// name, or whose master key does not open the sealed state, was planted or damaged: it is
    /// passed over (anyone can encrypt to a public key, so such a slot must not lock the owner
    /// out), and reported only when no slot opens. A slot's rotation wrap (`next`) is followed
    /// only for the rotation the sealed state says is unfinished, and only with a MAC under the
    /// slot's own epoch key; otherwise it is ignored.
    ///
    /// Errors: [`Error::WrongIdentity`] if no slot opens and none was passed over;
    /// [`Error::Damaged`] (bound elsewhere, or not this vault's key) or [`Error::KeySlotDamaged`]
    /// (rotation wrap) for the first slot passed over, when no slot opens; [`Error::NotFound`]
    /// for no slot named `only`; [`Error::InvalidInput`] if `only` is a passphrase slot or more
    /// than [`MAX_RECIPIENT_SLOTS`] would have to be tried; as [`Vault::unlock`] for the records
    /// after.
    pub fn unlock_identity(self, ids: &Identities, only: Option<&str>) -> Result<Vault<Unlocked>> {
        crate::harden::harden_process()?;
        let slots = {
            let rx = store::read(&self.db)?;
            rx.require(Table::Slots, "reading key slots")?;
            rx.slots()?
        };
        let escape = crate::names::escape;
        if let Some(name) = only {
            match slots.iter().find(|(n, _)| n == name) {
                None => return Err(Error::NotFound(format!("no key slot named '{}'", escape(name)))),
                Some((_, b)) if RecipientSlot::decode(b).is_none() && SlotRecord::decode(b).is_some() => {
                    return Err(Error::InvalidInput(format!(
                        "key slot '{}' is opened by a passphrase, not by an identity",
                        escape(name)
                    )));
                }
                Some(_) => {}
            }
        }
        let cands: Vec<(&String, RecipientSlot)> = slots
            .iter()
            .filter(|(n, _)| only.is_none_or(|o| o == n))
            .filter_map(|(n, b)| RecipientSlot::decode(b).map(|s| (n, s)))
            .collect();
        if cands.len() > MAX_RECIPIENT_SLOTS {
            return Err(Error::InvalidInput(format!(
                "this vault has {} recipient key slots, more than the {MAX_RECIPIENT_SLOTS} one unlock tries: \
                 name the slot to unlock with",
                cands.len()
            )));
        }
        // A slot that opens with this identity but gives no key of this vault (planted by a file
        // holder, encrypted to a public key) is passed over, so it cannot lock the owner out.
        let mut misfit = None;
        for (name, slot) in &cands {
            match self.open_recipient_slot(ids, name, slot) {
                Ok(Some((master, next))) => return self.finish_unlock(name, None, master, slot.epoch, next),
                Ok(None) => {}
                Err(e) => {
                    misfit.get_or_insert(e);
                }
            }
        }
        Err(misfit.unwrap_or_else(|| Error::WrongIdentity(ids.source().to_string())))
    }

    /// The master key (and, while a rotation runs, the next one) recipient slot `name` gives
    /// with `ids`, checked to open this vault's state; `None` when `ids` does not open it.
    ///
    /// Errors: [`Error::Damaged`] when it opens but its payload is bound to another vault id,
    /// epoch or name, or its key does not open the state; [`Error::KeySlotDamaged`] when its
    /// rotation wrap does not open.
    fn open_recipient_slot(&self, ids: &Identities, name: &str, slot: &RecipientSlot) -> Result<Option<SlotKeys>> {
        let vid = self.header.vault_id;
        let escape = crate::names::escape;
        let Some(payload) = crate::crypto::recipient::decrypt(ids, &slot.body) else { return Ok(None) };
        let Some(mk) = RecipientSlot::open_payload(&payload, &vid, slot.epoch, name) else {
            return Err(Error::Damaged(format!(
                "key slot '{}' opens with the identity in {}, but the master key it carries is bound to another \
                 vault id, epoch or slot name (this vault is {}): the vault header or this key slot was changed \
                 or damaged; restore the vault from a backup",
                escape(name),
                ids.source(),
                crate::manifest::hex(&vid)
            )));
        };
        let master = SecretKey(*mk);
        // The state is sealed under the slot's epoch, also while a rotation from it is unfinished.
        let keys = EpochKeys::derive(&master, &vid, slot.epoch);
        let probe = self.state_under(&keys)?;
        if let Probe::DoesNotOpen = probe {
            return Err(Error::Damaged(format!(
                "key slot '{}' opens with the identity in {}, but the master key it carries does not open \
                 this vault's state: the slot was planted (by someone holding an old master key) or the vault \
                 is damaged",
                escape(name),
                ids.source()
            )));
        }
        // A next wrap counts only for the rotation the sealed state says is unfinished, and only
        // when a holder of this epoch's master key vouched for it: anyone can encrypt a key of
        // their own to the owner's public key, and following it would hand them the vault.
        let next = match (&slot.next, probe.pending_to(slot.epoch)) {
            (Some((e, body)), Some(to)) if *e == to && slot.next_authentic(&keys.slot_mac, &vid, to, name) => {
                let damaged = || Error::KeySlotDamaged(name.to_string());
                let payload = crate::crypto::recipient::decrypt(ids, body).ok_or_else(damaged)?;
                let mk = RecipientSlot::open_payload(&payload, &vid, *e, name).ok_or_else(damaged)?;
                Some((*e, SecretKey(*mk)))
            }
            _ => None,
        };
        Ok(Some((master, next)))
    }

    /// Whether `keys` open the sealed state record, and what it says.
    fn state_under(&self, keys: &EpochKeys) -> Result<Probe> {
        let env = Envelope::new(self.header.vault_id, keys, None);
        let rx = store::read(&self.db)?;
        rx.require(Table::Meta, "reading vault state")?;
        let Some(bytes) = rx.state()? else { return Ok(Probe::Missing) };
        Ok(env
            .open_record_with(&Table::Meta, b"state", "vault state record", &bytes, |b| {
                records::decode_state("vault state record", b)
            })
            .map_or(Probe::DoesNotOpen, |(st, _)| Probe::Opens(Box::new(st))))
    }

    /// Checks, before a passphrase is asked for, that a passphrase could unlock this vault (with
    /// the slot named `only`, if given): there is a passphrase slot, and `only` names one.
    ///
    /// Errors: as the checks of [`Vault::unlock`] and [`Vault::unlock_slot`] made before any
    /// derivation ([`Error::NotFound`], [`Error::InvalidInput`] with the remedy to unlock with a
    /// private key); [`Error::Storage`].
    pub fn check_passphrase_unlock(&self, only: Option<&str>) -> Result<()> {
        let rx = store::read(&self.db)?;
        rx.require(Table::Slots, "reading key slots")?;
        passphrase_slots(&rx.slots()?, only).map(|_| ())
    }

    fn unlock_with(self, only: Option<&str>, passphrase: &Passphrase) -> Result<Vault<Unlocked>> {
        crate::harden::harden_process()?;
        let slots = {
            let rx = store::read(&self.db)?;
            rx.require(Table::Slots, "reading key slots")?;
            rx.slots()?
        };
        let (mut cands, damaged, passphrase_slots) = passphrase_slots(&slots, only)?;
        // Cheapest first, so slots planted with a high cost are reached last, if at all.
        cands.sort_by(|a, b| (unlock_cost(&a.1.params), &a.0).cmp(&(unlock_cost(&b.1.params), &b.0)));
        let (mut tried, mut spent) = (0usize, 0u64);
        for (i, (name, slot)) in cands.iter().enumerate() {
            let cost = unlock_cost(&slot.params);
            if only.is_none()
                && tried > 0
                && let Some(e) = unlock_limit(&cands[i..], tried, spent, cost)
            {
                return Err(e);
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
            // A next wrap is followed only for the rotation the sealed state (opened with this
            // slot's own key) says is unfinished: rotation keeps a slot's salt and parameters, so
            // an old wrap of this slot put back as `next` would otherwise open, and the vault
            // would "rotate" back to a master key a former holder knows.
            let keys = EpochKeys::derive(&master, &self.header.vault_id, slot.epoch);
            // A state that does not open is reported by finishing the unlock.
            let next = match (&slot.next, self.state_under(&keys)?.pending_to(slot.epoch)) {
                (Some((e, w)), Some(to)) if *e == to => {
                    let aad = SlotRecord::aad(&self.header.vault_id, name, *e, &slot.params);
                    let mk = aead::open(&kek, &aad, w).map_err(|_| Error::KeySlotDamaged(name.clone()))?;
                    Some((*e, to_key(mk)))
                }
                _ => None,
            };
            return self.finish_unlock(name, Some(kek), master, slot.epoch, next);
        }
        match damaged {
            Some(name) if passphrase_slots == 1 || only.is_some() => Err(Error::KeySlotDamaged(name)),
            _ => Err(Error::WrongPassphrase),
        }
    }

    fn finish_unlock(
        self,
        slot: &str,
        slot_kek: Option<SecretKey>,
        master: SecretKey,
        epoch: u32,
        next: Option<(u32, SecretKey)>,
    ) -> Result<Vault<Unlocked>> {
        let vid = self.header.vault_id;
        let (keys, prev, master) = match next {
            None => (EpochKeys::derive(&master, &vid, epoch), None, master),
            Some((e, mk)) => (EpochKeys::derive(&mk, &vid, e), Some(EpochKeys::derive(&master, &vid, epoch)), mk),
        };
        let env = Envelope::new(vid, &keys, prev.as_ref());
        let rx = store::read(&self.db)?;
        rx.require(Table::Meta, "reading vault state")?;
        let missing = |what: &str| Error::Damaged(format!("the {what} record is missing: the vault is damaged"));
        let st_bytes = rx.state()?.ok_or_else(|| missing("vault state"))?;
        let (st, current) = env.open_record_with(&Table::Meta, b"state", "vault state record", &st_bytes, |b| {
            records::decode_state("vault state record", b)
        })?;
        let ix_bytes = rx.meta("index")?.ok_or_else(|| missing("index key"))?;
        let ix: IndexRecord = env.open_record(&Table::Meta, b"index", "index key record", &ix_bytes)?;
        let index = IndexKeys::derive(&SecretKey(ix.key), &vid);
        rx.require(Table::Signers, "reading vault state")?;
        let mut signer = None;
        let mut publics = Vec::new();
        for (id, v) in rx.signers()? {
            let r: SignerRecord = env.open_record(&Table::Signers, &id.to_be_bytes(), "signing key record", &v)?;
            if id == st.active_signer {
                signer = Some(ManifestSigner::from_seed(&SecretKey(r.seed)));
            }
            // A key that does not decode verifies nothing: the versions it signed fail their check.
            publics.extend(ManifestVerifier::new(&r.public));
        }
        let signer = signer.ok_or_else(|| missing("active signing key"))?;
        drop(rx);
        let legacy = AtomicBool::new(!current);
        let (slot, signers, warnings) = (slot.to_string(), publics, Default::default());
        let state = Unlocked {
            keys,
            prev,
            index,
            signing: super::signing::SigningKeys::new(signer, signers),
            slot,
            slot_kek,
            master,
            legacy,
            warnings,
            source: Default::default(),
            fetched: Default::default(),
            memory: Default::default(),
        };
        let v = Vault { db: self.db, path: self.path, header: self.header, state };
        if !current {
            let rx = store::read(&v.db)?;
            rx.require(Table::Slots, "reading key slots")?;
            v.check_not_rolled_back(v.header.format_version, &rx)?;
        }
        Ok(v)
    }
}

/// The passphrase slots an unlock tries (all, or the one named `only`), the last one that does
/// not decode, and how many passphrase slots the vault has; recipient slots are left out.
///
/// Errors: [`Error::NotFound`] for no slot named `only`; [`Error::InvalidInput`] (remedy: unlock
/// with a private key) when `only` is a recipient slot or there is no passphrase slot.
fn passphrase_slots(slots: &[(String, Vec<u8>)], only: Option<&str>) -> Result<(Vec<Named>, Option<String>, usize)> {
    if let Some(name) = only {
        match slots.iter().find(|(n, _)| n == name) {
            None => return Err(Error::NotFound(format!("no key slot named '{}'", crate::names::escape(name)))),
            Some((_, b)) if RecipientSlot::is_recipient_slot(b) => {
                return Err(Error::InvalidInput(format!(
                    "key slot '{}' is opened by a private key, not by a passphrase",
                    crate::names::escape(name)
                ))
                .with_remedy(Remedy::UnlockWithIdentity));
            }
            Some(_) => {}
        }
    }
    let passphrase_slots = slots.iter().filter(|(_, b)| !RecipientSlot::is_recipient_slot(b)).count();
    if passphrase_slots == 0 {
        return Err(
            Error::InvalidInput("this vault has no passphrase key slot".into()).with_remedy(Remedy::UnlockWithIdentity)
        );
    }
    let mut damaged = None;
    let mut cands = Vec::new();
    for (name, bytes) in slots {
        if only.is_some_and(|o| o != name) || RecipientSlot::is_recipient_slot(bytes) {
            continue;
        }
        match SlotRecord::decode(bytes) {
            // A slot whose Argon2 parameters are out of range (planted: no slot is made so) is
            // damaged, not an error that stops the unlock.
            Some(slot) if slot.params.check().is_ok() => cands.push((name.clone(), slot)),
            Some(_) => damaged = Some(name.clone()),
            None => damaged = Some(name.clone()),
        }
    }
    Ok((cands, damaged, passphrase_slots))
}

/// The error that stops an unlock trying every slot before `rest[0]` (of Argon2id cost
/// `cost`), when `tried` slots (costing `spent`) opened nothing and one more would pass
/// [`MAX_UNLOCK_SLOTS`] or [`MAX_UNLOCK_COST`]; `None` when the next slot may be tried.
fn unlock_limit(rest: &[(String, SlotRecord)], tried: usize, spent: u64, cost: u64) -> Option<Error> {
    let (name, slot) = &rest[0];
    if tried >= MAX_UNLOCK_SLOTS {
        let rest: Vec<String> = rest.iter().map(|(n, _)| crate::names::escape(n)).collect();
        return Some(
            Error::UnlockLimit(format!(
                "the passphrase opened none of the {tried} key slots tried, the most one unlock tries"
            ))
            .with_remedy(Remedy::UnlockByName { not_tried: rest }),
        );
    }
    if spent + cost > MAX_UNLOCK_COST {
        return Some(
            Error::UnlockLimit(format!(
                "the passphrase opened none of the {tried} key slot(s) tried; key slot '{}' was not \
                 tried: its Argon2id cost ({} KiB x {} passes) would bring this unlock to {} KiB-passes, \
                 over the limit of {MAX_UNLOCK_COST} KiB-passes (1 GiB x 1 pass) for an unlock that tries \
                 every slot",
                crate::names::escape(name),
                slot.params.memory_kib,
                slot.params.time_cost,
                spent + cost,
            ))
            .with_remedy(Remedy::UnlockSlot { slot: crate::names::escape(name) }),
        );
    }
    None
}

fn to_key(bytes: Vec<u8>) -> SecretKey {
    let bytes = Zeroizing::new(bytes);
    SecretKey(bytes.as_slice().try_into().expect("slot decode checked 32 bytes"))
}

impl Vault<Unlocked> {
    /// For a vault whose sealed state is of the format before 3: refuses when anything says the
    /// vault was already upgraded (a header of format 3 or later, a format 3 model record, a
    /// key slot with a passphrase check, a recipient key slot), i.e. only the state record was rolled back to a copy
    /// from before the upgrade. Such a state carries no live-model set, and the next write
    /// would re-derive every live list from the records present and seal any loss.
    ///
    /// Errors: [`Error::Damaged`]; [`Error::Storage`].
    pub(super) fn check_not_rolled_back(&self, header_format: u32, rx: &impl RecordRead) -> Result<()> {
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
        for (name, v) in rx.slots()? {
            if SlotRecord::decode(&v).is_some_and(|s| s.kek_check.is_some()) {
                return damaged(format!("key slot '{name}' has a format {FORMAT_VERSION} passphrase check"));
            }
            // Adding a recipient slot is a write, and every write upgrades the vault first.
            if RecipientSlot::is_recipient_slot(&v) {
                return damaged(format!("key slot '{name}' is a recipient slot, which format {FORMAT_VERSION} added"));
            }
        }
        for (k, v) in rx.models()? {
            if let Ok(rec) = self.open_model(&k, "a model record", &v)
                && !rec.legacy
            {
                let key = crate::manifest::hex(&k);
                return damaged(format!("model record {}… is of format {FORMAT_VERSION}", &key[..16]));
            }
        }
        Ok(())
    }
}
