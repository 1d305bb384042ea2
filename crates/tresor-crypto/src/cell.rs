//! Fixed-size cells: what a sync relay stores (ARCHITECTURE.md, "Sharing and sync through a
//! relay"). Every cell is [`CELL_LEN`] bytes, `nonce ‖ XChaCha20-Poly1305 ciphertext ‖ tag`, over
//! exactly [`INNER_LEN`] bytes of plaintext, so a cell says nothing of what it carries; the
//! associated data (group, epoch, mailbox) binds it to its place.

use crate::secret::Key;
use crate::{CryptoError, Result};
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

/// Bytes of a cell.
pub const CELL_LEN: usize = 1024;
/// Nonce bytes at the start of a cell.
const NONCE_LEN: usize = 24;
/// Tag bytes at the end of a cell.
const TAG_LEN: usize = 16;
/// Plaintext bytes a cell carries.
pub const INNER_LEN: usize = CELL_LEN - NONCE_LEN - TAG_LEN;

/// One sealed cell.
pub type Cell = [u8; CELL_LEN];

fn cipher(key: &Key) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new_from_slice(key.expose_secret())
        .unwrap_or_else(|_| unreachable!("keys are 32 bytes"))
}

/// Seals `inner` under `key` with associated data `aad`, under a fresh random nonce.
pub fn seal(key: &Key, aad: &[u8], inner: &[u8; INNER_LEN]) -> Result<Cell> {
    let mut cell = [0u8; CELL_LEN];
    let nonce: [u8; NONCE_LEN] = crate::random_array()?;
    let (head, rest) = cell.split_at_mut(NONCE_LEN);
    let (body, tag_out) = rest.split_at_mut(INNER_LEN);
    head.copy_from_slice(&nonce);
    body.copy_from_slice(inner);
    let tag = cipher(key)
        .encrypt_inout_detached(&XNonce::from(nonce), aad, body.into())
        .map_err(|_| CryptoError::Decrypt)?;
    tag_out.copy_from_slice(&tag);
    Ok(cell)
}

/// Opens `cell` (which must be exactly [`CELL_LEN`] bytes) sealed under `key` with `aad`: its
/// plaintext, or [`CryptoError::Decrypt`] for any other key, place or change.
pub fn open(key: &Key, aad: &[u8], cell: &[u8]) -> Result<Zeroizing<[u8; INNER_LEN]>> {
    let cell: &Cell = cell.try_into().map_err(|_| CryptoError::Decrypt)?;
    let (head, rest) = cell.split_at(NONCE_LEN);
    let (body, tag) = rest.split_at(INNER_LEN);
    let nonce: [u8; NONCE_LEN] = head.try_into().map_err(|_| CryptoError::Decrypt)?;
    let tag = Tag::try_from(tag).map_err(|_| CryptoError::Decrypt)?;
    let mut inner = Zeroizing::new([0u8; INNER_LEN]);
    inner.copy_from_slice(body);
    cipher(key)
        .decrypt_inout_detached(&XNonce::from(nonce), aad, inner.as_mut_slice().into(), &tag)
        .map_err(|_| CryptoError::Decrypt)?;
    Ok(inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn inner(fill: u8) -> [u8; INNER_LEN] {
        [fill; INNER_LEN]
    }

    #[test]
    fn a_cell_opens_with_its_key_and_place_only() {
        let (key, other) = (Key::generate().unwrap(), Key::generate().unwrap());
        let cell = seal(&key, b"group 1 epoch 2", &inner(7)).unwrap();
        assert_eq!(cell.len(), CELL_LEN);
        assert_eq!(open(&key, b"group 1 epoch 2", &cell).unwrap().as_slice(), inner(7).as_slice());
        assert!(open(&other, b"group 1 epoch 2", &cell).is_err(), "another key");
        assert!(open(&key, b"group 1 epoch 3", &cell).is_err(), "another place");
        assert!(open(&key, b"group 1 epoch 2", &cell[..CELL_LEN - 1]).is_err(), "cut");
        let again = seal(&key, b"group 1 epoch 2", &inner(7)).unwrap();
        assert_ne!(cell, again, "a fresh nonce each time: equal contents do not show");
    }

    #[test]
    fn known_answer_from_the_raw_construction() {
        // The cell is the raw XChaCha20-Poly1305 of the inner bytes, framed nonce ‖ ct ‖ tag
        // (the raw function is checked against the draft's vectors in `envelope`).
        let key = Key::generate().unwrap();
        let cell = seal(&key, b"ad", &inner(1)).unwrap();
        let nonce: [u8; NONCE_LEN] = cell[..NONCE_LEN].try_into().unwrap();
        let raw = crate::envelope::xchacha20poly1305_raw(key.expose_secret(), &nonce, b"ad", &inner(1), true)
            .unwrap();
        assert_eq!(&cell[NONCE_LEN..], raw.as_slice());
    }

    proptest! {
        #[test]
        fn any_change_to_any_byte_is_refused(index in 0..CELL_LEN, flip in 1u8..=255) {
            let key = Key::generate().unwrap();
            let mut cell = seal(&key, b"place", &inner(3)).unwrap();
            cell[index] ^= flip;
            prop_assert!(open(&key, b"place", &cell).is_err());
        }
    }
}
