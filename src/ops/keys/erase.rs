//! Cryptographic erasure (`rm --erase`, resumable): the removal and a sealed record of the
//! erasure commit together, then `gc` and a rewrite that leaves the record out (see the module
//! docs of `ops::keys` and SECURITY.md). It must never drop that record before the fresh file
//! has replaced the vault.

use crate::log::Op;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::ops::VersionRef;
use crate::store::{self, RecordRead, Table};
use crate::vault::{Unlocked, Vault};

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

impl Vault<Unlocked> {
    /// True while an erasure is unfinished: its versions are removed but the vault file may still
    /// hold their chunks, manifests and records (see [`Vault::resume_erasure`]).
    ///
    /// Errors: [`crate::Error::Storage`].
    pub fn erasure_pending(&self) -> Result<bool> {
        Ok(store::read(&self.db)?.meta(ERASE_KEY)?.is_some())
    }

    /// The unfinished erasure, if any: the model name and the versions it removed.
    ///
    /// Errors: [`crate::Error::Damaged`] if the erasure record does not open; [`crate::Error::Storage`].
    pub fn unfinished_erasure(&self) -> Result<Option<UnfinishedErasure>> {
        let Some(v) = store::read(&self.db)?.meta(ERASE_KEY)? else {
            return Ok(None);
        };
        let rec: EraseIntent = self.open_meta(Table::Meta, ERASE_KEY.as_bytes(), "erasure record", &v)?;
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
    /// Errors: as [`Vault::remove_version`] and [`Vault::gc`]; [`crate::Error::InvalidInput`] during an
    /// unfinished rotation.
    pub fn erase(&mut self, name: &str, r: Option<&VersionRef>) -> Result<EraseReport> {
        self.refuse_during_rotation()?;
        if self.erasure_pending()? {
            self.resume_erasure()?;
        }
        self.check_live_records(crate::ops::Refused::Erase { resuming: false })?;
        let file_bytes_before = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        {
            let mut txn = self.write(Op::Erase)?;
            let versions = match r {
                Some(r) => vec![self.remove_version_in(&mut txn, name, r)?],
                None => self.remove_model_in(&mut txn, name)?,
            };
            self.forget_log_subjects(&mut txn, name, r.map(|_| versions.as_slice()))?;
            let pad = erase_pad(name);
            let intent = EraseIntent { name: name.to_string(), versions, started: crate::vault::now(), pad };
            let v = txn.seal_meta(Table::Meta, ERASE_KEY.as_bytes(), &intent)?;
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
    /// Errors: as [`Vault::gc`]; [`crate::Error::Storage`], [`crate::Error::Io`].
    pub fn resume_erasure(&mut self) -> Result<Option<EraseReport>> {
        if !self.erasure_pending()? {
            return Ok(None);
        }
        // A record that does not open still means "unfinished": finishing needs nothing from it
        // (gc and the rewrite look only at what is live), and refusing would block every write.
        let pending = self.unfinished_erasure().ok().flatten();
        let (name, versions) = pending.map(|p| (p.name, p.versions)).unwrap_or_default();
        self.check_live_records(crate::ops::Refused::Erase { resuming: true })?;
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
