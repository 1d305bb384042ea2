//! The receiver's rules: which signed events are accepted, in what order, and what a refused one
//! proves (ARCHITECTURE.md, "Sharing and sync through a relay", **Receiving**).
//!
//! Per sender the receiver pins a chain of (sequence number → event hash, Lamport clock). An event
//! waits until it is the next of its sender's chain and everything its heads name has been
//! accepted (causal delivery); then its `prev`, heads, Lamport clock and paths are checked. Two
//! signed events at one place of a chain are an equivocation and exclude their signer; an event
//! that breaks a rule only its signer could break excludes its signer too. Duplicates — a relay's
//! replays and an honest sender's uploads again — change nothing.

use crate::chain::{At, Chain};
use crate::event::{Body, Event, Head, Op};
use crate::member::{MemberId, MemberKey};
use std::collections::{BTreeMap, BTreeSet};
use zeroize::Zeroizing;

/// Most events held while they wait for what they depend on; more are dropped (their senders
/// upload them again until every member acknowledged them).
pub const MAX_WAITING: usize = 4096;
/// Most bytes of events held while they wait (the events farthest ahead of their senders go
/// first).
pub const MAX_WAITING_BYTES: usize = 64 << 20;
/// How far past a sender's next expected event an event is held; farther ones are dropped
/// (the sender uploads them again).
pub const MAX_AHEAD: u64 = 64;
/// Most events of a removed or excluded member past its cut that one claim may name.
pub const MAX_UNCHECKED: u64 = 1024;
/// The largest Lamport clock accepted (far beyond any honest history, far below overflow).
pub const MAX_LAMPORT: u64 = 1 << 48;

/// Something the receiver saw that an honest group and relay never produce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Alarm {
    /// A member signed two different events at one place of its chain (proved by the two
    /// hashes). It is excluded: nothing it sends is accepted any more.
    Equivocation {
        /// The member.
        member: MemberId,
        /// The place in its chain.
        seq: u64,
    },
    /// An event claims, in its heads, an event of a third member that differs from the one
    /// accepted here: that third member equivocated, and the claimant saw the other branch. The
    /// claim's event is not accepted.
    Fork {
        /// Who made the claim.
        claimant: MemberId,
        /// The member whose chain forked.
        member: MemberId,
        /// Where.
        seq: u64,
    },
    /// A signed event breaks a rule only its signer could break (why says which). Its signer is
    /// excluded.
    Misbehaved {
        /// The signer.
        member: MemberId,
        /// Its sequence number.
        seq: u64,
        /// The rule.
        why: &'static str,
    },
    /// An event from someone who is not a member of the group.
    Stranger,
    /// An event a removed member wrote after the last one its removal lets count: refused.
    AfterRemoval {
        /// The removed member.
        member: MemberId,
        /// The refused event's sequence number.
        seq: u64,
    },
}

/// What taking in one event did.
#[derive(Default)]
pub struct Received {
    /// Events accepted, in causal order (the one taken in and those that waited for it).
    pub accepted: Vec<Accepted>,
    /// Events accepted earlier that are taken back now: a removal cut their sender's chain
    /// before them, or their sender equivocated at or before them. (member, seq).
    pub taken_back: Vec<(MemberId, u64)>,
    /// What was seen that an honest group never produces.
    pub alarms: Vec<Alarm>,
}

/// An accepted event, with its hash and signed bytes (which a member forwards to those that
/// lack it).
pub struct Accepted {
    /// The event.
    pub event: Event,
    /// Its hash.
    pub hash: [u8; 32],
    /// Its signed bytes.
    pub signed: Zeroizing<Vec<u8>>,
}

/// A receiver as a member keeps it between runs ([`Receiver::save`]); nothing in it is secret.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Saved {
    prefix: String,
    admin: MemberId,
    epoch: u64,
    epoch_members: Vec<MemberId>,
    cutoffs: Vec<(MemberId, u64, [u8; 32])>,
    members: Vec<MemberKey>,
    chains: Vec<(MemberId, Chain)>,
    known: Vec<(MemberId, Vec<Head>)>,
    excluded: Vec<MemberId>,
}

