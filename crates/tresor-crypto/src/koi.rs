//! The KOI-net vault-sync wire format, for tresor's compatibility mode only (ARCHITECTURE.md,
//! "Sharing and sync through a relay", **KOI-net compatibility**): two peers' static X25519 keys,
//! `key = HKDF-SHA256(ikm = X25519, no salt, info = "koi-vault-sync:" ‖ peer id)`, and each
//! message `nonce (12, random) ‖ AES-256-GCM ciphertext ‖ tag (16)` over a JSON payload, with
//! nothing bound as associated data.
//!
//! Weaker than tresor's own sync, on purpose and documented: static keys (no forward secrecy),
//! nothing binds a message to its place (the payload's own counter is what refuses replays, one
//! layer up), the sizes show, and random 96-bit nonces bound one key to 2^32 messages (refused
//! beyond). There is no plaintext form: a message that does not open is refused.

use crate::agree::AgreementSecret;
use crate::derive::hkdf_sha256;
use crate::secret::{Key, SecretBytes};
use crate::{CryptoError, Result};
use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit};

/// What the HKDF info starts with, before the peer id.
pub const INFO_PREFIX: &[u8] = b"koi-vault-sync:";
/// Bytes of the nonce in front of every message.
pub const NONCE_LEN: usize = 12;
/// Bytes of the tag at the end of every message.
pub const TAG_LEN: usize = 16;
/// Most messages sealed under one key (random 96-bit nonces: beyond, a repeat grows likely).
pub const MAX_MESSAGES: u64 = 1 << 32;

/// One peer's channel to another (see the module documentation).
pub struct KoiChannel {
    key: Key,
    sealed: u64,
}

impl KoiChannel {
    /// The channel between `mine` and the peer whose public key is `theirs`, keyed with
    /// `peer_id` as the format names it. A small-order public key is refused.
    pub fn new(mine: &AgreementSecret, theirs: &[u8; 32], peer_id: &str) -> Result<KoiChannel> {
        let shared = mine.shared(theirs)?;
        let info = [INFO_PREFIX, peer_id.as_bytes()].concat();
        // HKDF without a salt is HKDF with HashLen zero bytes (RFC 5869), which an empty HMAC
        // key equals.
        Ok(KoiChannel { key: hkdf_sha256(shared.as_slice(), b"", &info), sealed: 0 })
    }

    /// `payload` (the JSON text) sealed as one message.
    pub fn seal(&mut self, payload: &[u8]) -> Result<Vec<u8>> {
        if self.sealed >= MAX_MESSAGES {
            return Err(CryptoError::TooLarge(payload.len()));
        }
        let nonce: [u8; NONCE_LEN] = crate::random_array()?;
        let cipher = Aes256Gcm::new_from_slice(self.key.expose_secret()).map_err(|_| CryptoError::Decrypt)?;
        let sealed =
            cipher.encrypt(&aes_gcm::Nonce::from(nonce), payload).map_err(|_| CryptoError::Decrypt)?;
        self.sealed += 1;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    /// The payload of one message; anything that does not open is [`CryptoError::Decrypt`].
    pub fn open(&self, message: &[u8]) -> Result<SecretBytes> {
        if message.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, sealed) = message.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Decrypt)?;
        let cipher = Aes256Gcm::new_from_slice(self.key.expose_secret()).map_err(|_| CryptoError::Decrypt)?;
        let plain = cipher.decrypt(&aes_gcm::Nonce::from(nonce), sealed).map_err(|_| CryptoError::Decrypt)?;
        Ok(SecretBytes::new(plain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (KoiChannel, KoiChannel) {
        let (a, b) = (AgreementSecret::generate().unwrap(), AgreementSecret::generate().unwrap());
        (
            KoiChannel::new(&a, &b.public(), "orn:koi-net.node:b").unwrap(),
            KoiChannel::new(&b, &a.public(), "orn:koi-net.node:b").unwrap(),
        )
    }

    #[test]
    fn a_payload_crosses_and_anything_else_is_refused() {
        let (mut a, b) = pair();
        let message = a.seal(br#"{"op":"put","path":"db/pw","counter":1}"#).unwrap();
        assert_eq!(message.len(), NONCE_LEN + 39 + TAG_LEN);
        assert_eq!(b.open(&message).unwrap().as_slice(), br#"{"op":"put","path":"db/pw","counter":1}"#);
        // Every changed byte, a truncation, a plaintext: refused.
        for at in 0..message.len() {
            let mut bad = message.clone();
            bad[at] ^= 1;
            assert!(b.open(&bad).is_err(), "byte {at}");
        }
        assert!(b.open(&message[..message.len() - 1]).is_err());
        assert!(b.open(br#"{"op":"put","path":"db/pw","counter":1}"#).is_err(), "a plaintext was taken");
        assert!(b.open(&[0; NONCE_LEN + TAG_LEN - 1]).is_err());
        // Two seals of one payload differ (random nonces).
        assert_ne!(a.seal(b"{}").unwrap(), a.seal(b"{}").unwrap());
    }

    #[test]
    fn another_peer_id_or_key_opens_nothing_and_small_order_keys_are_refused() {
        let (a, b, c) = (
            AgreementSecret::generate().unwrap(),
            AgreementSecret::generate().unwrap(),
            AgreementSecret::generate().unwrap(),
        );
        let mut ab = KoiChannel::new(&a, &b.public(), "peer-b").unwrap();
        let message = ab.seal(b"{}").unwrap();
        assert!(KoiChannel::new(&b, &a.public(), "peer-x").unwrap().open(&message).is_err());
        assert!(KoiChannel::new(&c, &a.public(), "peer-b").unwrap().open(&message).is_err());
        assert!(KoiChannel::new(&a, &[0; 32], "peer-b").is_err());
    }
}
