//! Keys wrapped to an X25519 public key (for sync groups' epoch keys): ephemeral-static X25519,
//! HKDF-SHA256 bound to both public keys and the caller's context, then the key-committing wrap of
//! [`crate::wrap`] with the context as associated data.
//!
//! ```text
//! ephemeral public key (32) | wrapped key (104)   = 136 bytes
//! kek = HKDF-SHA256(ikm = X25519(e, R), salt = E ‖ R, info = "tresor x25519 wrap v1" ‖ context)
//! ```
//! A shared secret of all zeros (a small-order public key) is refused on both sides.

use crate::derive::hkdf_sha256_expand;
use crate::secret::{KEY_LEN, Key};
use crate::wrap::{WRAPPED_LEN, unwrap_key, wrap_key};
use crate::{CryptoError, Result};
use std::fmt;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// Exact length of a key wrapped to a public key.
pub const SEALED_KEY_LEN: usize = 32 + WRAPPED_LEN;

/// What every key-encryption key is derived under, before the caller's context.
const LABEL: &[u8] = b"tresor x25519 wrap v1";

/// An X25519 private key, wiped on drop; neither `Clone` nor printable.
pub struct AgreementSecret(Box<StaticSecret>);

impl AgreementSecret {
    /// A fresh random key (a one-time key, or an ephemeral one).
    pub fn generate() -> Result<AgreementSecret> {
        let bytes: Zeroizing<[u8; KEY_LEN]> = Zeroizing::new(crate::random_array()?);
        Ok(AgreementSecret(Box::new(StaticSecret::from(*bytes))))
    }

    /// The key made from 32 secret bytes (a long-term key derived from the vault's root).
    pub fn from_key(key: &Key) -> AgreementSecret {
        AgreementSecret(Box::new(StaticSecret::from(*key.expose_secret())))
    }

    /// Its 32 secret bytes as a key (to be kept sealed: a member's saved state).
    pub fn to_key(&self) -> Key {
        let mut bytes = Zeroizing::new(self.0.to_bytes());
        Key::from_bytes(&mut bytes)
    }

    /// Its public key.
    pub fn public(&self) -> [u8; 32] {
        PublicKey::from(&*self.0).to_bytes()
    }

    /// The raw X25519 secret shared with `other` (for [`crate::koi`]'s static exchange only), or
    /// an error for a non-contributory one.
    pub(crate) fn shared(&self, other: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>> {
        let shared = self.0.diffie_hellman(&PublicKey::from(*other));
        if !shared.was_contributory() {
            return Err(CryptoError::Decrypt);
        }
        Ok(Zeroizing::new(*shared.as_bytes()))
    }

    /// The key-encryption key shared with `other`, or an error for a non-contributory exchange.
    fn kek(
        &self,
        ephemeral: &[u8; 32],
        recipient: &[u8; 32],
        other: &[u8; 32],
        context: &[u8],
    ) -> Result<Key> {
        let shared = self.0.diffie_hellman(&PublicKey::from(*other));
        if !shared.was_contributory() {
            return Err(CryptoError::Decrypt);
        }
        let salt = [ephemeral.as_slice(), recipient].concat();
        let info = [LABEL, context].concat();
        let mut kek = Zeroizing::new([0u8; KEY_LEN]);
        hkdf_sha256_expand(shared.as_bytes(), &salt, &info, kek.as_mut_slice())?;
        Ok(Key::from_bytes(&mut kek))
    }
}

impl fmt::Debug for AgreementSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgreementSecret(public {}, private redacted)", hex_short(&self.public()))
    }
}

