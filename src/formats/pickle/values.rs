//! Symbolic values for the pickle walker.
//!
//! Owns: the value model of the symbolic stack and memo. Mutable Python
//! objects (lists, dicts, instances) are shared references
//! (`Rc<RefCell<..>>`) exactly like in the real unpickler, so a value fetched
//! back from the memo sees later mutations (this matters for joblib wrapper
//! state, which decides how many bytes joblib skips).
//!
//! Spec: CPython `Lib/pickle.py` (`_Unpickler`): memo entries alias the
//! stack objects; `load_build` updates `inst.__dict__` / `setattr`s slots.
//!
//! Limits: containers track at most [`MAX_ITEMS`] entries (further ones
//! set `overflow`, and lookups in an overflowed dict are "unknown");
//! strings, ints and identity of globals are kept; floats/bytes are not.
//! All `RefCell` accesses use `try_borrow*`, so a self-referencing
//! structure can never panic.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

pub const MAX_ITEMS: usize = 64;
/// How deep taint checks look into nested containers.
pub const TAINT_DEPTH: u32 = 4;

/// joblib wrapper classes whose BUILD makes joblib read inline array bytes.
pub const WRAPPERS: &[&str] =
    &["joblib.numpy_pickle.NumpyArrayWrapper", "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper"];

pub fn is_wrapper(class: &str) -> bool {
    WRAPPERS.contains(&class)
}

/// Tuple contents (a newtype so dropping deep nesting is iterative).
#[derive(Debug, Default)]
pub struct TupleV(pub Vec<V>);

impl std::ops::Deref for TupleV {
    type Target = Vec<V>;
    fn deref(&self) -> &Vec<V> {
        &self.0
    }
}

#[derive(Debug, Default)]
pub struct ListV {
    pub items: Vec<V>,
    pub overflow: bool,
}

#[derive(Debug, Default)]
pub struct DictV {
    pub items: Vec<(V, V)>,
    pub overflow: bool,
}

/// An instance produced by calling a global.
#[derive(Debug)]
pub struct Obj {
    pub class: Rc<str>,
    pub args: Vec<V>,
    /// Created by NEWOBJ with an empty argument tuple (no `__init__` ran).
    pub bare: bool,
    /// The call received something that may be (or make) a joblib wrapper,
    /// so the result may be a wrapper although `class` is not.
    pub maybe_wrapper: bool,
    /// Last BUILD state.
    pub state: Option<V>,
    /// Attributes accumulated by BUILDs (`__dict__.update` semantics).
    pub attrs: Vec<(Rc<str>, V)>,
}

/// Symbolic value of a stack/memo slot.
#[derive(Clone, Debug)]
pub enum V {
    Str(Rc<str>),
    Int(i128),
    Bool(bool),
    None,
    /// A value whose content is irrelevant (float, bytes, bool, set...).
    Other,
    Tuple(Rc<TupleV>),
    List(Rc<RefCell<ListV>>),
    Dict(Rc<RefCell<DictV>>),
    /// The object returned by an import (`module.qualname`).
    Global(Rc<str>),
    Obj(Rc<RefCell<Obj>>),
    /// A value the walker cannot know (persistent load, ext code, ...).
    Unknown,
}

impl V {
    pub fn new_list(items: Vec<V>) -> V {
        let mut items = items;
        let overflow = items.len() > MAX_ITEMS;
        items.truncate(MAX_ITEMS);
        let rc = Rc::new(RefCell::new(ListV { items, overflow }));
        register(Made::List(Rc::downgrade(&rc)));
        V::List(rc)
    }
    pub fn new_dict() -> V {
        let rc = Rc::new(RefCell::new(DictV::default()));
        register(Made::Dict(Rc::downgrade(&rc)));
        V::Dict(rc)
    }
}

/// A mutable container made during a walk, remembered weakly so that [`CycleBreaker`] can
/// break the reference cycles a pickle may build (a list appended to itself, say), which
/// `Rc` alone would never free.
enum Made {
    List(Weak<RefCell<ListV>>),
    Dict(Weak<RefCell<DictV>>),
    Obj(Weak<RefCell<Obj>>),
}

impl Made {
    fn alive(&self) -> bool {
        match self {
            Made::List(w) => w.strong_count() > 0,
            Made::Dict(w) => w.strong_count() > 0,
            Made::Obj(w) => w.strong_count() > 0,
        }
    }

