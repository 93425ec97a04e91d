//! Retention (`mvault forget`): the policy's decisions match `restic forget` itself on the same
//! timelines (Debian's restic: snapshots made with `restic backup --time`, decisions read from
//! `restic forget --dry-run --json`), ISO-week year boundaries, month arithmetic of
//! `--keep-within` and the "not enough versions" case included; then the command itself: an
//! aliased version is never forgotten, metrics keep versions, a dry run removes nothing, the
//! removal is logged, and bad policies are clear errors.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use chrono::NaiveDateTime;
use modelvault::ops::forget::{Candidate, Policy, Within, apply};

fn restic(repo: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new("restic")
        .arg("-r")
        .arg(repo)
        .args(args)
        .env("RESTIC_PASSWORD", "oracle")
        .env("TZ", "UTC")
        .env("RESTIC_CACHE_DIR", repo.with_extension("cache"))
        .output()
        .unwrap_or_else(|e| panic!("restic (Debian package `restic`) is needed as the retention oracle: {e}"));
    assert!(out.status.success(), "restic {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn unix(t: &str) -> u64 {
    NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").unwrap().and_utc().timestamp() as u64
}

/// A restic repository with one snapshot per time (tagged where given).
fn timeline(dir: &Path, times: &[(&str, Option<&str>)]) -> std::path::PathBuf {
    let repo = dir.join("repo");
    restic(&repo, &["init", "-q"]);
    let file = dir.join("f");
    std::fs::write(&file, b"x").unwrap();
    for (t, tag) in times {
        let mut args = vec!["backup", "-q", "--host", "h", "--time", t];
        if let Some(tag) = tag {
            args.extend(["--tag", tag]);
        }
        args.push(file.to_str().unwrap());
        restic(&repo, &args);
    }
    repo
}

/// restic's decisions: time → reasons (empty for removed), ours in restic's words.
fn restic_says(repo: &Path, flags: &[&str]) -> BTreeMap<u64, Vec<String>> {
    let mut args = vec!["forget", "--dry-run", "--json"];
    args.extend(flags);
    let out = restic(repo, &args);
    let groups: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let g = &groups.as_array().unwrap()[0];
    let time = |s: &serde_json::Value| {
        let t = s["time"].as_str().unwrap();
        chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp() as u64
    };
    let mut m = BTreeMap::new();
    for s in g["remove"].as_array().into_iter().flatten() {
        m.insert(time(s), Vec::new());
    }
    for r in g["reasons"].as_array().unwrap() {
        let reasons = r["matches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                let x = x.as_str().unwrap();
                match x.strip_suffix(" snapshot") {
                    Some(b) => b.to_string(),
                    None => match x.strip_prefix("has tags [") {
                        Some(t) => format!("tag {}", t.trim_end_matches(']')),
                        None => x.to_string(),
                    },
                }
            })
            .collect();
        m.insert(time(&r["snapshot"]), reasons);
    }
    m
}

fn ours(times: &[(&str, Option<&str>)], p: &Policy) -> BTreeMap<u64, Vec<String>> {
    let cands: Vec<Candidate> = times
        .iter()
        .enumerate()
        .map(|(i, (t, tag))| Candidate {
            version: i as u64 + 1,
            created: unix(t),
            tags: tag
                .map(|t| t.split_once('=').unwrap())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into_iter()
                .collect(),
            metrics: BTreeMap::new(),
            aliases: Vec::new(),
        })
        .collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    apply(&cands, p, now).into_iter().map(|d| (d.created, d.reasons)).collect()
}

fn policy(flags: &[&str]) -> Policy {
    let mut p = Policy::default();
    for f in flags.chunks(2) {
        let n = || f[1].parse::<u32>().unwrap();
        match f[0] {
            "--keep-last" => p.last = n(),
            "--keep-hourly" => p.hourly = n(),
            "--keep-daily" => p.daily = n(),
            "--keep-weekly" => p.weekly = n(),
            "--keep-monthly" => p.monthly = n(),
            "--keep-yearly" => p.yearly = n(),
            "--keep-within" => p.within = Some(Within::parse(f[1]).unwrap()),
            "--keep-tag" => {
                let (k, v) = f[1].split_once('=').unwrap();
                p.tags.push((k.to_string(), v.to_string()));
            }
            other => panic!("{other}"),
        }
    }
    p
}

