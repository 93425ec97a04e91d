//! `mvault inspect`: a version's files and tensors (dtype, shape, parameters, bytes), from the
//! tensor index, without decrypting tensor data.

use modelvault::names::escape;
use modelvault::{Result, parse_spec};

use crate::cli::args::Global;
use crate::cli::output::{self, Align, group, print_table, shape, size};
use crate::cli::session::unlock_read;

/// Runs `inspect SPEC`; returns the exit code.
pub fn run(g: &Global, spec: &str) -> Result<i32> {
    let (name, r) = parse_spec(spec)?;
    let v = unlock_read(g)?;
    let ins = v.inspect(&name, &r)?;
    if g.json {
        output::json(&ins)
    } else {
        inspection(&ins)
    }
    Ok(0)
}

/// Prints `inspect`: a summary, then each file with its tensor table, then totals per dtype.
fn inspection(i: &modelvault::Inspection) {
    println!("model:      {}@{}", escape(&i.name), i.version);
    println!("size:       {} in {} file(s)", size(i.size_bytes), i.files.len());
    println!(
        "parameters: {} in {} tensor(s), {} of tensor data",
        group(i.params),
        group(i.tensors),
        size(i.tensor_bytes)
    );
    for f in &i.files {
        let allowed = match &f.scan {
            Some(s) if s.allowed_unsafe => " (stored with --allow-unsafe-pickle)",
            _ => "",
        };
        println!();
        println!("{}  {}  {}  pickle scan: {}{allowed}", escape(&f.path), f.format, size(f.size), f.scan_verdict);
        for finding in f.scan.iter().flat_map(|s| &s.findings) {
            println!("    {}", escape(finding));
        }
        if f.tensors.is_empty() {
            continue;
        }
        use Align::{Left as L, Right as R};
        let rows: Vec<Vec<String>> = f
            .tensors
            .iter()
            .map(|t| vec![escape(&t.name), escape(&t.dtype), shape(&t.shape), group(t.params), group(t.bytes)])
            .collect();
        print_table("  ", &["TENSOR", "DTYPE", "SHAPE", "PARAMS", "BYTES"], &[L, L, L, R, R], &rows);
    }
    if !i.dtypes.is_empty() {
        use Align::{Left as L, Right as R};
        println!();
        let rows: Vec<Vec<String>> = i
            .dtypes
            .iter()
            .map(|d| vec![escape(&d.dtype), group(d.tensors), group(d.params), group(d.bytes)])
            .collect();
        print_table("", &["DTYPE", "TENSORS", "PARAMS", "BYTES"], &[L, R, R, R], &rows);
    }
}
