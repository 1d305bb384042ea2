//! One member of a group, without input or output: it makes its own events, turns them into the
//! cells to upload, takes in the cells it downloaded, and says what it saw (sans-IO, so that the
//! deterministic simulation and the real sync loop drive the same code).
//!
//! A write is acknowledged when every other member's heads cover it, never on the relay's word;
//! until then it is uploaded again every `W = 2T + skew`. When nothing else was sent for `T`, a
//! heartbeat is. A member from whom nothing new arrived for `W` is reported silent (withheld or
//! offline: the two cannot be told apart), and events that wait longer than `W` for what they
//! depend on show this member is being kept behind.

use crate::event::{Body, Event, Head, Op, Rekey, Wrapped};
use crate::frame::{self, FrameError, Joiner, Opened, Place};
use crate::member::{Identity, MemberId, MemberKey};
use crate::receive::{Alarm, Receiver};
use crate::replica::Replica;
use crate::snapshot::Snapshot;
use std::collections::{BTreeMap, BTreeSet};
use tresor_crypto::agree::{self, AgreementSecret};
use tresor_crypto::cell::Cell;
use tresor_crypto::derive::hkdf_sha256;
use tresor_crypto::{Key, hash};
use zeroize::Zeroizing;

mod state;

/// One-time keys a member posts with each acknowledgement.
const ONE_TIME_PER_ACK: usize = 4;

/// Bytes of incomplete events a member buffers at most, per epoch.
const MAX_BUFFERED: usize = 16 << 20;

/// A group as every member holds it for one epoch: id, admin, epoch number and members in their
/// order (a member's index is its place in this list).
#[derive(Clone, Debug)]
pub struct Group {
    /// The group id.
    pub id: [u8; 32],
    /// The member who signs rekeys.
    pub admin: MemberId,
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
    /// How long an old epoch's key is kept for members that have not moved on.
    pub grace: u64,
}

impl Timing {
    /// `W = 2T + skew`: how long silence is tolerated, and how often an unacknowledged event is
    /// uploaded again.
    pub fn window(&self) -> u64 {
        2 * self.heartbeat + self.skew
    }
}

impl Default for Timing {
    /// Ten minutes, one minute of skew, and fourteen days of grace. (A vault syncs every minute
    /// in the background: a heartbeat that often would make every round a commit; writes are
    /// acknowledged at the other side's next round anyway.)
    fn default() -> Timing {
        Timing { heartbeat: 600, skew: 60, grace: 14 * 24 * 3600 }
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
    /// The admin started an epoch without this member: it was removed from the group.
    Removed,
    /// The relay holds fewer cells in a mailbox than it showed before: it lost or rolled back
    /// what it stored (unacknowledged events go up again; acknowledged ones are safe with the
    /// members).
    Rollback {
        /// The cells it had shown.
        had: u64,
        /// The cells it holds now.
        now: u64,
    },
    /// The relay holds another cell where the last cell this member read was: it rolled the
    /// mailbox back and let it fill up again past this member's place (the cells it put below
    /// that place would have gone unread). They are read again from the start.
    Rewritten {
        /// The cells this member had read.
        below: u64,
    },
}

impl Warning {
    /// Whether it shows an attack: something an honest group and relay never do (silence and
    /// lagging can come of a member being offline, removal of the admin's choice).
    pub fn is_attack(&self) -> bool {
        matches!(
            self,
            Warning::Group(_)
                | Warning::Foreign(_)
                | Warning::Forged(_)
                | Warning::Flooded
                | Warning::Rollback { .. }
                | Warning::Rewritten { .. }
        )
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::Group(alarm) => write!(f, "a member broke the group's rules: {alarm:?}"),
            Warning::Foreign(1) => f.write_str("the relay served 1 cell that no member sealed (injected)"),
            Warning::Foreign(n) => write!(f, "the relay served {n} cells that no member sealed (injected)"),
            Warning::Forged(why) => write!(f, "cells made with the group's key but by no member: {why}"),
            Warning::Flooded => f.write_str("more unfinished fragments than this member keeps (flooding)"),
            Warning::Rollback { had, now } => {
                write!(f, "the relay rolled back: a mailbox held {had} cells and now holds {now}")
            }
            Warning::Rewritten { below } => write!(
                f,
                "the relay rolled back and refilled a mailbox: its cell {below}, read before, is another now"
            ),
            Warning::Removed => f.write_str("this vault was removed from the group"),
            Warning::Silent { member, since } => {
                let since = tresor::vault::format_time(since.saturating_mul(1000));
                write!(f, "nothing new from member {member} since {since}")
            }
            Warning::Behind { member, since } => {
                let since = tresor::vault::format_time(since.saturating_mul(1000));
                write!(f, "events of member {member} wait since {since} for events the relay has not shown")
            }
        }
    }
}

/// Cells to upload to one mailbox.
pub type Upload = ([u8; 32], Vec<Cell>);

/// An own event not yet acknowledged by every other member.
struct Outgoing {
    signed: Zeroizing<Vec<u8>>,
    sent: Option<u64>,
    write: bool,
    epoch: u64,
}

