//! Metadata updates without a new version: aliases, tags, metrics and descriptions. A change to a
//! version's tags, metrics or description makes a new manifest revision, signed again; aliases
//! and the model description live in the model record.

use super::VersionRef;
use super::put::{write_model, write_version};
use crate::manifest::Manifest;
use crate::names::{self, escape};
use crate::store::records::AliasEvent;
use crate::store::{MODELS, VERSIONS};
use crate::vault::{Unlocked, Vault, now};
use crate::{Error, Result};

impl Vault<Unlocked> {
    /// Points `alias` at `name@r` (moving it if it pointed elsewhere). Returns the version.
    ///
    /// Errors: [`Error::InvalidName`], [`Error::ModelNotFound`], [`Error::VersionNotFound`].
    pub fn set_alias(&self, name: &str, r: &VersionRef, alias: &str) -> Result<u64> {
        names::check_alias(alias)?;
        let mut txn = self.write()?;
        let (mut model, version) = {
            let models = txn.tx.open_table(MODELS).map_err(|_| Error::ModelNotFound(escape(name)))?;
            let versions = txn.tx.open_table(VERSIONS).map_err(|_| Error::ModelNotFound(escape(name)))?;
            self.resolve(&models, &versions, name, r)?
        };
        let from = model.aliases.insert(alias.to_string(), version);
        if from != Some(version) {
            model.alias_history.push(AliasEvent { alias: alias.to_string(), from, to: Some(version), at: now() });
        }
        write_model(&mut txn, &self.model_key(name), &model)?;
        txn.commit()?;
        Ok(version)
    }

    /// Removes `alias` from model `name`.
    ///
    /// Errors: [`Error::ModelNotFound`], [`Error::VersionNotFound`] if there is no such alias.
    pub fn remove_alias(&self, name: &str, alias: &str) -> Result<()> {
        let mut txn = self.write()?;
        let mut model = {
            let models = txn.tx.open_table(MODELS).map_err(|_| Error::ModelNotFound(escape(name)))?;
            self.load_model(&models, name)?.ok_or_else(|| Error::ModelNotFound(escape(name)))?
        };
        let Some(from) = model.aliases.remove(alias) else {
            return Err(Error::VersionNotFound { name: escape(name), reference: escape(alias) });
        };
        model.alias_history.push(AliasEvent { alias: alias.to_string(), from: Some(from), to: None, at: now() });
        write_model(&mut txn, &self.model_key(name), &model)?;
        txn.commit()
    }

    /// Applies `change` to the manifest of `name@r` as a new signed revision. Returns the version.
    fn revise(&self, name: &str, r: &VersionRef, change: impl FnOnce(&mut Manifest) -> Result<()>) -> Result<u64> {
        let mut txn = self.write()?;
        let mut m = {
            let models = txn.tx.open_table(MODELS).map_err(|_| Error::ModelNotFound(escape(name)))?;
            let versions = txn.tx.open_table(VERSIONS).map_err(|_| Error::ModelNotFound(escape(name)))?;
            let (_, version) = self.resolve(&models, &versions, name, r)?;
            self.load_version(&versions, name, version)?.0
        };
        change(&mut m)?;
        m.revision += 1;
        m.updated = now();
        write_version(&mut txn, &self.model_key(name), &m)?;
        txn.commit()?;
        Ok(m.version)
    }

    /// Sets tag `key` = `value` on `name@r`.
    ///
    /// Errors: [`Error::InvalidName`] for a bad key or value; as [`Vault::show`].
    pub fn set_tag(&self, name: &str, r: &VersionRef, key: &str, value: &str) -> Result<u64> {
        names::check_key("tag key", key)?;
        names::check_tag_value(value)?;
        self.revise(name, r, |m| {
            m.tags.insert(key.to_string(), value.to_string());
            Ok(())
        })
    }

    /// Removes tag `key` from `name@r`.
    ///
    /// Errors: [`Error::InvalidInput`] if the version has no such tag; as [`Vault::show`].
    pub fn remove_tag(&self, name: &str, r: &VersionRef, key: &str) -> Result<u64> {
        self.revise(name, r, |m| {
            m.tags
                .remove(key)
                .map(|_| ())
                .ok_or_else(|| Error::InvalidInput(format!("{name}@{} has no tag '{}'", m.version, escape(key))))
        })
    }

    /// Sets metric `key` = `value` (finite) on `name@r`.
    pub fn set_metric(&self, name: &str, r: &VersionRef, key: &str, value: f64) -> Result<u64> {
        names::check_key("metric key", key)?;
        names::check_metric_value(key, value)?;
        self.revise(name, r, |m| {
            m.metrics.insert(key.to_string(), value);
            Ok(())
        })
    }

    /// Sets the description of `name@r`, or of the model itself when `r` is `None`.
    pub fn describe(&self, name: &str, r: Option<&VersionRef>, text: &str) -> Result<()> {
        names::check_description(text)?;
        match r {
            Some(r) => self
                .revise(name, r, |m| {
                    m.description = text.to_string();
                    Ok(())
                })
                .map(|_| ()),
            None => {
                let mut txn = self.write()?;
                let mut model = {
                    let models = txn.tx.open_table(MODELS).map_err(|_| Error::ModelNotFound(escape(name)))?;
                    self.load_model(&models, name)?.ok_or_else(|| Error::ModelNotFound(escape(name)))?
                };
                model.description = text.to_string();
                write_model(&mut txn, &self.model_key(name), &model)?;
                txn.commit()
            }
        }
    }
}
