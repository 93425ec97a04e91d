//! `verify`: check every model record, every manifest (authentication, Ed25519 signature,
//! canonical encoding, binding to vault, name and version) and that every referenced chunk is
//! present, that the version records present are exactly the live versions each model record
//! lists, that the model records present are the live models the sealed state counts, and
//! that the chunk index lists exactly the stored chunks. With `read_data`, also decrypt every chunk, recompute its id, and recompute every
//! file's SHA-256. An unfinished `rm --erase` is reported as a problem too. Each problem is
//! reported with the model, version and file it hurts; checking goes on past it.
//! `verify_only` does the same for one model or one version, without the vault-wide checks.

use std::collections::HashSet;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::manifest::{Manifest, hex};
use crate::names::escape;
use crate::progress::Progress;
use crate::store::chunks::ChunkRead;
use crate::store::records::{self, ModelRecord, split_chunk_value};
use crate::store::{self, ReadTxn, RecordRead};
use crate::vault::{Unlocked, Vault};
use crate::{Remedy, Result};

/// One thing found wrong.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// Model name, when known.
    pub model: Option<String>,
    /// Version, when known.
    pub version: Option<u64>,
    /// File path inside the model, when known.
    pub file: Option<String>,
    /// What is wrong.
    pub detail: String,
    /// What to do about it, when the library knows: it completes `detail` (see
    /// [`Problem::message`]). Serialized only when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<Remedy>,
}

impl Problem {
    /// The detail and the remedy, in the library's terms.
    pub fn message(&self) -> String {
        match &self.remedy {
            Some(r) => format!("{}{r}", self.detail),
            None => self.detail.clone(),
        }
    }
}

/// What `verify` checked and found.
#[derive(Debug, Clone, Serialize, Default)]
pub struct VerifyReport {
    /// Models checked.
    pub models: u64,
    /// Versions whose manifest verified.
    pub versions: u64,
    /// Chunk references checked.
    pub chunks: u64,
    /// Plaintext bytes decrypted and hashed (0 without `read_data`).
    pub bytes_read: u64,
    /// Chunk references absent from the vault file that the remote set with
    /// [`Vault::set_chunk_source`] holds (a metadata-only pull left them there; a read fetches
    /// them): not damage. Serialized only when not 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub not_held_locally: u64,
    /// Everything found wrong; empty means the vault is sound.
    pub problems: Vec<Problem>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Which absent chunks the chunk source's remote holds, looked up once, on the first absent one.
struct RemoteHeld<'v> {
    vault: &'v Vault<Unlocked>,
    ids: std::cell::OnceCell<Option<HashSet<[u8; 32]>>>,
}

