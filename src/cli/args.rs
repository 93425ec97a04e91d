//! Command-line arguments (clap derive). Passphrases are never arguments: only their sources are.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// mvault: an encrypted, signed vault for machine-learning models.
#[derive(Debug, Parser)]
#[command(name = "mvault", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Path of the vault file.
    #[arg(long, env = "MVAULT_VAULT", global = true, value_name = "PATH")]
    pub vault: Option<PathBuf>,
    /// Read the passphrase from this file (one trailing newline is ignored).
    #[arg(
        long,
        env = "MVAULT_PASSPHRASE_FILE",
        global = true,
        value_name = "FILE"
    )]
    pub passphrase_file: Option<PathBuf>,
    /// Read the passphrase from this open file descriptor.
    #[arg(long, global = true, value_name = "N")]
    pub passphrase_fd: Option<u32>,
    /// Run this shell command and use its standard output as the passphrase.
    #[arg(long, global = true, value_name = "CMD")]
    pub passphrase_command: Option<String>,
    /// Unlock with this key slot only (default: try every slot).
    #[arg(long, global = true, value_name = "NAME")]
    pub slot: Option<String>,
    /// If another process holds the vault, retry for up to this many seconds.
    #[arg(long, global = true, value_name = "SECONDS")]
    pub wait: Option<f64>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new vault (asks for a new passphrase twice).
    Init(InitArgs),
    /// Store a file or a model directory as the next version of a model.
    Put(PutArgs),
    /// List models and their versions.
    Ls {
        /// Only this model.
        name: Option<String>,
    },
    /// Show one version: files with SHA-256, aliases, tags, metrics, signer.
    Show {
        /// NAME, NAME@VERSION or NAME@ALIAS.
        spec: String,
    },
    /// Write a version's files into a directory.
    Get {
        /// NAME, NAME@VERSION or NAME@ALIAS.
        spec: String,
        /// Destination directory (created if missing).
        #[arg(short = 'o', long = "output", value_name = "DEST")]
        output: PathBuf,
        /// Overwrite files that already exist.
        #[arg(long)]
        force: bool,
    },
    /// Stream one file of a version to standard output.
    Cat {
        /// NAME, NAME@VERSION or NAME@ALIAS.
        spec: String,
        /// Which file, when the version has several.
        #[arg(long, value_name = "PATH")]
        file: Option<String>,
    },
    /// Point an alias at a version (or remove it with --remove).
    Alias {
        /// NAME@VERSION (or NAME with --remove).
        spec: String,
        /// The alias.
        alias: String,
        /// Remove the alias instead.
        #[arg(long)]
        remove: bool,
    },
    /// Set a tag on a version: KEY=VALUE.
    Tag {
        /// NAME@VERSION.
        spec: String,
        /// KEY=VALUE.
        tag: String,
    },
    /// Remove a tag from a version.
    Untag {
        /// NAME@VERSION.
        spec: String,
        /// The tag key.
        key: String,
    },
    /// Set a metric on a version: KEY=NUMBER.
    Metric {
        /// NAME@VERSION.
        spec: String,
        /// KEY=NUMBER.
        metric: String,
    },
    /// Set the description of a model (NAME) or a version (NAME@VERSION).
    Describe {
        /// NAME or NAME@VERSION.
        spec: String,
        /// The text.
        text: String,
    },
    /// Remove a version (NAME@REF) or a whole model (NAME).
    Rm {
        /// NAME or NAME@REF.
        spec: String,
        /// Do not ask before removing a whole model.
        #[arg(long, short)]
        yes: bool,
    },
    /// Delete chunks no version references, then compact the file.
    Gc,
    /// Check every manifest signature and that every chunk is present.
    Verify {
        /// Also decrypt every chunk and re-check every SHA-256.
        #[arg(long)]
        read_data: bool,
    },
    /// The vault's manifest-signing key.
    Signer {
        #[command(subcommand)]
        command: SignerCommand,
    },
    /// What the vault file is, without unlocking it.
    Info,
    /// Scan files or a model directory for pickles that would run code (no vault needed).
    Scan {
        /// A file or a directory.
        path: PathBuf,
        /// Allow this exact `module.qualname` global (repeatable).
        #[arg(long = "allow", value_name = "GLOBAL")]
        allow: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SignerCommand {
    /// Print the public key that signs new manifests.
    Show,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Argon2id memory cost in MiB (default 64, RFC 9106).
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    pub argon2_memory_mib: u32,
    /// Argon2id memory cost in KiB (overrides --argon2-memory-mib; for tests).
    #[arg(long, value_name = "KIB", hide = true)]
    pub argon2_memory_kib: Option<u32>,
    /// Argon2id passes (default 3).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub argon2_time: u32,
    /// Argon2id lanes (default 4).
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub argon2_lanes: u32,
    /// Name of the first key slot.
    #[arg(long = "slot-name", default_value = "default", value_name = "NAME")]
    pub slot_name: String,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    /// A model file, or a directory holding a model (Hugging Face style).
    pub src: PathBuf,
    /// Model name.
    #[arg(long)]
    pub name: String,
    /// Point this alias at the new version (repeatable).
    #[arg(long = "alias", value_name = "ALIAS")]
    pub aliases: Vec<String>,
    /// KEY=VALUE tag (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    /// KEY=NUMBER metric (repeatable).
    #[arg(long = "metric", value_name = "KEY=NUMBER")]
    pub metrics: Vec<String>,
    /// Free-text description.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Allow this exact `module.qualname` global in pickles (repeatable).
    #[arg(long = "allow", value_name = "GLOBAL")]
    pub allow: Vec<String>,
    /// Store files whose pickle scan is dangerous or unscannable (the verdict is recorded).
    #[arg(long)]
    pub allow_unsafe_pickle: bool,
}
