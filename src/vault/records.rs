//! Opening the vault's sealed records through its envelope (the state, model records, metadata
//! records; the epoch a value names picks the keys: [`crate::store::envelope`]), and checking that the model records present
//! are the set the sealed state records. It must never return a record that did not
//! authenticate, or name a storage table.

use std::sync::atomic::Ordering;

use serde::de::DeserializeOwned;

use super::{Unlocked, Vault};
use crate::store::records::{self, State};
use crate::store::{self, RecordRead, Table};
use crate::{Error, Result};

impl Vault<Unlocked> {
    /// Opens the sealed state record: `(state, true)` for format 3, `(state, false)` before.
    pub(crate) fn open_state(&self, value: &[u8]) -> Result<(State, bool)> {
        self.envelope().open_record_with(&Table::Meta, b"state", "vault state record", value, |b| {
            records::decode_state("vault state record", b)
        })
    }

    /// Opens a stored model record of key `key` (format 1 or 2 encodings only while the vault
    /// itself is of that format).
    ///
    /// Errors: [`Error::Damaged`] naming `what`.
    pub(crate) fn open_model(&self, key: &[u8; 32], what: &str, value: &[u8]) -> Result<records::ModelRecord> {
        let legacy_ok = self.state.legacy.load(Ordering::Acquire);
        self.envelope()
            .open_record_with(&Table::Models, key, what, value, |b| records::decode_model(what, b, legacy_ok))
    }

    /// In a read snapshot of its own: `Some(description)` when the model records present do not
    /// match the live models the sealed state records (a model's records were deleted, or an
    /// older one put back), `None` when they match or the vault is not yet of format 3.
    ///
    /// Errors: [`Error::Damaged`] for a missing or unreadable state; [`Error::Storage`].
    pub(crate) fn model_set_problem(&self) -> Result<Option<String>> {
        let rx = store::read(&self.db)?;
        rx.require(Table::Meta, "reading vault state")?;
        let v = rx
            .state()?
            .ok_or_else(|| Error::Damaged("the vault state record is missing: the vault is damaged".into()))?;
        let (state, current) = self.open_state(&v)?;
        if !current {
            return Ok(None);
        }
        if !rx.has_table(Table::Models)? {
            return Ok((state.live_models != 0).then(|| set_message(state.live_models, 0)));
        }
        model_set_damage(&state, &rx)
    }

    /// Opens a stored sealed metadata record of `table`/`key`.
    ///
    /// Errors: [`Error::Damaged`] naming `what`.
    pub(crate) fn open_meta<T: DeserializeOwned>(
        &self,
        table: Table,
        key: &[u8],
        what: &str,
        value: &[u8],
    ) -> Result<T> {
        self.envelope().open_record(&table, key, what, value)
    }

    /// The envelope that seals under the current epoch and opens values of the current epoch
    /// and, during a rotation, of the one rotated away from.
    pub(crate) fn envelope(&self) -> crate::store::envelope::Envelope<'_> {
        crate::store::envelope::Envelope::new(self.header.vault_id, &self.state.keys, self.state.prev.as_ref())
    }
}

/// Compares the model records present with the live-model count and digest of `state`.
pub(super) fn model_set_damage(state: &State, rx: &impl RecordRead) -> Result<Option<String>> {
    let (n, digest) = models_now(rx)?;
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

/// Count and [`records::models_digest`] of the model record keys present.
pub(super) fn models_now(rx: &impl RecordRead) -> Result<(u64, [u8; 32])> {
    let keys = rx.model_keys()?;
    Ok((keys.len() as u64, records::models_digest(keys.iter())))
}
