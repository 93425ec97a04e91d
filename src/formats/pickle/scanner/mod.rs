//! Bounded symbolic pickle walker (one pickle, STOP to STOP).
//!
//! Owns: walking the opcodes of a single pickle with a symbolic stack, mark
//! stack and memo, and reporting every import the unpickler would perform:
//! GLOBAL, INST, STACK_GLOBAL (operands resolved from any string-pushing
//! opcode, directly or through the memo), and EXT1/2/4 extension codes.
//! It also hosts the joblib hook: after a BUILD of a
//! `joblib.numpy_pickle.NumpyArrayWrapper`, joblib's `NumpyUnpickler` reads
//! the array payload straight from the stream (see `super::joblib`).
//!
//! Specs: CPython `Lib/pickletools.py` (stack effects of every opcode) and
//! `Lib/pickle.py` / `Modules/_pickle.c` (`load_pop` mark handling, memo,
//! `STACK_GLOBAL requires str`).
//!
//! Limits: the walker stops where CPython's unpickler would raise (unknown
//! opcode, truncated argument, stack underflow, missing memo key, ...), so it
//! never looks further than a loader could get. Stack and memo are capped
//! ([`MAX_STACK`], [`MAX_MEMO`]); container contents are tracked only up to
//! `values::MAX_ITEMS` items (enough for joblib wrapper state). Floats, bytes
//! and big integers are not kept. Errors caused by these caps or by the
//! joblib analysis (not by the pickle) are marked `Walk::limit`: they always
//! make the input Unscannable, even where a parse error would only mean
//! "not a pickle".
//!
//! This file owns the walk, its state and the dispatch of one opcode ([`step`]); the opcode
//! families it dispatches to are in `families`.

use std::collections::HashMap;

mod families;

use super::allowlist;
use super::joblib;
use super::opcodes::{self, Arg, Cursor};
use super::values::{self, V};
use families::{call, container, import, literal, memo, stack};

pub const MAX_STACK: usize = 1 << 20;
pub const MAX_MEMO: usize = 1 << 20;
/// Nesting cap for pickles embedded in joblib object arrays.
pub const MAX_NESTED: u32 = 8;
/// Nodes the joblib taint analysis may visit in one walk.
pub const TAINT_BUDGET: u64 = 5_000_000;
/// Prefix of errors that come from the scanner's own limits.
pub const LIMIT: &str = "scanner limit: ";

/// What an import-like opcode referred to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A resolved `module.qualname` import.
    Global,
    /// An import the walker could not name (reason in `name`).
    Unresolved,
}

#[derive(Clone, Debug)]
pub struct Event {
    pub offset: usize,
    pub name: String,
    pub kind: EventKind,
}

/// Outcome of walking one pickle.
#[derive(Debug, Default)]
pub struct Walk {
    /// Offset just after STOP, or of the failing opcode.
    pub end: usize,
    /// `Some((offset, message))` if the pickle did not reach STOP cleanly.
    pub error: Option<(usize, String)>,
    pub events: Vec<Event>,
    /// The value STOP returned (only if it is a small int; legacy torch magic).
    pub stop_int: Option<i128>,
    /// If STOP returned a tuple whose last item is an imported global, that global's name
    /// (the storage class of a legacy `torch.save` tar's storage record).
    pub stop_last_global: Option<String>,
    /// Offsets where joblib array payloads were skipped.
    pub joblib_skips: Vec<usize>,
    /// Names already reported (each import is reported once, first offset).
    seen: std::collections::HashSet<String>,
    /// The walk failed because the data ran out (not a genuine parse error).
    pub eof: bool,
    /// The walk failed on one of the scanner's own limits.
    pub limit: bool,
}

impl Walk {
    pub fn report(&mut self, offset: usize, name: String, kind: EventKind) {
        if self.seen.insert(name.clone()) {
            self.events.push(Event { offset, name, kind });
        }
    }
}

struct State {
    stack: Vec<V>,
    marks: Vec<usize>,
    memo: HashMap<u64, V>,
    /// A joblib wrapper class was imported or an extension code used.
    pub wrapper_possible: bool,
    pub budget: u64,
}

impl State {
    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }
    pub fn push(&mut self, v: V) -> Result<(), String> {
        if self.stack.len() >= MAX_STACK {
            return Err(format!("{LIMIT}stack cap of {MAX_STACK} entries exceeded"));
        }
        self.stack.push(v);
        Ok(())
    }
    pub fn pop(&mut self) -> Result<V, String> {
        if self.stack.len() <= self.fence() {
            return Err("unpickling stack underflow".into());
        }
        self.stack.pop().ok_or_else(|| "unpickling stack underflow".into())
    }
    pub fn top(&mut self) -> Result<&mut V, String> {
        if self.stack.len() <= self.fence() {
            return Err("unpickling stack underflow".into());
        }
        self.stack.last_mut().ok_or_else(|| "unpickling stack underflow".into())
    }
    fn pop_mark(&mut self) -> Result<Vec<V>, String> {
        let m = self.marks.pop().ok_or("could not find MARK")?;
        Ok(self.stack.split_off(m.min(self.stack.len())))
    }
    fn call(&mut self, callable: V, args: Vec<V>, bare: bool) -> V {
        values::call(callable, args, bare, self.wrapper_possible, &mut self.budget)
    }
    fn memo_put(&mut self, idx: u64) -> Result<(), String> {
        let v = self.top()?.clone();
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&idx) {
            return Err(format!("{LIMIT}memo cap of {MAX_MEMO} entries exceeded"));
        }
        self.memo.insert(idx, v);
        Ok(())
    }
}

