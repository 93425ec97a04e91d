//! The vault's own pickle allow-list extension (`mvault allow add|list|remove`): exact
//! `module.qualname` globals that every `put` into this vault accepts in addition to the built-in
//! allow-list (see [`crate::formats::pickle`]). Stored sealed in the `meta` table under `allow`.

use crate::log::Op;
use serde::{Deserialize, Serialize};

use crate::store::{self, RecordRead, Table};
use crate::vault::{Unlocked, Vault};
use crate::{Error, Result};

/// The sealed record behind the per-vault allow-list.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AllowRecord {
    /// Exact `module.qualname` globals, sorted, without duplicates.
    pub globals: Vec<String>,
}

/// Checks that `g` is an exact `module.qualname`: dot-separated Python identifiers, at least
/// two parts, at most 256 bytes. Wildcards and whole modules are refused by construction.
///
/// Errors: [`Error::InvalidInput`] saying what is wrong.
pub fn check_global(g: &str) -> Result<()> {
    let ident = |p: &str| {
        !p.is_empty()
            && p.chars().next().is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
            && p.chars().all(|c| c == '_' || c.is_ascii_alphanumeric())
    };
    let parts: Vec<&str> = g.split('.').collect();
    if g.len() > 256 || parts.len() < 2 || !parts.iter().all(|p| ident(p)) {
        return Err(Error::InvalidInput(format!(
            "'{}' is not an exact global: give module.qualname, e.g. collections.OrderedDict (whole modules and wildcards are not accepted)",
            crate::names::escape(g)
        )));
    }
    Ok(())
}

impl Vault<Unlocked> {
    /// The globals this vault's puts accept beyond the built-in allow-list.
    pub fn allow_list(&self) -> Result<Vec<String>> {
        let rx = store::read(&self.db)?;
        rx.require(Table::Meta, "reading the allow-list")?;
        match rx.meta("allow")? {
            Some(v) => Ok(self.open_meta::<AllowRecord>(Table::Meta, b"allow", "allow-list record", &v)?.globals),
            None => Ok(Vec::new()),
        }
    }

    fn write_allow(&self, globals: Vec<String>) -> Result<()> {
        let mut txn = self.write(Op::Allow)?;
        let v = txn.seal_meta(Table::Meta, b"allow", &AllowRecord { globals })?;
        txn.put_plain_meta("allow", &v)?;
        txn.commit()
    }

    /// Adds `global` to this vault's allow-list.
    ///
    /// Errors: [`Error::InvalidInput`] for a global that is not exact.
    pub fn allow_add(&self, global: &str) -> Result<()> {
        check_global(global)?;
        let mut g = self.allow_list()?;
        if !g.iter().any(|x| x == global) {
            g.push(global.to_string());
            g.sort();
        }
        self.write_allow(g)
    }

    /// Removes `global` from this vault's allow-list.
    ///
    /// Errors: [`Error::NotFound`] if it is not there.
    pub fn allow_remove(&self, global: &str) -> Result<()> {
        let mut g = self.allow_list()?;
        let before = g.len();
        g.retain(|x| x != global);
        if g.len() == before {
            return Err(Error::NotFound(format!(
                "'{}' is not on this vault's allow-list",
                crate::names::escape(global)
            ))
            .with_remedy(crate::Remedy::ListAllowed));
        }
        self.write_allow(g)
    }
}
