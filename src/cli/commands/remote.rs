//! `mvault remote add|list|remove`: the S3-compatible remotes of a vault. Parses the options,
//! calls the library (which probes the server and keeps the record) and prints the outcome. It
//! must never read, print or pass on a credential: the library reads them from the environment.

use modelvault::names::escape;
use modelvault::remote::{ProbeReport, RemoteConfig};
use modelvault::{RemoteAddOptions, RemoteInfo, Result};
use serde_json::json;

use crate::cli::args::{Global, RemoteCommand};
use crate::cli::output;
use crate::cli::session::{print_done, unlock, unlock_write};

/// Runs `remote add|list|remove`; returns the exit code.
pub fn run(g: &Global, cmd: &RemoteCommand) -> Result<i32> {
    match cmd {
        RemoteCommand::Add { name, url, endpoint, region, single_writer } => {
            let config = RemoteConfig::new(url, endpoint.as_deref(), region.as_deref())?;
            let v = unlock_write(g, &modelvault::NoProgress)?;
            let opts = RemoteAddOptions { single_writer: *single_writer, ..Default::default() };
            let report = v.remote_add(name, &config, &opts)?;
            let info = v.remote(name)?;
            let j = json!({"remote": name, "url": info.url, "multi_writer": info.multi_writer, "probe": report});
            print_done(g, j, &added(&info, &report));
        }
        RemoteCommand::List => {
            let v = unlock(g)?;
            let list = v.remote_list()?;
            if g.json {
                output::json(&list);
            } else {
                let rows: Vec<Vec<String>> = list.iter().map(row).collect();
                for line in output::table(&[], &[output::Align::Left; 4], &rows) {
                    println!("{line}");
                }
            }
        }
        RemoteCommand::Remove { name } => {
            let v = unlock_write(g, &modelvault::NoProgress)?;
            v.remote_remove(name)?;
            print_done(g, json!({"removed_remote": name}), &format!("removed remote '{}'", escape(name)));
        }
    }
    Ok(0)
}

fn added(info: &RemoteInfo, r: &ProbeReport) -> String {
    let winners: Vec<String> = r.rounds.iter().map(|x| x.winners.to_string()).collect();
    let probe = match &r.failure {
        None => format!(
            "probe passed: a second create-only write was refused; {} rounds of {} racing writers had winners {}",
            r.rounds.len(),
            r.rounds.first().map_or(0, |x| x.writers),
            winners.join(",")
        ),
        Some(f) => format!("probe failed: {f}"),
    };
    let use_ = if info.multi_writer { "several writers allowed" } else { "single writer" };
    format!("added remote '{}' ({}, {use_})\n{probe}", escape(&info.name), info.url)
}

fn row(r: &RemoteInfo) -> Vec<String> {
    let at = r.endpoint.clone().unwrap_or_else(|| "AWS S3".into());
    let use_ = if r.multi_writer { "multi-writer".to_string() } else { "single-writer".to_string() };
    vec![escape(&r.name), r.url.clone(), format!("{at} ({})", r.region), use_]
}
