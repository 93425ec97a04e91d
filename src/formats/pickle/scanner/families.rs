//! The opcode families [`super::step`] dispatches to: constants, containers, stack and mark
//! operations, the memo, imports, and calls (with the joblib BUILD hook). Each arm follows the
//! stack effect of its opcode in CPython's `Lib/pickletools.py`.
//!
//! Every push goes through `State::push` (the stack cap) and every memo write through
//! `State::memo_put` (the memo cap); every import is reported in the walk. A family must never
//! handle an opcode silently that it does not own: it returns the unhandled-opcode error.

use std::rc::Rc;

use super::{Arg, Cursor, EventKind, LIMIT, MAX_STACK, Mode, State, V, Walk, allowlist, int_arg, opcodes, values};

/// Opcodes that push a constant (ints, strings, bytes, floats, None, booleans), and
/// READONLY_BUFFER, which needs a value on the stack.
pub(super) fn literal(st: &mut State, code: u8, arg: Arg) -> Result<(), String> {
    match code {
        b'I' => {
            let Arg::Line(l) = arg else {
                return Err("bad INT".into());
            };
            let v = match l {
                b"00" => V::Bool(false),
                b"01" => V::Bool(true),
                _ => V::Int(opcodes::parse_decimal(l).ok_or("invalid literal for int()")?),
            };
            st.push(v)?;
        }
        b'L' => {
            let Arg::Line(l) = arg else {
                return Err("bad LONG".into());
            };
            let t = std::str::from_utf8(l).map_err(|_| "invalid LONG literal")?.trim();
            let t = t.strip_suffix('L').unwrap_or(t);
            let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err("invalid literal for int()".into());
            }
            st.push(t.parse::<i128>().map(V::Int).unwrap_or(V::Other))?;
        }
        b'J' | b'K' | b'M' | 0x8a | 0x8b => st.push(if let Arg::Int(i) = arg { V::Int(i) } else { V::Other })?,
        b'S' | b'T' | b'U' | b'V' | 0x8c | b'X' | 0x8d => {
            let Arg::Text(t, trunc) = arg else {
                return Err("bad string".into());
            };
            let s: Rc<str> = if trunc { format!("{t}...").into() } else { t.as_ref().into() };
            st.push(V::Str(s))?;
        }
        b'B' | b'C' | 0x8e | 0x96 | 0x97 | b'F' | b'G' => st.push(V::Other)?,
        0x98 => {
            st.top()?;
        }
        b'N' => st.push(V::None)?,
        0x88 => st.push(V::Bool(true))?,
        0x89 => st.push(V::Bool(false))?,
        other => return Err(format!("unhandled opcode 0x{other:02x}")),
    }
    Ok(())
}

/// Opcodes that build or fill a list, tuple, dict or set.
pub(super) fn container(st: &mut State, code: u8) -> Result<(), String> {
    match code {
        b']' => st.push(V::new_list(Vec::new()))?,
        b')' => st.push(V::tuple(Vec::new()))?,
        b'}' => st.push(V::new_dict())?,
        0x8f => st.push(V::Other)?,
        b'a' => {
            let x = st.pop()?;
            values::list_extend(st.top()?, vec![x])?;
        }
        b'e' => {
            let items = st.pop_mark()?;
            values::list_extend(st.top()?, items)?;
        }
        b'l' => {
            let items = st.pop_mark()?;
            st.push(V::new_list(items))?;
        }
        b't' => {
            let items = st.pop_mark()?;
            st.push(V::tuple(items))?;
        }
        0x85..=0x87 => {
            let n = usize::from(code - 0x84);
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(st.pop()?);
            }
            items.reverse();
            st.push(V::tuple(items))?;
        }
        b'd' => {
            let items = st.pop_mark()?;
            let d = V::new_dict();
            values::set_items(&d, items)?;
            st.push(d)?;
        }
        b's' => {
            let v = st.pop()?;
            let k = st.pop()?;
            values::set_items(st.top()?, vec![k, v])?;
        }
        b'u' => {
            let items = st.pop_mark()?;
            values::set_items(st.top()?, items)?;
        }
        0x90 => {
            st.pop_mark()?;
            st.top()?;
        }
        0x91 => {
            st.pop_mark()?;
            st.push(V::Other)?;
        }
        other => return Err(format!("unhandled opcode 0x{other:02x}")),
    }
    Ok(())
}

/// POP, DUP, MARK and POP_MARK.
pub(super) fn stack(st: &mut State, code: u8) -> Result<(), String> {
    match code {
        b'0' => {
            // CPython load_pop: an empty frame above the last mark pops the mark.
            if st.marks.last() == Some(&st.stack.len()) {
                st.marks.pop();
            } else {
                st.pop()?;
            }
        }
        b'2' => {
            let v = st.top()?.clone();
            st.push(v)?;
        }
        b'(' => {
            if st.marks.len() >= MAX_STACK {
                return Err(format!("{LIMIT}mark stack cap exceeded"));
            }
            st.marks.push(st.stack.len());
        }
        b'1' => {
            st.pop_mark()?;
        }
        other => return Err(format!("unhandled opcode 0x{other:02x}")),
    }
    Ok(())
}

