//! The metadata snapshot: every model record and every version manifest of the vault (or of one
//! model), each authenticated and signature-checked, read in one read transaction
//! ([`Snapshot`], built by [`Vault::snapshot`]). `query`, `ls`, `stats`, `similar` and `families`
//! all read the vault's metadata through it, so every reader sees the same live versions.
//!
//! This module owns reading the metadata records from storage for those readers. It must never
//! write to the vault, never put a record that failed a check into the snapshot (such a record
//! becomes a line in [`Snapshot::problems`]), and never read model data (chunks).

use crate::manifest::{Manifest, hex};
use crate::names::escape;
use crate::ops::list::{Listing, ModelInfo, version_info};
use crate::store::records::{ModelRecord, VersionRecord};
use crate::store::{self, RecordRead, Table};
use crate::vault::{Unlocked, Vault};
use crate::{Error, Result};

/// One model with every version that loaded and checked.
#[derive(Debug, Clone)]
pub(crate) struct SnapModel {
    pub rec: ModelRecord,
    /// (manifest, signer public key), in version order.
    pub versions: Vec<(Manifest, [u8; 32])>,
}

/// Every model record and checked manifest, read in one read transaction.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    /// Models in name order.
    pub models: Vec<SnapModel>,
    /// One line per record that could not be read (as [`Listing::problems`]).
    pub problems: Vec<String>,
}

impl Snapshot {
    /// The same listing [`Vault::list`] gives for this snapshot.
    pub fn listing(&self) -> Listing {
        Listing {
            models: self
                .models
                .iter()
                .map(|m| ModelInfo {
                    name: m.rec.name.clone(),
                    created: m.rec.created,
                    description: m.rec.description.clone(),
                    aliases: m.rec.aliases.clone(),
                    versions: m.versions.iter().map(|(man, s)| version_info(man, &m.rec, s)).collect(),
                })
                .collect(),
            problems: self.problems.clone(),
        }
    }
}

impl Vault<Unlocked> {
    /// Reads every model record (or only `name`'s) and every version manifest, each
    /// authenticated and signature-checked as in [`Vault::list`]. Damaged records become
    /// problems, as there, and so are live versions without a record, version records that are
    /// not live (left out of the snapshot) and, for the whole vault, missing or put-back model
    /// records ([`Vault::model_set_problem`]): every reader sees the same live versions. Manifests
    /// are opened and checked on up to 4 threads.
    ///
    /// Errors: [`Error::ModelNotFound`] when `name` is given and absent; [`Error::Storage`].
    pub(crate) fn snapshot(&self, name: Option<&str>) -> Result<Snapshot> {
        let rx = store::read(&self.db)?;
        let mut snap = Snapshot { models: Vec::new(), problems: Vec::new() };
        if !self.has_model_tables(&rx)? {
            return match name {
                Some(n) => Err(Error::ModelNotFound(escape(n))),
                None => Ok(snap),
            };
        };
        let mut records = Vec::new();
        if let Some(n) = name {
            crate::names::check_model_name(n)?;
            let rec = self.load_model(&rx, n)?.ok_or_else(|| Error::ModelNotFound(escape(n)))?;
            records.push((self.model_key(n), rec));
        } else {
            for (key, v) in rx.models()? {
                match self.open_model(&key, "a model record", &v) {
                    Ok(rec) if self.model_key(&rec.name) == key => records.push((key, rec)),
                    Ok(rec) => snap.problems.push(format!(
                        "model record {}… holds the name '{}' of another record: the vault was tampered with",
                        &hex(&key)[..16],
                        escape(&rec.name)
                    )),
                    Err(e) => snap.problems.push(format!("model record {}…: {e}", &hex(&key)[..16])),
                }
            }
        }
        // Copy the sealed version records out, then open and check them in parallel: the
        // Ed25519 check dominates (about 50 µs a version).
        // Only live versions are read: a version record that is not live (a removed version's
        // record put back) and a live version without a record are problems, as in `ls`.
        let mut raw: Vec<(usize, u64, [u8; 40], Vec<u8>)> = Vec::new();
        for (i, (mk, rec)) in records.iter().enumerate() {
            let bad = self.live_mismatches(&rx, mk, rec)?;
            let live = self.live_versions(&rx, mk, rec)?;
            snap.problems.extend(bad.into_iter().map(|(_, m)| m));
            for (ver, v) in rx.versions(mk)? {
                if live.binary_search(&ver).is_ok() {
                    raw.push((i, ver, store::version_key(mk, ver), v));
                }
            }
        }
        drop(rx);
        if name.is_none() {
            snap.problems.extend(self.model_set_problem()?);
        }
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 4);
        let per = raw.len().div_ceil(threads).max(256);
        let recs = &records;
        let checked: Vec<Result<(Manifest, [u8; 32])>> = std::thread::scope(|s| {
            let handles: Vec<_> = raw
                .chunks(per)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .map(|(i, ver, key, sealed)| {
                                let name = &recs[*i].1.name;
                                let what = format!("model '{}' version {ver}", escape(name));
                                let rec: VersionRecord = self.open_meta(Table::Versions, key, &what, sealed)?;
                                let m = self.check_version_record(&what, name, *ver, &rec)?;
                                Ok((m, rec.signer))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().expect("manifest check does not panic")).collect()
        });
        let mut out: Vec<SnapModel> =
            records.into_iter().map(|(_, rec)| SnapModel { rec, versions: Vec::new() }).collect();
        for ((i, ..), r) in raw.iter().zip(checked) {
            match r {
                Ok(v) => out[*i].versions.push(v),
                Err(e) => snap.problems.push(e.to_string()),
            }
        }
        out.sort_by(|a, b| a.rec.name.cmp(&b.rec.name));
        snap.models = out;
        Ok(snap)
    }
}
