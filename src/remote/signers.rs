//! Signing keys carried by a remote's key bundles: a vault that reads a remote first adopts the
//! signing keys that the remote's bundles of its own key epoch hold and it lacks, so a
//! `signer rotate` on one machine reaches every machine that shares the remote (SECURITY.md,
//! "Remote", "Signing keys on a remote"). A bundle of the vault's epoch opens only under that
//! epoch's keys, so only a holder of the current keys can add a signing key this way.
//!
//! The merge, by public key (ids are each vault's own): a key not known here is added under a
//! fresh local id, with its creation and retirement times; a key retired in any bundle is retired
//! here too; when the active key is then retired, the newest key that is not becomes active. It
//! never removes a key (a retired key still verifies what it signed) and never reads a bundle of
//! another epoch or vault.

use crate::crypto::SecretKey;
use crate::crypto::sign::{ManifestSigner, ManifestVerifier};
use crate::remote::bundle::read_bundles;
use crate::remote::format::{KeysBundle, KeysRecord, KeysTable};
use crate::remote::objects::Objects;
use crate::store::records::{self, Header, SignerRecord};
use crate::store::{self, RecordRead, Table};
use crate::vault::{Unlocked, Vault};
use crate::{Error, Result};

/// What adopting a remote's signing keys changed here.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SignerChanges {
    /// Ed25519 public keys added, in the order they were added (JSON: hex strings).
    #[serde(serialize_with = "hex_list")]
    pub added: Vec<[u8; 32]>,
    /// Public keys retired here because a bundle says they are.
    #[serde(serialize_with = "hex_list")]
    pub retired: Vec<[u8; 32]>,
    /// The key that became active, when the active one was retired.
    #[serde(serialize_with = "hex_opt")]
    pub active: Option<[u8; 32]>,
}

fn hex_list<S: serde::Serializer>(v: &[[u8; 32]], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|k| crate::crypto::sign::hex(k)))
}

fn hex_opt<S: serde::Serializer>(v: &Option<[u8; 32]>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match v {
        Some(k) => s.serialize_some(&crate::crypto::sign::hex(k)),
        None => s.serialize_none(),
    }
}

impl SignerChanges {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.retired.is_empty() && self.active.is_none()
    }
}

/// The merge of `theirs` into `local` (see the module documentation): records to write, by id,
/// the new active id if it changes, and what changed.
struct Plan {
    writes: Vec<(u32, SignerRecord)>,
    active: Option<u32>,
    changes: SignerChanges,
}

fn copy(r: &SignerRecord) -> SignerRecord {
    SignerRecord { seed: r.seed, public: r.public, created: r.created, retired: r.retired }
}

fn plan(local: &[(u32, SignerRecord)], active: u32, next: u32, theirs: &[SignerRecord]) -> Plan {
    let mut all: Vec<(u32, SignerRecord)> = local.iter().map(|(i, r)| (*i, copy(r))).collect();
    let (mut writes, mut changes, mut next) = (Vec::new(), SignerChanges::default(), next);
    for t in theirs {
        match all.iter_mut().find(|(_, r)| r.public == t.public) {
            Some((id, r)) => {
                if r.retired.is_none() && t.retired.is_some() {
                    r.retired = t.retired;
                    changes.retired.push(r.public);
                    writes.push((*id, copy(r)));
                }
            }
            None => {
                all.push((next, copy(t)));
                changes.added.push(t.public);
                writes.push((next, copy(t)));
                next += 1;
            }
        }
    }
    let active_retired = all.iter().any(|(i, r)| *i == active && r.retired.is_some());
    let newest = all.iter().filter(|(_, r)| r.retired.is_none()).max_by_key(|(i, r)| (r.created, *i));
    let active = match newest {
        Some((id, r)) if active_retired => {
            changes.active = Some(r.public);
            Some(*id)
        }
        _ => None,
    };
    Plan { writes, active, changes }
}

impl Vault<Unlocked> {
    /// Adopts the signing keys the key bundles on `objects` of this vault's epoch hold (see the
    /// module documentation). A vault opened read-only learns the public keys for this process
    /// only (a later writer's read of the remote records them).
    ///
    /// Errors: [`Error::Damaged`] for a bundle of this vault and epoch that does not open (it was
    /// tampered with); [`Error::Remote`]; [`Error::Storage`], [`Error::KeyUsageLimit`].
    pub fn adopt_remote_signers(&self, objects: &dyn Objects) -> Result<SignerChanges> {
        self.adopt_signers(&read_bundles(objects)?)
    }

