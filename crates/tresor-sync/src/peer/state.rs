//! A member's state as its vault keeps it between runs ([`Peer::save`], [`Peer::restore`]):
//! everything a [`Peer`] holds but fragments of events not yet whole and events waiting for
//! what they depend on (their senders upload them again until every member acknowledged them),
//! encoded with postcard. The encoding holds epoch keys, one-time keys and values: the caller
//! keeps it sealed (the vault keeps it in its system namespace), and it is wiped on drop.

use super::{Epoch, Held, MAX_BUFFERED, Outgoing, Parts, Peer, PeerError, Proof, Timing};
use crate::event::borrowed_bytes;
use crate::frame::Joiner;
use crate::member::{Identity, MemberId, MemberKey};
use crate::receive::{self, Receiver};
use crate::replica::Replica;
use crate::snapshot::VersionState;
use serde::{Deserialize, Serialize};
use tresor_crypto::Key;
use tresor_crypto::agree::AgreementSecret;
use zeroize::Zeroizing;

/// The encoding's version: a state saved by a newer format is refused, not misread.
const FORMAT: u8 = 1;

#[derive(Serialize, Deserialize)]
struct SavedEpoch<'a> {
    number: u64,
    members: Vec<MemberKey>,
    #[serde(with = "borrowed_bytes")]
    cell_key: &'a [u8],
    mailbox: [u8; 32],
    ended: Option<u64>,
    started: u64,
}

#[derive(Serialize, Deserialize)]
struct SavedOneTime<'a> {
    ack: u64,
    #[serde(with = "borrowed_bytes")]
    secret: &'a [u8],
}

#[derive(Serialize, Deserialize)]
struct SavedOutgoing<'a> {
    seq: u64,
    #[serde(with = "borrowed_bytes")]
    signed: &'a [u8],
    sent: Option<u64>,
    write: bool,
    epoch: u64,
}

#[derive(Serialize, Deserialize)]
struct SavedHeld<'a> {
    sender: MemberId,
    seq: u64,
    #[serde(with = "borrowed_bytes")]
    signed: &'a [u8],
    epoch: u64,
    since: u64,
}

#[derive(Serialize, Deserialize)]
struct SavedProof<'a> {
    sender: MemberId,
    seq: u64,
    #[serde(with = "borrowed_bytes")]
    signed: &'a [u8],
    epoch: u64,
    left: u8,
}

/// The whole state (see the module documentation).
#[derive(Serialize, Deserialize)]
struct Saved<'a> {
    format: u8,
    me: MemberId,
    group: [u8; 32],
    admin: MemberId,
    #[serde(borrow)]
    epochs: Vec<SavedEpoch<'a>>,
    #[serde(borrow)]
    one_time: Vec<SavedOneTime<'a>>,
    posted: Option<u64>,
    their_one_time: Vec<(MemberId, Vec<[u8; 32]>)>,
    moved: Vec<(MemberId, u64)>,
    removed: bool,
    long_term_wraps: u64,
    cutoff: Option<u64>,
    receiver: receive::Saved,
    #[serde(borrow)]
    versions: Vec<VersionState<'a>>,
    applied: Vec<(MemberId, u64)>,
    seq: u64,
    last_hash: [u8; 32],
    lamport: u64,
    #[serde(borrow)]
    unacked: Vec<SavedOutgoing<'a>>,
    #[serde(borrow)]
    held: Vec<SavedHeld<'a>>,
    #[serde(borrow)]
    proofs: Vec<SavedProof<'a>>,
    acked: Vec<(MemberId, u64)>,
    heard: Vec<(MemberId, u64)>,
    last_event_at: u64,
    owed: bool,
    timing: (u64, u64, u64),
}

fn malformed(_: postcard::Error) -> PeerError {
    PeerError::State("it does not decode")
}

