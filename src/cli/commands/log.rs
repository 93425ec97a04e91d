//! `mvault log`: the vault's signed log (list the entries, print a signed checkpoint, verify the
//! log and, against a kept checkpoint, that the vault was not rolled back).

use std::io::Write;

use modelvault::{Error, Result};

use crate::cli::args::{Global, LogCommand};
use crate::cli::output;
use crate::cli::session::{damaged, unlock_read};

/// Runs `log`, `log checkpoint`, `log verify`; returns the exit code.
pub fn run(g: &Global, cmd: Option<&LogCommand>) -> Result<i32> {
    let v = unlock_read(g)?;
    match cmd {
        None => {
            let entries = v.log_entries()?;
            let size = v.log_head()?.map(|h| h.size).unwrap_or(0);
            let contiguous = entries.iter().enumerate().all(|(i, e)| e.seq == i as u64);
            if !contiguous || entries.len() as u64 != size {
                eprintln!(
                    "warning: the vault state names {size} log entries, but {} are present{}: run `mvault log verify`",
                    entries.len(),
                    if contiguous { "" } else { ", with gaps" }
                );
            }
            if g.json {
                output::json(&entries);
                return Ok(0);
            }
            if entries.is_empty() {
                println!("the log is empty (it begins with the first change this version makes)");
            }
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| {
                    let what = match (&e.model, e.erased) {
                        (_, true) => "(erased)".to_string(),
                        (Some(m), _) if !e.versions.is_empty() => {
                            let vs: Vec<String> = e.versions.iter().map(u64::to_string).collect();
                            format!("{}@{}", modelvault::names::escape(m), vs.join(","))
                        }
                        (Some(m), _) => modelvault::names::escape(m),
                        (None, _) => String::new(),
                    };
                    let detail = e.detail.as_deref().map(modelvault::names::escape).unwrap_or_default();
                    vec![e.seq.to_string(), output::time(e.time), e.op.clone(), e.slot.clone(), what, detail]
                })
                .collect();
            let head = ["#", "when", "op", "slot", "subject", "detail"];
            for line in output::table(&head, &[output::Align::Left; 6], &rows) {
                println!("{line}");
            }
        }
        Some(LogCommand::Checkpoint { output: out }) => {
            let Some(note) = v.log_checkpoint()? else {
                return Err(Error::InvalidInput(
                    "the vault has no log yet (it was last written by a version without one): make any change first, e.g. `mvault tag`".into(),
                ));
            };
            match out {
                None => print!("{note}"),
                Some(path) => {
                    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(path).map_err(|e| {
                        if e.kind() == std::io::ErrorKind::AlreadyExists {
                            Error::InvalidInput(format!(
                                "{} already exists: a checkpoint is never written over a file; give another name",
                                path.display()
                            ))
                        } else {
                            Error::Io { context: format!("creating {}", path.display()), source: e }
                        }
                    })?;
                    f.write_all(note.as_bytes())
                        .and_then(|()| f.sync_all())
                        .map_err(|e| Error::Io { context: format!("writing {}", path.display()), source: e })?;
                    eprintln!("wrote the checkpoint to {}", path.display());
                }
            }
        }
        Some(LogCommand::Verify { since }) => {
            let note = match since {
                Some(p) => Some(read_checkpoint(p)?),
                None => None,
            };
            let r = v.verify_log(note.as_deref())?;
            if g.json {
                output::json(&r);
            } else if r.problems.is_empty() {
                let since =
                    r.since.as_ref().map(|(n, _)| format!(", extending the checkpoint of {n}")).unwrap_or_default();
                println!("the log holds: {} entries{since}", r.size);
            }
            return Ok(if damaged(&r.problems) { 6 } else { 0 });
        }
    }
    Ok(0)
}

/// Reads a checkpoint file, refusing one over [`modelvault::log::checkpoint::MAX_CHECKPOINT_BYTES`].
fn read_checkpoint(path: &std::path::Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)
        .map_err(|e| Error::Io { context: format!("reading {}", path.display()), source: e })?;
    let limit = modelvault::log::checkpoint::MAX_CHECKPOINT_BYTES as u64;
    let mut b = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut b)
        .map_err(|e| Error::Io { context: format!("reading {}", path.display()), source: e })?;
    if b.len() as u64 > limit {
        return Err(Error::InvalidInput(format!(
            "{} is over {limit} bytes: it is not a checkpoint `mvault log checkpoint` wrote",
            path.display()
        )));
    }
    Ok(b)
}
