//! Events: what a member says to its group, encoded with postcard and signed by the member
//! (ARCHITECTURE.md, "Sharing and sync through a relay", **Events**).
//!
//! An event names its group and epoch, its sender and the sender's sequence number, the hash of
//! the sender's previous event (a chain per sender), the newest event it applied from every other
//! member (`heads`), a checked Lamport clock, the sender's wall clock and its body. The signed
//! form is `encoding ‖ Ed25519 signature over "tresor-sync event v1" ‖ encoding`; its SHA-256 is
//! the event hash, which exists only inside the encryption of cells.

use crate::member::{Identity, MemberId, MemberKey};
use serde::{Deserialize, Serialize};
use tresor_crypto::SecretBytes;
use zeroize::Zeroizing;

/// What every signature is made over, before the encoding.
const SIGNATURE_CONTEXT: &[u8] = b"tresor-sync event v1";
/// Bytes of a signature at the end of a signed event.
const SIGNATURE_LEN: usize = 64;
/// Most heads an event may carry (one per other member).
pub const MAX_HEADS: usize = 256;
/// Most operations one event may carry.
pub const MAX_OPS: usize = 4096;
/// Most one-time keys one acknowledgement posts.
pub const MAX_ONE_TIME: usize = 8;

/// Why an event was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    /// The signature does not verify under the key of the member it came from.
    #[error("an event's signature does not verify under its sender's key")]
    BadSignature,
    /// The signed bytes are not an event of this version.
    #[error("an event does not decode: {0}")]
    Malformed(String),
    /// The event names another sender than the key that signed it.
    #[error("an event names another sender than its signer")]
    WrongSender,
}

/// The newest event a member applied from another member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The other member.
    pub member: MemberId,
    /// Its sequence number.
    pub seq: u64,
    /// Its hash.
    pub hash: [u8; 32],
}

/// One change to the shared prefix, with a path relative to it.
pub enum Op {
    /// The path's value becomes `value`.
    Put {
        /// Path below the shared prefix.
        path: String,
        /// The value (wiped on drop).
        value: SecretBytes,
    },
    /// The path is deleted.
    Delete {
        /// Path below the shared prefix.
        path: String,
    },
}

impl Op {
    /// The path it changes, relative to the shared prefix.
    pub fn path(&self) -> &str {
        match self {
            Op::Put { path, .. } | Op::Delete { path } => path,
        }
    }
}

/// An epoch key wrapped to one member of the new epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wrapped {
    /// The member.
    pub member: MemberId,
    /// The X25519 public key it is wrapped to: a one-time key the member posted, or its
    /// long-term key.
    pub to: [u8; 32],
    /// `tresor_crypto::agree::wrap_to` of the epoch key.
    pub sealed: Vec<u8>,
}

/// A new epoch, signed by the group's admin: its members in order, its key wrapped to each, and
/// the members removed with the last event of theirs that counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rekey {
    /// The new epoch's number: one more than the epoch the event is sealed in.
    pub epoch: u64,
    /// Its members, in order (a member's index in cells is its place here).
    pub members: Vec<MemberKey>,
    /// The epoch key, wrapped to every member but the admin.
    pub wraps: Vec<Wrapped>,
    /// Removed members, each with its last accepted event: nothing after it is ever accepted.
    pub removed: Vec<Head>,
}

/// What an event says.
pub enum Body {
    /// Changes to the shared prefix, applied in order.
    Write(Vec<Op>),
    /// Nothing but the heads: sent every interval when nothing else was, so that silence can be
    /// told from withholding and writes are acknowledged.
    Heartbeat,
    /// A new epoch (only the admin may send one).
    Rekey(Rekey),
    /// The sender's first event in an epoch: it took the epoch key, and posts one-time X25519
    /// keys for the next epochs' keys to be wrapped to, one each (a few, so that rekeys in quick
    /// succession do not fall back to the long-term key).
    Ack {
        /// The one-time public keys, oldest first (at most [`MAX_ONE_TIME`]).
        one_time: Vec<[u8; 32]>,
    },
}

/// An event (see the module documentation).
pub struct Event {
    /// The group.
    pub group: [u8; 32],
    /// The epoch it was sealed in.
    pub epoch: u64,
    /// Who sent it.
    pub sender: MemberId,
    /// The sender's sequence number, from 1.
    pub seq: u64,
    /// The hash of the sender's previous event (zeros for its first).
    pub prev: [u8; 32],
    /// The newest event it applied from each other member, sorted by member, none for itself.
    pub heads: Vec<Head>,
    /// 1 + the largest Lamport clock of `prev` and `heads`.
    pub lamport: u64,
    /// The sender's wall clock, in seconds since the Unix epoch.
    pub time: u64,
    /// What it says.
    pub body: Body,
}

