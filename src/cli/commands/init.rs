//! `mvault init`: creates a vault with one key slot and prints its id and signer.

use modelvault::{Argon2Params, CreateOptions, Error, Result, Vault};
use serde_json::json;

use crate::cli::args::{Global, InitArgs};
use crate::cli::session::vault_path;
use crate::cli::{output, passphrase};

/// Runs `init`; returns the exit code.
pub fn run(g: &Global, a: &InitArgs) -> Result<i32> {
    let path = vault_path(g)?;
    if path.exists() {
        return Err(Error::VaultExists(path));
    }
    let memory_kib = match a.argon2_memory_kib {
        Some(k) => k,
        None => a
            .argon2_memory_mib
            .checked_mul(1024)
            .ok_or_else(|| Error::InvalidInput("--argon2-memory-mib is too large".into()))?,
    };
    let argon2 = Argon2Params { memory_kib, time_cost: a.argon2_time, lanes: a.argon2_lanes };
    argon2.check()?;
    let pass = passphrase::obtain(g, &format!("New passphrase for {}: ", path.display()), !passphrase::has_source(g))?;
    let v = Vault::create(&path, &pass, &CreateOptions { argon2, slot_name: a.slot_name.clone() })?;
    let id = modelvault::manifest::hex(&v.vault_id());
    let signer = modelvault::manifest::hex(&v.signer_public_key());
    if g.json {
        output::json(&json!({"vault": path, "vault_id": id, "signer": signer, "slot": a.slot_name, "argon2": argon2}));
    } else {
        println!("created vault {} (id {id})", path.display());
        println!(
            "key slot '{}': Argon2id m={} KiB t={} p={}",
            a.slot_name, argon2.memory_kib, argon2.time_cost, argon2.lanes
        );
        println!("signer: ed25519:{signer}");
    }
    Ok(0)
}
