//! `push`: uploads what a remote lacks of the versions asked for, in the order that keeps the
//! remote readable when killed at any moment (packs, then their indexes, then one log entry
//! naming them), and appends the entry with a create-only write; a push that loses the race
//! for a log position reads the log again, renumbers what it must and retries. It must never
//! write a log entry naming an object it has not uploaded, nor renumber a local version before
//! the entry that gives it its new number is on the remote.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::manifest::Manifest;
use crate::ops::VersionRef;
use crate::progress::Progress;
use crate::remote::format::{Change, INDEX, LogBody};
use crate::remote::log::{self, Appended, LogKeys};
use crate::remote::objects::Objects;
use crate::remote::packs::{self, FinishedPack, PackWriter, Traffic};
use crate::remote::removed;
use crate::remote::signers::SignerChanges;
use crate::remote::state::{self, RemoteState, origin};
use crate::remote::sync::{self, LocalModel, Renumber};
use crate::store::records::VersionRecord;
use crate::vault::{Unlocked, Vault};
use crate::{Error, Result};

/// Most times a push reads the log again after losing a log position.
pub const MAX_APPEND_RETRIES: u32 = 32;

/// What a push did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PushReport {
    /// Versions written to the remote (new ones and new revisions): (model, remote number).
    pub pushed: Vec<(String, u64)>,
    /// Versions removed on the remote because they were removed here: (model, remote number).
    pub removed: Vec<(String, u64)>,
    /// Local versions given a new number, because the remote had given theirs to another.
    pub renumbered: Vec<(String, u64, u64)>,
    /// The log entry written, if any.
    pub entry: Option<u64>,
    /// Times the log position was lost to another writer.
    pub retries: u32,
    /// True when the key bundle was uploaded.
    pub bundle: bool,
    /// Packs and bytes uploaded.
    pub traffic: Traffic,
    /// Signing keys adopted from the remote's key bundles (in JSON only when any changed).
    #[serde(skip_serializing_if = "SignerChanges::is_empty")]
    pub signers: SignerChanges,
}

/// A plan: the changes for one log entry and the local renumbering it implies.
#[derive(Default)]
struct Plan {
    changes: Vec<Change>,
    renumber: Vec<Renumber>,
    pushed: Vec<(String, u64)>,
    manifests: Vec<Manifest>,
}

impl Vault<Unlocked> {
    /// Pushes the versions `specs` selects (every live version of every model when empty) to
    /// the remote `objects`, which this vault knows as `label` (the last entry seen is kept
    /// under it, so a rolled-back remote is noticed).
    ///
    /// Errors: [`Error::Damaged`] (a forked, rolled-back or tampered remote; nothing is
    /// changed locally); [`Error::ModelNotFound`], [`Error::VersionNotFound`]; [`Error::Remote`]
    /// (a push stopped by a fault resumes where it stopped when run again);
    /// [`Error::InvalidInput`] for a remote of another vault.
    pub fn push(
        &self,
        objects: &dyn Objects,
        label: &str,
        specs: &[(String, VersionRef)],
        progress: &dyn Progress,
    ) -> Result<PushReport> {
        let bundles = crate::remote::bundle::read_bundles(objects)?;
        let signers = self.adopt_signers(&bundles)?;
        let mut report = PushReport { signers, bundle: self.ensure_bundle(objects, &bundles)?, ..Default::default() };
        let keys = self.remote_keys()?;
        let lk = LogKeys { vault_id: self.header.vault_id, keys: &keys, verifiers: &self.state.signing.verifiers() };
        let local = sync::local_models(self, specs)?;
        let listed: Vec<String> = objects.list(INDEX)?.into_iter().map(|o| o.key).collect();
        let mut known: HashMap<[u8; 32], String> =
            packs::locate_present(objects, &keys, &self.header.vault_id, &listed)?
                .into_iter()
                .map(|(id, l)| (id, l.index))
                .collect();
        let mut writer = PackWriter::new(&keys, self.header.vault_id)?;
        let seen = state::load_seen(self, label)?;
        let removed = removed::load(self)?;
        let only: Option<BTreeSet<&str>> = (!specs.is_empty()).then(|| specs.iter().map(|s| s.0.as_str()).collect());
        loop {
            let remote = state::replay(self, &log::read(objects, &lk, seen)?)?;
            // A swept pack is gone (or going): never rely on it, send its chunks again.
            known.retain(|_, ix| !remote.swept.contains(ix));
            writer.written.retain(|_, ix| !remote.swept.contains(ix));
            let mut plan = self.plan(&local, &remote)?;
            let gone = removals(&removed, &remote, only.as_ref());
            let gone_list: Vec<(String, u64)> = gone
                .iter()
                .filter_map(|c| match c {
                    Change::Remove { name, version } => Some((name.clone(), *version)),
                    _ => None,
                })
                .collect();
            plan.changes.extend(gone);
            self.upload_chunks(objects, &plan.manifests, &known, &mut writer, progress)?;
            if plan.changes.is_empty() {
                // A renumbering planned against this log still applies locally (a crash may have
                // come between an earlier push's log entry and its local commit).
                self.finish_push(label, remote.head, &plan.renumber)?;
                report.renumbered = plan.renumber.iter().map(|r| (r.name.clone(), r.from, r.to)).collect();
                report.traffic = writer.traffic;
                return Ok(report);
            }
            let indexes = needed_indexes(&plan.manifests, &known, &writer.written);
            let body = LogBody {
                seq: remote.head.0 + 1,
                prev: remote.head.1,
                time: crate::vault::now(),
                indexes,
                changes: plan.changes,
            };
            match log::append(objects, &lk, &self.state.signing.active(), &body)? {
                Appended::Done(seq, hash) => {
                    self.finish_push(label, (seq, hash), &plan.renumber)?;
                    report.entry = Some(seq);
                    report.pushed = plan.pushed;
                    report.removed = gone_list;
                    report.renumbered = plan.renumber.iter().map(|r| (r.name.clone(), r.from, r.to)).collect();
                    report.traffic = writer.traffic;
                    return Ok(report);
                }
                Appended::Lost if report.retries < MAX_APPEND_RETRIES => {
                    report.retries += 1;
                    backoff(report.retries);
                }
                Appended::Lost => {
                    return Err(Error::remote(
                        "appending to the remote's log",
                        format!("another writer took the position {MAX_APPEND_RETRIES} times in a row; try again"),
                    ));
                }
            }
        }
    }

