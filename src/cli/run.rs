//! Dispatch: one function per command, each a thin call into the library.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use modelvault::names::escape;
use modelvault::{
    Argon2Params, CreateOptions, Error, GetOptions, OpenOptions, Progress, PutOptions, Result,
    Unlocked, Vault, VersionRef, parse_spec,
};
use serde_json::json;

use super::args::{Cli, Command, Global, PutArgs, SignerCommand};
use super::{output, passphrase};

/// A progress bar on stderr when it is a terminal; silent otherwise.
struct Bar(Option<ProgressBar>);

impl Bar {
    fn new(g: &Global) -> Bar {
        let show = !g.quiet && !g.json && std::io::stderr().is_terminal();
        Bar(show.then(ProgressBar::hidden))
    }
}

impl Progress for Bar {
    fn begin(&self, label: &str, total: u64) {
        if let Some(b) = &self.0 {
            b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            b.reset();
            b.set_length(total);
            b.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b.set_message(label.to_string());
        }
    }
    fn advance(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc(n);
        }
    }
    fn end(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

fn vault_path(g: &Global) -> Result<PathBuf> {
    g.vault.clone().ok_or_else(|| {
        Error::InvalidInput("no vault given: pass --vault PATH or set MVAULT_VAULT".into())
    })
}

fn open_opts(g: &Global) -> Result<OpenOptions> {
    let wait = match g.wait {
        None => None,
        Some(s) if s.is_finite() && s >= 0.0 && s <= 86_400.0 => Some(Duration::from_secs_f64(s)),
        Some(s) => {
            return Err(Error::InvalidInput(format!(
                "--wait {s}: give a number of seconds from 0 to 86400"
            )));
        }
    };
    Ok(OpenOptions { wait })
}

fn unlock(g: &Global) -> Result<Vault<Unlocked>> {
    let path = vault_path(g)?;
    let locked = Vault::open(&path, &open_opts(g)?)?;
    let pass = passphrase::obtain(g, &format!("Passphrase for {}: ", path.display()), false)?;
    match &g.slot {
        Some(s) => locked.unlock_slot(s, &pass),
        None => locked.unlock(&pass),
    }
}

fn split_kv<'a>(s: &'a str, what: &str) -> Result<(&'a str, &'a str)> {
    s.split_once('=')
        .ok_or_else(|| Error::InvalidInput(format!("{what} '{}' is not KEY=VALUE", escape(s))))
}

