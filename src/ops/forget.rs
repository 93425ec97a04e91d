//! Retention (`mvault forget`): which versions of a model a policy keeps, with every reason, and
//! removing the others. The policy's time buckets are restic's (`restic forget`, restic 0.14
//! `ApplyPolicy`): versions newest first; `--keep-last N` keeps the N newest; each of
//! hourly/daily/weekly/monthly/yearly keeps the newest version of each of the N most recent
//! hours/days/ISO weeks/months/years that have one; `--keep-within D` keeps every version
//! strictly newer than the newest one not in the future minus D (calendar years, months, days,
//! then hours, with Go's `AddDate` normalisation; with every version in the future, all are
//! within); tags are kept without counting. Times are UTC. A test checks all of it against
//! restic itself (tests/forget.rs).
//!
//! Ours beyond restic: `--keep-metric KEY>=X` (and `>`, `<=`, `<`, `=`), and a version an alias
//! points to is never forgotten (reason `alias NAME`). Every version listed has been read with
//! its manifest signature verified under this vault's keys; a model with a damaged record is
//! refused, never decided on a partial view.
//!
//! This module must never remove a version it did not decide to remove, or remove anything on
//! a dry run.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, Timelike};
use serde::Serialize;

use crate::log::Op;
use crate::ops::VersionRef;
use crate::vault::{Unlocked, Vault};
use crate::{Error, Result};

/// A `--keep-within` duration: calendar years, months, days and hours (restic's `1y5m7d2h`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Within {
    /// Years.
    pub years: i32,
    /// Months.
    pub months: i32,
    /// Days.
    pub days: i32,
    /// Hours.
    pub hours: i32,
}

impl Within {
    /// Parses restic's form: one or more NUMBER UNIT with UNIT in `y`, `m`, `d`, `h`
    /// (e.g. `1y5m7d2h`, `36h`).
    ///
    /// Errors: [`Error::InvalidInput`] naming the text.
    pub fn parse(text: &str) -> Result<Within> {
        let bad = || {
            Error::InvalidInput(format!(
                "keep-within '{}' is not a duration: give NUMBER followed by y, m, d or h, e.g. 1y5m7d2h",
                crate::names::escape(text)
            ))
        };
        let mut w = Within::default();
        let mut num = String::new();
        for c in text.chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let n: i32 = num.parse().map_err(|_| bad())?;
            num.clear();
            let slot = match c {
                'y' => &mut w.years,
                'm' => &mut w.months,
                'd' => &mut w.days,
                'h' => &mut w.hours,
                _ => return Err(bad()),
            };
            *slot = slot.checked_add(n).ok_or_else(bad)?;
        }
        if !num.is_empty() || w == Within::default() && !text.contains('0') {
            return Err(bad());
        }
        Ok(w)
    }

    /// The instant `latest` minus this duration, as Go's `AddDate(-y, -m, -d)` then `Add(-h)`
    /// compute it (a month that overflows the day carries into the next month, as
    /// `time.Date` normalises); `None` out of range.
    fn before(&self, latest: i64) -> Option<i64> {
        let t = DateTime::from_timestamp(latest, 0)?.naive_utc();
        let months =
            i64::from(t.year()) * 12 + i64::from(t.month0()) - i64::from(self.years) * 12 - i64::from(self.months);
        let (y, m0) = (months.div_euclid(12), months.rem_euclid(12));
        let first = NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, u32::try_from(m0).ok()? + 1, 1)?;
        let day = first.checked_add_signed(chrono::TimeDelta::days(i64::from(t.day()) - 1 - i64::from(self.days)))?;
        let at = day.and_time(t.time()).and_utc().timestamp();
        at.checked_sub(i64::from(self.hours) * 3600)
    }
}

impl std::fmt::Display for Within {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // As restic prints it: each non-zero unit, largest first.
        for (n, u) in [(self.years, 'y'), (self.months, 'm'), (self.days, 'd'), (self.hours, 'h')] {
            if n != 0 {
                write!(f, "{n}{u}")?;
            }
        }
        Ok(())
    }
}

/// A `--keep-metric` rule: keep versions whose metric `key` compares so with `value`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRule {
    /// Metric name.
    pub key: String,
    /// One of `>=`, `>`, `<=`, `<`, `=`.
    pub op: String,
    /// The number compared with.
    pub value: f64,
}

impl MetricRule {
    /// Parses `KEY>=X` (or `>`, `<=`, `<`, `=`).
    ///
    /// Errors: [`Error::InvalidInput`] naming the text.
    pub fn parse(text: &str) -> Result<MetricRule> {
        let bad = |why: &str| {
            Error::InvalidInput(format!(
                "keep-metric '{}' {why}: give KEY>=NUMBER (or >, <=, <, =), e.g. accuracy>=0.9",
                crate::names::escape(text)
            ))
        };
        let at = text.find(['<', '>', '=']).ok_or_else(|| bad("has no comparison"))?;
        let (key, rest) = text.split_at(at);
        let op = ["<=", ">=", "<", ">", "="].into_iter().find(|o| rest.starts_with(o)).expect("starts with one");
        let value: f64 = rest[op.len()..].trim().parse().map_err(|_| bad("does not end in a number"))?;
        if key.trim().is_empty() || !value.is_finite() {
            return Err(bad("needs a metric name and a finite number"));
        }
        Ok(MetricRule { key: key.trim().to_string(), op: op.to_string(), value })
    }

