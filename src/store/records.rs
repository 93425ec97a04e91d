//! The encodings of every record in the vault file. Each is a `postcard` serialisation
//! (<https://postcard.jamesmunns.com/wire-format>) of a struct below, sealed with AES-256-GCM
//! unless said otherwise. Decoding never trusts a length it has not checked: postcard bounds every
//! length by the bytes that remain, and every sealed value is authenticated before it is decoded.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};

use super::envelope;
use crate::crypto::SecretKey;
use crate::crypto::aead::OVERHEAD;
use crate::crypto::kdf::Argon2Params;
use crate::crypto::keys::SlotMacKey;
use crate::{Error, Result};

/// The format version this build writes. Version 2 added the `chunk_ids` index table; version 3
/// added the sealed live-record state (the live version numbers in each [`ModelRecord`], the count
/// and digest of live models in [`State`], and the passphrase check in [`SlotRecord`]). A build
/// refuses a file of a later version, so no older build can change records behind that state's
/// back.
pub const FORMAT_VERSION: u32 = 3;
/// The oldest format version this build opens. A version 1 or 2 vault is upgraded to
/// [`FORMAT_VERSION`] by its first write, in that write's transaction: the chunk index is built
/// (version 1), every model record is sealed again with the versions present, the state gets
/// the live models, and the header is rewritten.
pub const OLDEST_FORMAT_VERSION: u32 = 1;
/// Magic bytes at the front of the header record.
pub const MAGIC: [u8; 10] = *b"modelvault";

/// The public header (plaintext): enough to say what the file is before unlocking.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Header {
    /// Always [`MAGIC`].
    pub magic: [u8; 10],
    /// [`FORMAT_VERSION`] at creation, or since the upgrade by the first write of a newer build.
    pub format_version: u32,
    /// Random 128-bit vault id, bound into every key derivation and AAD.
    pub vault_id: [u8; 16],
    /// Creation time, Unix seconds.
    pub created: u64,
}

/// A key slot: the master key of one epoch wrapped under a KEK from one passphrase.
///
/// Stored as `postcard(SlotRecord) ‖ SHA-256(postcard(SlotRecord))`. The checksum lets `unlock` tell a
/// damaged slot from a wrong passphrase; it is not a security mechanism (the GCM tag is).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlotRecord {
    /// Epoch of the wrapped master key.
    pub epoch: u32,
    /// Argon2id cost parameters for this slot.
    pub params: Argon2Params,
    /// Random 128-bit Argon2 salt.
    pub salt: [u8; 16],
    /// `nonce ‖ AES-256-GCM(KEK, MK) ‖ tag` (60 bytes), AAD from [`SlotRecord::aad`].
    pub wrapped: Vec<u8>,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// While a master-key rotation runs: the next epoch and its master key wrapped under the same
    /// KEK (AAD for that epoch). `None` otherwise.
    pub next: Option<(u32, Vec<u8>)>,
    /// [`kek_check`] of this slot's KEK (format 3; `None` in a slot written before, which then
    /// cannot tell a changed vault id from a wrong passphrase). Lets `unlock` say that the
    /// passphrase is right but the wrap does not open under the header's vault id: damage, not
    /// a wrong passphrase. It reveals nothing the wrap does not (both need one Argon2id
    /// derivation per guess).
    pub kek_check: Option<[u8; 32]>,
}

/// A slot record as written by format versions 1 and 2 (no passphrase check).
#[derive(Deserialize)]
struct SlotRecordV2 {
    epoch: u32,
    params: Argon2Params,
    salt: [u8; 16],
    wrapped: Vec<u8>,
    created: u64,
    next: Option<(u32, Vec<u8>)>,
}

/// The passphrase check of a key slot: HKDF-SHA256 (RFC 5869) of the KEK, no salt, info
/// `"modelvault/v1/slot-check"`, 32 bytes. It depends on the passphrase, salt and Argon2
/// parameters only, never on the vault id.
pub fn kek_check(kek: &SecretKey) -> [u8; 32] {
    let mut out = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(None, kek.expose())
        .expand(b"modelvault/v1/slot-check", &mut out)
        .expect("32 bytes is a valid HKDF-SHA256 length");
    out
}

