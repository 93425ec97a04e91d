//! Output: human-readable text, or JSON with `--json`. Names from the vault are printed escaped
//! ([`modelvault::names::escape`]), so control and bidirectional characters stay visible. Text
//! tables are laid out by [`table`], each column as wide as its widest value, so they stay aligned
//! whatever the length of a name or a tag.

use std::time::{Duration, UNIX_EPOCH};

use modelvault::names::escape;
use modelvault::{Listing, VersionInfo};
use serde::Serialize;

/// Prints a failed command's error on stderr: with `--json` one line
/// `{"error": MESSAGE, "code": EXIT_CODE}`, otherwise `mvault: error: MESSAGE`.
pub fn error(json: bool, message: &str, code: i32) {
    if json {
        eprintln!("{}", serde_json::json!({"error": message, "code": code}));
    } else {
        eprintln!("mvault: error: {message}");
    }
}

/// Prints `v` as pretty JSON on stdout.
pub fn json<T: Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).expect("report serialises"));
}

/// Unix seconds as RFC 3339 UTC.
pub fn time(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// Bytes with a binary-unit figure beside them.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// How [`table`] pads a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text: padded on the right.
    Left,
    /// Numbers: padded on the left.
    Right,
}

/// Lays out `rows` under `head` (no header line when `head` is empty) as lines of a table: each
/// column as wide as its widest cell, header included (widths counted in `char`s), columns two
/// spaces apart, trailing spaces removed. `align` gives each column's alignment (missing
/// entries: left). Cells are printed as given: escape vault text before.
pub fn table(head: &[&str], align: &[Align], rows: &[Vec<String>]) -> Vec<String> {
    let cols = rows.iter().map(Vec::len).chain([head.len()]).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for (i, h) in head.iter().enumerate() {
        widths[i] = widths[i].max(h.chars().count());
    }
    for row in rows {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let mut out = String::new();
        for (i, c) in cells.enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            let pad = " ".repeat(widths[i].saturating_sub(c.chars().count()));
            if align.get(i).copied() == Some(Align::Right) {
                out.push_str(&pad);
                out.push_str(c);
            } else {
                out.push_str(c);
                out.push_str(&pad);
            }
        }
        out.trim_end().to_string()
    };
    let mut out = Vec::with_capacity(rows.len() + 1);
    if !head.is_empty() {
        out.push(line(&mut head.iter().copied()));
    }
    for row in rows {
        out.push(line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// Prints each line of [`table`] with `indent` before it.
fn print_table(indent: &str, head: &[&str], align: &[Align], rows: &[Vec<String>]) {
    for l in table(head, align, rows) {
        println!("{indent}{l}");
    }
}

/// Prints a listing as a table: one line per version.
pub fn listing(l: &Listing) {
    use Align::{Left as L, Right as R};
    if l.models.is_empty() && l.problems.is_empty() {
        println!("(no models)");
        return;
    }
    let mut rows = Vec::new();
    for m in &l.models {
        for v in &m.versions {
            let tags: Vec<String> = v.tags.iter().map(|(k, val)| format!("{k}={}", escape(val))).collect();
            let aliases: Vec<String> = v.aliases.iter().map(|a| escape(a)).collect();
            rows.push(vec![
                escape(&m.name),
                v.version.to_string(),
                size(v.size_bytes),
                time(v.created),
                aliases.join(","),
                tags.join(" "),
            ]);
        }
    }
    print_table("", &["NAME", "VERSION", "SIZE", "CREATED", "ALIASES", "TAGS"], &[L, R, R, L, L, L], &rows);
}

/// Prints one version in full.
pub fn version(v: &VersionInfo) {
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

/// A count with thousands separators: 1234567 → "1,234,567".
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A shape as `[a, b, c]`.
fn shape(s: &[u64]) -> String {
    let dims: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

/// A statistic: six decimals in the usual range, scientific notation outside it.
fn stat(x: Option<f64>) -> String {
    match x {
        None => "n/a".into(),
        Some(v) if v == 0.0 || (1e-3..1e6).contains(&v.abs()) => format!("{v:.6}"),
        Some(v) => format!("{v:.3e}"),
    }
}

/// Prints `inspect`: a summary, then each file with its tensor table, then totals per dtype.
pub fn inspection(i: &modelvault::Inspection) {
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

/// Prints `diff`: one line per file (`+` added, `-` removed, `~` changed, `=` same), its tensor
/// changes indented beneath, then the summary.
pub fn diff(d: &modelvault::DiffReport) {
    use modelvault::FileStatus;
    println!("diff {} {}", escape(&d.a), escape(&d.b));
    for f in &d.files {
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
        println!("{mark} {path}  ({word}; {fmt}; {sizes})");
        if let Some(n) = &f.note {
            println!("    {n}");
        }
        let Some(t) = &f.tensors else { continue };
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

/// Prints `get --tensor`: the file written on stdout (nothing there with `-o -`, where stdout
/// carries the file itself), what went into it on stderr.
pub fn tensor_get(r: &modelvault::TensorGetReport) {
    // `-o -`: standard output carries the file itself.
    if r.output.as_os_str() != "-" {
        println!("{}", r.output.display());
    }
    for t in &r.tensors {
        eprintln!(
            "  {} {} {} ({} bytes, from {})",
            escape(&t.name),
            t.dtype,
            shape(&t.shape),
            group(t.bytes),
            escape(&t.file)
        );
    }
    eprintln!(
        "wrote {} tensor(s) of {}@{}, {}; decrypted {} of {} chunk(s)",
        r.tensors.len(),
        escape(&r.name),
        r.version,
        size(r.bytes),
        r.chunks_read,
        r.chunks_total
    );
}

/// Prints a query result as an aligned table: a header, then one line per row; numbers right-
/// aligned, text left-aligned and escaped, NULL as empty. The row count goes to stderr.
pub fn query_table(r: &modelvault::QueryResult) {
    use modelvault::SqlValue;
    let cells: Vec<Vec<String>> =
        r.rows.iter().map(|row| row.iter().map(|v| escape(&v.to_string())).collect()).collect();
    let heads: Vec<String> = r.columns.iter().map(|c| escape(c)).collect();
    let mut widths: Vec<usize> = heads.iter().map(|h| h.chars().count()).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let last = widths.len().saturating_sub(1);
    let line: Vec<String> = heads
        .iter()
        .enumerate()
        .map(|(i, h)| if i == last { h.clone() } else { format!("{h:<w$}", w = widths[i]) })
        .collect();
    println!("{}", line.join("  ").trim_end());
    for (row, vals) in cells.iter().zip(&r.rows) {
        let line: Vec<String> = row
            .iter()
            .zip(vals)
            .enumerate()
            .map(|(i, (c, v))| match v {
                SqlValue::Integer(_) | SqlValue::Real(_) => format!("{c:>w$}", w = widths[i]),
                _ if i == last => c.clone(),
                _ => format!("{c:<w$}", w = widths[i]),
            })
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    eprintln!("({} row(s))", r.rows.len());
}

/// Prints a query result as CSV (RFC 4180): a header line, then one line per row; fields with a
/// comma, quote, CR or LF are quoted, quotes doubled; NULL is an empty field.
pub fn csv(r: &modelvault::QueryResult) {
    fn field(s: &str) -> String {
        if s.contains([',', '"', '\r', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
    }
    let head: Vec<String> = r.columns.iter().map(|c| field(c)).collect();
    println!("{}", head.join(","));
    for row in &r.rows {
        let line: Vec<String> = row.iter().map(|v| field(&v.to_string())).collect();
        println!("{}", line.join(","));
    }
}

/// Prints `stats`: vault totals, then one line per model.
pub fn stats(s: &modelvault::VaultStats) {
    println!("models:        {}", group(s.models));
    println!("versions:      {} ({} files)", group(s.versions), group(s.files));
    println!("logical bytes: {} ({} bytes)", size(s.logical_bytes), group(s.logical_bytes));
    println!("unique bytes:  {} ({} bytes)", size(s.unique_bytes), group(s.unique_bytes));
    println!("stored bytes:  {} ({} bytes, sealed)", size(s.stored_bytes), group(s.stored_bytes));
    println!("dedup ratio:   {:.2}x", s.dedup_ratio);
    println!(
        "chunks:        {} distinct, {} references; {} in the file, {} unreferenced (gc frees them)",
        group(s.chunks),
        group(s.chunk_refs),
        group(s.chunks_in_file),
        group(s.unreferenced_chunks)
    );
    println!("key epoch:     {}", s.key_epoch);
    println!("vault file:    {}", size(s.file_bytes));
    if s.per_model.is_empty() {
        return;
    }
    println!();
    use Align::{Left as L, Right as R};
    let rows: Vec<Vec<String>> = s
        .per_model
        .iter()
        .map(|m| {
            vec![
                escape(&m.name),
                m.versions.to_string(),
                size(m.logical_bytes),
                size(m.unique_bytes),
                size(m.stored_bytes),
                format!("{:.2}x", m.dedup_ratio),
                size(m.exclusive_bytes),
            ]
        })
        .collect();
    print_table(
        "",
        &["MODEL", "VERSIONS", "LOGICAL", "UNIQUE", "STORED", "DEDUP", "EXCLUSIVE"],
        &[L, R, R, R, R, R, R],
        &rows,
    );
}

/// Prints `similar`: the version asked about, then versions and models by shared bytes.
pub fn similar(s: &modelvault::Similarity) {
    println!(
        "{}@{}: {} distinct chunk(s), {} stored",
        escape(&s.name),
        s.version,
        group(s.chunks),
        size(s.stored_bytes)
    );
    if s.versions.is_empty() && s.models.is_empty() {
        println!("no other version shares a chunk with it");
        return;
    }
    use Align::{Left as L, Right as R};
    if !s.versions.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = s
            .versions
            .iter()
            .map(|v| {
                vec![
                    format!("{}@{}", escape(&v.name), v.version),
                    size(v.shared_bytes),
                    v.shared_chunks.to_string(),
                    format!("{:.3}", v.jaccard),
                ]
            })
            .collect();
        print_table("", &["VERSION", "SHARED", "CHUNKS", "JACCARD"], &[L, R, R, R], &rows);
    }
    if !s.models.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = s
            .models
            .iter()
            .map(|m| {
                vec![escape(&m.name), size(m.shared_bytes), m.shared_chunks.to_string(), format!("{:.3}", m.jaccard)]
            })
            .collect();
        print_table("", &["MODEL", "SHARED", "CHUNKS", "JACCARD"], &[L, R, R, R], &rows);
    }
}

/// Prints `families`: each family's base, then its members with the share they have in common
/// with the base.
pub fn families(f: &modelvault::Families) {
    if f.families.is_empty() {
        println!("no versions share at least {:.0}% of their bytes", f.min_shared * 100.0);
    }
    for (i, fam) in f.families.iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!(
            "family of {}@{}: {} version(s), {} logical, {} unique",
            escape(&fam.base.name),
            fam.base.version,
            fam.members.len(),
            size(fam.logical_bytes),
            size(fam.unique_bytes)
        );
        let rows: Vec<Vec<String>> = fam
            .members
            .iter()
            .map(|m| {
                vec![
                    format!("{}@{}", escape(&m.name), m.version),
                    size(m.size_bytes),
                    time(m.created),
                    format!("{:.1}%", m.shared_with_base * 100.0),
                    "shared with base".to_string(),
                ]
            })
            .collect();
        use Align::{Left as L, Right as R};
        print_table("  ", &[], &[L, R, L, R, L], &rows);
    }
    println!("{} version(s) in no family", group(f.singletons));
}
