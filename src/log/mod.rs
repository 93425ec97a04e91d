//! The vault's signed log: one sealed entry per committed change (who, what, when), kept as a
//! Merkle tree with RFC 6962 hashing, whose head (size, root) the sealed state carries and whose
//! signed checkpoints (C2SP tlog-checkpoint in a C2SP signed note) a user keeps to detect a
//! rollback. See SECURITY.md, "Signed log".
//!
//! - [`Entry`]: what a sealed `log` row holds; [`Leaf`]: its part the tree hashes. A leaf names
//!   the entry's subjects (model, versions, detail) only through a salted SHA-256 commitment, so
//!   erasure can seal the entry again without them and the tree does not change.
//! - `tree`: the stored hashes (`tlog_tiles`), the root and consistency proofs.
//! - `checkpoint`: the signed note text, signing and checking it.
//! - `memory`: the newest checkpoint this user has seen per vault, in the user's state directory.
//!
//! This module must never print, hold a key beyond the call that uses it, or put a model name
//! anywhere but inside a sealed entry.

pub mod checkpoint;
pub mod memory;
pub(crate) mod tree;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Result;
use crate::crypto::fill_random;
use crate::store::records::LogHead;
use crate::store::{RecordWrite, WriteTxn};

/// Domain prefix of a leaf's bytes (the record the tree hashes as `SHA-256(0x00 ‖ bytes)`).
pub const LEAF_DOMAIN: &[u8] = b"modelvault log leaf v1\0";
/// Domain prefix of a subject commitment.
const SUBJECT_DOMAIN: &[u8] = b"modelvault log subjects v1\0";
/// Domain prefix of the commitment to the record rows an entry's transaction wrote.
const RECORDS_DOMAIN: &[u8] = b"modelvault log records v1\0";

/// What a logged change was. Stored by its [`Op::as_str`] name, so an entry written by a later
/// version with an operation this one does not know still reads (as [`Op::Other`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// The vault was created.
    Create,
    /// A version was stored.
    Put,
    /// A version or model was removed.
    Remove,
    /// Versions a retention policy did not keep were removed.
    Forget,
    /// A model or version was erased (what, is not kept).
    Erase,
    /// Chunks no version uses were deleted.
    Gc,
    /// An alias was moved or set.
    Alias,
    /// An alias was removed.
    Unalias,
    /// Tags, metrics or description of a version changed (a new manifest revision).
    Revise,
    /// A model's description changed.
    Describe,
    /// The pickle allow-list changed.
    Allow,
    /// A trusted key was added.
    Trust,
    /// A trusted key was removed.
    Untrust,
    /// The signing key was replaced.
    SignerRotate,
    /// A key slot was added.
    KeyAdd,
    /// A key slot was removed.
    KeyRemove,
    /// A key slot's passphrase changed.
    KeyPasswd,
    /// The master key was rotated.
    KeyRotate,
    /// A rotation sealed every record again under the new master key.
    Reseal,
    /// A remote was added.
    RemoteAdd,
    /// A remote was removed.
    RemoteRemove,
    /// Versions were pushed to a remote.
    Push,
    /// Versions were pulled from a remote.
    Pull,
    /// A remote's garbage was collected.
    RemoteGc,
    /// Signing keys were taken from a remote.
    RemoteSigners,
    /// The vault was made from a remote.
    Clone,
    /// An operation this version does not know (its stored name).
    Other(String),
}

const NAMES: [(&str, Op); 26] = [
    ("create", Op::Create),
    ("put", Op::Put),
    ("rm", Op::Remove),
    ("forget", Op::Forget),
    ("erase", Op::Erase),
    ("gc", Op::Gc),
    ("alias", Op::Alias),
    ("unalias", Op::Unalias),
    ("revise", Op::Revise),
    ("describe", Op::Describe),
    ("allow", Op::Allow),
    ("trust", Op::Trust),
    ("untrust", Op::Untrust),
    ("signer-rotate", Op::SignerRotate),
    ("key-add", Op::KeyAdd),
    ("key-remove", Op::KeyRemove),
    ("key-passwd", Op::KeyPasswd),
    ("key-rotate", Op::KeyRotate),
    ("reseal", Op::Reseal),
    ("remote-add", Op::RemoteAdd),
    ("remote-remove", Op::RemoteRemove),
    ("push", Op::Push),
    ("pull", Op::Pull),
    ("remote-gc", Op::RemoteGc),
    ("remote-signers", Op::RemoteSigners),
    ("clone", Op::Clone),
];

