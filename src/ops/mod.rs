//! User operations, one file each, as methods on [`Vault<Unlocked>`]. This module holds what they
//! share: version references, and loading a model or a version with every check applied
//! (authentication, signature, canonical encoding, and that the manifest is the one stored here).

pub mod allow;
pub mod diff;
pub mod forget;
pub mod get;
#[cfg(unix)]
pub mod hf;
#[cfg(unix)]
pub mod hf_export;
pub(crate) mod input;
pub mod inspect;
pub mod keys;
pub mod list;
pub mod log;
pub mod ondemand;
pub mod outfile;
pub mod put;
pub mod query;
pub mod range;
pub(crate) mod reader;
pub mod remote;
pub mod remove;
pub mod scan;
pub mod signers;
pub mod stats;
pub mod tensor_get;
pub mod update;
pub mod verify;

use serde::Serialize;

use crate::crypto::sign;
use crate::manifest::{self, Manifest};
use crate::names::{self, escape};
use crate::store::records::{ModelRecord, VersionRecord};
use crate::store::{self, RecordRead, Table};
use crate::vault::{Unlocked, Vault};
use crate::{Error, Result};

/// Which version of a model: the latest, a number, or an alias.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum VersionRef {
    /// The highest version number present.
    Latest,
    /// A version number.
    Number(u64),
    /// An alias.
    Alias(String),
}

impl std::fmt::Display for VersionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VersionRef::Latest => f.write_str("latest"),
            VersionRef::Number(n) => write!(f, "{n}"),
            VersionRef::Alias(a) => f.write_str(a),
        }
    }
}

/// Parses `NAME`, `NAME@N` or `NAME@ALIAS`, checking the name and alias rules.
///
/// Errors: [`Error::InvalidName`], or [`Error::InvalidInput`] for an empty reference.
pub fn parse_spec(spec: &str) -> Result<(String, VersionRef)> {
    let (name, r) = match spec.split_once('@') {
        Some((n, r)) => (n, Some(r)),
        None => (spec, None),
    };
    names::check_model_name(name)?;
    let r = match r {
        None => VersionRef::Latest,
        Some("") => {
            return Err(Error::InvalidInput(format!("'{}' has an empty version after '@'", escape(spec))));
        }
        Some(r) if r.bytes().all(|b| b.is_ascii_digit()) => {
            VersionRef::Number(r.parse().map_err(|_| Error::InvalidInput(format!("version '{r}' is too large")))?)
        }
        Some(r) => {
            names::check_alias(r)?;
            VersionRef::Alias(r.to_string())
        }
    };
    Ok((name.to_string(), r))
}

/// The action [`Vault::check_live_records`] refuses: one named by its operation (`gc`, `key
/// rotate`), or an erasure (started, or being finished).
pub(crate) enum Refused {
    /// An operation, named as the library names it.
    Op(&'static str),
    /// An erasure; `resuming` when finishing one.
    Erase {
        /// True when finishing an unfinished erasure.
        resuming: bool,
    },
}

impl Vault<Unlocked> {
    /// The record key of a model name.
    pub(crate) fn model_key(&self, name: &str) -> [u8; 32] {
        self.state.index.name_key(name)
    }

    /// True when the file has both the model and the version table (a fresh or damaged file may
    /// lack them: every model is then absent).
    ///
    /// Errors: [`Error::Storage`].
    pub(crate) fn has_model_tables(&self, rx: &impl RecordRead) -> Result<bool> {
        Ok(rx.has_table(Table::Models)? && rx.has_table(Table::Versions)?)
    }

    /// Fails with [`Vault::model_absent`] for `name` when the file lacks the model or the
    /// version table (a fresh or damaged file: it has no model).
    ///
    /// Errors: that error; [`Error::Storage`].
    pub(crate) fn require_model_tables(&self, rx: &impl RecordRead, name: &str) -> Result<()> {
        if self.has_model_tables(rx)? { Ok(()) } else { Err(self.model_absent(name)) }
    }

