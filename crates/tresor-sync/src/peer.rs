//! One member of a group, without input or output: it makes its own events, turns them into the
//! cells to upload, takes in the cells it downloaded, and says what it saw (sans-IO, so that the
//! deterministic simulation and the real sync loop drive the same code).
//!
//! A write is acknowledged when every other member's heads cover it, never on the relay's word;
//! until then it is uploaded again every `W = 2T + skew`. When nothing else was sent for `T`, a
//! heartbeat is. A member from whom nothing new arrived for `W` is reported silent (withheld or
//! offline: the two cannot be told apart), and events that wait longer than `W` for what they
//! depend on show this member is being kept behind.

use crate::event::{Body, Event, Head, Op};
use crate::frame::{self, FrameError, Joiner, Opened, Place};
use crate::member::{Identity, MemberId, MemberKey};
use crate::receive::{Alarm, Receiver};
use crate::replica::Replica;
use std::collections::BTreeMap;
use tresor_crypto::cell::Cell;
use tresor_crypto::derive::hkdf_sha256;
use tresor_crypto::{Key, hash};
use zeroize::Zeroizing;

/// Bytes of incomplete events a member buffers at most.
const MAX_BUFFERED: usize = 16 << 20;

/// A group as every member holds it for one epoch: id, epoch number and members in their order
/// (a member's index is its place in this list).
#[derive(Clone, Debug)]
pub struct Group {
    /// The group id.
    pub id: [u8; 32],
    /// The epoch number.
    pub epoch: u64,
    /// The members of the epoch.
    pub members: Vec<MemberKey>,
}

/// Intervals, in the caller's clock (seconds).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// `T`: a heartbeat when nothing else was sent for this long.
    pub heartbeat: u64,
    /// The clock skew tolerated between members.
    pub skew: u64,
}

impl Timing {
    /// `W = 2T + skew`: how long silence is tolerated, and how often an unacknowledged event is
    /// uploaded again.
    pub fn window(&self) -> u64 {
        2 * self.heartbeat + self.skew
    }
}

impl Default for Timing {
    /// One minute, and thirty seconds of skew.
    fn default() -> Timing {
        Timing { heartbeat: 60, skew: 30 }
    }
}

/// What a member reports after taking in cells, or when asked about silence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Warning {
    /// A rule of the group was broken by a member, or a member equivocated.
    Group(Alarm),
    /// Cells that do not open here: injected, or sealed for another place.
    Foreign(usize),
    /// Cells or events made with the epoch key that no member signed, or that break the layout:
    /// someone holding the epoch key (a member, or one removed before a rekey) forged them.
    Forged(String),
    /// More incomplete fragments than this member buffers.
    Flooded,
    /// Nothing new from this member for longer than `W`, since the given time.
    Silent {
        /// The member.
        member: MemberId,
        /// When something new last came from it.
        since: u64,
    },
    /// Events of this member wait longer than `W` for events they depend on: the relay shows this
    /// member a history other members have seen more of.
    Behind {
        /// The member whose events wait.
        member: MemberId,
        /// Since when.
        since: u64,
    },
}

/// An own event not yet acknowledged by every other member.
struct Outgoing {
    signed: Zeroizing<Vec<u8>>,
    sent: Option<u64>,
    write: bool,
}

/// One member (see the module documentation).
pub struct Peer {
    identity: Identity,
    index: u16,
    group: Group,
    cell_key: Key,
    mailbox: [u8; 32],
    receiver: Receiver,
    replica: Replica,
    joiner: Joiner,
    seq: u64,
    last_hash: [u8; 32],
    lamport: u64,
    unacked: BTreeMap<u64, Outgoing>,
    acked: BTreeMap<MemberId, u64>,
    heard: BTreeMap<MemberId, u64>,
    last_event_at: u64,
    timing: Timing,
}

/// Why a member could not make or send an event.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// This identity is not a member of the group.
    #[error("this identity is not a member of the group")]
    NotAMember,
    /// Framing failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Signing failed.
    #[error(transparent)]
    Event(#[from] crate::event::EventError),
}