/// A signed event that arrived before what it depends on.
struct Waiting {
    hash: [u8; 32],
    event: Event,
    signed: Zeroizing<Vec<u8>>,
    since: u64,
}

/// The receiver (see the module documentation).
pub struct Receiver {
    prefix: String,
    admin: MemberId,
    /// The newest epoch a rekey accepted here started (the genesis epoch before any).
    epoch: u64,
    /// That epoch's members.
    epoch_members: BTreeSet<MemberId>,
    /// Removed members: their last event that counts (sequence number and hash).
    cutoffs: BTreeMap<MemberId, (u64, [u8; 32])>,
    members: BTreeMap<MemberId, MemberKey>,
    chains: BTreeMap<MemberId, Chain>,
    /// The heads of each sender's newest accepted event: a member's knowledge never shrinks.
    known: BTreeMap<MemberId, Vec<Head>>,
    waiting: BTreeMap<(MemberId, u64), Waiting>,
    waiting_bytes: usize,
    excluded: BTreeSet<MemberId>,
    /// Events taken back by exclusions since the last `receive` returned.
    taken: Vec<(MemberId, u64)>,
}

impl Receiver {
    /// A receiver for a group of `members`, administered by `admin`, whose shared prefix lands
    /// at `prefix` in this vault (kept with its state; received paths are checked by the group's
    /// own rules, [`op_problem`], the same on every member).
    pub fn new(
        members: impl IntoIterator<Item = MemberKey>,
        admin: MemberId,
        epoch: u64,
        prefix: &str,
    ) -> Receiver {
        let members: BTreeMap<MemberId, MemberKey> = members.into_iter().map(|k| (k.id(), k)).collect();
        Receiver {
            epoch_members: members.keys().copied().collect(),
            prefix: prefix.to_string(),
            admin,
            epoch,
            cutoffs: BTreeMap::new(),
            members,
            chains: BTreeMap::new(),
            known: BTreeMap::new(),
            waiting: BTreeMap::new(),
            waiting_bytes: 0,
            excluded: BTreeSet::new(),
            taken: Vec::new(),
        }
    }

