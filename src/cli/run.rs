//! Dispatch: one function per command, each a thin call into the library.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use modelvault::names::escape;
use modelvault::{
    Argon2Params, CreateOptions, Error, GetOptions, OpenOptions, Progress, PutOptions, Result, Unlocked, Vault,
    VersionRef, parse_spec,
};
use serde_json::json;

use super::args::{Cli, Command, Global, PutArgs};
use super::{output, passphrase};

/// A progress bar on stderr when it is a terminal; silent otherwise.
/// Progress: a bar on stderr when it is a terminal; with `--json` and no terminal, one JSON
/// object per line on stderr (at most one a second, plus the start and the end of each phase);
/// otherwise silent.
struct Bar {
    bar: Option<ProgressBar>,
    lines: Option<std::sync::Mutex<JsonLines>>,
}

struct JsonLines {
    phase: String,
    total: u64,
    done: u64,
    last: std::time::Instant,
}

impl JsonLines {
    fn emit(&self, event: &str) {
        eprintln!(
            "{}",
            json!({"event": event, "phase": self.phase, "bytes_done": self.done, "bytes_total": self.total})
        );
    }
}

impl Bar {
    fn new(g: &Global) -> Bar {
        let tty = std::io::stderr().is_terminal();
        let bar = (!g.quiet && !g.json && tty).then(ProgressBar::hidden);
        let lines = (!g.quiet && g.json && !tty).then(|| {
            std::sync::Mutex::new(JsonLines {
                phase: String::new(),
                total: 0,
                done: 0,
                last: std::time::Instant::now(),
            })
        });
        Bar { bar, lines }
    }
}

impl Progress for Bar {
    fn warn(&self, message: &str) {
        eprintln!("warning: {message}");
    }
    fn begin(&self, label: &str, total: u64) {
        if let Some(b) = &self.bar {
            b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            b.reset();
            b.set_length(total);
            b.set_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            b.set_message(label.to_string());
        }
        if let Some(l) = &self.lines {
            let mut l = l.lock().expect("progress lock");
            *l = JsonLines { phase: label.to_string(), total, done: 0, last: std::time::Instant::now() };
            l.emit("begin");
        }
    }
    fn advance(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
        if let Some(l) = &self.lines {
            let mut l = l.lock().expect("progress lock");
            l.done += n;
            if l.last.elapsed() >= std::time::Duration::from_secs(1) {
                l.last = std::time::Instant::now();
                l.emit("progress");
            }
        }
    }
    fn end(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        if let Some(l) = &self.lines {
            l.lock().expect("progress lock").emit("end");
        }
    }
}

pub(super) fn vault_path(g: &Global) -> Result<PathBuf> {
    g.vault.clone().ok_or_else(|| Error::InvalidInput("no vault given: pass --vault PATH or set MVAULT_VAULT".into()))
}

pub(super) fn open_opts(g: &Global) -> Result<OpenOptions> {
    let wait = match g.wait {
        None => None,
        Some(s) if (0.0..=86_400.0).contains(&s) => Some(Duration::from_secs_f64(s)),
        Some(s) => {
            return Err(Error::InvalidInput(format!("--wait {s}: give a number of seconds from 0 to 86400")));
        }
    };
    Ok(OpenOptions { wait, ..Default::default() })
}

/// Unlocks for a command that writes: an interrupted master-key rotation is finished first.
pub(super) fn unlock_write(g: &Global, progress: &dyn Progress) -> Result<Vault<Unlocked>> {
    let mut v = unlock(g)?;
    if v.rotation_pending() {
        eprintln!("mvault: finishing an interrupted master-key rotation first");
        v.resume_rotation(progress)?;
    }
    if v.erasure_pending()? {
        eprintln!("mvault: finishing an interrupted erasure first");
        v.resume_erasure()?;
    }
    Ok(v)
}

pub(super) fn unlock(g: &Global) -> Result<Vault<Unlocked>> {
    let path = vault_path(g)?;
    let locked = Vault::open(&path, &open_opts(g)?)?;
    let pass = passphrase::obtain(g, &format!("Passphrase for {}: ", path.display()), false)?;
    match &g.slot {
        Some(s) => locked.unlock_slot(s, &pass),
        None => locked.unlock(&pass),
    }
}