impl Op {
    /// The stored name (`put`, `rm`, `key-rotate`, ...).
    pub fn as_str(&self) -> &str {
        match self {
            Op::Other(s) => s,
            op => NAMES.iter().find(|(_, o)| o == op).map(|(n, _)| *n).unwrap_or("?"),
        }
    }

    /// The operation stored as `name`.
    pub fn from_name(name: &str) -> Op {
        NAMES.iter().find(|(n, _)| *n == name).map(|(_, o)| o.clone()).unwrap_or_else(|| Op::Other(name.to_string()))
    }
}

/// What an entry is about: sealed, and in the leaf only as a salted commitment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subjects {
    /// The model, if the change was to one.
    pub model: Option<String>,
    /// Its versions the change made or removed (in order).
    pub versions: Vec<u64>,
    /// Anything else it names: an alias, a key slot, a remote, a trusted key's name.
    pub detail: Option<String>,
}

impl Subjects {
    /// SHA-256(domain ‖ salt ‖ postcard(self)): binding (the entry cannot later name other
    /// subjects) and hiding (16 random bytes of salt).
    pub fn commitment(&self, salt: &[u8; 16]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(SUBJECT_DOMAIN);
        h.update(salt);
        h.update(crate::store::records::encode(self));
        h.finalize().into()
    }
}

/// The part of an entry the tree hashes. Everything in it but the commitment is also in the
/// clear to any key holder; none of it names a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leaf {
    /// The vault's id (an entry cannot be moved to another vault's log).
    pub vault_id: [u8; 16],
    /// The log's id (random when the log began).
    pub log_id: [u8; 16],
    /// Sequence number: the leaf's index in the tree, from 0.
    pub seq: u64,
    /// When, Unix seconds.
    pub time: u64,
    /// The operation's stored name ([`Op::as_str`]).
    pub op: String,
    /// The key slot that unlocked the vault for the change.
    pub slot: String,
    /// [`Subjects::commitment`] of the entry's subjects.
    pub subjects: [u8; 32],
    /// [`records_commitment`] of the record rows the change wrote or deleted.
    pub records: [u8; 32],
}

/// SHA-256(domain ‖ postcard(records)): the leaf's binding of the rows an entry's transaction
/// wrote (table, key, SHA-256 of the sealed value, or deletion). Row keys and value hashes say
/// nothing a file holder does not see in the file itself.
pub fn records_commitment(records: &[RecordWrite]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(RECORDS_DOMAIN);
    h.update(crate::store::records::encode(&records));
    h.finalize().into()
}

impl Leaf {
    /// The record bytes the tree hashes: [`LEAF_DOMAIN`] ‖ postcard(self).
    pub fn bytes(&self) -> Vec<u8> {
        let mut b = LEAF_DOMAIN.to_vec();
        b.extend_from_slice(&crate::store::records::encode(self));
        b
    }
}

/// A sealed `log` row: the leaf, and the subjects with the salt that opens its commitment
/// (both gone once erasure has dropped them: `subjects` is `None`, the salt zero).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// The hashed part.
    pub leaf: Leaf,
    /// The subjects, `None` after erasure dropped them.
    pub subjects: Option<Subjects>,
    /// The commitment's salt (zero after erasure).
    pub salt: [u8; 16],
    /// The record rows the change wrote or deleted, in order (see [`RecordWrite`]).
    pub records: Vec<RecordWrite>,
}

impl Entry {
    /// True when the subjects present open the leaf's commitment (or were dropped by erasure).
    pub fn subjects_match(&self) -> bool {
        let subjects = match &self.subjects {
            Some(s) => s.commitment(&self.salt) == self.leaf.subjects,
            None => true,
        };
        subjects && records_commitment(&self.records) == self.leaf.records
    }
}