    /// Loads a model record, or `None` if there is no model of that name.
    pub(crate) fn load_model(&self, rx: &impl RecordRead, name: &str) -> Result<Option<ModelRecord>> {
        let key = self.model_key(name);
        let Some(v) = rx.model(&key)? else {
            return Ok(None);
        };
        let what = format!("model '{}' record", escape(name));
        let rec: ModelRecord = self.open_model(&key, &what, &v)?;
        if rec.name != name {
            return Err(Error::Damaged(format!(
                "{what} holds the name '{}': the vault was tampered with",
                escape(&rec.name)
            )));
        }
        Ok(Some(rec))
    }

    /// The error for a model `name` without a record: [`Error::ModelNotFound`], or
    /// [`Error::Damaged`] when the sealed state says model records are missing (see
    /// [`Vault::model_set_problem`]).
    pub(crate) fn model_absent(&self, name: &str) -> Error {
        match self.model_set_problem() {
            Ok(None) => Error::ModelNotFound(escape(name)),
            Ok(Some(p)) => Error::Damaged(format!("model '{}' has no record, and {p}", escape(name))),
            Err(e) => e,
        }
    }

    /// The version numbers of `model` (key `mk`) that are live: the sealed list of a format 3
    /// record, or for a record written before, the version records present. Ascending.
    pub(crate) fn live_versions(&self, rx: &impl RecordRead, mk: &[u8; 32], model: &ModelRecord) -> Result<Vec<u64>> {
        if !model.legacy {
            return Ok(model.live.clone());
        }
        rx.version_numbers(mk)
    }

    /// Every disagreement between the live versions `model` records and the version records
    /// present, as (version, what is wrong). Empty for a record written before format 3.
    ///
    /// Errors: [`Error::Storage`].
    pub(crate) fn live_mismatches(
        &self,
        rx: &impl RecordRead,
        mk: &[u8; 32],
        model: &ModelRecord,
    ) -> Result<Vec<(u64, String)>> {
        if model.legacy {
            return Ok(Vec::new());
        }
        let present = rx.version_numbers(mk)?;
        let mut out = Vec::new();
        for v in &model.live {
            if present.binary_search(v).is_err() {
                out.push((*v, missing_version(&model.name, *v)));
            }
        }
        for v in &present {
            if model.live.binary_search(v).is_err() {
                out.push((*v, unlisted_version(&model.name, *v)));
            }
        }
        out.sort_by_key(|(v, _)| *v);
        Ok(out)
    }

    /// Refuses, before `action` deletes chunks or rewrites the file, when any model's live
    /// versions disagree with the version records present: chunks are marked from the version
    /// records present, so a dropped record would make its chunks garbage, deleted for good.
    /// A model record that does not open is left to the action's own checks.
    ///
    /// Errors: [`Error::Damaged`] naming the model and version; [`Error::Storage`].
    pub(crate) fn check_live_records(&self, action: Refused) -> Result<()> {
        let rx = store::read(&self.db)?;
        if !self.has_model_tables(&rx)? {
            return Ok(());
        }
        for (key, v) in rx.models()? {
            let Ok(rec) = self.open_model(&key, "a model record", &v) else {
                continue;
            };
            if let Some((_, m)) = self.live_mismatches(&rx, &key, &rec)?.into_iter().next() {
                return Err(match action {
                    Refused::Op(op) => Error::Damaged(format!(
                        "{m}; {op} refused: nothing was deleted; restore the record from a backup"
                    )),
                    Refused::Erase { resuming } => {
                        Error::Damaged(m).with_remedy(crate::Remedy::RestoreBeforeErasing { resuming })
                    }
                });
            }
        }
        Ok(())
    }

