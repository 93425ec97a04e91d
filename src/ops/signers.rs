//! Manifest signing keys and trust: `signer rotate`, `signer list`, `trust add|list|remove`, and the
//! check behind `get --require-signer`.
//!
//! A signer rotation makes a new Ed25519 key the one that signs new manifests; earlier keys stay
//! in the vault marked retired, so manifests they signed still verify (they are not re-signed:
//! a signature keeps saying who signed when). Trusted keys are other vaults' public keys, named
//! by the user; `--require-signer NAME` accepts a version only if its manifest was signed by the
//! key trusted under NAME (or, for `self`, by one of this vault's own keys).

use crate::log::Op;
use serde::Serialize;

use super::VersionRef;
use crate::crypto::sign::{ManifestSigner, hex};
use crate::names::{self, escape};
use crate::store::records::{SignerRecord, TrustRecord};
use crate::store::{self, RecordRead, Table};
use crate::vault::{Unlocked, Vault, now};
use crate::{Error, Result};

/// A signing key as `signer list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SignerInfo {
    /// Signer id.
    pub id: u32,
    /// Ed25519 public key, hex.
    pub public_key: String,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// When it stopped signing new manifests.
    pub retired: Option<u64>,
    /// True for the key that signs new manifests.
    pub active: bool,
}

/// A trusted key as `trust list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TrustInfo {
    /// Name it was trusted under.
    pub name: String,
    /// Ed25519 public key, hex.
    pub public_key: String,
    /// When it was added, Unix seconds.
    pub added: u64,
}

/// Parses a public key given as 64 hex digits, optionally prefixed with `ed25519:`.
///
/// Errors: [`Error::InvalidInput`] naming what is wrong.
pub fn parse_public_key(s: &str) -> Result<[u8; 32]> {
    let h = s.trim().strip_prefix("ed25519:").unwrap_or(s.trim());
    let Some(out) = crate::crypto::sign::unhex::<32>(h) else {
        return Err(Error::InvalidInput(format!("'{}' is not an Ed25519 public key: give 64 hex digits", escape(s)))
            .with_remedy(crate::Remedy::SignerKeyForm));
    };
    if ed25519_dalek::VerifyingKey::from_bytes(&out).is_err() {
        return Err(Error::InvalidInput(format!("'{}' is not a valid Ed25519 point", escape(s))));
    }
    Ok(out)
}

impl Vault<Unlocked> {
    /// Lists this vault's signing keys, oldest first.
    pub fn list_signers(&self) -> Result<Vec<SignerInfo>> {
        let rx = store::read(&self.db)?;
        rx.require(Table::Signers, "reading signers")?;
        let active = self.state.signing.active_public();
        let mut out = Vec::new();
        for (id, v) in rx.signers()? {
            let r: SignerRecord = self.open_meta(Table::Signers, &id.to_be_bytes(), "signing key record", &v)?;
            out.push(SignerInfo {
                id,
                public_key: hex(&r.public),
                created: r.created,
                retired: r.retired,
                active: r.public == active,
            });
        }
        Ok(out)
    }

    /// Makes a new signing key the active one; the old one is kept, marked retired. Returns the
    /// new public key.
    pub fn rotate_signer(&mut self) -> Result<[u8; 32]> {
        let fresh = ManifestSigner::generate()?;
        let old_public = self.state.signing.active_public();
        let mut txn = self.write(Op::SignerRotate)?;
        let (old_id, mut old) = {
            let mut found = None;
            for (id, v) in txn.tx.signers()? {
                let r: SignerRecord = self.open_meta(Table::Signers, &id.to_be_bytes(), "signing key record", &v)?;
                if r.public == old_public {
                    found = Some((id, r));
                }
            }
            found.ok_or_else(|| Error::Damaged("the active signing key has no record: the vault is damaged".into()))?
        };
        old.retired = Some(now());
        txn.put_signer(old_id, &old)?;
        let id = txn.state.next_signer;
        let rec =
            SignerRecord { seed: *fresh.seed().expose(), public: fresh.public_key(), created: now(), retired: None };
        txn.put_signer(id, &rec)?;
        txn.state.active_signer = id;
        txn.state.next_signer = id + 1;
        txn.commit()?;
        let public = fresh.public_key();
        self.state.signing.set_active(fresh);
        Ok(public)
    }

