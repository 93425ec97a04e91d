//! `mvault allow`: the vault's allow-list of pickle globals `put` accepts.

use modelvault::Result;
use serde_json::json;

use crate::cli::args::{AllowCommand, Global};
use crate::cli::output;
use crate::cli::session::{print_done, unlock_read, unlock_write};

/// Runs `allow add|list|remove`; returns the exit code.
pub fn run(g: &Global, cmd: &AllowCommand) -> Result<i32> {
    match cmd {
        AllowCommand::Add { global } => {
            let v = unlock_write(g, &modelvault::NoProgress)?;
            v.allow_add(global)?;
            print_done(g, json!({"allowed": global}), &format!("pickles put into this vault may now import {global}"));
        }
        AllowCommand::List => {
            let list = unlock_read(g)?.allow_list()?;
            if g.json {
                output::json(&list);
            } else {
                for x in &list {
                    println!("{x}");
                }
            }
        }
        AllowCommand::Remove { global } => {
            let v = unlock_write(g, &modelvault::NoProgress)?;
            v.allow_remove(global)?;
            print_done(g, json!({"removed": global}), &format!("removed {global} from this vault's allow-list"));
        }
    }
    Ok(0)
}
