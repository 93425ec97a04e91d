//! `clone`: makes a new local vault from a remote with only a passphrase. A key bundle's slots
//! are tried with it (cheapest first, within the unlock limits); the slot that opens gives the
//! master key of the bundle's epoch, whose meta key opens the index key and signing keys. The new
//! file gets the same vault id, slots, index key and signers (so chunk ids, record keys and
//! signatures agree with the other copies), then everything is pulled. It must never leave a
//! half-made vault file behind on an error, nor write over an existing file.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use zeroize::Zeroizing;

use crate::crypto::SecretKey;
use crate::crypto::aead;
use crate::crypto::keys::{EpochKeys, IndexKeys};
use crate::crypto::recipient::Identities;
use crate::crypto::sign::{ManifestSigner, ManifestVerifier};
use crate::progress::Progress;
use crate::remote::bundle::read_bundle;
use crate::remote::format::{KEYS, KeysBundle, KeysRecord, KeysTable};
use crate::remote::objects::Objects;
use crate::remote::pull::{PullOptions, PullReport};
use crate::store::envelope::Envelope;
use crate::store::records::{self, FORMAT_VERSION, Header, IndexRecord, MAGIC, RecipientSlot, SlotRecord, State};
use crate::store::{self, Table};
use crate::vault::{MAX_RECIPIENT_SLOTS, MAX_UNLOCK_COST, MAX_UNLOCK_SLOTS, Passphrase, Unlocked, Vault, unlock_cost};
use crate::{Error, Result};

impl Vault<Unlocked> {
    /// Creates the vault file `path` (which must not exist) as a copy of the vault on the remote
    /// `objects`, unlocked with `passphrase` through any key slot a key bundle there holds, and
    /// pulls every version. The remote is remembered as `label`.
    ///
    /// Errors: [`Error::VaultExists`]; [`Error::NotFound`] when the remote holds no key bundle;
    /// [`Error::WrongPassphrase`] when no slot opens; [`Error::Damaged`] (see
    /// [`Vault::pull`]); [`Error::Remote`]. On any error the new file is removed.
    pub fn clone_from(
        objects: &dyn Objects,
        path: impl AsRef<Path>,
        passphrase: &Passphrase,
        label: &str,
        progress: &dyn Progress,
    ) -> Result<(Vault<Unlocked>, PullReport)> {
        Self::clone_from_with(objects, path, passphrase, label, &PullOptions::default(), progress)
    }

    /// As [`Vault::clone_from`], pulling with `opts` (see [`Vault::pull_with`]).
    ///
    /// Errors: as [`Vault::clone_from`].
    pub fn clone_from_with(
        objects: &dyn Objects,
        path: impl AsRef<Path>,
        passphrase: &Passphrase,
        label: &str,
        opts: &PullOptions,
        progress: &dyn Progress,
    ) -> Result<(Vault<Unlocked>, PullReport)> {
        Self::clone_unlocked_by(objects, path.as_ref(), CloneKey::Passphrase(passphrase), label, opts, progress)
    }

    /// As [`Vault::clone_from_with`], unlocked by a private key: through any recipient key slot
    /// of a key bundle that `ids` opens (at most [`crate::vault::MAX_RECIPIENT_SLOTS`] tried over
    /// all bundles), its payload bound to the bundle's vault id, epoch and slot name.
    ///
    /// Errors: as [`Vault::clone_from`], with [`Error::WrongIdentity`] when no slot opens and
    /// [`Error::Damaged`] for a slot that opens but is bound to something else.
    pub fn clone_from_identity(
        objects: &dyn Objects,
        path: impl AsRef<Path>,
        ids: &Identities,
        label: &str,
        opts: &PullOptions,
        progress: &dyn Progress,
    ) -> Result<(Vault<Unlocked>, PullReport)> {
        Self::clone_unlocked_by(objects, path.as_ref(), CloneKey::Identity(ids), label, opts, progress)
    }

