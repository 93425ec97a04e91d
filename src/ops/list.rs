//! `ls` and `show`: what the vault holds, decrypted and with every manifest's signature checked.
//! A damaged record is reported as a problem and the rest is still listed.

use std::collections::BTreeMap;

use serde::Serialize;

use super::VersionRef;
use crate::manifest::{Manifest, hex};
use crate::store;
use crate::store::records::ModelRecord;
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
    /// Description of this version.
    pub description: String,
    /// Description of the model (`describe NAME TEXT`).
    pub model_description: String,
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
        aliases: model.aliases.iter().filter(|(_, v)| **v == m.version).map(|(a, _)| a.clone()).collect(),
        tags: m.tags.clone(),
        metrics: m.metrics.clone(),
        description: m.description.clone(),
        model_description: model.description.clone(),
        signer: hex(signer),
        files: m
            .files
            .iter()
            .map(|f| FileInfo { path: f.path.clone(), size: f.size, sha256: hex(&f.sha256), chunks: f.chunks.len() })
            .collect(),
    }
}

impl Vault<Unlocked> {
    /// Lists every model (or only `name`) with all its versions.
    ///
    /// Errors: [`Error::ModelNotFound`] when `name` is given and absent; [`Error::Damaged`] when
    /// it is absent and the sealed state says model records are missing; [`Error::Storage`].
    /// Damaged records do not fail the listing: they are returned in [`Listing::problems`], as
    /// are live versions without a record, version records that are not live, and missing
    /// model records. Manifests are checked on up to 4 threads.
    pub fn list(&self, name: Option<&str>) -> Result<Listing> {
        // The snapshot reads the same records with the same checks, verifying manifests in
        // parallel (see `query::Snapshot`).
        // The snapshot also reports the live-record problems (see `Vault::snapshot`).
        let l = match self.snapshot(name) {
            Ok(s) => s.listing(),
            Err(Error::ModelNotFound(_)) if name.is_some() => {
                return Err(self.model_absent(name.expect("checked")));
            }
            Err(e) => return Err(e),
        };
        Ok(l)
    }

    /// Shows one version.
    ///
    /// Errors: [`Error::ModelNotFound`], [`Error::VersionNotFound`], [`Error::Damaged`],
    /// [`Error::BadSignature`].
    pub fn show(&self, name: &str, r: &VersionRef) -> Result<VersionInfo> {
        let rx = store::read(&self.db)?;
        self.require_model_tables(&rx, name)?;
        let (model, version) = self.resolve(&rx, name, r)?;
        let (m, vr) = self.load_version(&rx, name, version)?;
        Ok(version_info(&m, &model, &vr.signer))
    }
}
