//! Output: human-readable text, or JSON with `--json`. Names from the vault are printed escaped
//! ([`modelvault::names::escape`]), so control and bidirectional characters stay visible.

use std::time::{Duration, UNIX_EPOCH};

use modelvault::names::escape;
use modelvault::{Listing, VersionInfo};
use serde::Serialize;

/// Prints `v` as pretty JSON on stdout.
pub fn json<T: Serialize>(v: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("report serialises")
    );
}

/// Unix seconds as RFC 3339 UTC.
pub fn time(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// Bytes with a binary-unit figure beside them.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Prints a listing as a table: one line per version.
pub fn listing(l: &Listing) {
    if l.models.is_empty() && l.problems.is_empty() {
        println!("(no models)");
        return;
    }
    println!(
        "{:<28} {:>7} {:>11} {:<20} {:<16} TAGS",
        "NAME", "VERSION", "SIZE", "CREATED", "ALIASES"
    );
    for m in &l.models {
        for v in &m.versions {
            let tags: Vec<String> = v
                .tags
                .iter()
                .map(|(k, val)| format!("{k}={}", escape(val)))
                .collect();
            println!(
                "{:<28} {:>7} {:>11} {:<20} {:<16} {}",
                escape(&m.name),
                v.version,
                size(v.size_bytes),
                time(v.created),
                v.aliases.join(","),
                tags.join(" ")
            );
        }
    }
}

/// Prints one version in full.
pub fn version(v: &VersionInfo) {
    println!("model:       {}", escape(&v.name));
    println!("version:     {}", v.version);
    println!("created:     {}", time(v.created));
    if v.revision > 0 {
        println!("updated:     {} (revision {})", time(v.updated), v.revision);
    }
    println!(
        "size:        {} ({} bytes)",
        size(v.size_bytes),
        v.size_bytes
    );
    if !v.aliases.is_empty() {
        println!("aliases:     {}", v.aliases.join(", "));
    }
    if !v.description.is_empty() {
        println!("description: {}", escape(&v.description));
    }
    for (k, val) in &v.tags {
        println!("tag:         {k}={}", escape(val));
    }
    for (k, val) in &v.metrics {
        println!("metric:      {k}={val}");
    }
    println!("signer:      ed25519:{}", v.signer);
    println!("files:");
    for f in &v.files {
        println!("  {}  {:>12}  sha256:{}", escape(&f.path), f.size, f.sha256);
    }
}