    /// As [`Vault::adopt_remote_signers`], from the bundles [`read_bundles`] read.
    pub(crate) fn adopt_signers(&self, bundles: &[(String, KeysBundle)]) -> Result<SignerChanges> {
        let mut theirs = Vec::new();
        for (key, b) in bundles {
            let h: Header = records::decode("remote key bundle header", &b.header)?;
            if b.epoch != self.epoch() || h.vault_id != self.header.vault_id {
                continue;
            }
            let what = format!("remote key bundle {key}");
            let rec: KeysRecord = self.envelope().open_record(&KeysTable, b"", &what, &b.sealed)?;
            theirs.extend(rec.signers.iter().map(|(_, s)| copy(s)));
        }
        let known = |r: &SignerRecord| self.state.signing.find(&r.public).is_some();
        if theirs.iter().all(known) && !self.retires_any(&theirs)? {
            return Ok(SignerChanges::default());
        }
        if self.db.is_read_only() {
            let mut changes = SignerChanges::default();
            for t in theirs.iter().filter(|t| !known(t)) {
                self.state.signing.learn(ManifestVerifier::new(&t.public).ok_or_else(|| bad_key(&t.public))?);
                changes.added.push(t.public);
            }
            return Ok(changes);
        }
        self.record_signers(&theirs)
    }

    /// True when a key of `theirs` is retired there and not here.
    fn retires_any(&self, theirs: &[SignerRecord]) -> Result<bool> {
        let rx = store::read(&self.db)?;
        for (id, v) in rx.signers()? {
            let r: SignerRecord = self.open_meta(Table::Signers, &id.to_be_bytes(), "signing key record", &v)?;
            if r.retired.is_none() && theirs.iter().any(|t| t.public == r.public && t.retired.is_some()) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Writes the merge of `theirs` in one transaction and applies it to the keys in memory.
    fn record_signers(&self, theirs: &[SignerRecord]) -> Result<SignerChanges> {
        let mut txn = self.write(crate::log::Op::RemoteSigners)?;
        let mut local = Vec::new();
        for (id, v) in txn.tx.signers()? {
            local.push((id, self.open_meta(Table::Signers, &id.to_be_bytes(), "signing key record", &v)?));
        }
        let p = plan(&local, txn.state.active_signer, txn.state.next_signer, theirs);
        for (id, r) in &p.writes {
            ManifestVerifier::new(&r.public).ok_or_else(|| bad_key(&r.public))?;
            txn.put_signer(*id, r)?;
        }
        let next = p.writes.iter().map(|(i, _)| i + 1).max().unwrap_or(0);
        txn.state.next_signer = txn.state.next_signer.max(next);
        if let Some(id) = p.active {
            txn.state.active_signer = id;
        }
        txn.commit()?;
        for (_, r) in &p.writes {
            self.state.signing.learn(ManifestVerifier::new(&r.public).ok_or_else(|| bad_key(&r.public))?);
        }
        if let Some(id) = p.active {
            let r =
                p.writes.iter().map(|(i, r)| (*i, r)).chain(local.iter().map(|(i, r)| (*i, r))).find(|(i, _)| *i == id);
            let r = r.ok_or_else(|| Error::Damaged("the signing key made active has no record".into()))?.1;
            self.state.signing.set_active(ManifestSigner::from_seed(&SecretKey(r.seed)));
        }
        Ok(p.changes)
    }
}

fn bad_key(public: &[u8; 32]) -> Error {
    Error::Damaged(format!(
        "a remote key bundle holds signing key {}…, which is not a valid Ed25519 key: the remote was tampered with",
        &crate::manifest::hex(public)[..16]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(b: u8, created: u64, retired: Option<u64>) -> SignerRecord {
        SignerRecord { seed: [b; 32], public: [b; 32], created, retired }
    }

    #[test]
    fn a_rotation_elsewhere_adds_the_new_key_retires_the_old_and_makes_the_new_active() {
        let local = vec![(0, rec(1, 10, None))];
        let theirs = vec![rec(1, 10, Some(20)), rec(2, 20, None)];
        let p = plan(&local, 0, 1, &theirs);
        assert_eq!(p.changes.added, vec![[2; 32]]);
        assert_eq!(p.changes.retired, vec![[1; 32]]);
        assert_eq!(p.changes.active, Some([2; 32]));
        assert_eq!(p.active, Some(1));
        assert_eq!(
            p.writes.iter().map(|(i, r)| (*i, r.public[0], r.retired)).collect::<Vec<_>>(),
            vec![(0, 1, Some(20)), (1, 2, None)]
        );
    }

    #[test]
    fn two_rotations_keep_each_active_key_and_know_both_and_nothing_twice() {
        // Here: 1 retired, 3 active (id 1). There: 1 retired, 2 active (their id 1 too).
        let local = vec![(0, rec(1, 10, Some(30))), (1, rec(3, 30, None))];
        let theirs = vec![rec(1, 10, Some(20)), rec(2, 20, None)];
        let p = plan(&local, 1, 2, &theirs);
        assert_eq!(p.changes.added, vec![[2; 32]]);
        assert!(p.changes.retired.is_empty() && p.active.is_none(), "the active key here is not retired");
        assert_eq!(p.writes.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![2], "a fresh local id");
        let again = plan(&[(0, rec(1, 10, Some(30))), (1, rec(3, 30, None)), (2, rec(2, 20, None))], 1, 3, &theirs);
        assert!(again.changes.is_empty() && again.writes.is_empty());
    }
}