impl SlotRecord {
    /// The AAD of the wrapped master key: binds vault id, slot name, epoch and parameters.
    pub fn aad(vault_id: &[u8; 16], name: &str, epoch: u32, p: &Argon2Params) -> Vec<u8> {
        let mut a = super::aad("slot", vault_id, epoch, name.as_bytes());
        a.extend_from_slice(&p.memory_kib.to_be_bytes());
        a.extend_from_slice(&p.time_cost.to_be_bytes());
        a.extend_from_slice(&p.lanes.to_be_bytes());
        a
    }

    /// Encodes with the trailing checksum.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = postcard::to_stdvec(self).expect("slot record serialises");
        let sum = Sha256::digest(&body);
        body.extend_from_slice(&sum);
        body
    }

    /// Decodes, checking the checksum. `None` means the record is damaged (or is a
    /// [`RecipientSlot`], which starts with [`RECIPIENT_SLOT_MAGIC`]).
    pub fn decode(bytes: &[u8]) -> Option<SlotRecord> {
        if bytes.len() < 32 || RecipientSlot::is_recipient_slot(bytes) {
            return None;
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(body).as_slice() != sum {
            return None;
        }
        let rec: SlotRecord = match postcard::from_bytes(body) {
            Ok(r) => r,
            Err(_) => {
                let o: SlotRecordV2 = postcard::from_bytes(body).ok()?;
                SlotRecord {
                    epoch: o.epoch,
                    params: o.params,
                    salt: o.salt,
                    wrapped: o.wrapped,
                    created: o.created,
                    next: o.next,
                    kek_check: None,
                }
            }
        };
        let next_ok = rec.next.as_ref().is_none_or(|(_, w)| w.len() == 32 + OVERHEAD);
        (rec.wrapped.len() == 32 + OVERHEAD && next_ok).then_some(rec)
    }
}

/// The first bytes of a [`RecipientSlot`] record. Read as the start of a passphrase
/// [`SlotRecord`] they would give Argon2id `time_cost` 0, which no passphrase slot has (its
/// parameters are checked when it is made), so the two kinds never collide. The last byte is the
/// layout: 1 (with [`RecipientSlot::mac`]) is written; 0, the first layout, without it, is still
/// read ([`RECIPIENT_SLOT_MAGIC_V0`]).
pub const RECIPIENT_SLOT_MAGIC: [u8; 4] = [0xFF, b'M', b'V', 0x01];

/// The first bytes of a recipient slot of the first layout, which had no MAC: read, never written.
pub const RECIPIENT_SLOT_MAGIC_V0: [u8; 4] = [0xFF, b'M', b'V', 0x00];

/// Domain label that starts the payload a recipient slot's age file carries.
pub const RECIPIENT_PAYLOAD_LABEL: &[u8] = b"modelvault/v1/recipient-slot\0";

/// Domain label that starts the message a recipient slot's MAC covers.
pub const RECIPIENT_MAC_LABEL: &[u8] = b"modelvault/v1/recipient-slot-mac\0";

