//! Dispatch: each command line to its command's `run` (`commands/`). Nothing else happens here.

use modelvault::{QueryLimits, Result};

use super::args::{Cli, Command};
use super::commands as c;

/// Runs one command; returns the process exit code for outcomes that are not errors but still
/// fail (verify found damage, ls skipped damaged records).
pub fn run(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    match &cli.command {
        Command::Init(a) => c::init::run(g, a),
        Command::Put(a) => c::put::run(g, a),
        Command::Ls { name, where_expr, max_seconds, max_memory_mib } => {
            let limits = QueryLimits { max_seconds: *max_seconds, max_memory_mib: *max_memory_mib };
            c::ls::run(g, name.as_deref(), where_expr.as_deref(), limits)
        }
        Command::Query { sql, csv, max_seconds, max_memory_mib } => {
            c::query::run(g, sql, *csv, QueryLimits { max_seconds: *max_seconds, max_memory_mib: *max_memory_mib })
        }
        Command::Stats => c::stats::run(g),
        Command::Similar { spec, limit } => c::similar::run(g, spec, *limit),
        Command::Families { min_shared } => c::families::run(g, *min_shared),
        Command::Show { spec } => c::show::run(g, spec),
        Command::Get(a) => c::get::run(g, a),
        Command::Inspect { spec } => c::inspect::run(g, spec),
        Command::Diff { a, b } => c::diff::run(g, a, b),
        Command::Cat { spec, file, remote, no_cache } => {
            c::cat::run(g, spec, file.as_deref(), remote.as_deref(), *no_cache)
        }
        Command::Alias { spec, alias, remove } => c::alias::run(g, spec, alias, *remove),
        Command::Tag { spec, tags } => c::tag::run(g, spec, tags),
        Command::Untag { spec, keys } => c::untag::run(g, spec, keys),
        Command::Metric { spec, metrics } => c::metric::run(g, spec, metrics),
        Command::Describe { spec, text } => c::describe::run(g, spec, text),
        Command::Forget(a) => c::forget::run(g, a),
        Command::Rm { spec, yes, erase, resume } => c::rm::run(g, spec.as_deref(), *yes, *erase, *resume),
        Command::Gc { remote, grace } => match remote {
            None => c::gc::run(g),
            Some(r) => c::gc::run_remote(g, (!r.is_empty()).then_some(r.as_str()), grace.as_deref()),
        },
        Command::Verify { spec, read_data, remote } => {
            c::verify::run(g, spec.as_deref(), *read_data, remote.as_deref())
        }
        Command::Signer { command } => c::signer::run(g, command),
        Command::Key { command } => c::key::run(g, command),
        Command::Trust { command } => c::trust::run(g, command),
        Command::Log { command } => c::log::run(g, command.as_ref()),
        Command::Remote { command } => c::remote::run(g, command),
        Command::Allow { command } => c::allow::run(g, command),
        Command::Scan { paths, allow } => c::scan::run(g, paths, allow),
        Command::Info => c::info::run(g),
        Command::Mount(a) => c::mount::run(g, a),
        Command::Umount { mountpoint } => c::mount::umount(g, mountpoint),
        Command::Push { specs, remote } => c::sync::push(g, specs, remote.as_deref()),
        Command::Pull { specs, remote, metadata_only } => c::sync::pull(g, specs, remote.as_deref(), *metadata_only),
        Command::Clone { url, path, metadata_only } => c::sync::clone(g, url, path, *metadata_only),
    }
}
