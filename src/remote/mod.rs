//! Sharing a vault through S3-compatible object storage: the object interface a remote is reached
//! through ([`objects`]). This module owns what a remote holds and how local vaults exchange
//! sealed objects with it; it must never send a plaintext name, hash or byte of model data to a
//! remote, and never touch the redb file except through the library's storage interface.

pub mod objects;

pub use objects::{Created, MemoryObjects, ObjectInfo, Objects};