    /// Records the entry written or read last, and renumbers local versions as the remote
    /// numbered them, in one transaction.
    fn finish_push(&self, label: &str, head: log::Seen, renumber: &[Renumber]) -> Result<()> {
        let mut txn = self.write(crate::log::Op::Push)?;
        sync::renumber_local(&mut txn, renumber)?;
        state::save_seen(&mut txn, label, head)?;
        txn.commit()
    }

    /// Decides, against the remote's state, which local versions go up under which numbers.
    fn plan(&self, local: &[LocalModel], remote: &RemoteState) -> Result<Plan> {
        let mut plan = Plan::default();
        let empty = state::RemoteModel::default();
        for lm in local {
            let rm = remote.models.get(&lm.name).unwrap_or(&empty);
            let by_origin: HashMap<[u8; 32], u64> = rm.versions.iter().map(|(n, (_, m))| (origin(m), *n)).collect();
            let mut next = rm.max_version + 1;
            let mut taken: BTreeSet<u64> = rm.versions.keys().copied().chain(lm.record.live.iter().copied()).collect();
            let mut mapping = BTreeMap::new();
            for (v, rec, m) in &lm.versions {
                if rm.removed.contains(&origin(m)) {
                    continue; // removed on the remote: a pull removes it here too
                }
                let (to, newer) = match by_origin.get(&origin(m)) {
                    Some(&w) => (w, m.revision > rm.versions[&w].1.revision),
                    None => {
                        let w = if *v >= next { *v } else { (next..).find(|n| !taken.contains(n)).expect("unbounded") };
                        plan.manifests.push(m.clone());
                        (w, true)
                    }
                };
                next = next.max(to + 1);
                taken.insert(to);
                mapping.insert(*v, to);
                let rec = if to == *v { rec.clone() } else { self.resign(m, to) };
                if to != *v {
                    plan.renumber.push(Renumber { name: lm.name.clone(), from: *v, to, record: rec.clone() });
                }
                if newer {
                    plan.pushed.push((lm.name.clone(), to));
                    plan.changes.push(Change::Version(rec));
                }
            }
            if let Some(c) = model_change(lm, rm, &mapping) {
                plan.changes.push(c);
            }
        }
        Ok(plan)
    }

    /// The record of manifest `m` renumbered to `to`, signed by the active signer.
    fn resign(&self, m: &Manifest, to: u64) -> VersionRecord {
        let mut m = m.clone();
        m.version = to;
        let bytes = m.encode();
        let signer = self.state.signing.active();
        let signature = crate::manifest::sign(&signer, &bytes).to_vec();
        VersionRecord { manifest: bytes, signature, signer: signer.public_key() }
    }

