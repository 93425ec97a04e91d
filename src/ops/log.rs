//! The vault's log as its key holders use it: reading the entries (`mvault log`), a signed
//! checkpoint of the head (`log checkpoint`), checking every entry and the tree against the
//! state and against a kept checkpoint (`log verify`), and the rollback check against the newest
//! checkpoint this user has seen (`Vault::check_rollback`). The log itself (entries, tree,
//! notes, memory) is `crate::log`'s; appending is the write transaction's.
//!
//! This module must never print, or report an entry as fine that did not open and match its
//! leaf.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::crypto::sign::hex;
use crate::log::{Entry, EntryView, Op, checkpoint, memory, tree};
use crate::store::records::{LogHead, State};
use crate::store::{self, LogRead, RecordRead, Table};
use crate::vault::{Unlocked, Vault};
use crate::{Error, Remedy, Result};

/// What `log verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct LogReport {
    /// Entries in the log the state names (0 without a log).
    pub size: u64,
    /// The root hash, hex (`None` without a log).
    pub root: Option<String>,
    /// The checkpoint checked against, as (size, root hex), if one was given.
    pub since: Option<(u64, String)>,
    /// Each problem found, as a sentence naming the entry, hash or record; empty when the log
    /// holds.
    pub problems: Vec<String>,
}

/// What the rollback check found ([`Vault::check_rollback`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum RollbackCheck {
    /// Nothing remembered of this log yet: it is remembered now.
    FirstSeen,
    /// The log extends what was remembered (or equals it).
    Extends,
    /// Older than what was remembered, accepted as told: the sentence says what was found.
    Accepted(String),
}

impl Vault<Unlocked> {
    /// The current state, read in a snapshot of its own.
    fn current_state(&self, rx: &impl RecordRead) -> Result<State> {
        let v = rx
            .state()?
            .ok_or_else(|| Error::Damaged("the vault state record is missing: the vault is damaged".into()))?;
        Ok(self.open_state(&v)?.0)
    }

    /// The log head the sealed state names now, `None` for a vault whose log has not begun.
    ///
    /// Errors: [`Error::Damaged`] for a state that does not open; [`Error::Storage`].
    pub fn log_head(&self) -> Result<Option<LogHead>> {
        let rx = store::read(&self.db)?;
        Ok(self.current_state(&rx)?.log)
    }

    /// Every log entry, oldest first, as a key holder reads it.
    ///
    /// Errors: [`Error::Damaged`] for an entry that does not open; [`Error::Storage`].
    pub fn log_entries(&self) -> Result<Vec<EntryView>> {
        let rx = store::read(&self.db)?;
        let mut out = Vec::new();
        for (seq, v) in rx.log_entries()? {
            out.push(EntryView::from(&self.open_entry(seq, &v)?));
        }
        Ok(out)
    }

    fn open_entry(&self, seq: u64, v: &[u8]) -> Result<Entry> {
        self.open_meta(Table::Log, &seq.to_be_bytes(), &format!("log entry {seq}"), v)
    }

    /// A C2SP signed note of the current log head, signed with the active signing key; `None`
    /// when the log has not begun (a vault last written by a version without a log).
    ///
    /// Errors: as [`Vault::log_head`].
    pub fn log_checkpoint(&self) -> Result<Option<String>> {
        Ok(self.log_head()?.map(|h| checkpoint::sign(&self.header.vault_id, &h, &self.state.signing.active())))
    }

    fn signer_keys(&self) -> Vec<[u8; 32]> {
        self.state.signing.verifiers().iter().map(|v| *v.public_key()).collect()
    }

