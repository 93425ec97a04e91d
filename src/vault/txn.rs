//! The write transaction every write of an unlocked vault goes through ([`Txn`]): it counts the
//! AES-GCM seals per key against the nonce limit, upgrades a vault of an older format inside the
//! first write, and seals the state (with the live-model set) into the same commit. It must never
//! print (a warning goes to the operation's [`Progress`], or is kept for
//! [`Vault::take_warnings`]), or commit a write without the state that counts its seals.

use std::sync::atomic::Ordering;

use serde::Serialize;

use super::records::{model_set_damage, models_now};
use super::{Unlocked, Vault};
use crate::crypto::aead::{NONCE_LIMIT, NONCE_WARN};
use crate::log::{Append, Op, Subjects};
use crate::progress::Progress;
use crate::store::chunks::ChunkStore;
use crate::store::records::{self, FORMAT_VERSION, OLDEST_FORMAT_VERSION, SignerRecord, SlotRecord, State};
use crate::store::{self, RecordRead, RecordWrite, Table, WriteTxn};
use crate::{Error, Result};

impl Vault<Unlocked> {
    /// Starts a write transaction of operation `op` that counts seals and refuses to pass the
    /// nonce limit; its commit appends the log entry of `op` (with the subjects given to
    /// [`Txn::about`]) in the same transaction, and remembers the new log head. A
    /// format 1 or 2 vault is upgraded to [`FORMAT_VERSION`] inside it (see
    /// [`store::upgrade_format`]; the model records are sealed again with their live versions,
    /// the slot in use gets its passphrase check). A warning (a key near its limit) is kept for
    /// [`Vault::take_warnings`]; see [`Vault::write_reporting`].
    ///
    /// Errors: [`Error::Damaged`] when the model records present do not match the live models
    /// the sealed state records (a write would otherwise seal that loss into the state);
    /// [`Error::Storage`].
    pub(crate) fn write(&self, op: Op) -> Result<Txn<'_>> {
        self.begin_on(&self.db, None, Some(op))
    }

    /// As [`Vault::write`], handing warnings to `progress` ([`Progress::warn`]).
    ///
    /// Errors: as [`Vault::write`].
    pub(crate) fn write_reporting<'v>(&'v self, op: Op, progress: &'v dyn Progress) -> Result<Txn<'v>> {
        self.begin_on(&self.db, Some(progress), Some(op))
    }

    /// As [`Vault::write_reporting`], on `db`: a writer's handle on this vault's own file opened
    /// beside a read-only one ([`store::open_writer_beside`]), to keep chunks a read fetched
    /// from a remote. It changes no record, so it appends no log entry.
    ///
    /// Errors: as [`Vault::write`].
    pub(crate) fn write_on<'v>(&'v self, db: &'v store::Db, progress: &'v dyn Progress) -> Result<Txn<'v>> {
        self.begin_on(db, Some(progress), None)
    }

    fn begin_on<'v>(
        &'v self,
        db: &'v store::Db,
        progress: Option<&'v dyn Progress>,
        op: Option<Op>,
    ) -> Result<Txn<'v>> {
        let mut tx = store::write(db)?;
        let header_was_old = store::upgrade_format(&mut tx)?;
        let (state, current) = match tx.state()? {
            Some(v) => self.open_state(&v).map(|(s, c)| (s, Some(c)))?,
            None => (State::default(), None), // the transaction that creates the vault
        };
        if current == Some(true)
            && let Some(e) = model_set_damage(&state, &tx)?
        {
            return Err(Error::Damaged(format!("{e}; nothing was written")));
        }
        let log = op.map(|op| (op, Subjects::default()));
        let mut txn = Txn {
            vault: self,
            db,
            tx: TxCell(Some(tx)),
            state,
            warned: false,
            upgraded: false,
            progress,
            log,
            written: Vec::new(),
        };
        if current == Some(false) {
            let format = if header_was_old { OLDEST_FORMAT_VERSION } else { FORMAT_VERSION };
            self.check_not_rolled_back(format, &*txn.tx)?;
            txn.upgrade_records()?;
        }
        Ok(txn)
    }
}