fn hex_short(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Whether `public` is a key a wrap can be made to: not of small order (its exchange with any
/// private key would be all zeros, a key anyone knows).
pub fn is_contributory(public: &[u8; 32]) -> bool {
    // Clamping clears the cofactor, so any fixed scalar tells: the result depends only on the
    // point's order, not on the (public) scalar used.
    StaticSecret::from([0x55; 32]).diffie_hellman(&PublicKey::from(*public)).was_contributory()
}

/// `key` wrapped to the holder of `recipient`'s private key, bound to `context`.
pub fn wrap_to(recipient: &[u8; 32], context: &[u8], key: &Key) -> Result<[u8; SEALED_KEY_LEN]> {
    let ephemeral = AgreementSecret::generate()?;
    let ephemeral_public = ephemeral.public();
    let kek = ephemeral.kek(&ephemeral_public, recipient, recipient, context)?;
    let mut out = [0u8; SEALED_KEY_LEN];
    out[..32].copy_from_slice(&ephemeral_public);
    out[32..].copy_from_slice(&wrap_key(&kek, context, key)?);
    Ok(out)
}

/// The key in `sealed`, wrapped by [`wrap_to`] to `secret`'s public key under `context`. Any
/// failure is [`CryptoError::Decrypt`].
pub fn unwrap_with(secret: &AgreementSecret, context: &[u8], sealed: &[u8]) -> Result<Key> {
    if sealed.len() != SEALED_KEY_LEN {
        return Err(CryptoError::Decrypt);
    }
    let (ephemeral, wrapped) = sealed.split_at(32);
    let ephemeral: [u8; 32] = ephemeral.try_into().map_err(|_| CryptoError::Decrypt)?;
    let kek = secret.kek(&ephemeral, &secret.public(), &ephemeral, context)?;
    unwrap_key(&kek, context, wrapped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h32(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// RFC 7748 §6.1: Alice's and Bob's keys and their shared secret, through the crate as used.
    #[test]
    fn rfc7748_diffie_hellman_vector() {
        let alice = AgreementSecret(Box::new(StaticSecret::from(h32(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ))));
        let bob = AgreementSecret(Box::new(StaticSecret::from(h32(
            "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        ))));
        assert_eq!(alice.public(), h32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"));
        assert_eq!(bob.public(), h32("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"));
        let shared = alice.0.diffie_hellman(&PublicKey::from(bob.public()));
        assert_eq!(
            shared.as_bytes(),
            &h32("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
        );
    }

    #[test]
    fn a_wrapped_key_opens_for_its_recipient_and_context_only() {
        let recipient = AgreementSecret::generate().unwrap();
        let key = Key::generate().unwrap();
        assert!(is_contributory(&recipient.public()));
        let sealed = wrap_to(&recipient.public(), b"group 1 epoch 2 member 3", &key).unwrap();
        let opened = unwrap_with(&recipient, b"group 1 epoch 2 member 3", &sealed).unwrap();
        assert!(opened.ct_eq(&key));
        assert!(unwrap_with(&recipient, b"group 1 epoch 2 member 4", &sealed).is_err());
        assert!(
            unwrap_with(&AgreementSecret::generate().unwrap(), b"group 1 epoch 2 member 3", &sealed).is_err()
        );
        for i in 0..SEALED_KEY_LEN {
            let mut bad = sealed;
            bad[i] ^= 1;
            assert!(unwrap_with(&recipient, b"group 1 epoch 2 member 3", &bad).is_err(), "byte {i}");
        }
        assert!(unwrap_with(&recipient, b"group 1 epoch 2 member 3", &sealed[1..]).is_err());
    }

    #[test]
    fn small_order_keys_are_refused_on_both_sides() {
        let key = Key::generate().unwrap();
        // The identity point and a point of order 8 (RFC 7748 §5 lists the low-order points).
        for low in [[0u8; 32], h32("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")] {
            assert!(!is_contributory(&low));
            assert!(wrap_to(&low, b"c", &key).is_err());
            let recipient = AgreementSecret::generate().unwrap();
            let mut sealed = wrap_to(&recipient.public(), b"c", &key).unwrap();
            sealed[..32].copy_from_slice(&low);
            assert!(unwrap_with(&recipient, b"c", &sealed).is_err());
        }
    }
}
