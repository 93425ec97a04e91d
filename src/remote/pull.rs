//! `pull`: brings the versions a remote's log holds into the local vault, fetching only the
//! chunks the vault lacks (ranged reads of just those chunks, coalesced), each checked before it
//! is sealed locally. A local version that is not on the remote and holds a number the remote
//! gave another version is moved to the next free number, never overwritten. It must never write
//! a version whose chunks are not all in the vault in the same transaction, nor change anything
//! when the log does not check.

use crate::log::Op;
use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::manifest::Manifest;
use crate::ops::VersionRef;
use crate::ops::put::write_model;
use crate::progress::Progress;
use crate::remote::log::{self, LogKeys};
use crate::remote::objects::Objects;
use crate::remote::packs::{self, FetchKeys, Traffic};
use crate::remote::signers::SignerChanges;
use crate::remote::state::{self, RemoteState, origin};
use crate::remote::sync::{self, put_record};
use crate::store;
use crate::store::chunks::ChunkRead;
use crate::store::records::{ModelRecord, VersionRecord};
use crate::vault::{Txn, Unlocked, Vault};
use crate::{Error, Result};

/// What a pull did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PullReport {
    /// Versions written locally (new ones and new revisions): (model, number).
    pub pulled: Vec<(String, u64)>,
    /// Local versions removed because the remote's log removed them: (model, number).
    pub removed: Vec<(String, u64)>,
    /// Local versions moved to another number to make room: (model, from, to).
    pub moved: Vec<(String, u64, u64)>,
    /// The last log entry read.
    pub head: u64,
    /// Chunks, bytes and ranged reads fetched.
    pub traffic: Traffic,
    /// Signing keys adopted from the remote's key bundles (in JSON only when any changed).
    #[serde(skip_serializing_if = "SignerChanges::is_empty")]
    pub signers: SignerChanges,
}

/// Options of [`Vault::pull_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct PullOptions {
    /// Bring versions and manifests only; chunks stay on the remote until read.
    pub metadata_only: bool,
}

/// One remote version to write locally.
struct Incoming {
    name: String,
    number: u64,
    record: VersionRecord,
    manifest: Manifest,
    /// A local version with the same number and another origin, to move aside first.
    displaces: Option<Manifest>,
}

impl Vault<Unlocked> {
    /// Pulls the versions `specs` selects (everything when empty) from the remote `objects`,
    /// which this vault knows as `label`.
    ///
    /// Errors: [`Error::Damaged`] (a forked, rolled-back or tampered remote, or a chunk that
    /// fails its checks: nothing is changed); [`Error::ModelNotFound`],
    /// [`Error::VersionNotFound`] for a spec the remote does not hold; [`Error::Remote`] (a pull
    /// stopped by a fault keeps the chunks it committed and resumes when run again);
    /// [`Error::KeyUsageLimit`], [`Error::Storage`].
    pub fn pull(
        &self,
        objects: &dyn Objects,
        label: &str,
        specs: &[(String, VersionRef)],
        progress: &dyn Progress,
    ) -> Result<PullReport> {
        self.pull_with(objects, label, specs, &PullOptions::default(), progress)
    }

    /// As [`Vault::pull`], with `opts`: with [`PullOptions::metadata_only`] the versions and
    /// their manifests are written and no chunk is fetched (they are read from the remote on
    /// demand, see [`Vault::set_chunk_source`]).
    ///
    /// Errors: as [`Vault::pull`].
    pub fn pull_with(
        &self,
        objects: &dyn Objects,
        label: &str,
        specs: &[(String, VersionRef)],
        opts: &PullOptions,
        progress: &dyn Progress,
    ) -> Result<PullReport> {
        let signers = self.adopt_remote_signers(objects)?;
        let keys = self.remote_keys()?;
        let lk = LogKeys { vault_id: self.header.vault_id, keys: &keys, verifiers: &self.state.signing.verifiers() };
        let seen = state::load_seen(self, label)?;
        let remote = state::replay(self, &log::read(objects, &lk, seen)?)?;
        let incoming = self.incoming(&remote, specs)?;
        let wanted = if opts.metadata_only { BTreeMap::new() } else { self.missing_chunks(&incoming)? };
        let places = packs::locate(objects, &keys, &self.header.vault_id, &remote.indexes)?;
        let fk = FetchKeys { vault_id: self.header.vault_id, keys: &keys, index: &self.state.index };
        let mut txn = self.write_reporting(Op::Pull, progress)?;
        progress.begin("pull", wanted.values().map(|l| u64::from(*l)).sum());
        let mut batch = 0u64;
        let traffic = packs::fetch(objects, &fk, &places, &wanted, |id, plain| {
            txn.keep_fetched(id, &plain, &mut batch)?;
            progress.advance(plain.len() as u64);
            Ok(())
        })?;
        progress.end();
        let mut report = PullReport { head: remote.head.0, traffic, signers, ..Default::default() };
        for (name, n) in self.removed_there(&remote, specs)? {
            self.remove_version_in(&mut txn, &name, &VersionRef::Number(n))?;
            report.removed.push((name, n));
        }
        for inc in &incoming {
            if let Some(m) = &inc.displaces {
                let to = sync::move_aside(&mut txn, &inc.name, inc.number, m, remote_max(&remote, &inc.name))?;
                report.moved.push((inc.name.clone(), inc.number, to));
            }
            write_incoming(&mut txn, inc)?;
            report.pulled.push((inc.name.clone(), inc.number));
        }
        apply_model_state(&mut txn, &remote, &incoming)?;
        state::save_seen(&mut txn, label, remote.head)?;
        txn.commit()?;
        Ok(report)
    }

