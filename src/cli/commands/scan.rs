//! `mvault scan`: prints the library's verdict on files on disk (no vault needed). Exit code:
//! the highest of 8 (a file would be refused) and the codes of the errors met, 0 when every file
//! is clean.

use std::path::PathBuf;

use modelvault::names::escape;
use modelvault::{DiskScan, Result, scan_paths};
use serde_json::json;

use crate::cli::args::Global;
use crate::cli::exit;
use crate::cli::output::{self, Align};

/// Runs `scan PATH... [--allow GLOBAL]`; returns the exit code.
pub fn run(g: &Global, paths: &[PathBuf], allow: &[String]) -> Result<i32> {
    let report = scan_paths(paths, allow);
    if g.json {
        output::json(&json_rows(&report));
    } else {
        print(&report);
    }
    let code = report
        .entries
        .iter()
        .map(|e| match &e.outcome {
            Ok(v) if v.refused() => 8,
            Ok(_) => 0,
            Err(e) => exit::code(e),
        })
        .max()
        .unwrap_or(0);
    Ok(code)
}

/// One JSON object per entry.
fn json_rows(report: &DiskScan) -> Vec<serde_json::Value> {
    let rows = report.entries.iter().map(|e| match &e.outcome {
        Ok(v) => {
            json!({"path": e.path, "format": v.format, "verdict": v.verdict, "error": v.error, "findings": v.findings})
        }
        Err(err) => json!({"path": e.path, "verdict": "error", "error": exit::message(err), "code": exit::code(err)}),
    });
    rows.collect()
}

/// A table, one row per file with its findings under it, then the totals.
fn print(report: &DiskScan) {
    let rows: Vec<(Vec<String>, Vec<String>)> = report
        .entries
        .iter()
        .map(|e| {
            let path = escape(&e.path.display().to_string());
            match &e.outcome {
                Ok(v) => {
                    let mut under: Vec<String> = v.error.iter().map(|e| format!("    {e}")).collect();
                    under.extend(v.findings.iter().map(|f| format!("    {f}")));
                    (vec![v.verdict.to_uppercase(), v.format.clone(), path], under)
                }
                Err(err) => (vec!["ERROR".into(), "-".into(), path], vec![format!("    {}", exit::message(err))]),
            }
        })
        .collect();
    let cells: Vec<Vec<String>> = rows.iter().map(|(c, _)| c.clone()).collect();
    let lines = output::table(&[], &[Align::Left; 3], &cells);
    for (line, (_, under)) in lines.iter().zip(&rows) {
        println!("{line}");
        for u in under {
            println!("{u}");
        }
    }
    let errors = report.unreadable();
    let errs = if errors > 0 { format!(", {errors} could not be read") } else { String::new() };
    println!("{} file(s) scanned in {} path(s), {} refused{errs}", report.files, report.paths, report.refused());
}
