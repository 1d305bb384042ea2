//! Transit: encryption as a service under named keys, with self-describing, versioned output.
//!
//! A caller encrypts data it keeps elsewhere (a database column, a file in CI) under a key it
//! names; tresor never stores the data. Each named key is derived from the vault's root secret,
//! so it needs no storage and no rotation bookkeeping of its own:
//!
//! ```text
//! key(N, A) = HKDF-SHA256(ikm = root secret, salt = vault id,
//!                         info = "tresor/v1/transit/" || label(A) || "/" || N)
//! ```
//!
//! `label(A)` is `xchacha20-poly1305` or `aes256-gcm`: a key never serves two algorithms. Key
//! names are 1 to [`MAX_NAME_LEN`] bytes of `[A-Za-z0-9._-]` (no `/`, so the info string is
//! unambiguous; no `:`, so the armoured form is too).
//!
//! # Binary format, version 1
//!
//! ```text
//! magic "TRSRTX" (6) | version (1) = 1 | algorithm (1) | name length n (1) | name (n)
//!     | salt (32, AES-256-GCM only) | nonce (24 or 12) | ciphertext | tag (16)
//! ```
//!
//! Algorithm 1 is XChaCha20-Poly1305 (nonce 24 bytes, no salt), algorithm 2 is AES-256-GCM (salt
//! 32, nonce 12). Everything before the ciphertext is the *header*; the AEAD's associated data is
//! `header || vault id`. The header's own length follows from its algorithm and name-length
//! bytes, so that concatenation is unambiguous. Changing any header byte, the vault or the key
//! makes decryption fail; [`header`] reads the header without a key so a caller can pick the key.
//!
//! - **XChaCha20-Poly1305** (the default) encrypts under the named key directly with a random
//!   192-bit nonce: random nonces of that size can be drawn about 2^80 times before a collision
//!   is a concern, which no vault reaches.
//! - **AES-256-GCM** is there for callers whose format requires it. With random 96-bit nonces a
//!   GCM key may encrypt at most 2^32 messages (NIST SP 800-38D §8.3), a limit a busy transit key
//!   could reach and that nothing here could enforce across processes. So each message gets its
//!   own key instead: a random 32-byte salt, `msg_key = HKDF-SHA256(ikm = named key, salt,
//!   info = "tresor/v1/transit/msg")`, and AES-256-GCM under `msg_key` with a random 96-bit
//!   nonce. Every GCM key then encrypts one message, and two messages share a key only if two
//!   256-bit salts collide. The named key has no usage limit.
//!
//! # Armoured form
//!
//! For terminals and JSON, as Vault's transit engine writes `vault:v1:…`:
//!
//! ```text
//! tresor:v1:<name>:<standard Base64, padded, of the whole binary>
//! ```
//!
//! [`armor`] and [`dearmor`] convert; [`decrypt`] and [`header`] take either form (an armoured
//! input starts with `tresor:`, white space around it is ignored; a binary one starts with
//! `TRSRTX`). The name in the armour must match the name in the binary.
//!
//! # Version 2
//!
//! Streamed ciphertexts for files of any size: see [`stream`].
//!
//! Failures to open are one [`TransitError::Decrypt`], whatever the cause. Framing errors found
//! before any key is used are [`TransitError::Format`]: the header is public anyway.

pub mod stream;

use crate::derive::{hkdf_sha256, hkdf_sha256_expand};
use crate::secret::{KEY_LEN, Key, SecretBytes};
use aes_gcm::Aes256Gcm;
use base64ct::{Base64, Encoding};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::fmt;
use std::str::FromStr;
use zeroize::Zeroizing;

/// First bytes of every binary transit ciphertext.
pub const MAGIC: [u8; 6] = *b"TRSRTX";
/// The format version this code writes and reads.
pub const VERSION: u8 = 1;
/// Longest key name, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Length of the per-message salt of AES-256-GCM ciphertexts.
pub const SALT_LEN: usize = 32;
/// Length of the authentication tag of both algorithms.
pub const TAG_LEN: usize = 16;
/// Largest plaintext of a version 1 (whole-message) ciphertext: 64 MiB. Larger files use the
/// streamed version 2 ([`stream`]), which has no limit.
pub const MAX_PLAINTEXT: usize = 64 << 20;
/// Prefix of the armoured text form.
pub const ARMOR_PREFIX: &str = "tresor:v1:";