/// A key slot opened by a private key instead of a passphrase (format 3), in the `slots` table
/// beside passphrase slots, under its name: `RECIPIENT_SLOT_MAGIC ‖ postcard(RecipientSlot) ‖
/// SHA-256(everything before)`. Not sealed: the recipients are public keys.
///
/// `body` is a binary age file (age-encryption.org/v1) to every recipient, whose payload is
/// [`RecipientSlot::payload`] of the master key of `epoch`. Anyone holding one of the matching
/// private keys (an age identity, or an SSH private key) opens it, with the `age` command too.
///
/// The recipient list is what a rotation encrypts the next master key to, so it is
/// authenticated: `mac` is HMAC-SHA256 ([`SlotMacKey`], keyed from the master key of `epoch`) over
/// [`RecipientSlot::mac_message`]. Only a holder of that master key writes one; a slot planted or
/// rewritten by someone who only holds the file does not verify, and no rotation wraps a new
/// master key to it. That a record was once written is not that it is still live: the sealed
/// [`State::recipient_slots`] lists the (name, MAC) of the live ones, so a removed slot put back
/// is not rotated either.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecipientSlot {
    /// Epoch of the wrapped master key.
    pub epoch: u32,
    /// The recipients the body is encrypted to, as given (`age1…` or `ssh-… AAAA…`).
    pub recipients: Vec<String>,
    /// The age file wrapping the master key of `epoch`.
    pub body: Vec<u8>,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// While a master-key rotation runs: the next epoch and an age file wrapping its master key
    /// to the same recipients. `None` otherwise.
    pub next: Option<(u32, Vec<u8>)>,
    /// The MAC of the slot at `epoch` with `body`; `None` in a slot of the first layout.
    pub mac: Option<[u8; 32]>,
    /// The MAC of the slot at the epoch of `next` with its body, keyed from the master key of
    /// `epoch` (the one the rotation started from).
    pub next_mac: Option<[u8; 32]>,
}

/// A recipient slot as the first layout wrote it (magic [`RECIPIENT_SLOT_MAGIC_V0`]).
#[derive(Deserialize)]
struct RecipientSlotV0 {
    epoch: u32,
    recipients: Vec<String>,
    body: Vec<u8>,
    created: u64,
    next: Option<(u32, Vec<u8>)>,
}

impl RecipientSlot {
    /// The payload the age file carries (92 bytes + the name):
    /// `"modelvault/v1/recipient-slot" ‖ 0x00 ‖ vault id (16 B) ‖ epoch (u32 BE) ‖ MK (32 B) ‖
    /// slot name (UTF-8)`. Binding the vault id, epoch and slot name means a body moved to
    /// another slot, epoch or vault does not open there.
    pub fn payload(vault_id: &[u8; 16], epoch: u32, name: &str, mk: &[u8; 32]) -> zeroize::Zeroizing<Vec<u8>> {
        let mut p = zeroize::Zeroizing::new(Vec::with_capacity(RECIPIENT_PAYLOAD_LABEL.len() + 52 + name.len()));
        p.extend_from_slice(RECIPIENT_PAYLOAD_LABEL);
        p.extend_from_slice(vault_id);
        p.extend_from_slice(&epoch.to_be_bytes());
        p.extend_from_slice(mk);
        p.extend_from_slice(name.as_bytes());
        p
    }

    /// The master key in `payload` if it is [`RecipientSlot::payload`] for exactly this vault
    /// id, epoch and slot name; `None` otherwise.
    pub fn open_payload(
        payload: &[u8],
        vault_id: &[u8; 16],
        epoch: u32,
        name: &str,
    ) -> Option<zeroize::Zeroizing<[u8; 32]>> {
        let head = RECIPIENT_PAYLOAD_LABEL.len();
        if payload.len() != head + 52 + name.len() || !payload.starts_with(RECIPIENT_PAYLOAD_LABEL) {
            return None;
        }
        let rest = &payload[head..];
        if rest[..16] != vault_id[..] || rest[16..20] != epoch.to_be_bytes() || &rest[52..] != name.as_bytes() {
            return None;
        }
        rest[20..52].try_into().ok().map(zeroize::Zeroizing::new)
    }

    /// The message a recipient slot's MAC covers, every length fixed or prefixed (u32 BE):
    /// `"modelvault/v1/recipient-slot-mac" ‖ 0x00 ‖ vault id (16 B) ‖ len ‖ slot name ‖ epoch
    /// (u32 BE) ‖ created (u64 BE) ‖ number of recipients ‖ (len ‖ recipient)… ‖ SHA-256(body)`.
    pub fn mac_message(
        vault_id: &[u8; 16],
        name: &str,
        epoch: u32,
        created: u64,
        recipients: &[String],
        body: &[u8],
    ) -> Vec<u8> {
        let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes();
        let mut m = Vec::with_capacity(128 + name.len() + recipients.iter().map(|r| r.len() + 4).sum::<usize>());
        m.extend_from_slice(RECIPIENT_MAC_LABEL);
        m.extend_from_slice(vault_id);
        m.extend_from_slice(&len(name.len()));
        m.extend_from_slice(name.as_bytes());
        m.extend_from_slice(&epoch.to_be_bytes());
        m.extend_from_slice(&created.to_be_bytes());
        m.extend_from_slice(&len(recipients.len()));
        for r in recipients {
            m.extend_from_slice(&len(r.len()));
            m.extend_from_slice(r.as_bytes());
        }
        m.extend_from_slice(&Sha256::digest(body));
        m
    }