fn split_kv<'a>(s: &'a str, what: &str) -> Result<(&'a str, &'a str)> {
    s.split_once('=').ok_or_else(|| Error::InvalidInput(format!("{what} '{}' is not KEY=VALUE", escape(s))))
}

fn parse_metric(s: &str) -> Result<(String, f64)> {
    let (k, v) = split_kv(s, "metric")?;
    let n: f64 =
        v.trim().parse().map_err(|_| Error::InvalidInput(format!("metric '{k}': '{}' is not a number", escape(v))))?;
    Ok((k.to_string(), n))
}

fn put_options(a: &PutArgs) -> Result<PutOptions> {
    let mut tags = BTreeMap::new();
    for t in &a.tags {
        let (k, v) = split_kv(t, "tag")?;
        tags.insert(k.to_string(), v.to_string());
    }
    let mut metrics = BTreeMap::new();
    for m in &a.metrics {
        let (k, v) = parse_metric(m)?;
        metrics.insert(k, v);
    }
    Ok(PutOptions {
        aliases: a.aliases.clone(),
        tags,
        metrics,
        description: a.description.clone(),
        allow_unsafe_pickle: a.allow_unsafe_pickle,
        allow_globals: a.allow.clone(),
    })
}

/// Requires an explicit version in `spec` (NAME@N or NAME@ALIAS).
fn versioned(spec: &str) -> Result<(String, VersionRef)> {
    let (name, r) = parse_spec(spec)?;
    if r == VersionRef::Latest {
        return Err(Error::InvalidInput(format!("'{}' needs a version: write NAME@VERSION", escape(spec))));
    }
    Ok((name, r))
}