/// An entry as a key holder reads it (`mvault log`).
#[derive(Debug, Clone, Serialize)]
pub struct EntryView {
    /// Sequence number, from 0.
    pub seq: u64,
    /// When, Unix seconds.
    pub time: u64,
    /// The operation's name.
    pub op: String,
    /// The key slot that made the change.
    pub slot: String,
    /// The model, if any (`None` also after erasure).
    pub model: Option<String>,
    /// The versions made or removed.
    pub versions: Vec<u64>,
    /// An alias, slot, remote or trusted key's name, if any.
    pub detail: Option<String>,
    /// True when erasure dropped what the entry was about.
    pub erased: bool,
}

impl From<&Entry> for EntryView {
    fn from(e: &Entry) -> Self {
        let s = e.subjects.clone().unwrap_or_default();
        EntryView {
            seq: e.leaf.seq,
            time: e.leaf.time,
            op: e.leaf.op.clone(),
            slot: e.leaf.slot.clone(),
            model: s.model,
            versions: s.versions,
            detail: s.detail,
            erased: e.subjects.is_none(),
        }
    }
}

/// What one append needs besides the transaction: who, what, and the rows it wrote.
pub(crate) struct Append<'a> {
    /// The vault's id.
    pub vault_id: [u8; 16],
    /// The key slot that unlocked the vault.
    pub slot: &'a str,
    /// The operation.
    pub op: &'a Op,
    /// What it is about.
    pub subjects: &'a Subjects,
    /// The record rows it wrote or deleted.
    pub records: Vec<RecordWrite>,
}

/// Appends one entry to the log in `tx`, after `head` (`None`: the log begins, with a random
/// id): its leaf's stored hashes and the entry sealed by `seal(seq, entry)`. Returns the new
/// head, for the state the same transaction writes.
///
/// Errors: [`crate::Error::Damaged`] when `head` is `None` but the file holds log entries (an
/// older state record was put back), or a stored hash the append needs is missing; as `seal`;
/// [`crate::Error::Storage`].
pub(crate) fn append(
    tx: &mut WriteTxn,
    head: Option<LogHead>,
    a: Append<'_>,
    seal: impl FnOnce(u64, &Entry) -> Result<Vec<u8>>,
) -> Result<LogHead> {
    use crate::store::LogRead;
    let head = match head {
        Some(h) => h,
        None if tx.log_hash_count()? > 0 || tx.log_entry(0)?.is_some() => {
            return Err(crate::Error::Damaged(
                "the vault state names no log, but the file holds log entries: an older state record was put back; restore the vault from a backup; nothing was written".into(),
            ));
        }
        None => {
            let mut id = [0u8; 16];
            fill_random(&mut id)?;
            LogHead { id, size: 0, root: [0; 32] }
        }
    };
    // Never extend a log whose tail was cut: the new entry would hide the hole behind it.
    let whole = tx.log_hash_count()? == tlog_tiles::stored_hash_count(head.size)
        && (head.size == 0 || tx.log_entry(head.size - 1)?.is_some());
    if !whole {
        return Err(crate::Error::Damaged(format!(
            "the vault's log is cut short: the state names {} entries, but the file lacks the last one or its tree hashes; verify the log, and restore the vault from a backup; nothing was written",
            head.size
        )));
    }
    let mut salt = [0u8; 16];
    fill_random(&mut salt)?;
    let leaf = Leaf {
        vault_id: a.vault_id,
        log_id: head.id,
        seq: head.size,
        time: crate::vault::now(),
        op: a.op.as_str().to_string(),
        slot: a.slot.to_string(),
        subjects: a.subjects.commitment(&salt),
        records: records_commitment(&a.records),
    };
    let (first, hashes) = tree::hashes_for(&*tx, head.size, &leaf.bytes())?;
    let entry = Entry { leaf, subjects: Some(a.subjects.clone()), salt, records: a.records };
    let sealed = seal(head.size, &entry)?;
    tx.put_log(head.size, &sealed, first, &hashes)?;
    let size = head.size + 1;
    Ok(LogHead { id: head.id, size, root: tree::root(&*tx, size)? })
}
