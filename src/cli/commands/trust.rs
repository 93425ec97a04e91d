//! `mvault trust`: the public keys of other vaults trusted by name (for `get --require-signer`).

use modelvault::Result;
use modelvault::ops::signers::parse_public_key;
use serde_json::json;

use crate::cli::args::{Global, TrustCommand};
use crate::cli::output;
use crate::cli::session::{print_done, unlock_read, unlock_write};

/// Runs `trust add|list|remove`; returns the exit code.
pub fn run(g: &Global, cmd: &TrustCommand) -> Result<i32> {
    match cmd {
        TrustCommand::Add { name, public_key } => {
            let key = parse_public_key(public_key)?;
            let v = unlock_write(g, &modelvault::NoProgress)?;
            v.trust_add(name, key)?;
            print_done(
                g,
                json!({"trusted": name}),
                &format!("trusting ed25519:{} as '{name}'", modelvault::manifest::hex(&key)),
            );
        }
        TrustCommand::List => {
            let v = unlock_read(g)?;
            let list = v.trust_list()?;
            if g.json {
                output::json(&list);
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|t| {
                        vec![
                            modelvault::names::escape(&t.name),
                            format!("ed25519:{}", t.public_key),
                            format!("added {}", output::time(t.added)),
                        ]
                    })
                    .collect();
                for line in output::table(&[], &[output::Align::Left; 3], &rows) {
                    println!("{line}");
                }
            }
        }
        TrustCommand::Remove { name } => {
            let v = unlock_write(g, &modelvault::NoProgress)?;
            v.trust_remove(name)?;
            print_done(g, json!({"untrusted": name}), &format!("no longer trusting '{name}'"));
        }
    }
    Ok(0)
}