    /// Empties the container if it still exists, handing its contents to `release`.
    fn clear(self) {
        let mut work = Vec::new();
        match self {
            Made::List(w) => {
                if let Some(rc) = w.upgrade()
                    && let Ok(mut l) = rc.try_borrow_mut()
                {
                    work.append(&mut l.items);
                }
            }
            Made::Dict(w) => {
                if let Some(rc) = w.upgrade()
                    && let Ok(mut d) = rc.try_borrow_mut()
                {
                    work.extend(std::mem::take(&mut d.items).into_iter().flat_map(|(k, x)| [k, x]));
                }
            }
            Made::Obj(w) => {
                if let Some(rc) = w.upgrade()
                    && let Ok(mut o) = rc.try_borrow_mut()
                {
                    work.append(&mut o.args);
                    work.extend(o.state.take());
                    work.extend(std::mem::take(&mut o.attrs).into_iter().map(|(_, x)| x));
                }
            }
        }
        release(work);
    }
}

thread_local! {
    static MADE: RefCell<(Vec<Made>, usize)> = const { RefCell::new((Vec::new(), 1024)) };
}

fn register(m: Made) {
    MADE.with(|r| {
        let mut r = r.borrow_mut();
        r.0.push(m);
        // Forget containers already freed, so the registry stays proportional to what is alive.
        if r.0.len() >= r.1 {
            r.0.retain(Made::alive);
            r.1 = (r.0.len() * 2).max(1024);
        }
    });
}

/// While alive, remembers every list, dict and object made by the walk; when dropped, empties
/// those still alive, which breaks any reference cycle among them. Walks may nest.
pub struct CycleBreaker {
    mark: usize,
}

impl CycleBreaker {
    /// Starts remembering.
    pub fn new() -> Self {
        MADE.with(|r| CycleBreaker { mark: r.borrow().0.len() })
    }
}

impl Drop for CycleBreaker {
    fn drop(&mut self) {
        let made: Vec<Made> = MADE.with(|r| {
            let mut r = r.borrow_mut();
            let mark = self.mark.min(r.0.len());
            r.0.split_off(mark)
        });
        for m in made {
            m.clear();
        }
    }
}

fn same_key(a: &V, b: &V) -> bool {
    match (a, b) {
        (V::Str(x), V::Str(y)) => x == y,
        (V::Int(x), V::Int(y)) => x == y,
        _ => false,
    }
}

impl V {
    pub fn tuple(items: Vec<V>) -> V {
        V::Tuple(Rc::new(TupleV(items)))
    }
}

/// Free values without recursion: a pickle can nest containers a million
/// levels deep (one TUPLE1 byte per level), which would overflow the
/// native stack with the default recursive `Drop`.
fn release(mut work: Vec<V>) {
    while let Some(v) = work.pop() {
        match v {
            V::Tuple(rc) => {
                if let Ok(mut t) = Rc::try_unwrap(rc) {
                    work.append(&mut t.0);
                }
            }
            V::List(rc) => {
                if let Ok(cell) = Rc::try_unwrap(rc) {
                    work.append(&mut cell.into_inner().items);
                }
            }
            V::Dict(rc) => {
                if let Ok(cell) = Rc::try_unwrap(rc) {
                    for (k, x) in std::mem::take(&mut cell.into_inner().items) {
                        work.push(k);
                        work.push(x);
                    }
                }
            }
            V::Obj(rc) => {
                if let Ok(cell) = Rc::try_unwrap(rc) {
                    let mut o = cell.into_inner();
                    work.append(&mut o.args);
                    work.extend(o.state.take());
                    work.extend(std::mem::take(&mut o.attrs).into_iter().map(|(_, x)| x));
                }
            }
            _ => {}
        }
    }
}

impl Drop for TupleV {
    fn drop(&mut self) {
        release(std::mem::take(&mut self.0));
    }
}
impl Drop for ListV {
    fn drop(&mut self) {
        release(std::mem::take(&mut self.items));
    }
}
impl Drop for DictV {
    fn drop(&mut self) {
        release(std::mem::take(&mut self.items).into_iter().flat_map(|(k, x)| [k, x]).collect());
    }
}
impl Drop for Obj {
    fn drop(&mut self) {
        let mut work = std::mem::take(&mut self.args);
        work.extend(self.state.take());
        work.extend(std::mem::take(&mut self.attrs).into_iter().map(|(_, x)| x));
        release(work);
    }
}

/// `dict[k] = v` on a symbolic dict (other targets are ignored, as their
/// `__setitem__` cannot matter to the scan).
pub fn dict_set(target: &V, k: V, v: V) -> Result<(), String> {
    if let V::Dict(d) = target {
        let mut d = d.try_borrow_mut().map_err(|_| "dict is being modified recursively")?;
        let simple = matches!(k, V::Str(_) | V::Int(_));
        if simple {
            if let Some(slot) = d.items.iter_mut().find(|(old, _)| same_key(old, &k)) {
                slot.1 = v;
                return Ok(());
            }
        } else {
            // Python equality of exotic keys is unknowable here.
            d.overflow = true;
        }
        if d.items.len() < MAX_ITEMS {
            d.items.push((k, v));
        } else {
            d.overflow = true;
        }
    }
    Ok(())
}

