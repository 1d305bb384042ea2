//! The agent protocol: length-prefixed postcard frames over a Unix socket.
//!
//! A frame is a `u32` big-endian length and that many bytes of a postcard-encoded [`Request`] or
//! [`Response`]. One connection carries one request and its response. Secret bytes travel in
//! [`SecretBuf`], wiped when dropped.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::io::{Read, Write};
use tresor::model::AuditOp;
use tresor::vault::{
    DestroyReport, EpochList, GcReport, HistoryEntry, KeySlotView, ListEntry, ReencryptReport, RotateReport,
    Status, VerifyReport,
};
use zeroize::Zeroizing;

/// Largest frame accepted (a value at the 64 MiB envelope limit, plus framing).
pub const MAX_FRAME: usize = (64 << 20) + 4096;

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

/// What the CLI asks.
#[derive(Serialize, Deserialize)]
pub enum Request {
    /// Is the agent there, and unlocked?
    Ping,
    /// Unlock with this password.
    Unlock {
        /// The password (UTF-8).
        password: SecretBuf,
    },
    /// Wipe every key and exit.
    Lock,
    /// Read a secret.
    Get {
        /// Its path.
        path: String,
        /// A specific version.
        version: Option<u64>,
    },
    /// Write secrets in one commit.
    Set {
        /// What the audit trail calls it: [`AuditOp::Set`] or [`AuditOp::Import`] (others are refused).
        op: AuditOp,
        /// Paths and values.
        items: Vec<(String, SecretBuf)>,
        /// Check-and-set: the version the (single) secret must be at (0: absent).
        cas: Option<u64>,
    },
    /// Delete a secret.
    Delete {
        /// Its path.
        path: String,
    },
    /// List secrets under a prefix.
    List {
        /// The prefix.
        prefix: String,
    },
    /// A secret's versions.
    History {
        /// Its path.
        path: String,
    },
    /// The vault's summary.
    Status,
    /// The audit trail.
    Audit,
    /// Prove the chains whole.
    Verify,
    /// A self-contained encrypted backup.
    Export,
    /// Remove superseded snapshots and orphans.
    Gc {
        /// Keep unreferenced blobs younger than this (seconds).
        grace_secs: u64,
        /// Only count.
        dry_run: bool,
    },
    /// The key epochs and what each holds.
    EpochList,
    /// Start a new epoch; with `reencrypt`, re-seal every older value into it.
    EpochRotate {
        /// Re-seal every value of older epochs now.
        reencrypt: bool,
    },
    /// Re-seal every value of older epochs into the current one (finishes an interrupted run).
    EpochReencrypt,
    /// Destroy an epoch: re-seal what it holds, delete its blobs and key.
    EpochDestroy {
        /// The epoch.
        epoch: u32,
    },
    /// Set the automatic rotation interval.
    EpochPolicy {
        /// Seconds between rotations; `None`: off.
        every_secs: Option<u64>,
    },
    /// The key file's slots.
    KeyslotList,
    /// The Ed25519 identity at a SLIP-0010 path.
    KeyDerive {
        /// The path, e.g. `m/74'/0'/0'` (hardened components only).
        path: String,
        /// Also return the private key and chain code.
        show_private: bool,
    },
    /// Sign a message with the identity at a path.
    Sign {
        /// The path.
        path: String,
        /// The message.
        message: SecretBuf,
    },
    /// Encrypt with a named transit key.
    Encrypt {
        /// The key name.
        key: String,
        /// The algorithm (`xchacha20-poly1305`, `aes256-gcm`).
        alg: String,
        /// The plaintext.
        plaintext: SecretBuf,
    },
    /// The key of one streamed transit message (format version 2): `salt` `None` for a new
    /// message (the agent draws the salt), else the salt of the message to decrypt.
    StreamKey {
        /// The key name.
        key: String,
        /// The algorithm (`xchacha20-poly1305`, `aes256-gcm`).
        alg: String,
        /// The message's salt, to decrypt it.
        salt: Option<[u8; 32]>,
    },
    /// Decrypt a transit ciphertext (binary or armoured).
    Decrypt {
        /// The key name the caller expects (a ciphertext of another key is refused).
        key: Option<String>,
        /// The ciphertext.
        ciphertext: Blob,
    },
}