impl Peer {
    /// Member `identity` of `group`, whose epoch key is `epoch_key` and whose shared prefix lands
    /// at `prefix` here, starting at `now`.
    pub fn new(
        identity: Identity,
        group: Group,
        epoch_key: &Key,
        prefix: &str,
        timing: Timing,
        now: u64,
    ) -> Result<Peer, PeerError> {
        let index = group.members.iter().position(|m| *m == identity.key()).ok_or(PeerError::NotAMember)?;
        let index = u16::try_from(index).map_err(|_| PeerError::NotAMember)?;
        let mailbox = mailbox(epoch_key, &group.id);
        let heard = group.members.iter().map(|m| (m.id(), now)).collect();
        Ok(Peer {
            receiver: Receiver::new(group.members.iter().copied(), prefix),
            cell_key: frame::cell_key(epoch_key),
            identity,
            index,
            group,
            mailbox,
            replica: Replica::new(),
            joiner: Joiner::new(MAX_BUFFERED),
            seq: 0,
            last_hash: [0; 32],
            lamport: 0,
            unacked: BTreeMap::new(),
            acked: BTreeMap::new(),
            heard,
            last_event_at: now,
            timing,
        })
    }

    /// This member's id.
    pub fn id(&self) -> MemberId {
        self.identity.id()
    }

    /// The mailbox this epoch's cells go to.
    pub fn mailbox(&self) -> [u8; 32] {
        self.mailbox
    }

    /// The shared prefix as this member sees it.
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// Own writes not yet acknowledged by every other member (a heartbeat, which carries no
    /// write, is not counted: the newest one always waits for the next round).
    pub fn unacknowledged(&self) -> usize {
        self.unacked.values().filter(|o| o.write).count()
    }

    /// Writes `ops` at `now`: signed, applied here, and queued for upload. Returns its sequence
    /// number.
    pub fn write(&mut self, ops: Vec<Op>, now: u64) -> Result<u64, PeerError> {
        self.emit(Body::Write(ops), now)
    }

    fn emit(&mut self, body: Body, now: u64) -> Result<u64, PeerError> {
        let me = self.id();
        let heads: Vec<Head> = self
            .group
            .members
            .iter()
            .map(MemberKey::id)
            .filter(|m| *m != me)
            .filter_map(|m| self.receiver.head(&m).map(|h| (m, h)))
            .collect::<BTreeMap<_, _>>()
            .into_values()
            .collect();
        let seen = heads.iter().filter_map(|h| self.receiver.lamport(&h.member, h.seq)).max().unwrap_or(0);
        let event = Event {
            group: self.group.id,
            epoch: self.group.epoch,
            sender: me,
            seq: self.seq + 1,
            prev: self.last_hash,
            heads,
            lamport: self.lamport.max(seen) + 1,
            time: now,
            body,
        };
        let write = matches!(event.body, Body::Write(_));
        let signed = event.sign(&self.identity)?;
        let digest = hash(&signed);
        self.seq = event.seq;
        self.last_hash = digest;
        self.lamport = event.lamport;
        self.last_event_at = now;
        self.receiver.accept_own(&event, digest);
        self.unacked.insert(event.seq, Outgoing { signed, sent: None, write });
        self.replica.apply(event);
        Ok(self.seq)
    }

    /// The cells to upload at `now` (empty when there is nothing to say): a heartbeat if nothing
    /// was sent for `T`, new events, and unacknowledged ones last sent `W` ago; padded to a power
    /// of two.
    pub fn upload(&mut self, now: u64) -> Result<Vec<Cell>, PeerError> {
        if now.saturating_sub(self.last_event_at) >= self.timing.heartbeat {
            self.emit(Body::Heartbeat, now)?;
        }
        let place = Place { group: &self.group.id, epoch: self.group.epoch, mailbox: &self.mailbox };
        let mut cells = Vec::new();
        for (seq, out) in &mut self.unacked {
            if out.sent.is_some_and(|at| now.saturating_sub(at) < self.timing.window()) {
                continue;
            }
            cells.extend(frame::seal_event(&self.cell_key, place, self.index, *seq, &out.signed)?);
            out.sent = Some(now);
        }
        if !cells.is_empty() {
            frame::pad_to_bucket(&self.cell_key, place, &mut cells)?;
        }
        Ok(cells)
    }