    fn clone_unlocked_by(
        objects: &dyn Objects,
        path: &Path,
        key: CloneKey<'_>,
        label: &str,
        opts: &PullOptions,
        progress: &dyn Progress,
    ) -> Result<(Vault<Unlocked>, PullReport)> {
        crate::harden::harden_process()?;
        if path.exists() {
            return Err(Error::VaultExists(path.to_path_buf()));
        }
        let mut bundles = Vec::new();
        for o in objects.list(KEYS)? {
            bundles.extend(read_bundle(objects, &o.key, o.size)?);
        }
        if bundles.is_empty() {
            return Err(Error::NotFound("the remote holds no key bundle: nothing was pushed to it yet".into()));
        }
        bundles.sort_by_key(|b| std::cmp::Reverse(b.epoch));
        // Only exact copies are one: a bundle that differs in any byte is tried on its own.
        bundles
            .dedup_by(|a, b| a.epoch == b.epoch && a.slots == b.slots && a.header == b.header && a.sealed == b.sealed);
        let (bundle, (slot, kek, master)) = match key {
            CloneKey::Passphrase(p) => {
                let (opened, _) = open_any(&bundles, p)?;
                let (b, (slot, kek, master)) = opened.ok_or(Error::WrongPassphrase)?;
                (b, (slot, Some(kek), master))
            }
            CloneKey::Identity(ids) => {
                open_any_identity(&bundles, ids)?.ok_or_else(|| Error::WrongIdentity(ids.source().to_string()))?
            }
        };
        let vault = create_copy(path, bundle, &slot, kek, master)?;
        match vault.pull_with(objects, label, &[], opts, progress) {
            Ok(report) => Ok((vault, report)),
            Err(e) => {
                drop(vault);
                let _ = std::fs::remove_file(path);
                Err(e)
            }
        }
    }
}

/// What unlocks a clone.
enum CloneKey<'a> {
    Passphrase(&'a Passphrase),
    Identity(&'a Identities),
}

/// The first of `bundles` (newest epoch first) a recipient slot of which `ids` opens and whose
/// key opens the bundle's sealed record: (bundle, (slot name, no KEK, master key)). At most
/// [`MAX_RECIPIENT_SLOTS`] slots are tried in all.
///
/// Errors (only when no slot opens): [`Error::Damaged`] for a slot that opens but gives no key of
/// its bundle; [`Error::InvalidInput`] when the limit stopped the search; [`Error::Damaged`] for
/// a bundle header that does not decode.
type OpenedById<'b> = (&'b KeysBundle, (String, Option<SecretKey>, SecretKey));
fn open_any_identity<'b>(bundles: &'b [KeysBundle], ids: &Identities) -> Result<Option<OpenedById<'b>>> {
    let mut tried = 0;
    // A slot that opens with this identity but gives no key of its bundle (planted by the
    // remote's operator, encrypted to a public key) is passed over, so it cannot lock a clone out.
    let mut misfit = None;
    for b in bundles {
        let h: Header = records::decode("remote key bundle header", &b.header)?;
        for (name, v) in &b.slots {
            let Some(slot) = RecipientSlot::decode(v).filter(|s| s.epoch == b.epoch && s.next.is_none()) else {
                continue;
            };
            if tried == MAX_RECIPIENT_SLOTS {
                return Err(misfit.unwrap_or_else(|| {
                    Error::InvalidInput(format!(
                        "none of the first {MAX_RECIPIENT_SLOTS} recipient key slots of the remote's key bundles, \
                         the most one clone tries, opens with the identity in {}",
                        ids.source()
                    ))
                }));
            }
            tried += 1;
            let Some(payload) = crate::crypto::recipient::decrypt(ids, &slot.body) else { continue };
            let opened = RecipientSlot::open_payload(&payload, &h.vault_id, b.epoch, name)
                .map(|mk| SecretKey(*mk))
                .filter(|mk| sealed_opens(b, &h.vault_id, mk));
            let Some(master) = opened else {
                misfit.get_or_insert_with(|| {
                    Error::Damaged(format!(
                        "key slot '{}' of the remote's key bundle opens with the identity in {}, but gives no key of \
                         that bundle (it is bound to another vault id, epoch or slot name, or its key does not open \
                         the bundle): the bundle was changed",
                        crate::names::escape(name),
                        ids.source()
                    ))
                });
                continue;
            };
            return Ok(Some((b, (name.clone(), None, master))));
        }
    }
    misfit.map_or(Ok(None), Err)
}

/// True when `master`, the master key of the bundle's epoch, opens the bundle's sealed record.
fn sealed_opens(b: &KeysBundle, vault_id: &[u8; 16], master: &SecretKey) -> bool {
    let keys = EpochKeys::derive(master, vault_id, b.epoch);
    let opened: Result<KeysRecord> =
        Envelope::new(*vault_id, &keys, None).open_record(&KeysTable, b"", "remote key bundle", &b.sealed);
    opened.is_ok()
}

