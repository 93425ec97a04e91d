//! The CLI's [`Progress`]: a bar on a terminal, JSON lines with `--json`, or nothing. It only
//! reports what the library tells it; it never touches the vault.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use modelvault::Progress;
use serde_json::json;

use super::args::Global;

/// Progress: a bar on stderr when it is a terminal; with `--json` and no terminal, one JSON
/// object per line on stderr (at most one a second, plus the start and the end of each phase);
/// otherwise silent.
pub struct Bar {
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
    /// The progress a command reports with the global options `g` (`--quiet`, `--json`).
    pub fn new(g: &Global) -> Bar {
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
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("warning: {message}")),
            None => eprintln!("warning: {message}"),
        }
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

/// A [`Progress`] that shows the library's phase labels in this CLI's words: `words` turns a
/// label into what is shown; everything else goes to `inner` as it is.
pub struct Relabel<'a> {
    /// Where the events go.
    pub inner: &'a dyn Progress,
    /// This CLI's words for a label.
    pub words: fn(&str) -> String,
}

impl Progress for Relabel<'_> {
    fn warn(&self, message: &str) {
        self.inner.warn(message);
    }
    fn begin(&self, label: &str, total: u64) {
        self.inner.begin(&(self.words)(label), total);
    }
    fn advance(&self, n: u64) {
        self.inner.advance(n);
    }
    fn end(&self) {
        self.inner.end();
    }
}

/// A tensor read's label (`get NAME@N tensors`) as this CLI says it: `get NAME@N --tensor`.
pub fn tensor_label(label: &str) -> String {
    match label.strip_suffix(modelvault::ops::tensor_get::TENSOR_LABEL_SUFFIX) {
        Some(l) => format!("{l} --tensor"),
        None => label.to_string(),
    }
}