#[test]
fn the_policy_decides_as_restic_forget_does() {
    let d = tempfile::tempdir().unwrap();
    // Across an ISO-week year boundary (2025-12-29 to 2026-01-04 is 2026-W01), a new year, several
    // versions in one hour and one day, a year with one version, and the newest in the future
    // (restic measures --keep-within from the newest that is not).
    let times: &[(&str, Option<&str>)] = &[
        ("2024-06-01 12:00:00", None),
        ("2025-12-27 10:00:00", Some("env=prod")),
        ("2025-12-28 23:30:00", None),
        ("2025-12-29 00:30:00", None),
        ("2026-01-01 12:00:00", Some("env=prod")),
        ("2026-01-03 23:59:59", None),
        ("2026-01-04 00:00:01", None),
        ("2026-01-05 08:00:00", None),
        ("2026-01-05 08:30:00", None),
        ("2026-01-05 09:10:00", None),
        ("2026-02-01 00:00:00", None),
        ("2027-01-01 00:00:00", None),
    ];
    let repo = timeline(d.path(), times);
    let policies: &[&[&str]] = &[
        &["--keep-last", "3"],
        &["--keep-hourly", "4"],
        &["--keep-daily", "5"],
        &["--keep-weekly", "3"],
        &["--keep-weekly", "30"],
        &["--keep-monthly", "2", "--keep-yearly", "3"],
        &["--keep-yearly", "10"],
        &["--keep-within", "1y2d"],
        &["--keep-within", "400d", "--keep-last", "1"],
        &["--keep-daily", "2", "--keep-weekly", "2", "--keep-tag", "env=prod"],
        &[
            "--keep-last",
            "1",
            "--keep-hourly",
            "2",
            "--keep-daily",
            "2",
            "--keep-weekly",
            "2",
            "--keep-monthly",
            "2",
            "--keep-yearly",
            "2",
            "--keep-within",
            "3d",
        ],
    ];
    for flags in policies {
        let want = restic_says(&repo, flags);
        assert_eq!(want.len(), times.len());
        assert_eq!(ours(times, &policy(flags)), want, "policy {flags:?}");
    }
}

#[test]
fn keep_within_counts_months_as_restic_does() {
    let d = tempfile::tempdir().unwrap();
    // From 2026-03-31 12:00, one month back is 2026-03-03 12:00 (Go's AddDate carries the day),
    // not 2026-02-28.
    let times: &[(&str, Option<&str>)] = &[
        ("2026-02-28 11:00:00", None),
        ("2026-02-28 12:00:00", None),
        ("2026-03-02 12:00:00", None),
        ("2026-03-03 11:00:00", None),
        ("2026-03-03 12:00:00", None),
        ("2026-03-03 13:00:00", None),
        ("2026-03-31 12:00:00", None),
    ];
    let repo = timeline(d.path(), times);
    // The oldest two share a day: with more days asked than there are, the older of them is not
    // kept (restic 0.14 keeps no extra oldest version).
    for flags in
        [&["--keep-within", "1m"][..], &["--keep-within", "1m2h"], &["--keep-within", "29d"], &["--keep-daily", "10"]]
    {
        let want = restic_says(&repo, flags);
        assert_eq!(ours(times, &policy(flags)), want, "policy {flags:?}");
    }
    let kept = ours(times, &policy(&["--keep-within", "1m"])).values().filter(|r| !r.is_empty()).count();
    assert_eq!(kept, 2, "strictly newer than the cut: 03-03 13:00 and 03-31");
}

fn mv(dir: &Path, args: &[&str]) -> assert_cmd::assert::Assert {
    common::mvault(dir).args(args).assert()
}