/// The first of `bundles` (newest epoch first) a slot of which `passphrase` opens, and the work
/// spent. One Argon2id budget for the whole clone, not one per bundle: a remote holding many
/// bundles (an operator may add copies with other slots) costs no more than one unlock.
type Opened<'b> = Option<(&'b KeysBundle, (String, SecretKey, SecretKey))>;
fn open_any<'b>(bundles: &'b [KeysBundle], passphrase: &Passphrase) -> Result<(Opened<'b>, Budget)> {
    let mut budget = Budget { slots: 0, spent: 0 };
    for b in bundles {
        if let Some(found) = open_bundle(b, passphrase, &mut budget)? {
            return Ok((Some((b, found)), budget));
        }
    }
    Ok((None, budget))
}

/// The Argon2id work one clone has spent on slots: at most [`MAX_UNLOCK_SLOTS`] slots and
/// [`MAX_UNLOCK_COST`] over all the bundles tried (the first slot is always tried).
struct Budget {
    slots: usize,
    spent: u64,
}

/// Tries the bundle's slots with `passphrase`, cheapest first, while `budget` allows; (slot name,
/// KEK, master key) of the one that opens.
fn open_bundle(
    b: &KeysBundle,
    passphrase: &Passphrase,
    budget: &mut Budget,
) -> Result<Option<(String, SecretKey, SecretKey)>> {
    let h: Header = records::decode("remote key bundle header", &b.header)?;
    let mut slots: Vec<(String, SlotRecord)> =
        b.slots.iter().filter_map(|(n, v)| SlotRecord::decode(v).map(|s| (n.clone(), s))).collect();
    // Out-of-range Argon2 parameters: a planted slot, passed over rather than stopping the clone.
    slots.retain(|(_, s)| s.params.check().is_ok());
    slots.retain(|(_, s)| s.epoch == b.epoch && s.next.is_none());
    slots.sort_by(|a, b| (unlock_cost(&a.1.params), &a.0).cmp(&(unlock_cost(&b.1.params), &b.0)));
    for (name, slot) in &slots {
        let cost = unlock_cost(&slot.params);
        if budget.slots >= MAX_UNLOCK_SLOTS || (budget.slots > 0 && budget.spent + cost > MAX_UNLOCK_COST) {
            break;
        }
        budget.slots += 1;
        budget.spent += cost;
        let kek = slot.params.derive_kek(passphrase.bytes(), &slot.salt)?;
        let aad = SlotRecord::aad(&h.vault_id, name, slot.epoch, &slot.params);
        if let Ok(mk) = aead::open(&kek, &aad, &slot.wrapped) {
            let mk = Zeroizing::new(mk);
            let master = SecretKey(mk.as_slice().try_into().map_err(|_| Error::KeySlotDamaged(name.clone()))?);
            // A real slot copied into a bundle with another sealed record opens, but that bundle
            // is not this vault's: the next bundle is tried.
            if sealed_opens(b, &h.vault_id, &master) {
                return Ok(Some((name.clone(), kek, master)));
            }
        }
    }
    Ok(None)
}

