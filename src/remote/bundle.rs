//! The key bundles a remote holds (`keys/…`): what lets a second machine with a passphrase
//! become a copy of the vault. Builds the bundle of the vault's current epoch, uploads it when
//! the remote has no bundle with the same slots, header and keys, and refuses a remote that
//! holds another vault. It must never upload a key outside the sealed part of a bundle.

use crate::crypto::SecretKey;
use crate::crypto::keys::RemoteKeys;
use crate::remote::format::{self, KEYS, KeysBundle, KeysRecord, KeysTable, MAX_META_OBJECT, tampered};
use crate::remote::objects::Objects;
use crate::store::records::{self, Header, IndexRecord, SignerRecord};
use crate::store::{self, RecordRead, Table};
use crate::vault::{Unlocked, Vault};
use crate::{Error, Result};

impl Vault<Unlocked> {
    /// The vault's index key IK (opened from its sealed record).
    ///
    /// Errors: [`Error::Damaged`], [`Error::Storage`].
    pub(crate) fn index_key(&self) -> Result<SecretKey> {
        let rx = store::read(&self.db)?;
        let v = rx.meta("index")?.ok_or_else(|| Error::Damaged("the index key record is missing".into()))?;
        let ix: IndexRecord = self.open_meta(Table::Meta, b"index", "index key record", &v)?;
        Ok(SecretKey(ix.key))
    }

    /// The keys of this vault's remotes (SECURITY.md, "Remote").
    ///
    /// Errors: as [`Vault::index_key`].
    pub(crate) fn remote_keys(&self) -> Result<RemoteKeys> {
        Ok(RemoteKeys::derive(&self.index_key()?, &self.header.vault_id))
    }

    /// The key bundle of the current epoch: header, slots, and the sealed index key and signers.
    fn make_bundle(&self) -> Result<(KeysBundle, KeysRecord)> {
        let rx = store::read(&self.db)?;
        let header = rx.header()?.ok_or_else(|| Error::Damaged("the vault header is missing".into()))?;
        let slots = rx.slots()?;
        let mut signers = Vec::new();
        for (id, v) in rx.signers()? {
            let r: SignerRecord = self.open_meta(Table::Signers, &id.to_be_bytes(), "signing key record", &v)?;
            signers.push((id, r));
        }
        let (st, _) =
            self.open_state(&rx.state()?.ok_or_else(|| Error::Damaged("the vault state is missing".into()))?)?;
        let rec = KeysRecord { index_key: *self.index_key()?.expose(), signers, active_signer: st.active_signer };
        let sealed = self.envelope().seal_record(&KeysTable, b"", &rec)?;
        Ok((KeysBundle { header, slots, epoch: self.epoch(), sealed }, rec))
    }

    /// Uploads the current epoch's key bundle unless the remote holds one with the same header,
    /// slots and sealed content. Returns true when it uploaded one.
    ///
    /// Errors: [`Error::InvalidInput`] when the remote holds another vault's bundles;
    /// [`Error::Damaged`] for a bundle of this vault's epoch that opens to another index key;
    /// [`Error::Remote`].
    /// `bundles` is what [`read_bundles`] read from `objects`.
    pub(crate) fn ensure_bundle(&self, objects: &dyn Objects, bundles: &[(String, KeysBundle)]) -> Result<bool> {
        let (mine, rec) = self.make_bundle()?;
        for (key, b) in bundles {
            let h: Header = records::decode("remote key bundle header", &b.header)?;
            if h.vault_id != self.header.vault_id {
                return Err(Error::InvalidInput(format!(
                    "the remote holds vault {}, not this vault ({}): use another remote for this vault",
                    crate::manifest::hex(&h.vault_id),
                    crate::manifest::hex(&self.header.vault_id)
                )));
            }
            if b.epoch != mine.epoch || b.header != mine.header || b.slots != mine.slots {
                continue;
            }
            let theirs: KeysRecord =
                self.envelope().open_record(&KeysTable, b"", &format!("remote key bundle {key}"), &b.sealed)?;
            if theirs.index_key != rec.index_key {
                return Err(tampered(&format!("remote key bundle {key}"), "it holds another index key"));
            }
            let ids = |r: &KeysRecord| r.signers.iter().map(|(i, s)| (*i, s.public, s.retired)).collect::<Vec<_>>();
            if ids(&theirs) == ids(&rec) && theirs.active_signer == rec.active_signer {
                return Ok(false);
            }
        }
        let bytes = records::encode(&mine);
        objects.put(&format::content_name(KEYS, &bytes), &bytes)?;
        Ok(true)
    }
}

/// Every key bundle on `objects` that decodes, with its key (one listing of `keys/`).
///
/// Errors: as [`read_bundle`].
pub(crate) fn read_bundles(objects: &dyn Objects) -> Result<Vec<(String, KeysBundle)>> {
    let mut out = Vec::new();
    for o in objects.list(KEYS)? {
        if let Some(b) = read_bundle(objects, &o.key, o.size)? {
            out.push((o.key, b));
        }
    }
    Ok(out)
}

/// Reads and decodes the bundle `key` (of listed size `size`); `None` for one that does not
/// decode (another build's, or damaged: it is skipped, never trusted).
///
/// Errors: [`Error::Remote`]; [`Error::Damaged`] for one over the size limit.
pub(crate) fn read_bundle(objects: &dyn Objects, key: &str, size: u64) -> Result<Option<KeysBundle>> {
    if size > MAX_META_OBJECT {
        return Err(tampered(&format!("remote key bundle {key}"), "it is over the size limit"));
    }
    let Some(bytes) = objects.get_bounded(key, MAX_META_OBJECT)? else { return Ok(None) };
    if format::content_name(KEYS, &bytes) != key {
        return Ok(None);
    }
    Ok(postcard::from_bytes::<KeysBundle>(&bytes).ok())
}
