//! The arguments of `mvault put`: what to store (a path, or a snapshot of a Hugging Face cache),
//! what to leave out, and what to record with the version.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct PutArgs {
    /// A model file, or a directory holding a model (Hugging Face style).
    #[arg(required_unless_present = "from_hf_cache", conflicts_with = "from_hf_cache")]
    pub src: Option<PathBuf>,
    /// Model name: NAME or ORG/NAME (with --from-hf-cache, the repo id unless given).
    #[arg(long, required_unless_present = "from_hf_cache")]
    pub name: Option<String>,
    /// Store a snapshot from the Hugging Face hub cache; REPO_ID is ORG/NAME or NAME. Its links
    /// are followed only into the repository's blobs/ folder.
    #[arg(long, value_name = "REPO_ID")]
    pub from_hf_cache: Option<String>,
    /// With --from-hf-cache: a commit hash, or a branch or tag the cache has a ref for.
    // `requires` alone is not enough: clap drops a requirement on an argument that conflicts
    // with one given (SRC), so SRC is refused with these by name.
    #[arg(long, value_name = "REV", default_value = "main", requires = "from_hf_cache", conflicts_with = "src")]
    pub revision: String,
    /// With --from-hf-cache: the hub cache folder (default: $HF_HUB_CACHE, else $HF_HOME/hub,
    /// else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub).
    #[arg(long, value_name = "DIR", requires = "from_hf_cache", conflicts_with = "src")]
    pub cache_dir: Option<PathBuf>,
    /// Leave out the paths inside the model matching this glob (repeatable; '*' stays within
    /// a folder, '**' crosses folders; a glob without '/' also matches a name at any depth).
    #[arg(long = "exclude", value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Keep files and folders named .git (left out of a directory by default).
    #[arg(long)]
    pub include_git: bool,
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
