//! The mount's inode table: the directory tree a mount shows, built once from the models and
//! version manifests of one vault snapshot, and never changed after.
//!
//! Layout (SECURITY.md, "Mounting"):
//!
//! ```text
//! /<model>/<N>/<path inside the model>     one directory per live version N
//! /<model>/latest -> N                      symbolic link to the highest live version
//! /<model>/<alias> -> N                     symbolic link per alias
//! /@<org>/<name>/...                        a namespaced model `org/name`, laid out as above
//! ```
//!
//! The rules make two entries of one directory impossible to confuse: names (and each part of
//! `org/name`) start with a letter or digit, so a top-level `@org` directory never meets a model
//! name; version directories are all digits and aliases never are; `latest` is always the
//! highest version, so an alias spelled `latest` is not shown (reach its version by number).
//! Entry names are the vault's own names and checked paths, served to the kernel as directory
//! entries: no host filesystem path is ever built from them. A record that breaks a rule is left
//! out and reported, never shown under another name.
//!
//! This module must never read the vault or open a chunk: it holds manifests already checked.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::manifest::Manifest;
use crate::names::{self, escape};

/// An inode number. The root is 1.
pub type Ino = u64;

/// The root directory's inode.
pub const ROOT: Ino = 1;

/// What an inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file: a file of a version.
    File,
    /// A symbolic link (`latest`, an alias) to a version directory beside it.
    Link,
}

/// One version of a model, as the tree serves it: its checked manifest and each file's chunk
/// starts (cumulative plaintext offsets).
pub struct VersionData {
    /// The manifest (signature and encoding checked when it was loaded).
    pub manifest: Manifest,
    /// For each file of the manifest, the offset of each chunk's first byte.
    pub starts: Vec<Vec<u64>>,
}

impl VersionData {
    /// Wraps a checked manifest.
    pub fn new(manifest: Manifest) -> Self {
        let starts = manifest
            .files
            .iter()
            .map(|f| {
                let mut at = 0u64;
                f.chunks
                    .iter()
                    .map(|c| {
                        let s = at;
                        at = at.saturating_add(c.len as u64);
                        s
                    })
                    .collect()
            })
            .collect();
        VersionData { manifest, starts }
    }
}

/// One model as read from the vault: name, live versions (checked) and aliases.
pub struct ModelEntry {
    /// The model's name (`name` or `org/name`).
    pub name: String,
    /// Its live versions that loaded, ascending.
    pub versions: Vec<Manifest>,
    /// Alias → version number.
    pub aliases: BTreeMap<String, u64>,
}

pub(crate) enum Body {
    Dir(BTreeMap<String, Ino>),
    File { version: Arc<VersionData>, file: usize },
    Link(String),
}

pub(crate) struct Node {
    pub parent: Ino,
    /// Unix seconds: a version's creation time (the vault's for directories above versions).
    pub mtime: u64,
    pub body: Body,
}

/// The whole tree: nodes indexed by inode − 1.
pub struct Tree {
    pub(crate) nodes: Vec<Node>,
}

/// Where a model's directory goes: `(Some(org), name)` for `org/name`, `(None, name)` for a
/// plain name. `None` when the name breaks the rule (more than one `/`, or a part that is not a
/// valid name on its own).
pub fn model_place(name: &str) -> Option<(Option<&str>, &str)> {
    // The whole name is checked (at most one '/', each side a valid name), then split.
    names::check_model_name(name).ok()?;
    Some(match name.split_once('/') {
        Some((ns, rest)) => (Some(ns), rest),
        None => (None, name),
    })
}

impl Tree {
    /// Builds the tree of `models`; every entry left out is described in the returned list.
    /// `mtime` is used for the directories above versions.
    pub fn build(models: Vec<ModelEntry>, mtime: u64) -> (Tree, Vec<String>) {
        let mut t = Tree { nodes: vec![Node { parent: ROOT, mtime, body: Body::Dir(BTreeMap::new()) }] };
        let mut problems = Vec::new();
        for m in models {
            let Some((ns, leaf)) = model_place(&m.name) else {
                problems.push(format!("model '{}' is not shown: its name breaks the naming rule", escape(&m.name)));
                continue;
            };
            let parent = match ns {
                Some(ns) => t.dir(ROOT, &format!("@{ns}"), mtime),
                None => ROOT,
            };
            if t.child(parent, leaf).is_some() {
                problems.push(format!("model '{}' is not shown: its directory is taken", escape(&m.name)));
                continue;
            }
            let dir = t.dir(parent, leaf, mtime);
            t.add_model(dir, m, &mut problems);
        }
        (t, problems)
    }

