//! `rm` and `gc`. Removing a version deletes its record (and the aliases pointing at it); the
//! chunks it alone used stay until `gc`, which deletes every chunk no remaining manifest
//! references (mark and sweep over all manifests) and then compacts the file.
//!
//! Removal is not erasure: freed pages keep their old bytes until reused (see SECURITY.md);
//! `rm --erase` ([`Vault::erase`] in `keys.rs`) removes through the `*_in` forms here, in the
//! transaction that records its intent. Nothing here may commit a caller's transaction.

use crate::log::Op;
use crate::store::chunks::ChunkStore;
use std::collections::HashSet;

use serde::Serialize;

use super::VersionRef;
use super::put::write_model;
use crate::manifest::hex;
use crate::names::escape;
use crate::store::records::{AliasEvent, VersionRecord};
use crate::store::{self, RecordRead, Table};
use crate::vault::{Txn, Unlocked, Vault, now};
use crate::{Error, Result};

/// What `gc` did.
#[derive(Debug, Clone, Serialize)]
pub struct GcReport {
    /// Chunks deleted.
    pub chunks_removed: u64,
    /// Stored bytes of the deleted chunks.
    pub bytes_removed: u64,
    /// Chunks still referenced.
    pub chunks_kept: u64,
    /// Referenced chunks that are missing (one line each, naming model, version and file).
    pub missing: Vec<String>,
    /// Vault file size before, in bytes.
    pub file_bytes_before: u64,
    /// Vault file size after compaction, in bytes.
    pub file_bytes_after: u64,
    /// False when the file was not compacted because another process kept a read open on it
    /// for longer than [`crate::store::COMPACT_WAIT`]: the deleted chunks' pages are free inside
    /// the file (reused by later writes) but the file did not shrink; run `gc` again to shrink
    /// it. A warning says so too.
    pub compacted: bool,
}

impl Vault<Unlocked> {
    /// Removes one version. Aliases pointing at it are removed; if it was the model's last
    /// version, the model's record goes too (a later put of the name starts again at 1).
    ///
    /// Errors: [`Error::ModelNotFound`], [`Error::VersionNotFound`].
    pub fn remove_version(&self, name: &str, r: &VersionRef) -> Result<u64> {
        let mut txn = self.write(Op::Remove)?;
        let version = self.remove_version_in(&mut txn, name, r)?;
        txn.about(Some(name), vec![version], None);
        txn.commit()?;
        Ok(version)
    }

    /// [`Vault::remove_version`] inside `txn`, which the caller commits (`rm --erase` records its
    /// intent in the same transaction). Returns the version removed.
    pub(crate) fn remove_version_in(&self, txn: &mut Txn<'_>, name: &str, r: &VersionRef) -> Result<u64> {
        let mk = self.model_key(name);
        let (mut model, version) = self.resolve(&*txn.tx, name, r)?;
        let origins: Vec<[u8; 32]> = self
            .load_version(&*txn.tx, name, version)
            .ok()
            .map(|(m, _)| crate::remote::state::origin(&m))
            .into_iter()
            .collect();
        crate::remote::removed::record(txn, name, &origins)?;
        txn.tx.remove_version(&mk, version)?;
        model.live.retain(|v| *v != version);
        let remaining = model.live.len();
        let dropped: Vec<String> =
            model.aliases.iter().filter(|(_, v)| **v == version).map(|(a, _)| a.clone()).collect();
        for alias in dropped {
            model.aliases.remove(&alias);
            model.alias_history.push(AliasEvent { alias, from: Some(version), to: None, at: now() });
        }
        if remaining == 0 {
            txn.tx.remove_model(&mk)?;
        } else {
            write_model(txn, &mk, &model)?;
        }
        Ok(version)
    }

    /// Removes a model and all its versions. Returns how many versions were removed.
    ///
    /// Errors: [`Error::ModelNotFound`].
    pub fn remove_model(&self, name: &str) -> Result<u64> {
        let mut txn = self.write(Op::Remove)?;
        let removed = self.remove_model_in(&mut txn, name)?;
        txn.about(Some(name), removed.clone(), None);
        txn.commit()?;
        Ok(removed.len() as u64)
    }

