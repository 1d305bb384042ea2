//! The receiver's rules: which signed events are accepted, in what order, and what a refused one
//! proves (ARCHITECTURE.md, "Sharing and sync through a relay", **Receiving**).
//!
//! Per sender the receiver pins a chain of (sequence number → event hash, Lamport clock). An event
//! waits until it is the next of its sender's chain and everything its heads name has been
//! accepted (causal delivery); then its `prev`, heads, Lamport clock and paths are checked. Two
//! signed events at one place of a chain are an equivocation and exclude their signer; an event
//! that breaks a rule only its signer could break excludes its signer too. Duplicates — a relay's
//! replays and an honest sender's uploads again — change nothing.

use crate::event::{Body, Event, Head, Op};
use crate::member::{MemberId, MemberKey};
use std::collections::{BTreeMap, BTreeSet};

/// Most events held while they wait for what they depend on; more are dropped (their senders
/// upload them again until every member acknowledged them).
pub const MAX_WAITING: usize = 4096;
/// Most of those from one sender, so that one member cannot crowd out the others.
pub const MAX_WAITING_PER_SENDER: usize = 1024;

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
}

/// One accepted event's place in its sender's chain.
struct Link {
    hash: [u8; 32],
    lamport: u64,
}

/// A signed event that arrived before what it depends on.
struct Waiting {
    hash: [u8; 32],
    event: Event,
    since: u64,
}

/// The receiver (see the module documentation).
pub struct Receiver {
    prefix: String,
    members: BTreeMap<MemberId, MemberKey>,
    chains: BTreeMap<MemberId, Vec<Link>>,
    /// The heads of each sender's newest accepted event: a member's knowledge never shrinks.
    known: BTreeMap<MemberId, Vec<Head>>,
    waiting: BTreeMap<(MemberId, u64), Waiting>,
    excluded: BTreeSet<MemberId>,
}

impl Receiver {
    /// A receiver for a group of `members` whose shared prefix lands at `prefix` in this vault
    /// (received paths must be valid vault paths once `prefix` is put in front).
    pub fn new(members: impl IntoIterator<Item = MemberKey>, prefix: &str) -> Receiver {
        Receiver {
            prefix: prefix.to_string(),
            members: members.into_iter().map(|k| (k.id(), k)).collect(),
            chains: BTreeMap::new(),
            known: BTreeMap::new(),
            waiting: BTreeMap::new(),
            excluded: BTreeSet::new(),
        }
    }

    /// The key of member `id`, if it is one.
    pub fn key_of(&self, id: &MemberId) -> Option<&MemberKey> {
        self.members.get(id)
    }

    /// The newest accepted (sequence number, hash) of `member`: the head this member claims for
    /// it in its own next event.
    pub fn head(&self, member: &MemberId) -> Option<Head> {
        let chain = self.chains.get(member)?;
        let last = chain.last()?;
        Some(Head { member: *member, seq: chain.len() as u64, hash: last.hash })
    }

    /// How many events of `member` have been accepted (its chain's length).
    pub fn accepted(&self, member: &MemberId) -> u64 {
        self.chains.get(member).map_or(0, Vec::len) as u64
    }

    /// The hash of accepted event `seq` of `member`.
    pub fn accepted_hash(&self, member: &MemberId, seq: u64) -> Option<[u8; 32]> {
        self.link_hash(member, seq)
    }