    /// Sets [`RecipientSlot::mac`] for the slot as it is, under `key`, the slot MAC key of its
    /// epoch.
    pub fn authenticate(&mut self, key: &SlotMacKey, vault_id: &[u8; 16], name: &str) {
        self.mac =
            Some(key.tag(&Self::mac_message(vault_id, name, self.epoch, self.created, &self.recipients, &self.body)));
    }

    /// Sets [`RecipientSlot::next_mac`] for the slot's `next` wrap under `key`, the slot MAC key
    /// of the slot's current epoch (not of the next one: only a holder of the current master key
    /// can start a rotation, so only they can vouch for a next wrap). Nothing when there is no
    /// `next`.
    pub fn authenticate_next(&mut self, key: &SlotMacKey, vault_id: &[u8; 16], name: &str) {
        if let Some((e, body)) = &self.next {
            self.next_mac = Some(key.tag(&Self::mac_message(vault_id, name, *e, self.created, &self.recipients, body)));
        }
    }

    /// True when [`RecipientSlot::mac`] verifies under `key`, the slot MAC key of `epoch` (false
    /// for a slot of another epoch, or one without a MAC).
    pub fn authentic(&self, key: &SlotMacKey, vault_id: &[u8; 16], epoch: u32, name: &str) -> bool {
        let Some(tag) = &self.mac else { return false };
        self.epoch == epoch
            && key.verify(&Self::mac_message(vault_id, name, epoch, self.created, &self.recipients, &self.body), tag)
    }

    /// True when the slot's `next` wrap is of epoch `next_epoch` and [`RecipientSlot::next_mac`]
    /// verifies under `key`, the slot MAC key of the slot's current epoch.
    pub fn next_authentic(&self, key: &SlotMacKey, vault_id: &[u8; 16], next_epoch: u32, name: &str) -> bool {
        let (Some((e, body)), Some(tag)) = (&self.next, &self.next_mac) else { return false };
        *e == next_epoch
            && key.verify(&Self::mac_message(vault_id, name, *e, self.created, &self.recipients, body), tag)
    }

    /// Encodes with the magic and the trailing checksum.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = RECIPIENT_SLOT_MAGIC.to_vec();
        body.extend_from_slice(&postcard::to_stdvec(self).expect("recipient slot serialises"));
        let sum = Sha256::digest(&body);
        body.extend_from_slice(&sum);
        body
    }

    /// True when `bytes` start as a recipient slot of either layout.
    pub fn is_recipient_slot(bytes: &[u8]) -> bool {
        bytes.starts_with(&RECIPIENT_SLOT_MAGIC) || bytes.starts_with(&RECIPIENT_SLOT_MAGIC_V0)
    }

    /// Decodes either layout, checking the magic, the checksum and the bounds (at most
    /// [`crate::crypto::recipient::MAX_RECIPIENTS`] recipients, bodies of at most
    /// [`crate::crypto::recipient::MAX_AGE_FILE`] bytes); a slot of the first layout has no
    /// MAC. `None` means it is not a recipient slot, or a damaged one.
    pub fn decode(bytes: &[u8]) -> Option<RecipientSlot> {
        use crate::crypto::recipient::{MAX_AGE_FILE, MAX_RECIPIENTS};
        if bytes.len() < 36 || !Self::is_recipient_slot(bytes) {
            return None;
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(body).as_slice() != sum {
            return None;
        }
        let rec: RecipientSlot = if body.starts_with(&RECIPIENT_SLOT_MAGIC) {
            postcard::from_bytes(&body[4..]).ok()?
        } else {
            let o: RecipientSlotV0 = postcard::from_bytes(&body[4..]).ok()?;
            let (epoch, recipients, body, created, next) = (o.epoch, o.recipients, o.body, o.created, o.next);
            RecipientSlot { epoch, recipients, body, created, next, mac: None, next_mac: None }
        };
        let next_ok = rec.next.as_ref().is_none_or(|(_, b)| b.len() <= MAX_AGE_FILE);
        let ok = !rec.recipients.is_empty() && rec.recipients.len() <= MAX_RECIPIENTS && rec.body.len() <= MAX_AGE_FILE;
        (ok && next_ok).then_some(rec)
    }
}