    /// Takes in cells downloaded from the mailbox at `now`; returns what it saw that an honest
    /// group and relay never produce.
    pub fn download<'a>(&mut self, cells: impl IntoIterator<Item = &'a [u8]>, now: u64) -> Vec<Warning> {
        let place = Place { group: &self.group.id, epoch: self.group.epoch, mailbox: &self.mailbox };
        let mut warnings = Vec::new();
        let mut foreign = 0;
        for cell in cells {
            let fragment = match frame::open_cell(&self.cell_key, place, cell) {
                Ok(Opened::Filler) => continue,
                Ok(Opened::Fragment(f)) => f,
                Err(FrameError::Unopenable) => {
                    foreign += 1;
                    continue;
                }
                Err(e) => {
                    warnings.push(Warning::Forged(e.to_string()));
                    continue;
                }
            };
            let Some(sender) = self.group.members.get(usize::from(fragment.sender)).map(MemberKey::id) else {
                warnings.push(Warning::Forged("a fragment from a member index outside the group".into()));
                continue;
            };
            if self.receiver.accepted_hash(&sender, fragment.seq) == Some(fragment.hash) {
                // Delivered again (a replay, or an upload again): its event is accepted already.
                // (Another event at an accepted place goes on, to be proved an equivocation.)
                continue;
            }
            let joined = match self.joiner.add(fragment) {
                Ok(Some(joined)) => joined,
                Ok(None) => continue,
                Err(FrameError::Overflow(_)) => {
                    warnings.push(Warning::Flooded);
                    continue;
                }
                Err(e) => {
                    warnings.push(Warning::Forged(e.to_string()));
                    continue;
                }
            };
            let Some(key) = self.group.members.get(usize::from(joined.sender)).copied() else {
                warnings.push(Warning::Forged("an event from a member index outside the group".into()));
                continue;
            };
            if key == self.identity.key() {
                // Its own event coming back: accepted when it was made.
                continue;
            }
            let event = match Event::open(&joined.bytes, &key) {
                Ok(event) => event,
                Err(e) => {
                    warnings.push(Warning::Forged(e.to_string()));
                    continue;
                }
            };
            if event.group != self.group.id || event.epoch != self.group.epoch || event.seq != joined.seq {
                warnings
                    .push(Warning::Forged("a signed event moved to another group, epoch or place".into()));
                continue;
            }
            let (accepted, alarms) = self.receiver.receive(event, joined.hash, now);
            warnings.extend(alarms.into_iter().map(Warning::Group));
            for event in accepted {
                if let Some(index) = self.group.members.iter().position(|m| m.id() == event.sender) {
                    self.joiner.forget_through(u16::try_from(index).unwrap_or(u16::MAX), event.seq);
                }
                self.heard.insert(event.sender, now);
                if let Some(head) = event.head_of(&self.id()) {
                    let acked = self.acked.entry(event.sender).or_default();
                    *acked = (*acked).max(head.seq);
                }
                self.replica.apply(event);
            }
        }
        if foreign > 0 {
            warnings.push(Warning::Foreign(foreign));
        }
        self.forget_acknowledged();
        warnings
    }

    /// Drops own events every other (not excluded) member has acknowledged.
    fn forget_acknowledged(&mut self) {
        let me = self.id();
        let everyone = self
            .group
            .members
            .iter()
            .map(MemberKey::id)
            .filter(|m| *m != me && !self.receiver.is_excluded(m))
            .map(|m| self.acked.get(&m).copied().unwrap_or(0))
            .min()
            .unwrap_or(self.seq);
        self.unacked.retain(|seq, _| *seq > everyone);
    }

    /// Members silent for longer than `W`, and members whose events wait longer than `W` for what
    /// they depend on, at `now`.
    pub fn silence(&self, now: u64) -> Vec<Warning> {
        let me = self.id();
        let window = self.timing.window();
        let mut out: Vec<Warning> = self
            .heard
            .iter()
            .filter(|(m, since)| {
                **m != me && !self.receiver.is_excluded(m) && now.saturating_sub(**since) > window
            })
            .map(|(m, since)| Warning::Silent { member: *m, since: *since })
            .collect();
        out.extend(
            self.receiver
                .waiting_since()
                .into_iter()
                .filter(|(_, since)| now.saturating_sub(*since) > window)
                .map(|(member, since)| Warning::Behind { member, since }),
        );
        out
    }
}

/// The mailbox of an epoch: `HKDF(K_e, "tresor-sync mailbox" ‖ group)`.
pub fn mailbox(epoch_key: &Key, group: &[u8; 32]) -> [u8; 32] {
    let info = [b"tresor-sync mailbox".as_slice(), group].concat();
    *hkdf_sha256(epoch_key.expose_secret(), b"", &info).expose_secret()
}
