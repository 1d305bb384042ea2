//! The shared prefix as the accepted events make it: per path, the versions no later accepted
//! event has seen (its frontier), the winner every member shows, and the conflicts to report
//! (ARCHITECTURE.md, "Sharing and sync through a relay", **Concurrent writes**).
//!
//! Events are applied in causal order, so a path's frontier is the set of its newest versions
//! under "has seen" whatever order the relay delivered them in: every member that applied the
//! same events holds the same frontier and shows the same winner.

use crate::event::{Body, Event, Op};
use crate::member::MemberId;
use std::collections::{BTreeMap, BTreeSet};
use tresor_crypto::{SecretBytes, hash};

/// One version of a path: a put (with its value) or a delete, and the event that made it.
pub struct Version {
    /// Who wrote it.
    pub member: MemberId,
    /// The writer's sequence number of the event.
    pub seq: u64,
    /// The event's Lamport clock.
    pub lamport: u64,
    /// The value, or `None` for a delete.
    pub value: Option<SecretBytes>,
    /// Its place among the event's operations.
    op: usize,
    /// What the event had seen of each other member (its heads' sequence numbers).
    clock: Vec<(MemberId, u64)>,
}

impl Version {
    /// The order winners are chosen by: the greater (Lamport clock, member id), the same on
    /// every member.
    fn rank(&self) -> (u64, MemberId, u64, usize) {
        (self.lamport, self.member, self.seq, self.op)
    }

    /// Whether the event that made this version had seen `other` (a later operation of one
    /// event has seen the earlier ones).
    fn saw(&self, other: &Version) -> bool {
        if other.member == self.member {
            return (other.seq, other.op) < (self.seq, self.op);
        }
        self.clock.iter().any(|(m, seq)| *m == other.member && *seq >= other.seq)
    }
}

/// What a path shows.
pub enum View<'a> {
    /// The winning value, and how many other versions are concurrent with it (0: no conflict).
    Value(&'a SecretBytes, usize),
    /// Deleted; concurrent deletes only, or nothing left.
    Deleted,
}

/// The shared prefix (see the module documentation).
#[derive(Default)]
pub struct Replica {
    /// Every version of every path (pruning waits until every member has seen a version).
    paths: BTreeMap<String, Vec<Version>>,
    applied: BTreeSet<(MemberId, u64)>,
}

impl Replica {
    /// An empty prefix.
    pub fn new() -> Replica {
        Replica::default()
    }

    /// Applies an accepted event (its operations in order). The caller guarantees causal order.
    pub fn apply(&mut self, mut event: Event) {
        let Body::Write(ops) = std::mem::replace(&mut event.body, Body::Heartbeat) else { return };
        self.applied.insert((event.sender, event.seq));
        let clock: Vec<(MemberId, u64)> = event.heads.iter().map(|h| (h.member, h.seq)).collect();
        for (op, change) in ops.into_iter().enumerate() {
            let (path, value) = match change {
                Op::Put { path, value } => (path, Some(value)),
                Op::Delete { path } => (path, None),
            };
            self.paths.entry(path).or_default().push(Version {
                member: event.sender,
                seq: event.seq,
                lamport: event.lamport,
                value,
                op,
                clock: clock.clone(),
            });
        }
    }

    /// Takes back event `seq` of `member` (a removed member's event beyond the point its
    /// removal names, accepted here before the removal was): as if it had never arrived.
    pub fn unapply(&mut self, member: &MemberId, seq: u64) {
        if !self.applied.remove(&(*member, seq)) {
            return;
        }
        for versions in self.paths.values_mut() {
            versions.retain(|v| !(v.member == *member && v.seq == seq));
        }
        self.paths.retain(|_, versions| !versions.is_empty());
    }

    /// The versions of `path` no other version has seen, greatest rank first.
    pub fn frontier(&self, path: &str) -> Vec<&Version> {
        let Some(versions) = self.paths.get(path) else { return Vec::new() };
        let mut out: Vec<&Version> = versions.iter().filter(|v| !versions.iter().any(|w| w.saw(v))).collect();
        out.sort_by_key(|v| std::cmp::Reverse(v.rank()));
        out
    }