    fn add_model(&mut self, dir: Ino, m: ModelEntry, problems: &mut Vec<String>) {
        let mut shown = Vec::new();
        for man in m.versions {
            let n = man.version;
            let vdir = self.dir(dir, &n.to_string(), man.created);
            let data = Arc::new(VersionData::new(man));
            for (i, f) in data.manifest.files.iter().enumerate() {
                if let Err(e) = self.add_file(vdir, &f.path, &data, i) {
                    problems.push(format!("model '{}' version {n}: {e}", escape(&m.name)));
                }
            }
            shown.push(n);
        }
        if let Some(last) = shown.last() {
            self.push(dir, "latest", 0, Body::Link(last.to_string()));
        }
        for (alias, n) in &m.aliases {
            if alias == "latest" {
                continue;
            }
            if names::check_alias(alias).is_err() || !shown.contains(n) {
                problems.push(format!(
                    "model '{}': alias '{}' is not shown (version {n} is not shown, or the alias breaks the naming rule)",
                    escape(&m.name),
                    escape(alias)
                ));
                continue;
            }
            self.push(dir, alias, 0, Body::Link(n.to_string()));
        }
    }

    fn add_file(&mut self, vdir: Ino, path: &str, data: &Arc<VersionData>, i: usize) -> Result<(), String> {
        let parts = names::check_file_path(path).map_err(|e| e.to_string())?;
        let (leaf, dirs) = parts.split_last().ok_or("a file has an empty path")?;
        let mtime = data.manifest.created;
        let mut at = vdir;
        for d in dirs {
            at = match self.child(at, d) {
                Some(c) if matches!(self.nodes[(c - 1) as usize].body, Body::Dir(_)) => c,
                Some(_) => return Err(format!("file '{}' is not shown: '{}' is a file", escape(path), escape(d))),
                None => self.dir(at, d, mtime),
            };
        }
        if self.child(at, leaf).is_some() {
            return Err(format!("file '{}' is not shown: its name is taken", escape(path)));
        }
        self.push(at, leaf, mtime, Body::File { version: data.clone(), file: i });
        Ok(())
    }

    /// The directory `name` in `parent`, made if missing.
    fn dir(&mut self, parent: Ino, name: &str, mtime: u64) -> Ino {
        match self.child(parent, name) {
            Some(c) => c,
            None => self.push(parent, name, mtime, Body::Dir(BTreeMap::new())),
        }
    }

    fn push(&mut self, parent: Ino, name: &str, mtime: u64, body: Body) -> Ino {
        let mtime = if mtime == 0 { self.nodes[(parent - 1) as usize].mtime } else { mtime };
        self.nodes.push(Node { parent, mtime, body });
        let ino = self.nodes.len() as Ino;
        if let Body::Dir(c) = &mut self.nodes[(parent - 1) as usize].body {
            c.insert(name.to_string(), ino);
        }
        ino
    }

    pub(crate) fn node(&self, ino: Ino) -> Option<&Node> {
        ino.checked_sub(1).and_then(|i| self.nodes.get(i as usize))
    }

    /// The entry `name` of the directory `parent`.
    pub fn child(&self, parent: Ino, name: &str) -> Option<Ino> {
        match &self.node(parent)?.body {
            Body::Dir(c) => c.get(name).copied(),
            _ => None,
        }
    }

    /// The inode of a `/`-separated path from the root (`""` is the root), following no link.
    pub fn resolve(&self, path: &str) -> Option<Ino> {
        path.split('/').filter(|p| !p.is_empty()).try_fold(ROOT, |at, p| self.child(at, p))
    }

