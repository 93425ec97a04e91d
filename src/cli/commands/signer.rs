//! `mvault signer`: this vault's Ed25519 signing keys: the active one, the list, rotation.

use modelvault::Result;
use serde_json::json;

use crate::cli::args::{Global, SignerCommand};
use crate::cli::output;
use crate::cli::session::{print_done, unlock_read, unlock_write};

/// Runs `signer show|list|rotate`; returns the exit code.
pub fn run(g: &Global, cmd: &SignerCommand) -> Result<i32> {
    match cmd {
        SignerCommand::Show => {
            let v = unlock_read(g)?;
            let k = modelvault::manifest::hex(&v.signer_public_key());
            if g.json {
                output::json(&json!({"algorithm": "ed25519", "public_key": k}))
            } else {
                println!("ed25519:{k}")
            }
        }
        SignerCommand::List => {
            let v = unlock_read(g)?;
            let list = v.list_signers()?;
            if g.json {
                output::json(&list);
            } else {
                for s in &list {
                    let state = match (s.active, s.retired) {
                        (true, _) => "active".to_string(),
                        (false, Some(t)) => format!("retired {}", output::time(t)),
                        (false, None) => "inactive".to_string(),
                    };
                    println!("{:>3}  ed25519:{}  created {}  {state}", s.id, s.public_key, output::time(s.created));
                }
            }
        }
        SignerCommand::Rotate => {
            let mut v = unlock_write(g, &modelvault::NoProgress)?;
            let k = modelvault::manifest::hex(&v.rotate_signer()?);
            print_done(
                g,
                json!({"public_key": k}),
                &format!("new signing key ed25519:{k}; earlier keys are kept, retired"),
            );
        }
    }
    Ok(0)
}