    fn holds(&self, v: f64) -> bool {
        match self.op.as_str() {
            ">=" => v >= self.value,
            ">" => v > self.value,
            "<=" => v <= self.value,
            "<" => v < self.value,
            _ => v == self.value,
        }
    }
}

impl std::fmt::Display for MetricRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}{}", self.key, self.op, self.value)
    }
}

/// A retention policy. Counts of 0 keep nothing by that rule.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    /// Keep the N newest versions.
    pub last: u32,
    /// Keep the newest version of each of the N most recent hours that have one.
    pub hourly: u32,
    /// ... days.
    pub daily: u32,
    /// ... ISO weeks (ISO 8601 year and week).
    pub weekly: u32,
    /// ... months.
    pub monthly: u32,
    /// ... years.
    pub yearly: u32,
    /// Keep every version strictly newer than the newest minus this.
    pub within: Option<Within>,
    /// Keep versions with this tag (key, value).
    pub tags: Vec<(String, String)>,
    /// Keep versions whose metric satisfies a rule.
    pub metrics: Vec<MetricRule>,
}

impl Policy {
    /// True when no rule is given (which `forget` refuses: it would forget everything).
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }
}

/// One version as the policy sees it.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Version number.
    pub version: u64,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Metrics.
    pub metrics: BTreeMap<String, f64>,
    /// Aliases pointing to it.
    pub aliases: Vec<String>,
}

/// What the policy decided for one version.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// Version number.
    pub version: u64,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// True when kept.
    pub keep: bool,
    /// Why it is kept (`last`, `hourly`, `daily`, `weekly`, `monthly`, `yearly`, `within 1d`,
    /// `tag k=v`, `metric k>=x`, `alias NAME`), in that order of checking; empty when removed.
    pub reasons: Vec<String>,
}

type Bucket = fn(&chrono::NaiveDateTime, usize) -> i64;

/// Decides each of `versions` under `policy` at time `now` (Unix seconds; restic's algorithm,
/// see the module docs). Returns the decisions newest first (by creation time, then version
/// number).
pub fn apply(versions: &[Candidate], policy: &Policy, now: u64) -> Vec<Decision> {
    let mut list: Vec<&Candidate> = versions.iter().collect();
    list.sort_by_key(|c| std::cmp::Reverse((c.created, c.version)));
    let buckets: [(u32, Bucket, &str); 6] = [
        (policy.last, |_, nr| nr as i64, "last"),
        (
            policy.hourly,
            |t, _| i64::from(t.year()) * 1_000_000 + i64::from(t.month() * 10_000 + t.day() * 100 + t.hour()),
            "hourly",
        ),
        (policy.daily, |t, _| i64::from(t.year()) * 10_000 + i64::from(t.month() * 100 + t.day()), "daily"),
        (policy.weekly, |t, _| i64::from(t.iso_week().year()) * 100 + i64::from(t.iso_week().week()), "weekly"),
        (policy.monthly, |t, _| i64::from(t.year()) * 100 + i64::from(t.month()), "monthly"),
        (policy.yearly, |t, _| i64::from(t.year()), "yearly"),
    ];
    let mut left: Vec<u32> = buckets.iter().map(|b| b.0).collect();
    let mut last: Vec<Option<i64>> = vec![None; buckets.len()];
    // The newest version not in the future; none: every version is within (restic's zero time).
    let latest = list.iter().map(|c| c.created).find(|&t| t < now);
    let cutoff = match (policy.within, latest) {
        (Some(w), Some(t)) => w.before(t as i64),
        (Some(_), None) => Some(i64::MIN),
        _ => None,
    };
    let mut out = Vec::with_capacity(list.len());
    for (nr, c) in list.iter().enumerate() {
        let mut reasons = Vec::new();
        for (k, v) in &policy.tags {
            if c.tags.get(k) == Some(v) {
                reasons.push(format!("tag {k}={v}"));
            }
        }
        if let (Some(w), Some(cut)) = (policy.within, cutoff)
            && (c.created as i64) > cut
        {
            reasons.push(format!("within {w}"));
        }
        let t = DateTime::from_timestamp(c.created as i64, 0).unwrap_or_default().naive_utc();
        for (i, (_, bucket, name)) in buckets.iter().enumerate() {
            if left[i] > 0 {
                let val = bucket(&t, nr);
                if last[i] != Some(val) {
                    last[i] = Some(val);
                    left[i] -= 1;
                    reasons.push((*name).to_string());
                }
            }
        }
        for m in &policy.metrics {
            if c.metrics.get(&m.key).is_some_and(|v| m.holds(*v)) {
                reasons.push(format!("metric {m}"));
            }
        }
        reasons.extend(c.aliases.iter().map(|a| format!("alias {a}")));
        out.push(Decision { version: c.version, created: c.created, keep: !reasons.is_empty(), reasons });
    }
    out
}

