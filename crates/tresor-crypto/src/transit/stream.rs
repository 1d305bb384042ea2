//! Streamed transit ciphertexts (format version 2): files of any size in constant memory.
//!
//! Version 1 seals a whole message at once, so a caller and the key holder each hold all of it
//! (at most [`super::MAX_PLAINTEXT`]). Version 2 cuts the plaintext into segments and seals each
//! with the STREAM construction (Hoang, Reyhanitabar, Rogaway and Vizár, 2015; age uses it
//! too): a per-message key, a segment counter and a last-segment flag in the nonce. Reordered,
//! dropped, repeated or appended segments and a truncation at any point fail to open.
//!
//! ```text
//! magic "TRSRTX" (6) | version (1) = 2 | algorithm (1) | name length n (1) | name (n) | salt (32)
//!     | segment 0 | segment 1 | … | last segment
//! segment: ciphertext of SEGMENT_LEN plaintext bytes (the last: 0 to SEGMENT_LEN) | tag (16)
//! ```
//!
//! - Everything before the first segment is the *header*; every segment's associated data is
//!   `header || vault id`, as in version 1.
//! - `message key = HKDF-SHA256(ikm = named key, salt, info = "tresor/v2/transit/stream")`: a
//!   random 256-bit salt per message, so a message key seals one message only and the nonces can
//!   be counters. The info differs from version 1's per-message key, so no salt ever gives a key
//!   of the other format.
//! - Nonce of segment i: zeros, then i as 8 bytes big-endian, then 1 for the last segment, else 0
//!   (24 bytes for XChaCha20-Poly1305, 12 for AES-256-GCM).
//! - Every segment but the last holds exactly [`SEGMENT_LEN`] plaintext bytes. The last is empty
//!   only when the whole message is.
//!
//! The message key is what a key holder hands a client for one message ([`message_key`]): it
//! opens that message and nothing else, so the client streams through its own memory while the
//! named key never leaves the holder. Decryption writes each segment once it is authenticated,
//! as age does: on a failure, what was written before it is genuine but incomplete.

use super::{Algorithm, FIXED_LEN, Header, MAGIC, SALT_LEN, TAG_LEN, TransitError, validate_name};
use crate::derive::hkdf_sha256_expand;
use crate::secret::{KEY_LEN, Key};
use aes_gcm::Aes256Gcm;
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::AeadInOut;
use std::io::{Read, Write};
use zeroize::Zeroizing;

/// The format version of streamed ciphertexts.
pub const VERSION: u8 = 2;
/// Plaintext bytes per segment (the last may hold fewer): 64 KiB, as age.
pub const SEGMENT_LEN: usize = 64 << 10;
/// Info of the per-message key.
const STREAM_KEY_INFO: &[u8] = b"tresor/v2/transit/stream";