/// Writes the new vault file from the bundle and returns it unlocked.
fn create_copy(
    path: &Path,
    b: &KeysBundle,
    slot: &str,
    slot_kek: Option<SecretKey>,
    master: SecretKey,
) -> Result<Vault<Unlocked>> {
    let mut header: Header = records::decode("remote key bundle header", &b.header)?;
    if header.magic != MAGIC {
        return Err(Error::Damaged("the remote key bundle's header is not a modelvault header".into()));
    }
    header.format_version = FORMAT_VERSION;
    let vid = header.vault_id;
    let keys = EpochKeys::derive(&master, &vid, b.epoch);
    let rec: KeysRecord =
        Envelope::new(vid, &keys, None).open_record(&KeysTable, b"", "remote key bundle", &b.sealed)?;
    let index = IndexKeys::derive(&SecretKey(rec.index_key), &vid);
    let active = rec.signers.iter().find(|(id, _)| *id == rec.active_signer);
    let active = active.ok_or_else(|| Error::Damaged("the remote key bundle lacks its active signing key".into()))?;
    let signer = ManifestSigner::from_seed(&SecretKey(active.1.seed));
    let signers = rec.signers.iter().filter_map(|(_, s)| ManifestVerifier::new(&s.public)).collect();
    let db = store::create_db(path)?;
    let legacy = AtomicBool::new(false);
    let slot_name = slot;
    let slot = slot.to_string();
    let state = Unlocked {
        keys,
        prev: None,
        index,
        signing: crate::vault::signing::SigningKeys::new(signer, signers),
        slot,
        slot_kek,
        master,
        legacy,
        warnings: Default::default(),
        source: Default::default(),
        fetched: Default::default(),
        memory: Default::default(),
    };
    let vault = Vault { db, path: path.to_path_buf(), header, state };
    let written = (|| {
        let mut tx = vault.write(crate::log::Op::Clone)?;
        tx.put_plain_meta("header", &records::encode(&vault.header))?;
        let live = copy_slots(&mut tx, b, &vault.state.keys.slot_mac, &vid, slot_name)?;
        for (id, s) in &rec.signers {
            tx.put_signer(*id, s)?;
        }
        let next_signer = rec.signers.iter().map(|(id, _)| id + 1).max().unwrap_or(1);
        let recipient_slots = Some(live);
        tx.state = State {
            epoch: b.epoch,
            active_signer: rec.active_signer,
            next_signer,
            recipient_slots,
            ..State::default()
        };
        let ix = tx.seal_meta(Table::Meta, b"index", &IndexRecord { key: rec.index_key })?;
        tx.put_plain_meta("index", &ix)?;
        tx.commit()
    })();
    if let Err(e) = written {
        drop(vault);
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(vault)
}

/// Copies the bundle's key slots into the clone's first transaction and returns its live
/// recipient slots. A recipient slot is copied only when a master-key holder wrote it (or it
/// is `opened`, the slot the clone opened with), and without a rotation wrap (the clone has no
/// rotation unfinished): a list planted on the remote never reaches a rotation of the clone.
/// The ones whose MAC verifies under `mac_key` (the bundle's epoch) are the live ones.
///
/// Errors: [`Error::Storage`].
fn copy_slots(
    tx: &mut crate::vault::txn::Txn<'_>,
    b: &KeysBundle,
    mac_key: &crate::crypto::keys::SlotMacKey,
    vid: &[u8; 16],
    opened: &str,
) -> Result<Vec<(String, [u8; 32])>> {
    let mut live = Vec::new();
    for (name, v) in &b.slots {
        let Some(mut r) = RecipientSlot::decode(v) else {
            // A passphrase slot is copied without a rotation wrap too.
            if let Some(mut p) = SlotRecord::decode(v) {
                p.next = None;
                tx.put_slot(name, &p.encode())?;
            } else if !RecipientSlot::is_recipient_slot(v) || name == opened {
                tx.put_slot(name, v)?;
            }
            continue;
        };
        let authentic = r.authentic(mac_key, vid, b.epoch, name);
        if !authentic && name != opened {
            continue;
        }
        (r.next, r.next_mac) = (None, None);
        if let (true, Some(mac)) = (authentic, r.mac) {
            live.push((name.clone(), mac));
        }
        tx.put_slot(name, &r.encode())?;
    }
    Ok(live)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::MemoryObjects;
    use crate::remote::bundle::read_bundles;
    use crate::{Argon2Params, CreateOptions, NoProgress};

    /// A vault with a recipient slot "zz-key" for a fresh age identity, pushed to a memory
    /// remote: (dir, identities, the recipient, the remote, its one bundle).
    fn pushed_with_recipient() -> (tempfile::TempDir, Identities, String, MemoryObjects, KeysBundle) {
        use age::secrecy::ExposeSecret;
        let d = tempfile::tempdir().unwrap();
        let pass = Passphrase::new(b"a passphrase for this test".to_vec()).unwrap();
        let argon2 = Argon2Params { memory_kib: 256, time_cost: 1, lanes: 1 };
        let v =
            Vault::create(d.path().join("v.mvault"), &pass, &CreateOptions { argon2, ..Default::default() }).unwrap();
        let id = age::x25519::Identity::generate();
        let r = id.to_public().to_string();
        let ids = Identities::from_bytes(id.to_string().expose_secret().as_bytes(), "the test key").unwrap();
        v.add_recipient_slot("zz-key", &[crate::Recipient::parse(&r).unwrap()]).unwrap();
        let remote = MemoryObjects::new();
        v.push(&remote, "origin", &[], &NoProgress).unwrap();
        let (_, real) = read_bundles(&remote).unwrap().remove(0);
        (d, ids, r, remote, real)
    }

    /// A recipient whose private key nobody here holds (the age specification's example).
    const STRANGER: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

    fn planted_slot(r: &str, plain: &[u8]) -> Vec<u8> {
        let body = crate::crypto::recipient::encrypt(&[crate::Recipient::parse(r).unwrap()], plain).unwrap();
        RecipientSlot { epoch: 1, recipients: vec![r.into()], body, created: 0, next: None, mac: None, next_mac: None }
            .encode()
    }

    #[test]
    fn planted_slots_and_bundles_on_the_remote_neither_lock_a_clone_out_nor_reach_it() {
        let (d, ids, r, remote, real) = pushed_with_recipient();
        // The operator plants, before the real slot, a slot that opens with the clone's key (its
        // public key is all that takes) but carries no key, and an unauthenticated list.
        let mut slots = real.slots.clone();
        slots.insert(0, ("a-planted".into(), planted_slot(&r, b"no key in here")));
        slots.insert(0, ("a-listed".into(), planted_slot(STRANGER, b"x")));
        // And a bundle copying the real slots around a sealed record of its own, named to come
        // first: an exact-copy check must not fold the real bundle into it.
        let mut sealed = real.sealed.clone();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        let fake = KeysBundle { header: real.header.clone(), slots: real.slots.clone(), epoch: real.epoch, sealed };
        let planted = KeysBundle { header: real.header.clone(), slots, epoch: real.epoch, sealed: real.sealed.clone() };
        let bundles = [fake, planted];
        let (b, (name, _, _)) = open_any_identity(&bundles, &ids).unwrap().expect("the real slot opens");
        assert_eq!(name, "zz-key");
        assert!(std::ptr::eq(b, &bundles[1]), "the bundle whose sealed record opens");
        // The bundle with planted slots on the remote in place of the real one: a clone opens
        // through it and keeps the real slots only. (The fake bundle on the remote would stop
        // the pull after: a bundle of this vault that does not open is reported as tampering.)
        for (key, _) in read_bundles(&remote).unwrap() {
            remote.delete(&key).unwrap();
        }
        {
            let bytes = records::encode(&bundles[1]);
            remote.put(&crate::remote::format::content_name(KEYS, &bytes), &bytes).unwrap();
        }
        let path = d.path().join("clone.mvault");
        let (clone, _) =
            Vault::clone_from_identity(&remote, &path, &ids, "origin", &PullOptions::default(), &NoProgress).unwrap();
        assert_eq!(clone.slot_names().unwrap(), vec!["default".to_string(), "zz-key".to_string()]);
        // With only planted slots, the error names the one that opened.
        let only = KeysBundle {
            header: real.header.clone(),
            slots: vec![("a-planted".into(), planted_slot(&r, b"no key in here"))],
            epoch: real.epoch,
            sealed: real.sealed.clone(),
        };
        let e = open_any_identity(std::slice::from_ref(&only), &ids).err().expect("refused");
        assert!(e.to_string().contains("key slot 'a-planted' of the remote's key bundle opens"), "{e}");
        // More recipient slots than a clone tries: a clear error, not "wrong key".
        let many = KeysBundle {
            header: real.header.clone(),
            slots: (0..=MAX_RECIPIENT_SLOTS).map(|i| (format!("s{i:02}"), planted_slot(STRANGER, b"x"))).collect(),
            epoch: real.epoch,
            sealed: real.sealed.clone(),
        };
        let e = open_any_identity(std::slice::from_ref(&many), &ids).err().expect("refused");
        assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
        assert!(e.to_string().contains("none of the first 64 recipient key slots"), "{e}");
    }

    #[test]
    fn many_bundles_share_one_unlock_budget() {
        let d = tempfile::tempdir().unwrap();
        let pass = Passphrase::new(b"a passphrase for this test".to_vec()).unwrap();
        let argon2 = Argon2Params { memory_kib: 256, time_cost: 1, lanes: 1 };
        let v =
            Vault::create(d.path().join("v.mvault"), &pass, &CreateOptions { argon2, ..Default::default() }).unwrap();
        let remote = MemoryObjects::new();
        v.push(&remote, "origin", &[], &NoProgress).unwrap();
        let (_, real) = read_bundles(&remote).unwrap().remove(0);
        // 20 bundles whose one slot is the real one renamed: its wrap's AAD names the slot, so
        // none opens, and each would cost a derivation.
        let planted: Vec<KeysBundle> = (0..20)
            .map(|i| KeysBundle {
                header: real.header.clone(),
                slots: vec![(format!("planted-{i}"), real.slots[0].1.clone())],
                epoch: real.epoch,
                sealed: real.sealed.clone(),
            })
            .collect();
        let (opened, budget) = open_any(&planted, &pass).unwrap();
        assert!(opened.is_none());
        assert_eq!(budget.slots, MAX_UNLOCK_SLOTS, "at most {MAX_UNLOCK_SLOTS} slots over all bundles");
        // The real bundle after the planted ones is then out of budget; first, it opens.
        let mut all = vec![KeysBundle {
            header: real.header.clone(),
            slots: real.slots.clone(),
            epoch: real.epoch,
            sealed: real.sealed.clone(),
        }];
        all.extend(planted);
        let (opened, budget) = open_any(&all, &pass).unwrap();
        assert_eq!(opened.map(|(_, (name, _, _))| name).as_deref(), Some("default"));
        assert_eq!(budget.slots, 1);
    }
}
