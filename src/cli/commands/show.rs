//! `mvault show`: one version in full (files, aliases, tags, metrics, signer).

use modelvault::names::escape;
use modelvault::{Result, VersionInfo, parse_spec};

use crate::cli::args::Global;
use crate::cli::output::{self, Align, print_table, size, time};
use crate::cli::session::unlock_read;

/// Runs `show SPEC`; returns the exit code.
pub fn run(g: &Global, spec: &str) -> Result<i32> {
    let (name, r) = parse_spec(spec)?;
    let v = unlock_read(g)?;
    let info = v.show(&name, &r)?;
    if g.json {
        output::json(&info)
    } else {
        version(&info)
    }
    Ok(0)
}

/// Prints one version in full.
fn version(v: &VersionInfo) {
    println!("model:       {}", escape(&v.name));
    println!("version:     {}", v.version);
    println!("created:     {}", time(v.created));
    if v.revision > 0 {
        println!("updated:     {} (revision {})", time(v.updated), v.revision);
    }
    println!("size:        {} ({} bytes)", size(v.size_bytes), v.size_bytes);
    if !v.aliases.is_empty() {
        println!("aliases:     {}", v.aliases.join(", "));
    }
    if !v.model_description.is_empty() {
        println!("about:       {}", escape(&v.model_description));
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
    let rows: Vec<Vec<String>> =
        v.files.iter().map(|f| vec![escape(&f.path), f.size.to_string(), format!("sha256:{}", f.sha256)]).collect();
    print_table("  ", &[], &[Align::Left, Align::Right, Align::Left], &rows);
}
