//! Multi-pickle streams: what follows the first STOP.
//!
//! Owns: the rules for a byte stream that may hold several pickles, and the
//! joblib double reading.
//!
//! Rules (documented policy):
//! 1. The first pickle must reach STOP. If it does not, every import seen
//!    before the break is still reported and, in strict mode (input expected
//!    to be a pickle), the stream is Unscannable. In sniff mode (zip members
//!    of unknown type) a break with no import seen means "not a pickle":
//!    without an import no callable exists, so nothing can run.
//! 2. Legacy PyTorch (pre-1.6 `torch.save`): the first pickle's value is the
//!    magic integer `0x1950a86a20f9469cfc6c`. `torch.load` then unpickles
//!    exactly four more pickles (protocol version, sys_info, data, storage
//!    keys) and reads the rest as raw storage bytes, never unpickling them.
//!    All five must parse (else Unscannable); the rest is not scanned.
//! 3. Any other stream: after each STOP, remaining bytes are walked as
//!    another pickle (a loader may call `pickle.load` repeatedly). Imports
//!    found there are always reported, even if that trailing pickle breaks
//!    later; a trailing part that breaks without any import is inert junk.
//! 4. joblib: every pickle is first walked as joblib's `NumpyUnpickler`
//!    reads it (inline array payloads skipped exactly). If any payload was
//!    skipped, the same bytes are walked again as plain `pickle.load` would
//!    read them (array bytes parsed as opcodes) and that reading's imports
//!    are reported too, so array bytes cannot hide a payload from either
//!    loader. Parse errors of the plain reading are expected and ignored.
//!
//! Spec: CPython `pickle.py` (`load` stops at STOP, ignores what follows),
//! PyTorch `torch/serialization.py` `_legacy_load`, joblib `numpy_pickle.py`.
//!
//! Limits: at most [`MAX_PICKLES`] pickles per stream.

use std::collections::HashSet;

use super::scanner::{self, Event, Mode, Walk};

/// `torch.serialization.MAGIC_NUMBER`.
pub const TORCH_MAGIC: i128 = 0x1950a86a20f9469cfc6c;
pub const MAX_PICKLES: usize = 10_000;

#[derive(Debug, Default)]
pub struct StreamOutcome {
    pub events: Vec<Event>,
    /// (offset, message) problems that make the stream Unscannable.
    pub problems: Vec<(usize, String)>,
    /// False only in sniff mode when the bytes are not a pickle at all.
    pub is_pickle: bool,
    /// The first pickle ran out of data before STOP or a parse error (more bytes might hold
    /// more opcodes).
    pub ran_out: bool,
    pub legacy_torch: bool,
    pub pickles: usize,
}

fn walk_both(data: &[u8], pos: usize, sniff: bool) -> Walk {
    let mut w = scanner::walk(data, pos, Mode { joblib: true, sniff }, 0);
    if !w.joblib_skips.is_empty() {
        let plain = scanner::walk(data, pos, Mode { joblib: false, sniff }, 0);
        let seen: HashSet<String> = w.events.iter().map(|e| e.name.clone()).collect();
        w.events.extend(plain.events.into_iter().filter(|e| !seen.contains(&e.name)));
    }
    w
}

/// Scan a byte stream of one or more pickles. `strict`: the input is
/// expected to be a pickle (a parse failure makes it Unscannable).
pub fn scan(data: &[u8], strict: bool) -> StreamOutcome {
    let mut out = StreamOutcome::default();
    let first = walk_both(data, 0, !strict);
    out.ran_out = first.eof;
    out.events.extend(first.events);
    out.pickles = 1;
    if let Some((off, msg)) = first.error {
        out.is_pickle = strict || first.limit || !out.events.is_empty();
        if out.is_pickle {
            out.problems.push((off, format!("not a complete pickle: {msg}")));
        }
        return out;
    }
    out.is_pickle = true;
    let mut pos = first.end;
    if first.stop_int == Some(TORCH_MAGIC) {
        out.legacy_torch = true;
        for i in 1..5 {
            let w = walk_both(data, pos, !strict);
            out.events.extend(w.events);
            out.pickles += 1;
            if let Some((off, msg)) = w.error {
                out.problems.push((off, format!("legacy PyTorch file: pickle {} of 5 is broken: {msg}", i + 1)));
                return out;
            }
            pos = w.end;
        }
        return out;
    }
    while pos < data.len() {
        if out.pickles >= MAX_PICKLES {
            out.problems.push((pos, format!("more than {MAX_PICKLES} pickles in one stream")));
            break;
        }
        let w = walk_both(data, pos, !strict);
        out.events.extend(w.events);
        if w.error.is_some() {
            break;
        }
        out.pickles += 1;
        pos = w.end;
    }
    out
}
