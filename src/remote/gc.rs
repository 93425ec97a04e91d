//! `gc --remote`: deletes the packs (and their indexes) that no version still on the remote
//! references, in two steps a grace period apart (SECURITY.md, "Remote", "Garbage collection"):
//! a run marks what is unreferenced now in a signed log entry, and a later run, once the grace
//! period has passed since the mark, writes a sweep entry naming what is still unreferenced and
//! only then deletes it. Both entries are create-only log writes, so every push is ordered
//! before or after them and a push never relies on a swept object. It must never delete a log
//! entry or a key bundle, never delete an object a live version's chunk is in, and never delete
//! before the sweep entry naming the object is on the remote.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::Serialize;

use crate::remote::format::{Change, INDEX, LogBody, PACKS};
use crate::remote::log::{self, Appended, LogKeys};
use crate::remote::objects::Objects;
use crate::remote::packs;
use crate::remote::push::MAX_APPEND_RETRIES;
use crate::remote::state::{self, RemoteState};
use crate::vault::{Unlocked, Vault};
use crate::{Error, Result};

/// The grace period `gc --remote` waits between marking and deleting unless told otherwise:
/// 24 hours, in seconds (longer than any push is expected to take).
pub const DEFAULT_GRACE_SECS: u64 = 24 * 3600;

/// What a `gc --remote` run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RemoteGcReport {
    /// Packs that hold a chunk of a live version (kept whole).
    pub packs_kept: u64,
    /// Objects (indexes and packs) this run marked.
    pub marked: u64,
    /// Marked objects still inside the grace period (deleted by a later run).
    pub waiting: u64,
    /// Packs deleted.
    pub packs_deleted: u64,
    /// Objects (indexes and packs) deleted.
    pub objects_deleted: u64,
    /// Bytes of the objects deleted.
    pub bytes_deleted: u64,
    /// The log entry written, if any.
    pub entry: Option<u64>,
}

/// What the remote holds besides the log, as one gc run sees it.
struct Holdings {
    /// Index key → (its pack's key, whether a live version uses one of its chunks).
    indexes: BTreeMap<String, (String, bool)>,
    /// Pack key → size in bytes.
    packs: BTreeMap<String, u64>,
    /// Index key → size in bytes.
    index_sizes: BTreeMap<String, u64>,
}

impl Vault<Unlocked> {
    /// Runs one step of the remote's garbage collection on `objects` (known as `label`): deletes
    /// the objects a mark at least `grace_secs` old named that are still unreferenced, and marks
    /// the unreferenced objects not marked yet. A pack with any chunk a live version uses is
    /// kept whole.
    ///
    /// Errors: [`Error::Damaged`] (a forked, rolled-back or tampered remote, or an index that
    /// fails its checks: nothing is deleted); [`Error::Remote`] (a run stopped after its sweep
    /// entry deletes the rest when run again).
    pub fn gc_remote(&self, objects: &dyn Objects, label: &str, grace_secs: u64) -> Result<RemoteGcReport> {
        self.adopt_remote_signers(objects)?;
        let keys = self.remote_keys()?;
        let lk = LogKeys { vault_id: self.header.vault_id, keys: &keys, verifiers: &self.state.signing.verifiers() };
        let seen = state::load_seen(self, label)?;
        for attempt in 0..=MAX_APPEND_RETRIES {
            let remote = state::replay(self, &log::read(objects, &lk, seen)?)?;
            let held = self.holdings(objects, &keys, &remote)?;
            let now = crate::vault::now();
            let (sweep_ix, sweep_packs, mark, waiting) = decide(&remote, &held, now, grace_secs);
            let mut report = RemoteGcReport {
                packs_kept: held.indexes.values().filter(|(_, used)| *used).count() as u64,
                waiting,
                ..Default::default()
            };
            let mut changes = Vec::new();
            if !sweep_ix.is_empty() || !sweep_packs.is_empty() {
                changes.push(Change::GcSweep { indexes: sweep_ix.clone(), packs: sweep_packs.clone() });
            }
            if !mark.0.is_empty() || !mark.1.is_empty() {
                report.marked = (mark.0.len() + mark.1.len()) as u64;
                changes.push(Change::GcMark { indexes: mark.0, packs: mark.1 });
            }
            // Deletions named by an earlier sweep that did not finish.
            let leftover: Vec<&String> =
                held.indexes.keys().chain(held.packs.keys()).filter(|k| remote.swept.contains(*k)).collect();
            let head = if changes.is_empty() {
                remote.head
            } else {
                let body =
                    LogBody { seq: remote.head.0 + 1, prev: remote.head.1, time: now, indexes: Vec::new(), changes };
                match log::append(objects, &lk, &self.state.signing.active(), &body)? {
                    Appended::Done(seq, hash) => {
                        report.entry = Some(seq);
                        (seq, hash)
                    }
                    Appended::Lost => {
                        std::thread::sleep(std::time::Duration::from_millis(20 * u64::from(attempt.min(10) + 1)));
                        continue;
                    }
                }
            };
            let mut txn = self.write(crate::log::Op::RemoteGc)?;
            state::save_seen(&mut txn, label, head)?;
            txn.commit()?;
            let doomed_ix = sweep_ix.iter().chain(leftover.iter().copied().filter(|k| k.starts_with(INDEX)));
            let doomed_packs = sweep_packs.iter().chain(leftover.iter().copied().filter(|k| k.starts_with(PACKS)));
            let (ix, packs): (BTreeSet<&String>, BTreeSet<&String>) = (doomed_ix.collect(), doomed_packs.collect());
            for k in &ix {
                objects.delete(k)?;
                report.objects_deleted += 1;
                report.bytes_deleted += held.index_sizes.get(*k).copied().unwrap_or(0);
            }
            for k in &packs {
                objects.delete(k)?;
                report.objects_deleted += 1;
                report.packs_deleted += 1;
                report.bytes_deleted += held.packs.get(*k).copied().unwrap_or(0);
            }
            return Ok(report);
        }
        Err(Error::remote(
            "appending to the remote's log",
            format!("another writer took the position {MAX_APPEND_RETRIES} times in a row; try again"),
        ))
    }

