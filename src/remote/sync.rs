//! The local side of a sync: loading the versions a push or pull is about (every check a read
//! applies), giving local versions the numbers the remote gave them, and writing versions and
//! model state taken from a remote. It must never write a version record that did not pass the
//! signature and manifest checks, nor leave a model record whose live list disagrees with its
//! version records.

use std::collections::BTreeMap;

use crate::manifest::Manifest;
use crate::names::escape;
use crate::ops::VersionRef;
use crate::ops::put::{write_model, write_version};
use crate::store::records::{ModelRecord, VersionRecord};
use crate::store::{self, RecordRead, Table};
use crate::vault::{Txn, Unlocked, Vault};
use crate::{Error, Result};

/// A local model and the versions selected of it (number, record, checked manifest).
pub struct LocalModel {
    /// The model name.
    pub name: String,
    /// Its record.
    pub record: ModelRecord,
    /// The selected live versions, ascending.
    pub versions: Vec<(u64, VersionRecord, Manifest)>,
}

/// A local version to be given another number, with its record signed for that number.
#[derive(Debug, Clone)]
pub struct Renumber {
    /// The model name.
    pub name: String,
    /// The local number now.
    pub from: u64,
    /// The number the remote gives it.
    pub to: u64,
    /// Its record under `to`.
    pub record: VersionRecord,
}

/// The local models and versions `specs` select (every live version of every model when empty).
///
/// Errors: [`Error::ModelNotFound`], [`Error::VersionNotFound`], [`Error::Damaged`],
/// [`Error::BadSignature`], [`Error::Storage`].
pub fn local_models(vault: &Vault<Unlocked>, specs: &[(String, VersionRef)]) -> Result<Vec<LocalModel>> {
    let rx = store::read(&vault.db)?;
    let mut wanted: BTreeMap<String, Option<Vec<u64>>> = BTreeMap::new();
    if specs.is_empty() {
        for (key, v) in rx.models()? {
            let rec = vault.open_model(&key, "a model record", &v)?;
            wanted.insert(rec.name, None);
        }
    }
    for (name, r) in specs {
        if *r == VersionRef::Latest {
            wanted.insert(name.clone(), None); // NAME alone: every live version
            continue;
        }
        let (_, n) = vault.resolve(&rx, name, r)?;
        if let Some(list) = wanted.entry(name.clone()).or_insert_with(|| Some(Vec::new())) {
            list.push(n);
        }
    }
    let mut out = Vec::new();
    for (name, only) in wanted {
        let record = vault.load_model(&rx, &name)?.ok_or_else(|| vault.model_absent(&name))?;
        let mk = vault.model_key(&name);
        let mut versions = Vec::new();
        for n in vault.live_versions(&rx, &mk, &record)? {
            if only.as_ref().is_some_and(|o| !o.contains(&n)) {
                continue;
            }
            let (m, rec) = vault.load_version(&rx, &name, n)?;
            versions.push((n, rec, m));
        }
        out.push(LocalModel { name, record, versions });
    }
    Ok(out)
}

/// Gives local versions their new numbers inside `txn`: every old record is removed before any
/// new one is written, the live list, aliases and next number follow.
///
/// Errors: [`Error::Damaged`], [`Error::Storage`], [`Error::KeyUsageLimit`].
pub fn renumber_local(txn: &mut Txn<'_>, renumber: &[Renumber]) -> Result<()> {
    let mut by_model: BTreeMap<&str, Vec<&Renumber>> = BTreeMap::new();
    for r in renumber {
        by_model.entry(&r.name).or_default().push(r);
    }
    for (name, rs) in by_model {
        let vault = txn.vault;
        let mk = vault.model_key(name);
        let mut model = vault.load_model(&*txn.tx, name)?.ok_or_else(|| Error::ModelNotFound(escape(name)))?;
        for r in &rs {
            txn.tx.remove_version(&mk, r.from)?;
        }
        let moved: BTreeMap<u64, u64> = rs.iter().map(|r| (r.from, r.to)).collect();
        for r in &rs {
            put_record(txn, &mk, r.to, &r.record)?;
        }
        for v in model.live.iter_mut() {
            *v = *moved.get(v).unwrap_or(v);
        }
        model.live.sort_unstable();
        model.live.dedup();
        for v in model.aliases.values_mut() {
            *v = *moved.get(v).unwrap_or(v);
        }
        model.next_version = model.next_version.max(rs.iter().map(|r| r.to + 1).max().unwrap_or(0));
        write_model(txn, &mk, &model)?;
    }
    Ok(())
}

/// Seals and writes a version record as given (already signed and checked).
pub fn put_record(txn: &mut Txn<'_>, mk: &[u8; 32], n: u64, rec: &VersionRecord) -> Result<()> {
    let sealed = txn.seal_meta(Table::Versions, &store::version_key(mk, n), rec)?;
    txn.tx.put_version(mk, n, &sealed)
}

/// Moves a local version that is not on the remote out of the way of a remote version with the
/// same number: it is signed again under the next free number. Returns that number.
///
/// Errors: as [`renumber_local`].
pub fn move_aside(txn: &mut Txn<'_>, name: &str, from: u64, m: &Manifest, above: u64) -> Result<u64> {
    let vault = txn.vault;
    let model = vault.load_model(&*txn.tx, name)?.ok_or_else(|| Error::ModelNotFound(escape(name)))?;
    let to = model.next_version.max(above + 1).max(model.live.iter().max().map_or(0, |v| v + 1));
    let mut m = m.clone();
    m.version = to;
    let mk = vault.model_key(name);
    write_version(txn, &mk, &m)?;
    txn.tx.remove_version(&mk, from)?;
    let mut model = model;
    for v in model.live.iter_mut().filter(|v| **v == from) {
        *v = to;
    }
    model.live.sort_unstable();
    for v in model.aliases.values_mut().filter(|v| **v == from) {
        *v = to;
    }
    model.next_version = to + 1;
    write_model(txn, &mk, &model)?;
    Ok(to)
}
