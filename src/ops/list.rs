//! `ls` and `show`: what the vault holds, decrypted and with every manifest's signature checked.
//! A damaged record is reported as a problem and the rest is still listed.

use std::collections::BTreeMap;

use redb::ReadableTable;
use serde::Serialize;

use super::VersionRef;
use crate::manifest::{Manifest, hex};
use crate::names::escape;
use crate::store::records::ModelRecord;
use crate::store::{self, MODELS, VERSIONS};
use crate::vault::{Unlocked, Vault};
use crate::{Error, Result};

/// One file of a version, for display.
#[derive(Debug, Clone, Serialize)]
pub struct FileInfo {
    /// Path inside the model.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
    /// Number of chunks.
    pub chunks: usize,
}

/// One version, for display.
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    /// Model name.
    pub name: String,
    /// Version number.
    pub version: u64,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// Time of the latest metadata change, Unix seconds.
    pub updated: u64,
    /// Metadata revision.
    pub revision: u64,
    /// Total size in bytes.
    pub size_bytes: u64,
    /// Aliases pointing here.
    pub aliases: Vec<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Metrics.
    pub metrics: BTreeMap<String, f64>,
    /// Description.
    pub description: String,
    /// Public key (hex) that signed the manifest.
    pub signer: String,
    /// Files.
    pub files: Vec<FileInfo>,
}

/// One model, for display.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// Name.
    pub name: String,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// Model-level description.
    pub description: String,
    /// Alias → version.
    pub aliases: BTreeMap<String, u64>,
    /// Versions, oldest first.
    pub versions: Vec<VersionInfo>,
}

/// The result of `ls`: models, and any record that could not be read.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    /// Models in name order.
    pub models: Vec<ModelInfo>,
    /// One line per damaged record.
    pub problems: Vec<String>,
}

pub(crate) fn version_info(m: &Manifest, model: &ModelRecord, signer: &[u8; 32]) -> VersionInfo {
    VersionInfo {
        name: m.name.clone(),
        version: m.version,
        created: m.created,
        updated: m.updated,
        revision: m.revision,
        size_bytes: m.total_size(),
        aliases: model
            .aliases
            .iter()
            .filter(|(_, v)| **v == m.version)
            .map(|(a, _)| a.clone())
            .collect(),
        tags: m.tags.clone(),
        metrics: m.metrics.clone(),
        description: m.description.clone(),
        signer: hex(signer),
        files: m
            .files
            .iter()
            .map(|f| FileInfo {
                path: f.path.clone(),
                size: f.size,
                sha256: hex(&f.sha256),
                chunks: f.chunks.len(),
            })
            .collect(),
    }
}

impl Vault<Unlocked> {
    /// Lists every model (or only `name`) with all its versions.
    ///
    /// Errors: [`Error::ModelNotFound`] when `name` is given and absent; [`Error::Storage`].
    /// Damaged records do not fail the listing: they are returned in [`Listing::problems`].
    pub fn list(&self, name: Option<&str>) -> Result<Listing> {
        let rx = store::begin_read(&self.db)?;
        let mut listing = Listing {
            models: Vec::new(),
            problems: Vec::new(),
        };
        let (Ok(models), Ok(versions)) = (rx.open_table(MODELS), rx.open_table(VERSIONS)) else {
            return match name {
                Some(n) => Err(Error::ModelNotFound(escape(n))),
                None => Ok(listing),
            };
        };
        let mut records = Vec::new();
        if let Some(n) = name {
            crate::names::check_model_name(n)?;
            let rec = self
                .load_model(&models, n)?
                .ok_or_else(|| Error::ModelNotFound(escape(n)))?;
            records.push((self.model_key(n), rec));
        } else {
            for row in models
                .iter()
                .map_err(|e| Error::storage("reading models", e))?
            {
                let (k, v) = row.map_err(|e| Error::storage("reading models", e))?;
                let key = *k.value();
                match self.open_meta::<ModelRecord>("models", &key, "a model record", v.value()) {
                    Ok(rec) if self.model_key(&rec.name) == key => records.push((key, rec)),
                    Ok(rec) => listing.problems.push(format!(
                        "model record {}… holds the name '{}' of another record: the vault was tampered with",
                        &hex(&key)[..16],
                        escape(&rec.name)
                    )),
                    Err(e) => listing.problems.push(format!("model record {}…: {e}", &hex(&key)[..16])),
                }
            }
        }
        for (mk, rec) in records {
            let mut info = ModelInfo {
                name: rec.name.clone(),
                created: rec.created,
                description: rec.description.clone(),
                aliases: rec.aliases.clone(),
                versions: Vec::new(),
            };
            let range = store::version_range(&versions, &mk)?;
            for row in range {
                let (k, _) = row.map_err(|e| Error::storage("reading versions", e))?;
                let v = u64::from_be_bytes(k.value()[32..].try_into().expect("40-byte key"));
                match self.load_version(&versions, &rec.name, v) {
                    Ok((m, vr)) => info.versions.push(version_info(&m, &rec, &vr.signer)),
                    Err(e) => listing.problems.push(e.to_string()),
                }
            }
            listing.models.push(info);
        }
        listing.models.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(listing)
    }

    /// Shows one version.
    ///
    /// Errors: [`Error::ModelNotFound`], [`Error::VersionNotFound`], [`Error::Damaged`],
    /// [`Error::BadSignature`].
    pub fn show(&self, name: &str, r: &VersionRef) -> Result<VersionInfo> {
        let rx = store::begin_read(&self.db)?;
        let models = rx
            .open_table(MODELS)
            .map_err(|_| Error::ModelNotFound(escape(name)))?;
        let versions = rx
            .open_table(VERSIONS)
            .map_err(|_| Error::ModelNotFound(escape(name)))?;
        let (model, version) = self.resolve(&models, &versions, name, r)?;
        let (m, vr) = self.load_version(&versions, name, version)?;
        Ok(version_info(&m, &model, &vr.signer))
    }
}
