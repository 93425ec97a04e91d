//! `mvault metric`: sets numeric metrics (KEY=NUMBER) on a version.

use modelvault::Result;
use serde_json::json;

use crate::cli::args::Global;
use crate::cli::parse::{metric, versioned};
use crate::cli::progress::Bar;
use crate::cli::session::{print_done, unlock_write};

/// Runs `metric SPEC KEY=NUMBER...`; returns the exit code.
pub fn run(g: &Global, spec: &str, metrics: &[String]) -> Result<i32> {
    let (name, r) = versioned(spec)?;
    let pairs: Vec<(String, f64)> = metrics.iter().map(|m| metric(m)).collect::<Result<_>>()?;
    let v = unlock_write(g, &Bar::new(g))?;
    let n = v.set_metrics(&name, &r, &pairs)?;
    let set: serde_json::Map<String, serde_json::Value> = pairs.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let text: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    print_done(
        g,
        json!({"name": name, "version": n, "metric": set}),
        &format!("{name}@{n}: metric {}", text.join(", ")),
    );
    Ok(0)
}