/// Memo reads and writes (GET, BINGET, LONG_BINGET, PUT, BINPUT, LONG_BINPUT, MEMOIZE).
pub(super) fn memo(st: &mut State, code: u8, arg: Arg) -> Result<(), String> {
    match code {
        b'g' | b'h' | b'j' => {
            let idx = match arg {
                Arg::Line(l) => opcodes::parse_decimal(l).ok_or("invalid GET index")?,
                a => int_arg(&a),
            };
            let v = u64::try_from(idx).ok().and_then(|i| st.memo.get(&i)).cloned();
            st.push(v.ok_or_else(|| format!("memo value not found at index {idx}"))?)?;
        }
        b'p' | b'q' | b'r' => {
            let idx = match arg {
                Arg::Line(l) => opcodes::parse_decimal(l).ok_or("invalid PUT index")?,
                a => int_arg(&a),
            };
            st.memo_put(u64::try_from(idx).map_err(|_| "negative PUT argument")?)?;
        }
        0x94 => {
            let idx = st.memo.len() as u64;
            st.memo_put(idx)?;
        }
        other => return Err(format!("unhandled opcode 0x{other:02x}")),
    }
    Ok(())
}

/// Opcodes that import: GLOBAL, INST, STACK_GLOBAL and EXT1/2/4. Each is reported in `w`.
pub(super) fn import(st: &mut State, w: &mut Walk, code: u8, arg: Arg, at: usize, mode: Mode) -> Result<(), String> {
    match code {
        0x82..=0x84 => {
            st.wrapper_possible = true;
            let name = format!("extension code {} (copyreg registry, cannot be resolved)", int_arg(&arg));
            w.report(at, name, EventKind::Unresolved);
            st.push(V::Unknown)?;
        }
        b'c' | b'i' => {
            let Arg::Pair(m, n, eof) = arg else {
                return Err("bad GLOBAL".into());
            };
            if mode.sniff && !(allowlist::importable(&m) && allowlist::importable(&n)) {
                return Err("import of a name that is not a Python identifier (not a pickle)".into());
            }
            let name = format!("{m}.{n}");
            st.wrapper_possible |= values::is_wrapper(&name);
            w.report(at, name.clone(), EventKind::Global);
            if eof {
                return Err("stream ends inside the GLOBAL name".into());
            }
            if code == b'c' {
                st.push(V::Global(name.into()))?;
            } else {
                let args = st.pop_mark()?;
                let v = st.call(V::Global(name.into()), args, false);
                st.push(v)?;
            }
        }
        0x93 => {
            let n = st.pop()?;
            let m = st.pop()?;
            // CPython requires both to be str (str subclasses included).
            let maybe_str = |v: &V| matches!(v, V::Str(_) | V::Obj(_) | V::Unknown | V::Global(_));
            match (&m, &n) {
                (V::Str(m), V::Str(n)) => {
                    if mode.sniff && !(allowlist::importable(m) && allowlist::importable(n)) {
                        return Err("import of a name that is not a Python identifier (not a pickle)".into());
                    }
                    let name = format!("{m}.{n}");
                    st.wrapper_possible |= values::is_wrapper(&name);
                    w.report(at, name.clone(), EventKind::Global);
                    st.push(V::Global(name.into()))?;
                }
                _ if maybe_str(&m) && maybe_str(&n) => {
                    let show = |v: &V| match v {
                        V::Str(s) => s.to_string(),
                        _ => "?".to_string(),
                    };
                    st.wrapper_possible = true;
                    w.report(at, format!("{}.{}", show(&m), show(&n)), EventKind::Unresolved);
                    st.push(V::Unknown)?;
                }
                _ => return Err("STACK_GLOBAL requires str".into()),
            }
        }
        other => return Err(format!("unhandled opcode 0x{other:02x}")),
    }
    Ok(())
}

/// Opcodes that call or build an object: REDUCE, BUILD (with the joblib hook), OBJ, NEWOBJ,
/// NEWOBJ_EX.
pub(super) fn call(
    st: &mut State,
    w: &mut Walk,
    cur: &mut Cursor,
    code: u8,
    mode: Mode,
    depth: u32,
) -> Result<(), String> {
    match code {
        b'R' => {
            let args = st.pop()?;
            let f = st.pop()?;
            let v = st.call(f, values::tuple_items(&args), false);
            st.push(v)?;
        }
        b'b' => {
            let state = st.pop()?;
            let target = st.top()?.clone();
            if mode.joblib && st.wrapper_possible {
                if let Some(replacement) = super::joblib::on_build(&target, &state, cur, w, depth)
                    .map_err(|e| format!("{LIMIT}joblib: {e}"))?
                {
                    st.pop()?;
                    st.push(replacement)?;
                }
            } else if let V::Obj(o) = &target
                && let Ok(mut o) = o.try_borrow_mut()
            {
                o.state = Some(state);
            }
        }
        b'o' => {
            let mut items = st.pop_mark()?;
            if items.is_empty() {
                return Err("OBJ without a class".into());
            }
            let cls = items.remove(0);
            let v = st.call(cls, items, false);
            st.push(v)?;
        }
        0x81 => {
            let args = st.pop()?;
            let cls = st.pop()?;
            let bare = matches!(&args, V::Tuple(t) if t.is_empty());
            let v = st.call(cls, values::tuple_items(&args), bare);
            st.push(v)?;
        }
        0x92 => {
            let kwargs = st.pop()?;
            let args = st.pop()?;
            let cls = st.pop()?;
            let mut items = values::tuple_items(&args);
            items.push(kwargs);
            let v = st.call(cls, items, false);
            st.push(v)?;
        }
        other => return Err(format!("unhandled opcode 0x{other:02x}")),
    }
    Ok(())
}