/// Mutable vault-wide state, sealed under the metadata key.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct State {
    /// Current key epoch.
    pub epoch: u32,
    /// Id of the signing key used for new manifests.
    pub active_signer: u32,
    /// Next signer id to allocate.
    pub next_signer: u32,
    /// AES-GCM seals made under this epoch's chunk key.
    pub chunk_seals: u64,
    /// AES-GCM seals made under this epoch's metadata key.
    pub meta_seals: u64,
    /// A master-key rotation in progress: the epoch being rotated to. Every write finishes it first.
    pub rotating_to: Option<u32>,
    /// Number of model records (format 3; set by every commit from the models table).
    pub live_models: u64,
    /// [`models_digest`] of the model record keys (format 3; set with `live_models`).
    pub models_digest: [u8; 32],
    /// The live recipient key slots, as (name, [`RecipientSlot::mac`]), kept by every write that
    /// adds, removes or re-wraps one: a rotation re-wraps only these. `None` in a state written
    /// before it was kept (such a vault trusts any slot whose MAC verifies until its first key
    /// change, which starts the list).
    pub recipient_slots: Option<Vec<(String, [u8; 32])>>,
    /// The head of the signed log (`crate::log`): set by every logged commit. `None` in a state
    /// written before the vault kept a log (its first logged write starts one).
    pub log: Option<LogHead>,
}

/// The head of the vault's log, sealed in the state so that the log tables cannot be put back
/// or cut short without the state record that names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHead {
    /// The log's id: 16 random bytes drawn when the log began (a clone starts its own log).
    pub id: [u8; 16],
    /// Number of entries (leaves).
    pub size: u64,
    /// RFC 6962 root hash of the tree of `size` leaves.
    pub root: [u8; 32],
}

/// The state as format 3 wrote it before [`State::log`] (postcard writes a nested struct's
/// fields in place).
#[derive(Deserialize)]
struct StateV4 {
    v3: StateV3,
    recipient_slots: Option<Vec<(String, [u8; 32])>>,
}

/// The state as format 3 wrote it before [`State::recipient_slots`]: the format 1 and 2 fields,
/// then the live models (postcard writes a nested struct's fields in place, so this is the same
/// byte layout as the flat struct).
#[derive(Deserialize)]
struct StateV3 {
    v2: StateV2,
    live_models: u64,
    models_digest: [u8; 32],
}

impl State {
    /// True when [`State::recipient_slots`] lists slot `name` with `mac`, or lists nothing yet.
    pub fn lists_recipient_slot(&self, name: &str, mac: Option<[u8; 32]>) -> bool {
        self.recipient_slots.as_ref().is_none_or(|live| live.iter().any(|(n, m)| n == name && Some(*m) == mac))
    }
}

/// The state as written by format versions 1 and 2 (no live-model count or digest).
#[derive(Deserialize)]
struct StateV2 {
    epoch: u32,
    active_signer: u32,
    next_signer: u32,
    chunk_seals: u64,
    meta_seals: u64,
    rotating_to: Option<u32>,
}

impl StateV2 {
    /// The state with these fields and the given live models, no recipient-slot list.
    fn with_live(self, live_models: u64, models_digest: [u8; 32]) -> State {
        State {
            epoch: self.epoch,
            active_signer: self.active_signer,
            next_signer: self.next_signer,
            chunk_seals: self.chunk_seals,
            meta_seals: self.meta_seals,
            rotating_to: self.rotating_to,
            live_models,
            models_digest,
            recipient_slots: None,
            log: None,
        }
    }
}