/// The fixed part of the header: magic, version, algorithm, name length.
const FIXED_LEN: usize = MAGIC.len() + 3;
/// Info of the per-message AES-256-GCM key.
const MSG_KEY_INFO: &[u8] = b"tresor/v1/transit/msg";
/// Anything armoured starts with this; binary ciphertexts start with [`MAGIC`] instead.
const ARMOR_MARK: &[u8] = b"tresor:";

/// A transit algorithm. Each named key serves exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// XChaCha20-Poly1305 with a random 192-bit nonce under the named key (id 1; the default).
    #[default]
    XChaCha20Poly1305,
    /// AES-256-GCM under a per-message key with a random 96-bit nonce (id 2).
    Aes256Gcm,
}

impl Algorithm {
    /// Both algorithms.
    pub const ALL: [Algorithm; 2] = [Algorithm::XChaCha20Poly1305, Algorithm::Aes256Gcm];

    /// The name, also the label in key derivation: `xchacha20-poly1305` or `aes256-gcm`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::XChaCha20Poly1305 => "xchacha20-poly1305",
            Algorithm::Aes256Gcm => "aes256-gcm",
        }
    }

    /// The algorithm byte of the binary format.
    pub fn id(self) -> u8 {
        match self {
            Algorithm::XChaCha20Poly1305 => 1,
            Algorithm::Aes256Gcm => 2,
        }
    }

    /// The algorithm with the given format byte.
    pub fn from_id(id: u8) -> Option<Self> {
        Algorithm::ALL.into_iter().find(|a| a.id() == id)
    }

    fn salt_len(self) -> usize {
        match self {
            Algorithm::XChaCha20Poly1305 => 0,
            Algorithm::Aes256Gcm => SALT_LEN,
        }
    }

    fn nonce_len(self) -> usize {
        match self {
            Algorithm::XChaCha20Poly1305 => 24,
            Algorithm::Aes256Gcm => 12,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = TransitError;

    /// Reads [`Algorithm::name`], ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s.trim()))
            .ok_or(TransitError::Format("unknown algorithm: expected xchacha20-poly1305 or aes256-gcm"))
    }
}

/// What a transit ciphertext says about itself, readable without a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The format version (1).
    pub version: u8,
    /// The algorithm, and so which derived key opens it.
    pub alg: Algorithm,
    /// The key name.
    pub name: String,
}

/// Transit failures. None contains key material or plaintext.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransitError {
    /// Not a transit ciphertext of a version and algorithm this code reads: bad magic, truncated,
    /// unknown version or algorithm, bad armour. Found before any key is used.
    #[error("not a tresor transit ciphertext: {0}")]
    Format(&'static str),
    /// A key name outside `[A-Za-z0-9._-]{1,128}`.
    #[error("a transit key name is 1 to 128 characters of A-Z, a-z, 0-9, '.', '_' and '-'")]
    KeyName,
    /// Authentication failed. Deliberately one case with no detail.
    #[error("decryption failed: wrong key, wrong vault or tampered data")]
    Decrypt,
    /// A plaintext above [`MAX_PLAINTEXT`] (or a ciphertext that would hold one).
    #[error("transit data is limited to 64 MiB")]
    TooLarge,
    /// The operating system's random number generator failed; nothing was encrypted.
    #[error("the system random number generator failed")]
    Random,
}

/// Checks a key name: 1 to [`MAX_NAME_LEN`] bytes of `[A-Za-z0-9._-]`.
pub fn validate_name(name: &str) -> Result<(), TransitError> {
    let ok = (1..=MAX_NAME_LEN).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok { Ok(()) } else { Err(TransitError::KeyName) }
}

/// The key named `name` for `alg` in vault `vault_id`, derived from the vault's root secret.
///
/// Derivation is injective in `(alg, name)` for any string (algorithm labels contain no `/`), but
/// only names that pass [`validate_name`] can be used to encrypt, so check the name first when it
/// comes from a user.
pub fn derive_transit_key(root: &Key, vault_id: &[u8], name: &str, alg: Algorithm) -> Key {
    let mut info = Vec::with_capacity(32 + name.len());
    info.extend_from_slice(b"tresor/v1/transit/");
    info.extend_from_slice(alg.name().as_bytes());
    info.push(b'/');
    info.extend_from_slice(name.as_bytes());
    hkdf_sha256(root.expose_secret(), vault_id, &info)
}