/// A streaming failure: the ciphertext's (as [`TransitError`]) or the input's or output's.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The data: bad format, failed authentication, bad key name.
    #[error(transparent)]
    Transit(#[from] TransitError),
    /// Reading the input or writing the output failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The header of a new message under key `name` for `alg`, with its `salt`.
pub fn header(name: &str, alg: Algorithm, salt: &[u8; SALT_LEN]) -> Result<Vec<u8>, TransitError> {
    let mut out = Vec::with_capacity(FIXED_LEN + name.len() + SALT_LEN);
    super::header_prefix(&mut out, VERSION, alg, name)?;
    out.extend_from_slice(salt);
    Ok(out)
}

/// Whether `start` (the first bytes of a ciphertext, at least 7) is a version 2 ciphertext.
pub fn is_stream(start: &[u8]) -> bool {
    start.len() > MAGIC.len() && start[..MAGIC.len()] == MAGIC && start[MAGIC.len()] == VERSION
}

/// Reads a version 2 header from `input`: what it says, its salt, and its bytes (the segments'
/// associated data). Nothing past the header is read.
pub fn read_header(
    input: &mut (impl Read + ?Sized),
) -> Result<(Header, [u8; SALT_LEN], Vec<u8>), StreamError> {
    const TRUNCATED: TransitError = TransitError::Format("truncated");
    let mut fixed = [0u8; FIXED_LEN];
    read_exact_or(input, &mut fixed, TRUNCATED)?;
    if fixed[..MAGIC.len()] != MAGIC {
        return Err(TransitError::Format("bad magic").into());
    }
    let [version, alg, name_len] = [fixed[6], fixed[7], fixed[8]];
    if version != VERSION {
        return Err(TransitError::Format("unknown version").into());
    }
    let alg = Algorithm::from_id(alg).ok_or(TransitError::Format("unknown algorithm"))?;
    let mut rest = vec![0u8; usize::from(name_len) + SALT_LEN];
    read_exact_or(input, &mut rest, TRUNCATED)?;
    let (name, salt) = rest.split_at(usize::from(name_len));
    let name = std::str::from_utf8(name)
        .ok()
        .filter(|n| validate_name(n).is_ok())
        .ok_or(TransitError::Format("invalid key name"))?;
    let salt: [u8; SALT_LEN] = salt.try_into().map_err(|_| TRUNCATED)?;
    let header = Header { version, alg, name: name.to_string() };
    Ok((header, salt, [fixed.as_slice(), &rest].concat()))
}

/// The key of the one message with `salt` under the named key `key`.
pub fn message_key(key: &Key, salt: &[u8; SALT_LEN]) -> Key {
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    // 32 bytes is always a valid HKDF-SHA256 output length.
    let _ = hkdf_sha256_expand(key.expose_secret(), salt, STREAM_KEY_INFO, out.as_mut());
    Key::from_bytes(&mut out)
}

/// Encrypts all of `input` to `output` as the segments following `header` (written first),
/// under the message key of that header's salt, bound to `vault_id`. Returns the plaintext
/// length.
pub fn encrypt(
    message_key: &Key,
    vault_id: &[u8],
    header: &[u8],
    input: &mut (impl Read + ?Sized),
    output: &mut (impl Write + ?Sized),
) -> Result<u64, StreamError> {
    let (cipher, aad) = Cipher::for_header(header, vault_id, message_key)?;
    output.write_all(header)?;
    let mut total = 0u64;
    for_each_piece(input, SEGMENT_LEN, |counter, last, piece| {
        let tag = cipher.seal(&nonce(counter, last), &aad, piece)?;
        output.write_all(piece)?;
        output.write_all(&tag)?;
        total += piece.len() as u64;
        Ok(())
    })?;
    Ok(total)
}

/// Decrypts the segments in `input` (the rest of a ciphertext whose `header` was read with
/// [`read_header`]) to `output`. Returns the plaintext length. A segment is written only once
/// it is authenticated; a missing last segment is [`TransitError::Decrypt`].
pub fn decrypt(
    message_key: &Key,
    vault_id: &[u8],
    header: &[u8],
    input: &mut (impl Read + ?Sized),
    output: &mut (impl Write + ?Sized),
) -> Result<u64, StreamError> {
    let (cipher, aad) = Cipher::for_header(header, vault_id, message_key)?;
    let mut total = 0u64;
    for_each_piece(input, SEGMENT_LEN + TAG_LEN, |counter, last, segment| {
        // A segment shorter than a tag, or an empty last segment after others: not ours.
        let n = segment.len();
        if n < TAG_LEN || last && n == TAG_LEN && counter > 0 {
            return Err(TransitError::Decrypt.into());
        }
        let (body, tag) = segment.split_at_mut(n - TAG_LEN);
        cipher.open(&nonce(counter, last), &aad, body, tag)?;
        output.write_all(body)?;
        total += body.len() as u64;
        Ok(())
    })?;
    Ok(total)
}

/// Feeds `input` to `each` in pieces of `len` bytes — the last may be shorter, and is empty only
/// when the whole input is — with the piece's index and whether it is the last. One byte is read
/// ahead: whether more follows decides the last flag. The buffer is wiped when done.
fn for_each_piece(
    input: &mut (impl Read + ?Sized),
    len: usize,
    mut each: impl FnMut(u64, bool, &mut [u8]) -> Result<(), StreamError>,
) -> Result<(), StreamError> {
    let mut buf = Zeroizing::new(vec![0u8; len + 1]);
    let mut filled = read_full(input, &mut buf)?;
    for counter in 0u64.. {
        let last = filled <= len;
        each(counter, last, &mut buf[..filled.min(len)])?;
        if last {
            break;
        }
        buf[0] = buf[len];
        filled = 1 + read_full(input, &mut buf[1..])?;
    }
    Ok(())
}

/// The nonce of segment `counter` (12 bytes used by AES-256-GCM, all 24 by XChaCha20-Poly1305).
fn nonce(counter: u64, last: bool) -> [u8; 24] {
    let mut n = [0u8; 24];
    n[15..23].copy_from_slice(&counter.to_be_bytes());
    n[23] = u8::from(last);
    n
}

/// The algorithm of a header made by [`header`] or read by [`read_header`].
fn header_alg(header: &[u8]) -> Result<Algorithm, TransitError> {
    if !is_stream(header) || header.len() < FIXED_LEN {
        return Err(TransitError::Format("not a version 2 header"));
    }
    Algorithm::from_id(header[7]).ok_or(TransitError::Format("unknown algorithm"))
}

/// The AEAD of a message, keyed once.
enum Cipher {
    XChaCha(XChaCha20Poly1305),
    Aes(Box<Aes256Gcm>),
}

impl Cipher {
    /// The AEAD of the message with `header`, keyed with its message key, and the associated
    /// data of its segments (`header || vault id`).
    fn for_header(header: &[u8], vault_id: &[u8], key: &Key) -> Result<(Cipher, Vec<u8>), TransitError> {
        let cipher = match header_alg(header)? {
            Algorithm::XChaCha20Poly1305 => Cipher::XChaCha(super::xchacha(key.expose_secret())),
            Algorithm::Aes256Gcm => Cipher::Aes(Box::new(super::aes(key.expose_secret()))),
        };
        Ok((cipher, [header, vault_id].concat()))
    }

    /// Seals `data` in place; returns the tag.
    fn seal(&self, nonce: &[u8; 24], aad: &[u8], data: &mut [u8]) -> Result<[u8; TAG_LEN], TransitError> {
        let tag = match self {
            Cipher::XChaCha(c) => c.encrypt_inout_detached(&(*nonce).into(), aad, data.into()),
            Cipher::Aes(c) => {
                let n: [u8; 12] = nonce[12..].try_into().map_err(|_| TransitError::TooLarge)?;
                c.encrypt_inout_detached(&n.into(), aad, data.into())
            }
        };
        tag.map(Into::into).map_err(|_| TransitError::TooLarge)
    }

    /// Opens `data` in place against `tag`; on failure `data` is left as it was (ciphertext).
    fn open(&self, nonce: &[u8; 24], aad: &[u8], data: &mut [u8], tag: &[u8]) -> Result<(), TransitError> {
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| TransitError::Decrypt)?;
        match self {
            Cipher::XChaCha(c) => c.decrypt_inout_detached(&(*nonce).into(), aad, data.into(), &tag.into()),
            Cipher::Aes(c) => {
                let n: [u8; 12] = nonce[12..].try_into().map_err(|_| TransitError::Decrypt)?;
                c.decrypt_inout_detached(&n.into(), aad, data.into(), &tag.into())
            }
        }
        .map_err(|_| TransitError::Decrypt)
    }
}

/// Reads until `buf` is full or the input ends; returns how much was read.
fn read_full(input: &mut (impl Read + ?Sized), buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// `read_exact`, with an early end of input reported as `truncated`.
fn read_exact_or(
    input: &mut (impl Read + ?Sized),
    buf: &mut [u8],
    truncated: TransitError,
) -> Result<(), StreamError> {
    match input.read_exact(buf) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(truncated.into()),
        Err(e) => Err(e.into()),
    }
}
