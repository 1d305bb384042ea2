//! Frames: a `u32` big-endian length and that many bytes of postcard, and the byte types
//! messages carry (secret bytes wiped on drop, plain bytes sent in one piece).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::io::{Read, Write};
use zeroize::Zeroizing;

/// Largest frame accepted: an `import` of the most it reads (1 GiB) and its paths, or an `export`
/// of a vault whose audit trail grew large, plus framing. (It was 64 MiB, one value's limit: a
/// backup of a vault with a few hundred thousand audited reads, or an import past it, failed
/// through the agent with "message too large".) Both ends are processes of the same user.
pub const MAX_FRAME: usize = (1 << 30) + (64 << 20);

/// Secret bytes in a message (values, passwords); wiped on drop, never printed.
pub struct SecretBuf(pub Zeroizing<Vec<u8>>);

impl SecretBuf {
    /// Wraps bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBuf(Zeroizing::new(bytes))
    }
}

impl Serialize for SecretBuf {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretBuf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(SecretBuf(Zeroizing::new(d.deserialize_byte_buf(BytesVisitor)?)))
    }
}

/// Reads a byte string in one piece (serde's `Vec<u8>` goes element by element: a 64 MiB value
/// would take a second).
struct BytesVisitor;

impl<'de> serde::de::Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }
}

/// Non-secret bytes in a message (transit ciphertexts), sent as one byte string.
pub struct Blob(pub Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Blob(d.deserialize_byte_buf(BytesVisitor)?))
    }
}

/// Protocol failures.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The socket failed.
    #[error("agent connection: {0}")]
    Io(#[from] std::io::Error),
    /// The frame is too large or does not decode.
    #[error("agent protocol: {0}")]
    Protocol(String),
}

/// The protocol's version, the first byte of every frame body. Postcard encodes enum variants by
/// position: an agent left running from an older build and a newer client must not misread each
/// other, so a frame of another version is refused by name. Bump it whenever a message changes.
pub const PROTOCOL_VERSION: u8 = 3;

/// Encodes a message into a frame (length, version byte, postcard): sized first, then serialized
/// once into a buffer of exactly that size (no copy, and no reallocation leaving unwiped secret
/// bytes behind).
pub fn encode<T: Serialize>(msg: &T) -> Result<Zeroizing<Vec<u8>>, FrameError> {
    let protocol = |e: postcard::Error| FrameError::Protocol(e.to_string());
    let len = postcard::experimental::serialized_size(msg).map_err(protocol)? + 1;
    if len > MAX_FRAME {
        return Err(FrameError::Protocol("message too large".into()));
    }
    let mut frame = Zeroizing::new(vec![0u8; len + 4]);
    frame[..4].copy_from_slice(&(len as u32).to_be_bytes());
    frame[4] = PROTOCOL_VERSION;
    postcard::to_slice(msg, &mut frame[5..]).map_err(protocol)?;
    Ok(frame)
}

/// Decodes a frame body (version byte and postcard).
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, FrameError> {
    match body.split_first() {
        Some((&PROTOCOL_VERSION, rest)) => {
            postcard::from_bytes(rest).map_err(|e| FrameError::Protocol(e.to_string()))
        }
        Some((other, _)) => Err(FrameError::Protocol(format!(
            "the other side speaks protocol version {other}, this build speaks {PROTOCOL_VERSION}: an agent from \
             another tresor build is running (`tresor lock`, then unlock again)"
        ))),
        None => Err(FrameError::Protocol("an empty message".into())),
    }
}

/// Writes one message (blocking).
pub fn write_msg<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), FrameError> {
    w.write_all(&encode(msg)?)?;
    w.flush()?;
    Ok(())
}

/// Reads one message (blocking).
pub fn read_msg<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> Result<T, FrameError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::Protocol("frame too large".into()));
    }
    let mut body = Zeroizing::new(vec![0u8; len]);
    r.read_exact(&mut body)?;
    decode(&body)
}