    /// The remote versions `specs` selects that the vault lacks or holds an older revision of.
    fn incoming(&self, remote: &RemoteState, specs: &[(String, VersionRef)]) -> Result<Vec<Incoming>> {
        let selected = select(remote, specs)?;
        let rx = store::read(&self.db)?;
        let removed_here = crate::remote::removed::load(self)?;
        let mut out = Vec::new();
        for (name, numbers) in selected {
            let rm = &remote.models[&name];
            let local = self.load_model(&rx, &name)?;
            let live = match &local {
                Some(rec) => self.live_versions(&rx, &self.model_key(&name), rec)?,
                None => Vec::new(),
            };
            for n in numbers {
                let (record, manifest) = rm.versions[&n].clone();
                if removed_here.models.get(&name).is_some_and(|o| o.contains(&origin(&manifest))) {
                    continue; // removed here: the next push removes it there
                }
                let mut displaces = None;
                if live.contains(&n) {
                    let (lm, _) = self.load_version(&rx, &name, n)?;
                    if origin(&lm) == origin(&manifest) {
                        if lm.revision >= manifest.revision {
                            continue;
                        }
                    } else {
                        displaces = Some(lm);
                    }
                }
                out.push(Incoming { name: name.clone(), number: n, record, manifest, displaces });
            }
        }
        Ok(out)
    }

    /// The local live versions (of the models `specs` name, or all) whose origin the remote's
    /// log removed: (model, number).
    fn removed_there(&self, remote: &RemoteState, specs: &[(String, VersionRef)]) -> Result<Vec<(String, u64)>> {
        let rx = store::read(&self.db)?;
        let mut out = Vec::new();
        for (name, rm) in &remote.models {
            if rm.removed.is_empty() || (!specs.is_empty() && !specs.iter().any(|s| &s.0 == name)) {
                continue;
            }
            let Some(rec) = self.load_model(&rx, name)? else { continue };
            for n in self.live_versions(&rx, &self.model_key(name), &rec)? {
                let (m, _) = self.load_version(&rx, name, n)?;
                if rm.removed.contains(&origin(&m)) {
                    out.push((name.clone(), n));
                }
            }
        }
        Ok(out)
    }

    /// The chunks of `incoming` the vault does not hold: id → plaintext length.
    fn missing_chunks(&self, incoming: &[Incoming]) -> Result<BTreeMap<[u8; 32], u32>> {
        let rx = store::read(&self.db)?;
        let mut out = BTreeMap::new();
        for c in incoming.iter().flat_map(|i| i.manifest.files.iter()).flat_map(|f| f.chunks.iter()) {
            if !out.contains_key(&c.id) && !rx.contains(&c.id)? {
                out.insert(c.id, c.len);
            }
        }
        Ok(out)
    }
}

/// Model name → remote version numbers selected by `specs` (all when empty).
fn select(remote: &RemoteState, specs: &[(String, VersionRef)]) -> Result<BTreeMap<String, Vec<u64>>> {
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    if specs.is_empty() {
        for (name, m) in &remote.models {
            out.insert(name.clone(), m.versions.keys().copied().collect());
        }
        return Ok(out);
    }
    for (name, r) in specs {
        let m = remote.models.get(name).filter(|m| !m.versions.is_empty());
        let m = m.ok_or_else(|| Error::ModelNotFound(crate::names::escape(name)))?;
        let not_found = || Error::VersionNotFound { name: crate::names::escape(name), reference: r.to_string() };
        let numbers: Vec<u64> = match r {
            VersionRef::Latest => m.versions.keys().copied().collect(),
            VersionRef::Number(n) => vec![*m.versions.get_key_value(n).ok_or_else(not_found)?.0],
            VersionRef::Alias(a) => {
                vec![*m.aliases.get(a).filter(|v| m.versions.contains_key(v)).ok_or_else(not_found)?]
            }
        };
        let list = out.entry(name.clone()).or_default();
        list.extend(numbers);
        list.sort_unstable();
        list.dedup();
    }
    Ok(out)
}

fn remote_max(remote: &RemoteState, name: &str) -> u64 {
    remote.models.get(name).map_or(0, |m| m.max_version)
}

/// Writes one remote version's record and lists it live in its model record.
fn write_incoming(txn: &mut Txn<'_>, inc: &Incoming) -> Result<()> {
    let vault = txn.vault;
    let mk = vault.model_key(&inc.name);
    let mut model =
        vault.load_model(&*txn.tx, &inc.name)?.unwrap_or_else(|| ModelRecord::new(&inc.name, inc.manifest.created));
    put_record(txn, &mk, inc.number, &inc.record)?;
    if let Err(at) = model.live.binary_search(&inc.number) {
        model.live.insert(at, inc.number);
    }
    model.next_version = model.next_version.max(inc.number + 1);
    write_model(txn, &mk, &model)
}

/// Sets the aliases (those pointing at live local versions) and description of every model
/// pulled to the remote's.
fn apply_model_state(txn: &mut Txn<'_>, remote: &RemoteState, incoming: &[Incoming]) -> Result<()> {
    let names: HashMap<&str, ()> = incoming.iter().map(|i| (i.name.as_str(), ())).collect();
    for name in names.keys() {
        let vault = txn.vault;
        let Some(mut model) = vault.load_model(&*txn.tx, name)? else { continue };
        let rm = &remote.models[*name];
        for (a, v) in &rm.aliases {
            if model.live.contains(v) {
                model.aliases.insert(a.clone(), *v);
            }
        }
        if !rm.description.is_empty() {
            model.description = rm.description.clone();
        }
        write_model(txn, &vault.model_key(name), &model)?;
    }
    Ok(())
}