impl Event {
    /// Whether this event's sender had seen event `seq` of `member` when it wrote this one: its
    /// own earlier events, and every event its heads cover (causal delivery makes the heads a
    /// whole vector clock).
    pub fn has_seen(&self, member: &MemberId, seq: u64) -> bool {
        if *member == self.sender {
            return seq < self.seq;
        }
        self.head_of(member).is_some_and(|h| h.seq >= seq)
    }

    /// Its head for `member`, if it has one.
    pub fn head_of(&self, member: &MemberId) -> Option<&Head> {
        self.heads.binary_search_by(|h| h.member.cmp(member)).ok().map(|i| &self.heads[i])
    }

    /// The signed encoding (wiped on drop: it carries values).
    pub fn sign(&self, identity: &Identity) -> Result<Zeroizing<Vec<u8>>, EventError> {
        if identity.id() != self.sender {
            return Err(EventError::WrongSender);
        }
        let wire = Wire {
            group: self.group,
            epoch: self.epoch,
            sender: self.sender,
            seq: self.seq,
            prev: self.prev,
            heads: self.heads.clone(),
            lamport: self.lamport,
            time: self.time,
            body: match &self.body {
                Body::Heartbeat => WireBody::Heartbeat,
                Body::Rekey(rekey) => WireBody::Rekey(rekey.clone()),
                Body::Ack { one_time } => WireBody::Ack(one_time.clone()),
                Body::Write(ops) => WireBody::Write(
                    ops.iter()
                        .map(|op| match op {
                            Op::Put { path, value } => WireOp::Put { path, value: value.as_slice() },
                            Op::Delete { path } => WireOp::Delete { path },
                        })
                        .collect(),
                ),
            },
        };
        // Room for all of it up front (values, paths, heads, varints, the signature): a buffer
        // that grew would leave copies of values behind, unwiped.
        let values: usize = match &self.body {
            Body::Write(ops) => ops.iter().map(|op| op.path().len() + 16 + op_value_len(op)).sum(),
            Body::Rekey(rekey) => {
                rekey.members.len() * 64 + rekey.wraps.len() * 256 + rekey.removed.len() * 96
            }
            _ => 64,
        };
        let capacity = values + self.heads.len() * 96 + 256 + SIGNATURE_LEN;
        let mut signed = Zeroizing::new(
            postcard::to_extend(&wire, Vec::with_capacity(capacity))
                .map_err(|e| EventError::Malformed(e.to_string()))?,
        );
        let signature = identity.sign(&signing_input(&signed));
        signed.extend_from_slice(&signature);
        Ok(signed)
    }

    /// The event in `signed`, whose signature `signer` made; checks the signature first, then
    /// the encoding, then that the event names `signer` as its sender.
    pub fn open(signed: &[u8], signer: &MemberKey) -> Result<Event, EventError> {
        let Some(split) = signed.len().checked_sub(SIGNATURE_LEN) else {
            return Err(EventError::BadSignature);
        };
        let (encoding, signature) = signed.split_at(split);
        let signature: &[u8; SIGNATURE_LEN] = signature.try_into().map_err(|_| EventError::BadSignature)?;
        if !signer.verifies(&signing_input(encoding), signature) {
            return Err(EventError::BadSignature);
        }
        let (wire, rest): (Wire<'_>, _) =
            postcard::take_from_bytes(encoding).map_err(|e| EventError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(EventError::Malformed("bytes after the event".into()));
        }
        if wire.sender != signer.id() {
            return Err(EventError::WrongSender);
        }
        if wire.heads.len() > MAX_HEADS {
            return Err(EventError::Malformed("too many heads".into()));
        }
        let body = match wire.body {
            WireBody::Heartbeat => Body::Heartbeat,
            WireBody::Rekey(rekey) if rekey.members.len() > MAX_HEADS + 1 => {
                return Err(EventError::Malformed("too many members".into()));
            }
            WireBody::Rekey(rekey) => Body::Rekey(rekey),
            WireBody::Ack(one_time) if one_time.is_empty() || one_time.len() > MAX_ONE_TIME => {
                return Err(EventError::Malformed(
                    "an acknowledgement with no or too many one-time keys".into(),
                ));
            }
            WireBody::Ack(one_time) => Body::Ack { one_time },
            WireBody::Write(ops) if ops.len() > MAX_OPS => {
                return Err(EventError::Malformed("too many operations".into()));
            }
            WireBody::Write(ops) => Body::Write(
                ops.into_iter()
                    .map(|op| match op {
                        WireOp::Put { path, value } => {
                            Op::Put { path: path.to_string(), value: SecretBytes::new(value.to_vec()) }
                        }
                        WireOp::Delete { path } => Op::Delete { path: path.to_string() },
                    })
                    .collect(),
            ),
        };
        Ok(Event {
            group: wire.group,
            epoch: wire.epoch,
            sender: wire.sender,
            seq: wire.seq,
            prev: wire.prev,
            heads: wire.heads,
            lamport: wire.lamport,
            time: wire.time,
            body,
        })
    }
}

/// Bytes of an operation's value (0 for a delete).
fn op_value_len(op: &Op) -> usize {
    match op {
        Op::Put { value, .. } => value.len(),
        Op::Delete { .. } => 0,
    }
}

/// The bytes a signature covers.
fn signing_input(encoding: &[u8]) -> Zeroizing<Vec<u8>> {
    Zeroizing::new([SIGNATURE_CONTEXT, encoding].concat())
}

/// The encoding of an event. Paths and values are borrowed from the signed bytes on the way in,
/// so that no unwiped copy of a value is made while decoding.
#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    group: [u8; 32],
    epoch: u64,
    sender: MemberId,
    seq: u64,
    prev: [u8; 32],
    heads: Vec<Head>,
    lamport: u64,
    time: u64,
    #[serde(borrow)]
    body: WireBody<'a>,
}