fn int_arg(a: &Arg) -> i128 {
    if let Arg::Int(i) = a { *i } else { 0 }
}

/// How to walk.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mode {
    /// Emulate joblib's `NumpyUnpickler` (inline array payloads after BUILD).
    pub joblib: bool,
    /// The bytes are of unknown type (zip member): an import whose module or
    /// name is not a dotted identifier ends the walk as "not a pickle"
    /// (CPython's import would fail there), instead of being reported.
    pub sniff: bool,
}

/// Walk one pickle starting at `start`.
pub fn walk(data: &[u8], start: usize, mode: Mode, depth: u32) -> Walk {
    // Declared first, so it is dropped last: after the stack and memo, it empties whatever
    // containers a self-referencing pickle kept alive.
    let _cycles = super::values::CycleBreaker::new();
    let mut w = Walk { end: start, ..Walk::default() };
    let mut st = State {
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        wrapper_possible: false,
        budget: TAINT_BUDGET,
    };
    let mut cur = Cursor::new(data, start);
    loop {
        let at = cur.pos;
        w.end = at;
        let Some(&code) = data.get(at) else {
            w.error = Some((at, "pickle ended without STOP (truncated)".into()));
            w.eof = true;
            return w;
        };
        let Some(op) = opcodes::lookup(code) else {
            w.error = Some((at, format!("invalid opcode 0x{code:02x}")));
            return w;
        };
        cur.pos += 1;
        let res = opcodes::read_arg(&mut cur, op)
            .and_then(|arg| step(&mut st, &mut w, &mut cur, op.code, arg, at, mode, depth));
        match res {
            Ok(true) => {
                w.end = cur.pos;
                return w;
            }
            Ok(false) => {}
            Err(e) => {
                w.eof = e.contains("exceeds the") || e.contains("truncated");
                w.limit = e.starts_with(LIMIT);
                w.error = Some((at, format!("{} at offset {at}: {e}", op.name)));
                return w;
            }
        }
    }
}

/// Execute one opcode symbolically. Returns `Ok(true)` on STOP. Dispatches by opcode family to
/// the functions below; an opcode no family handles is an error, as in CPython.
#[allow(clippy::too_many_arguments)]
fn step(
    st: &mut State,
    w: &mut Walk,
    cur: &mut Cursor,
    code: u8,
    arg: Arg,
    at: usize,
    mode: Mode,
    depth: u32,
) -> Result<bool, String> {
    match code {
        b'I' | b'L' | b'J' | b'K' | b'M' | 0x8a | 0x8b | b'S' | b'T' | b'U' | b'V' | 0x8c | b'X' | 0x8d | b'B'
        | b'C' | 0x8e | 0x96 | 0x97 | b'F' | b'G' | 0x98 | b'N' | 0x88 | 0x89 => literal(st, code, arg)?,
        b']' | b')' | b'}' | 0x8f | b'a' | b'e' | b'l' | b't' | 0x85..=0x87 | b'd' | b's' | b'u' | 0x90 | 0x91 => {
            container(st, code)?
        }
        b'0' | b'2' | b'(' | b'1' => stack(st, code)?,
        b'g' | b'h' | b'j' | b'p' | b'q' | b'r' | 0x94 => memo(st, code, arg)?,
        0x82..=0x84 | b'c' | b'i' | 0x93 => import(st, w, code, arg, at, mode)?,
        b'R' | b'b' | b'o' | 0x81 | 0x92 => call(st, w, cur, code, mode, depth)?,
        0x80 => {
            if int_arg(&arg) > 5 {
                return Err(format!("unsupported pickle protocol: {}", int_arg(&arg)));
            }
        }
        0x95 => {}
        b'P' => st.push(V::Unknown)?,
        b'Q' => {
            st.pop()?;
            st.push(V::Unknown)?;
        }
        b'.' => {
            let v = st.pop()?;
            if let V::Int(i) = v {
                w.stop_int = Some(i);
            } else if matches!(v, V::Tuple(_))
                && let Some(V::Global(g)) = values::tuple_items(&v).last()
            {
                w.stop_last_global = Some(g.to_string());
            }
            return Ok(true);
        }
        other => return Err(format!("unhandled opcode 0x{other:02x}")),
    }
    Ok(false)
}
