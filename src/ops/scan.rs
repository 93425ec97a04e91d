//! Scanning files on disk for unsafe pickles without a vault: what `put` would decide for each
//! file, as a report a program can read. It owns only the walk over the paths given and the
//! verdict per file; it never writes anything and never prints.

use std::path::{Path, PathBuf};

use crate::formats::pickle::ScanOptions;
use crate::{Error, Result};

/// The scan of every file under some paths, in the order given (a directory in path order).
#[derive(Debug)]
pub struct DiskScan {
    /// One entry per file scanned, or per path (or file) that could not be read.
    pub entries: Vec<ScanEntry>,
    /// How many paths were given.
    pub paths: usize,
    /// How many files were found under them (those that could not be read included).
    pub files: u64,
}

/// One file (or a path that could not be listed) and what its scan found.
#[derive(Debug)]
pub struct ScanEntry {
    /// The file on disk, or the path given when it could not be listed.
    pub path: PathBuf,
    /// The scan, or why there is none (the path could not be listed or the file read).
    pub outcome: Result<FileVerdict>,
}

/// What the scan of one readable file found.
#[derive(Debug, Clone)]
pub struct FileVerdict {
    /// The detected format.
    pub format: String,
    /// `clean`, `no-pickle` (the format carries no pickle), `invalid` (a header breaking its
    /// format's rules), `dangerous` or `unscannable`.
    pub verdict: String,
    /// The header error, for `invalid`.
    pub error: Option<String>,
    /// One line per finding of the pickle scan: global, member, offset and reason (escaped).
    pub findings: Vec<String>,
}

impl FileVerdict {
    /// True when `put` would refuse the file: any verdict but `clean` and `no-pickle`.
    pub fn refused(&self) -> bool {
        self.verdict != "clean" && self.verdict != "no-pickle"
    }
}

impl DiskScan {
    /// How many files `put` would refuse.
    pub fn refused(&self) -> u64 {
        self.entries.iter().filter(|e| e.outcome.as_ref().is_ok_and(FileVerdict::refused)).count() as u64
    }

    /// How many paths or files could not be read.
    pub fn unreadable(&self) -> u64 {
        self.entries.iter().filter(|e| e.outcome.is_err()).count() as u64
    }
}

/// Scans every file under `paths` (files, or directories walked as `put` walks them), with the
/// globals in `allow` allowed besides the built-in safe list. A path that cannot be listed, or a
/// file that cannot be read, gives an entry with its error and the scan goes on.
pub fn scan_paths(paths: &[PathBuf], allow: &[String]) -> DiskScan {
    let opts = ScanOptions { extra_allowed: allow.to_vec(), ..Default::default() };
    let mut report = DiskScan { entries: Vec::new(), paths: paths.len(), files: 0 };
    for path in paths {
        let sources = match crate::ops::put::collect_sources(path) {
            Ok(s) => s,
            Err(e) => {
                report.entries.push(ScanEntry { path: path.clone(), outcome: Err(e) });
                continue;
            }
        };
        for s in &sources {
            report.files += 1;
            report.entries.push(ScanEntry { path: s.disk.clone(), outcome: scan_one(&s.disk, &opts) });
        }
    }
    report
}

/// The verdict on one file.
///
/// Errors: [`Error::Io`] naming the file when it cannot be read.
fn scan_one(disk: &Path, opts: &ScanOptions) -> Result<FileVerdict> {
    let r = crate::formats::scan_file(disk, opts).map_err(|e| Error::io(format!("scanning {}", disk.display()), e))?;
    let rec = r.report.as_ref().map(|rep| crate::ops::put::scan_record(rep, false));
    let verdict = match (&r.error, &rec) {
        (Some(_), _) => "invalid".to_string(),
        (None, Some(rec)) => rec.verdict.clone(),
        (None, None) => "no-pickle".to_string(),
    };
    Ok(FileVerdict { format: r.format, verdict, error: r.error, findings: rec.map(|r| r.findings).unwrap_or_default() })
}
