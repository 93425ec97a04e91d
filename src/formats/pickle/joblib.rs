//! joblib inline array payloads (joblib >= 0.10 `NumpyArrayWrapper`).
//!
//! Owns: the BUILD hook that mirrors joblib's `NumpyUnpickler.load_build`:
//! after a BUILD whose target is a `NumpyArrayWrapper`, joblib reads the
//! array straight from the stream (`NumpyArrayWrapper.read_array`):
//! - `dtype.hasobject` → a nested pickle read with plain `pickle.load`
//!   (walked with full strictness; its imports are reported);
//! - otherwise, if the wrapper has `numpy_array_alignment_bytes`
//!   (joblib >= 0.12), one padding-length byte plus that many padding bytes,
//!   then `prod(shape) * dtype.itemsize` raw bytes that are never unpickled.
//!
//! Soundness: the number of skipped bytes must equal joblib's, or a payload
//! could hide in bytes joblib parses but the scanner skips. So the wrapper's
//! attributes are accumulated over every BUILD on the same (aliased) object,
//! dtype size/objectness is derived the way NumPy's `dtype.__setstate__`
//! does and cross-checked (kind, fields, subarray, flags), and every case the
//! scanner cannot pin down is an error (→ Unscannable): a wrapper built with
//! constructor arguments, an object that *may* be a wrapper (made by a
//! factory such as `copyreg._reconstructor` from the wrapper class, or an
//! unknown value), slot state assigning `__class__`, object arrays with
//! `allow_mmap` set (mmap loading would skip raw bytes instead).
//!
//! Spec: joblib `numpy_pickle.py` (`NumpyArrayWrapper.read`, `read_array`,
//! `read_mmap`, `NumpyUnpickler.load_build`); NumPy `dtype.__reduce__` state
//! `(version, endian, subarray, names, fields, elsize, alignment, flags[, metadata])`.
//!
//! Limits: `NDArrayWrapper` (joblib < 0.10) keeps arrays in side-car `.npy`
//! files that joblib loads with `allow_pickle=True`; scan those on their own.

use std::rc::Rc;

use super::opcodes::Cursor;
use super::scanner::{self, Walk};
use super::values::{self, V};

fn truthy(v: &V) -> Option<bool> {
    match v {
        V::Bool(b) => Some(*b),
        V::None => Some(false),
        V::Int(i) => Some(*i != 0),
        _ => None,
    }
}

/// Could this slot state assign `__class__` (turning any object into a
/// wrapper, or a wrapper into something else)?
fn assigns_class(slots: &V) -> bool {
    match slots {
        V::None => false,
        V::Dict(_) => !matches!(values::dict_get(slots, "__class__"), Ok(None)),
        _ => true,
    }
}

/// Apply `__dict__.update(d)` semantics to the wrapper attributes.
fn merge(attrs: &mut Vec<(Rc<str>, V)>, d: &V) -> Result<(), String> {
    let V::Dict(d) = d else {
        return match d {
            V::None => Ok(()),
            _ => Err("NumpyArrayWrapper state is not a dict".into()),
        };
    };
    let d = d.try_borrow().map_err(|_| "wrapper state borrowed")?;
    if d.overflow {
        return Err("NumpyArrayWrapper state dict too large or with exotic keys".into());
    }
    for (k, v) in &d.items {
        let V::Str(k) = k else {
            return Err("NumpyArrayWrapper state has a non-str key".into());
        };
        match attrs.iter_mut().find(|(old, _)| old == k) {
            Some(slot) => slot.1 = v.clone(),
            None => attrs.push((k.clone(), v.clone())),
        }
    }
    Ok(())
}

/// joblib BUILD hook; `Ok(Some(v))` replaces the wrapper on the stack.
pub fn on_build(target: &V, state: &V, cur: &mut Cursor, w: &mut Walk, depth: u32) -> Result<Option<V>, String> {
    let (dict_state, slot_state) = match state {
        V::Tuple(t) if t.len() == 2 => (t[0].clone(), Some(t[1].clone())),
        other => (other.clone(), None),
    };
    if slot_state.as_ref().is_some_and(assigns_class) {
        return Err("BUILD slot state may assign __class__ (joblib wrapper ambiguity)".into());
    }
    let V::Obj(o) = target else {
        return match target {
            V::Unknown => Err("BUILD on an unknown object while a joblib wrapper class is in play".into()),
            _ => Ok(None),
        };
    };
    let (definite, maybe, bare) = {
        let b = o.try_borrow().map_err(|_| "object borrowed")?;
        (values::is_wrapper(&b.class), b.maybe_wrapper, b.bare)
    };
    if !definite {
        if maybe {
            return Err(
                "BUILD target may be a joblib NumpyArrayWrapper (made by a factory from the wrapper class)".into()
            );
        }
        if let Ok(mut b) = o.try_borrow_mut() {
            b.state = Some(state.clone());
        }
        return Ok(None);
    }
    if !bare {
        return Err("NumpyArrayWrapper created with constructor arguments; its attributes cannot be known".into());
    }
    let attrs = {
        let mut b = o.try_borrow_mut().map_err(|_| "wrapper borrowed")?;
        let mut attrs = std::mem::take(&mut b.attrs);
        let r = merge(&mut attrs, &dict_state).and_then(|_| match &slot_state {
            Some(s) => merge(&mut attrs, s),
            None => Ok(()),
        });
        b.attrs = attrs.clone();
        b.state = Some(state.clone());
        r?;
        attrs
    };
    w.joblib_skips.push(cur.pos);
    skip_payload(&attrs, cur, w, depth)?;
    Ok(Some(V::Other))
}

