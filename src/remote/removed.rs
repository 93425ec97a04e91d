//! The local record of removals a push carries to a remote (`meta`/`"remote-removed"`, sealed):
//! for each model name, the origins ([`crate::remote::state::origin`]) of the versions `rm`
//! removed here. A push turns each into a `Remove` entry for the remote version of that origin
//! (whatever number the remote gave it), and a pull never brings such a version back. It must
//! never name a version by number alone (numbers move when the remote renumbers), and never be
//! stored unsealed.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::Result;
use crate::store::{self, RecordRead, Table};
use crate::vault::{Txn, Unlocked, Vault};

/// The record key of the sealed record of removals.
pub const REMOVED_KEY: &str = "remote-removed";

/// Model name → origins of the versions removed locally.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RemovedRecord {
    /// Model name → origins removed.
    pub models: BTreeMap<String, BTreeSet<[u8; 32]>>,
}

fn load_from(vault: &Vault<Unlocked>, rx: &impl RecordRead) -> Result<RemovedRecord> {
    match rx.meta(REMOVED_KEY)? {
        None => Ok(RemovedRecord::default()),
        Some(v) => vault.open_meta(Table::Meta, REMOVED_KEY.as_bytes(), "record of removed versions", &v),
    }
}

/// The removals this vault made.
///
/// Errors: [`crate::Error::Damaged`] for a record that does not open; [`crate::Error::Storage`].
pub fn load(vault: &Vault<Unlocked>) -> Result<RemovedRecord> {
    load_from(vault, &store::read(&vault.db)?)
}

/// Adds the origins `removed` of model `name` to the record, inside `txn`.
///
/// Errors: [`crate::Error::Damaged`], [`crate::Error::Storage`], [`crate::Error::KeyUsageLimit`].
pub(crate) fn record(txn: &mut Txn<'_>, name: &str, removed: &[[u8; 32]]) -> Result<()> {
    if removed.is_empty() {
        return Ok(());
    }
    let mut rec = load_from(txn.vault, &*txn.tx)?;
    rec.models.entry(name.to_string()).or_default().extend(removed.iter().copied());
    let sealed = txn.seal_meta(Table::Meta, REMOVED_KEY.as_bytes(), &rec)?;
    txn.put_plain_meta(REMOVED_KEY, &sealed)
}
