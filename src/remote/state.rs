//! The state a remote's log describes (every model's versions, aliases and description, and the
//! pack indexes the log names), replayed from checked entries; a version's identity across
//! renumbering ([`origin`]); and the local record of the last entry seen of each remote
//! (`meta`/`"remote-seen"`, sealed). It must never accept a manifest whose signature and
//! encoding it has not checked.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::Result;
use crate::manifest::{self, Manifest};
use crate::remote::format::Change;
use crate::remote::log::{Entry, Seen};
use crate::store::records::VersionRecord;
use crate::store::{self, RecordRead, Table};
use crate::vault::{Txn, Unlocked, Vault};

/// The record key of the sealed record of remotes seen.
pub const SEEN_KEY: &str = "remote-seen";

/// One model as the remote's log leaves it.
#[derive(Debug, Clone, Default)]
pub struct RemoteModel {
    /// Live versions: number → (latest revision's record, its manifest).
    pub versions: BTreeMap<u64, (VersionRecord, Manifest)>,
    /// The highest version number the log ever gave this model (removed ones included).
    pub max_version: u64,
    /// Alias → version.
    pub aliases: BTreeMap<String, u64>,
    /// The model-level description.
    pub description: String,
    /// Origins of the versions the log removed.
    pub removed: BTreeSet<[u8; 32]>,
}

/// What a remote holds, as its log says.
#[derive(Debug, Clone, Default)]
pub struct RemoteState {
    /// Models by name.
    pub models: BTreeMap<String, RemoteModel>,
    /// Every pack index a log entry names, less those swept.
    pub indexes: BTreeSet<String>,
    /// Objects (index or pack keys) marked by `gc --remote` and not unmarked since, with the
    /// time of the mark (Unix seconds).
    pub marked: BTreeMap<String, u64>,
    /// Objects (index or pack keys) a sweep deleted.
    pub swept: BTreeSet<String>,
    /// The last entry: (sequence number, hash); (0, zeros) for an empty log.
    pub head: Seen,
}

/// A version's identity across renumbering: BLAKE3 of its manifest with the version number,
/// revision, update time and metadata cleared (the vault, name, creation time and files stay).
pub fn origin(m: &Manifest) -> [u8; 32] {
    let mut m = m.clone();
    m.version = 0;
    m.revision = 0;
    m.updated = 0;
    m.description.clear();
    m.tags.clear();
    m.metrics.clear();
    *blake3::hash(&m.encode()).as_bytes()
}

/// Replays checked entries into a [`RemoteState`], checking every manifest as a local read does.
///
/// Errors: [`crate::Error::Damaged`], [`crate::Error::BadSignature`] for a manifest that fails.
pub fn replay(vault: &Vault<Unlocked>, entries: &[Entry]) -> Result<RemoteState> {
    let mut st = RemoteState::default();
    for e in entries {
        st.indexes.extend(e.body.indexes.iter().cloned());
        for ix in &e.body.indexes {
            st.marked.remove(ix);
        }
        for c in &e.body.changes {
            apply(vault, &mut st, e.body.seq, c)?;
            gc_change(&mut st, e.body.time, c);
        }
        st.head = (e.body.seq, e.hash);
    }
    Ok(st)
}

fn apply(vault: &Vault<Unlocked>, st: &mut RemoteState, seq: u64, c: &Change) -> Result<()> {
    match c {
        Change::Version(rec) => {
            let what = format!("a version in remote log entry {seq}");
            let m = manifest::decode_canonical(&what, &rec.manifest)?;
            let m = vault.check_version_record(&what, &m.name.clone(), m.version, rec)?;
            let model = st.models.entry(m.name.clone()).or_default();
            model.max_version = model.max_version.max(m.version);
            let newer = model.versions.get(&m.version).is_none_or(|(_, old)| m.revision >= old.revision);
            if newer {
                model.versions.insert(m.version, (rec.clone(), m));
            }
        }
        Change::Model { name, aliases, description } => {
            let model = st.models.entry(name.clone()).or_default();
            model.aliases = aliases.clone();
            model.description = description.clone();
        }
        Change::Remove { name, version } => {
            let model = st.models.entry(name.clone()).or_default();
            if let Some((_, m)) = model.versions.remove(version) {
                model.removed.insert(origin(&m));
            }
            model.aliases.retain(|_, v| v != version);
        }
        Change::GcMark { .. } | Change::GcSweep { .. } => {}
    }
    Ok(())
}

/// Applies a gc mark (at `time`) or sweep to the marked and swept sets.
fn gc_change(st: &mut RemoteState, time: u64, c: &Change) {
    match c {
        Change::GcMark { indexes, packs } => {
            for o in indexes.iter().chain(packs) {
                st.marked.entry(o.clone()).or_insert(time);
            }
        }
        Change::GcSweep { indexes, packs } => {
            for o in indexes.iter().chain(packs) {
                st.marked.remove(o);
                st.indexes.remove(o);
                st.swept.insert(o.clone());
            }
        }
        _ => {}
    }
}

/// The sealed record of the last entry seen of each remote, by the label the caller gives it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SeenRecord {
    /// Label (the remote's location: URL and endpoint, or a directory's canonical URL) →
    /// (sequence number, hash) of the last entry seen.
    pub remotes: BTreeMap<String, Seen>,
}

/// The last entry this vault saw of the remote `label`, `None` if it never read it. A label of
/// the form `URL at ENDPOINT` ([`crate::remote::RemoteConfig::seen_label`]) with no record falls
/// back to the record an earlier version kept under the URL alone (checking against it is what
/// that version did); `save_seen` then moves it to the new label.
///
/// Errors: [`crate::Error::Damaged`] for a record that does not open; [`crate::Error::Storage`].
pub fn load_seen(vault: &Vault<Unlocked>, label: &str) -> Result<Option<Seen>> {
    let rec = load_all(vault, &store::read(&vault.db)?)?;
    let legacy = || legacy_label(label).and_then(|l| rec.remotes.get(l));
    Ok(rec.remotes.get(label).or_else(legacy).copied())
}

/// The URL-only label an earlier version used for `label`, if `label` has an endpoint part.
fn legacy_label(label: &str) -> Option<&str> {
    label.split_once(crate::remote::config::SEEN_AT).map(|(url, _)| url).filter(|u| u.starts_with("s3://"))
}

fn load_all(vault: &Vault<Unlocked>, rx: &impl RecordRead) -> Result<SeenRecord> {
    match rx.meta(SEEN_KEY)? {
        None => Ok(SeenRecord::default()),
        Some(v) => vault.open_meta(Table::Meta, SEEN_KEY.as_bytes(), "record of remotes seen", &v),
    }
}

/// Records `seen` as the last entry seen of the remote `label`, inside `txn` (and drops the
/// URL-only record an earlier version kept for it, see [`load_seen`]).
///
/// Errors: [`crate::Error::Damaged`], [`crate::Error::Storage`], [`crate::Error::KeyUsageLimit`].
pub(crate) fn save_seen(txn: &mut Txn<'_>, label: &str, seen: Seen) -> Result<()> {
    let mut rec = load_all(txn.vault, &*txn.tx)?;
    if let Some(old) = legacy_label(label) {
        rec.remotes.remove(old);
    }
    rec.remotes.insert(label.to_string(), seen);
    let sealed = txn.seal_meta(Table::Meta, SEEN_KEY.as_bytes(), &rec)?;
    txn.put_plain_meta(SEEN_KEY, &sealed)
}