/// An event of another member, accepted here and kept until every member has it, so that this
/// member can forward it to one that lacks it (its sender may be gone).
struct Held {
    signed: Zeroizing<Vec<u8>>,
    epoch: u64,
    /// When it was accepted or last forwarded.
    since: u64,
}

/// A signed event to send a few times whatever the heads say: one of two events its sender
/// signed at one place, so that every member learns of the equivocation.
struct Proof {
    signed: Zeroizing<Vec<u8>>,
    epoch: u64,
    sender: MemberId,
    seq: u64,
    left: u8,
}

/// One epoch this member holds the key of.
struct Epoch {
    members: Vec<MemberKey>,
    cell_key: Key,
    mailbox: [u8; 32],
    joiner: Joiner,
    /// When the next epoch started here (the grace period counts from then).
    ended: Option<u64>,
    /// When it started here.
    started: u64,
}

impl Epoch {
    fn new(members: Vec<MemberKey>, epoch_key: &Key, group: &[u8; 32], now: u64) -> Epoch {
        Epoch {
            members,
            cell_key: frame::cell_key(epoch_key),
            mailbox: mailbox(epoch_key, group),
            joiner: Joiner::new(MAX_BUFFERED),
            ended: None,
            started: now,
        }
    }
}

/// What a member is made of when it starts: who, in which group, with which epochs, chains and
/// prefix.
struct Parts {
    identity: Identity,
    group: [u8; 32],
    admin: MemberId,
    epochs: BTreeMap<u64, Epoch>,
    receiver: Receiver,
    replica: Replica,
}

/// One member (see the module documentation).
pub struct Peer {
    identity: Identity,
    group: [u8; 32],
    admin: MemberId,
    epochs: BTreeMap<u64, Epoch>,
    /// One-time X25519 keys this member posted and has not used, oldest first.
    /// With the sequence number of the acknowledgement that posted each.
    one_time: Vec<(u64, AgreementSecret)>,
    /// The newest epoch this member posted a one-time key in.
    posted: Option<u64>,
    /// The unused one-time keys of each member's newest acknowledgement (the admin wraps the
    /// next epoch keys to them, oldest first).
    their_one_time: BTreeMap<MemberId, std::collections::VecDeque<[u8; 32]>>,
    /// The newest epoch each member wrote in.
    moved: BTreeMap<MemberId, u64>,
    removed: bool,
    /// Epoch keys this admin wrapped to a member's long-term key (no one-time key of it left).
    long_term_wraps: u64,
    /// Once removed: the last own event the removal lets count.
    cutoff: Option<u64>,
    /// An own event this state did not make, seen on the relay (its place): this state is older
    /// than what the member already signed (restored from a backup, or another copy of the vault
    /// syncs). Not saved: seen again at every round, which then saves nothing.
    stale: Option<u64>,
    receiver: Receiver,
    replica: Replica,
    seq: u64,
    last_hash: [u8; 32],
    lamport: u64,
    unacked: BTreeMap<u64, Outgoing>,
    held: BTreeMap<(MemberId, u64), Held>,
    proofs: Vec<Proof>,
    acked: BTreeMap<MemberId, u64>,
    heard: BTreeMap<MemberId, u64>,
    last_event_at: u64,
    /// Whether another member's write, rekey or acknowledgement was accepted since this member's
    /// last event: the next upload acknowledges it with a heartbeat at once (so acknowledgements
    /// flow without waiting for `T`; a heartbeat answers nothing, so two members never ping-pong).
    owed: bool,
    timing: Timing,
}

