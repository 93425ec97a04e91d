//! The remotes a vault knows: `remote add` (after probing the server's create-only writes),
//! `remote list`, `remote remove`, and connecting to a remote by name. A remote is a sealed
//! [`RemoteRecord`] in the vault (where the remote is and what the probe found); credentials are
//! never part of it. This module must never store a credential, nor record a server that failed
//! the probe as safe for several writers.

use crate::log::Op;
use serde::Serialize;

use crate::names::{self, escape};
use crate::remote::{Objects, ProbeReport, ProbeSettings, RemoteConfig, probe};
use crate::store::records::RemoteRecord;
use crate::store::{self, RecordRead, Table};
use crate::vault::{Unlocked, Vault, now};
use crate::{Error, Result};

/// A remote as `remote list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteInfo {
    /// Its name in this vault.
    pub name: String,
    /// `s3://BUCKET/PREFIX`.
    pub url: String,
    /// The server's base URL (`None`: AWS S3).
    pub endpoint: Option<String>,
    /// The region.
    pub region: String,
    /// True when several vaults may push to it at once (it passed the probe and was not added
    /// for a single writer).
    pub multi_writer: bool,
    /// What the probe found wrong, if the server failed it.
    pub probe_failure: Option<String>,
    /// When it was added, Unix seconds.
    pub added: u64,
}

impl From<RemoteRecord> for RemoteInfo {
    fn from(r: RemoteRecord) -> Self {
        RemoteInfo {
            name: r.name,
            url: r.url,
            endpoint: r.endpoint,
            region: r.region,
            multi_writer: r.multi_writer,
            probe_failure: r.probe_failure,
            added: r.added,
        }
    }
}

impl RemoteInfo {
    /// The remote's location as a [`RemoteConfig`] (default retry bounds).
    ///
    /// Errors: [`Error::Damaged`] if the stored URL no longer parses.
    pub fn config(&self) -> Result<RemoteConfig> {
        let (bucket, prefix) = crate::remote::config::parse_url(&self.url).map_err(|e| {
            Error::Damaged(format!("remote '{}' holds a URL that does not parse: {e}", escape(&self.name)))
        })?;
        Ok(RemoteConfig {
            bucket,
            prefix,
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            retry: Default::default(),
        })
    }
}

/// How `remote add` treats the probe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteAddOptions {
    /// Add the remote for one writer at a time even if the server fails the probe (the record
    /// then says it is not safe for several writers).
    pub single_writer: bool,
    /// How hard the probe races writers.
    pub probe: ProbeSettings,
}

impl Vault<Unlocked> {
    /// Adds the remote `name` at `config`, reached through `objects` (see `Vault::remote_add`,
    /// which connects to the server itself): probes the server, then records the remote. A
    /// server that fails the probe is refused unless `opts.single_writer`. Returns what the
    /// probe found. The vault is unchanged when it fails.
    ///
    /// Errors: [`Error::InvalidName`]; [`Error::InvalidInput`] if the name is taken;
    /// [`Error::Remote`] when the server cannot be reached; [`Error::RemoteUnsafe`] naming the
    /// failed check.
    pub fn remote_add_with(
        &self,
        name: &str,
        config: &RemoteConfig,
        objects: &dyn Objects,
        opts: &RemoteAddOptions,
    ) -> Result<ProbeReport> {
        names::check_key("remote name", name)?;
        if self.remote_records()?.iter().any(|r| r.name == name) {
            return Err(Error::InvalidInput(format!("a remote named '{name}' exists already: remove it first")));
        }
        let report = probe(objects, opts.probe)?;
        if let Some(f) = &report.failure
            && !opts.single_writer
        {
            return Err(Error::RemoteUnsafe { name: escape(name), failure: f.clone() });
        }
        let rec = RemoteRecord {
            name: name.to_string(),
            url: config.url(),
            endpoint: config.endpoint.clone(),
            region: config.region.clone(),
            multi_writer: report.safe() && !opts.single_writer,
            probe_failure: report.failure.clone(),
            added: now(),
        };
        let mut txn = self.write(Op::RemoteAdd)?;
        txn.about(None, Vec::new(), Some(name));
        let v = txn.seal_meta(Table::Remotes, name.as_bytes(), &rec)?;
        txn.tx.put_remote(name, &v)?;
        txn.commit()?;
        Ok(report)
    }

    /// Connects to the server of `config` with credentials from the environment and adds the
    /// remote as [`Vault::remote_add_with`] does.
    ///
    /// Errors: as [`Vault::remote_add_with`], and [`Error::Remote`] for missing credentials.
    #[cfg(feature = "remote")]
    pub fn remote_add(&self, name: &str, config: &RemoteConfig, opts: &RemoteAddOptions) -> Result<ProbeReport> {
        let objects = crate::remote::S3Objects::connect(config)?;
        self.remote_add_with(name, config, &objects, opts)
    }

    /// Every remote, in name order.
    ///
    /// Errors: [`Error::Storage`]; [`Error::Damaged`] for a record that fails authentication.
    pub fn remote_list(&self) -> Result<Vec<RemoteInfo>> {
        Ok(self.remote_records()?.into_iter().map(RemoteInfo::from).collect())
    }

    /// The remote `name`.
    ///
    /// Errors: [`Error::NotFound`] if there is none; as [`Vault::remote_list`].
    pub fn remote(&self, name: &str) -> Result<RemoteInfo> {
        let rx = store::read(&self.db)?;
        let v = rx.remote(name)?.ok_or_else(|| Error::NotFound(format!("no remote named '{}'", escape(name))))?;
        let r: RemoteRecord = self.open_meta(Table::Remotes, name.as_bytes(), "remote record", &v)?;
        Ok(r.into())
    }

    /// Removes the remote `name` from this vault (the remote's objects are left as they are).
    ///
    /// Errors: [`Error::NotFound`] if there is none.
    pub fn remote_remove(&self, name: &str) -> Result<()> {
        self.remote(name)?;
        let mut txn = self.write(Op::RemoteRemove)?;
        txn.about(None, Vec::new(), Some(name));
        txn.tx.remove_remote(name)?;
        txn.commit()
    }

    /// Connects to the remote `name` with credentials from the environment (see
    /// [`crate::remote::S3Objects::connect`]).
    ///
    /// Errors: as [`Vault::remote`]; [`Error::Remote`] for missing credentials.
    #[cfg(feature = "remote")]
    pub fn connect(&self, name: &str) -> Result<crate::remote::S3Objects> {
        crate::remote::S3Objects::connect(&self.remote(name)?.config()?)
    }

    fn remote_records(&self) -> Result<Vec<RemoteRecord>> {
        let rx = store::read(&self.db)?;
        let mut out = Vec::new();
        for (name, v) in rx.remotes()? {
            out.push(self.open_meta(Table::Remotes, name.as_bytes(), "remote record", &v)?);
        }
        Ok(out)
    }
}