/// How long bulk work ([`Request::is_bulk`]) may take through the agent: it grows with the
/// vault (1 GiB re-encrypts in seconds, a large bucket may take hours), and an interrupted run
/// is safe but must be run again.
pub const BULK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

impl Request {
    /// Work whose length grows with the vault: re-encryption and epoch destruction. The agent
    /// gives it [`BULK_DEADLINE`] instead of its usual per-connection deadline, and a client
    /// waits as long.
    pub fn is_bulk(&self) -> bool {
        matches!(
            self,
            Request::EpochReencrypt | Request::EpochDestroy { .. } | Request::EpochRotate { reencrypt: true }
        )
    }
}

/// What the agent answers.
#[derive(Serialize, Deserialize)]
pub enum Response {
    /// Answer to `Ping`.
    Pong {
        /// Whether a vault is unlocked.
        unlocked: bool,
        /// The agent's process id.
        pid: u32,
    },
    /// Unlocked; these failed attempts happened since the last unlock.
    Unlocked {
        /// Their times (ms since the Unix epoch).
        failed_attempts: Vec<u64>,
        /// Hardening that did not take (mlock, core dumps, ptrace).
        warnings: Vec<String>,
    },
    /// Done.
    Done,
    /// The agent holds no unlocked vault.
    Locked,
    /// A secret value.
    Value(SecretBuf),
    /// Version numbers written.
    Versions(Vec<u64>),
    /// Listing.
    List(Vec<ListEntry>),
    /// History.
    History(Vec<HistoryEntry>),
    /// Status.
    Status(Status),
    /// The audit trail.
    Audit(Vec<tresor::model::TrailRecord>),
    /// Verification report.
    Verify(VerifyReport),
    /// An export archive.
    Archive(SecretBuf),
    /// What `gc` removed.
    Gc(GcReport),
    /// The key epochs.
    Epochs(EpochList),
    /// A rotation, and the re-encryption that followed it if one was asked for.
    Rotated(RotateReport, Option<ReencryptReport>),
    /// A re-encryption.
    Reencrypted(ReencryptReport),
    /// A destruction.
    Destroyed(DestroyReport),
    /// The key file's slots.
    Keyslots(Vec<KeySlotView>),
    /// A derived identity.
    Identity {
        /// Its path.
        path: String,
        /// Its public key.
        public_key: [u8; 32],
        /// Private key then chain code (64 bytes), only when asked for.
        private: Option<SecretBuf>,
    },
    /// A signature and the public key that verifies it.
    Signature {
        /// The Ed25519 signature (64 bytes).
        signature: Vec<u8>,
        /// The public key.
        public_key: [u8; 32],
    },
    /// A transit ciphertext (binary).
    Ciphertext(Blob),
    /// The key of one streamed transit message, and the salt it belongs to.
    StreamKey {
        /// The vault's id (bound into every segment).
        vault_id: [u8; 16],
        /// The message's salt (drawn by the agent for a new message).
        salt: [u8; 32],
        /// The message key (32 bytes).
        key: SecretBuf,
    },
    /// The operation failed: the core's error, typed (a store error without its source), so the
    /// client decides what to tell its user as if it had run the operation itself.
    Error(tresor::Error),
}