/// The encoding of a body (variants are numbered by position: new kinds go at the end).
#[derive(Serialize, Deserialize)]
enum WireBody<'a> {
    Write(#[serde(borrow)] Vec<WireOp<'a>>),
    Heartbeat,
    Rekey(Rekey),
    Ack(Vec<[u8; 32]>),
}

/// The encoding of an operation.
#[derive(Serialize, Deserialize)]
enum WireOp<'a> {
    Put {
        path: &'a str,
        #[serde(with = "borrowed_bytes")]
        value: &'a [u8],
    },
    Delete {
        path: &'a str,
    },
}

/// Values as postcard byte strings, borrowed when decoding (events and snapshots).
pub(crate) mod borrowed_bytes {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &&[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<&'de [u8], D::Error> {
        serde::Deserialize::deserialize(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tresor_crypto::slip10::Ed25519Node;

    fn identity(seed: u8) -> Identity {
        Identity::derive(&Ed25519Node::master(&[seed; 32]), &[1; 32], 0)
    }

    fn event(sender: &Identity) -> Event {
        Event {
            group: [1; 32],
            epoch: 2,
            sender: sender.id(),
            seq: 3,
            prev: [4; 32],
            heads: vec![Head { member: identity(9).id(), seq: 5, hash: [6; 32] }],
            lamport: 7,
            time: 8,
            body: Body::Write(vec![
                Op::Put { path: "db/password".into(), value: SecretBytes::new(b"hunter2".to_vec()) },
                Op::Delete { path: "old".into() },
            ]),
        }
    }

    #[test]
    fn a_signed_event_opens_as_written_under_its_senders_key_only() {
        let alice = identity(1);
        let signed = event(&alice).sign(&alice).unwrap();
        let opened = Event::open(&signed, &alice.key()).unwrap();
        assert_eq!((opened.epoch, opened.seq, opened.lamport, opened.time), (2, 3, 7, 8));
        assert_eq!(opened.heads, event(&alice).heads);
        let Body::Write(ops) = &opened.body else { panic!("a write") };
        assert!(
            matches!(&ops[0], Op::Put { path, value } if path == "db/password" && value.ct_eq(b"hunter2"))
        );
        assert!(matches!(&ops[1], Op::Delete { path } if path == "old"));
        assert_eq!(Event::open(&signed, &identity(2).key()).err(), Some(EventError::BadSignature));
    }

    #[test]
    fn a_member_cannot_sign_for_another() {
        let (alice, mallory) = (identity(1), identity(2));
        assert_eq!(event(&alice).sign(&mallory).err(), Some(EventError::WrongSender));
    }

    #[test]
    fn every_changed_byte_breaks_the_signature() {
        let alice = identity(1);
        let signed = event(&alice).sign(&alice).unwrap();
        for i in 0..signed.len() {
            let mut bad = signed.to_vec();
            bad[i] ^= 0x01;
            assert!(Event::open(&bad, &alice.key()).is_err(), "byte {i}");
        }
        assert!(Event::open(&signed[..signed.len() - 1], &alice.key()).is_err());
        assert!(Event::open(&[], &alice.key()).is_err());
    }

    #[test]
    fn has_seen_follows_the_chain_and_the_heads() {
        let alice = identity(1);
        let e = event(&alice);
        let other = identity(9).id();
        assert!(e.has_seen(&alice.id(), 2) && !e.has_seen(&alice.id(), 3));
        assert!(e.has_seen(&other, 5) && !e.has_seen(&other, 6));
        assert!(!e.has_seen(&identity(3).id(), 1));
    }
}
