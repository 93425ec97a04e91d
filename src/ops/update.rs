//! Metadata updates without a new version: aliases, tags, metrics and descriptions. A change to a
//! version's tags, metrics or description makes a new manifest revision, signed again; aliases
//! and the model description live in the model record.

use super::VersionRef;
use super::put::{write_model, write_version};
use crate::log::Op;
use crate::manifest::Manifest;
use crate::names::{self, escape};
use crate::store::records::AliasEvent;
use crate::vault::{Unlocked, Vault, now};
use crate::{Error, Result};

impl Vault<Unlocked> {
    /// Points `alias` at `name@r` (moving it if it pointed elsewhere). Returns the version.
    ///
    /// Errors: [`Error::InvalidName`], [`Error::ModelNotFound`], [`Error::VersionNotFound`].
    pub fn set_alias(&self, name: &str, r: &VersionRef, alias: &str) -> Result<u64> {
        names::check_alias(alias)?;
        let mut txn = self.write(Op::Alias)?;
        let (mut model, version) = self.resolve(&*txn.tx, name, r)?;
        txn.about(Some(name), vec![version], Some(alias));
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
        let mut txn = self.write(Op::Unalias)?;
        let mut model = self.load_model(&*txn.tx, name)?.ok_or_else(|| Error::ModelNotFound(escape(name)))?;
        let Some(from) = model.aliases.remove(alias) else {
            return Err(Error::VersionNotFound { name: escape(name), reference: escape(alias) });
        };
        txn.about(Some(name), vec![from], Some(alias));
        model.alias_history.push(AliasEvent { alias: alias.to_string(), from: Some(from), to: None, at: now() });
        write_model(&mut txn, &self.model_key(name), &model)?;
        txn.commit()
    }

    /// Applies `change` to the manifest of `name@r` as a new signed revision. Returns the version.
    fn revise(&self, name: &str, r: &VersionRef, change: impl FnOnce(&mut Manifest) -> Result<()>) -> Result<u64> {
        let mut txn = self.write(Op::Revise)?;
        let mut m = {
            let (_, version) = self.resolve(&*txn.tx, name, r)?;
            txn.about(Some(name), vec![version], None);
            self.load_version(&*txn.tx, name, version)?.0
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
        self.set_tags(name, r, &[(key.to_string(), value.to_string())])
    }

    /// Sets every `(key, value)` tag of `pairs` on `name@r` in one new manifest revision: all of
    /// them or, on any error, none (the vault is unchanged).
    ///
    /// Errors: [`Error::InvalidInput`] if `pairs` is empty or names a key twice;
    /// [`Error::InvalidName`] for a bad key or value; as [`Vault::show`].
    pub fn set_tags(&self, name: &str, r: &VersionRef, pairs: &[(String, String)]) -> Result<u64> {
        check_keys("tag", pairs.iter().map(|(k, _)| k.as_str()))?;
        for (k, v) in pairs {
            names::check_key("tag key", k)?;
            names::check_tag_value(v)?;
        }
        self.revise(name, r, |m| {
            for (k, v) in pairs {
                m.tags.insert(k.clone(), v.clone());
            }
            Ok(())
        })
    }

    /// Removes tag `key` from `name@r`.
    ///
    /// Errors: [`Error::InvalidInput`] if the version has no such tag; as [`Vault::show`].
    pub fn remove_tag(&self, name: &str, r: &VersionRef, key: &str) -> Result<u64> {
        self.remove_tags(name, r, &[key.to_string()])
    }

    /// Removes every tag in `keys` from `name@r` in one new manifest revision: all of them or,
    /// if one is missing, none (the vault is unchanged).
    ///
    /// Errors: [`Error::InvalidInput`] if `keys` is empty, names a key twice, or names a tag the
    /// version does not have (every such key is listed); as [`Vault::show`].
    pub fn remove_tags(&self, name: &str, r: &VersionRef, keys: &[String]) -> Result<u64> {
        check_keys("tag", keys.iter().map(String::as_str))?;
        self.revise(name, r, |m| {
            let missing: Vec<String> =
                keys.iter().filter(|k| !m.tags.contains_key(k.as_str())).map(|k| format!("'{}'", escape(k))).collect();
            if !missing.is_empty() {
                return Err(Error::InvalidInput(format!(
                    "{}@{} has no tag {}; no tag was removed",
                    escape(name),
                    m.version,
                    missing.join(", ")
                )));
            }
            for k in keys {
                m.tags.remove(k);
            }
            Ok(())
        })
    }

    /// Sets metric `key` = `value` (finite) on `name@r`.
    pub fn set_metric(&self, name: &str, r: &VersionRef, key: &str, value: f64) -> Result<u64> {
        self.set_metrics(name, r, &[(key.to_string(), value)])
    }

    /// Sets every `(key, value)` metric of `pairs` (finite values) on `name@r` in one new
    /// manifest revision: all of them or, on any error, none (the vault is unchanged).
    ///
    /// Errors: [`Error::InvalidInput`] if `pairs` is empty or names a key twice;
    /// [`Error::InvalidName`] for a bad key or a non-finite value; as [`Vault::show`].
    pub fn set_metrics(&self, name: &str, r: &VersionRef, pairs: &[(String, f64)]) -> Result<u64> {
        check_keys("metric", pairs.iter().map(|(k, _)| k.as_str()))?;
        for (k, v) in pairs {
            names::check_key("metric key", k)?;
            names::check_metric_value(k, *v)?;
        }
        self.revise(name, r, |m| {
            for (k, v) in pairs {
                m.metrics.insert(k.clone(), *v);
            }
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
                let mut txn = self.write(Op::Describe)?;
                let mut model = self.load_model(&*txn.tx, name)?.ok_or_else(|| Error::ModelNotFound(escape(name)))?;
                txn.about(Some(name), Vec::new(), None);
                model.description = text.to_string();
                write_model(&mut txn, &self.model_key(name), &model)?;
                txn.commit()
            }
        }
    }
}

/// Refuses an empty list of `what` keys, or one that names a key twice (which value would win is
/// not obvious).
///
/// Errors: [`Error::InvalidInput`].
fn check_keys<'a>(what: &str, keys: impl Iterator<Item = &'a str>) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    let mut any = false;
    for k in keys {
        any = true;
        if !seen.insert(k) {
            return Err(Error::InvalidInput(format!("{what} '{}' is given twice: give each key once", escape(k))));
        }
    }
    if !any {
        return Err(Error::InvalidInput(format!("no {what} given")));
    }
    Ok(())
}