/// `list.append` / `list.extend` on a symbolic list.
pub fn list_extend(target: &V, items: Vec<V>) -> Result<(), String> {
    if let V::List(l) = target {
        let mut l = l.try_borrow_mut().map_err(|_| "list is being modified recursively")?;
        let room = MAX_ITEMS.saturating_sub(l.items.len());
        l.overflow |= items.len() > room;
        l.items.extend(items.into_iter().take(room));
    }
    Ok(())
}

/// SETITEM(S): pairs `items` into `target`.
pub fn set_items(target: &V, items: Vec<V>) -> Result<(), String> {
    if !items.len().is_multiple_of(2) {
        return Err("odd number of items for SETITEMS".into());
    }
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        dict_set(target, k, v)?;
    }
    Ok(())
}

/// Look up a string key; `Err` if the dict cannot be trusted for it.
pub fn dict_get(d: &V, key: &str) -> Result<Option<V>, String> {
    let V::Dict(d) = d else {
        return Err("not a dict".into());
    };
    let d = d.try_borrow().map_err(|_| "dict borrowed")?;
    let hit = d.items.iter().find(|(k, _)| matches!(k, V::Str(s) if &**s == key)).map(|(_, v)| v.clone());
    if hit.is_none() && d.overflow {
        return Err(format!("dict too large or with exotic keys; cannot look up {key:?}"));
    }
    Ok(hit)
}

/// Could `v` be, contain or create a joblib array wrapper? `unknown_counts`:
/// treat unknown values as possible wrappers. Overflowed containers and an
/// exhausted `budget` (nodes visited) answer "yes" (conservative).
pub fn taint(v: &V, depth: u32, unknown_counts: bool, budget: &mut u64) -> bool {
    if *budget == 0 {
        return true;
    }
    *budget -= 1;
    let mut deeper = |x: &V| depth > 0 && taint(x, depth - 1, unknown_counts, budget);
    match v {
        V::Global(g) => is_wrapper(g),
        V::Unknown => unknown_counts,
        V::Obj(o) => match o.try_borrow() {
            Ok(b) => is_wrapper(&b.class) || b.maybe_wrapper,
            Err(_) => true,
        },
        V::Tuple(t) => t.len() > MAX_ITEMS * 16 || t.iter().any(deeper),
        V::List(l) => match l.try_borrow() {
            Ok(b) => b.overflow || b.items.iter().any(deeper),
            Err(_) => true,
        },
        V::Dict(d) => match d.try_borrow() {
            Ok(b) => b.overflow || b.items.iter().any(|(k, x)| deeper(k) || deeper(x)),
            Err(_) => true,
        },
        V::Str(_) | V::Int(_) | V::Bool(_) | V::None | V::Other => false,
    }
}

/// Allow-listed callables that may return an instance of a class passed in
/// their arguments (so the result could be a joblib wrapper).
const FACTORIES: &[&str] = &[
    "copyreg._reconstructor",
    "copy_reg._reconstructor",
    "torch._utils._rebuild_from_type_v2",
    "torch._tensor._rebuild_from_type_v2",
    "numpy.random._pickle.__generator_ctor",
    "numpy.random._pickle.__bit_generator_ctor",
    "numpy.random._pickle.__randomstate_ctor",
];

/// Result of calling `callable(*args)`. `bare` = NEWOBJ with no args.
/// `wrapper_possible`: a wrapper class was imported (or an extension code
/// used) in this pickle; only then can a call's result be a wrapper.
pub fn call(callable: V, args: Vec<V>, bare: bool, wrapper_possible: bool, budget: &mut u64) -> V {
    match callable {
        V::Global(g) => {
            let known_plain = super::allowlist::is_allowed(&g, &[]) && !FACTORIES.contains(&&*g);
            let maybe_wrapper = wrapper_possible
                && !is_wrapper(&g)
                && !known_plain
                && args.iter().any(|a| taint(a, TAINT_DEPTH, true, budget));
            let mut args = args;
            args.truncate(MAX_ITEMS);
            let rc = Rc::new(RefCell::new(Obj { class: g, args, bare, maybe_wrapper, state: None, attrs: Vec::new() }));
            register(Made::Obj(Rc::downgrade(&rc)));
            V::Obj(rc)
        }
        _ => V::Unknown,
    }
}

/// Items of a tuple argument. Beyond [`MAX_ITEMS`] items an `Unknown`
/// stands for the rest, so taint checks stay conservative.
pub fn tuple_items(v: &V) -> Vec<V> {
    match v {
        V::Tuple(t) if t.len() > MAX_ITEMS => {
            t.iter().take(MAX_ITEMS).cloned().chain(std::iter::once(V::Unknown)).collect()
        }
        V::Tuple(t) => t.iter().cloned().collect(),
        other => vec![other.clone()],
    }
}