    /// Checks the log: every entry present, opening, numbered and bound to this vault and log,
    /// its subjects matching its leaf; every stored hash recomputed from the leaves; the root
    /// the state names; every version a `put` entry made (and no later entry removed) present.
    /// With `since` (a signed note [`Vault::log_checkpoint`] printed earlier), also that it is
    /// signed by a key of this vault and that the log extends it (not shorter, not rewritten).
    ///
    /// Errors: [`Error::InvalidInput`] for a `since` that is not a checkpoint of this vault;
    /// [`Error::Damaged`] for one whose signature does not verify; [`Error::Storage`].
    /// Problems with the vault itself are in the report, not errors.
    pub fn verify_log(&self, since: Option<&[u8]>) -> Result<LogReport> {
        let since = since.map(|n| checkpoint::verify(n, &self.header.vault_id, &self.signer_keys())).transpose()?;
        let rx = store::read(&self.db)?;
        let state = self.current_state(&rx)?;
        let mut problems = Vec::new();
        let Some(head) = state.log else {
            if rx.log_hash_count()? > 0 || !rx.log_entries()?.is_empty() {
                problems.push(
                    "the vault state names no log, but the file holds log entries: an older state record was put back"
                        .into(),
                );
            }
            if let Some((cp, _)) = &since {
                problems.push(format!(
                    "the vault has no log, but the checkpoint says it had {} entries: the vault was rolled back to a copy from before its log began",
                    cp.size
                ));
            }
            let since = since.map(|(c, _)| (c.size, hex(&c.root)));
            return Ok(LogReport { size: 0, root: None, since, problems });
        };
        let entries = self.check_entries(&rx, &head, &mut problems)?;
        if problems.is_empty() {
            let leaves: Vec<Vec<u8>> = entries.iter().map(|e| e.leaf.bytes()).collect();
            if let Some((i, seq)) = tree::check_all(&rx, &leaves)? {
                problems.push(format!(
                    "stored hash {i} of the log (at entry {seq}) does not match the entries: the tree was edited"
                ));
            } else if tree::root(&rx, head.size)? != head.root {
                problems
                    .push("the log's root does not match the one the vault state names: the tree was replaced".into());
            }
            self.check_records(&rx, &entries, &mut problems)?;
        }
        if let Some((cp, log_id)) = &since {
            check_since(&rx, &head, cp, log_id, &mut problems)?;
        }
        let since = since.map(|(c, _)| (c.size, hex(&c.root)));
        Ok(LogReport { size: head.size, root: Some(hex(&head.root)), since, problems })
    }

    /// Opens entries `0..head.size`, adding a problem for each missing, unopenable, misnumbered
    /// or unmatched one and for any row past the head. Returns the entries that opened.
    fn check_entries(&self, rx: &impl LogRead, head: &LogHead, problems: &mut Vec<String>) -> Result<Vec<Entry>> {
        let rows = rx.log_entries()?;
        let mut out = Vec::new();
        let mut expected = 0u64;
        for (seq, v) in &rows {
            if *seq >= head.size {
                problems.push(format!(
                    "log entry {seq} is past the {} entries the vault state names: it was planted, or left from a rollback",
                    head.size
                ));
                break;
            }
            if *seq != expected {
                problems.push(format!("log entry {expected} is missing: it was dropped"));
            }
            expected = seq + 1;
            match self.open_entry(*seq, v) {
                Err(_) => problems.push(format!("log entry {seq} does not open: it was edited or damaged")),
                Ok(e) if e.leaf.seq != *seq || e.leaf.vault_id != self.header.vault_id || e.leaf.log_id != head.id => {
                    problems.push(format!("log entry {seq} is numbered or bound elsewhere: it was moved"))
                }
                Ok(e) if !e.subjects_match() => problems
                    .push(format!("log entry {seq} names other subjects than its leaf commits to: it was edited")),
                Ok(e) => out.push(e),
            }
        }
        if expected < head.size {
            problems.push(format!("log entries {expected} to {} are missing: the log's tail was cut", head.size - 1));
        }
        Ok(out)
    }

