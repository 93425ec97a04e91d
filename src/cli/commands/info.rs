//! `mvault info`: the vault's path, id, creation time and key slots, without unlocking it.

use modelvault::{Result, Vault};
use serde_json::json;

use crate::cli::args::Global;
use crate::cli::output;
use crate::cli::session::{read_opts, vault_path};

/// Runs `info`; returns the exit code.
pub fn run(g: &Global) -> Result<i32> {
    let path = vault_path(g)?;
    let v = Vault::open(&path, &read_opts(g)?)?;
    let slots = v.slot_names()?;
    let id = modelvault::manifest::hex(&v.vault_id());
    if g.json {
        output::json(&json!({"vault": path, "vault_id": id, "created": v.created(), "key_slots": slots}));
    } else {
        println!("vault:     {}", path.display());
        println!("id:        {id}");
        println!("created:   {}", output::time(v.created()));
        println!("key slots: {}", slots.join(", "));
    }
    Ok(0)
}
