//! `mvault diff`: compares two versions file by file and tensor by tensor.

use modelvault::names::escape;
use modelvault::{DiffReport, FileDiff, FileStatus, Result, TensorDiff, parse_spec};

use crate::cli::args::Global;
use crate::cli::output::{self, group, shape, size};
use crate::cli::session::unlock_read;

/// Runs `diff A B`; returns the exit code.
pub fn run(g: &Global, a: &str, b: &str) -> Result<i32> {
    let (an, ar) = parse_spec(a)?;
    let (bn, br) = parse_spec(b)?;
    let v = unlock_read(g)?;
    let d = v.diff(&an, &ar, &bn, &br)?;
    if g.json {
        output::json(&d)
    } else {
        print(&d)
    }
    Ok(0)
}

/// Prints `diff`: one line per file (`+` added, `-` removed, `~` changed, `=` same), its tensor
/// changes indented beneath, then the summary.
fn print(d: &DiffReport) {
    println!("diff {} {}", escape(&d.a), escape(&d.b));
    for f in &d.files {
        println!("{}", file_line(f));
        if let Some(n) = &f.note {
            println!("    {n}");
        }
        if let Some(t) = &f.tensors {
            tensor_lines(t);
        }
    }
    let s = &d.summary;
    println!(
        "files: {} added, {} removed, {} changed, {} same; tensors: {} added, {} removed, {} reshaped, {} dtype changed, {} changed, {} same; {} decrypted to compare",
        s.files_added,
        s.files_removed,
        s.files_changed,
        s.files_same,
        s.tensors_added,
        s.tensors_removed,
        s.tensors_reshaped,
        s.tensors_dtype_changed,
        s.tensors_changed,
        s.tensors_same,
        size(d.bytes_decrypted)
    );
}

/// One file's line: its mark, path (`a -> b` when renamed), status, format and size.
fn file_line(f: &FileDiff) -> String {
    let (mark, word) = match f.status {
        FileStatus::Added => ('+', "added"),
        FileStatus::Removed => ('-', "removed"),
        FileStatus::Changed => ('~', "changed"),
        FileStatus::Same => ('=', "same"),
    };
    let path = match (&f.path_a, &f.path_b) {
        (Some(a), Some(b)) if a != b => format!("{} -> {}", escape(a), escape(b)),
        (Some(p), _) | (None, Some(p)) => escape(p),
        (None, None) => String::new(),
    };
    let fmt = match (&f.format_a, &f.format_b) {
        (Some(a), Some(b)) if a != b => format!("{a} -> {b}"),
        (Some(x), _) | (None, Some(x)) => x.clone(),
        (None, None) => String::new(),
    };
    let sizes = match (f.size_a, f.size_b) {
        (Some(a), Some(b)) if a != b => format!("{} -> {} bytes", group(a), group(b)),
        (Some(x), _) | (None, Some(x)) => format!("{} bytes", group(x)),
        (None, None) => String::new(),
    };
    format!("{mark} {path}  ({word}; {fmt}; {sizes})")
}

/// Prints a file's tensor changes, indented under its line.
fn tensor_lines(t: &TensorDiff) {
    for x in &t.added {
        println!("    + {} {} {}", escape(&x.name), x.dtype, shape(&x.shape));
    }
    for x in &t.removed {
        println!("    - {} {} {}", escape(&x.name), x.dtype, shape(&x.shape));
    }
    for x in &t.reshaped {
        println!("    reshaped {} {} {} -> {}", escape(&x.name), x.dtype, shape(&x.shape_a), shape(&x.shape_b));
    }
    for x in &t.dtype_changed {
        let sh = if x.shape_a == x.shape_b {
            shape(&x.shape_a)
        } else {
            format!("{} -> {}", shape(&x.shape_a), shape(&x.shape_b))
        };
        println!("    dtype {} {} -> {} {sh}", escape(&x.name), x.dtype_a, x.dtype_b);
    }
    for x in &t.changed {
        let elems = x.elements_changed.map(|n| format!("; {} element(s) changed", group(n))).unwrap_or_default();
        println!(
            "    changed {} {} {}: max|diff| {}, rel L2 {}, cosine {}{elems}",
            escape(&x.name),
            x.dtype,
            shape(&x.shape),
            stat(x.max_abs_diff),
            stat(x.rel_l2),
            stat(x.cosine)
        );
        if let Some(n) = &x.note {
            println!("        {n}");
        }
    }
    if t.same > 0 {
        println!("    {} tensor(s) unchanged", group(t.same));
    }
}

/// A statistic: six decimals in the usual range, scientific notation outside it.
fn stat(x: Option<f64>) -> String {
    match x {
        None => "n/a".into(),
        Some(v) if v == 0.0 || (1e-3..1e6).contains(&v.abs()) => format!("{v:.6}"),
        Some(v) => format!("{v:.3e}"),
    }
}