    /// Resolves a reference to (model record, version number), among the live versions the
    /// model record lists.
    ///
    /// Errors: [`Error::ModelNotFound`], [`Error::VersionNotFound`]; [`Error::Damaged`] when the
    /// version resolved is recorded as live but its record is missing, has a record without
    /// being live, or when model records are missing (see [`Vault::model_absent`]).
    pub(crate) fn resolve(&self, rx: &impl RecordRead, name: &str, r: &VersionRef) -> Result<(ModelRecord, u64)> {
        let Some(model) = self.load_model(rx, name)? else {
            return Err(self.model_absent(name));
        };
        let mk = self.model_key(name);
        let not_found = || Error::VersionNotFound { name: escape(name), reference: r.to_string() };
        let live = self.live_versions(rx, &mk, &model)?;
        let version = match r {
            VersionRef::Latest => *live.last().ok_or_else(not_found)?,
            VersionRef::Number(n) => *n,
            VersionRef::Alias(a) => *model.aliases.get(a).ok_or_else(not_found)?,
        };
        let is_live = live.binary_search(&version).is_ok();
        let has_record = rx.version(&mk, version)?.is_some();
        match (is_live, has_record) {
            (true, true) => Ok((model, version)),
            (true, false) => Err(Error::Damaged(missing_version(name, version))),
            (false, true) => Err(Error::Damaged(unlisted_version(name, version))),
            (false, false) => match r {
                VersionRef::Alias(a) => Err(Error::Damaged(format!(
                    "model '{}': alias '{}' points at version {version}, which is not recorded as live: the vault is damaged or was tampered with",
                    escape(name),
                    escape(a)
                ))),
                _ => Err(not_found()),
            },
        }
    }

    /// Loads and checks one version's manifest (the caller has resolved it among the live ones): the record authenticates, the signature verifies
    /// (`verify_strict`) under one of this vault's signing keys, the encoding is canonical, and
    /// the manifest names this vault, this model and this version.
    ///
    /// Errors: [`Error::VersionNotFound`], [`Error::Damaged`], [`Error::BadSignature`].
    pub(crate) fn load_version(
        &self,
        rx: &impl RecordRead,
        name: &str,
        version: u64,
    ) -> Result<(Manifest, VersionRecord)> {
        let mk = self.model_key(name);
        let v = rx
            .version(&mk, version)?
            .ok_or_else(|| Error::VersionNotFound { name: escape(name), reference: version.to_string() })?;
        let what = format!("model '{}' version {version}", escape(name));
        let key = store::version_key(&mk, version);
        let rec: VersionRecord = self.open_meta(Table::Versions, &key, &what, &v)?;
        let m = self.check_version_record(&what, name, version, &rec)?;
        Ok((m, rec))
    }

    /// The checks of [`Self::load_version`] on an already-opened record.
    pub(crate) fn check_version_record(
        &self,
        what: &str,
        name: &str,
        version: u64,
        rec: &VersionRecord,
    ) -> Result<Manifest> {
        let sig: [u8; sign::SIGNATURE_LEN] = rec
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| Error::Damaged(format!("{what}: signature has {} bytes, not 64", rec.signature.len())))?;
        let bad = || Error::BadSignature { name: escape(name), version };
        let Some(verifier) = self.state.signing.find(&rec.signer) else {
            return Err(bad());
        };
        if !verifier.verify(&rec.manifest, &sig) {
            return Err(bad());
        }
        let m = manifest::decode_canonical(what, &rec.manifest)?;
        if m.vault_id != self.header.vault_id || m.name != name || m.version != version {
            return Err(Error::Damaged(format!(
                "{what}: the stored manifest is for model '{}' version {} of another place: a manifest was swapped in; the vault was tampered with",
                escape(&m.name),
                m.version
            )));
        }
        m.check()?;
        Ok(m)
    }
}

fn missing_version(name: &str, v: u64) -> String {
    format!(
        "model '{}': version {v} is recorded as live but its record is missing: the vault is damaged or was tampered with; restore it from a backup",
        escape(name)
    )
}

fn unlisted_version(name: &str, v: u64) -> String {
    format!(
        "model '{}': version {v} has a record but is not recorded as live (a removed version's record was put back): the vault was tampered with",
        escape(name)
    )
}