impl Response {
    /// The response for a core error.
    pub fn error(e: &tresor::Error) -> Response {
        Response::Error(e.clone())
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

/// Encodes a message into a frame: sized first, then serialized once into a buffer of exactly
/// that size (no copy, and no reallocation leaving unwiped secret bytes behind).
pub fn encode<T: Serialize>(msg: &T) -> Result<Zeroizing<Vec<u8>>, FrameError> {
    let protocol = |e: postcard::Error| FrameError::Protocol(e.to_string());
    let len = postcard::experimental::serialized_size(msg).map_err(protocol)?;
    if len > MAX_FRAME {
        return Err(FrameError::Protocol("message too large".into()));
    }
    let mut frame = Zeroizing::new(vec![0u8; len + 4]);
    frame[..4].copy_from_slice(&(len as u32).to_be_bytes());
    postcard::to_slice(msg, &mut frame[4..]).map_err(protocol)?;
    Ok(frame)
}

/// Decodes a frame body.
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, FrameError> {
    postcard::from_bytes(body).map_err(|e| FrameError::Protocol(e.to_string()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_errors_cross_the_socket_typed() {
        let io = std::io::Error::other("disk on fire");
        let errors = [
            tresor::Error::AuthFailed,
            tresor::Error::Deleted { path: "db/pw".into(), version: 3 },
            tresor::Error::InvalidPath("the path is empty".into()),
            tresor::Error::Rollback { kind: tresor::ObjectKind::AuditRecord, seen: 9, served: 4 },
            tresor::Error::Store(tresor::StoreError::with_source("cannot write log/1", io)),
            tresor::Error::Indeterminate(Box::new(tresor::Error::store("timed out"))),
            tresor::Error::RekeyRunning { next: 2, quiet_s: 5, wait_s: 895 },
            tresor::Error::Locked,
        ];
        for e in errors {
            let frame = encode(&Response::error(&e)).unwrap();
            let Ok(Response::Error(back)) = decode::<Response>(&frame[4..]) else {
                panic!("{e}: not an error")
            };
            assert_eq!(back.to_string(), e.to_string());
            assert_eq!(back.category(), e.category());
            assert_eq!(std::mem::discriminant(&back), std::mem::discriminant(&e));
            // The store's own error stays in the process it happened in.
            if let tresor::Error::Store(inner) = &back {
                assert!(std::error::Error::source(inner).is_none());
            }
        }
    }

    #[test]
    fn only_work_that_grows_with_the_vault_is_bulk() {
        for bulk in [
            Request::EpochReencrypt,
            Request::EpochDestroy { epoch: 1 },
            Request::EpochRotate { reencrypt: true },
        ] {
            assert!(bulk.is_bulk());
        }
        for quick in
            [Request::EpochRotate { reencrypt: false }, Request::EpochList, Request::Ping, Request::Lock]
        {
            assert!(!quick.is_bulk());
        }
        assert!(BULK_DEADLINE >= std::time::Duration::from_secs(3600));
    }

    #[test]
    fn frames_roundtrip() {
        let req = Request::Set {
            op: AuditOp::Set,
            items: vec![("a/b".into(), SecretBuf::new(b"v".to_vec()))],
            cas: Some(3),
        };
        let frame = encode(&req).unwrap();
        let back: Request = read_msg(&mut frame.as_slice()).unwrap();
        match back {
            Request::Set { op, items, cas } => {
                assert_eq!(op, AuditOp::Set);
                assert_eq!(cas, Some(3));
                assert_eq!(items[0].0, "a/b");
                assert_eq!(items[0].1.0.as_slice(), b"v");
            }
            _ => panic!("wrong variant"),
        }
    }

    #[test]
    fn fail_oversized_or_garbage_frames() {
        let mut big = Vec::from(((MAX_FRAME + 1) as u32).to_be_bytes());
        big.extend_from_slice(&[0; 8]);
        assert!(read_msg::<Request>(&mut big.as_slice()).is_err());
        let garbage = [0, 0, 0, 2, 0xff, 0xff];
        assert!(read_msg::<Request>(&mut garbage.as_slice()).is_err());
        assert!(read_msg::<Request>(&mut [0u8, 0].as_slice()).is_err());
    }
}
