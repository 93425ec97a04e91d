//! `mvault key`: key slots (list, add, remove, change a passphrase), the key usage counters and
//! master-key rotation. Passphrases are read by `passphrase.rs` and never printed.

use modelvault::{Argon2Params, Error, Passphrase, Result, Vault};
use serde_json::json;

use crate::cli::args::{Global, KeyCommand, NewPassphrase, SlotCost};
use crate::cli::progress::Bar;
use crate::cli::session::{print_done, read_opts, unlock, unlock_read, unlock_write, vault_path};
use crate::cli::{output, passphrase};

/// Runs `key list|usage|add|remove|passwd|rotate`; returns the exit code.
pub fn run(g: &Global, cmd: &KeyCommand) -> Result<i32> {
    let progress = Bar::new(g);
    match cmd {
        KeyCommand::List => list(g)?,
        KeyCommand::Usage => {
            let u = unlock_read(g)?.key_usage()?;
            if g.json {
                output::json(&u);
            } else {
                println!(
                    "epoch {}: chunk key {} seals, metadata key {} seals; warning from {}, limit {} (NIST SP 800-38D)",
                    u.epoch, u.chunk_seals, u.meta_seals, u.warn_at, u.limit
                );
            }
        }
        KeyCommand::Add { name, recipients, recipients_file, .. }
            if !recipients.is_empty() || !recipients_file.is_empty() =>
        {
            let parsed = parse_recipients(recipients, recipients_file)?;
            let v = unlock_write(g, &progress)?;
            v.add_recipient_slot(name, &parsed)?;
            let texts: Vec<&str> = parsed.iter().map(|r| r.text()).collect();
            print_done(
                g,
                json!({"added_slot": name, "kind": "recipient", "recipients": texts}),
                &format!("added key slot '{name}' for {} recipient(s): {}", texts.len(), texts.join(", ")),
            );
        }
        KeyCommand::Add { name, new, cost: c, .. } => {
            let v = unlock_write(g, &progress)?;
            let params = cost(c, Argon2Params::default())?;
            let p = new_passphrase(g, new, name)?;
            v.add_slot(name, &p, &params)?;
            print_done(g, json!({"added_slot": name, "argon2": params}), &format!("added key slot '{name}'"));
        }
        KeyCommand::Remove { name } => {
            let v = unlock_write(g, &progress)?;
            v.remove_slot(name)?;
            let note = "its passphrase or private key still opens this vault through an earlier copy of the slot (a backup of \
                        the vault file, or a freed page of it) until the master key is rotated: run `mvault key \
                        rotate` if that passphrase or key may be known to someone who should not read the vault";
            print_done(g, json!({"removed_slot": name, "note": note}), &format!("removed key slot '{name}'; {note}"));
        }
        KeyCommand::Passwd { slot_name, new, cost: c } => passwd(g, slot_name.as_deref(), new, c, &progress)?,
        KeyCommand::Rotate { resume, slot_passphrase_file, remove_other_slots } => {
            rotate(g, *resume, slot_passphrase_file, *remove_other_slots, &progress)?
        }
    }
    Ok(0)
}

/// The recipients of `key add --recipient/--recipients-file`, parsed (a recipients file as
/// `age -R` reads it: one per line, blank lines and `#` comments skipped).
///
/// Errors: [`Error::Io`] naming an unreadable file; [`Error::InvalidInput`] naming the file and
/// line of a recipient that does not parse.
fn parse_recipients(given: &[String], files: &[std::path::PathBuf]) -> Result<Vec<modelvault::Recipient>> {
    let mut out = Vec::new();
    for r in given {
        out.push(modelvault::Recipient::parse(r)?);
    }
    for f in files {
        out.extend(modelvault::Recipient::read_file(f)?);
    }
    if out.is_empty() {
        return Err(Error::InvalidInput("the recipients files hold no recipient".into()));
    }
    Ok(out)
}