    /// [`Vault::remove_model`] inside `txn`, which the caller commits. Returns the version
    /// numbers removed, in order.
    pub(crate) fn remove_model_in(&self, txn: &mut Txn<'_>, name: &str) -> Result<Vec<u64>> {
        let mk = self.model_key(name);
        self.load_model(&*txn.tx, name)?.ok_or_else(|| Error::ModelNotFound(escape(name)))?;
        let removed = txn.tx.version_numbers(&mk)?;
        let origins: Vec<[u8; 32]> = removed
            .iter()
            .filter_map(|n| self.load_version(&*txn.tx, name, *n).ok())
            .map(|(m, _)| crate::remote::state::origin(&m))
            .collect();
        crate::remote::removed::record(txn, name, &origins)?;
        txn.tx.remove_model(&mk)?;
        for n in &removed {
            txn.tx.remove_version(&mk, *n)?;
        }
        Ok(removed)
    }

    /// Deletes every chunk that no manifest references, then compacts the file. Idempotent: a
    /// second run removes nothing. A referenced chunk that is missing is reported, not fatal.
    ///
    /// Errors: [`Error::Damaged`] if a version record cannot be read, or a model's live versions
    /// and the version records present disagree (gc would not know which chunks it needs, so it
    /// deletes nothing); [`Error::Storage`].
    pub fn gc(&mut self) -> Result<GcReport> {
        self.check_live_records(super::Refused::Op("gc"))?;
        let file_bytes_before = file_len(&self.path);
        let (referenced, wanted) = self.referenced_chunks()?;
        let mut report = GcReport {
            chunks_removed: 0,
            bytes_removed: 0,
            chunks_kept: 0,
            missing: Vec::new(),
            file_bytes_before,
            file_bytes_after: 0,
            compacted: true,
        };
        let txn = self.write(Op::Gc)?;
        {
            // The chunk table itself, not its index, says what is stored; the index is rebuilt
            // from what survives, so gc also repairs an index that disagrees with the chunks.
            let mut chunks = txn.tx.chunks()?;
            let mut doomed = Vec::new();
            let mut kept = Vec::new();
            for (id, len) in chunks.scan_chunks()? {
                if referenced.contains(&id) {
                    report.chunks_kept += 1;
                    kept.push((id, len));
                } else {
                    doomed.push(id);
                    report.bytes_removed += len as u64;
                }
            }
            for id in &doomed {
                chunks.remove(id)?;
            }
            chunks.reindex(&kept)?;
            report.chunks_removed = doomed.len() as u64;
            let kept: HashSet<[u8; 32]> = kept.into_iter().map(|(id, _)| id).collect();
            for (id, owner) in &wanted {
                if !kept.contains(id) {
                    report.missing.push(format!("{owner}: chunk {}… is missing", &hex(id)[..16]));
                }
            }
        }
        txn.commit()?;
        report.compacted = self.db.compact()?;
        if !report.compacted {
            self.warn(format!(
                "the vault file {} was not compacted: another process is reading it; the freed space is reused by later writes, and a later gc shrinks the file",
                self.path.display()
            ));
        }
        report.file_bytes_after = file_len(&self.path);
        Ok(report)
    }
}

impl Vault<Unlocked> {
    /// The chunks the version records present reference, and for each (in first-seen order)
    /// the version and file that references it, for the report of a missing chunk.
    ///
    /// Errors: [`Error::Damaged`] when a version record does not open or check (gc then deletes
    /// nothing); [`Error::Storage`].
    fn referenced_chunks(&self) -> Result<(HashSet<[u8; 32]>, Vec<Wanted>)> {
        let mut referenced: HashSet<[u8; 32]> = HashSet::new();
        let mut wanted = Vec::new();
        let rx = store::read(&self.db)?;
        for (mk, version, v) in rx.all_versions()? {
            let key = store::version_key(&mk, version);
            let what = format!("version record {}…", &hex(&key)[..16]);
            let rec: VersionRecord = self.open_meta(Table::Versions, &key, &what, &v).map_err(|e| {
                Error::Damaged(format!("{e}; gc deleted nothing, since it cannot tell which chunks that version needs"))
            })?;
            let m = crate::manifest::decode_canonical(&what, &rec.manifest)
                .map_err(|e| Error::Damaged(format!("{e}; gc deleted nothing")))?;
            let m = self
                .check_version_record(&what, &m.name, version, &rec)
                .map_err(|e| Error::Damaged(format!("{e}; gc deleted nothing")))?;
            for f in &m.files {
                for c in &f.chunks {
                    if referenced.insert(c.id) {
                        let owner =
                            format!("model '{}' version {} file '{}'", escape(&m.name), m.version, escape(&f.path));
                        wanted.push((c.id, owner));
                    }
                }
            }
        }
        Ok((referenced, wanted))
    }
}

/// A referenced chunk id and the version and file that reference it.
type Wanted = ([u8; 32], String);

fn file_len(p: &std::path::Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}
