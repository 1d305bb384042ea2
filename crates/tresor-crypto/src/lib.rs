//! tresor's cryptographic core.
//!
//! Everything here is pure computation over bytes: no I/O, no async, no other tresor crate.
//! The pieces, from the password down:
//!
//! - [`kdf`]: Argon2id with parameters checked against a floor and a ceiling *before* it runs;
//! - [`wrap`]: key wrapping with a key commitment, for password slots and epoch keys;
//! - [`agree`]: keys wrapped to an X25519 public key (sync groups' epoch keys);
//! - [`cell`]: the fixed-size cells sync groups exchange through a relay;
//! - [`koi`]: the KOI-net vault-sync wire format, for the compatibility mode only (weaker);
//! - [`derive`](mod@derive): HKDF-SHA256 per-purpose keys, HMAC chains and SHA-256 object hashes;
//! - [`envelope`]: XChaCha20-Poly1305 envelopes whose associated data binds vault, role, object,
//!   epoch and format version, over compressed and padded plaintext ([`payload`], [`pad`]);
//! - [`secret`]: the secret types (keys in locked memory, passwords, plaintext buffers);
//! - [`phrase`]: BIP39 recovery phrases (the root secret as 24 words) and BIP39 seeds;
//! - [`slip10`]: SLIP-0010 Ed25519 identities from the seed, under tresor's purpose `m/74'`;
//! - [`transit`]: encryption as a service under named keys derived from the root secret, in a
//!   versioned, self-describing format (XChaCha20-Poly1305, or AES-256-GCM with per-message keys).
//!
//! Every cryptographic failure is the one [`CryptoError::Decrypt`] (in transit,
//! [`transit::TransitError::Decrypt`]): a caller learns nothing it could use as an oracle.
#![deny(missing_docs)]

pub mod agree;
pub mod cell;
pub mod derive;
pub mod envelope;
pub mod kdf;
pub mod koi;
mod locked;
pub mod pad;
pub mod payload;
pub mod phrase;
pub mod secret;
pub mod slip10;
pub mod transit;
pub mod wrap;

pub use derive::{Purpose, derive_key, hash, mac, verify_mac};
pub use envelope::{Context, open, seal};
pub use kdf::{KdfParams, derive_kek};
pub use phrase::{Language, Phrase, PhraseError};
pub use secret::{Key, Password, SecretBytes, random_array, random_bytes};

/// The errors of this crate. Deliberately coarse: detail would be an oracle.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CryptoError {
    /// Authentication failed: wrong key, tampered bytes, wrong context, or malformed framing.
    #[error("decryption failed")]
    Decrypt,
    /// KDF parameters outside the accepted range; nothing was computed.
    #[error("key derivation parameters out of range")]
    KdfParams,
    /// The operating system's random number generator failed; nothing was sealed.
    #[error("the system random number generator failed")]
    Random,
    /// A plaintext too large for the envelope format.
    #[error("plaintext too large ({0} bytes)")]
    TooLarge(usize),
}

/// Result alias for this crate.
pub type Result<T, E = CryptoError> = std::result::Result<T, E>;
