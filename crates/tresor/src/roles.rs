//! One type per key role: a key made for one job cannot be handed to a function that does
//! another (the root secret where an epoch key belongs, an epoch key where the shield belongs).
//!
//! Each wraps a [`Key`] (a locked page, wiped on drop) and, like it, is neither `Clone` nor
//! `Serialize`, and its `Debug` shows nothing of the key. This crate borrows the inner key to
//! hand it to a primitive; anyone else only gets it by giving up the role (`into_key`).

use crate::error::Result;
use std::fmt;
use tresor_crypto::Key;

macro_rules! key_role {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name(Key);

        impl $name {
            /// A fresh key for this role from the operating system's random number generator.
            pub fn generate() -> Result<Self> {
                Ok(Self(Key::generate()?))
            }

            /// Takes `key` (derived or unwrapped for this role) as this role's key.
            pub(crate) fn from_key(key: Key) -> Self {
                Self(key)
            }

            /// The key itself, for a primitive.
            pub(crate) fn key(&self) -> &Key {
                &self.0
            }

            /// The key itself, out of its role: for a caller that must hand it to a primitive
            /// directly (the tests that play an attacker holding it).
            pub fn into_key(self) -> Key {
                self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([REDACTED])"))
            }
        }
    };
}

key_role!(
    /// The vault's root secret: the key file's slots wrap it, its fingerprint names the vault,
    /// and every per-purpose key is derived from it (ARCHITECTURE.md, "Keys").
    RootKey
);
key_role!(
    /// The shield, derived from the root: wraps the epoch keys (`epoch/<n>` objects).
    ShieldKey
);
key_role!(
    /// The data key of one epoch: seals the values written in it; destroyed with the epoch.
    EpochKey
);
key_role!(
    /// Derived from the root: seals index snapshots.
    SnapshotKey
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_the_role_and_nothing_of_the_key() {
        let key = EpochKey::generate().unwrap();
        let shown = format!("{key:?}");
        assert_eq!(shown, "EpochKey([REDACTED])");
        assert!(!shown.contains(&hex::encode(key.key().expose_secret())));
    }
}