    /// Every member known here, removed and excluded ones included.
    pub fn known_members(&self) -> impl Iterator<Item = MemberId> + '_ {
        self.members.keys().copied()
    }

    /// The key of member `id`, if it is one.
    pub fn key_of(&self, id: &MemberId) -> Option<&MemberKey> {
        self.members.get(id)
    }

    /// The newest sequence number of `about` that `of`'s newest accepted event claims to have
    /// applied (its own chain for itself).
    pub fn claimed(&self, of: &MemberId, about: &MemberId) -> u64 {
        if of == about {
            return self.accepted(of);
        }
        self.known.get(of).and_then(|heads| heads.iter().find(|h| h.member == *about)).map_or(0, |h| h.seq)
    }

    /// The newest accepted (sequence number, hash) of `member`: the head this member claims for
    /// it in its own next event.
    pub fn head(&self, member: &MemberId) -> Option<Head> {
        let chain = self.chains.get(member)?;
        let (hash, _) = chain.last()?;
        Some(Head { member: *member, seq: chain.len(), hash })
    }

    /// How many events of `member` have been accepted (its chain's length).
    pub fn accepted(&self, member: &MemberId) -> u64 {
        self.chains.get(member).map_or(0, Chain::len)
    }

    /// The hash of accepted event `seq` of `member` (none before a checkpoint).
    pub fn accepted_hash(&self, member: &MemberId, seq: u64) -> Option<[u8; 32]> {
        match self.at(member, seq) {
            At::Exact(hash, _) => Some(hash),
            _ => None,
        }
    }

    /// Lamport clock of accepted event `seq` of `member` (before a checkpoint: its bound).
    pub fn lamport(&self, member: &MemberId, seq: u64) -> Option<u64> {
        match self.at(member, seq) {
            At::Exact(_, lamport) | At::Before(lamport) => Some(lamport),
            At::Missing => None,
        }
    }

    fn at(&self, member: &MemberId, seq: u64) -> At {
        self.chains.get(member).map_or(At::Missing, |c| c.at(seq))
    }

    /// Starts `member`'s chain at a checkpoint (a member that joined after its first events):
    /// event `seq`, with its hash and clock, and everything before it, count as accepted.
    pub fn start_at(&mut self, member: MemberId, seq: u64, hash: [u8; 32], lamport: u64) {
        self.chains.insert(member, Chain::from_checkpoint(seq, hash, lamport));
    }

    /// Makes `key` a known member (one a snapshot names, removed ones too).
    pub fn know(&mut self, key: MemberKey) {
        self.members.entry(key.id()).or_insert(key);
    }

    /// Restores a removal a snapshot names: `member`'s chain ends at `seq` (hash `hash`).
    pub fn restore_cutoff(&mut self, member: MemberId, seq: u64, hash: [u8; 32]) {
        self.cutoffs.insert(member, (seq, hash));
    }

    /// Restores an exclusion a snapshot names.
    pub fn restore_excluded(&mut self, member: MemberId) {
        self.excluded.insert(member);
    }

    /// The removals in force: (member, last seq, its hash).
    pub fn cutoffs(&self) -> Vec<(MemberId, u64, [u8; 32])> {
        self.cutoffs.iter().map(|(m, (seq, hash))| (*m, *seq, *hash)).collect()
    }

    /// The excluded members.
    pub fn excluded(&self) -> Vec<MemberId> {
        self.excluded.iter().copied().collect()
    }

    /// What of this receiver a member keeps between runs. Events waiting for what they depend
    /// on are not kept: their senders upload them again until every member acknowledged them.
    pub fn save(&self) -> Saved {
        Saved {
            prefix: self.prefix.clone(),
            admin: self.admin,
            epoch: self.epoch,
            epoch_members: self.epoch_members.iter().copied().collect(),
            cutoffs: self.cutoffs(),
            members: self.members.values().copied().collect(),
            chains: self.chains.iter().map(|(m, c)| (*m, c.clone())).collect(),
            known: self.known.iter().map(|(m, h)| (*m, h.clone())).collect(),
            excluded: self.excluded(),
        }
    }

    /// The receiver [`Receiver::save`] kept.
    pub fn load(saved: Saved) -> Receiver {
        Receiver {
            prefix: saved.prefix,
            admin: saved.admin,
            epoch: saved.epoch,
            epoch_members: saved.epoch_members.into_iter().collect(),
            cutoffs: saved.cutoffs.into_iter().map(|(m, seq, hash)| (m, (seq, hash))).collect(),
            members: saved.members.into_iter().map(|k| (k.id(), k)).collect(),
            chains: saved.chains.into_iter().collect(),
            known: saved.known.into_iter().collect(),
            waiting: BTreeMap::new(),
            waiting_bytes: 0,
            excluded: saved.excluded.into_iter().collect(),
            taken: Vec::new(),
        }
    }

    /// Every member's chain as a checkpoint: (member, newest seq, its hash, its clock).
    pub fn checkpoints(&self) -> Vec<(MemberId, u64, [u8; 32], u64)> {
        self.chains
            .iter()
            .filter_map(|(m, c)| c.last().map(|(hash, lamport)| (*m, c.len(), hash, lamport)))
            .collect()
    }

    /// Whether `member` has been excluded.
    pub fn is_excluded(&self, member: &MemberId) -> bool {
        self.excluded.contains(member)
    }

    /// How long (in the caller's clock) the oldest waiting event of each member has waited, for
    /// the ones that wait: a sign that this member is being kept behind.
    pub fn waiting_since(&self) -> BTreeMap<MemberId, u64> {
        let mut out = BTreeMap::new();
        for ((member, _), w) in &self.waiting {
            let since = out.entry(*member).or_insert(w.since);
            *since = (*since).min(w.since);
        }
        out
    }

    /// The events waiting for what they depend on.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Records this member's own event as accepted (it was built on the receiver's heads).
    /// A rekey of its own (the admin's) takes effect here as a received one would.
    pub fn accept_own(&mut self, event: &Event, hash: [u8; 32]) {
        self.chains.entry(event.sender).or_default().push(hash, event.lamport);
        self.known.insert(event.sender, event.heads.clone());
        if let Body::Rekey(rekey) = &event.body {
            // Its cutoffs are this member's own heads, so nothing is taken back.
            self.take_in_rekey(rekey, &mut Received::default());
        }
    }

    /// Whether `member` was removed.
    pub fn is_removed(&self, member: &MemberId) -> bool {
        self.cutoffs.contains_key(member)
    }

    /// How far the event at (member, seq) is past its member's next expected one.
    fn distance(&self, member: &MemberId, seq: u64) -> u64 {
        seq.saturating_sub(self.accepted(member) + 1)
    }

    /// Makes room for `size` more waiting bytes of the event at (sender, seq) by dropping
    /// waiting events farther ahead of their senders; false if that is not enough.
    fn make_room(&mut self, sender: MemberId, seq: u64, size: usize) -> bool {
        let here = self.distance(&sender, seq);
        while self.waiting.len() >= MAX_WAITING || self.waiting_bytes + size > MAX_WAITING_BYTES {
            let farthest =
                self.waiting.keys().map(|(m, q)| (self.distance(m, *q), (*m, *q))).max_by_key(|(d, _)| *d);
            match farthest {
                Some((distance, key)) if distance > here => {
                    if let Some(w) = self.waiting.remove(&key) {
                        self.waiting_bytes -= w.signed.len();
                    }
                }
                _ => return false,
            }
        }
        true
    }

    /// Takes in an event whose signature by `event.sender` was checked (`signed`, which hashes
    /// to `hash`), arrived at `now`.
    pub fn receive(
        &mut self,
        event: Event,
        hash: [u8; 32],
        signed: Zeroizing<Vec<u8>>,
        now: u64,
    ) -> Received {
        let size = signed.len();
        let mut alarms = Vec::new();
        let sender = event.sender;
        if !self.members.contains_key(&sender) {
            return Received { alarms: vec![Alarm::Stranger], ..Received::default() };
        }
        if self.excluded.contains(&sender) {
            return Received::default();
        }
        if let Some((last, last_hash)) = self.cutoffs.get(&sender) {
            if event.seq > *last {
                let alarm = Alarm::AfterRemoval { member: sender, seq: event.seq };
                return Received { alarms: vec![alarm], ..Received::default() };
            }
            if event.seq == *last && hash != *last_hash {
                let alarm = Alarm::Fork { claimant: self.admin, member: sender, seq: event.seq };
                return Received { alarms: vec![alarm], ..Received::default() };
            }
        }
        let accepted = self.accepted(&sender);
        if event.seq == 0 {
            self.exclude(
                sender,
                &mut alarms,
                Alarm::Misbehaved { member: sender, seq: 0, why: "sequence number 0" },
            );
            return Received { alarms, ..Received::default() };
        }
        if event.seq <= accepted {
            // Before a checkpoint nothing can be compared: a copy of what the checkpoint covers.
            if matches!(self.at(&sender, event.seq), At::Exact(known, _) if known != hash) {
                self.exclude_from(
                    sender,
                    event.seq,
                    &mut alarms,
                    Alarm::Equivocation { member: sender, seq: event.seq },
                );
            }
            let taken_back = std::mem::take(&mut self.taken);
            return Received { alarms, taken_back, ..Received::default() };
        }
        match self.waiting.get(&(sender, event.seq)).map(|w| w.hash == hash) {
            Some(true) => {}
            Some(false) => self.exclude_from(
                sender,
                event.seq,
                &mut alarms,
                Alarm::Equivocation { member: sender, seq: event.seq },
            ),
            None if event.seq <= accepted.saturating_add(MAX_AHEAD)
                && self.make_room(sender, event.seq, size) =>
            {
                self.waiting_bytes += size;
                self.waiting.insert((sender, event.seq), Waiting { hash, event, signed, since: now });
            }
            None => {}
        }
        let mut out = Received::default();
        self.drain(&mut out);
        out.alarms.splice(0..0, alarms);
        out.taken_back.append(&mut self.taken);
        out
    }

    /// Accepts every waiting event that has become ready, until none has.
    fn drain(&mut self, out: &mut Received) {
        loop {
            let mut progressed = false;
            let senders: Vec<MemberId> = self.members.keys().copied().collect();
            for sender in senders {
                let next = self.accepted(&sender) + 1;
                let Some(w) = self.waiting.remove(&(sender, next)) else { continue };
                self.waiting_bytes -= w.signed.len();
                match self.check(&w.event, &mut out.alarms) {
                    Readiness::Wait => {
                        if !self.excluded.contains(&sender) {
                            self.waiting_bytes += w.signed.len();
                            self.waiting.insert((sender, next), w);
                        }
                    }
                    Readiness::Refuse => {}
                    Readiness::Accept => {
                        self.chains.entry(sender).or_default().push(w.hash, w.event.lamport);
                        self.known.insert(sender, w.event.heads.clone());
                        if let Body::Rekey(rekey) = &w.event.body {
                            self.take_in_rekey(rekey, out);
                        }
                        out.accepted.push(Accepted { event: w.event, hash: w.hash, signed: w.signed });
                        progressed = true;
                    }
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// What an accepted rekey changes here: its members become known, and each removal takes
    /// effect — later events of the removed member are refused, and the ones accepted beyond its
    /// last counted event are taken back.
    fn take_in_rekey(&mut self, rekey: &crate::event::Rekey, out: &mut Received) {
        self.epoch = rekey.epoch;
        self.epoch_members = rekey.members.iter().map(MemberKey::id).collect();
        for key in &rekey.members {
            self.members.entry(key.id()).or_insert(*key);
        }
        for head in &rekey.removed {
            self.cutoffs.insert(head.member, (head.seq, head.hash));
            self.waiting.retain(|(m, seq), _| !(*m == head.member && *seq > head.seq));
            self.waiting_bytes = self.waiting.values().map(|w| w.signed.len()).sum();
            let Some(chain) = self.chains.get_mut(&head.member) else { continue };
            let cut = chain.cut_after(head.seq);
            if !cut.is_empty() {
                out.taken_back.extend(cut.map(|seq| (head.member, seq)));
                self.known.remove(&head.member);
            }
            if head.seq > 0 && chain.len() == head.seq && chain.last().map(|(h, _)| h) != Some(head.hash) {
                out.alarms.push(Alarm::Fork { claimant: self.admin, member: head.member, seq: head.seq });
            }
        }
    }

    /// Whether the next event of its sender can be accepted now.
    fn check(&mut self, event: &Event, alarms: &mut Vec<Alarm>) -> Readiness {
        let (sender, seq) = (event.sender, event.seq);
        let expected_prev = match seq {
            1 => [0; 32],
            _ => self.accepted_hash(&sender, seq - 1).unwrap_or([0; 32]),
        };
        if event.prev != expected_prev {
            // It signed another event at seq - 1 than the one accepted.
            self.exclude_from(sender, seq - 1, alarms, Alarm::Equivocation { member: sender, seq: seq - 1 });
            return Readiness::Refuse;
        }
        let sorted = event.heads.windows(2).all(|w| w[0].member < w[1].member);
        if !sorted || event.heads.iter().any(|h| h.seq == 0 || h.member == sender) {
            return self.misbehaved(event, alarms, "heads not sorted, naming itself, or at seq 0");
        }
        if event.heads.iter().any(|h| !self.members.contains_key(&h.member)) {
            // A member this receiver does not know yet: the rekey that adds it has not arrived.
            return Readiness::Wait;
        }
        if let Body::Ack { one_time } = &event.body
            && !one_time.iter().all(tresor_crypto::agree::is_contributory)
        {
            return self.misbehaved(event, alarms, "a one-time key of small order");
        }
        if let Body::Rekey(rekey) = &event.body
            && let Some(why) = rekey_problem(event, rekey, &self.admin, self.epoch, &self.epoch_members)
        {
            return self.misbehaved(event, alarms, why);
        }
        // The clock must be one more than the largest it saw: `lamport` is what can be
        // checked exactly; `ceiling` adds what is only bounded (places before a checkpoint), and
        // `slack` what cannot be checked at all (a removed or excluded member past its cut).
        let mut slack: u64 = 0;
        let mut lamport = match seq {
            1 => 0,
            _ => self.lamport(&sender, seq - 1).unwrap_or(0),
        };
        let mut ceiling = lamport;
        for head in &event.heads {
            let last = match self.cutoffs.get(&head.member) {
                Some((last, _)) => Some(*last),
                None if self.excluded.contains(&head.member) => Some(self.accepted(&head.member)),
                None => None,
            };
            if let Some(last) = last
                && head.seq > last
            {
                // Its events past `last` are refused here, so a claim about them cannot be
                // waited for, nor their clocks checked: each may have added one to the claimant's
                // clock, and no more than MAX_UNCHECKED of them are believed.
                let past = head.seq - last;
                if past > MAX_UNCHECKED {
                    return self.misbehaved(
                        event,
                        alarms,
                        "a claim about a removed member's events far past its cut",
                    );
                }
                slack += past;
                lamport = lamport.max(self.lamport(&head.member, last).unwrap_or(0));
                continue;
            }
            match self.at(&head.member, head.seq) {
                At::Missing => return Readiness::Wait,
                At::Exact(hash, _) if hash != head.hash => {
                    alarms.push(Alarm::Fork { claimant: sender, member: head.member, seq: head.seq });
                    return Readiness::Refuse;
                }
                At::Exact(_, known) => lamport = lamport.max(known),
                At::Before(bound) => ceiling = ceiling.max(bound),
            }
        }
        let least = lamport.saturating_add(1);
        let most = lamport.max(ceiling).saturating_add(1).saturating_add(slack);
        if event.lamport > MAX_LAMPORT || event.lamport < least || event.lamport > most {
            return self.misbehaved(event, alarms, "a Lamport clock other than 1 + the largest it saw");
        }
        if let Some(before) = self.known.get(&sender) {
            // A removal cuts a member's chain, so heads about removed (or excluded) members may
            // go back to where the cut is.
            let shrank = before
                .iter()
                .filter(|h| !self.cutoffs.contains_key(&h.member) && !self.excluded.contains(&h.member))
                .any(|h| event.head_of(&h.member).is_none_or(|now| now.seq < h.seq));
            if shrank {
                return self.misbehaved(event, alarms, "heads older than its previous event's");
            }
        }
        if let Body::Write(ops) = &event.body
            && let Some(why) = ops.iter().find_map(op_problem)
        {
            return self.misbehaved(event, alarms, why);
        }
        Readiness::Accept
    }

    fn misbehaved(&mut self, event: &Event, alarms: &mut Vec<Alarm>, why: &'static str) -> Readiness {
        let alarm = Alarm::Misbehaved { member: event.sender, seq: event.seq, why };
        self.exclude(event.sender, alarms, alarm);
        Readiness::Refuse
    }

    /// Excludes `member`, which signed two events at `seq`: its chain is cut before `seq` here
    /// as on every member that learns of it (the proof is forwarded), and what this member had
    /// accepted from there on is taken back, so that members that saw either branch agree.
    fn exclude_from(&mut self, member: MemberId, seq: u64, alarms: &mut Vec<Alarm>, alarm: Alarm) {
        self.exclude(member, alarms, alarm);
        if let Some(chain) = self.chains.get_mut(&member) {
            let cut = chain.cut_after(seq.saturating_sub(1));
            if !cut.is_empty() {
                self.taken.extend(cut.map(|s| (member, s)));
                self.known.remove(&member);
            }
        }
    }

    fn exclude(&mut self, member: MemberId, alarms: &mut Vec<Alarm>, alarm: Alarm) {
        self.excluded.insert(member);
        self.waiting.retain(|(m, _), _| *m != member);
        self.waiting_bytes = self.waiting.values().map(|w| w.signed.len()).sum();
        alarms.push(alarm);
    }
}

/// Why a rekey is refused: only the admin rekeys, into the next epoch, with itself among the
/// members, every other member's key wrapped once, and no removed member kept.
fn rekey_problem(
    event: &Event,
    rekey: &crate::event::Rekey,
    admin: &MemberId,
    newest: u64,
    current: &BTreeSet<MemberId>,
) -> Option<&'static str> {
    let removed: BTreeSet<MemberId> = rekey.removed.iter().map(|h| h.member).collect();
    let ids: BTreeSet<MemberId> = rekey.members.iter().map(MemberKey::id).collect();
    let wrapped: BTreeSet<MemberId> = rekey.wraps.iter().map(|w| w.member).collect();
    let others: BTreeSet<MemberId> = ids.iter().copied().filter(|m| m != admin).collect();
    if event.sender != *admin {
        Some("a rekey from a member that is not the admin")
    } else if Some(rekey.epoch) != event.epoch.checked_add(1) || event.epoch != newest {
        Some("a rekey into an epoch other than the next, or a second rekey into one epoch")
    } else if ids.len() != rekey.members.len() || !ids.contains(admin) {
        Some("a rekey whose members repeat or leave out the admin")
    } else if wrapped != others || rekey.wraps.len() != others.len() {
        Some("a rekey that does not wrap its key once to every other member")
    } else if rekey.removed.iter().any(|h| ids.contains(&h.member) || h.member == *admin) {
        Some("a rekey that removes a member it keeps")
    } else if current.iter().any(|m| !ids.contains(m) && !removed.contains(m)) {
        Some("a rekey that drops a member without cutting its chain")
    } else {
        None
    }
}

/// What a check decided.
enum Readiness {
    Wait,
    Refuse,
    Accept,
}

/// The longest path of a group, relative to its shared folder (the folder's part of the vault's
/// 512 bytes is [`MAX_PREFIX`] at most, on every member).
pub const MAX_SHARED_PATH: usize = 256;
/// The longest shared folder a vault may give a group.
pub const MAX_PREFIX: usize = tresor::path::MAX_PATH_LEN - MAX_SHARED_PATH - 1;
/// The largest value a group carries (what any vault takes by default).
pub const MAX_SHARED_VALUE: usize = tresor::vault::DEFAULT_MAX_VALUE;

/// Why an operation breaks the group's rules, which are the same on every member (whatever
/// folder and limits each gave itself): its path, relative to the shared folder, must be one the
/// vault's path rules accept (no empty, `.` or `..` segment, no control character) and at most
/// [`MAX_SHARED_PATH`] bytes, so that it lands inside any member's folder; and a value at most
/// [`MAX_SHARED_VALUE`].
pub fn op_problem(op: &Op) -> Option<&'static str> {
    if op.path().len() > MAX_SHARED_PATH || tresor::path::SecretPath::parse(op.path()).is_err() {
        return Some("a path the group's path rules refuse");
    }
    match op {
        Op::Put { value, .. } if value.len() > MAX_SHARED_VALUE => {
            Some("a value larger than a group carries")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> MemberKey {
        MemberKey { signing: [n; 32], agreement: [n; 32] }
    }

    fn event(sender: &MemberKey, seq: u64) -> Event {
        Event {
            group: [0; 32],
            epoch: 0,
            sender: sender.id(),
            seq,
            prev: [0; 32],
            heads: Vec::new(),
            lamport: seq,
            time: 0,
            body: Body::Heartbeat,
        }
    }

    fn bytes(n: usize) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(vec![0; n])
    }

    #[test]
    fn events_far_ahead_are_not_held_and_held_bytes_are_bounded() {
        let (a, b) = (key(1), key(2));
        let mut receiver = Receiver::new([a, b], a.id(), 0, "team");
        // Past the window: dropped, whatever its size.
        receiver.receive(event(&b, MAX_AHEAD + 2), [1; 32], bytes(10), 0);
        assert_eq!(receiver.waiting(), 0);
        // Within it: held, until the bytes run out; then the farthest goes first.
        receiver.receive(event(&b, 40), [2; 32], bytes(MAX_WAITING_BYTES / 2), 0);
        receiver.receive(event(&b, 30), [3; 32], bytes(MAX_WAITING_BYTES / 2), 0);
        assert_eq!(receiver.waiting(), 2);
        receiver.receive(event(&b, 20), [4; 32], bytes(MAX_WAITING_BYTES / 2), 0);
        assert_eq!(receiver.waiting(), 2);
        assert!(
            receiver.waiting.contains_key(&(b.id(), 20)) && !receiver.waiting.contains_key(&(b.id(), 40))
        );
        // Nothing nearer to evict: a farther one is not taken.
        receiver.receive(event(&b, 50), [5; 32], bytes(MAX_WAITING_BYTES / 2), 0);
        assert!(!receiver.waiting.contains_key(&(b.id(), 50)));
        assert!(receiver.waiting_bytes <= MAX_WAITING_BYTES);
    }
}