    /// Replays the record rows the entries say their changes wrote or deleted: each row's last
    /// write must be the value stored now (same SHA-256 of the sealed bytes), and a row last
    /// deleted must be absent. So a record dropped, put back after its removal, or rolled back
    /// to an older value (which still authenticates) is named. When the log covers every row
    /// (it begins with the vault's `create` or `clone`, or holds a `reseal`, which binds every
    /// row of the file it wrote), a row no entry wrote is named too: planted, e.g. taken from a
    /// clone, whose rows open under the same keys. Rows of a vault whose log began later are
    /// covered only from its next `reseal`.
    fn check_records(&self, rx: &store::ReadTxn, entries: &[Entry], problems: &mut Vec<String>) -> Result<()> {
        use sha2::Digest;
        // (table, row key) → (entry that last wrote it, SHA-256 of what it wrote or None).
        type Last = BTreeMap<(String, Vec<u8>), (u64, Option<[u8; 32]>)>;
        let mut last: Last = BTreeMap::new();
        let mut names: BTreeMap<[u8; 32], String> = BTreeMap::new();
        let covers_all = entries.first().is_some_and(|e| matches!(Op::from_name(&e.leaf.op), Op::Create | Op::Clone))
            || entries.iter().any(|e| Op::from_name(&e.leaf.op) == Op::Reseal);
        for e in entries {
            if let Some(m) = e.subjects.as_ref().and_then(|s| s.model.as_deref()) {
                names.insert(self.model_key(m), m.to_string());
            }
            for r in &e.records {
                last.insert((r.table.clone(), r.key.clone()), (e.leaf.seq, r.value));
            }
        }
        for table in Table::ALL {
            let logged: Vec<_> = last
                .range((table.name().to_string(), Vec::new())..)
                .take_while(|((t, _), _)| t == table.name())
                .collect();
            if logged.is_empty() && !(covers_all && store::logged_row(table, b"")) {
                continue;
            }
            let mut now: BTreeMap<Vec<u8>, [u8; 32]> = BTreeMap::new();
            rx.scan(table, None, |k, v| {
                if store::logged_row(table, k) {
                    now.insert(k.to_vec(), sha2::Sha256::digest(v).into());
                }
                Ok(true)
            })?;
            if covers_all {
                let written: std::collections::BTreeSet<&Vec<u8>> = logged.iter().map(|((_, k), _)| k).collect();
                for key in now.keys().filter(|k| !written.contains(k)) {
                    let what = row_name(table, key, &names);
                    problems.push(format!(
                        "{what} is present, but no log entry wrote it: it was planted (e.g. taken from a copy or clone of the vault)"
                    ));
                }
            }
            for ((_, key), (seq, want)) in logged {
                let what = row_name(table, key, &names);
                match (want, now.get(key)) {
                    (Some(_), None) => problems.push(format!("{what} is missing: log entry {seq} wrote it; it was dropped")),
                    (Some(w), Some(h)) if w != h => problems.push(format!(
                        "{what} is not the one log entry {seq} wrote: an older copy of it was put back, or it was replaced"
                    )),
                    (None, Some(_)) => {
                        problems.push(format!("{what} is present, but log entry {seq} removed it: it was put back"))
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Checks the vault's log against the newest checkpoint `dir` remembers for it, then
    /// remembers the current head there (and, from then on, the head after every commit of this
    /// handle). A log shorter than, or not extending, the remembered one is a rollback: refused
    /// unless `accept_rollback`, which remembers the current head in place of the newer one.
    ///
    /// Errors: [`Error::Damaged`] (with [`Remedy::AcceptRollback`]) for a rollback; as
    /// [`memory::load`] and [`memory::remember`]; [`Error::Storage`].
    pub fn check_rollback(&self, dir: &Path, accept_rollback: bool) -> Result<RollbackCheck> {
        let rx = store::read(&self.db)?;
        let head = self.current_state(&rx)?.log;
        let seen = memory::load(dir, &self.header.vault_id)?;
        let at = self.memory_path();
        let swapped = match (head, seen.paths.get(&at)) {
            (Some(h), Some(was)) if *was != hex(&h.id) => Some(format!(
                "the file held log {was} of this vault when this user last saw it, and now holds log {}: another copy of the vault (a clone, or a copy of one) was put in its place",
                hex(&h.id)
            )),
            _ => None,
        };
        let found = swapped.or(match head {
            None if !seen.logs.is_empty() => Some(
                "the vault has no log, but this user has seen its log before: it was rolled back to a copy from before its log began".to_string(),
            ),
            None => None,
            Some(h) => match seen.logs.get(&hex(&h.id)) {
                Some(s) if s.size > h.size => Some(format!(
                    "its log has {} entries, fewer than the {} this user last saw: it was rolled back, or its log's tail cut",
                    h.size, s.size
                )),
                Some(s) if !tree::extends(&rx, &h, s.size, &s.root_bytes().unwrap_or_default())? => Some(format!(
                    "its log has {} entries but does not extend the {} this user last saw: the two copies have diverged (writes were made to each, e.g. to an older copy after a rollback was accepted), so one of them is not the vault you last used",
                    h.size, s.size
                )),
                _ => None,
            },
        });
        let known = head.is_some_and(|h| seen.logs.contains_key(&hex(&h.id)));
        let result = match found {
            Some(f) if !accept_rollback => {
                return Err(Error::Damaged(format!(
                    "the vault {} is not the one this user last saw: {f}",
                    self.path.display()
                ))
                .with_remedy(Remedy::AcceptRollback));
            }
            Some(f) => RollbackCheck::Accepted(f),
            None if known => RollbackCheck::Extends,
            None => RollbackCheck::FirstSeen,
        };
        *self.state.memory.lock().unwrap_or_else(|e| e.into_inner()) = Some(dir.to_path_buf());
        if let Some(h) = head {
            self.remember_in(dir, &h, matches!(result, RollbackCheck::Accepted(_)))?;
        }
        Ok(result)
    }

    /// Remembers `head` in the directory [`Vault::check_rollback`] set up, if any.
    pub(crate) fn remember_head(&self, head: &LogHead) -> Result<()> {
        let dir: Option<PathBuf> = self.state.memory.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match dir {
            Some(d) => self.remember_in(&d, head, false),
            None => Ok(()),
        }
    }

    fn remember_in(&self, dir: &Path, head: &LogHead, replace: bool) -> Result<()> {
        let note = checkpoint::sign(&self.header.vault_id, head, &self.state.signing.active());
        let seen = memory::Seen { size: head.size, root: hex(&head.root), checkpoint: note };
        memory::remember(dir, &self.header.vault_id, &head.id, &self.memory_path(), seen, replace)
    }

    /// The vault file's path as the memory keys it: canonical where it resolves.
    fn memory_path(&self) -> String {
        std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone()).to_string_lossy().into_owned()
    }

    /// Seals again, without their subjects, the log entries about `name` (only those naming one
    /// of `versions`, when given): erasure keeps that something happened, not to what. The
    /// leaves, and so the tree, stay as they were (they commit to the subjects through a salted
    /// hash whose salt goes too).
    ///
    /// Errors: [`Error::Damaged`] for an entry that does not open; [`Error::Storage`].
    pub(crate) fn forget_log_subjects(
        &self,
        txn: &mut crate::vault::Txn<'_>,
        name: &str,
        versions: Option<&[u64]>,
    ) -> Result<()> {
        for (seq, v) in txn.tx.log_entries()? {
            let mut e = self.open_entry(seq, &v)?;
            let Some(s) = &e.subjects else { continue };
            let hit =
                s.model.as_deref() == Some(name) && versions.is_none_or(|vs| s.versions.iter().any(|x| vs.contains(x)));
            if hit {
                e.subjects = None;
                e.salt = [0; 16];
                let sealed = txn.seal_meta(Table::Log, &seq.to_be_bytes(), &e)?;
                txn.tx.replace_log_entry(seq, &sealed)?;
            }
        }
        Ok(())
    }
}

/// Adds a problem when the log does not extend the checkpoint `cp` of log `log_id`.
fn check_since(
    rx: &impl LogRead,
    head: &LogHead,
    cp: &checkpoint::Checkpoint,
    log_id: &[u8; 16],
    problems: &mut Vec<String>,
) -> Result<()> {
    if *log_id != head.id {
        problems.push(format!(
            "the checkpoint is of another log of this vault (log {}, this one is {}): a copy made before the log began, or a clone",
            hex(log_id),
            hex(&head.id)
        ));
    } else if cp.size > head.size {
        problems.push(format!(
            "the log has {} entries, fewer than the {} of the checkpoint: the vault was rolled back or the log's tail cut",
            head.size, cp.size
        ));
    } else if !tree::extends(rx, head, cp.size, &cp.root)? {
        problems.push(format!(
            "the log does not extend the checkpoint: its first {} entries were rewritten since",
            cp.size
        ));
    }
    Ok(())
}

/// A record row as a sentence names it: the model and version for model and version records
/// whose name the log knows, else the table and the key (names of slots, remotes and trusted
/// keys are public; model keys are keyed hashes, shown as their first hex digits).
fn row_name(table: Table, key: &[u8], names: &BTreeMap<[u8; 32], String>) -> String {
    let model = |k: &[u8]| {
        <[u8; 32]>::try_from(k)
            .ok()
            .and_then(|k| names.get(&k))
            .map(|n| crate::names::escape(n))
            .unwrap_or_else(|| format!("{}…", &hex(k)[..16]))
    };
    match table {
        Table::Models => format!("the model record of {}", model(key)),
        Table::Versions if key.len() == 40 => {
            let v = u64::from_be_bytes(key[32..].try_into().expect("8 bytes"));
            format!("the version record of {}@{v}", model(&key[..32]))
        }
        Table::Signers if key.len() == 4 => {
            format!("signing key record {}", u32::from_be_bytes(key.try_into().expect("4 bytes")))
        }
        _ => format!("the {} record '{}'", table.name(), crate::names::escape(&String::from_utf8_lossy(key))),
    }
}
