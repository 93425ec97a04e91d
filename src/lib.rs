//! # modelvault
//!
//! An encrypted, signed vault for machine-learning model data. One vault is one
//! [redb](https://docs.rs/redb) file. Model files are cut into chunks sealed with AES-256-GCM;
//! names and metadata are sealed too; identical chunks are stored once. Keys come from passphrases
//! through Argon2id and live in key slots. Every version has a manifest (files, SHA-256 digests,
//! chunks, metadata) signed with Ed25519 and checked on every read.
//!
//! ```
//! use modelvault::{Argon2Params, CreateOptions, NoProgress, OpenOptions, Passphrase, PutOptions, Vault, VersionRef};
//!
//! # fn main() -> modelvault::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("models.mvault");
//! let weights = dir.path().join("weights.bin");
//! std::fs::write(&weights, b"not really a model").unwrap();
//!
//! // Test-sized Argon2 cost; the default is RFC 9106's m = 64 MiB, t = 3, p = 4.
//! let opts = CreateOptions { argon2: Argon2Params { memory_kib: 1024, time_cost: 1, lanes: 1 }, ..Default::default() };
//! let pass = Passphrase::new(b"correct horse battery staple".to_vec())?;
//! drop(Vault::create(&path, &pass, &opts)?);
//!
//! let mut vault = Vault::open(&path, &OpenOptions::default())?.unlock(&pass)?;
//! let put = vault.put(&weights, "demo", &PutOptions::default(), &NoProgress)?;
//! assert_eq!(put.version, 1);
//!
//! let mut out = Vec::new();
//! vault.cat("demo", &VersionRef::Latest, None, &mut out, &NoProgress)?;
//! assert_eq!(out, b"not really a model");
//! assert!(vault.verify(true, &NoProgress)?.ok());
//! # Ok(())
//! # }
//! ```
//!
//! The design, the threat model and the byte layout of every record are in `SECURITY.md`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod chunk;
pub mod crypto;
pub mod error;
pub mod formats;
pub mod harden;
pub mod log;
pub mod manifest;
pub mod mount;
pub mod names;
pub mod ops;
pub mod progress;
pub mod remedy;
pub mod remote;
pub mod store;
pub mod vault;

pub use crypto::kdf::Argon2Params;
pub use crypto::recipient::{Identities, Recipient};
pub use error::{Error, Result};
pub use harden::harden_process;
pub use ops::diff::{DiffReport, DiffSummary, FileDiff, FileStatus, TensorChange, TensorDiff};
pub use ops::get::{GetOptions, GetReport};
pub use ops::inspect::{DtypeTotal, FileInspection, Inspection, TensorRow};
pub use ops::keys::{SlotInfo, SlotKind};
pub use ops::list::{FileInfo, Listing, ModelInfo, VersionInfo};
pub use ops::ondemand::{ChunkSource, FetchedTotals};
pub use ops::put::{Filter, PutOptions, PutReport, Source};
pub use ops::query::{MetaDb, QueryLimits, QueryResult, SqlValue, WhereListing};
pub use ops::remote::{RemoteAddOptions, RemoteInfo};
pub use ops::remove::GcReport;
pub use ops::scan::{DiskScan, FileVerdict, ScanEntry, scan_paths};
pub use ops::stats::{
    Families, Family, FamilyMember, ModelStats, SimilarModel, SimilarVersion, Similarity, VaultStats,
};
pub use ops::tensor_get::{TensorGetOptions, TensorGetReport, TensorSource};
pub use ops::verify::{Problem, VerifyReport};
pub use ops::{VersionRef, parse_spec};
pub use progress::{NoProgress, Progress};
pub use remedy::{Input, Remedy};
pub use vault::{CreateOptions, Locked, OpenOptions, Passphrase, Unlocked, Vault};