/// Encrypts `plaintext` under `key` (the key [`derive_transit_key`] gives for `name` and `alg`),
/// bound to `vault_id`, into the binary format.
pub fn encrypt(
    key: &Key,
    vault_id: &[u8],
    name: &str,
    alg: Algorithm,
    plaintext: &[u8],
) -> Result<Vec<u8>, TransitError> {
    validate_name(name)?;
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(TransitError::TooLarge);
    }
    let header_len = FIXED_LEN + name.len() + alg.salt_len() + alg.nonce_len();
    let mut out = Vec::with_capacity(header_len + plaintext.len() + TAG_LEN);
    header_prefix(&mut out, VERSION, alg, name)?;
    let mut random = [0u8; SALT_LEN + 24];
    let random = &mut random[..alg.salt_len() + alg.nonce_len()];
    getrandom::fill(random).map_err(|_| TransitError::Random)?;
    out.extend_from_slice(random);
    let aad = [out.as_slice(), vault_id].concat();
    let payload = Payload { msg: plaintext, aad: &aad };
    let (salt, nonce) = random.split_at(alg.salt_len());
    let ct = match alg {
        Algorithm::XChaCha20Poly1305 => xchacha(key.expose_secret()).encrypt(&xnonce(nonce)?, payload),
        Algorithm::Aes256Gcm => {
            let msg_key = message_key(key, salt)?;
            aes(&msg_key).encrypt(&gcm_nonce(nonce)?, payload)
        }
    }
    .map_err(|_| TransitError::TooLarge)?;
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Writes the start of a header, both versions: magic, `version`, algorithm, name length, name.
fn header_prefix(out: &mut Vec<u8>, version: u8, alg: Algorithm, name: &str) -> Result<(), TransitError> {
    validate_name(name)?;
    out.extend_from_slice(&MAGIC);
    out.push(version);
    out.push(alg.id());
    // `validate_name` bounds the length by MAX_NAME_LEN = 128.
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
    Ok(())
}

/// Reads the header of a ciphertext (binary or armoured) without a key.
pub fn header(ciphertext: &[u8]) -> Result<Header, TransitError> {
    if is_armored(ciphertext) {
        return Ok(parse(&dearmor(armored_text(ciphertext)?)?)?.header);
    }
    Ok(parse(ciphertext)?.header)
}

/// Decrypts a ciphertext made by [`encrypt`] (binary or armoured) with the key for its name and
/// algorithm (see [`header`]) in the same vault. Every authentication failure is
/// [`TransitError::Decrypt`].
pub fn decrypt(key: &Key, vault_id: &[u8], ciphertext: &[u8]) -> Result<SecretBytes, TransitError> {
    if is_armored(ciphertext) {
        return decrypt_binary(key, vault_id, &dearmor(armored_text(ciphertext)?)?);
    }
    decrypt_binary(key, vault_id, ciphertext)
}

fn decrypt_binary(key: &Key, vault_id: &[u8], ciphertext: &[u8]) -> Result<SecretBytes, TransitError> {
    let parsed = parse(ciphertext)?;
    let (head, body) = ciphertext.split_at(parsed.header_len);
    let aad = [head, vault_id].concat();
    let payload = Payload { msg: body, aad: &aad };
    let plain = match parsed.header.alg {
        Algorithm::XChaCha20Poly1305 => xchacha(key.expose_secret()).decrypt(&xnonce(parsed.nonce)?, payload),
        Algorithm::Aes256Gcm => {
            let msg_key = message_key(key, parsed.salt)?;
            aes(&msg_key).decrypt(&gcm_nonce(parsed.nonce)?, payload)
        }
    };
    plain.map(SecretBytes::new).map_err(|_| TransitError::Decrypt)
}

/// The armoured text form of a binary ciphertext: `tresor:v1:<name>:<Base64>`.
///
/// `ct` is meant to come from [`encrypt`]. Bytes whose header cannot be read are still encoded,
/// with an empty name, which [`dearmor`] refuses.
pub fn armor(ct: &[u8]) -> String {
    let name = parse(ct).map(|p| p.header.name).unwrap_or_default();
    let mut out = String::with_capacity(ARMOR_PREFIX.len() + name.len() + 1 + ct.len().div_ceil(3) * 4);
    out.push_str(ARMOR_PREFIX);
    out.push_str(&name);
    out.push(':');
    out.push_str(&Base64::encode_string(ct));
    out
}