/// Decodes a state record: `(state, true)` for a format 3 encoding (with or without the
/// recipient-slot list), `(state, false)` for a format 1 or 2 encoding (whose live-model fields
/// are then zero and mean nothing).
///
/// Errors: [`Error::Damaged`] naming `what` when neither decodes.
pub fn decode_state(what: &str, bytes: &[u8]) -> Result<(State, bool)> {
    // Longest layout first: each shorter one ends where the longer needs more bytes.
    if let Ok(s) = postcard::from_bytes::<State>(bytes) {
        return Ok((s, true));
    }
    if let Ok(o) = postcard::from_bytes::<StateV4>(bytes) {
        let mut s = o.v3.v2.with_live(o.v3.live_models, o.v3.models_digest);
        s.recipient_slots = o.recipient_slots;
        return Ok((s, true));
    }
    if let Ok(o) = postcard::from_bytes::<StateV3>(bytes) {
        return Ok((o.v2.with_live(o.live_models, o.models_digest), true));
    }
    let o: StateV2 = decode(what, bytes)?;
    Ok((o.with_live(0, [0; 32]), false))
}

/// The digest of the set of live models: SHA-256 of `"modelvault/v3/live-models\0"` followed by
/// every model record key (32 B each) in ascending order, as redb iterates them.
pub fn models_digest<'a>(keys: impl IntoIterator<Item = &'a [u8; 32]>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"modelvault/v3/live-models\0");
    for k in keys {
        h.update(k);
    }
    h.finalize().into()
}

/// An Ed25519 signing key, sealed under the metadata key.
#[derive(Serialize, Deserialize)]
pub struct SignerRecord {
    /// The 32-byte secret seed.
    pub seed: [u8; 32],
    /// The public key.
    pub public: [u8; 32],
    /// Creation time, Unix seconds.
    pub created: u64,
    /// When it stopped signing new manifests, if it did.
    pub retired: Option<u64>,
}

impl Drop for SignerRecord {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.seed);
    }
}

/// A public key from another vault that this vault trusts (`mvault trust add`), sealed under
/// the metadata key in table `trust`, keyed by its name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TrustRecord {
    /// The name it was added under (the record key).
    pub name: String,
    /// Ed25519 public key.
    pub public: [u8; 32],
    /// When it was added, Unix seconds.
    pub added: u64,
}

/// A remote this vault shares through (`Vault::remote_add`), sealed under the metadata key in
/// table `remotes`, keyed by its name. Holds where the remote is and what its probe found; never
/// a credential.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RemoteRecord {
    /// The name it was added under (the record key).
    pub name: String,
    /// `s3://BUCKET/PREFIX`, canonical form.
    pub url: String,
    /// The server's base URL, or `None` for the AWS default.
    pub endpoint: Option<String>,
    /// The region.
    pub region: String,
    /// True when several vaults may write to the remote at once: the server passed the probe
    /// of create-only writes and the user did not ask for single-writer use.
    pub multi_writer: bool,
    /// The probe's failure, as a sentence, when the server failed it (`None`: it passed).
    pub probe_failure: Option<String>,
    /// When it was added, Unix seconds.
    pub added: u64,
}

/// A model: its name and the state shared by its versions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelRecord {
    /// The model name (checked by [`crate::names::check_model_name`]).
    pub name: String,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// The number the next put gets.
    pub next_version: u64,
    /// Alias → version.
    pub aliases: BTreeMap<String, u64>,
    /// Model-level description.
    pub description: String,
    /// Every alias move, oldest first (appended by put, set_alias, remove_alias and
    /// remove_version).
    pub alias_history: Vec<AliasEvent>,
    /// The live version numbers, ascending (format 3): every one has a version record, and no
    /// other version record of this model exists. Read from the version records present for a
    /// record written before (see [`decode_model`]).
    pub live: Vec<u64>,
    /// True when this record was decoded from a format 1 or 2 encoding (`live` is then empty and
    /// means nothing). Never stored.
    #[serde(skip)]
    pub legacy: bool,
}

