//! Secret types: keys in locked memory, passwords, plaintext buffers.
//!
//! None of them implements `Clone`, `Serialize` or `PartialEq`; `Debug` is redacted by hand. Bytes
//! come out only through a named `expose_*` call.

use crate::locked::LockedKey;
use crate::{CryptoError, Result};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

pub use crate::locked::mlock_failures;
pub use secrecy::{ExposeSecret, SecretString};

/// A password or passphrase. Wiped on drop; never printed.
pub type Password = SecretString;

/// Plaintext bytes (secret values, decrypted payloads), wiped on drop.
pub type SecretBytes = Zeroizing<Vec<u8>>;

/// Length of every symmetric key in tresor.
pub const KEY_LEN: usize = 32;

/// A 256-bit symmetric key held in a locked page and wiped on drop.
pub struct Key(LockedKey);

impl Key {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Result<Self> {
        let mut key = LockedKey::zeroed();
        getrandom::fill(key.bytes_mut()).map_err(|_| CryptoError::Random)?;
        Ok(Self(key))
    }

    /// Moves `bytes` into a key, wiping the source.
    pub fn from_bytes(bytes: &mut [u8; KEY_LEN]) -> Self {
        let mut key = LockedKey::zeroed();
        key.bytes_mut().copy_from_slice(bytes);
        bytes.zeroize();
        Self(key)
    }

    /// Moves the first 32 bytes of a plaintext buffer into a key; `None` unless it is exactly 32.
    pub fn from_secret_bytes(bytes: SecretBytes) -> Option<Self> {
        let mut arr: Zeroizing<[u8; KEY_LEN]> = Zeroizing::new(bytes.as_slice().try_into().ok()?);
        Some(Self::from_bytes(&mut arr))
    }

    /// The key bytes. Callers hand them to a primitive and keep no copy.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        self.0.bytes()
    }

    /// Constant-time equality, for tests and for checks that two derivations agree.
    pub fn ct_eq(&self, other: &Key) -> bool {
        self.expose_secret().ct_eq(other.expose_secret()).into()
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key([REDACTED])")
    }
}

/// `N` random bytes from the operating system (nonces, salts, ids: not secret by themselves).
pub fn random_array<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|_| CryptoError::Random)?;
    Ok(out)
}

/// `n` random bytes from the operating system.
pub fn random_bytes(n: usize) -> Result<Vec<u8>> {
    let mut out = vec![0u8; n];
    getrandom::fill(&mut out).map_err(|_| CryptoError::Random)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_differ_and_debug_is_redacted() {
        let a = Key::generate().unwrap();
        let b = Key::generate().unwrap();
        assert!(!a.ct_eq(&b));
        assert!(a.ct_eq(&a));
        assert_eq!(format!("{a:?}"), "Key([REDACTED])");
    }

    #[test]
    fn from_bytes_wipes_the_source() {
        let mut src = [7u8; 32];
        let key = Key::from_bytes(&mut src);
        assert_eq!(src, [0u8; 32]);
        assert_eq!(key.expose_secret(), &[7u8; 32]);
    }

    #[test]
    fn from_secret_bytes_requires_exact_length() {
        assert!(Key::from_secret_bytes(Zeroizing::new(vec![1; 31])).is_none());
        assert!(Key::from_secret_bytes(Zeroizing::new(vec![1; 33])).is_none());
        assert!(Key::from_secret_bytes(Zeroizing::new(vec![1; 32])).is_some());
    }
}