/// A write transaction that counts AES-GCM seals per key and writes the sealed state on commit.
/// Dropping it without [`Txn::commit`] aborts what was written since the last
/// [`Txn::checkpoint`] (or since it began).
pub(crate) struct Txn<'v> {
    pub(crate) vault: &'v Vault<Unlocked>,
    /// The file written: the vault's own handle, or a writer's handle opened beside it.
    db: &'v store::Db,
    pub(crate) tx: TxCell,
    pub(crate) state: State,
    warned: bool,
    /// This transaction upgraded the vault to format 3 (see [`Vault::write`]).
    upgraded: bool,
    /// Where warnings go; without one they are kept in the vault ([`Vault::take_warnings`]).
    progress: Option<&'v dyn Progress>,
    /// The log entry the commit appends: the operation and what it is about (`None`: a
    /// transaction that changes no record).
    log: Option<(Op, Subjects)>,
    /// Record rows written before the last checkpoint (the store's list starts again with each
    /// transaction).
    written: Vec<RecordWrite>,
}

/// The store's write transaction inside a [`Txn`]; always present except for the instant a
/// checkpoint swaps it.
pub(crate) struct TxCell(Option<WriteTxn>);

impl std::ops::Deref for TxCell {
    type Target = WriteTxn;
    fn deref(&self) -> &WriteTxn {
        self.0.as_ref().expect("a write transaction is open outside a checkpoint")
    }
}

impl std::ops::DerefMut for TxCell {
    fn deref_mut(&mut self) -> &mut WriteTxn {
        self.0.as_mut().expect("a write transaction is open outside a checkpoint")
    }
}