impl RemoteHeld<'_> {
    /// True when the remote lists `id` (false without a source, or when the remote could not
    /// be read: the problem says so once).
    fn holds(&self, id: &[u8; 32], rep: &mut VerifyReport) -> bool {
        let ids = self.ids.get_or_init(|| match self.vault.remote_chunk_ids() {
            None => None,
            Some(Ok(ids)) => Some(ids),
            Some(Err(e)) => {
                let detail = format!("chunks absent from the vault file could not be looked up on its remote: {e}");
                rep.problems.push(Problem { model: None, version: None, file: None, detail, remedy: None });
                None
            }
        });
        ids.as_ref().is_some_and(|s| s.contains(id))
    }
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Vault<Unlocked> {
    /// Verifies the whole vault (see module docs).
    ///
    /// Errors: only [`crate::Error::Storage`] when the file cannot be read at all; damage is reported
    /// in [`VerifyReport::problems`].
    pub fn verify(&self, read_data: bool, progress: &dyn Progress) -> Result<VerifyReport> {
        self.verify_only(read_data, None, progress)
    }

    /// Verifies as [`Vault::verify`] does, but only the model named by `only.0` (only its
    /// version `only.1`, when given); `None` checks the whole vault. With a filter, the
    /// vault-wide checks (records that belong to no readable model, the chunk index) are skipped,
    /// and an unreadable model record (whose name cannot be known) is not reported.
    ///
    /// Errors: as [`Vault::verify`]. An absent model or version gives an empty report; resolve
    /// the name first (e.g. with [`Vault::show`]) to report it as not found.
    pub fn verify_only(
        &self,
        read_data: bool,
        only: Option<(&str, Option<u64>)>,
        progress: &dyn Progress,
    ) -> Result<VerifyReport> {
        let mut rep = VerifyReport::default();
        let rx = store::read(&self.db)?;
        if !self.has_model_tables(&rx)? {
            return Ok(rep);
        }
        let (known_models, manifests) = self.verify_records(&rx, only, &mut rep)?;
        if only.is_none() {
            for (mk, version, _) in rx.all_versions()? {
                if !known_models.contains(&mk) {
                    let key = store::version_key(&mk, version);
                    rep.problems.push(Problem {
                        model: None,
                        version: None,
                        file: None,
                        detail: format!("version record {}… belongs to no readable model record", &hex(&key)[..16]),
                        remedy: None,
                    });
                }
            }
        }
        if only.is_none()
            && let Some(detail) = self.model_set_problem()?
        {
            rep.problems.push(Problem { model: None, version: None, file: None, detail, remedy: None });
        }
        let referenced: HashSet<[u8; 32]> =
            manifests.iter().flat_map(|m| m.files.iter().flat_map(|f| f.chunks.iter().map(|c| c.id))).collect();
        let indexed = self.header.format_version >= records::FORMAT_VERSION;
        if only.is_none()
            && let Some(p) = check_chunk_index(&rx, indexed, &referenced)?
        {
            rep.problems.push(p);
        }
        let total: u64 = if read_data { manifests.iter().map(Manifest::total_size).sum() } else { 0 };
        progress.begin("verify", total);
        let held = RemoteHeld { vault: self, ids: Default::default() };
        for m in &manifests {
            self.verify_manifest_data(m, &rx, read_data, &held, &mut rep, progress);
        }
        progress.end();
        if let Some(p) = self.unfinished_erasure_problem() {
            rep.problems.push(p);
        }
        if only.is_none() {
            // The log: every entry, the tree, and every version it says was stored and kept.
            for detail in self.verify_log(None)?.problems {
                rep.problems.push(Problem { model: None, version: None, file: None, detail, remedy: None });
            }
        }
        Ok(rep)
    }

    /// An unfinished `rm --erase`: its versions are gone from the listing, but the file may still
    /// hold their chunks, manifests and records until it is finished.
    fn unfinished_erasure_problem(&self) -> Option<Problem> {
        match self.unfinished_erasure() {
            Ok(None) => None,
            Ok(Some(e)) => {
                let vs: Vec<String> = e.versions.iter().map(u64::to_string).collect();
                Some(Problem {
                    model: Some(e.name.clone()),
                    version: None,
                    file: None,
                    detail: format!(
                        "an erasure of model '{}' version(s) {} is unfinished: the vault file may still hold their \
                         chunks, manifests and records",
                        escape(&e.name),
                        vs.join(",")
                    ),
                    remedy: Some(Remedy::FinishErasure),
                })
            }
            Err(err) => Some(Problem {
                model: None,
                version: None,
                file: None,
                detail: format!("an erasure is unfinished and its record does not open ({err})"),
                remedy: Some(Remedy::FinishErasure),
            }),
        }
    }

    /// The model and version records of the vault (or of `only`), each opened and checked:
    /// the keys of the model records that open, and the manifests of the versions that check.
    /// Every record that does not is a problem in `rep`.
    ///
    /// Errors: [`crate::Error::Storage`].
    fn verify_records(
        &self,
        rx: &ReadTxn,
        only: Option<(&str, Option<u64>)>,
        rep: &mut VerifyReport,
    ) -> Result<(HashSet<[u8; 32]>, Vec<Manifest>)> {
        let mut known_models = HashSet::new();
        let mut manifests = Vec::new();
        for (key, v) in rx.models()? {
            let rec: ModelRecord = match self.open_model(&key, "model record", &v) {
                Ok(r) => r,
                Err(_) if only.is_some() => continue,
                Err(e) => {
                    let detail = format!("record {}…: {e}", &hex(&key)[..16]);
                    rep.problems.push(Problem { model: None, version: None, file: None, detail, remedy: None });
                    continue;
                }
            };
            known_models.insert(key);
            if only.is_some_and(|(n, _)| n != rec.name) {
                continue;
            }
            rep.models += 1;
            for (ver, detail) in self.live_mismatches(rx, &key, &rec)? {
                rep.problems.push(Problem {
                    model: Some(rec.name.clone()),
                    version: Some(ver),
                    file: None,
                    detail,
                    remedy: None,
                });
            }
            for ver in rx.version_numbers(&key)? {
                if only.is_some_and(|(_, v)| v.is_some_and(|v| v != ver)) {
                    continue;
                }
                match self.load_version(rx, &rec.name, ver) {
                    Ok((m, _)) => {
                        rep.versions += 1;
                        manifests.push(m);
                    }
                    Err(e) => rep.problems.push(Problem {
                        model: Some(rec.name.clone()),
                        version: Some(ver),
                        file: None,
                        detail: e.to_string(),
                        remedy: None,
                    }),
                }
            }
        }
        Ok((known_models, manifests))
    }

    fn verify_manifest_data(
        &self,
        m: &Manifest,
        chunks: &ReadTxn,
        read_data: bool,
        held: &RemoteHeld<'_>,
        rep: &mut VerifyReport,
        progress: &dyn Progress,
    ) {
        for f in &m.files {
            let problem = |detail: String| Problem {
                model: Some(m.name.clone()),
                version: Some(m.version),
                file: Some(f.path.clone()),
                detail,
                remedy: None,
            };
            let where_ = format!("model '{}' version {} file '{}'", escape(&m.name), m.version, escape(&f.path));
            let mut sha = Sha256::new();
            let mut file_ok = true;
            for (i, c) in f.chunks.iter().enumerate() {
                rep.chunks += 1;
                if !chunks.contains(&c.id).unwrap_or(true) && held.holds(&c.id, rep) {
                    rep.not_held_locally += 1;
                    file_ok = false; // the file's hash cannot be checked here
                    continue;
                }
                if !read_data {
                    let present = ChunkRead::get(chunks, &c.id).ok().flatten();
                    match present {
                        None => {
                            rep.problems.push(problem(format!(
                                "{where_}: chunk {} of {} (id {}…) is missing",
                                i + 1,
                                f.chunks.len(),
                                &hex(&c.id)[..16]
                            )));
                            file_ok = false;
                        }
                        Some(v) if split_chunk_value(v.as_ref()).is_none() => {
                            rep.problems.push(problem(format!(
                                "{where_}: chunk {} of {} has an unreadable header",
                                i + 1,
                                f.chunks.len()
                            )));
                            file_ok = false;
                        }
                        Some(_) => {}
                    }
                    continue;
                }
                match self.open_chunk(chunks, &c.id, c.len, &where_, i, f.chunks.len()) {
                    Ok(plain) => {
                        if self.state.index.chunk_id(&plain) != c.id {
                            rep.problems.push(problem(format!(
                                "{where_}: chunk {} of {} does not hash to its id",
                                i + 1,
                                f.chunks.len()
                            )));
                            file_ok = false;
                        }
                        sha.update(&plain);
                        rep.bytes_read += plain.len() as u64;
                        progress.advance(plain.len() as u64);
                    }
                    Err(e) => {
                        rep.problems.push(problem(e.to_string()));
                        file_ok = false;
                    }
                }
            }
            if read_data && file_ok && <[u8; 32]>::from(sha.finalize()) != f.sha256 {
                rep.problems.push(problem(format!("{where_}: SHA-256 does not match the manifest")));
            }
        }
    }
}

