//! The vault fingerprint: a short public digest of a vault's root secret that people compare.
//!
//! `HMAC-SHA256(HKDF(root, vault id, "tresor/v1/fingerprint"), "tresor vault fingerprint" | vault
//! id)`, its first 16 bytes, shown as eight groups of four hex digits
//! (`3f9a-21bc-…`). Only the holder of the root can compute it, and nobody can find another root
//! with the same fingerprint (a 128-bit second preimage), so it names one vault, and one root of
//! it: `init` and `status` show it, `tresor trust FINGERPRINT` pins it before first use, and every
//! unlock checks the unwrapped root against the fingerprint pinned for its location before it
//! reads anything more (see `vault.rs`): a forged key file whose slot a guessed password opens
//! fails exactly like a wrong password.

use crate::roles::RootKey;
use subtle::ConstantTimeEq;
use tresor_crypto::{Purpose, derive_key, mac};

/// Bytes of a fingerprint.
pub const FINGERPRINT_LEN: usize = 16;

/// A vault fingerprint (see the module doc). Public: `Debug`, `Display` and parsing are fine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint([u8; FINGERPRINT_LEN]);

impl Fingerprint {
    /// The fingerprint of `root` in the vault `vault_id`.
    pub fn of(root: &RootKey, vault_id: &[u8; 16]) -> Fingerprint {
        let key = derive_key(root.key(), vault_id, Purpose::Fingerprint);
        let full = mac(&key, &[b"tresor vault fingerprint", vault_id]);
        let mut out = [0u8; FINGERPRINT_LEN];
        out.copy_from_slice(&full[..FINGERPRINT_LEN]);
        Fingerprint(out)
    }

    /// Whether `root` has this fingerprint (compared in constant time).
    pub fn matches(&self, root: &RootKey, vault_id: &[u8; 16]) -> bool {
        Fingerprint::of(root, vault_id).0.ct_eq(&self.0).into()
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; FINGERPRINT_LEN] {
        &self.0
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex = hex::encode(self.0);
        for (i, group) in hex.as_bytes().chunks(4).enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            f.write_str(std::str::from_utf8(group).map_err(|_| std::fmt::Error)?)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = String;

    /// Hex digits in any case, with or without `-`, `:` or spaces between them.
    fn from_str(s: &str) -> Result<Fingerprint, String> {
        let digits: String = s.chars().filter(|c| !matches!(c, '-' | ':' | ' ')).collect();
        let mut out = [0u8; FINGERPRINT_LEN];
        match hex::decode_to_slice(digits.to_ascii_lowercase(), &mut out) {
            Ok(()) => Ok(Fingerprint(out)),
            Err(_) => Err(format!(
                "not a vault fingerprint: expected {} hex digits (as a vault's status shows them, e.g. 3f9a-21bc-...)",
                FINGERPRINT_LEN * 2
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_parsed_and_bound_to_root_and_vault() {
        let root = RootKey::generate().unwrap();
        let fp = Fingerprint::of(&root, &[1; 16]);
        let shown = fp.to_string();
        assert_eq!(shown.len(), 39);
        assert_eq!(shown.parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(shown.to_uppercase().replace('-', " ").parse::<Fingerprint>().unwrap(), fp);
        assert!(fp.matches(&root, &[1; 16]));
        assert!(!fp.matches(&root, &[2; 16]), "another vault id");
        assert!(!fp.matches(&RootKey::generate().unwrap(), &[1; 16]), "another root");
    }

    #[test]
    fn fail_malformed_fingerprints() {
        for bad in ["", "3f9a", "zz9a-21bc-0000-0000-0000-0000-0000-0000", &"0".repeat(34)] {
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad}");
        }
    }
}