/// Why a member could not make or send an event.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// This identity is not a member of the group.
    #[error("this identity is not a member of the group")]
    NotAMember,
    /// The admin removed this member from the group.
    #[error("this member was removed from the group")]
    Removed,
    /// Only the group's admin starts epochs.
    #[error("only the group's admin starts a new epoch")]
    NotAdmin,
    /// Framing failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Signing failed.
    #[error(transparent)]
    Event(#[from] crate::event::EventError),
    /// Wrapping an epoch key failed.
    #[error("wrapping the epoch key failed")]
    Wrap,
    /// A welcome into a group was refused (why says which check failed).
    #[error("joining the group was refused: {0}")]
    Join(&'static str),
    /// A saved state was refused (why says which check failed).
    #[error("the group's saved state is refused: {0}")]
    State(&'static str),
    /// This state is older than what the member signed (its event at this place was seen).
    #[error(
        "this member's state is older than what it already signed (its event {0} is on the relay): it signs nothing more"
    )]
    Stale(u64),
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
        if !group.members.contains(&identity.key()) || group.members.len() > crate::event::MAX_HEADS + 1 {
            return Err(PeerError::NotAMember);
        }
        let heard = group.members.iter().map(|m| (m.id(), now)).collect();
        let receiver = Receiver::new(group.members.iter().copied(), group.admin, group.epoch, prefix);
        let epochs = BTreeMap::from([(group.epoch, Epoch::new(group.members, epoch_key, &group.id, now))]);
        let parts = Parts {
            identity,
            group: group.id,
            admin: group.admin,
            epochs,
            receiver,
            replica: Replica::new(),
        };
        Ok(Peer::assemble(parts, heard, timing, now))
    }

    /// A member with nothing of its own yet, from its parts.
    fn assemble(parts: Parts, heard: BTreeMap<MemberId, u64>, timing: Timing, now: u64) -> Peer {
        let Parts { identity, group, admin, epochs, receiver, replica } = parts;
        Peer {
            identity,
            group,
            admin,
            epochs,
            one_time: Vec::new(),
            posted: None,
            their_one_time: BTreeMap::new(),
            moved: BTreeMap::new(),
            removed: false,
            long_term_wraps: 0,
            cutoff: None,
            stale: None,
            receiver,
            replica,
            seq: 0,
            last_hash: [0; 32],
            lamport: 0,
            unacked: BTreeMap::new(),
            held: BTreeMap::new(),
            proofs: Vec::new(),
            acked: BTreeMap::new(),
            heard,
            last_event_at: now,
            owed: false,
            timing,
        }
    }

    /// This member's id.
    pub fn id(&self) -> MemberId {
        self.identity.id()
    }

    /// The current epoch's number.
    pub fn epoch(&self) -> u64 {
        self.current().0
    }

    /// How long the current epoch has run here, at `now`.
    pub fn epoch_age(&self, now: u64) -> u64 {
        now.saturating_sub(self.current().1.started)
    }

    /// The current epoch's members.
    pub fn members(&self) -> &[MemberKey] {
        &self.current().1.members
    }

    /// How many epoch keys this admin wrapped to a member's long-term key, for want of a
    /// one-time key (such an epoch is opened by the member's recovery phrase, learnt later).
    pub fn long_term_wraps(&self) -> u64 {
        self.long_term_wraps
    }

    /// How many events of `member` this member has accepted (the newest one's number).
    pub fn accepted(&self, member: &MemberId) -> u64 {
        self.receiver.accepted(member)
    }

    /// Whether the admin removed this member.
    pub fn is_removed(&self) -> bool {
        self.removed
    }

    /// The mailboxes to poll: the current epoch's, and the old ones still in their grace period.
    pub fn mailboxes(&self) -> Vec<[u8; 32]> {
        self.epochs.values().map(|e| e.mailbox).collect()
    }

    /// The shared prefix as this member sees it.
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// This member's public keys.
    pub fn key(&self) -> MemberKey {
        self.identity.key()
    }

    /// The group's id.
    pub fn group(&self) -> [u8; 32] {
        self.group
    }

    /// The group's admin.
    pub fn admin(&self) -> MemberId {
        self.admin
    }

    /// When something new last came from `member` (in the caller's clock).
    pub fn heard_from(&self, member: &MemberId) -> Option<u64> {
        self.heard.get(member).copied()
    }

    /// Whether this member is the group's admin (who admits and removes members).
    pub fn is_admin(&self) -> bool {
        self.id() == self.admin
    }

    /// Own writes not yet acknowledged by every other member (a heartbeat, which carries no
    /// write, is not counted: the newest one always waits for the next round).
    pub fn unacknowledged(&self) -> usize {
        self.unacked.values().filter(|o| o.write).count()
    }

    /// Sends every unacknowledged own event again at the next upload, and forwards what another
    /// member still lacks, not a window after they last went (the group moved to another relay,
    /// which holds none of them).
    pub fn resend(&mut self) {
        for pending in self.unacked.values_mut() {
            pending.sent = None;
        }
        for held in self.held.values_mut() {
            held.since = 0;
        }
    }

    /// How many of `cells` open under an epoch key this member holds, in any of its mailboxes:
    /// what this member can read of a relay's contents.
    pub fn readable<'a>(&self, cells: impl IntoIterator<Item = &'a [u8]>) -> usize {
        cells
            .into_iter()
            .filter(|cell| {
                self.epochs.iter().any(|(number, e)| {
                    let place = Place { group: &self.group, epoch: *number, mailbox: &e.mailbox };
                    frame::open_cell(&e.cell_key, place, cell).is_ok()
                })
            })
            .count()
    }

    fn current(&self) -> (u64, &Epoch) {
        match self.epochs.last_key_value() {
            Some((number, epoch)) => (*number, epoch),
            None => unreachable!("a member always holds its current epoch"),
        }
    }

    /// Writes `ops` at `now`: signed, applied here, and queued for upload. Returns its sequence
    /// number.
    pub fn write(&mut self, ops: Vec<Op>, now: u64) -> Result<u64, PeerError> {
        if let Some(at) = self.stale {
            return Err(PeerError::Stale(at));
        }
        self.emit(Body::Write(ops), now)
    }

    /// The place of an own event this state did not make, if one was seen: the state is older
    /// than what this member already signed, and it must not sign again (the same place would
    /// hold two events).
    pub fn stale(&self) -> Option<u64> {
        self.stale
    }

    /// Admits `joiner` (the admin only, after the people compared the pairing words): a new
    /// epoch with it, its key wrapped to the joiner's long-term key, and the welcome to send it
    /// through the pairing mailbox — that rekey and a snapshot of the group sealed under the new
    /// epoch's key.
    pub fn admit(&mut self, joiner: MemberKey, now: u64) -> Result<crate::pair::Message, PeerError> {
        let (rekey, key) = self.start_next(&[joiner], &[], now)?;
        let snapshot = Snapshot {
            group: self.group,
            epoch: self.epoch(),
            rekey: hash(&rekey),
            members: self
                .receiver
                .known_members()
                .filter_map(|m| self.receiver.key_of(&m).copied())
                .collect(),
            chains: self.receiver.checkpoints(),
            cutoffs: self.receiver.cutoffs(),
            excluded: self.receiver.excluded(),
            versions: self.replica.export(),
        };
        let sealed = snapshot.seal(&self.identity, &key, &joiner.id()).map_err(|_| PeerError::Wrap)?;
        Ok(crate::pair::Message::Welcome { rekey: rekey.to_vec(), snapshot: sealed })
    }

    /// Member `identity` joining the group `offer` describes (authenticated by the pairing
    /// words), from the admin's welcome: the rekey that admits it and the group's snapshot.
    pub fn join(
        identity: Identity,
        offer: &crate::pair::Offer,
        rekey: &[u8],
        sealed_snapshot: &[u8],
        prefix: &str,
        timing: Timing,
        now: u64,
    ) -> Result<Peer, PeerError> {
        let refused = |why: &'static str| PeerError::Join(why);
        let event =
            Event::open(rekey, &offer.admin).map_err(|_| refused("the welcome is not the admin's"))?;
        let Body::Rekey(next) = &event.body else { return Err(refused("the welcome holds no rekey")) };
        if event.group != offer.group || event.epoch != offer.epoch || next.epoch != offer.epoch + 1 {
            return Err(refused("the welcome is for another group or epoch than the pairing"));
        }
        let me = identity.id();
        if !next.members.contains(&identity.key()) {
            return Err(refused("the welcome does not admit this member"));
        }
        let wrap = next.wraps.iter().find(|w| w.member == me).ok_or(refused("no key for this member"))?;
        let context = wrap_context(&offer.group, next.epoch, &me);
        let key = agree::unwrap_with(identity.agreement(), &context, &wrap.sealed)
            .map_err(|_| refused("the epoch key does not open for this member"))?;
        let bytes = crate::snapshot::open(sealed_snapshot, &key, &offer.group, next.epoch, &me, &offer.admin)
            .map_err(|_| refused("the snapshot does not open, or is not the admin's"))?;
        let snapshot = Snapshot::decode(&bytes).map_err(|_| refused("the snapshot is malformed"))?;
        if snapshot.group != offer.group || snapshot.epoch != next.epoch || snapshot.rekey != hash(rekey) {
            return Err(refused("the snapshot is not the one of this welcome"));
        }
        let admin = offer.admin.id();
        let mut receiver = Receiver::new(next.members.iter().copied(), admin, next.epoch, prefix);
        for key in &snapshot.members {
            receiver.know(*key);
        }
        for (member, seq, hash, lamport) in &snapshot.chains {
            receiver.start_at(*member, *seq, *hash, *lamport);
        }
        for (member, seq, hash) in &snapshot.cutoffs {
            receiver.restore_cutoff(*member, *seq, *hash);
        }
        for member in &snapshot.excluded {
            receiver.restore_excluded(*member);
        }
        // The group's rules hold for what the snapshot brings too.
        if snapshot.versions.iter().any(|v| {
            let op = match v.deleted {
                true => Op::Delete { path: v.path.to_string() },
                false => {
                    Op::Put { path: v.path.to_string(), value: tresor_crypto::SecretBytes::new(Vec::new()) }
                }
            };
            crate::receive::op_problem(&op).is_some() || v.value.len() > crate::receive::MAX_SHARED_VALUE
        }) {
            return Err(refused("the snapshot holds a path or value the group's rules refuse"));
        }
        let replica = Replica::restore(&snapshot.versions);
        let heard = next.members.iter().map(|m| (m.id(), now)).collect();
        let epochs =
            BTreeMap::from([(next.epoch, Epoch::new(next.members.clone(), &key, &offer.group, now))]);
        let parts = Parts { identity, group: offer.group, admin, epochs, receiver, replica };
        Ok(Peer::assemble(parts, heard, timing, now))
    }

    /// Starts a new epoch (the admin only), without the members in `remove`: a new key wrapped
    /// to one of every remaining member's posted one-time keys (or its long-term key if none is
    /// left: the member has not acknowledged an epoch since its keys were used up),
    /// a new mailbox, and each removed member's chain cut at its last event accepted here.
    pub fn rekey(&mut self, remove: &[MemberId], now: u64) -> Result<u64, PeerError> {
        self.start_next(&[], remove, now)?;
        Ok(self.epoch())
    }

    /// The next epoch, with `add` and without `remove`: the signed rekey and the new key.
    fn start_next(
        &mut self,
        add: &[MemberKey],
        remove: &[MemberId],
        now: u64,
    ) -> Result<(Zeroizing<Vec<u8>>, Key), PeerError> {
        if self.id() != self.admin {
            return Err(PeerError::NotAdmin);
        }
        let next = self.epoch() + 1;
        let key = Key::generate().map_err(|_| PeerError::Wrap)?;
        let mut members: Vec<MemberKey> =
            self.members().iter().copied().filter(|m| !remove.contains(&m.id())).collect();
        for joiner in add {
            if !members.contains(joiner) && !self.receiver.is_removed(&joiner.id()) {
                members.push(*joiner);
            }
        }
        if members.len() > crate::event::MAX_HEADS + 1 {
            return Err(PeerError::NotAMember);
        }
        let mut wraps = Vec::new();
        for member in members.iter().filter(|m| m.id() != self.admin) {
            // A one-time key serves once; a member posts several with each acknowledgement.
            let to = self
                .their_one_time
                .get(&member.id())
                .and_then(|keys| keys.front().copied())
                .unwrap_or(member.agreement);
            if to == member.agreement && !add.contains(member) {
                self.long_term_wraps += 1;
            }
            let sealed = agree::wrap_to(&to, &wrap_context(&self.group, next, &member.id()), &key)
                .map_err(|_| PeerError::Wrap)?;
            wraps.push(Wrapped { member: member.id(), to, sealed: sealed.to_vec() });
        }
        // Only now, every wrap made, are the one-time keys used up.
        for wrap in &wraps {
            if let Some(keys) = self.their_one_time.get_mut(&wrap.member) {
                keys.retain(|k| *k != wrap.to);
            }
        }
        let removed = remove
            .iter()
            .filter(|m| self.members().iter().any(|k| k.id() == **m) && **m != self.admin)
            .map(|m| self.receiver.head(m).unwrap_or(Head { member: *m, seq: 0, hash: [0; 32] }))
            .collect();
        let rekey = Rekey { epoch: next, members: members.clone(), wraps, removed };
        self.emit(Body::Rekey(rekey), now)?;
        let signed = match self.unacked.get(&self.seq) {
            Some(out) => Zeroizing::new(out.signed.to_vec()),
            None => return Err(PeerError::Wrap),
        };
        self.start_epoch(next, members, &key, now);
        Ok((signed, key))
    }

    fn emit(&mut self, body: Body, now: u64) -> Result<u64, PeerError> {
        if self.removed {
            return Err(PeerError::Removed);
        }
        let me = self.id();
        let heads: Vec<Head> = self
            .receiver
            .known_members()
            .filter(|m| *m != me)
            .filter_map(|m| self.receiver.head(&m).map(|h| (m, h)))
            .collect::<BTreeMap<_, _>>()
            .into_values()
            .collect();
        let seen = heads.iter().filter_map(|h| self.receiver.lamport(&h.member, h.seq)).max().unwrap_or(0);
        let epoch = self.epoch();
        let event = Event {
            group: self.group,
            epoch,
            sender: me,
            seq: self.seq + 1,
            prev: self.last_hash,
            heads,
            lamport: self.lamport.max(seen).saturating_add(1),
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
        self.owed = false;
        self.receiver.accept_own(&event, digest);
        self.unacked.insert(event.seq, Outgoing { signed, sent: None, write, epoch });
        self.replica.apply(event);
        Ok(self.seq)
    }

    /// The cells to upload at `now`, per mailbox (empty when there is nothing to say): a
    /// one-time key when this member has not posted one in the current epoch, a heartbeat if
    /// nothing was sent for `T`, new events, and unacknowledged ones last sent `W` ago; each
    /// mailbox's cells padded to a power of two.
    pub fn upload(&mut self, now: u64) -> Result<Vec<Upload>, PeerError> {
        // A state older than what this member signed sends nothing: it would sign places again.
        if self.stale.is_some() {
            return Ok(Vec::new());
        }
        if !self.removed && self.posted != Some(self.epoch()) {
            let mut public = Vec::with_capacity(ONE_TIME_PER_ACK);
            let ack = self.seq + 1;
            for _ in 0..ONE_TIME_PER_ACK {
                let one_time = AgreementSecret::generate().map_err(|_| PeerError::Wrap)?;
                public.push(one_time.public());
                if self.id() != self.admin {
                    self.one_time.push((ack, one_time));
                }
            }
            self.posted = Some(self.epoch());
            self.emit(Body::Ack { one_time: public }, now)?;
        } else if !self.removed
            && (self.owed || now.saturating_sub(self.last_event_at) >= self.timing.heartbeat)
        {
            self.emit(Body::Heartbeat, now)?;
        }
        let mut out: BTreeMap<u64, Vec<Cell>> = BTreeMap::new();
        let window = self.timing.window();
        for (seq, pending) in &mut self.unacked {
            if pending.sent.is_some_and(|at| now.saturating_sub(at) < window) {
                continue;
            }
            if self.removed && self.cutoff.is_none_or(|last| *seq > last) {
                // Removed: only the events its removal lets count still go out, so that members
                // whose events cite them are not kept waiting.
                continue;
            }
            let Some((number, epoch, index)) = carrier(&self.epochs, pending.epoch, &self.identity.id())
            else {
                continue;
            };
            let place = Place { group: &self.group, epoch: number, mailbox: &epoch.mailbox };
            let cells = frame::seal_event(&epoch.cell_key, place, index, *seq, &pending.signed)?;
            out.entry(number).or_default().extend(cells);
            pending.sent = Some(now);
        }
        // Events of others that some member still lacks after a window: forwarded (their
        // senders may be gone); and proofs of equivocation, a few times.
        let others = self.others();
        for ((sender, seq), held) in &mut self.held {
            // In the epoch each member that lacks it last wrote in (a member still catching up
            // reads no newer mailbox), falling back to the event's own and the current one.
            let targets: BTreeSet<u64> = others
                .iter()
                .filter(|m| self.receiver.claimed(m, sender) < *seq)
                .map(|m| self.moved.get(m).copied().unwrap_or(held.epoch))
                .collect();
            if targets.is_empty() || now.saturating_sub(held.since) < window {
                continue;
            }
            for target in targets {
                let Some((number, epoch, index)) = forwarder(&self.epochs, target, held.epoch, sender) else {
                    continue;
                };
                let place = Place { group: &self.group, epoch: number, mailbox: &epoch.mailbox };
                let cells = frame::seal_event(&epoch.cell_key, place, index, *seq, &held.signed)?;
                out.entry(number).or_default().extend(cells);
            }
            held.since = now;
        }
        let mut targets: BTreeSet<u64> = others.iter().filter_map(|m| self.moved.get(m).copied()).collect();
        targets.insert(self.epoch());
        for proof in &mut self.proofs {
            for target in targets.iter().copied() {
                let Some((number, epoch, index)) =
                    forwarder(&self.epochs, target, proof.epoch, &proof.sender)
                else {
                    continue;
                };
                let place = Place { group: &self.group, epoch: number, mailbox: &epoch.mailbox };
                let cells = frame::seal_event(&epoch.cell_key, place, index, proof.seq, &proof.signed)?;
                out.entry(number).or_default().extend(cells);
            }
            proof.left -= 1;
        }
        self.proofs.retain(|p| p.left > 0);
        let mut uploads = Vec::new();
        for (number, mut cells) in out {
            let Some(epoch) = self.epochs.get(&number) else { continue };
            let place = Place { group: &self.group, epoch: number, mailbox: &epoch.mailbox };
            frame::pad_to_bucket(&epoch.cell_key, place, &mut cells)?;
            uploads.push((epoch.mailbox, cells));
        }
        Ok(uploads)
    }

    /// Takes in cells downloaded from `mailbox` at `now`; returns what it saw that an honest
    /// group and relay never produce. Cells of a mailbox this member does not hold (see
    /// [`Peer::mailboxes`], which a download can shorten) are not read.
    pub fn download<'a>(
        &mut self,
        mailbox: &[u8; 32],
        cells: impl IntoIterator<Item = &'a [u8]>,
        now: u64,
    ) -> Vec<Warning> {
        let mut warnings = Vec::new();
        let mut foreign = 0;
        let Some(number) = self.epochs.iter().find(|(_, e)| e.mailbox == *mailbox).map(|(n, _)| *n) else {
            // Not a mailbox of this member (any more: its epoch was retired, and its key is gone).
            return Vec::new();
        };
        for cell in cells {
            // The epoch may be retired by an event of this very download.
            let Some(epoch) = self.epochs.get_mut(&number) else {
                foreign += 1;
                continue;
            };
            let place = Place { group: &self.group, epoch: number, mailbox: &epoch.mailbox };
            let fragment = match frame::open_cell(&epoch.cell_key, place, cell) {
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
            let Some(key) = epoch.members.get(usize::from(fragment.sender)).copied() else {
                warnings.push(Warning::Forged("a fragment from a member index outside the epoch".into()));
                continue;
            };
            if self.receiver.accepted_hash(&key.id(), fragment.seq) == Some(fragment.hash) {
                // Delivered again (a replay, or an upload again): its event is accepted already.
                // (Another event at an accepted place goes on, to be proved an equivocation.)
                continue;
            }
            let next = self.receiver.accepted(&key.id()) + 1;
            let joined = match epoch.joiner.add(fragment, next) {
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
            let event = match Event::open(&joined.bytes, &key) {
                Ok(event) => event,
                Err(e) => {
                    warnings.push(Warning::Forged(e.to_string()));
                    continue;
                }
            };
            // An event goes in cells of its own epoch, or of a later one once its epoch's key is
            // retired (never an earlier one).
            if event.group != self.group || event.epoch > number || event.seq != joined.seq {
                warnings
                    .push(Warning::Forged("a signed event moved to another group, epoch or place".into()));
                continue;
            }
            let (sender, seq) = (event.sender, event.seq);
            // Signed with this member's own key, yet not made by this state — a place beyond its
            // own, or another event at a place whose event it knows (a place it no longer knows
            // the hash of may be its own event replayed): an older copy of this member signed it.
            let other_at_known =
                || self.receiver.accepted_hash(&sender, seq).is_some_and(|known| known != joined.hash);
            if sender == self.id() && (seq > self.seq || other_at_known()) {
                self.stale = Some(self.stale.map_or(seq, |at| at.max(seq)));
                continue;
            }
            let copy = Zeroizing::new(joined.bytes.to_vec());
            let received = self.receiver.receive(event, joined.hash, joined.bytes, now);
            for alarm in &received.alarms {
                match alarm {
                    // The event just received is one of two at a place: it and the other (if
                    // held here) go to every member as the proof.
                    Alarm::Equivocation { member, seq: at } if *member == sender => {
                        if *at == seq {
                            self.proofs.push(Proof {
                                signed: copy.clone(),
                                epoch: number,
                                sender,
                                seq,
                                left: 3,
                            });
                        }
                        self.prove(member, *at);
                    }
                    // A member saw another event at a place than this one accepted: it gets
                    // this one, and learns of the equivocation itself.
                    Alarm::Fork { member, seq: at, .. } => self.prove(member, *at),
                    _ => {}
                }
            }
            warnings.extend(received.alarms.into_iter().map(Warning::Group));
            // Fragments of events now accepted will never be needed (only accepted ones: an
            // unverified claim must not clear an honest sender's fragments).
            if let Some(epoch) = self.epochs.get_mut(&number) {
                for accepted in &received.accepted {
                    let sender = accepted.event.sender;
                    if let Some(index) = epoch.members.iter().position(|m| m.id() == sender) {
                        let index = u16::try_from(index).unwrap_or(u16::MAX);
                        epoch.joiner.forget_through(index, self.receiver.accepted(&sender));
                    }
                }
            }
            for accepted in received.accepted {
                let key = (accepted.event.sender, accepted.event.seq);
                self.held
                    .insert(key, Held { signed: accepted.signed, epoch: accepted.event.epoch, since: now });
                self.take_in(accepted.event, now, &mut warnings);
            }
            for (member, seq) in received.taken_back {
                self.replica.unapply(&member, seq);
                self.held.remove(&(member, seq));
            }
        }
        if foreign > 0 {
            warnings.push(Warning::Foreign(foreign));
        }
        self.forget_acknowledged();
        self.retire_epochs(now);
        warnings
    }

    /// What an accepted event changes here beyond the receiver's chains.
    fn take_in(&mut self, mut event: Event, now: u64, warnings: &mut Vec<Warning>) {
        self.heard.insert(event.sender, now);
        self.owed |= !matches!(event.body, Body::Heartbeat);
        let moved = self.moved.entry(event.sender).or_default();
        *moved = (*moved).max(event.epoch);
        if let Some(head) = event.head_of(&self.id()) {
            let acked = self.acked.entry(event.sender).or_default();
            *acked = (*acked).max(head.seq);
        }
        match std::mem::replace(&mut event.body, Body::Heartbeat) {
            Body::Ack { one_time } => {
                self.their_one_time.insert(event.sender, one_time.into());
            }
            Body::Rekey(rekey) => self.take_in_rekey(rekey, now, warnings),
            body => {
                event.body = body;
                self.replica.apply(event);
            }
        }
    }

    /// A rekey the receiver accepted (so the admin's, into the next epoch): take the new key,
    /// or learn that this member was removed.
    fn take_in_rekey(&mut self, rekey: Rekey, now: u64, warnings: &mut Vec<Warning>) {
        let me = self.id();
        if !rekey.members.iter().any(|m| m.id() == me) {
            self.removed = true;
            self.cutoff = rekey.removed.iter().find(|h| h.member == me).map(|h| h.seq);
            warnings.push(Warning::Removed);
            return;
        }
        let Some(wrap) = rekey.wraps.iter().find(|w| w.member == me) else { return };
        let context = wrap_context(&self.group, rekey.epoch, &me);
        let long_term = self.identity.agreement();
        let opened = if wrap.to == long_term.public() {
            agree::unwrap_with(long_term, &context, &wrap.sealed).ok()
        } else {
            match self.one_time.iter().position(|(_, s)| s.public() == wrap.to) {
                Some(used) => {
                    let key = agree::unwrap_with(&self.one_time[used].1, &context, &wrap.sealed).ok();
                    // Forward secrecy: the one-time key and every older one are gone.
                    self.one_time.drain(..=used);
                    key
                }
                None => None,
            }
        };
        match opened {
            Some(key) => self.start_epoch(rekey.epoch, rekey.members, &key, now),
            None => {
                warnings.push(Warning::Forged("the new epoch's key does not open for this member".into()))
            }
        }
    }

    fn start_epoch(&mut self, number: u64, members: Vec<MemberKey>, key: &Key, now: u64) {
        for epoch in self.epochs.values_mut() {
            epoch.ended.get_or_insert(now);
        }
        self.epochs.insert(number, Epoch::new(members, key, &self.group, now));
    }

    /// Drops old epochs' keys (forward secrecy) once every current member wrote in a newer epoch
    /// and no own event of theirs waits for acknowledgement, or after the grace period.
    fn retire_epochs(&mut self, now: u64) {
        if self.removed {
            return;
        }
        let current = self.epoch();
        let me = self.id();
        let members: Vec<MemberId> = self.members().iter().map(MemberKey::id).filter(|m| *m != me).collect();
        let unacked: Vec<u64> = self.unacked.values().map(|o| o.epoch).collect();
        let moved = &self.moved;
        let grace = self.timing.grace;
        self.epochs.retain(|number, epoch| {
            let everyone_moved = members.iter().all(|m| moved.get(m).is_some_and(|e| e > number));
            let expired = epoch.ended.is_some_and(|at| now.saturating_sub(at) > grace);
            *number == current || !(expired || everyone_moved && !unacked.contains(number))
        });
    }

    /// Sends the event held at (member, seq), if any, as a proof.
    fn prove(&mut self, member: &MemberId, seq: u64) {
        if let Some(held) = self.held.get(&(*member, seq))
            && !self
                .proofs
                .iter()
                .any(|p| p.sender == *member && p.seq == seq && p.signed.as_slice() == held.signed.as_slice())
        {
            let signed = Zeroizing::new(held.signed.to_vec());
            self.proofs.push(Proof { signed, epoch: held.epoch, sender: *member, seq, left: 3 });
        }
    }

    /// The members whose acknowledgement counts: the current epoch's, but for this one and
    /// those excluded.
    fn others(&self) -> Vec<MemberId> {
        let me = self.id();
        self.members()
            .iter()
            .map(MemberKey::id)
            .filter(|m| *m != me && !self.receiver.is_excluded(m))
            .collect()
    }

    /// Drops own events every other (not excluded, not removed) member has acknowledged.
    fn forget_acknowledged(&mut self) {
        let me = self.id();
        let everyone = self
            .members()
            .iter()
            .map(MemberKey::id)
            .filter(|m| *m != me && !self.receiver.is_excluded(m))
            .map(|m| self.acked.get(&m).copied().unwrap_or(0))
            .min()
            .unwrap_or(self.seq);
        self.unacked.retain(|seq, _| *seq > everyone);
        // Once the admin took a newer acknowledgement, it wraps only to that one's keys: the
        // keys of older ones are never used, and go.
        let taken = self.receiver.claimed(&self.admin, &self.id());
        if let Some(newest) = self.one_time.iter().map(|(ack, _)| *ack).filter(|ack| *ack <= taken).max() {
            self.one_time.retain(|(ack, _)| *ack >= newest);
        }
        let others = self.others();
        let receiver = &self.receiver;
        self.held.retain(|(sender, seq), _| others.iter().any(|m| receiver.claimed(m, sender) < *seq));
        self.proofs.retain(|p| p.left > 0);
    }

    /// Members silent for longer than `W`, and members whose events wait longer than `W` for what
    /// they depend on, at `now`.
    pub fn silence(&self, now: u64) -> Vec<Warning> {
        let me = self.id();
        let window = self.timing.window();
        let current: Vec<MemberId> = self.members().iter().map(MemberKey::id).collect();
        let mut out: Vec<Warning> = self
            .heard
            .iter()
            .filter(|(m, since)| {
                **m != me
                    && current.contains(m)
                    && !self.receiver.is_excluded(m)
                    && now.saturating_sub(**since) > window
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

/// The epoch an event of `sender` from epoch `epoch` goes out in: its own while its key is held,
/// else the current one; with the sender's index there (none if it is not a member there).
fn carrier<'a>(
    epochs: &'a BTreeMap<u64, Epoch>,
    epoch: u64,
    sender: &MemberId,
) -> Option<(u64, &'a Epoch, u16)> {
    let (number, held) = match epochs.get_key_value(&epoch) {
        Some(found) => found,
        None => epochs.last_key_value()?,
    };
    let index = held.members.iter().position(|m| m.id() == *sender)?;
    Some((*number, held, u16::try_from(index).ok()?))
}

/// The epoch another member's event (of epoch `own`) is forwarded in for a member that reads
/// epoch `target`: that one if held here and no older than the event, else the current one, else
/// the event's own — each only if its sender is a member there.
fn forwarder<'a>(
    epochs: &'a BTreeMap<u64, Epoch>,
    target: u64,
    own: u64,
    sender: &MemberId,
) -> Option<(u64, &'a Epoch, u16)> {
    let (current, _) = epochs.last_key_value()?;
    let in_epoch = |number: u64| {
        let held = epochs.get(&number)?;
        let index = held.members.iter().position(|m| m.id() == *sender)?;
        Some((number, held, u16::try_from(index).ok()?))
    };
    (target >= own)
        .then(|| in_epoch(target))
        .flatten()
        .or_else(|| in_epoch(*current))
        .or_else(|| in_epoch(own))
}

/// What a wrapped epoch key is bound to: the group, the epoch and the member.
fn wrap_context(group: &[u8; 32], epoch: u64, member: &MemberId) -> Vec<u8> {
    [b"tresor-sync wrap".as_slice(), group, &epoch.to_be_bytes(), &member.0].concat()
}

/// The mailbox of an epoch: `HKDF(K_e, "tresor-sync mailbox" ‖ group)`.
pub fn mailbox(epoch_key: &Key, group: &[u8; 32]) -> [u8; 32] {
    let info = [b"tresor-sync mailbox".as_slice(), group].concat();
    *hkdf_sha256(epoch_key.expose_secret(), b"", &info).expose_secret()
}