/// Compares the chunk index with the chunk table (both in key order). A format version 1 vault
/// (`indexed` false) has no index yet: its next write builds it. An index entry of a chunk that a
/// manifest references is left to the per-file checks (a missing or damaged chunk is reported
/// there, with the file it hurts). Reads every chunk value's page.
///
/// Errors: [`crate::Error::Storage`] when a table cannot be read.
fn check_chunk_index(rx: &ReadTxn, indexed: bool, referenced: &HashSet<[u8; 32]>) -> Result<Option<Problem>> {
    if !indexed {
        return Ok(None);
    }
    let stored = rx.scan_chunks()?;
    let indexed = rx.ids()?;
    // Both lists are in key order: walk them side by side.
    let (mut i, mut j) = (0, 0);
    let (mut unindexed, mut ghosts, mut wrong_len) = (0u64, 0u64, 0u64);
    while i < stored.len() || j < indexed.len() {
        match (stored.get(i), indexed.get(j)) {
            (Some(a), Some(b)) if a.0 == b.0 => {
                wrong_len += u64::from(a.1 != b.1 && !referenced.contains(&a.0));
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a.0 < b.0 => {
                unindexed += 1;
                i += 1;
            }
            (Some(_), None) => {
                unindexed += 1;
                i += 1;
            }
            _ => {
                ghosts += u64::from(!referenced.contains(&indexed[j].0));
                j += 1;
            }
        }
    }
    if unindexed + ghosts + wrong_len == 0 {
        return Ok(None);
    }
    Ok(Some(Problem {
        model: None,
        version: None,
        file: None,
        detail: format!(
            "the chunk index disagrees with the stored chunks: {unindexed} chunk(s) not indexed (a later put \
             stores them again), {ghosts} unreferenced index entr(ies) without a chunk (a later put could \
             reference a chunk that is not stored), {wrong_len} with a wrong length"
        ),
        remedy: Some(Remedy::RebuildIndex),
    }))
}
