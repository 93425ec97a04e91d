//! Passphrase → key-encryption key (KEK) with Argon2id, RFC 9106
//! (<https://www.rfc-editor.org/rfc/rfc9106>), version 0x13, 32-byte output.
//!
//! The parameters are stored in each key slot, so every slot can have its own cost. Parameters read
//! from a vault file are bounded by [`Argon2Params::check`] before use, so a hostile file cannot make
//! `unlock` allocate more than [`MAX_MEMORY_KIB`] KiB or spin for more than [`MAX_TIME_COST`] passes.

use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};

use super::SecretKey;
use crate::{Error, Result};

/// Largest memory cost accepted, in KiB (4 GiB).
pub const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
/// Largest time cost (passes) accepted.
pub const MAX_TIME_COST: u32 = 64;
/// Largest parallelism (lanes) accepted.
pub const MAX_LANES: u32 = 64;

/// Argon2id cost parameters. Defaults follow RFC 9106 §4's second recommended option
/// (m = 64 MiB, t = 3, p = 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Argon2Params {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Time cost: number of passes over memory.
    pub time_cost: u32,
    /// Degree of parallelism (lanes).
    pub lanes: u32,
}

impl Default for Argon2Params {
    fn default() -> Self {
        Argon2Params { memory_kib: 64 * 1024, time_cost: 3, lanes: 4 }
    }
}

impl Argon2Params {
    /// Checks the parameters against Argon2's own minimums and this crate's maximums.
    ///
    /// Errors: [`Error::InvalidInput`] naming the parameter and the limit.
    pub fn check(&self) -> Result<()> {
        if self.lanes == 0 || self.lanes > MAX_LANES {
            return Err(Error::InvalidInput(format!("Argon2 lanes {} out of range 1..={MAX_LANES}", self.lanes)));
        }
        if self.time_cost == 0 || self.time_cost > MAX_TIME_COST {
            return Err(Error::InvalidInput(format!(
                "Argon2 time cost {} out of range 1..={MAX_TIME_COST}",
                self.time_cost
            )));
        }
        let min_mem = 8 * self.lanes;
        if self.memory_kib < min_mem || self.memory_kib > MAX_MEMORY_KIB {
            return Err(Error::InvalidInput(format!(
                "Argon2 memory {} KiB out of range {min_mem}..={MAX_MEMORY_KIB} KiB (at least 8 KiB per lane)",
                self.memory_kib
            )));
        }
        Ok(())
    }

    /// Derives a 32-byte KEK from `passphrase` (used byte for byte, never truncated) and `salt`.
    ///
    /// Errors: [`Error::InvalidInput`] if the parameters fail [`Argon2Params::check`].
    pub fn derive_kek(&self, passphrase: &[u8], salt: &[u8]) -> Result<SecretKey> {
        self.check()?;
        let params = Params::new(self.memory_kib, self.time_cost, self.lanes, Some(32))
            .map_err(|e| Error::InvalidInput(format!("Argon2 parameters rejected: {e}")))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut out = SecretKey([0u8; 32]);
        argon
            .hash_password_into(passphrase, salt, &mut out.0)
            .map_err(|e| Error::InvalidInput(format!("Argon2 derivation failed: {e}")))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn different_passphrases_give_different_keks() {
        let p = Argon2Params { memory_kib: 64, time_cost: 1, lanes: 1 };
        let a = p.derive_kek(b"correct horse", b"0123456789abcdef").unwrap();
        let b = p.derive_kek(b"correct hors", b"0123456789abcdef").unwrap();
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn hostile_parameters_are_refused_before_allocating() {
        let p = Argon2Params { memory_kib: u32::MAX, time_cost: 1, lanes: 1 };
        let e = p.derive_kek(b"x", b"0123456789abcdef").unwrap_err().to_string();
        assert!(e.contains("out of range"), "{e}");
    }
}