    /// Number of model directories (plain and namespaced).
    pub fn models(&self) -> usize {
        let Some(Body::Dir(top)) = self.node(ROOT).map(|n| &n.body) else { return 0 };
        top.iter()
            .map(|(name, &ino)| match (name.starts_with('@'), self.node(ino).map(|n| &n.body)) {
                (true, Some(Body::Dir(inner))) => inner.len(),
                _ => 1,
            })
            .sum()
    }

    /// Number of inodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when the tree has only the root.
    pub fn is_empty(&self) -> bool {
        self.nodes.len() == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{ChunkRef, FileEntry};

    fn man(name: &str, version: u64, paths: &[&str]) -> Manifest {
        Manifest {
            manifest_version: 1,
            vault_id: [0; 16],
            name: name.into(),
            version,
            created: 100 + version,
            revision: 0,
            updated: 0,
            description: String::new(),
            tags: BTreeMap::new(),
            metrics: BTreeMap::new(),
            files: paths
                .iter()
                .map(|p| FileEntry {
                    path: (*p).into(),
                    size: 3,
                    sha256: [0; 32],
                    chunks: vec![ChunkRef { id: [1; 32], len: 3 }],
                    format: "raw".into(),
                    tensors: Vec::new(),
                    scan: None,
                })
                .collect(),
        }
    }

    fn entry(name: &str, versions: &[u64], aliases: &[(&str, u64)]) -> ModelEntry {
        ModelEntry {
            name: name.into(),
            versions: versions.iter().map(|&v| man(name, v, &["a.bin", "sub/b.json"])).collect(),
            aliases: aliases.iter().map(|(a, v)| (a.to_string(), *v)).collect(),
        }
    }

    fn link(t: &Tree, path: &str) -> Option<String> {
        match &t.node(t.resolve(path)?)?.body {
            Body::Link(s) => Some(s.clone()),
            _ => None,
        }
    }

    #[test]
    fn layout_of_versions_aliases_latest_and_namespaces() {
        let models = vec![
            entry("bert", &[1, 3], &[("prod", 1), ("latest", 1), ("gone", 2)]),
            entry("org", &[1], &[]),
            entry("org/bert", &[2], &[]),
            entry("a/b/c", &[1], &[]),
            entry("-bad", &[1], &[]),
        ];
        let (t, problems) = Tree::build(models, 50);
        assert!(t.resolve("bert/1/a.bin").is_some());
        assert!(t.resolve("bert/3/sub/b.json").is_some());
        assert_eq!(link(&t, "bert/latest").as_deref(), Some("3"), "latest is the highest version, not the alias");
        assert_eq!(link(&t, "bert/prod").as_deref(), Some("1"));
        assert!(t.resolve("bert/gone").is_none());
        // A model named like a namespace and the namespace itself never share a directory.
        assert!(t.resolve("org/1/a.bin").is_some());
        assert!(t.resolve("@org/bert/2/a.bin").is_some());
        assert_eq!(link(&t, "@org/bert/latest").as_deref(), Some("2"));
        assert!(t.resolve("org/bert").is_none());
        // Names that break the rule are left out and reported.
        assert!(t.resolve("a").is_none() && t.resolve("@a").is_none() && t.resolve("-bad").is_none());
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("alias 'gone' is not shown")), "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("model 'a/b/c' is not shown")), "{problems:?}");
        assert_eq!(t.node(t.resolve("bert/3/a.bin").unwrap()).unwrap().mtime, 103);
    }

    #[test]
    fn clashing_file_paths_are_reported_not_merged() {
        let mut m = entry("m", &[], &[]);
        m.versions.push(man("m", 1, &["x", "x/y", "ok"]));
        let (t, problems) = Tree::build(vec![m], 0);
        assert!(t.resolve("m/1/x").is_some() && t.resolve("m/1/ok").is_some());
        assert!(t.resolve("m/1/x/y").is_none());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(model_place("org/name"), Some((Some("org"), "name")));
        assert_eq!(model_place("name"), Some((None, "name")));
        assert_eq!(model_place("org/"), None);
        assert_eq!(model_place("../x"), None);
    }
}