fn attr<'a>(attrs: &'a [(Rc<str>, V)], k: &str) -> Option<&'a V> {
    attrs.iter().find(|(n, _)| &**n == k).map(|(_, v)| v)
}

/// (hasobject, itemsize) of a symbolic `numpy.dtype(...)`.
fn dtype_info(v: &V, depth: u32) -> Result<(bool, u64), String> {
    if depth > 8 {
        return Err("dtype nesting too deep".into());
    }
    let V::Obj(o) = v else {
        return Err("wrapper dtype is not a numpy.dtype object".into());
    };
    let o = o.try_borrow().map_err(|_| "dtype borrowed")?;
    if &*o.class != "numpy.dtype" {
        return Err(format!("dtype built by unexpected {}", o.class));
    }
    let Some(V::Str(typestr)) = o.args.first() else {
        return Err("numpy.dtype without a type string".into());
    };
    let ts = typestr.trim_start_matches(['<', '>', '|', '=']);
    let split = ts.find(|c: char| c.is_ascii_digit()).unwrap_or(ts.len());
    let (kind, digits) = ts.split_at(split);
    if !matches!(kind, "b" | "i" | "u" | "f" | "c" | "M" | "m" | "O" | "S" | "a" | "U" | "V") {
        return Err(format!("unsupported dtype kind in {typestr:?}"));
    }
    let mut itemsize: Option<u64> = digits.parse().ok();
    if kind == "U" {
        itemsize = itemsize.and_then(|n| n.checked_mul(4));
    }
    let mut hasobject = kind == "O";
    let mut flag_obj = None;
    if let Some(V::Tuple(t)) = &o.state {
        if t.len() < 8 {
            return Err("old-style numpy.dtype state is not supported".into());
        }
        if let V::Tuple(sub) = &t[2] {
            if kind != "V" {
                return Err("subarray on a non-void dtype".into());
            }
            hasobject |= dtype_info(sub.first().ok_or("empty subarray")?, depth + 1)?.0;
        }
        match &t[4] {
            V::None => {}
            V::Dict(d) => {
                let d = d.try_borrow().map_err(|_| "fields borrowed")?;
                if d.overflow || kind != "V" {
                    return Err("structured dtype fields cannot be analysed".into());
                }
                for (_, f) in &d.items {
                    let V::Tuple(ft) = f else {
                        return Err("dtype field is not a tuple".into());
                    };
                    hasobject |= dtype_info(ft.first().ok_or("empty dtype field")?, depth + 1)?.0;
                }
            }
            _ => return Err("dtype fields are not a dict".into()),
        }
        if matches!(kind, "S" | "a" | "U" | "V")
            && let V::Int(e) = t[5]
            && e >= 0
        {
            itemsize = u64::try_from(e).ok();
        }
        if let V::Int(f) = t[7] {
            flag_obj = Some(f & 1 != 0);
        }
    }
    if flag_obj.is_some_and(|f| f != hasobject) {
        return Err("dtype flags disagree with its kind/fields about holding objects".into());
    }
    Ok((hasobject, itemsize.ok_or_else(|| format!("cannot size dtype {typestr:?}"))?))
}

/// Consume the payload that follows the BUILD of a `NumpyArrayWrapper`.
fn skip_payload(attrs: &[(Rc<str>, V)], cur: &mut Cursor, w: &mut Walk, depth: u32) -> Result<(), String> {
    let dtype = attr(attrs, "dtype").ok_or("NumpyArrayWrapper without dtype")?;
    let (hasobject, itemsize) = dtype_info(dtype, 0)?;
    if hasobject {
        if attr(attrs, "allow_mmap").is_some_and(|v| truthy(v) != Some(false)) {
            return Err("object-dtype NumpyArrayWrapper with allow_mmap set (loader-dependent layout)".into());
        }
        if depth >= scanner::MAX_NESTED {
            return Err("nested joblib object-array pickles exceed the depth cap".into());
        }
        let inner = scanner::walk(cur.data, cur.pos, scanner::Mode::default(), depth + 1);
        for e in inner.events {
            w.report(e.offset, e.name, e.kind);
        }
        if let Some((_, e)) = inner.error {
            return Err(format!("object-array payload pickle: {e}"));
        }
        cur.pos = inner.end;
        return Ok(());
    }
    let count = match attr(attrs, "shape") {
        Some(V::Tuple(dims)) => dims.iter().try_fold(1u64, |acc, d| match d {
            V::Int(n) if *n >= 0 => u64::try_from(*n).ok().and_then(|n| acc.checked_mul(n)),
            _ => None,
        }),
        _ => None,
    }
    .ok_or("NumpyArrayWrapper shape is not a tuple of non-negative ints")?;
    if attr(attrs, "numpy_array_alignment_bytes").is_some_and(|v| !matches!(v, V::None)) {
        let pad = cur.take(1).map_err(|e| format!("array padding byte: {e}"))?[0];
        cur.take(u64::from(pad)).map_err(|e| format!("array padding: {e}"))?;
    }
    let total = count.checked_mul(itemsize).ok_or("array byte size overflows")?;
    cur.take(total).map_err(|e| format!("array data: {e}"))?;
    Ok(())
}
