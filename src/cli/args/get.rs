//! The arguments of `mvault get`: where a version goes (a directory, a safetensors file of
//! chosen tensors, standard output, or a Hugging Face hub cache) and what is checked first.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct GetArgs {
    /// NAME, NAME@VERSION or NAME@ALIAS.
    pub spec: String,
    /// Destination directory (created if missing); with --tensor, the .safetensors file, or
    /// `-` for standard output.
    #[arg(short = 'o', long = "output", value_name = "DEST", required_unless_present = "to_hf_cache")]
    pub output: Option<PathBuf>,
    /// Overwrite files that already exist (never the vault's own file).
    #[arg(long)]
    pub force: bool,
    /// Write only this tensor (repeatable) into one safetensors file at -o.
    #[arg(long = "tensor", value_name = "NAME", conflicts_with = "to_hf_cache")]
    pub tensor: Vec<String>,
    /// With --tensor: take tensors from this file of the version.
    #[arg(long = "file", value_name = "PATH", requires = "tensor")]
    pub file: Option<String>,
    /// Refuse the version unless its manifest was signed by the key trusted under this name
    /// (`self`: this vault's own keys).
    #[arg(long, value_name = "NAME")]
    pub require_signer: Option<String>,
    /// Write the version into this Hugging Face hub cache folder (models--ORG--NAME/ with
    /// blobs/, snapshots/REV/ and refs/main), where huggingface_hub loads it offline.
    #[arg(long, value_name = "DIR", conflicts_with = "output")]
    pub to_hf_cache: Option<PathBuf>,
    /// With --to-hf-cache: the repo id, ORG/NAME or NAME (default: the model name).
    #[arg(long, value_name = "REPO_ID", requires = "to_hf_cache", conflicts_with = "output")]
    pub repo_id: Option<String>,
    /// With --to-hf-cache: the snapshot's commit hash, 40 lowercase hex digits (default: the
    /// hf.commit tag put --from-hf-cache recorded, else one derived from the files' SHA-256).
    #[arg(long, value_name = "COMMIT", requires = "to_hf_cache", conflicts_with = "output")]
    pub revision: Option<String>,
    /// Where chunks this vault lacks are read from: a remote's name or URL; default: the
    /// vault's only remote.
    #[arg(long, value_name = "NAME|URL")]
    pub remote: Option<String>,
    /// Stream chunks read from the remote without keeping them in the vault.
    #[arg(long)]
    pub no_cache: bool,
}
