//! The `key`, `signer` and `trust` commands: key slots, master-key rotation, signing keys and
//! trusted keys of other vaults.

use modelvault::ops::signers::parse_public_key;
use modelvault::{Argon2Params, Error, Passphrase, Progress, Result, Vault};
use serde_json::json;

use super::args::{AllowCommand, Global, KeyCommand, NewPassphrase, SignerCommand, SlotCost, TrustCommand};
use super::output;
use super::passphrase;
use super::run::{open_opts, print_done, unlock, unlock_write, vault_path};

fn new_passphrase(g: &Global, n: &NewPassphrase, slot: &str) -> Result<Passphrase> {
    let src = Global {
        vault: None,
        passphrase_file: n.new_passphrase_file.clone(),
        passphrase_fd: n.new_passphrase_fd,
        passphrase_command: n.new_passphrase_command.clone(),
        slot: None,
        wait: None,
        json: g.json,
        quiet: g.quiet,
    };
    let interactive = !passphrase::has_source(&src);
    passphrase::obtain(&src, &format!("New passphrase for key slot '{slot}': "), interactive)
}

fn cost(c: &SlotCost, base: Argon2Params) -> Result<Argon2Params> {
    let memory_kib = match (c.argon2_memory_kib, c.argon2_memory_mib) {
        (Some(k), _) => k,
        (None, Some(m)) => {
            m.checked_mul(1024).ok_or_else(|| Error::InvalidInput("--argon2-memory-mib is too large".into()))?
        }
        (None, None) => base.memory_kib,
    };
    let p = Argon2Params {
        memory_kib,
        time_cost: c.argon2_time.unwrap_or(base.time_cost),
        lanes: c.argon2_lanes.unwrap_or(base.lanes),
    };
    p.check()?;
    Ok(p)
}

fn cost_given(c: &SlotCost) -> bool {
    c.argon2_memory_kib.is_some()
        || c.argon2_memory_mib.is_some()
        || c.argon2_time.is_some()
        || c.argon2_lanes.is_some()
}