/// The binary form of an armoured ciphertext. White space around the text is ignored; the name
/// in the armour must match the header's.
pub fn dearmor(text: &str) -> Result<Vec<u8>, TransitError> {
    let text = text.trim();
    let Some(rest) = text.strip_prefix(ARMOR_PREFIX) else {
        return Err(if text.starts_with("tresor:v") {
            TransitError::Format("unknown armour version")
        } else {
            TransitError::Format("armoured text starts with \"tresor:v1:\"")
        });
    };
    let Some((name, b64)) = rest.split_once(':') else {
        return Err(TransitError::Format("armoured text is tresor:v1:<name>:<base64>"));
    };
    validate_name(name).map_err(|_| TransitError::Format("invalid key name in the armour"))?;
    if b64.len() > max_binary_len().div_ceil(3) * 4 {
        return Err(TransitError::TooLarge);
    }
    let binary = Base64::decode_vec(b64).map_err(|_| TransitError::Format("invalid Base64 in the armour"))?;
    if parse(&binary)?.header.name != name {
        return Err(TransitError::Format("the armour's key name does not match the ciphertext's"));
    }
    Ok(binary)
}

/// Raw AES-256-GCM (96-bit nonce, 128-bit tag) without framing, for known-answer tests of the
/// primitive under transit. `msg` is plaintext when encrypting and ciphertext || tag when not.
pub fn aes256gcm_raw(
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    msg: &[u8],
    encrypt: bool,
) -> Result<Vec<u8>, TransitError> {
    let c = aes(key);
    let payload = Payload { msg, aad };
    let nonce = aes_gcm::Nonce::from(*nonce);
    if encrypt { c.encrypt(&nonce, payload) } else { c.decrypt(&nonce, payload) }
        .map_err(|_| TransitError::Decrypt)
}

/// A parsed binary ciphertext: header, and where its parts are.
struct Parsed<'a> {
    header: Header,
    header_len: usize,
    salt: &'a [u8],
    nonce: &'a [u8],
}

/// The longest binary ciphertext accepted: the largest header and plaintext, plus the tag.
fn max_binary_len() -> usize {
    FIXED_LEN + MAX_NAME_LEN + SALT_LEN + 24 + MAX_PLAINTEXT + TAG_LEN
}

fn parse(ct: &[u8]) -> Result<Parsed<'_>, TransitError> {
    const TRUNCATED: TransitError = TransitError::Format("truncated");
    if ct.len() < MAGIC.len() {
        return Err(if MAGIC.starts_with(ct) { TRUNCATED } else { TransitError::Format("bad magic") });
    }
    if ct[..MAGIC.len()] != MAGIC {
        return Err(TransitError::Format("bad magic"));
    }
    let (version, alg, name_len) = match ct[MAGIC.len()..] {
        [version, alg, name_len, ..] => (version, alg, usize::from(name_len)),
        _ => return Err(TRUNCATED),
    };
    if version == stream::VERSION {
        return Err(TransitError::Format(
            "a streamed ciphertext (version 2): decrypt it with `tresor decrypt`",
        ));
    }
    if version != VERSION {
        return Err(TransitError::Format("unknown version"));
    }
    let alg = Algorithm::from_id(alg).ok_or(TransitError::Format("unknown algorithm"))?;
    let name_end = FIXED_LEN + name_len;
    let salt_end = name_end + alg.salt_len();
    let header_len = salt_end + alg.nonce_len();
    if ct.len() < header_len + TAG_LEN {
        return Err(TRUNCATED);
    }
    if ct.len() > max_binary_len() {
        return Err(TransitError::TooLarge);
    }
    let name = std::str::from_utf8(&ct[FIXED_LEN..name_end])
        .ok()
        .filter(|n| validate_name(n).is_ok())
        .ok_or(TransitError::Format("invalid key name"))?;
    Ok(Parsed {
        header: Header { version, alg, name: name.to_string() },
        header_len,
        salt: &ct[name_end..salt_end],
        nonce: &ct[salt_end..header_len],
    })
}