fn parse_metric(s: &str) -> Result<(String, f64)> {
    let (k, v) = split_kv(s, "metric")?;
    let n: f64 = v.trim().parse().map_err(|_| {
        Error::InvalidInput(format!("metric '{k}': '{}' is not a number", escape(v)))
    })?;
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
        return Err(Error::InvalidInput(format!(
            "'{}' needs a version: write NAME@VERSION",
            escape(spec)
        )));
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
                None => a.argon2_memory_mib.checked_mul(1024).ok_or_else(|| {
                    Error::InvalidInput("--argon2-memory-mib is too large".into())
                })?,
            };
            let argon2 = Argon2Params {
                memory_kib,
                time_cost: a.argon2_time,
                lanes: a.argon2_lanes,
            };
            argon2.check()?;
            let pass = passphrase::obtain(
                g,
                &format!("New passphrase for {}: ", path.display()),
                !passphrase::has_source(g),
            )?;
            let v = Vault::create(
                &path,
                &pass,
                &CreateOptions {
                    argon2,
                    slot_name: a.slot_name.clone(),
                },
            )?;
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
            let mut v = unlock(g)?;
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
        Command::Ls { name } => {
            let v = unlock(g)?;
            let l = v.list(name.as_deref())?;
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
        Command::Show { spec } => {
            let (name, r) = parse_spec(spec)?;
            let v = unlock(g)?;
            let info = v.show(&name, &r)?;
            if g.json {
                output::json(&info)
            } else {
                output::version(&info)
            }
        }
        Command::Get {
            spec,
            output: dest,
            force,
        } => {
            let (name, r) = parse_spec(spec)?;
            let v = unlock(g)?;
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
        Command::Cat { spec, file } => {
            let (name, r) = parse_spec(spec)?;
            let v = unlock(g)?;
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            v.cat(
                &name,
                &r,
                file.as_deref(),
                &mut lock,
                &modelvault::NoProgress,
            )?;
        }
        Command::Alias {
            spec,
            alias,
            remove,
        } => {
            if *remove {
                let (name, _) = parse_spec(spec)?;
                let v = unlock(g)?;
                v.remove_alias(&name, alias)?;
                print_done(
                    g,
                    json!({"name": name, "alias": alias, "removed": true}),
                    &format!("removed alias {alias} of {name}"),
                );
            } else {
                let (name, r) = versioned(spec)?;
                let v = unlock(g)?;
                let n = v.set_alias(&name, &r, alias)?;
                print_done(
                    g,
                    json!({"name": name, "version": n, "alias": alias}),
                    &format!("{name}@{alias} -> {name}@{n}"),
                );
            }
        }
        Command::Tag { spec, tag } => {
            let (name, r) = versioned(spec)?;
            let (k, val) = split_kv(tag, "tag")?;
            let v = unlock(g)?;
            let n = v.set_tag(&name, &r, k, val)?;
            print_done(
                g,
                json!({"name": name, "version": n, "tag": {k: val}}),
                &format!("{name}@{n}: tag {k} set"),
            );
        }
        Command::Untag { spec, key } => {
            let (name, r) = versioned(spec)?;
            let v = unlock(g)?;
            let n = v.remove_tag(&name, &r, key)?;
            print_done(
                g,
                json!({"name": name, "version": n, "removed_tag": key}),
                &format!("{name}@{n}: tag {key} removed"),
            );
        }
        Command::Metric { spec, metric } => {
            let (name, r) = versioned(spec)?;
            let (k, val) = parse_metric(metric)?;
            let v = unlock(g)?;
            let n = v.set_metric(&name, &r, &k, val)?;
            print_done(
                g,
                json!({"name": name, "version": n, "metric": {k.clone(): val}}),
                &format!("{name}@{n}: metric {k}={val}"),
            );
        }
        Command::Describe { spec, text } => {
            let (name, r) = parse_spec(spec)?;
            let has_version = spec.contains('@');
            let v = unlock(g)?;
            v.describe(&name, has_version.then_some(&r), text)?;
            print_done(
                g,
                json!({"name": name, "described": spec}),
                &format!("{spec}: description set"),
            );
        }
        Command::Rm { spec, yes } => {
            let (name, r) = parse_spec(spec)?;
            if spec.contains('@') {
                let v = unlock(g)?;
                let n = v.remove_version(&name, &r)?;
                print_done(
                    g,
                    json!({"name": name, "removed_version": n}),
                    &format!("removed {name}@{n} (run `mvault gc` to reclaim its chunks)"),
                );
            } else {
                if !*yes {
                    confirm(&format!("Remove every version of '{name}'?"))?;
                }
                let v = unlock(g)?;
                let n = v.remove_model(&name)?;
                print_done(
                    g,
                    json!({"name": name, "removed_versions": n}),
                    &format!(
                        "removed {name}: {n} version(s) (run `mvault gc` to reclaim its chunks)"
                    ),
                );
            }
        }
        Command::Gc => {
            let mut v = unlock(g)?;
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
        Command::Verify { read_data } => {
            let v = unlock(g)?;
            let rep = v.verify(*read_data, &bar)?;
            if g.json {
                output::json(&rep);
            } else {
                for p in &rep.problems {
                    println!("DAMAGED {}", p.detail);
                }
                println!(
                    "{}: {} model(s), {} version(s), {} chunk reference(s){}",
                    if rep.ok() { "ok" } else { "FAILED" },
                    rep.models,
                    rep.versions,
                    rep.chunks,
                    if *read_data {
                        format!(", {} decrypted and hashed", output::size(rep.bytes_read))
                    } else {
                        String::new()
                    }
                );
            }
            if !rep.ok() {
                return Ok(6);
            }
        }
        Command::Signer {
            command: SignerCommand::Show,
        } => {
            let v = unlock(g)?;
            let k = modelvault::manifest::hex(&v.signer_public_key());
            if g.json {
                output::json(&json!({"algorithm": "ed25519", "public_key": k}))
            } else {
                println!("ed25519:{k}")
            }
        }
        Command::Scan { path, allow } => {
            let sources = modelvault::ops::put::collect_sources(path)?;
            let opts = modelvault::formats::pickle::ScanOptions {
                extra_allowed: allow.clone(),
                ..Default::default()
            };
            let mut results = Vec::new();
            let mut bad = 0;
            for s in &sources {
                let r = modelvault::formats::scan_file(&s.disk, &opts).map_err(|e| Error::Io {
                    context: format!("scanning {}", s.disk.display()),
                    source: e,
                })?;
                let rec = r
                    .report
                    .as_ref()
                    .map(|rep| modelvault::ops::put::scan_record(rep, false));
                let verdict = match (&r.error, &rec) {
                    (Some(_), _) => "invalid".to_string(),
                    (None, Some(rec)) => rec.verdict.clone(),
                    (None, None) => "no-pickle".to_string(),
                };
                if verdict != "clean" && verdict != "no-pickle" {
                    bad += 1;
                }
                if !g.json {
                    println!(
                        "{:<12} {:<14} {}",
                        verdict.to_uppercase(),
                        r.format,
                        s.disk.display()
                    );
                    if let Some(e) = &r.error {
                        println!("    {e}");
                    }
                    for f in rec.iter().flat_map(|r| &r.findings) {
                        println!("    {f}");
                    }
                }
                results.push(json!({"path": s.disk, "format": r.format, "verdict": verdict, "error": r.error, "findings": rec.map(|r| r.findings).unwrap_or_default()}));
            }
            if g.json {
                output::json(&results);
            } else {
                println!("{} file(s) scanned, {bad} refused", sources.len());
            }
            if bad > 0 {
                return Ok(8);
            }
        }
        Command::Info => {
            let path = vault_path(g)?;
            let v = Vault::open(&path, &open_opts(g)?)?;
            let slots = v.slot_names()?;
            let id = modelvault::manifest::hex(&v.vault_id());
            if g.json {
                output::json(
                    &json!({"vault": path, "vault_id": id, "created": v.created(), "key_slots": slots}),
                );
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

fn print_done(g: &Global, j: serde_json::Value, text: &str) {
    if g.json {
        output::json(&j)
    } else {
        println!("{text}")
    }
}

fn confirm(question: &str) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::InvalidInput(format!(
            "{question} Refusing without --yes: there is no terminal to ask on"
        )));
    }
    eprint!("{question} [y/N] ");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| Error::Io {
            context: "reading the answer".into(),
            source: e,
        })?;
    if matches!(line.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Error::InvalidInput("not confirmed: nothing removed".into()))
    }
}