impl ModelRecord {
    /// The record of a model that has no version yet: `name`, created at `created` (Unix
    /// seconds), version numbers starting at 1, no alias, description or history.
    pub fn new(name: &str, created: u64) -> Self {
        ModelRecord {
            name: name.to_string(),
            created,
            next_version: 1,
            aliases: BTreeMap::new(),
            description: String::new(),
            alias_history: Vec::new(),
            live: Vec::new(),
            legacy: false,
        }
    }
}

/// A model record as written by format versions 1 and 2 (no live versions).
#[derive(Deserialize)]
struct ModelRecordV2 {
    name: String,
    created: u64,
    next_version: u64,
    aliases: BTreeMap<String, u64>,
    description: String,
    alias_history: Vec<AliasEvent>,
}

/// Decodes a model record. A format 1 or 2 encoding is accepted only with `legacy_ok` (the
/// vault's sealed state is itself of that format) and comes back with `legacy` set.
///
/// Errors: [`Error::Damaged`] naming `what`.
pub fn decode_model(what: &str, bytes: &[u8], legacy_ok: bool) -> Result<ModelRecord> {
    match postcard::from_bytes::<ModelRecord>(bytes) {
        Ok(m) => Ok(m),
        Err(_) if legacy_ok => {
            let o: ModelRecordV2 = decode(what, bytes)?;
            Ok(ModelRecord {
                name: o.name,
                created: o.created,
                next_version: o.next_version,
                aliases: o.aliases,
                description: o.description,
                alias_history: o.alias_history,
                live: Vec::new(),
                legacy: true,
            })
        }
        Err(e) => Err(Error::Damaged(format!(
            "{what}: record does not decode as format {FORMAT_VERSION} ({e}): the vault is damaged, or an older copy of the record was put back"
        ))),
    }
}

/// One alias move: `alias` went from version `from` to version `to` at time `at`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AliasEvent {
    /// The alias.
    pub alias: String,
    /// The version it pointed at before (`None`: it was new).
    pub from: Option<u64>,
    /// The version it points at after (`None`: it was removed).
    pub to: Option<u64>,
    /// When, Unix seconds.
    pub at: u64,
}

/// A version: its signed manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionRecord {
    /// Canonical manifest bytes (see [`crate::manifest`]).
    pub manifest: Vec<u8>,
    /// Ed25519 signature over the manifest with the domain prefix.
    pub signature: Vec<u8>,
    /// Public key that made the signature.
    pub signer: [u8; 32],
}

/// Serialises a record.
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_stdvec(v).expect("in-memory records serialise")
}

/// Deserialises a record, naming it in the error.
pub fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes)
        .map_err(|e| Error::Damaged(format!("{what}: record does not decode ({e}): the vault is damaged")))
}

/// Layout version byte in front of every sealed value (chunks and records).
pub const SEALED_VALUE_VERSION: u8 = envelope::VERSION;
/// Bytes in front of a value's nonce: version (1) + epoch (4).
pub const SEALED_HEADER_LEN: usize = envelope::HEADER_LEN;
/// Same as [`SEALED_HEADER_LEN`], for chunk values.
pub const CHUNK_HEADER_LEN: usize = SEALED_HEADER_LEN;
/// Same as [`SEALED_VALUE_VERSION`], for chunk values.
pub const CHUNK_VALUE_VERSION: u8 = SEALED_VALUE_VERSION;
/// The header, split and layout of sealed values belong to [`super::envelope`]; these names stay
/// for the callers (and fuzz targets) that use them.
pub use super::envelope::{header as sealed_prefix, split as split_chunk_value, split as split_sealed};

/// The vault's index key, sealed under the metadata key (table `meta`, key `index`).
#[derive(Serialize, Deserialize)]
pub struct IndexRecord {
    /// 32 random bytes made at `init`; see [`crate::crypto::keys::IndexKeys`].
    pub key: [u8; 32],
}

impl Drop for IndexRecord {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}
