//! Command-line arguments (clap derive). Passphrases are never arguments: only their sources are.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod get;
mod put;
pub use get::GetArgs;
pub use put::PutArgs;

/// mvault: an encrypted, signed vault for machine-learning models.
#[derive(Debug, Parser)]
#[command(name = "mvault", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes (listed after a command's own options in `--help`).
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Path of the vault file.
    #[arg(long, env = "MVAULT_VAULT", global = true, value_name = "PATH")]
    pub vault: Option<PathBuf>,
    /// Read the passphrase from this file (one trailing newline is ignored).
    #[arg(long, env = "MVAULT_PASSPHRASE_FILE", global = true, value_name = "FILE")]
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
    /// Unlock with a private key instead of a passphrase: an age identity file (age-keygen) or
    /// an unprotected OpenSSH private key, opening a slot added with `key add --recipient`.
    #[arg(long, env = "MVAULT_IDENTITY_FILE", global = true, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// If another process is writing the vault, retry for up to this many seconds (commands
    /// that write, and get/cat keeping chunks read from a remote; other reading commands never
    /// wait for a writer).
    #[arg(long, env = "MVAULT_WAIT", global = true, value_name = "SECONDS")]
    pub wait: Option<f64>,
    /// Open the vault even if it is older than the newest state of it this user has seen (a
    /// backup restored on purpose): see `mvault log`.
    #[arg(long, global = true)]
    pub accept_rollback: bool,
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
        /// Only versions where this SQL condition holds, e.g.
        /// "metric.accuracy > 0.9 AND tag.env = 'prod'" (columns of the versions table; see `query`).
        #[arg(long = "where", value_name = "EXPR")]
        where_expr: Option<String>,
        /// With --where: stop the expression after this many seconds.
        #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
        max_seconds: f64,
        /// With --where: SQLite memory limit (tables included), in MiB.
        #[arg(long, default_value_t = 256, value_name = "MIB")]
        max_memory_mib: u64,
    },
    /// Run one read-only SQL query (SQLite dialect) over the vault's metadata tables: models,
    /// versions, files, tensors, aliases, alias_history, tags, metrics, chunks.
    Query {
        /// The SELECT statement.
        sql: String,
        /// Print CSV (RFC 4180) instead of an aligned table.
        #[arg(long)]
        csv: bool,
        /// Stop the query after this many seconds.
        #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
        max_seconds: f64,
        /// Memory limit for SQLite (tables included) and for the result rows, in MiB.
        #[arg(long, default_value_t = 256, value_name = "MIB")]
        max_memory_mib: u64,
    },
    /// Storage figures: logical, unique and stored bytes, dedup ratio (overall and per model),
    /// chunk count, key epoch.
    Stats,
    /// Versions and models ranked by the stored bytes they share with one version.
    Similar {
        /// NAME, NAME@VERSION or NAME@ALIAS.
        spec: String,
        /// Show at most this many versions and models (0: all).
        #[arg(long, default_value_t = 20, value_name = "N")]
        limit: usize,
    },
    /// Groups of versions that share most of their bytes (a base model and its fine-tunes).
    Families {
        /// Link two versions when they share at least this fraction of the smaller one's bytes.
        #[arg(long, default_value_t = 0.5, value_name = "FRACTION")]
        min_shared: f64,
    },
    /// Show one version: files with SHA-256, aliases, tags, metrics, signer.
    Show {
        /// NAME, NAME@VERSION or NAME@ALIAS.
        spec: String,
    },
    /// Write a version's files into a directory.
    Get(GetArgs),
    /// List a version's files and tensors (dtype, shape, parameters, bytes) without decrypting
    /// tensor data.
    Inspect {
        /// NAME, NAME@VERSION or NAME@ALIAS.
        spec: String,
    },
    /// Compare two versions: files, tensors, and how much changed tensors moved.
    Diff {
        /// The first version: NAME@REF.
        a: String,
        /// The second version: NAME@REF.
        b: String,
    },
    /// Stream one file of a version to standard output.
    Cat {
        /// NAME, NAME@VERSION or NAME@ALIAS.
        spec: String,
        /// Which file, when the version has several.
        #[arg(long, value_name = "PATH")]
        file: Option<String>,
        /// Where chunks this vault lacks are read from: a remote's name or URL; default: the
        /// vault's only remote.
        #[arg(long, value_name = "NAME|URL")]
        remote: Option<String>,
        /// Stream chunks read from the remote without keeping them in the vault.
        #[arg(long)]
        no_cache: bool,
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
    /// Set tags on a version: KEY=VALUE... (all in one new manifest revision, or none).
    Tag {
        /// NAME@VERSION.
        spec: String,
        /// KEY=VALUE (one or more).
        #[arg(required = true, value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// Remove tags from a version: KEY... (all in one new manifest revision, or none).
    Untag {
        /// NAME@VERSION.
        spec: String,
        /// The tag keys (one or more).
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },
    /// Set metrics on a version: KEY=NUMBER... (all in one new manifest revision, or none).
    Metric {
        /// NAME@VERSION.
        spec: String,
        /// KEY=NUMBER (one or more).
        #[arg(required = true, value_name = "KEY=NUMBER")]
        metrics: Vec<String>,
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
        #[arg(required_unless_present = "resume")]
        spec: Option<String>,
        /// Do not ask before removing a whole model, or a version that aliases point to.
        #[arg(long, short)]
        yes: bool,
        /// Cryptographic erasure: also delete the chunks only these versions used and rewrite the
        /// vault file, so no stale copy of their bytes remains in it (see SECURITY.md).
        #[arg(long)]
        erase: bool,
        /// With --erase and no NAME: finish an interrupted erasure.
        #[arg(long, requires = "erase", conflicts_with = "spec")]
        resume: bool,
    },
    /// Remove the versions a retention policy does not keep, per model (restic's `forget` rules:
    /// see README, "Retention"); a version an alias points to is always kept.
    Forget(ForgetArgs),
    /// Delete chunks no version references, then compact the file; with --remote, collect the
    /// remote's unreferenced packs instead (marked by one run, deleted by a run after the grace).
    Gc {
        /// Collect the remote's packs instead: its name or URL, default the vault's only remote.
        #[arg(long, value_name = "NAME|URL", num_args = 0..=1, default_missing_value = "")]
        remote: Option<String>,
        /// With --remote: how long a mark must stand before what it marked is deleted
        /// (e.g. 30s, 10m, 24h, 7d); default 24h.
        #[arg(long, requires = "remote")]
        grace: Option<String>,
    },
    /// Check every manifest signature and that every chunk is present (of the whole vault, of
    /// one model, or of one version).
    Verify {
        /// Only this model (NAME) or version (NAME@VERSION or NAME@ALIAS); default: the whole vault.
        spec: Option<String>,
        /// Also decrypt every chunk and re-check every SHA-256.
        #[arg(long)]
        read_data: bool,
        /// Where chunks a metadata-only pull left behind are (NAME or URL; default: the vault's
        /// only remote): those are counted as not held locally instead of missing.
        #[arg(long, value_name = "NAME|URL")]
        remote: Option<String>,
    },
    /// The vault's manifest-signing keys.
    Signer {
        #[command(subcommand)]
        command: SignerCommand,
    },
    /// This vault's own pickle allow-list: exact globals every put into it accepts.
    Allow {
        #[command(subcommand)]
        command: AllowCommand,
    },
    /// Key slots and master-key rotation.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// The vault's signed log of changes: who did what when (key holders only), signed
    /// checkpoints, and checks against a kept checkpoint.
    Log {
        #[command(subcommand)]
        command: Option<LogCommand>,
    },
    /// Other vaults' signing keys that this vault trusts.
    Trust {
        #[command(subcommand)]
        command: TrustCommand,
    },
    /// The S3-compatible remotes this vault shares through.
    Remote {
        #[command(subcommand)]
        command: RemoteCommand,
    },
    /// What the vault file is, without unlocking it.
    Info,
    /// Upload to a remote the versions it lacks (every version of every model by default).
    Push {
        /// NAME (every version) or NAME@REF; default: everything.
        specs: Vec<String>,
        /// The remote: its name (`remote add`), or a URL (`s3://BUCKET/PREFIX`, `file:///PATH`);
        /// default: the vault's only remote.
        #[arg(long, value_name = "NAME|URL")]
        remote: Option<String>,
    },
    /// Fetch from a remote the versions this vault lacks, and their chunks.
    Pull {
        /// NAME (every version) or NAME@REF; default: everything.
        specs: Vec<String>,
        /// The remote: its name (`remote add`), or a URL (`s3://BUCKET/PREFIX`, `file:///PATH`);
        /// default: the vault's only remote.
        #[arg(long, value_name = "NAME|URL")]
        remote: Option<String>,
        /// Bring versions and manifests only: chunks stay on the remote and are read when needed.
        #[arg(long)]
        metadata_only: bool,
    },
    /// Make a new local vault at PATH from a remote, unlocked by any key slot the remote holds.
    Clone {
        /// The remote's URL (`s3://BUCKET/PREFIX`, `file:///PATH`).
        url: String,
        /// Where the new vault file goes (must not exist).
        path: std::path::PathBuf,
        /// Bring versions and manifests only: chunks stay on the remote and are read when needed.
        #[arg(long)]
        metadata_only: bool,
    },
    /// Serve the vault as a read-only filesystem at MOUNTPOINT (FUSE), until unmounted:
    /// MOUNTPOINT/MODEL/VERSION/FILE, with `latest` and aliases as links.
    Mount(super::commands::mount::MountArgs),
    /// Unmount a vault mounted with `mount` (no vault or passphrase needed).
    Umount {
        /// The directory the vault is mounted on.
        mountpoint: PathBuf,
    },
    /// Scan files or model directories for pickles that would run code (no vault needed).
    Scan {
        /// Files or directories (one or more); each is reported, the exit code is the worst.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Allow this exact `module.qualname` global (repeatable).
        #[arg(long = "allow", value_name = "GLOBAL")]
        allow: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SignerCommand {
    /// Print the public key that signs new manifests.
    Show,
    /// Every signing key this vault has had (active and retired).
    List,
    /// Make a new signing key the active one; older keys stay, retired, so their manifests verify.
    Rotate,
}

/// Where a new passphrase comes from (else: a no-echo prompt, asked twice).
#[derive(Debug, Args, Clone)]
pub struct NewPassphrase {
    /// Read the new passphrase from this file (one trailing newline is ignored).
    #[arg(long, value_name = "FILE")]
    pub new_passphrase_file: Option<PathBuf>,
    /// Read the new passphrase from this open file descriptor.
    #[arg(long, value_name = "N")]
    pub new_passphrase_fd: Option<u32>,
    /// Run this shell command and use its standard output as the new passphrase.
    #[arg(long, value_name = "CMD")]
    pub new_passphrase_command: Option<String>,
}

/// Argon2id cost of a key slot; unset fields keep the default (or the slot's current value).
#[derive(Debug, Args, Clone)]
pub struct SlotCost {
    /// Argon2id memory cost in MiB.
    #[arg(long, value_name = "MIB")]
    pub argon2_memory_mib: Option<u32>,
    /// Argon2id memory cost in KiB (overrides --argon2-memory-mib; for tests).
    #[arg(long, value_name = "KIB", hide = true)]
    pub argon2_memory_kib: Option<u32>,
    /// Argon2id passes.
    #[arg(long, value_name = "N")]
    pub argon2_time: Option<u32>,
    /// Argon2id lanes.
    #[arg(long, value_name = "N")]
    pub argon2_lanes: Option<u32>,
}

/// The options of `key add` that only a passphrase slot takes: a recipient slot refuses them
/// rather than ignoring them.
const PASSPHRASE_SLOT_ARGS: [&str; 7] = [
    "new_passphrase_file",
    "new_passphrase_fd",
    "new_passphrase_command",
    "argon2_memory_mib",
    "argon2_memory_kib",
    "argon2_time",
    "argon2_lanes",
];

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List the key slots (no passphrase needed).
    List,
    /// AES-GCM seals made under each key of the current epoch, and the NIST SP 800-38D limit.
    Usage,
    /// Add a key slot with its own passphrase and Argon2id cost, or (with --recipient or
    /// --recipients-file) one opened by a private key.
    Add {
        /// The new slot's name (e.g. alice, ci).
        name: String,
        /// An age recipient (age1…) or SSH public key (ssh-ed25519 …, ssh-rsa …) whose private
        /// key opens the slot; no passphrase is asked (repeatable: any one of them opens it).
        #[arg(long = "recipient", value_name = "RECIPIENT", conflicts_with_all = PASSPHRASE_SLOT_ARGS)]
        recipients: Vec<String>,
        /// A file of recipients, one per line (blank lines and `#` comments are skipped), as
        /// `age -R` reads.
        #[arg(long = "recipients-file", value_name = "FILE", conflicts_with_all = PASSPHRASE_SLOT_ARGS)]
        recipients_file: Vec<PathBuf>,
        #[command(flatten)]
        new: NewPassphrase,
        #[command(flatten)]
        cost: SlotCost,
    },
    /// Remove a key slot (not the last one, nor the one unlocking this command).
    Remove {
        /// The slot's name.
        name: String,
    },
    /// Change a key slot's passphrase (default: the slot that unlocks this command).
    Passwd {
        /// Which slot.
        #[arg(long = "slot-name", value_name = "NAME")]
        slot_name: Option<String>,
        #[command(flatten)]
        new: NewPassphrase,
        #[command(flatten)]
        cost: SlotCost,
    },
    /// Make a new master key, re-encrypt everything under it, and destroy the old one.
    Rotate {
        /// Finish an interrupted rotation.
        #[arg(long)]
        resume: bool,
        /// NAME=FILE: the passphrase of another slot to keep (repeatable).
        #[arg(long = "slot-passphrase-file", value_name = "NAME=FILE")]
        slot_passphrase_file: Vec<String>,
        /// Remove the slots whose passphrase was not given.
        #[arg(long)]
        remove_other_slots: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AllowCommand {
    /// Accept this exact `module.qualname` global in pickles put into this vault.
    Add {
        /// e.g. collections.OrderedDict
        global: String,
    },
    /// List the globals this vault accepts beyond the built-in allow-list.
    List,
    /// Stop accepting a global.
    Remove {
        /// The global.
        global: String,
    },
}

/// The options of `mvault forget`.
#[derive(Debug, clap::Args)]
pub struct ForgetArgs {
    /// Only these models (default: every model).
    pub names: Vec<String>,
    /// Keep the N newest versions.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_last: u32,
    /// Keep the newest version of each of the N most recent hours that have one (UTC).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_hourly: u32,
    /// ... of each of the N most recent days.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_daily: u32,
    /// ... of each of the N most recent ISO weeks.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_weekly: u32,
    /// ... of each of the N most recent months.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_monthly: u32,
    /// ... of each of the N most recent years.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_yearly: u32,
    /// Keep every version newer than the newest minus this (e.g. 1y5m7d2h, 36h).
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Keep versions with this tag (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub keep_tag: Vec<String>,
    /// Keep versions whose metric satisfies this (repeatable): KEY>=X, KEY>X, KEY<=X, KEY<X, KEY=X.
    #[arg(long, value_name = "RULE")]
    pub keep_metric: Vec<String>,
    /// Show what would be kept and removed, and why, without removing anything.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Print a signed checkpoint of the log (a C2SP signed note): keep it (in git, a ticket, CI
    /// output) to check the vault against later with `log verify --since`.
    Checkpoint {
        /// Write it to this file instead of standard output (refused if it exists).
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Check every entry and the tree; with --since, also that the log extends a kept
    /// checkpoint (exit 6 naming what does not hold).
    Verify {
        /// A checkpoint printed earlier by `mvault log checkpoint`.
        #[arg(long, value_name = "FILE")]
        since: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Trust another vault's signing key under NAME.
    Add {
        /// A name for it.
        name: String,
        /// The public key, as `mvault signer show` prints it.
        public_key: String,
    },
    /// List trusted keys.
    List,
    /// Stop trusting a key.
    Remove {
        /// Its name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Add a remote at s3://BUCKET/PREFIX, after probing that the server keeps create-only
    /// writes exclusive (credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN).
    Add {
        /// A name for it.
        name: String,
        /// s3://BUCKET/PREFIX
        url: String,
        /// The server's base URL (default: AWS_ENDPOINT_URL, else AWS S3).
        #[arg(long, value_name = "URL")]
        endpoint: Option<String>,
        /// The region (default: AWS_REGION, else us-east-1).
        #[arg(long, value_name = "REGION")]
        region: Option<String>,
        /// Use it from one writer at a time; accepts a server that fails the probe.
        #[arg(long)]
        single_writer: bool,
    },
    /// List the remotes.
    List,
    /// Forget a remote (its objects stay on the server).
    Remove {
        /// Its name.
        name: String,
    },
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
