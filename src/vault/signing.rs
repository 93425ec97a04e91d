//! The signing keys an unlocked vault holds in memory: the active Ed25519 key that signs new
//! manifests and log entries, and the public keys of every signing key the vault has had (active
//! and retired; any of them verifies). Kept behind a lock, so a pull that learns a signing key
//! from a remote's key bundle (`src/remote/signers.rs`) can add it, or make it the active one,
//! while the vault is in use by other threads.
//!
//! This module must never hand out the active key except as a copy that zeroizes on drop, and
//! never read or write storage (the records are the callers').

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::crypto::sign::{ManifestSigner, ManifestVerifier};

struct Keys {
    active: ManifestSigner,
    known: Vec<ManifestVerifier>,
}

/// The active signing key and every known public key (see the module documentation).
pub(crate) struct SigningKeys(RwLock<Keys>);

impl SigningKeys {
    /// `active` signs; `known` verifies (it should hold `active`'s public key: it is added if not).
    pub fn new(active: ManifestSigner, mut known: Vec<ManifestVerifier>) -> Self {
        let public = active.public_key();
        if !known.iter().any(|v| *v.public_key() == public) {
            known.extend(ManifestVerifier::new(&public));
        }
        SigningKeys(RwLock::new(Keys { active, known }))
    }

    fn read(&self) -> RwLockReadGuard<'_, Keys> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Keys> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the active key (zeroized on drop, like the original).
    pub fn active(&self) -> ManifestSigner {
        ManifestSigner::from_seed(&self.read().active.seed())
    }

    /// The active key's public key.
    pub fn active_public(&self) -> [u8; 32] {
        self.read().active.public_key()
    }

    /// Every known public key, oldest first.
    pub fn verifiers(&self) -> Vec<ManifestVerifier> {
        self.read().known.clone()
    }

    /// The known key `public`, if it is one.
    pub fn find(&self, public: &[u8; 32]) -> Option<ManifestVerifier> {
        self.read().known.iter().find(|v| v.public_key() == public).cloned()
    }

    /// Adds `v` to the known keys (nothing when it is known already).
    pub fn learn(&self, v: ManifestVerifier) {
        let mut k = self.write();
        if !k.known.iter().any(|x| x.public_key() == v.public_key()) {
            k.known.push(v);
        }
    }

    /// Makes `signer` the active key (and a known one).
    pub fn set_active(&self, signer: ManifestSigner) {
        let v = ManifestVerifier::new(&signer.public_key());
        let mut k = self.write();
        if let Some(v) = v.filter(|v| !k.known.iter().any(|x| x.public_key() == v.public_key())) {
            k.known.push(v);
        }
        k.active = signer;
    }
}