impl Txn<'_> {
    /// Says what the logged change is about: the model, its versions made or removed, and any
    /// other name (an alias, a slot, a remote, a trusted key). Sealed in the entry only.
    pub(crate) fn about(&mut self, model: Option<&str>, versions: Vec<u64>, detail: Option<&str>) {
        if let Some((_, s)) = &mut self.log {
            *s = Subjects { model: model.map(str::to_string), versions, detail: detail.map(str::to_string) };
        }
    }

    /// Keeps a chunk fetched from a remote (its plaintext checked against its id): seals it under
    /// the vault's chunk key, counts the seal, inserts it, and checkpoints every
    /// [`crate::ops::put::CHECKPOINT_BYTES`] (`batch` carries the bytes since the last one).
    /// `pull` and on-demand reads keep chunks through this one path.
    ///
    /// Errors: [`Error::KeyUsageLimit`]; [`Error::Storage`].
    pub(crate) fn keep_fetched(&mut self, id: &[u8; 32], plain: &[u8], batch: &mut u64) -> Result<()> {
        let sealed = self.vault.envelope().seal_chunk(id, plain)?;
        self.count_chunk_seals(1)?;
        self.tx.chunks()?.insert(id, &sealed)?;
        *batch += sealed.len() as u64;
        if *batch >= crate::ops::put::CHECKPOINT_BYTES {
            *batch = 0;
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Counts `n` more chunk seals, refusing past the limit.
    pub(crate) fn count_chunk_seals(&mut self, n: u64) -> Result<()> {
        self.state.chunk_seals += n;
        self.check_limit("chunk", self.state.chunk_seals)
    }

    fn check_limit(&mut self, key: &'static str, count: u64) -> Result<()> {
        if count >= NONCE_LIMIT {
            return Err(Error::KeyUsageLimit { key, count, limit: NONCE_LIMIT });
        }
        if count >= NONCE_WARN && !self.warned {
            self.warned = true;
            let message = format!(
                "the {key} key has sealed {count} messages of the {NONCE_LIMIT} NIST SP 800-38D allows; rotate the master key soon"
            );
            let mut kept = self.vault.state.warnings.lock().unwrap_or_else(|e| e.into_inner());
            match self.progress {
                // A progress whose `warn` does nothing (`NoProgress`) must not lose it: it is also
                // kept for `Vault::take_warnings`.
                Some(p) => {
                    p.warn(&message);
                    kept.keep(message);
                }
                None => kept.push(message),
            }
        }
        Ok(())
    }

    /// Seals a metadata record for `table`/`key`.
    pub(crate) fn seal_meta<T: Serialize>(&mut self, table: Table, key: &[u8], v: &T) -> Result<Vec<u8>> {
        self.state.meta_seals += 1;
        self.check_limit("metadata", self.state.meta_seals)?;
        self.vault.envelope().seal_record(&table, key, v)
    }

    /// Writes a value of the `meta` table as given (the header, or an already sealed record).
    pub(crate) fn put_plain_meta(&mut self, key: &str, v: &[u8]) -> Result<()> {
        self.tx.put_meta(key, v)
    }

    /// Writes a key slot record.
    pub(crate) fn put_slot(&mut self, name: &str, v: &[u8]) -> Result<()> {
        self.tx.put_slot(name, v)
    }

    /// Seals and writes a signing key record.
    pub(crate) fn put_signer(&mut self, id: u32, rec: &SignerRecord) -> Result<()> {
        let v = self.seal_meta(Table::Signers, &id.to_be_bytes(), rec)?;
        self.tx.put_signer(id, &v)
    }

    /// Seals every model record again in the format 3 encoding, with the live versions read from
    /// the version records present, and gives the slot in use its passphrase check. A model
    /// record that does not open is left as it is (it stays reported as damaged).
    fn upgrade_records(&mut self) -> Result<()> {
        for (key, sealed) in self.tx.models()? {
            let Ok(mut rec) = self.vault.open_model(&key, "model record", &sealed) else {
                continue;
            };
            rec.live = self.tx.version_numbers(&key)?;
            rec.legacy = false;
            let v = self.seal_meta(Table::Models, &key, &rec)?;
            self.tx.put_model(&key, &v)?;
        }
        let name = self.vault.state.slot.clone();
        if let Some(kek) = &self.vault.state.slot_kek
            && let Some(mut slot) = self.tx.slot(&name)?.as_deref().and_then(SlotRecord::decode)
        {
            slot.kek_check = Some(records::kek_check(kek));
            self.put_slot(&name, &slot.encode())?;
        }
        self.upgraded = true;
        Ok(())
    }

    /// Seals the state (counting its own seal, and the live models as the models table holds
    /// them now) into the transaction.
    fn write_state(&mut self) -> Result<()> {
        (self.state.live_models, self.state.models_digest) = models_now(&*self.tx)?;
        self.state.meta_seals += 1;
        self.check_limit("metadata", self.state.meta_seals)?;
        let v = self.vault.envelope().seal_record(&Table::Meta, b"state", &self.state)?;
        self.tx.put_meta("state", &v)
    }

    /// Appends the log entry, writes the sealed state (with the new log head) and commits
    /// durably (one fsync); then remembers the new head where [`Vault::check_rollback`] set up
    /// a memory (a failure there is a warning: the change is made).
    pub(crate) fn commit(mut self) -> Result<()> {
        self.append_log()?;
        self.write_state()?;
        self.tx.0.take().expect("open transaction").commit()?;
        if self.upgraded {
            self.vault.state.legacy.store(false, Ordering::Release);
        }
        if self.log.is_some()
            && let Some(head) = self.state.log
            && let Err(e) = self.vault.remember_head(&head)
        {
            self.vault.warn(format!("the new log head was not remembered: {e}"));
        }
        Ok(())
    }

    /// Appends the entry of this transaction's operation to the log ([`crate::log::append`]),
    /// binding every record row written since the transaction began, and puts the new head in
    /// the state.
    ///
    /// Errors: as [`crate::log::append`].
    fn append_log(&mut self) -> Result<()> {
        let mut records = std::mem::take(&mut self.written);
        records.extend(self.tx.take_written());
        let Some((op, subjects)) = self.log.take() else { return Ok(()) };
        let vault = self.vault;
        let a =
            Append { vault_id: vault.header.vault_id, slot: &vault.state.slot, op: &op, subjects: &subjects, records };
        let mut seals = 0;
        let head = crate::log::append(&mut self.tx, self.state.log, a, |seq, e| {
            seals += 1;
            vault.envelope().seal_record(&Table::Log, &seq.to_be_bytes(), e)
        })?;
        self.state.meta_seals += seals;
        self.check_limit("metadata", self.state.meta_seals)?;
        self.state.log = Some(head);
        self.log = Some((op, subjects));
        Ok(())
    }

    /// Commits what was written so far without waiting for the disk, and goes on in a new
    /// transaction. A crash may lose a checkpointed part but never tears it, and a later durable
    /// [`Txn::commit`] makes it durable. `put` checkpoints its chunks every
    /// [`crate::ops::put::CHECKPOINT_BYTES`], which keeps redb from writing dirty pages twice
    /// under cache pressure; chunks of a put that never committed its manifest are garbage that
    /// `gc` collects.
    pub(crate) fn checkpoint(&mut self) -> Result<()> {
        self.written.extend(self.tx.take_written());
        self.write_state()?;
        self.tx.0.take().expect("open transaction").commit_checkpoint()?;
        self.tx = TxCell(Some(store::write(self.db)?));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::{Argon2Params, CreateOptions, NoProgress, Passphrase};

    struct Recorder(Mutex<Vec<String>>);
    impl Progress for Recorder {
        fn warn(&self, message: &str) {
            self.0.lock().unwrap().push(message.to_string());
        }
    }

    fn vault(dir: &std::path::Path) -> Vault<Unlocked> {
        let argon2 = Argon2Params { memory_kib: 256, time_cost: 1, lanes: 1 };
        let pass = Passphrase::new(b"warnings".to_vec()).unwrap();
        Vault::create(dir.join("w.mvault"), &pass, &CreateOptions { argon2, ..Default::default() }).unwrap()
    }

    /// Seals past the warning threshold once in a transaction, without committing.
    fn near_the_limit(txn: &mut Txn<'_>) {
        txn.state.chunk_seals = NONCE_WARN - 1;
        txn.count_chunk_seals(1).unwrap();
        txn.count_chunk_seals(1).unwrap(); // warned once per transaction
    }

    #[test]
    fn a_key_near_its_limit_is_never_a_silent_warning() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(dir.path());
        // Without a progress handle or sink: kept.
        near_the_limit(&mut v.write(Op::Put).unwrap());
        let kept = v.take_warnings();
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert!(kept[0].contains("the chunk key has sealed 1073741824 messages"), "{kept:?}");
        assert!(v.take_warnings().is_empty());
        // A progress whose warn does nothing does not lose it.
        near_the_limit(&mut v.write_reporting(Op::Put, &NoProgress).unwrap());
        assert_eq!(v.take_warnings().len(), 1);
        // A progress that reports it gets it (and it is kept too).
        let r = Recorder(Mutex::new(Vec::new()));
        near_the_limit(&mut v.write_reporting(Op::Put, &r).unwrap());
        assert_eq!(r.0.lock().unwrap().len(), 1);
        assert_eq!(v.take_warnings().len(), 1);
        // With a sink, a write without a progress hands it over instead of keeping it.
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        v.set_warning_sink(Box::new(move |m| s.lock().unwrap().push(m.to_string())));
        near_the_limit(&mut v.write(Op::Put).unwrap());
        assert_eq!(seen.lock().unwrap().len(), 1);
        assert!(v.take_warnings().is_empty());
    }
}