    /// Lists and reads every index and pack, and finds which indexes hold a live chunk.
    fn holdings(
        &self,
        objects: &dyn Objects,
        keys: &crate::crypto::keys::RemoteKeys,
        remote: &RemoteState,
    ) -> Result<Holdings> {
        let live: HashSet<[u8; 32]> = remote
            .models
            .values()
            .flat_map(|m| m.versions.values())
            .flat_map(|(_, m)| m.files.iter())
            .flat_map(|f| f.chunks.iter().map(|c| c.id))
            .collect();
        let packs: BTreeMap<String, u64> = objects.list(PACKS)?.into_iter().map(|o| (o.key, o.size)).collect();
        let mut held = Holdings { indexes: BTreeMap::new(), packs, index_sizes: BTreeMap::new() };
        for o in objects.list(INDEX)? {
            let Some(ix) = packs::read_index(objects, keys, &self.header.vault_id, &o.key)? else { continue };
            let used = ix.entries.iter().any(|e| live.contains(&e.id));
            held.index_sizes.insert(o.key.clone(), o.size);
            held.indexes.insert(o.key, (ix.pack, used));
        }
        Ok(held)
    }
}

/// The marked indexes and lone packs to delete now, the objects to mark (indexes, lone packs),
/// and how many marked objects are still inside the grace period.
type Decision = (Vec<String>, Vec<String>, (Vec<String>, Vec<String>), u64);

fn decide(remote: &RemoteState, held: &Holdings, now: u64, grace: u64) -> Decision {
    let used_packs: BTreeSet<&String> = held.indexes.values().filter(|(_, u)| *u).map(|(p, _)| p).collect();
    let indexed: BTreeSet<&String> = held.indexes.values().map(|(p, _)| p).collect();
    let ripe = |k: &String| remote.marked.get(k).is_some_and(|t| now.saturating_sub(*t) >= grace);
    let (mut sweep_ix, mut sweep_packs, mut mark_ix, mut mark_packs, mut waiting) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), 0);
    for (ix, (pack, used)) in &held.indexes {
        if *used || used_packs.contains(pack) || remote.swept.contains(ix) {
            continue;
        }
        if ripe(ix) {
            sweep_ix.push(ix.clone());
            if held.packs.contains_key(pack) {
                sweep_packs.push(pack.clone());
            }
        } else if remote.marked.contains_key(ix) {
            waiting += 1;
        } else {
            mark_ix.push(ix.clone());
        }
    }
    for pack in held.packs.keys() {
        if indexed.contains(pack) || remote.swept.contains(pack) {
            continue; // a pack with an index follows its index
        }
        if ripe(pack) {
            sweep_packs.push(pack.clone());
        } else if remote.marked.contains_key(pack) {
            waiting += 1;
        } else {
            mark_packs.push(pack.clone());
        }
    }
    sweep_packs.sort();
    sweep_packs.dedup();
    (sweep_ix, sweep_packs, (mark_ix, mark_packs), waiting)
}

/// Parses a grace period: a whole number followed by `s`, `m`, `h` or `d` (`30s`, `10m`, `24h`,
/// `7d`), or a bare number of seconds. Returns seconds.
///
/// Errors: [`Error::InvalidInput`] naming the value.
pub fn parse_grace(s: &str) -> Result<u64> {
    let bad =
        || Error::InvalidInput(format!("grace period '{s}': give a whole number and a unit s, m, h or d (e.g. 24h)"));
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}