/// `key list`: the key slots, read without unlocking.
fn list(g: &Global) -> Result<()> {
    let slots = Vault::open(vault_path(g)?, &read_opts(g)?)?.slots()?;
    if g.json {
        output::json(&slots);
        return Ok(());
    }
    use output::Align::{Left as L, Right as R};
    let rows: Vec<Vec<String>> = slots
        .iter()
        .map(|s| {
            let (memory, time, lanes) = match &s.argon2 {
                Some(a) => (format!("{} KiB", a.memory_kib), a.time_cost.to_string(), a.lanes.to_string()),
                None => ("-".into(), "-".into(), "-".into()),
            };
            let kind = match s.kind {
                modelvault::SlotKind::Passphrase => "passphrase".to_string(),
                modelvault::SlotKind::Recipient => format!("recipient: {}", short_recipients(&s.recipients)),
            };
            vec![
                modelvault::names::escape(&s.name),
                s.epoch.to_string(),
                memory,
                time,
                lanes,
                output::time(s.created),
                kind,
                if s.rotating { "(rotation unfinished)" } else { "" }.to_string(),
            ]
        })
        .collect();
    let head = ["SLOT", "EPOCH", "MEMORY", "TIME", "LANES", "CREATED", "OPENED BY"];
    for line in output::table(&head, &[L, R, R, R, R, L, L, L], &rows) {
        println!("{line}");
    }
    Ok(())
}

/// Recipients as one short cell: each key cut to its type and 12 characters, at most two shown.
fn short_recipients(rs: &[String]) -> String {
    let short = |r: &String| -> String {
        let key = r.split_whitespace().last().unwrap_or(r);
        let kind = if r.starts_with("ssh-") { r.split_whitespace().next().unwrap_or("ssh") } else { "" };
        let cut: String = key.chars().take(12).collect();
        if kind.is_empty() { format!("{cut}…") } else { format!("{kind} {cut}…") }
    };
    let mut shown: Vec<String> = rs.iter().take(2).map(short).collect();
    if rs.len() > 2 {
        shown.push(format!("+{} more", rs.len() - 2));
    }
    shown.join(", ")
}

/// `key passwd`: a new passphrase (and optionally cost) for one slot; no data is re-encrypted.
fn passwd(g: &Global, slot_name: Option<&str>, new: &NewPassphrase, c: &SlotCost, progress: &Bar) -> Result<()> {
    let mut v = unlock_write(g, progress)?;
    let which = slot_name.map(str::to_string).unwrap_or_else(|| v.unlocked_slot().to_string());
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
    Ok(())
}

/// `key rotate`: a new master key, every chunk and record re-encrypted (or `--resume` of an
/// interrupted rotation); the other slots are kept when their passphrases are given.
fn rotate(g: &Global, resume: bool, slot_files: &[String], remove_others: bool, progress: &Bar) -> Result<()> {
    let mut v = unlock(g)?;
    let report = if resume {
        v.resume_rotation(progress)?
    } else {
        let mut others = Vec::new();
        for item in slot_files {
            let (name, file) = item
                .split_once('=')
                .ok_or_else(|| Error::InvalidInput(format!("--slot-passphrase-file '{item}' is not NAME=FILE")))?;
            let src = Global {
                vault: None,
                passphrase_file: Some(file.into()),
                passphrase_fd: None,
                passphrase_command: None,
                slot: None,
                identity: None,
                wait: None,
                accept_rollback: false,
                json: g.json,
                quiet: g.quiet,
            };
            others.push((name.to_string(), passphrase::obtain(&src, "", false)?));
        }
        v.rotate(&others, remove_others, progress)?
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
    Ok(())
}

/// The new passphrase for slot `slot` from the `--new-passphrase-*` options, or asked twice.
fn new_passphrase(g: &Global, n: &NewPassphrase, slot: &str) -> Result<Passphrase> {
    let src = Global {
        vault: None,
        passphrase_file: n.new_passphrase_file.clone(),
        passphrase_fd: n.new_passphrase_fd,
        passphrase_command: n.new_passphrase_command.clone(),
        slot: None,
        identity: None,
        wait: None,
        accept_rollback: false,
        json: g.json,
        quiet: g.quiet,
    };
    let interactive = !passphrase::has_source(&src);
    passphrase::obtain(&src, &format!("New passphrase for key slot '{slot}': "), interactive)
}

/// The Argon2id cost from the options, each missing one taken from `base`.
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

/// True when any cost option was given.
fn cost_given(c: &SlotCost) -> bool {
    c.argon2_memory_kib.is_some()
        || c.argon2_memory_mib.is_some()
        || c.argon2_time.is_some()
        || c.argon2_lanes.is_some()
}