/// What `forget` decided (and, unless a dry run, did) for one model.
#[derive(Debug, Clone, Serialize)]
pub struct ForgetReport {
    /// The model.
    pub model: String,
    /// True when nothing was removed because it was a dry run.
    pub dry_run: bool,
    /// Every version, newest first.
    pub decisions: Vec<Decision>,
    /// The versions the policy does not keep, newest first.
    pub remove: Vec<u64>,
    /// The versions removed (empty on a dry run).
    pub removed: Vec<u64>,
}

impl Vault<Unlocked> {
    /// Applies `policy` to each of `names` (every model when empty): decides every version
    /// ([`apply`]) and, unless `dry_run`, removes those not kept, one transaction per model
    /// (logged as `forget`). Chunks are freed by the next `gc`.
    ///
    /// Errors: [`Error::InvalidInput`] for an empty policy; [`Error::ModelNotFound`];
    /// [`Error::Damaged`] when a record of the model does not read (nothing is decided on a
    /// partial view); as [`Vault::remove_version`].
    pub fn forget(&self, names: &[String], policy: &Policy, dry_run: bool) -> Result<Vec<ForgetReport>> {
        if policy.is_empty() {
            return Err(Error::InvalidInput(
                "no retention rule given: a forget without one would remove every version not aliased; give at least one keep rule".into(),
            ));
        }
        let listing = self.list(None)?;
        if let Some(p) = listing.problems.first() {
            return Err(Error::Damaged(format!("a record does not read ({p}); nothing was forgotten")));
        }
        for n in names {
            if !listing.models.iter().any(|m| &m.name == n) {
                return Err(Error::ModelNotFound(crate::names::escape(n)));
            }
        }
        // A rule naming a metric or tag no version has keeps nothing: a typo would forget.
        let chosen: Vec<_> = listing.models.iter().filter(|m| names.is_empty() || names.contains(&m.name)).collect();
        let has = |f: &dyn Fn(&crate::VersionInfo) -> bool| chosen.iter().any(|m| m.versions.iter().any(f));
        for r in &policy.metrics {
            if !has(&|v| v.metrics.contains_key(&r.key)) {
                return Err(Error::InvalidInput(format!(
                    "no version has the metric '{}' (keep-metric {r}): it would keep nothing, so forget refuses it; check the name",
                    crate::names::escape(&r.key)
                )));
            }
        }
        for (k, _) in &policy.tags {
            if !has(&|v| v.tags.contains_key(k)) {
                return Err(Error::InvalidInput(format!(
                    "no version has the tag '{}': it would keep nothing, so forget refuses it; check the name",
                    crate::names::escape(k)
                )));
            }
        }
        let mut out = Vec::new();
        for m in listing.models.iter().filter(|m| names.is_empty() || names.contains(&m.name)) {
            let cands: Vec<Candidate> = m
                .versions
                .iter()
                .map(|v| Candidate {
                    version: v.version,
                    created: v.created,
                    tags: v.tags.clone(),
                    metrics: v.metrics.clone(),
                    aliases: v.aliases.clone(),
                })
                .collect();
            let decisions = apply(&cands, policy, crate::vault::now());
            let doomed: Vec<u64> = decisions.iter().filter(|d| !d.keep).map(|d| d.version).collect();
            let removed =
                if dry_run || doomed.is_empty() { Vec::new() } else { self.forget_versions(&m.name, &doomed)? };
            out.push(ForgetReport { model: m.name.clone(), dry_run, decisions, remove: doomed, removed });
        }
        Ok(out)
    }

    fn forget_versions(&self, name: &str, versions: &[u64]) -> Result<Vec<u64>> {
        let mut txn = self.write(Op::Forget)?;
        let mut removed = Vec::new();
        for v in versions {
            removed.push(self.remove_version_in(&mut txn, name, &VersionRef::Number(*v))?);
        }
        txn.about(Some(name), removed.clone(), None);
        txn.commit()?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_metric_rules_parse_as_documented() {
        assert_eq!(Within::parse("1y5m7d2h").unwrap(), Within { years: 1, months: 5, days: 7, hours: 2 });
        assert_eq!(Within::parse("36h").unwrap().to_string(), "36h");
        for bad in ["", "1", "d", "1w", "1d2", "99999999999d"] {
            assert!(Within::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(MetricRule::parse("acc>=0.9").unwrap().to_string(), "acc>=0.9");
        for bad in ["acc", ">=1", "acc>=x", "acc>=inf"] {
            assert!(MetricRule::parse(bad).is_err(), "{bad}");
        }
        // Go's AddDate: 2026-03-31 minus one month is 2026-03-03 (February has 28 days).
        let t = NaiveDate::from_ymd_opt(2026, 3, 31).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
        let want = NaiveDate::from_ymd_opt(2026, 3, 3).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
        assert_eq!(Within { months: 1, ..Default::default() }.before(t), Some(want));
    }
}