/// `mvault key ...`
pub fn key(g: &Global, cmd: &KeyCommand, progress: &dyn Progress) -> Result<i32> {
    match cmd {
        KeyCommand::List => {
            let slots = Vault::open(vault_path(g)?, &open_opts(g)?)?.slots()?;
            if g.json {
                output::json(&slots);
            } else {
                use output::Align::{Left as L, Right as R};
                let rows: Vec<Vec<String>> = slots
                    .iter()
                    .map(|s| {
                        vec![
                            modelvault::names::escape(&s.name),
                            s.epoch.to_string(),
                            format!("{} KiB", s.argon2.memory_kib),
                            s.argon2.time_cost.to_string(),
                            s.argon2.lanes.to_string(),
                            output::time(s.created),
                            if s.rotating { "(rotation unfinished)" } else { "" }.to_string(),
                        ]
                    })
                    .collect();
                let head = ["SLOT", "EPOCH", "MEMORY", "TIME", "LANES", "CREATED"];
                for line in output::table(&head, &[L, R, R, R, R, L, L], &rows) {
                    println!("{line}");
                }
            }
        }
        KeyCommand::Usage => {
            let u = unlock(g)?.key_usage()?;
            if g.json {
                output::json(&u);
            } else {
                println!(
                    "epoch {}: chunk key {} seals, metadata key {} seals; warning from {}, limit {} (NIST SP 800-38D)",
                    u.epoch, u.chunk_seals, u.meta_seals, u.warn_at, u.limit
                );
            }
        }
        KeyCommand::Add { name, new, cost: c } => {
            let v = unlock_write(g, progress)?;
            let params = cost(c, Argon2Params::default())?;
            let p = new_passphrase(g, new, name)?;
            v.add_slot(name, &p, &params)?;
            print_done(g, json!({"added_slot": name, "argon2": params}), &format!("added key slot '{name}'"));
        }
        KeyCommand::Remove { name } => {
            let v = unlock_write(g, progress)?;
            v.remove_slot(name)?;
            let note = "its passphrase still opens this vault through an earlier copy of the slot (a backup of \
                        the vault file, or a freed page of it) until the master key is rotated: run `mvault key \
                        rotate` if that passphrase may be known to someone who should not read the vault";
            print_done(g, json!({"removed_slot": name, "note": note}), &format!("removed key slot '{name}'; {note}"));
        }
        KeyCommand::Passwd { slot_name, new, cost: c } => {
            let mut v = unlock_write(g, progress)?;
            let which = slot_name.clone().unwrap_or_else(|| v.unlocked_slot().to_string());
            let p = new_passphrase(g, new, &which)?;
            let params = if cost_given(c) { Some(cost(c, Argon2Params::default())?) } else { None };
            let started = std::time::Instant::now();
            v.change_passphrase(Some(&which), &p, params.as_ref())?;
            let secs = started.elapsed().as_secs_f64();
            print_done(
                g,
                json!({"slot": which, "seconds": secs}),
                &format!("changed the passphrase of key slot '{which}' ({secs:.2} s; no data re-encrypted)"),
            );
        }
        KeyCommand::Rotate { resume, slot_passphrase_file, remove_other_slots } => {
            let mut v = unlock(g)?;
            let report = if *resume {
                v.resume_rotation(progress)?
            } else {
                let mut others = Vec::new();
                for item in slot_passphrase_file {
                    let (name, file) = item.split_once('=').ok_or_else(|| {
                        Error::InvalidInput(format!("--slot-passphrase-file '{item}' is not NAME=FILE"))
                    })?;
                    let src = Global {
                        vault: None,
                        passphrase_file: Some(file.into()),
                        passphrase_fd: None,
                        passphrase_command: None,
                        slot: None,
                        wait: None,
                        json: g.json,
                        quiet: g.quiet,
                    };
                    others.push((name.to_string(), passphrase::obtain(&src, "", false)?));
                }
                v.rotate(&others, *remove_other_slots, progress)?
            };
            print_done(
                g,
                serde_json::to_value(&report).expect("report serialises"),
                &format!(
                    "rotated the master key: epoch {} -> {}; {} chunk(s) ({}) and {} record(s) re-encrypted; slots kept: {}{}",
                    report.from_epoch,
                    report.to_epoch,
                    report.chunks,
                    output::size(report.bytes),
                    report.records,
                    report.slots_kept.join(", "),
                    if report.slots_removed.is_empty() {
                        String::new()
                    } else {
                        format!("; slots removed: {}", report.slots_removed.join(", "))
                    }
                ),
            );
        }
    }
    Ok(0)
}

/// `mvault signer ...`
pub fn signer(g: &Global, cmd: &SignerCommand) -> Result<i32> {
    match cmd {
        SignerCommand::Show => {
            let v = unlock(g)?;
            let k = modelvault::manifest::hex(&v.signer_public_key());
            if g.json {
                output::json(&json!({"algorithm": "ed25519", "public_key": k}))
            } else {
                println!("ed25519:{k}")
            }
        }
        SignerCommand::List => {
            let v = unlock(g)?;
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

/// `mvault trust ...`
pub fn trust(g: &Global, cmd: &TrustCommand) -> Result<i32> {
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
            let v = unlock(g)?;
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

/// `mvault allow ...`
pub fn allow(g: &Global, cmd: &AllowCommand) -> Result<i32> {
    match cmd {
        AllowCommand::Add { global } => {
            let v = unlock_write(g, &modelvault::NoProgress)?;
            v.allow_add(global)?;
            print_done(g, json!({"allowed": global}), &format!("pickles put into this vault may now import {global}"));
        }
        AllowCommand::List => {
            let list = unlock(g)?.allow_list()?;
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