    /// Seals into packs every chunk of `manifests` the remote does not hold yet, uploading up
    /// to [`packs::PARALLEL`] packs at once while the next is sealed.
    fn upload_chunks(
        &self,
        objects: &dyn Objects,
        manifests: &[Manifest],
        known: &HashMap<[u8; 32], String>,
        writer: &mut PackWriter<'_>,
        progress: &dyn Progress,
    ) -> Result<()> {
        let todo = chunks_to_send(manifests, known, &writer.written);
        progress.begin("push", todo.iter().map(|t| u64::from(t.0.len)).sum());
        let rx = crate::store::read(&self.db)?;
        let (tx, queue) = crossbeam_channel::bounded::<FinishedPack>(1);
        let (sealed, uploaded) = std::thread::scope(|s| {
            let workers: Vec<_> = (0..packs::PARALLEL)
                .map(|_| {
                    let queue = queue.clone();
                    s.spawn(move || -> (Vec<(FinishedPack, usize)>, Result<()>) {
                        let mut done = Vec::new();
                        for mut p in queue {
                            if let Err(e) = p.upload(objects) {
                                return (done, Err(e));
                            }
                            let bytes = p.pack.1.len() + p.index.1.len();
                            p.pack.1 = Vec::new(); // the bytes are up: free them
                            done.push((p, bytes));
                        }
                        (done, Ok(()))
                    })
                })
                .collect();
            drop(queue);
            let sealed = (|| -> Result<()> {
                for (c, w, i, n) in &todo {
                    let plain = self.open_chunk(&rx, &c.id, c.len, w, *i, *n)?;
                    if let Some(p) = writer.add(&c.id, &plain)? {
                        tx.send(p).map_err(|_| Error::remote("uploading a pack", "every upload stopped"))?;
                    }
                    progress.advance(u64::from(c.len));
                }
                if let Some(p) = writer.finish()? {
                    tx.send(p).map_err(|_| Error::remote("uploading a pack", "every upload stopped"))?;
                }
                Ok(())
            })();
            drop(tx);
            let uploaded: Vec<_> =
                workers.into_iter().map(|w| w.join().expect("an upload thread does not panic")).collect();
            (sealed, uploaded)
        });
        let mut first_err = None;
        for (done, r) in uploaded {
            for (p, bytes) in done {
                writer.uploaded(&p.index.0, &p.ids, bytes as u64);
            }
            first_err = first_err.or(r.err());
        }
        progress.end();
        // An upload's error is the cause when sealing stopped because every upload had.
        match (first_err, sealed) {
            (Some(e), _) => Err(e),
            (None, r) => r,
        }
    }
}

/// The chunks of `manifests` neither the remote nor this push holds, once each, with what
/// names them in errors: (chunk, file, index in the file, chunks in the file).
fn chunks_to_send<'m>(
    manifests: &'m [Manifest],
    known: &HashMap<[u8; 32], String>,
    written: &HashMap<[u8; 32], String>,
) -> Vec<(&'m crate::manifest::ChunkRef, String, usize, usize)> {
    let mut todo = Vec::new();
    let mut seen = BTreeSet::new();
    for m in manifests {
        for f in &m.files {
            let w = crate::ops::reader::file_where(m, f);
            for (i, c) in f.chunks.iter().enumerate() {
                if !known.contains_key(&c.id) && !written.contains_key(&c.id) && seen.insert(c.id) {
                    todo.push((c, w.clone(), i, f.chunks.len()));
                }
            }
        }
    }
    todo
}

/// The model change a push makes: the remote's aliases with the local ones (renumbered) laid
/// over them, and the local description when it has one; `None` when that is what the remote
/// has.
fn model_change(lm: &LocalModel, rm: &state::RemoteModel, mapping: &BTreeMap<u64, u64>) -> Option<Change> {
    let mut aliases = rm.aliases.clone();
    for (a, v) in &lm.record.aliases {
        if let Some(to) = mapping.get(v) {
            aliases.insert(a.clone(), *to);
        }
    }
    let description =
        if lm.record.description.is_empty() { rm.description.clone() } else { lm.record.description.clone() };
    (aliases != rm.aliases || description != rm.description).then(|| Change::Model {
        name: lm.name.clone(),
        aliases,
        description,
    })
}

/// The `Remove` changes for the versions removed locally (`removed`) that the remote still
/// holds, found by origin whatever number the remote gave them; of the models in `only` when
/// given. Versions the remote gained since (another machine's pushes) are never named.
fn removals(removed: &removed::RemovedRecord, remote: &RemoteState, only: Option<&BTreeSet<&str>>) -> Vec<Change> {
    let mut out = Vec::new();
    for (name, origins) in &removed.models {
        if only.is_some_and(|o| !o.contains(name.as_str())) {
            continue;
        }
        let Some(rm) = remote.models.get(name) else { continue };
        for (n, (_, m)) in &rm.versions {
            if origins.contains(&origin(m)) {
                out.push(Change::Remove { name: name.clone(), version: *n });
            }
        }
    }
    out
}

/// The index of every chunk `manifests` use, from the remote's indexes or this push's.
fn needed_indexes(
    manifests: &[Manifest],
    known: &HashMap<[u8; 32], String>,
    written: &HashMap<[u8; 32], String>,
) -> Vec<String> {
    let mut out = BTreeSet::new();
    for c in manifests.iter().flat_map(|m| m.files.iter()).flat_map(|f| f.chunks.iter()) {
        if let Some(ix) = written.get(&c.id).or_else(|| known.get(&c.id)) {
            out.insert(ix.clone());
        }
    }
    out.into_iter().collect()
}

/// Waits before retry `n`: 20 ms × n, plus up to 20 ms of jitter, so racing writers spread out.
fn backoff(n: u32) {
    let mut b = [0u8; 1];
    let jitter = crate::crypto::fill_random(&mut b).map(|()| u64::from(b[0]) * 20 / 255).unwrap_or(0);
    std::thread::sleep(std::time::Duration::from_millis(20 * u64::from(n.min(10)) + jitter));
}
