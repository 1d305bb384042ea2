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

/// Plaintext bytes (secret values, decrypted payloads), wiped on drop. Neither `Clone` nor
/// `PartialEq`, and `Debug` shows only the length: a copy is an explicit `to_vec()` of
/// [`SecretBytes::as_slice`] into a buffer the caller then answers for, and a comparison is
/// [`SecretBytes::ct_eq`].
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of `bytes` (wiped when this is dropped).
    pub fn new(bytes: Vec<u8>) -> SecretBytes {
        SecretBytes(Zeroizing::new(bytes))
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// Their length.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether they equal `other`, in time independent of where they differ.
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        self.0.len() == other.len() && bool::from(self.0.as_slice().ct_eq(other))
    }

    /// The wipe-on-drop buffer itself, for a caller that keeps it (a protocol frame).
    pub fn into_inner(self) -> Zeroizing<Vec<u8>> {
        self.0
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes({} bytes, redacted)", self.0.len())
    }
}

impl From<Zeroizing<Vec<u8>>> for SecretBytes {
    fn from(bytes: Zeroizing<Vec<u8>>) -> SecretBytes {
        SecretBytes(bytes)
    }
}

impl std::ops::Deref for SecretBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::DerefMut for SecretBytes {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl AsRef<[u8]> for SecretBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

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
        assert!(Key::from_secret_bytes(SecretBytes::new(vec![1; 31])).is_none());
        assert!(Key::from_secret_bytes(SecretBytes::new(vec![1; 33])).is_none());
        assert!(Key::from_secret_bytes(SecretBytes::new(vec![1; 32])).is_some());
    }
}