#[test]
fn forget_keeps_aliased_and_metric_versions_and_logs_what_it_removes() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    common::cli_init(dir);
    let m = common::corpus().join("safetensors/silero_vad_16k.safetensors");
    for _ in 0..5 {
        mv(dir, &["put", m.to_str().unwrap(), "--name", "vad", "-q"]).success();
    }
    mv(dir, &["alias", "vad@1", "prod"]).success();
    mv(dir, &["metric", "vad@2", "acc=0.95"]).success();
    mv(dir, &["metric", "vad@3", "acc=0.5"]).success();
    let dry = mv(dir, &["--json", "forget", "--keep-last", "1", "--keep-metric", "acc>=0.9", "--dry-run"]).success();
    let j: serde_json::Value = serde_json::from_slice(&dry.get_output().stdout).unwrap();
    let decided: BTreeMap<u64, (bool, Vec<String>)> = j[0]["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let reasons = d["reasons"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect();
            (d["version"].as_u64().unwrap(), (d["keep"].as_bool().unwrap(), reasons))
        })
        .collect();
    assert_eq!(decided[&5], (true, vec!["last".to_string()]));
    assert_eq!(decided[&2], (true, vec!["metric acc>=0.9".to_string()]));
    assert_eq!(decided[&1], (true, vec!["alias prod".to_string()]));
    assert_eq!(decided[&3], (false, Vec::new()));
    assert_eq!((j[0]["dry_run"].as_bool(), j[0]["remove"].clone()), (Some(true), serde_json::json!([4, 3])));
    // A rule naming a metric or tag no version has would keep nothing: refused, nothing removed.
    for (rule, needle) in [
        (["--keep-metric", "acc_typo>=0.9"], "no version has the metric 'acc_typo'"),
        (["--keep-tag", "stage=prod"], "no version has the tag 'stage'"),
    ] {
        let out = mv(dir, &["forget", "--keep-last", "1", rule[0], rule[1]]).failure().code(7).get_output().clone();
        assert!(String::from_utf8_lossy(&out.stderr).contains(needle), "{rule:?}");
    }
    assert_eq!(decided[&4], (false, Vec::new()));
    // The dry run removed nothing.
    let ls = mv(dir, &["--json", "ls"]).success();
    let l: serde_json::Value = serde_json::from_slice(&ls.get_output().stdout).unwrap();
    assert_eq!(l["models"][0]["versions"].as_array().unwrap().len(), 5);
    let out = mv(dir, &["forget", "--keep-last", "1", "--keep-metric", "acc>=0.9"]).success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(text.contains("vad: keep 3, removed 2"), "{text}");
    let ls = mv(dir, &["--json", "ls"]).success();
    let l: serde_json::Value = serde_json::from_slice(&ls.get_output().stdout).unwrap();
    let left: Vec<u64> =
        l["models"][0]["versions"].as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect();
    assert_eq!(left, [1, 2, 5]);
    let log = mv(dir, &["--json", "log"]).success();
    let entries: serde_json::Value = serde_json::from_slice(&log.get_output().stdout).unwrap();
    let last = entries.as_array().unwrap().last().unwrap();
    assert_eq!((last["op"].as_str(), last["versions"].clone()), (Some("forget"), serde_json::json!([4, 3])));
    mv(dir, &["verify"]).success();
}

#[test]
fn bad_policies_are_clear_errors_and_change_nothing() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    common::cli_init(dir);
    for (args, needle) in [
        (&["forget"][..], "no keep rule given"),
        (&["forget", "--keep-within", "3w"], "keep-within '3w' is not a duration"),
        (&["forget", "--keep-metric", "acc"], "keep-metric 'acc' has no comparison"),
        (&["forget", "--keep-tag", "env"], "--keep-tag 'env' is not KEY=VALUE"),
        (&["forget", "nosuch", "--keep-last", "1"], "nosuch"),
        (&["forget", "--keep-last", "0"], "no keep rule given (every --keep-* count is 0"),
    ] {
        let out = mv(dir, args).failure().get_output().clone();
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(matches!(out.status.code(), Some(7) | Some(5)), "{args:?}: {:?}", out.status);
    }
}