impl Peer {
    /// This member's state, to keep sealed until [`Peer::restore`] (see the module
    /// documentation). Wiped on drop.
    pub fn save(&self) -> Result<Zeroizing<Vec<u8>>, PeerError> {
        let one_time_keys: Vec<(u64, Key)> =
            self.one_time.iter().map(|(ack, s)| (*ack, s.to_key())).collect();
        let saved = Saved {
            format: FORMAT,
            me: self.id(),
            group: self.group,
            admin: self.admin,
            epochs: self
                .epochs
                .iter()
                .map(|(number, e)| SavedEpoch {
                    number: *number,
                    members: e.members.clone(),
                    cell_key: e.cell_key.expose_secret(),
                    mailbox: e.mailbox,
                    ended: e.ended,
                    started: e.started,
                })
                .collect(),
            one_time: one_time_keys
                .iter()
                .map(|(ack, key)| SavedOneTime { ack: *ack, secret: key.expose_secret() })
                .collect(),
            posted: self.posted,
            their_one_time: self
                .their_one_time
                .iter()
                .map(|(m, k)| (*m, k.iter().copied().collect()))
                .collect(),
            moved: self.moved.iter().map(|(m, e)| (*m, *e)).collect(),
            removed: self.removed,
            long_term_wraps: self.long_term_wraps,
            cutoff: self.cutoff,
            receiver: self.receiver.save(),
            versions: self.replica.export(),
            applied: self.replica.applied().copied().collect(),
            seq: self.seq,
            last_hash: self.last_hash,
            lamport: self.lamport,
            unacked: self
                .unacked
                .iter()
                .map(|(seq, o)| SavedOutgoing {
                    seq: *seq,
                    signed: &o.signed,
                    sent: o.sent,
                    write: o.write,
                    epoch: o.epoch,
                })
                .collect(),
            held: self
                .held
                .iter()
                .map(|((sender, seq), h)| SavedHeld {
                    sender: *sender,
                    seq: *seq,
                    signed: &h.signed,
                    epoch: h.epoch,
                    since: h.since,
                })
                .collect(),
            proofs: self
                .proofs
                .iter()
                .map(|p| SavedProof {
                    sender: p.sender,
                    seq: p.seq,
                    signed: &p.signed,
                    epoch: p.epoch,
                    left: p.left,
                })
                .collect(),
            acked: self.acked.iter().map(|(m, s)| (*m, *s)).collect(),
            heard: self.heard.iter().map(|(m, s)| (*m, *s)).collect(),
            last_event_at: self.last_event_at,
            owed: self.owed,
            timing: (self.timing.heartbeat, self.timing.skew, self.timing.grace),
        };
        // Sized first: a buffer that grew would leave copies of keys and values behind.
        let size = postcard::experimental::serialized_size(&saved).map_err(malformed)?;
        let mut out = Zeroizing::new(vec![0u8; size]);
        let used = postcard::to_slice(&saved, &mut out).map_err(malformed)?.len();
        out.truncate(used);
        Ok(out)
    }

    /// The member `identity` saved as `bytes` ([`Peer::save`]). Refused if it does not decode,
    /// was saved by a newer format, or is another identity's.
    pub fn restore(identity: Identity, bytes: &[u8]) -> Result<Peer, PeerError> {
        let (saved, rest) = postcard::take_from_bytes::<Saved<'_>>(bytes).map_err(malformed)?;
        if !rest.is_empty() {
            return Err(PeerError::State("it has bytes after its end"));
        }
        if saved.format != FORMAT {
            return Err(PeerError::State("it was saved by another version of tresor"));
        }
        if saved.me != identity.id() {
            return Err(PeerError::State("it belongs to another member"));
        }
        let key = |bytes: &[u8]| -> Result<Key, PeerError> {
            let mut raw: Zeroizing<[u8; 32]> =
                Zeroizing::new(bytes.try_into().map_err(|_| PeerError::State("a key is not 32 bytes"))?);
            Ok(Key::from_bytes(&mut raw))
        };
        let mut epochs = std::collections::BTreeMap::new();
        for e in saved.epochs {
            let epoch = Epoch {
                members: e.members,
                cell_key: key(e.cell_key)?,
                mailbox: e.mailbox,
                joiner: Joiner::new(MAX_BUFFERED),
                ended: e.ended,
                started: e.started,
            };
            epochs.insert(e.number, epoch);
        }
        if epochs.is_empty() {
            return Err(PeerError::State("it holds no epoch"));
        }
        let parts = Parts {
            identity,
            group: saved.group,
            admin: saved.admin,
            epochs,
            receiver: Receiver::load(saved.receiver),
            replica: Replica::restore_applied(&saved.versions, saved.applied),
        };
        let (heartbeat, skew, grace) = saved.timing;
        let timing = Timing { heartbeat, skew, grace };
        let mut peer = Peer::assemble(parts, saved.heard.into_iter().collect(), timing, saved.last_event_at);
        for o in saved.one_time {
            peer.one_time.push((o.ack, AgreementSecret::from_key(&key(o.secret)?)));
        }
        peer.posted = saved.posted;
        peer.their_one_time = saved.their_one_time.into_iter().map(|(m, k)| (m, k.into())).collect();
        peer.moved = saved.moved.into_iter().collect();
        peer.removed = saved.removed;
        peer.long_term_wraps = saved.long_term_wraps;
        peer.cutoff = saved.cutoff;
        peer.seq = saved.seq;
        peer.last_hash = saved.last_hash;
        peer.lamport = saved.lamport;
        for o in saved.unacked {
            let out = Outgoing {
                signed: Zeroizing::new(o.signed.to_vec()),
                sent: o.sent,
                write: o.write,
                epoch: o.epoch,
            };
            peer.unacked.insert(o.seq, out);
        }
        for h in saved.held {
            let held = Held { signed: Zeroizing::new(h.signed.to_vec()), epoch: h.epoch, since: h.since };
            peer.held.insert((h.sender, h.seq), held);
        }
        for p in saved.proofs {
            let signed = Zeroizing::new(p.signed.to_vec());
            peer.proofs.push(Proof { signed, epoch: p.epoch, sender: p.sender, seq: p.seq, left: p.left });
        }
        peer.acked = saved.acked.into_iter().collect();
        peer.owed = saved.owed;
        Ok(peer)
    }
}