/// The binary form of a ciphertext given either way: armoured text is decoded (and checked as
/// [`dearmor`] does), binary is returned as it is. A client sends this, a third smaller than
/// the armour, to whoever holds the key.
pub fn to_binary(ciphertext: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, TransitError> {
    if is_armored(ciphertext) {
        return Ok(std::borrow::Cow::Owned(dearmor(armored_text(ciphertext)?)?));
    }
    Ok(std::borrow::Cow::Borrowed(ciphertext))
}

/// Armoured text starts with `tresor:` (after any white space a terminal added); a binary
/// ciphertext starts with `TRSRTX`, so the two never overlap.
fn is_armored(ciphertext: &[u8]) -> bool {
    ciphertext.trim_ascii_start().starts_with(ARMOR_MARK)
}

fn armored_text(ciphertext: &[u8]) -> Result<&str, TransitError> {
    std::str::from_utf8(ciphertext).map_err(|_| TransitError::Format("armoured text is not UTF-8"))
}

fn xchacha(key: &[u8; KEY_LEN]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new_from_slice(key).unwrap_or_else(|_| unreachable!("keys are 32 bytes"))
}

fn aes(key: &[u8; KEY_LEN]) -> Aes256Gcm {
    Aes256Gcm::new_from_slice(key).unwrap_or_else(|_| unreachable!("keys are 32 bytes"))
}

fn xnonce(nonce: &[u8]) -> Result<XNonce, TransitError> {
    let n: [u8; 24] = nonce.try_into().map_err(|_| TransitError::Format("truncated"))?;
    Ok(XNonce::from(n))
}

fn gcm_nonce(nonce: &[u8]) -> Result<aes_gcm::Nonce<aes_gcm::aead::consts::U12>, TransitError> {
    let n: [u8; 12] = nonce.try_into().map_err(|_| TransitError::Format("truncated"))?;
    Ok(aes_gcm::Nonce::from(n))
}

/// The one-message AES-256-GCM key: HKDF-SHA256 of the named key under the message's salt.
fn message_key(key: &Key, salt: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, TransitError> {
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    hkdf_sha256_expand(key.expose_secret(), salt, MSG_KEY_INFO, out.as_mut())
        .map_err(|_| TransitError::Format("truncated"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        for ok in ["a", "db.password", "ci_token-2", &"x".repeat(128)] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a/b", "a:b", "a b", "é", &"x".repeat(129)] {
            assert!(matches!(validate_name(bad), Err(TransitError::KeyName)), "{bad}");
        }
    }

    #[test]
    fn algorithm_names_round_trip() {
        for alg in Algorithm::ALL {
            assert_eq!(alg.name().parse::<Algorithm>(), Ok(alg));
            assert_eq!(Algorithm::from_id(alg.id()), Some(alg));
        }
        assert_eq!(Algorithm::default(), Algorithm::XChaCha20Poly1305);
        assert!("aes128-gcm".parse::<Algorithm>().is_err());
        assert_eq!(Algorithm::from_id(0), None);
    }

    #[test]
    fn keys_differ_by_name_algorithm_vault_and_root() {
        let root = Key::generate().unwrap();
        let base = derive_transit_key(&root, b"v", "a", Algorithm::XChaCha20Poly1305);
        assert!(!base.ct_eq(&derive_transit_key(&root, b"v", "b", Algorithm::XChaCha20Poly1305)));
        assert!(!base.ct_eq(&derive_transit_key(&root, b"v", "a", Algorithm::Aes256Gcm)));
        assert!(!base.ct_eq(&derive_transit_key(&root, b"w", "a", Algorithm::XChaCha20Poly1305)));
        let other = Key::generate().unwrap();
        assert!(!base.ct_eq(&derive_transit_key(&other, b"v", "a", Algorithm::XChaCha20Poly1305)));
        assert!(base.ct_eq(&derive_transit_key(&root, b"v", "a", Algorithm::XChaCha20Poly1305)));
    }

    #[test]
    fn aes_messages_use_fresh_salts() {
        let key = Key::generate().unwrap();
        let a = encrypt(&key, b"v", "k", Algorithm::Aes256Gcm, b"x").unwrap();
        let b = encrypt(&key, b"v", "k", Algorithm::Aes256Gcm, b"x").unwrap();
        let salt = FIXED_LEN + 1..FIXED_LEN + 1 + SALT_LEN;
        assert_ne!(a[salt.clone()], b[salt]);
        assert_eq!(a.len(), FIXED_LEN + 1 + SALT_LEN + 12 + 1 + TAG_LEN);
    }
}
