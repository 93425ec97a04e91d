//! Pairing: which file of A goes with which file of B, and within a pair of tensor-format
//! files, which tensor with which (by name), sorted into added, removed, reshaped, retyped and
//! same-or-changed (the last decided by [`super::statistics::compare`]). Never reads a chunk
//! itself.

use std::collections::BTreeMap;

use super::statistics::{Source, compare};
use super::{FileStatus, TensorBrief, TensorDiff, TensorReshape, TensorRetype};
use crate::Result;
use crate::formats::tensor::TensorInfo;
use crate::manifest::{FileEntry, Manifest};
use crate::ops::reader::FileChunks;
use crate::store::chunks::ChunkRead;

/// A file of A and a file of B; `None` on one side for a file only in the other.
pub(super) type FilePair<'m> = (Option<&'m FileEntry>, Option<&'m FileEntry>);

/// Pairs the files of `ma` and `mb`: by path (A's pairs in A's path order, then B's added
/// files), or the two files whatever their names when each version has exactly one.
pub(super) fn pair_files<'m>(ma: &'m Manifest, mb: &'m Manifest) -> Vec<FilePair<'m>> {
    if ma.files.len() == 1 && mb.files.len() == 1 {
        return vec![(Some(&ma.files[0]), Some(&mb.files[0]))];
    }
    let in_b: BTreeMap<&str, &FileEntry> = mb.files.iter().map(|f| (f.path.as_str(), f)).collect();
    let in_a: BTreeMap<&str, &FileEntry> = ma.files.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut pairs: Vec<FilePair<'m>> = in_a.iter().map(|(p, f)| (Some(*f), in_b.get(p).copied())).collect();
    pairs.extend(in_b.iter().filter(|(p, _)| !in_a.contains_key(*p)).map(|(_, f)| (None, Some(*f))));
    pairs
}

/// How a pair differs: added, removed, or same when size and SHA-256 agree, else changed.
pub(super) fn file_status(pair: FilePair<'_>) -> FileStatus {
    match pair {
        (None, _) => FileStatus::Added,
        (_, None) => FileStatus::Removed,
        (Some(a), Some(b)) if a.size == b.size && a.sha256 == b.sha256 => FileStatus::Same,
        _ => FileStatus::Changed,
    }
}

/// The tensor differences between `fa` (of `ma`) and `fb` (of `mb`), tensors matched by name.
///
/// Errors: [`crate::Error::Damaged`] (a chunk of a compared tensor missing or failing
/// authentication).
pub(super) fn diff_tensors<S: ChunkRead + ?Sized>(
    src: &Source<'_, S>,
    (ma, fa): (&Manifest, &FileEntry),
    (mb, fb): (&Manifest, &FileEntry),
    bytes_decrypted: &mut u64,
) -> Result<TensorDiff> {
    let mut td = TensorDiff::default();
    let in_b: BTreeMap<&str, &TensorInfo> = fb.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let in_a: BTreeMap<&str, &TensorInfo> = fa.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let (la, lb) = (FileChunks::new(ma, fa), FileChunks::new(mb, fb));
    for ta in &fa.tensors {
        let Some(tb) = in_b.get(ta.name.as_str()) else {
            td.removed.push(brief(ta));
            continue;
        };
        if ta.dtype != tb.dtype {
            td.dtype_changed.push(TensorRetype {
                name: ta.name.clone(),
                dtype_a: ta.dtype.clone(),
                dtype_b: tb.dtype.clone(),
                shape_a: ta.shape.clone(),
                shape_b: tb.shape.clone(),
            });
        } else if ta.shape != tb.shape {
            td.reshaped.push(TensorReshape {
                name: ta.name.clone(),
                dtype: ta.dtype.clone(),
                shape_a: ta.shape.clone(),
                shape_b: tb.shape.clone(),
            });
        } else {
            match compare(src, (&la, ta), (&lb, tb), bytes_decrypted)? {
                None => td.same += 1,
                Some(c) => td.changed.push(c),
            }
        }
    }
    td.added.extend(fb.tensors.iter().filter(|t| !in_a.contains_key(t.name.as_str())).map(brief));
    Ok(td)
}

fn brief(t: &TensorInfo) -> TensorBrief {
    TensorBrief { name: t.name.clone(), dtype: t.dtype.clone(), shape: t.shape.clone() }
}
