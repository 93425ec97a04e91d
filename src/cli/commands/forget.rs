//! `mvault forget`: a retention policy applied per model (the decisions in the library's
//! `ops::forget`), printed with every reason; `--dry-run` removes nothing.

use modelvault::ops::forget::{MetricRule, Policy, Within};
use modelvault::{Error, Result};

use crate::cli::args::{ForgetArgs, Global};
use crate::cli::output;
use crate::cli::session::{unlock_read, unlock_write};

/// The policy the options give.
///
/// Errors: [`Error::InvalidInput`] for a bad duration, tag or metric rule.
fn policy(a: &ForgetArgs) -> Result<Policy> {
    let tags = a
        .keep_tag
        .iter()
        .map(|t| {
            t.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| {
                Error::InvalidInput(format!("--keep-tag '{}' is not KEY=VALUE", modelvault::names::escape(t)))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Policy {
        last: a.keep_last,
        hourly: a.keep_hourly,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        yearly: a.keep_yearly,
        within: a.keep_within.as_deref().map(Within::parse).transpose()?,
        tags,
        metrics: a.keep_metric.iter().map(|m| MetricRule::parse(m)).collect::<Result<_>>()?,
    })
}

/// Runs `forget`; returns the exit code.
pub fn run(g: &Global, a: &ForgetArgs) -> Result<i32> {
    let p = policy(a)?;
    if p.is_empty() {
        return Err(Error::InvalidInput(
            "no keep rule given (every --keep-* count is 0, and no --keep-within, --keep-tag or --keep-metric): forget would remove every version no alias points to; give at least one".into(),
        ));
    }
    let v = if a.dry_run { unlock_read(g)? } else { unlock_write(g, &modelvault::NoProgress)? };
    let reports = v.forget(&a.names, &p, a.dry_run)?;
    if g.json {
        output::json(&reports);
        return Ok(0);
    }
    for r in &reports {
        let kept = r.decisions.iter().filter(|d| d.keep).count();
        let gone = r.decisions.len() - kept;
        let verb = if a.dry_run { "would remove" } else { "removed" };
        println!("{}: keep {kept}, {verb} {gone}", modelvault::names::escape(&r.model));
        let rows: Vec<Vec<String>> = r
            .decisions
            .iter()
            .map(|d| {
                let what = if d.keep {
                    "keep"
                } else if a.dry_run {
                    "remove"
                } else {
                    "removed"
                };
                vec![format!("  @{}", d.version), output::time(d.created), what.to_string(), d.reasons.join(", ")]
            })
            .collect();
        for line in output::table(&[], &[output::Align::Left; 4], &rows) {
            println!("{line}");
        }
    }
    if !a.dry_run && reports.iter().any(|r| !r.removed.is_empty()) {
        eprintln!("run `mvault gc` to free the chunks only the removed versions used");
    }
    Ok(0)
}