/// Runs one command; returns the process exit code for outcomes that are not errors but still
/// fail (verify found damage, ls skipped damaged records).
pub fn run(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    let bar = Bar::new(g);
    match &cli.command {
        Command::Init(a) => {
            let path = vault_path(g)?;
            if path.exists() {
                return Err(Error::VaultExists(path));
            }
            let memory_kib = match a.argon2_memory_kib {
                Some(k) => k,
                None => a
                    .argon2_memory_mib
                    .checked_mul(1024)
                    .ok_or_else(|| Error::InvalidInput("--argon2-memory-mib is too large".into()))?,
            };
            let argon2 = Argon2Params { memory_kib, time_cost: a.argon2_time, lanes: a.argon2_lanes };
            argon2.check()?;
            let pass =
                passphrase::obtain(g, &format!("New passphrase for {}: ", path.display()), !passphrase::has_source(g))?;
            let v = Vault::create(&path, &pass, &CreateOptions { argon2, slot_name: a.slot_name.clone() })?;
            let id = modelvault::manifest::hex(&v.vault_id());
            let signer = modelvault::manifest::hex(&v.signer_public_key());
            if g.json {
                output::json(
                    &json!({"vault": path, "vault_id": id, "signer": signer, "slot": a.slot_name, "argon2": argon2}),
                );
            } else {
                println!("created vault {} (id {id})", path.display());
                println!(
                    "key slot '{}': Argon2id m={} KiB t={} p={}",
                    a.slot_name, argon2.memory_kib, argon2.time_cost, argon2.lanes
                );
                println!("signer: ed25519:{signer}");
            }
        }
        Command::Put(a) => {
            let opts = put_options(a)?;
            let mut v = unlock_write(g, &bar)?;
            let r = v.put(&a.src, &a.name, &opts, &bar)?;
            if g.json {
                output::json(&r);
            } else {
                println!("{}@{}", r.name, r.version);
                eprintln!(
                    "stored {} file(s), {}; {} new chunk(s) ({}), {} already stored",
                    r.files,
                    output::size(r.bytes),
                    r.new_chunks,
                    output::size(r.new_bytes),
                    r.reused_chunks
                );
            }
        }
        Command::Ls { name, where_expr, max_seconds, max_memory_mib } => {
            let v = unlock(g)?;
            let l = match where_expr {
                None => v.list(name.as_deref())?,
                Some(expr) => {
                    let limits = modelvault::QueryLimits { max_seconds: *max_seconds, max_memory_mib: *max_memory_mib };
                    let w = v.list_where_limited(name.as_deref(), expr, limits)?;
                    for k in &w.unknown_keys {
                        eprintln!("mvault: note: no version has {} (it reads as NULL)", escape(k));
                    }
                    w.listing
                }
            };
            if g.json {
                output::json(&l)
            } else {
                output::listing(&l)
            }
            for p in &l.problems {
                eprintln!("mvault: damaged: {p}");
            }
            if !l.problems.is_empty() {
                return Ok(6);
            }
        }
        Command::Query { sql, csv, max_seconds, max_memory_mib } => {
            if *csv && g.json {
                return Err(Error::InvalidInput("--csv and --json cannot be used together: pick one".into()));
            }
            let v = unlock(g)?;
            let r = v.query_limited(
                sql,
                modelvault::QueryLimits { max_seconds: *max_seconds, max_memory_mib: *max_memory_mib },
            )?;
            if g.json {
                output::json(&r)
            } else if *csv {
                output::csv(&r)
            } else {
                output::query_table(&r)
            }
            if damaged(&r.problems) {
                return Ok(6);
            }
        }
        Command::Stats => {
            let v = unlock(g)?;
            let st = v.stats()?;
            if g.json {
                output::json(&st)
            } else {
                output::stats(&st)
            }
            if damaged(&st.problems) {
                return Ok(6);
            }
        }
        Command::Similar { spec, limit } => {
            let (name, r) = parse_spec(spec)?;
            let v = unlock(g)?;
            let mut sim = v.similar(&name, &r)?;
            if *limit > 0 {
                sim.versions.truncate(*limit);
                sim.models.truncate(*limit);
            }
            if g.json { output::json(&sim) } else { output::similar(&sim) }
        }
        Command::Families { min_shared } => {
            let v = unlock(g)?;
            let f = v.families(*min_shared)?;
            if g.json {
                output::json(&f)
            } else {
                output::families(&f)
            }
            if damaged(&f.problems) {
                return Ok(6);
            }
        }
        Command::Show { spec } => {
            let (name, r) = parse_spec(spec)?;
            let v = unlock(g)?;
            let info = v.show(&name, &r)?;
            if g.json { output::json(&info) } else { output::version(&info) }
        }
        Command::Get { spec, output: dest, force, tensor, file, require_signer } => {
            let (name, r) = parse_spec(spec)?;
            let v = unlock(g)?;
            super::signals::remove_temp_files_on_signals()?;
            // Pin the version first, so the check and the read are of the same version.
            let r = match require_signer {
                Some(signer) => modelvault::VersionRef::Number(v.require_signer(&name, &r, signer)?),
                None => r,
            };
            if !tensor.is_empty() {
                let opts = modelvault::TensorGetOptions { force: *force, file: file.clone() };
                if dest.as_os_str() == "-" {
                    // The file goes to standard output; the report to standard error.
                    refuse_vault_stdout(&v)?;
                    let stdout = std::io::stdout();
                    let rep = v.get_tensors_to(&name, &r, tensor, &mut stdout.lock(), &opts, &bar)?;
                    if g.json {
                        eprintln!("{}", serde_json::to_string_pretty(&rep).expect("report serialises"));
                    } else {
                        output::tensor_get(&rep);
                    }
                    return Ok(0);
                }
                let rep = v.get_tensors(&name, &r, tensor, dest, &opts, &bar)?;
                if g.json {
                    output::json(&rep);
                } else {
                    output::tensor_get(&rep);
                }
                return Ok(0);
            }
            let rep = v.get(&name, &r, dest, &GetOptions { force: *force }, &bar)?;
            if g.json {
                output::json(&rep);
            } else {
                for f in &rep.files {
                    println!("{}", f.display());
                }
                eprintln!(
                    "wrote {}@{}: {} file(s), {} (SHA-256 and signature verified)",
                    rep.name,
                    rep.version,
                    rep.files.len(),
                    output::size(rep.bytes)
                );
            }
        }
        Command::Inspect { spec } => {
            let (name, r) = parse_spec(spec)?;
            let v = unlock(g)?;
            let ins = v.inspect(&name, &r)?;
            if g.json { output::json(&ins) } else { output::inspection(&ins) }
        }
        Command::Diff { a, b } => {
            let (an, ar) = parse_spec(a)?;
            let (bn, br) = parse_spec(b)?;
            let v = unlock(g)?;
            let d = v.diff(&an, &ar, &bn, &br)?;
            if g.json { output::json(&d) } else { output::diff(&d) }
        }
        Command::Cat { spec, file } => {
            let (name, r) = parse_spec(spec)?;
            let v = unlock(g)?;
            refuse_vault_stdout(&v)?;
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            v.cat(&name, &r, file.as_deref(), &mut lock, &modelvault::NoProgress)?;
        }
        Command::Alias { spec, alias, remove } => {
            if *remove {
                let (name, _) = parse_spec(spec)?;
                let v = unlock_write(g, &bar)?;
                v.remove_alias(&name, alias)?;
                print_done(
                    g,
                    json!({"name": name, "alias": alias, "removed": true}),
                    &format!("removed alias {alias} of {name}"),
                );
            } else {
                let (name, r) = versioned(spec)?;
                let v = unlock_write(g, &bar)?;
                let n = v.set_alias(&name, &r, alias)?;
                print_done(
                    g,
                    json!({"name": name, "version": n, "alias": alias}),
                    &format!("{name}@{alias} -> {name}@{n}"),
                );
            }
        }
        Command::Tag { spec, tags } => {
            let (name, r) = versioned(spec)?;
            let pairs: Vec<(String, String)> = tags
                .iter()
                .map(|t| split_kv(t, "tag").map(|(k, v)| (k.to_string(), v.to_string())))
                .collect::<Result<_>>()?;
            let v = unlock_write(g, &bar)?;
            let n = v.set_tags(&name, &r, &pairs)?;
            let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
            let set: serde_json::Map<String, serde_json::Value> =
                pairs.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            print_done(
                g,
                json!({"name": name, "version": n, "tag": set}),
                &format!("{name}@{n}: tag {} set", keys.join(", ")),
            );
        }
        Command::Untag { spec, keys } => {
            let (name, r) = versioned(spec)?;
            let v = unlock_write(g, &bar)?;
            let n = v.remove_tags(&name, &r, keys)?;
            let mut j = json!({"name": name, "version": n, "removed_tags": keys});
            if let [one] = keys.as_slice() {
                j["removed_tag"] = json!(one);
            }
            print_done(g, j, &format!("{name}@{n}: tag {} removed", keys.join(", ")));
        }
        Command::Metric { spec, metrics } => {
            let (name, r) = versioned(spec)?;
            let pairs: Vec<(String, f64)> = metrics.iter().map(|m| parse_metric(m)).collect::<Result<_>>()?;
            let v = unlock_write(g, &bar)?;
            let n = v.set_metrics(&name, &r, &pairs)?;
            let set: serde_json::Map<String, serde_json::Value> =
                pairs.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            let text: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            print_done(
                g,
                json!({"name": name, "version": n, "metric": set}),
                &format!("{name}@{n}: metric {}", text.join(", ")),
            );
        }
        Command::Describe { spec, text } => {
            let (name, r) = parse_spec(spec)?;
            let has_version = spec.contains('@');
            let v = unlock_write(g, &bar)?;
            v.describe(&name, has_version.then_some(&r), text)?;
            print_done(g, json!({"name": name, "described": spec}), &format!("{spec}: description set"));
        }
        Command::Rm { resume: true, .. } => {
            let mut v = unlock(g)?;
            match v.resume_erasure()? {
                Some(rep) => {
                    let vs: Vec<String> = rep.versions.iter().map(|n| n.to_string()).collect();
                    print_done(
                        g,
                        serde_json::to_value(&rep).expect("report serialises"),
                        &format!(
                            "finished erasing {}@{}: {} chunk(s) deleted, vault file rewritten ({} -> {})",
                            escape(&rep.name),
                            vs.join(","),
                            rep.chunks_removed,
                            output::size(rep.file_bytes_before),
                            output::size(rep.file_bytes_after)
                        ),
                    );
                }
                None => print_done(g, json!({"resumed": false}), "no erasure was unfinished: nothing to do"),
            }
        }
        Command::Rm { spec, yes, erase, .. } => {
            let spec = spec.as_deref().ok_or_else(|| Error::InvalidInput("rm: give NAME or NAME@REF".into()))?;
            let (name, r) = parse_spec(spec)?;
            if *erase {
                if !spec.contains('@') && !*yes {
                    confirm(&format!("Erase every version of '{name}'?"))?;
                }
                let mut v = unlock_write(g, &bar)?;
                let r = if spec.contains('@') { confirm_aliases(&v, &name, &r, *yes)?.0 } else { r };
                let rep = v.erase(&name, spec.contains('@').then_some(&r))?;
                let vs: Vec<String> = rep.versions.iter().map(|n| n.to_string()).collect();
                print_done(
                    g,
                    serde_json::to_value(&rep).expect("report serialises"),
                    &format!(
                        "erased {name}@{}: {} chunk(s) deleted, vault file rewritten ({} -> {})",
                        vs.join(","),
                        rep.chunks_removed,
                        output::size(rep.file_bytes_before),
                        output::size(rep.file_bytes_after)
                    ),
                );
                return Ok(0);
            }
            if spec.contains('@') {
                let v = unlock_write(g, &bar)?;
                let (r, aliases) = confirm_aliases(&v, &name, &r, *yes)?;
                let n = v.remove_version(&name, &r)?;
                let also = if aliases.is_empty() {
                    String::new()
                } else {
                    format!(" and its alias(es) {}", aliases.join(", "))
                };
                print_done(
                    g,
                    json!({"name": name, "removed_version": n, "removed_aliases": aliases}),
                    &format!("removed {name}@{n}{also} (run `mvault gc` to reclaim its chunks)"),
                );
            } else {
                if !*yes {
                    confirm(&format!("Remove every version of '{name}'?"))?;
                }
                let v = unlock_write(g, &bar)?;
                let n = v.remove_model(&name)?;
                print_done(
                    g,
                    json!({"name": name, "removed_versions": n}),
                    &format!("removed {name}: {n} version(s) (run `mvault gc` to reclaim its chunks)"),
                );
            }
        }
        Command::Gc => {
            let mut v = unlock_write(g, &bar)?;
            let rep = v.gc()?;
            if g.json {
                output::json(&rep);
            } else {
                println!(
                    "removed {} chunk(s), {}; kept {}; file {} -> {}",
                    rep.chunks_removed,
                    output::size(rep.bytes_removed),
                    rep.chunks_kept,
                    output::size(rep.file_bytes_before),
                    output::size(rep.file_bytes_after)
                );
            }
            for m in &rep.missing {
                eprintln!("mvault: damaged: {m}");
            }
            if !rep.missing.is_empty() {
                return Ok(6);
            }
        }
        Command::Verify { spec, read_data } => {
            let v = unlock(g)?;
            let only = spec.as_deref().map(|s| verify_target(&v, s)).transpose()?;
            let rep = v.verify_only(*read_data, only.as_ref().map(|(n, ver)| (n.as_str(), *ver)), &bar)?;
            if let Some((n, ver)) = &only {
                if rep.models == 0 {
                    return Err(Error::ModelNotFound(escape(n)));
                }
                if let Some(ver) = ver
                    && rep.versions == 0
                    && rep.problems.is_empty()
                {
                    return Err(Error::VersionNotFound { name: escape(n), reference: ver.to_string() });
                }
            }
            if g.json {
                output::json(&rep);
            } else {
                for p in &rep.problems {
                    println!("DAMAGED {}", p.detail);
                }
                println!(
                    "{}: {} model(s), {} version(s), {} chunk reference(s){}{}",
                    if rep.ok() { "ok" } else { "FAILED" },
                    rep.models,
                    rep.versions,
                    rep.chunks,
                    if *read_data {
                        format!(", {} decrypted and hashed", output::size(rep.bytes_read))
                    } else {
                        String::new()
                    },
                    match spec {
                        Some(s) => format!(" (only {})", escape(s)),
                        None => String::new(),
                    }
                );
            }
            if !rep.ok() {
                return Ok(6);
            }
        }
        Command::Signer { command } => return super::keys::signer(g, command),
        Command::Key { command } => return super::keys::key(g, command, &bar),
        Command::Trust { command } => return super::keys::trust(g, command),
        Command::Allow { command } => return super::keys::allow(g, command),
        Command::Scan { paths, allow } => {
            let opts = modelvault::formats::pickle::ScanOptions { extra_allowed: allow.clone(), ..Default::default() };
            let mut results = Vec::new();
            // One row per file (or per path that could not be read), with the lines under it.
            let mut rows: Vec<(Vec<String>, Vec<String>)> = Vec::new();
            let (mut files, mut bad, mut errors, mut code) = (0u64, 0u64, 0u64, 0);
            for path in paths {
                let sources = match modelvault::ops::put::collect_sources(path) {
                    Ok(s) => s,
                    Err(e) => {
                        errors += 1;
                        code = code.max(e.exit_code());
                        rows.push((
                            vec!["ERROR".into(), "-".into(), escape(&path.display().to_string())],
                            vec![format!("    {e}")],
                        ));
                        results.push(
                            json!({"path": path, "verdict": "error", "error": e.to_string(), "code": e.exit_code()}),
                        );
                        continue;
                    }
                };
                for s in &sources {
                    files += 1;
                    let r = match modelvault::formats::scan_file(&s.disk, &opts) {
                        Ok(r) => r,
                        Err(e) => {
                            let e = Error::Io { context: format!("scanning {}", s.disk.display()), source: e };
                            errors += 1;
                            code = code.max(e.exit_code());
                            rows.push((
                                vec!["ERROR".into(), "-".into(), escape(&s.disk.display().to_string())],
                                vec![format!("    {e}")],
                            ));
                            results.push(json!({"path": s.disk, "verdict": "error", "error": e.to_string(), "code": e.exit_code()}));
                            continue;
                        }
                    };
                    let rec = r.report.as_ref().map(|rep| modelvault::ops::put::scan_record(rep, false));
                    let verdict = match (&r.error, &rec) {
                        (Some(_), _) => "invalid".to_string(),
                        (None, Some(rec)) => rec.verdict.clone(),
                        (None, None) => "no-pickle".to_string(),
                    };
                    if verdict != "clean" && verdict != "no-pickle" {
                        bad += 1;
                        code = code.max(8);
                    }
                    let mut under: Vec<String> = r.error.iter().map(|e| format!("    {e}")).collect();
                    under.extend(rec.iter().flat_map(|r| &r.findings).map(|f| format!("    {f}")));
                    rows.push((
                        vec![verdict.to_uppercase(), r.format.clone(), escape(&s.disk.display().to_string())],
                        under,
                    ));
                    results.push(json!({"path": s.disk, "format": r.format, "verdict": verdict, "error": r.error, "findings": rec.map(|r| r.findings).unwrap_or_default()}));
                }
            }
            if g.json {
                output::json(&results);
            } else {
                let cells: Vec<Vec<String>> = rows.iter().map(|(c, _)| c.clone()).collect();
                let lines = output::table(&[], &[output::Align::Left; 3], &cells);
                for (line, (_, under)) in lines.iter().zip(&rows) {
                    println!("{line}");
                    for u in under {
                        println!("{u}");
                    }
                }
                let errs = if errors > 0 { format!(", {errors} could not be read") } else { String::new() };
                println!("{files} file(s) scanned in {} path(s), {bad} refused{errs}", paths.len());
            }
            if code != 0 {
                return Ok(code);
            }
        }
        Command::Info => {
            let path = vault_path(g)?;
            let v = Vault::open(&path, &open_opts(g)?)?;
            let slots = v.slot_names()?;
            let id = modelvault::manifest::hex(&v.vault_id());
            if g.json {
                output::json(&json!({"vault": path, "vault_id": id, "created": v.created(), "key_slots": slots}));
            } else {
                println!("vault:     {}", path.display());
                println!("id:        {id}");
                println!("created:   {}", output::time(v.created()));
                println!("key slots: {}", slots.join(", "));
            }
        }
    }
    Ok(0)
}

