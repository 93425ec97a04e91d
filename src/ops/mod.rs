//! User operations, one file each, as methods on [`Vault<Unlocked>`]. This module holds what they
//! share: version references, and loading a model or a version with every check applied
//! (authentication, signature, canonical encoding, and that the manifest is the one stored here).

pub mod allow;
pub mod diff;
pub mod get;
pub(crate) mod input;
pub mod inspect;
pub mod keys;
pub mod list;
pub mod outfile;
pub mod put;
pub mod query;
pub mod remove;
pub mod signers;
pub mod stats;
pub mod tensor_get;
pub mod update;
pub mod verify;

use redb::ReadableTable;
use serde::Serialize;

use crate::crypto::sign;
use crate::manifest::{self, Manifest};
use crate::names::{self, escape};
use crate::store;
use crate::store::records::{ModelRecord, VersionRecord};
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

impl Vault<Unlocked> {
    /// The record key of a model name.
    pub(crate) fn model_key(&self, name: &str) -> [u8; 32] {
        self.state.index.name_key(name)
    }

    /// Loads a model record, or `None` if there is no model of that name.
    pub(crate) fn load_model(
        &self,
        models: &impl ReadableTable<&'static [u8; 32], &'static [u8]>,
        name: &str,
    ) -> Result<Option<ModelRecord>> {
        let key = self.model_key(name);
        let Some(v) = models.get(&key).map_err(|e| Error::storage("reading a model record", e))? else {
            return Ok(None);
        };
        let what = format!("model '{}' record", escape(name));
        let rec: ModelRecord = self.open_meta("models", &key, &what, v.value())?;
        if rec.name != name {
            return Err(Error::Damaged(format!(
                "{what} holds the name '{}': the vault was tampered with",
                escape(&rec.name)
            )));
        }
        Ok(Some(rec))
    }

    /// Resolves a reference to (model record, version number).
    ///
    /// Errors: [`Error::ModelNotFound`], [`Error::VersionNotFound`].
    pub(crate) fn resolve(
        &self,
        models: &impl ReadableTable<&'static [u8; 32], &'static [u8]>,
        versions: &impl ReadableTable<&'static [u8; 40], &'static [u8]>,
        name: &str,
        r: &VersionRef,
    ) -> Result<(ModelRecord, u64)> {
        let model = self.load_model(models, name)?.ok_or_else(|| Error::ModelNotFound(escape(name)))?;
        let mk = self.model_key(name);
        let not_found = || Error::VersionNotFound { name: escape(name), reference: r.to_string() };
        let version = match r {
            VersionRef::Latest => {
                let mut range = store::version_range(versions, &mk)?;
                let last = range.next_back().ok_or_else(not_found)?;
                let (k, _) = last.map_err(|e| Error::storage("reading versions", e))?;
                u64::from_be_bytes(k.value()[32..].try_into().expect("40-byte key"))
            }
            VersionRef::Number(n) => *n,
            VersionRef::Alias(a) => *model.aliases.get(a).ok_or_else(not_found)?,
        };
        if versions.get(&store::version_key(&mk, version)).map_err(|e| Error::storage("reading versions", e))?.is_none()
        {
            return Err(not_found());
        }
        Ok((model, version))
    }

    /// Loads and checks one version's manifest: the record authenticates, the signature verifies
    /// (`verify_strict`) under one of this vault's signing keys, the encoding is canonical, and
    /// the manifest names this vault, this model and this version.
    ///
    /// Errors: [`Error::VersionNotFound`], [`Error::Damaged`], [`Error::BadSignature`].
    pub(crate) fn load_version(
        &self,
        versions: &impl ReadableTable<&'static [u8; 40], &'static [u8]>,
        name: &str,
        version: u64,
    ) -> Result<(Manifest, VersionRecord)> {
        let key = store::version_key(&self.model_key(name), version);
        let v = versions
            .get(&key)
            .map_err(|e| Error::storage("reading a version record", e))?
            .ok_or_else(|| Error::VersionNotFound { name: escape(name), reference: version.to_string() })?;
        let what = format!("model '{}' version {version}", escape(name));
        let rec: VersionRecord = self.open_meta("versions", &key, &what, v.value())?;
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
        let Some(verifier) = self.state.signers.iter().find(|v| *v.public_key() == rec.signer) else {
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