    /// What `path` shows: the greatest put wins over every other version, deletes included.
    pub fn view(&self, path: &str) -> View<'_> {
        let frontier = self.frontier(path);
        match frontier.iter().find_map(|v| v.value.as_ref()) {
            Some(value) => View::Value(value, frontier.len() - 1),
            None => View::Deleted,
        }
    }

    /// The paths any of whose versions holds a value (what a member that had every version could
    /// read, overwritten and deleted values included).
    pub fn paths_ever_written(&self) -> Vec<&str> {
        self.paths
            .iter()
            .filter(|(_, v)| v.iter().any(|v| v.value.is_some()))
            .map(|(p, _)| p.as_str())
            .collect()
    }

    /// Every path with a version, deleted ones included.
    pub fn all_paths(&self) -> impl Iterator<Item = &str> {
        self.paths.keys().map(String::as_str)
    }

    /// The (member, seq) of every write applied, for a member's saved state.
    pub fn applied(&self) -> impl Iterator<Item = &(MemberId, u64)> {
        self.applied.iter()
    }

    /// [`Replica::restore`] with the writes applied (a member's own saved state: unlike a
    /// joiner's snapshot, it knows which events it applied).
    pub fn restore_applied(
        versions: &[crate::snapshot::VersionState<'_>],
        applied: impl IntoIterator<Item = (MemberId, u64)>,
    ) -> Replica {
        let mut replica = Replica::restore(versions);
        replica.applied = applied.into_iter().collect();
        replica
    }

    /// The paths whose frontier holds more than one version, with their versions, greatest first.
    pub fn conflicts(&self) -> Vec<(&str, Vec<&Version>)> {
        self.paths.keys().map(|p| (p.as_str(), self.frontier(p))).filter(|(_, f)| f.len() > 1).collect()
    }

    /// The paths that show a value.
    pub fn paths(&self) -> Vec<&str> {
        self.paths.keys().filter(|p| matches!(self.view(p), View::Value(..))).map(String::as_str).collect()
    }

    /// Whether write `seq` of `member` has been applied (heartbeats are not kept).
    pub fn has_applied(&self, member: &MemberId, seq: u64) -> bool {
        self.applied.contains(&(*member, seq))
    }

    /// Every version of every path, for a new member's snapshot (not only the current ones: a
    /// removal or an equivocation proved later can take back a version that hides older ones).
    pub fn export(&self) -> Vec<crate::snapshot::VersionState<'_>> {
        self.paths
            .iter()
            .flat_map(|(path, versions)| {
                versions.iter().map(move |v| crate::snapshot::VersionState {
                    path,
                    member: v.member,
                    seq: v.seq,
                    lamport: v.lamport,
                    op: v.op as u64,
                    clock: v.clock.clone(),
                    deleted: v.value.is_none(),
                    value: v.value.as_ref().map_or(&[][..], SecretBytes::as_slice),
                })
            })
            .collect()
    }

    /// The replica a new member starts with: the versions of a snapshot.
    pub fn restore(versions: &[crate::snapshot::VersionState<'_>]) -> Replica {
        let mut replica = Replica::new();
        for v in versions {
            replica.paths.entry(v.path.to_string()).or_default().push(Version {
                member: v.member,
                seq: v.seq,
                lamport: v.lamport,
                value: (!v.deleted).then(|| SecretBytes::new(v.value.to_vec())),
                op: usize::try_from(v.op).unwrap_or(usize::MAX),
                clock: v.clock.clone(),
            });
        }
        replica
    }

    /// A digest of what every path shows and its concurrent versions (not of the events applied,
    /// which a member that joined later has not seen): equal on two members that agree.
    pub fn view_digest(&self) -> [u8; 32] {
        let mut bytes = Vec::new();
        for path in self.paths.keys() {
            let frontier = self.frontier(path);
            if frontier.is_empty() {
                continue;
            }
            bytes.extend_from_slice(&(path.len() as u64).to_be_bytes());
            bytes.extend_from_slice(path.as_bytes());
            for v in frontier {
                bytes.extend_from_slice(&v.member.0);
                bytes.extend_from_slice(&v.seq.to_be_bytes());
                match &v.value {
                    Some(value) => bytes.extend_from_slice(&hash(value.as_slice())),
                    None => bytes.extend_from_slice(&[0xff; 32]),
                }
            }
        }
        hash(&bytes)
    }

    /// A digest of everything the replica holds (frontiers with values, and applied writes),
    /// equal on two replicas exactly when they hold the same: how tests compare members.
    pub fn digest(&self) -> [u8; 32] {
        let mut bytes = Vec::new();
        for path in self.paths.keys() {
            bytes.extend_from_slice(&(path.len() as u64).to_be_bytes());
            bytes.extend_from_slice(path.as_bytes());
            for v in self.frontier(path) {
                bytes.extend_from_slice(&v.member.0);
                bytes.extend_from_slice(&v.seq.to_be_bytes());
                bytes.extend_from_slice(&v.lamport.to_be_bytes());
                match &v.value {
                    Some(value) => bytes.extend_from_slice(&hash(value.as_slice())),
                    None => bytes.extend_from_slice(&[0xff; 32]),
                }
            }
        }
        for (member, seq) in &self.applied {
            bytes.extend_from_slice(&member.0);
            bytes.extend_from_slice(&seq.to_be_bytes());
        }
        hash(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Head;

    fn member(n: u8) -> MemberId {
        MemberId([n; 32])
    }

    /// An event of `sender` at `seq` that has seen `heads` (member, seq) and writes `ops`.
    fn event(sender: u8, seq: u64, lamport: u64, heads: &[(u8, u64)], ops: Vec<Op>) -> Event {
        let mut heads: Vec<Head> =
            heads.iter().map(|&(m, s)| Head { member: member(m), seq: s, hash: [0; 32] }).collect();
        heads.sort_by_key(|h| h.member);
        Event {
            group: [0; 32],
            epoch: 0,
            sender: member(sender),
            seq,
            prev: [0; 32],
            heads,
            lamport,
            time: 0,
            body: Body::Write(ops),
        }
    }

    fn put(path: &str, value: &str) -> Op {
        Op::Put { path: path.into(), value: SecretBytes::new(value.as_bytes().to_vec()) }
    }

    fn shown(r: &Replica, path: &str) -> Option<(String, usize)> {
        match r.view(path) {
            View::Value(v, n) => Some((String::from_utf8(v.as_slice().to_vec()).unwrap(), n)),
            View::Deleted => None,
        }
    }

    #[test]
    fn a_later_write_that_saw_the_earlier_replaces_it() {
        let mut r = Replica::new();
        r.apply(event(1, 1, 1, &[], vec![put("a", "one")]));
        r.apply(event(2, 1, 2, &[(1, 1)], vec![put("a", "two")]));
        assert_eq!(shown(&r, "a"), Some(("two".into(), 0)));
        assert_eq!(r.conflicts().len(), 0);
    }

    #[test]
    fn concurrent_puts_are_siblings_with_one_winner_in_any_order() {
        let a = || event(1, 1, 1, &[], vec![put("a", "from 1")]);
        let b = || event(2, 1, 1, &[], vec![put("a", "from 2")]);
        let (mut r1, mut r2) = (Replica::new(), Replica::new());
        r1.apply(a());
        r1.apply(b());
        r2.apply(b());
        r2.apply(a());
        assert_eq!(r1.digest(), r2.digest());
        // Equal Lamport clocks: the greater member id wins, on both.
        assert_eq!(shown(&r1, "a"), Some(("from 2".into(), 1)));
        assert_eq!(shown(&r2, "a"), Some(("from 2".into(), 1)));
        assert_eq!(r1.conflicts().len(), 1);
        // A write that saw both resolves the conflict.
        r1.apply(event(1, 2, 2, &[(2, 1)], vec![put("a", "merged")]));
        assert_eq!(shown(&r1, "a"), Some(("merged".into(), 0)));
        assert_eq!(r1.conflicts().len(), 0);
    }

    #[test]
    fn a_delete_concurrent_with_a_put_loses_to_the_put() {
        let mut r = Replica::new();
        r.apply(event(1, 1, 1, &[], vec![put("a", "v")]));
        r.apply(event(2, 1, 5, &[], vec![Op::Delete { path: "a".into() }]));
        assert_eq!(shown(&r, "a"), Some(("v".into(), 1)), "the put wins, the conflict is reported");
        r.apply(event(1, 2, 6, &[(2, 1)], vec![Op::Delete { path: "a".into() }]));
        assert_eq!(shown(&r, "a"), None);
        assert_eq!(r.paths().len(), 0);
    }

    #[test]
    fn an_event_taken_back_leaves_the_path_as_if_it_never_arrived() {
        let (mut with, mut without) = (Replica::new(), Replica::new());
        for r in [&mut with, &mut without] {
            r.apply(event(1, 1, 1, &[], vec![put("a", "kept")]));
        }
        with.apply(event(2, 1, 2, &[(1, 1)], vec![put("a", "removed member"), put("b", "x")]));
        assert_eq!(shown(&with, "a"), Some(("removed member".into(), 0)));
        with.unapply(&member(2), 1);
        assert_eq!(shown(&with, "a"), Some(("kept".into(), 0)));
        assert_eq!(with.digest(), without.digest());
    }

    #[test]
    fn the_last_operation_of_one_event_on_a_path_stands() {
        let mut r = Replica::new();
        r.apply(event(1, 1, 1, &[], vec![put("a", "first"), put("a", "second")]));
        assert_eq!(shown(&r, "a"), Some(("second".into(), 0)));
        assert!(r.has_applied(&member(1), 1) && !r.has_applied(&member(1), 2));
    }
}