/// Refuses to write to standard output when it is the vault's own file (`>> vault`).
fn refuse_vault_stdout(v: &Vault<Unlocked>) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        let fd = std::io::stdout().as_fd().try_clone_to_owned();
        if let Ok(meta) = fd.map(std::fs::File::from).and_then(|f| f.metadata()) {
            v.refuse_vault_output(&meta, "standard output")?;
        }
    }
    #[cfg(not(unix))]
    let _ = v;
    Ok(())
}

/// Reports records that could not be read on stderr; true if there were any.
fn damaged(problems: &[String]) -> bool {
    for p in problems {
        eprintln!("mvault: damaged: {p}");
    }
    !problems.is_empty()
}

pub(super) fn print_done(g: &Global, j: serde_json::Value, text: &str) {
    if g.json { output::json(&j) } else { println!("{text}") }
}

/// What `verify SPEC` checks: the model name, and the version number (`None`: every version).
/// An alias is resolved through the model record, so a version whose manifest is damaged can
/// still be named by its alias.
///
/// Errors: [`Error::ModelNotFound`]; [`Error::VersionNotFound`] for an unknown alias.
fn verify_target(v: &Vault<Unlocked>, spec: &str) -> Result<(String, Option<u64>)> {
    let (name, r) = parse_spec(spec)?;
    let version = match &r {
        VersionRef::Latest => None,
        VersionRef::Number(n) => Some(*n),
        VersionRef::Alias(a) => {
            let listing = v.list(Some(&name))?;
            let to = listing.models.iter().find(|m| m.name == name).and_then(|m| m.aliases.get(a)).copied();
            Some(to.ok_or_else(|| Error::VersionNotFound { name: escape(&name), reference: escape(a) })?)
        }
    };
    Ok((name, version))
}