    /// Lamport clock of accepted event `seq` of `member`.
    pub fn lamport(&self, member: &MemberId, seq: u64) -> Option<u64> {
        let index = usize::try_from(seq.checked_sub(1)?).ok()?;
        self.chains.get(member)?.get(index).map(|l| l.lamport)
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
    pub fn accept_own(&mut self, event: &Event, hash: [u8; 32]) {
        self.chains.entry(event.sender).or_default().push(Link { hash, lamport: event.lamport });
        self.known.insert(event.sender, event.heads.clone());
    }

    /// Takes in an event whose signature by `event.sender` was checked, arrived at `now`. Returns
    /// the events accepted by it, in causal order (this one and those that waited for it), and
    /// alarms.
    pub fn receive(&mut self, event: Event, hash: [u8; 32], now: u64) -> (Vec<Event>, Vec<Alarm>) {
        let mut alarms = Vec::new();
        let sender = event.sender;
        if !self.members.contains_key(&sender) {
            return (Vec::new(), vec![Alarm::Stranger]);
        }
        if self.excluded.contains(&sender) {
            return (Vec::new(), alarms);
        }
        let accepted = self.chains.get(&sender).map_or(0, Vec::len) as u64;
        if event.seq == 0 {
            self.exclude(
                sender,
                &mut alarms,
                Alarm::Misbehaved { member: sender, seq: 0, why: "sequence number 0" },
            );
            return (Vec::new(), alarms);
        }
        if event.seq <= accepted {
            if self.link_hash(&sender, event.seq) != Some(hash) {
                self.exclude(sender, &mut alarms, Alarm::Equivocation { member: sender, seq: event.seq });
            }
            return (Vec::new(), alarms);
        }
        match self.waiting.get(&(sender, event.seq)) {
            Some(w) if w.hash == hash => {}
            Some(_) => {
                self.exclude(sender, &mut alarms, Alarm::Equivocation { member: sender, seq: event.seq })
            }
            None if self.waiting.len() < MAX_WAITING
                && self.waiting.range((sender, 0)..=(sender, u64::MAX)).count() < MAX_WAITING_PER_SENDER =>
            {
                self.waiting.insert((sender, event.seq), Waiting { hash, event, since: now });
            }
            None => {}
        }
        let accepted = self.drain(&mut alarms);
        (accepted, alarms)
    }

    /// Accepts every waiting event that has become ready, until none has.
    fn drain(&mut self, alarms: &mut Vec<Alarm>) -> Vec<Event> {
        let mut out = Vec::new();
        loop {
            let mut progressed = false;
            let senders: Vec<MemberId> = self.members.keys().copied().collect();
            for sender in senders {
                let next = self.chains.get(&sender).map_or(0, Vec::len) as u64 + 1;
                let Some(w) = self.waiting.remove(&(sender, next)) else { continue };
                match self.check(&w.event, alarms) {
                    Readiness::Wait => {
                        if !self.excluded.contains(&sender) {
                            self.waiting.insert((sender, next), w);
                        }
                    }
                    Readiness::Refuse => {}
                    Readiness::Accept => {
                        self.chains
                            .entry(sender)
                            .or_default()
                            .push(Link { hash: w.hash, lamport: w.event.lamport });
                        self.known.insert(sender, w.event.heads.clone());
                        out.push(w.event);
                        progressed = true;
                    }
                }
            }
            if !progressed {
                return out;
            }
        }
    }

    /// Whether the next event of its sender can be accepted now.
    fn check(&mut self, event: &Event, alarms: &mut Vec<Alarm>) -> Readiness {
        let (sender, seq) = (event.sender, event.seq);
        let expected_prev = match seq {
            1 => [0; 32],
            _ => self.link_hash(&sender, seq - 1).unwrap_or([0; 32]),
        };
        if event.prev != expected_prev {
            // It signed another event at seq - 1 than the one accepted.
            self.exclude(sender, alarms, Alarm::Equivocation { member: sender, seq: seq - 1 });
            return Readiness::Refuse;
        }
        let sorted = event.heads.windows(2).all(|w| w[0].member < w[1].member);
        let known = event.heads.iter().all(|h| self.members.contains_key(&h.member) && h.member != sender);
        if !sorted || !known || event.heads.iter().any(|h| h.seq == 0) {
            return self.misbehaved(event, alarms, "heads not sorted, naming itself, a stranger or seq 0");
        }
        let mut lamport = match seq {
            1 => 0,
            _ => self.lamport(&sender, seq - 1).unwrap_or(0),
        };
        for head in &event.heads {
            if self.excluded.contains(&head.member) {
                // Its later events are refused here, so a claim about them cannot be waited for.
                // The removal event names where its chain ends for everyone (ARCHITECTURE.md).
                continue;
            }
            match self.link_hash(&head.member, head.seq) {
                None => return Readiness::Wait,
                Some(hash) if hash != head.hash => {
                    alarms.push(Alarm::Fork { claimant: sender, member: head.member, seq: head.seq });
                    return Readiness::Refuse;
                }
                Some(_) => lamport = lamport.max(self.lamport(&head.member, head.seq).unwrap_or(0)),
            }
        }
        if event.lamport != lamport + 1 {
            return self.misbehaved(event, alarms, "a Lamport clock other than 1 + the largest it saw");
        }
        if let Some(before) = self.known.get(&sender) {
            let shrank = before.iter().any(|h| event.head_of(&h.member).is_none_or(|now| now.seq < h.seq));
            if shrank {
                return self.misbehaved(event, alarms, "heads older than its previous event's");
            }
        }
        if let Body::Write(ops) = &event.body
            && let Some(why) = ops.iter().find_map(|op| path_problem(op, &self.prefix))
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

    fn exclude(&mut self, member: MemberId, alarms: &mut Vec<Alarm>, alarm: Alarm) {
        self.excluded.insert(member);
        self.waiting.retain(|(m, _), _| *m != member);
        alarms.push(alarm);
    }

    fn link_hash(&self, member: &MemberId, seq: u64) -> Option<[u8; 32]> {
        let index = usize::try_from(seq.checked_sub(1)?).ok()?;
        self.chains.get(member)?.get(index).map(|l| l.hash)
    }
}

/// What a check decided.
enum Readiness {
    Wait,
    Refuse,
    Accept,
}

/// Why a received operation's path is refused: with the local prefix in front, it must be a
/// path the vault's own rules accept (no empty, `.` or `..` segment, no control character, not
/// too long), so nothing lands outside the prefix.
fn path_problem(op: &Op, prefix: &str) -> Option<&'static str> {
    let full = format!("{prefix}/{}", op.path());
    tresor::path::SecretPath::parse(&full).is_err().then_some("a path the vault's path rules refuse")
}
