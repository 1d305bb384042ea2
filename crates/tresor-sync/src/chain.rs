//! One sender's chain as a member pins it: (sequence number → event hash, Lamport clock) for
//! the events accepted here, above a checkpoint for a member that joined after the sender's
//! first events (the checkpoint's own event is known by hash; the ones before it only as
//! accepted, with a clock no larger than the checkpoint's).

/// What is known here of one place of a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// Not accepted (yet).
    Missing,
    /// Accepted: its hash and Lamport clock.
    Exact([u8; 32], u64),
    /// Accepted before the checkpoint this member started from: no hash is known, and its clock
    /// is at most the given one.
    Before(u64),
}

/// One accepted event's place in its sender's chain.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
struct Link {
    hash: [u8; 32],
    lamport: u64,
}

/// A sender's chain (see the module documentation).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Chain {
    /// The checkpoint's sequence number (0: the chain is known from its start).
    base: u64,
    base_hash: [u8; 32],
    base_lamport: u64,
    links: Vec<Link>,
}

impl Chain {
    /// A chain known from the checkpoint at `seq` (hash and clock of that event) on.
    pub fn from_checkpoint(seq: u64, hash: [u8; 32], lamport: u64) -> Chain {
        Chain { base: seq, base_hash: hash, base_lamport: lamport, links: Vec::new() }
    }

    /// How many events are accepted (the newest one's sequence number).
    pub fn len(&self) -> u64 {
        self.base + self.links.len() as u64
    }

    /// Whether nothing is accepted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What is known of place `seq`.
    pub fn at(&self, seq: u64) -> At {
        if seq == 0 || seq > self.len() {
            return At::Missing;
        }
        match seq.checked_sub(self.base + 1) {
            Some(index) => match usize::try_from(index).ok().and_then(|i| self.links.get(i)) {
                Some(link) => At::Exact(link.hash, link.lamport),
                None => At::Missing,
            },
            None if seq == self.base => At::Exact(self.base_hash, self.base_lamport),
            None => At::Before(self.base_lamport),
        }
    }

    /// The newest accepted event's hash and clock.
    pub fn last(&self) -> Option<([u8; 32], u64)> {
        match self.at(self.len()) {
            At::Exact(hash, lamport) => Some((hash, lamport)),
            _ => None,
        }
    }

    /// Accepts the next event.
    pub fn push(&mut self, hash: [u8; 32], lamport: u64) {
        self.links.push(Link { hash, lamport });
    }

    /// Cuts the chain after place `keep` (never below the checkpoint); the places taken back.
    pub fn cut_after(&mut self, keep: u64) -> std::ops::RangeInclusive<u64> {
        let keep = keep.max(self.base);
        let before = self.len();
        if before > keep {
            self.links.truncate(usize::try_from(keep - self.base).unwrap_or(usize::MAX));
        }
        keep + 1..=before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_from_a_checkpoint_knows_what_it_can() {
        let mut chain = Chain::from_checkpoint(5, [5; 32], 50);
        assert_eq!(chain.len(), 5);
        assert_eq!(chain.at(5), At::Exact([5; 32], 50));
        assert_eq!(chain.at(3), At::Before(50));
        assert_eq!((chain.at(0), chain.at(6)), (At::Missing, At::Missing));
        chain.push([6; 32], 51);
        assert_eq!(
            (chain.len(), chain.at(6), chain.last()),
            (6, At::Exact([6; 32], 51), Some(([6; 32], 51)))
        );
        assert_eq!(chain.cut_after(2), 6..=6, "never below the checkpoint");
        assert_eq!(chain.len(), 5);
        let mut whole = Chain::default();
        assert!(whole.is_empty() && whole.last().is_none());
        whole.push([1; 32], 1);
        whole.push([2; 32], 2);
        assert_eq!(whole.cut_after(0), 1..=2);
        assert!(whole.is_empty());
    }
}