/// Before removing the version `r` of `name`: finds the aliases that point at it and, if there
/// are any and `yes` is false, asks (or, without a terminal, refuses with an error naming them).
/// Returns the version pinned by number, so the version asked about is the one removed, and the
/// aliases. A model record that cannot be read gives no aliases; the removal then reports it.
///
/// Errors: [`Error::ModelNotFound`]; [`Error::InvalidInput`] when not confirmed.
fn confirm_aliases(v: &Vault<Unlocked>, name: &str, r: &VersionRef, yes: bool) -> Result<(VersionRef, Vec<String>)> {
    let listing = v.list(Some(name))?;
    let Some(model) = listing.models.iter().find(|m| m.name == name) else {
        return Ok((r.clone(), Vec::new()));
    };
    let n = match r {
        VersionRef::Number(n) => Some(*n),
        VersionRef::Alias(a) => model.aliases.get(a).copied(),
        VersionRef::Latest => model.versions.iter().map(|x| x.version).max(),
    };
    let Some(n) = n else { return Ok((r.clone(), Vec::new())) };
    let aliases: Vec<String> = model.aliases.iter().filter(|(_, to)| **to == n).map(|(a, _)| escape(a)).collect();
    if !aliases.is_empty() && !yes {
        confirm(&format!(
            "Removing {}@{n} also removes the alias(es) pointing to it: {}. Remove it?",
            escape(name),
            aliases.join(", ")
        ))?;
    }
    Ok((VersionRef::Number(n), aliases))
}

fn confirm(question: &str) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::InvalidInput(format!("{question} Refusing without --yes: there is no terminal to ask on")));
    }
    eprint!("{question} [y/N] ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| Error::Io { context: "reading the answer".into(), source: e })?;
    if matches!(line.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Error::InvalidInput("not confirmed: nothing removed".into()))
    }
}
