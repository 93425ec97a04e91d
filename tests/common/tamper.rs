//! Hand-made edits to a vault file through redb, as someone who holds the file but not the
//! passphrase would make them: read a table's rows, replace or delete records, move records
//! between vaults. The one place the tests open a vault file with redb directly. It must never
//! go through the library (the library is what the edits are meant to fool) and never unwrap
//! silently past a missing record: every helper panics with the table it was working on.

use std::path::Path;

use redb::{Key, ReadOnlyTable, ReadableDatabase, Value};
/// The table type and the traits a closure given to [`edit`] or [`read`] needs (`get`, `iter`,
/// `len`), and the table definitions' type.
pub use redb::{ReadableTable, ReadableTableMetadata, Table, TableDefinition};

fn open(path: &Path) -> redb::Database {
    redb::Database::open(path).unwrap_or_else(|e| panic!("redb open {}: {e}", path.display()))
}

/// Runs `f` on the table `def` of the vault file at `path` in one write transaction, commits
/// it, and returns what `f` returned.
pub fn edit<K: Key + 'static, V: Value + 'static, R>(
    path: &Path,
    def: TableDefinition<K, V>,
    f: impl FnOnce(&mut Table<K, V>) -> R,
) -> R {
    let db = open(path);
    let tx = db.begin_write().unwrap();
    let r = {
        let mut t = tx.open_table(def).unwrap_or_else(|e| panic!("open table {def}: {e}"));
        f(&mut t)
    };
    tx.commit().unwrap();
    r
}

/// Runs `f` on the table `def` of the vault file at `path` in a read transaction.
pub fn read<K: Key + 'static, V: Value + 'static, R>(
    path: &Path,
    def: TableDefinition<K, V>,
    f: impl FnOnce(&ReadOnlyTable<K, V>) -> R,
) -> R {
    let db = open(path);
    let rx = db.begin_read().unwrap();
    let t = rx.open_table(def).unwrap_or_else(|e| panic!("open table {def}: {e}"));
    f(&t)
}

/// Every row of a table with byte keys and byte values, as (key, value), in key order.
pub fn rows<K: Key + 'static>(path: &Path, def: TableDefinition<K, &'static [u8]>) -> Vec<(Vec<u8>, Vec<u8>)>
where
    for<'a> K::SelfType<'a>: AsRef<[u8]>,
{
    read(path, def, |t| {
        t.iter().unwrap().map(|r| r.unwrap()).map(|(k, v)| (k.value().as_ref().to_vec(), v.value().to_vec())).collect()
    })
}

/// Every value of a table with byte values, in key order.
pub fn values<K: Key + 'static>(path: &Path, def: TableDefinition<K, &'static [u8]>) -> Vec<Vec<u8>> {
    read(path, def, |t| t.iter().unwrap().map(|r| r.unwrap().1.value().to_vec()).collect())
}

/// Every key of a table keyed by `N` bytes, in key order.
pub fn keys<const N: usize, V: Value + 'static>(
    path: &Path,
    def: TableDefinition<&'static [u8; N], V>,
) -> Vec<[u8; N]> {
    read(path, def, |t| t.iter().unwrap().map(|r| *r.unwrap().0.value()).collect())
}

/// Inserts (or replaces) `rows` in a table keyed by `N` bytes, in one transaction.
pub fn put_rows<const N: usize>(
    path: &Path,
    def: TableDefinition<&'static [u8; N], &'static [u8]>,
    rows: &[([u8; N], Vec<u8>)],
) {
    edit(path, def, |t| {
        for (k, v) in rows {
            t.insert(k, v.as_slice()).unwrap();
        }
    })
}

/// Deletes every row of a table keyed by `N` bytes whose key `pick` selects; returns how many.
pub fn remove_where<const N: usize, V: Value + 'static>(
    path: &Path,
    def: TableDefinition<&'static [u8; N], V>,
    pick: impl Fn(&[u8; N]) -> bool,
) -> usize {
    edit(path, def, |t| {
        let ks: Vec<[u8; N]> = t.iter().unwrap().map(|r| *r.unwrap().0.value()).collect();
        let gone: Vec<&[u8; N]> = ks.iter().filter(|k| pick(k)).collect();
        for k in &gone {
            t.remove(*k).unwrap();
        }
        gone.len()
    })
}

/// How many rows the table `def` holds.
pub fn len<K: Key + 'static, V: Value + 'static>(path: &Path, def: TableDefinition<K, V>) -> u64 {
    read(path, def, |t| t.len().unwrap())
}

/// The stored (sealed) value of the chunk `id`.
pub fn chunk_value(path: &Path, id: &[u8; 32]) -> Vec<u8> {
    read(path, crate::common::tables::CHUNKS, |t| {
        t.get(id).unwrap().unwrap_or_else(|| panic!("no chunk {id:02x?}")).value().to_vec()
    })
}

/// The names of the tables the vault file at `path` holds, sorted (empty tables included).
pub fn table_names(path: &Path) -> Vec<String> {
    use redb::TableHandle;
    let db = open(path);
    let rx = db.begin_read().unwrap();
    let mut names: Vec<String> = rx.list_tables().unwrap().map(|t| t.name().to_string()).collect();
    names.sort();
    names
}