    /// Trusts `public` (another vault's signing key) under `name`.
    ///
    /// Errors: [`Error::InvalidName`]; [`Error::InvalidInput`] if the name is taken or is `self`.
    pub fn trust_add(&self, name: &str, public: [u8; 32]) -> Result<()> {
        names::check_key("trust name", name)?;
        if name == "self" {
            return Err(Error::InvalidInput("'self' is reserved: it means this vault's own signing keys".into()));
        }
        if self.trusted().iter().any(|t| t.name == name) {
            return Err(Error::InvalidInput(format!("a key is already trusted as '{name}': remove it first")));
        }
        let mut txn = self.write(Op::Trust)?;
        txn.about(None, Vec::new(), Some(name));
        let v =
            txn.seal_meta(Table::Trust, name.as_bytes(), &TrustRecord { name: name.into(), public, added: now() })?;
        txn.tx.put_trust(name, &v)?;
        txn.commit()
    }

    /// Removes the trusted key `name`.
    ///
    /// Errors: [`Error::InvalidInput`] if there is none.
    pub fn trust_remove(&self, name: &str) -> Result<()> {
        if !self.trusted().iter().any(|t| t.name == name) {
            return Err(Error::NotFound(format!("no key is trusted as '{}'", escape(name)))
                .with_remedy(crate::Remedy::ListTrusted));
        }
        let mut txn = self.write(Op::Untrust)?;
        txn.about(None, Vec::new(), Some(name));
        txn.tx.remove_trust(name)?;
        txn.commit()
    }

    fn trusted(&self) -> Vec<TrustRecord> {
        self.trust_records().unwrap_or_default()
    }

    fn trust_records(&self) -> Result<Vec<TrustRecord>> {
        let rx = store::read(&self.db)?;
        let mut out = Vec::new();
        for (name, v) in rx.trusts()? {
            out.push(self.open_meta(Table::Trust, name.as_bytes(), "trusted key record", &v)?);
        }
        Ok(out)
    }

    /// Lists trusted keys.
    pub fn trust_list(&self) -> Result<Vec<TrustInfo>> {
        Ok(self
            .trust_records()?
            .into_iter()
            .map(|t| TrustInfo { name: t.name, public_key: hex(&t.public), added: t.added })
            .collect())
    }

    /// Checks that `name@r` was signed by the key trusted as `signer` (`self`: any of this
    /// vault's own keys). Returns the version.
    ///
    /// Errors: [`Error::InvalidInput`] for an unknown trust name; [`Error::BadSignature`]-like
    /// [`Error::UntrustedSigner`] when the signer differs.
    pub fn require_signer(&self, name: &str, r: &VersionRef, signer: &str) -> Result<u64> {
        let allowed: Vec<[u8; 32]> = if signer == "self" {
            self.state.signing.verifiers().iter().map(|v| *v.public_key()).collect()
        } else {
            let t = self.trust_records()?;
            let rec = t.iter().find(|t| t.name == signer).ok_or_else(|| {
                Error::NotFound(format!("no key is trusted as '{}'", escape(signer)))
                    .with_remedy(crate::Remedy::TrustKey)
            })?;
            vec![rec.public]
        };
        let rx = store::read(&self.db)?;
        if !self.has_model_tables(&rx)? {
            return Err(Error::ModelNotFound(escape(name)));
        }
        let (_, version) = self.resolve(&rx, name, r)?;
        let (_, rec) = self.load_version(&rx, name, version)?;
        if !allowed.contains(&rec.signer) {
            return Err(Error::UntrustedSigner {
                name: escape(name),
                version,
                signer: hex(&rec.signer),
                required: escape(signer),
            });
        }
        Ok(version)
    }
}
