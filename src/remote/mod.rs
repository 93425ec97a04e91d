//! Sharing a vault through S3-compatible object storage (SECURITY.md, "Remote"): the object
//! interface a remote is reached through ([`objects`]), where a remote is ([`config`]), the S3
//! client ([`s3`], feature `remote`), a directory remote ([`dir`]), the probe of a server's
//! create-only writes ([`mod@probe`]), the byte layout of what a remote holds ([`mod@format`]), key
//! bundles ([`bundle`]), packs ([`packs`]), the signed hash-chained log ([`log`]) and the state it
//! describes ([`state`]), and the operations `push`, `pull` and `clone` (methods on
//! [`crate::Vault`]). This module owns what a remote holds and how local vaults exchange sealed
//! objects with it; it must never send a plaintext name, hash or byte of model data to a remote,
//! and never touch the redb file except through the library's storage interface.

pub mod bundle;
pub mod clone;
pub mod config;
pub mod dir;
pub mod format;
pub mod gc;
pub mod log;
pub mod objects;
pub mod packs;
pub mod probe;
pub mod pull;
pub mod push;
pub mod removed;
#[cfg(feature = "remote")]
pub mod s3;
pub mod signers;
pub mod state;
pub(crate) mod sync;

pub use config::{RemoteConfig, RetryPolicy};
pub use dir::{DirObjects, open_url};
pub use gc::RemoteGcReport;
pub use objects::{Created, MemoryObjects, ObjectInfo, Objects};
pub use packs::Traffic;
pub use probe::{ProbeReport, ProbeSettings, RaceRound, probe};
pub use pull::{PullOptions, PullReport};
pub use push::PushReport;
#[cfg(feature = "remote")]
pub use s3::{Credentials, S3Objects};
pub use signers::SignerChanges;
