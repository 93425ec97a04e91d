//! Sharing a vault through S3-compatible object storage: the object interface a remote is reached
//! through ([`objects`]), where a remote is ([`config`]), the S3 client (`s3`, feature `remote`)
//! and the probe of a server's create-only writes ([`mod@probe`]). This module owns what a remote
//! holds and how local vaults exchange sealed objects with it; it must never send a plaintext
//! name, hash or byte of model data to a remote, and never touch the redb file except through the
//! library's storage interface.

pub mod config;
pub mod objects;
pub mod probe;
#[cfg(feature = "remote")]
pub mod s3;

pub use config::{RemoteConfig, RetryPolicy};
pub use objects::{Created, MemoryObjects, ObjectInfo, Objects};
pub use probe::{ProbeReport, ProbeSettings, RaceRound, probe};
#[cfg(feature = "remote")]
pub use s3::{Credentials, S3Objects};
