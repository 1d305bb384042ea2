//! Events in cells and back: an event's bytes split into fixed-size cells of its epoch, each
//! fragment naming its sender, sequence number and the event's hash; uploads padded with filler
//! cells to a power of two; fragments joined again into events whose bytes hash to their claim
//! (ARCHITECTURE.md, "Sharing and sync through a relay", **Cells**).
//!
//! ```text
//! inner (984): sender u16 | seq u64 | event hash (32) | index u16 | count u16 | length u16 | bytes | zeros
//! ```
//! A filler cell has count 0 and nothing else. All integers are big-endian.

use std::collections::HashMap;
use tresor_crypto::cell::{self, Cell, INNER_LEN};
use tresor_crypto::derive::hkdf_sha256;
use tresor_crypto::{Key, hash};
use zeroize::Zeroizing;

/// Bytes of the header inside a cell.
const HEADER_LEN: usize = 2 + 8 + 32 + 2 + 2 + 2;
/// Event bytes one cell carries.
pub const FRAGMENT_MAX: usize = INNER_LEN - HEADER_LEN;
/// Most cells one event may take (about 15 MiB of event).
pub const MAX_FRAGMENTS: usize = 1 << 14;

/// Why a cell or a set of fragments was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The cell does not open under this epoch's key at this place: from elsewhere, or changed.
    #[error("a cell does not open here: sealed for another group, epoch or mailbox, or changed")]
    Unopenable,
    /// It opened (so a holder of the epoch key made it), but its inside breaks the layout.
    #[error("a cell breaks the layout: {0}")]
    Malformed(&'static str),
    /// The joined fragments do not hash to the event hash they claim.
    #[error("fragments of event {seq} from sender {sender} do not hash to the event they claim")]
    HashMismatch {
        /// Who the fragments claim sent it.
        sender: u16,
        /// Its claimed sequence number.
        seq: u64,
    },
    /// More bytes wait for missing fragments than the joiner holds.
    #[error("more than {0} bytes of fragments wait for the rest of their events")]
    Overflow(usize),
    /// An event too large for the cells of one event.
    #[error("an event of {0} bytes is larger than {MAX_FRAGMENTS} cells carry")]
    TooLarge(usize),
    /// The system's random source failed.
    #[error("the random source failed: {0}")]
    Random(String),
}

/// Where cells live: their group, epoch and mailbox, bound into every cell.
#[derive(Clone, Copy, Debug)]
pub struct Place<'a> {
    /// The group id.
    pub group: &'a [u8; 32],
    /// The epoch number.
    pub epoch: u64,
    /// The epoch's mailbox id.
    pub mailbox: &'a [u8; 32],
}

impl Place<'_> {
    fn aad(&self) -> Vec<u8> {
        [b"tresor-sync cell v1".as_slice(), self.group, &self.epoch.to_be_bytes(), self.mailbox].concat()
    }
}

/// The key cells of an epoch are sealed under, from the epoch key.
pub fn cell_key(epoch_key: &Key) -> Key {
    hkdf_sha256(epoch_key.expose_secret(), b"", b"tresor-sync cells")
}

/// The cells carrying `event`, fragment by fragment.
pub fn seal_event(
    key: &Key,
    place: Place<'_>,
    sender: u16,
    seq: u64,
    event: &[u8],
) -> Result<Vec<Cell>, FrameError> {
    let count = event.len().div_ceil(FRAGMENT_MAX).max(1);
    if count > MAX_FRAGMENTS || event.is_empty() {
        return Err(FrameError::TooLarge(event.len()));
    }
    let digest = hash(event);
    let aad = place.aad();
    let mut cells = Vec::with_capacity(count);
    for (index, bytes) in event.chunks(FRAGMENT_MAX).enumerate() {
        let mut inner = Zeroizing::new([0u8; INNER_LEN]);
        inner[..2].copy_from_slice(&sender.to_be_bytes());
        inner[2..10].copy_from_slice(&seq.to_be_bytes());
        inner[10..42].copy_from_slice(&digest);
        inner[42..44].copy_from_slice(&u16::try_from(index).unwrap_or(u16::MAX).to_be_bytes());
        inner[44..46].copy_from_slice(&u16::try_from(count).unwrap_or(u16::MAX).to_be_bytes());
        inner[46..48].copy_from_slice(&u16::try_from(bytes.len()).unwrap_or(u16::MAX).to_be_bytes());
        inner[HEADER_LEN..HEADER_LEN + bytes.len()].copy_from_slice(bytes);
        cells.push(cell::seal(key, &aad, &inner).map_err(|e| FrameError::Random(e.to_string()))?);
    }
    Ok(cells)
}

/// Pads `cells` with filler cells to the next power of two (at least one cell), so that an
/// upload shows the relay only its bucket.
pub fn pad_to_bucket(key: &Key, place: Place<'_>, cells: &mut Vec<Cell>) -> Result<(), FrameError> {
    let aad = place.aad();
    let filler = Zeroizing::new([0u8; INNER_LEN]);
    while cells.is_empty() || !cells.len().is_power_of_two() {
        cells.push(cell::seal(key, &aad, &filler).map_err(|e| FrameError::Random(e.to_string()))?);
    }
    Ok(())
}

/// A fragment of an event, out of its cell.
pub struct Fragment {
    /// The sender's index in the epoch's member list.
    pub sender: u16,
    /// The sender's sequence number of the event.
    pub seq: u64,
    /// The hash the event's bytes must have.
    pub hash: [u8; 32],
    index: u16,
    count: u16,
    bytes: Zeroizing<Vec<u8>>,
}

/// What a cell held.
pub enum Opened {
    /// Padding.
    Filler,
    /// A piece of an event.
    Fragment(Fragment),
}

/// Opens one cell of `place`.
pub fn open_cell(key: &Key, place: Place<'_>, sealed: &[u8]) -> Result<Opened, FrameError> {
    let inner = cell::open(key, &place.aad(), sealed).map_err(|_| FrameError::Unopenable)?;
    let u16_at = |i: usize| u16::from_be_bytes([inner[i], inner[i + 1]]);
    let count = u16_at(44);
    if count == 0 {
        return match inner.iter().all(|b| *b == 0) {
            true => Ok(Opened::Filler),
            false => Err(FrameError::Malformed("a filler cell that is not all zeros")),
        };
    }
    let (index, length) = (u16_at(42), usize::from(u16_at(46)));
    if usize::from(count) > MAX_FRAGMENTS || index >= count {
        return Err(FrameError::Malformed("a fragment number outside its count"));
    }
    let last = index + 1 == count;
    if length > FRAGMENT_MAX || length == 0 || (!last && length != FRAGMENT_MAX) {
        return Err(FrameError::Malformed("a fragment length that does not fit its place"));
    }
    if inner[HEADER_LEN + length..].iter().any(|b| *b != 0) {
        return Err(FrameError::Malformed("bytes after a fragment's end"));
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&inner[2..10]);
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&inner[10..42]);
    Ok(Opened::Fragment(Fragment {
        sender: u16_at(0),
        seq: u64::from_be_bytes(seq),
        hash: digest,
        index,
        count,
        bytes: Zeroizing::new(inner[HEADER_LEN..HEADER_LEN + length].to_vec()),
    }))
}

/// A whole event, joined: its bytes hash to `hash` (its signature is for the caller to check).
pub struct Joined {
    /// The sender's index.
    pub sender: u16,
    /// The sender's sequence number.
    pub seq: u64,
    /// SHA-256 of `bytes`.
    pub hash: [u8; 32],
    /// The event's bytes.
    pub bytes: Zeroizing<Vec<u8>>,
}

/// Which event a partial is: (sender, seq, claimed hash).
type PartialKey = (u16, u64, [u8; 32]);

/// An event whose fragments are still arriving.
struct Partial {
    count: u16,
    parts: HashMap<u16, Zeroizing<Vec<u8>>>,
    bytes: usize,
}

/// How far past a sender's next expected event fragments are kept.
pub const MAX_AHEAD: u64 = 64;
/// Most events with different claimed hashes kept at one (sender, sequence number).
pub const MAX_CANDIDATES: usize = 4;

/// Joins fragments into events. Fragments are kept apart by (sender, seq, claimed hash), so
/// fragments planted by another holder of the epoch key under an honest event's (sender, seq)
/// never mix with it. What waits is bounded so that no one jams the joiner: only events up to
/// [`MAX_AHEAD`] past the sender's next are kept, at most [`MAX_CANDIDATES`] claims per place
/// (the one with the fewest fragments goes first), and at most `max_buffered` bytes, the events
/// farthest ahead of their sender going first — and before them, events at places already
/// accepted (only a proof of equivocation is ever such an event).
pub struct Joiner {
    pending: HashMap<PartialKey, Partial>,
    /// Each sender's next expected sequence number, as last told.
    next: HashMap<u16, u64>,
    buffered: usize,
    max_buffered: usize,
}

impl Joiner {
    /// A joiner holding at most `max_buffered` bytes of incomplete events.
    pub fn new(max_buffered: usize) -> Joiner {
        Joiner { pending: HashMap::new(), next: HashMap::new(), buffered: 0, max_buffered }
    }

    /// How far the event at (sender, seq) is ahead of its sender's next expected one.
    /// Events behind the next one (a proof that their sender signed two events at one place)
    /// count as farther than any ahead: they go first when room is short.
    fn distance(&self, sender: u16, seq: u64) -> u64 {
        let next = self.next.get(&sender).copied().unwrap_or(1);
        match seq.checked_sub(next) {
            Some(ahead) => ahead,
            None => MAX_AHEAD + (next - seq),
        }
    }

    fn remove(&mut self, key: &PartialKey) {
        if let Some(partial) = self.pending.remove(key) {
            self.buffered -= partial.bytes;
        }
    }

    /// Adds a fragment of an event of its sender, whose next expected event is `next`: the
    /// event once its last missing fragment arrived. A fragment outside the window, or seen
    /// before while its event is incomplete, is ignored (its sender uploads it again until it is
    /// acknowledged); one that disagrees with its event's count, or completes bytes that do not
    /// hash to the claim, is refused (and the latter's candidate dropped, so that the sender's
    /// next upload can make the event whole).
    pub fn add(&mut self, fragment: Fragment, next: u64) -> Result<Option<Joined>, FrameError> {
        self.next.insert(fragment.sender, next);
        if fragment.seq >= next.saturating_add(MAX_AHEAD) {
            return Ok(None);
        }
        let key = (fragment.sender, fragment.seq, fragment.hash);
        if !self.pending.contains_key(&key) {
            let rivals: Vec<(usize, PartialKey)> = self
                .pending
                .iter()
                .filter(|(k, _)| k.0 == key.0 && k.1 == key.1)
                .map(|(k, p)| (p.parts.len(), *k))
                .collect();
            if rivals.len() >= MAX_CANDIDATES
                && let Some((_, fewest)) = rivals.iter().min_by_key(|(parts, _)| *parts)
            {
                self.remove(&fewest.clone());
            }
        }
        let length = fragment.bytes.len();
        while self.buffered + length > self.max_buffered {
            let here = self.distance(key.0, key.1);
            let farthest = self
                .pending
                .keys()
                .filter(|k| **k != key)
                .map(|k| (self.distance(k.0, k.1), *k))
                .max_by_key(|(d, _)| *d);
            match farthest {
                Some((distance, victim)) if distance > here => self.remove(&victim),
                _ => return Err(FrameError::Overflow(self.max_buffered)),
            }
        }
        let partial = self.pending.entry(key).or_insert_with(|| Partial {
            count: fragment.count,
            parts: HashMap::new(),
            bytes: 0,
        });
        if partial.count != fragment.count {
            return Err(FrameError::Malformed("fragments of one event disagree on their count"));
        }
        if partial.parts.contains_key(&fragment.index) {
            return Ok(None);
        }
        self.buffered += length;
        partial.bytes += length;
        partial.parts.insert(fragment.index, fragment.bytes);
        if partial.parts.len() < usize::from(partial.count) {
            return Ok(None);
        }
        let Some(partial) = self.pending.remove(&key) else { return Ok(None) };
        self.buffered -= partial.bytes;
        let mut bytes = Zeroizing::new(Vec::with_capacity(partial.bytes));
        for index in 0..partial.count {
            if let Some(part) = partial.parts.get(&index) {
                bytes.extend_from_slice(part);
            }
        }
        if hash(&bytes) != key.2 {
            return Err(FrameError::HashMismatch { sender: key.0, seq: key.1 });
        }
        Ok(Some(Joined { sender: key.0, seq: key.1, hash: key.2, bytes }))
    }

    /// Drops the fragments of `sender`'s events up to `seq`, once they are accepted: a fragment
    /// delivered again after its event came out would otherwise wait for ever.
    pub fn forget_through(&mut self, sender: u16, seq: u64) {
        let mut freed = 0;
        self.pending.retain(|(s, q, _), partial| {
            let keep = *s != sender || *q > seq;
            if !keep {
                freed += partial.bytes;
            }
            keep
        });
        self.buffered -= freed;
    }

    /// Bytes waiting for the rest of their events.
    pub fn buffered(&self) -> usize {
        self.buffered
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GROUP: [u8; 32] = [1; 32];
    const MAILBOX: [u8; 32] = [2; 32];

    fn place() -> Place<'static> {
        Place { group: &GROUP, epoch: 3, mailbox: &MAILBOX }
    }

    fn key() -> Key {
        cell_key(&Key::generate().unwrap())
    }

    /// Every event the cells make, in the order they complete.
    fn join_all(key: &Key, place: Place<'_>, cells: &[Cell]) -> Vec<(u16, u64, Vec<u8>)> {
        let mut joiner = Joiner::new(1 << 24);
        let mut out = Vec::new();
        for cell in cells {
            if let Opened::Fragment(f) = open_cell(key, place, cell).unwrap()
                && let Some(j) = joiner.add(f, 1).unwrap()
            {
                out.push((j.sender, j.seq, j.bytes.to_vec()));
            }
        }
        out
    }

    #[test]
    fn events_of_every_size_cross_and_uploads_fill_their_bucket() {
        let key = key();
        for len in [1, FRAGMENT_MAX - 1, FRAGMENT_MAX, FRAGMENT_MAX + 1, 5 * FRAGMENT_MAX + 17] {
            let event: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut cells = seal_event(&key, place(), 4, 9, &event).unwrap();
            assert_eq!(cells.len(), len.div_ceil(FRAGMENT_MAX));
            pad_to_bucket(&key, place(), &mut cells).unwrap();
            assert!(cells.len().is_power_of_two());
            assert_eq!(join_all(&key, place(), &cells), [(4, 9, event)]);
        }
        assert_eq!(seal_event(&key, place(), 0, 1, b""), Err(FrameError::TooLarge(0)));
        let mut none = Vec::new();
        pad_to_bucket(&key, place(), &mut none).unwrap();
        assert_eq!(none.len(), 1, "an empty upload is one filler cell");
    }

    #[test]
    fn a_cell_of_another_place_or_key_does_not_open() {
        let key = key();
        let cells = seal_event(&key, place(), 0, 1, b"event").unwrap();
        let other_epoch = Place { epoch: 4, ..place() };
        let other_mailbox = Place { mailbox: &[9; 32], ..place() };
        let other_group = Place { group: &[9; 32], ..place() };
        for wrong in [other_epoch, other_mailbox, other_group] {
            assert!(matches!(open_cell(&key, wrong, &cells[0]), Err(FrameError::Unopenable)));
        }
        assert!(matches!(open_cell(&self::key(), place(), &cells[0]), Err(FrameError::Unopenable)));
    }

    #[test]
    fn planted_fragments_never_mix_with_an_honest_event() {
        // A holder of the epoch key plants fragments under the honest event's (sender, seq).
        let key = key();
        let honest: Vec<u8> = vec![7; 3 * FRAGMENT_MAX];
        let planted: Vec<u8> = vec![8; 3 * FRAGMENT_MAX];
        let good = seal_event(&key, place(), 1, 5, &honest).unwrap();
        let bad = seal_event(&key, place(), 1, 5, &planted).unwrap();
        // Interleaved, the planted ones first: each event is whole on its own, never mixed.
        let cells = [bad[0], good[0], bad[1], good[1], good[2]];
        assert_eq!(join_all(&key, place(), &cells), [(1, 5, honest)]);
    }

    #[test]
    fn a_fragment_that_lies_about_its_hash_is_refused_and_the_event_can_still_arrive() {
        // A forger with the epoch key claims the honest hash over other bytes.
        let key = key();
        let honest = b"the honest event".to_vec();
        let good = seal_event(&key, place(), 2, 1, &honest).unwrap();
        let Opened::Fragment(f) = open_cell(&key, place(), &good[0]).unwrap() else { panic!() };
        let mut inner = Zeroizing::new([0u8; INNER_LEN]);
        inner[..2].copy_from_slice(&2u16.to_be_bytes());
        inner[2..10].copy_from_slice(&1u64.to_be_bytes());
        inner[10..42].copy_from_slice(&f.hash);
        inner[44..46].copy_from_slice(&1u16.to_be_bytes());
        inner[46..48].copy_from_slice(&5u16.to_be_bytes());
        inner[HEADER_LEN..HEADER_LEN + 5].copy_from_slice(b"forge");
        let forged = cell::seal(&key, &place().aad(), &inner).unwrap();
        let mut joiner = Joiner::new(1 << 20);
        let Opened::Fragment(forged) = open_cell(&key, place(), &forged).unwrap() else { panic!() };
        assert_eq!(joiner.add(forged, 1).err(), Some(FrameError::HashMismatch { sender: 2, seq: 1 }));
        let Opened::Fragment(f) = open_cell(&key, place(), &good[0]).unwrap() else { panic!() };
        assert_eq!(joiner.add(f, 1).unwrap().map(|j| j.bytes.to_vec()), Some(honest));
        assert_eq!(joiner.buffered(), 0);
    }

    #[test]
    fn malformed_insides_are_refused_even_under_the_right_key() {
        let key = key();
        let seal_inner = |f: &dyn Fn(&mut [u8; INNER_LEN])| {
            let mut inner = Zeroizing::new([0u8; INNER_LEN]);
            f(&mut inner);
            cell::seal(&key, &place().aad(), &inner).unwrap()
        };
        let cases: [(&str, Cell); 4] = [
            ("filler with bytes", seal_inner(&|i| i[100] = 1)),
            (
                "index past count",
                seal_inner(&|i| {
                    i[42..44].copy_from_slice(&2u16.to_be_bytes());
                    i[44..46].copy_from_slice(&2u16.to_be_bytes());
                    i[46..48].copy_from_slice(&1u16.to_be_bytes());
                }),
            ),
            (
                "short middle fragment",
                seal_inner(&|i| {
                    i[44..46].copy_from_slice(&2u16.to_be_bytes());
                    i[46..48].copy_from_slice(&1u16.to_be_bytes());
                }),
            ),
            (
                "bytes after the end",
                seal_inner(&|i| {
                    i[44..46].copy_from_slice(&1u16.to_be_bytes());
                    i[46..48].copy_from_slice(&1u16.to_be_bytes());
                    i[HEADER_LEN + 3] = 1;
                }),
            ),
        ];
        for (what, cell) in cases {
            assert!(matches!(open_cell(&key, place(), &cell), Err(FrameError::Malformed(_))), "{what}");
        }
    }

    #[test]
    fn waiting_fragments_are_bounded() {
        let key = key();
        let big = vec![1u8; 4 * FRAGMENT_MAX];
        let cells = seal_event(&key, place(), 0, 1, &big).unwrap();
        let mut joiner = Joiner::new(2 * FRAGMENT_MAX);
        for cell in &cells[..2] {
            let Opened::Fragment(f) = open_cell(&key, place(), cell).unwrap() else { panic!() };
            assert!(joiner.add(f, 1).unwrap().is_none());
        }
        let Opened::Fragment(f) = open_cell(&key, place(), &cells[2]).unwrap() else { panic!() };
        assert_eq!(joiner.add(f, 1).err(), Some(FrameError::Overflow(2 * FRAGMENT_MAX)));
    }

    /// Fragments of one cell each of an event of `count` cells at (sender, seq), hash `tag`.
    fn planted(key: &Key, sender: u16, seq: u64, count: u16, tag: u8) -> Fragment {
        let mut inner = Zeroizing::new([0u8; INNER_LEN]);
        inner[..2].copy_from_slice(&sender.to_be_bytes());
        inner[2..10].copy_from_slice(&seq.to_be_bytes());
        inner[10..42].copy_from_slice(&[tag; 32]);
        inner[44..46].copy_from_slice(&count.to_be_bytes());
        inner[46..48].copy_from_slice(&(FRAGMENT_MAX as u16).to_be_bytes());
        let cell = cell::seal(key, &place().aad(), &inner).unwrap();
        let Opened::Fragment(f) = open_cell(key, place(), &cell).unwrap() else { panic!() };
        f
    }

    #[test]
    fn planted_fragments_far_ahead_or_in_numbers_do_not_jam_the_next_event() {
        // A holder of the epoch key fills the joiner with never-finished events far ahead of
        // sender 0's next one, and with rival claims at its very place.
        let key = key();
        let mut joiner = Joiner::new(8 * FRAGMENT_MAX);
        for seq in 2..10 {
            assert!(joiner.add(planted(&key, 0, seq, 100, 1), 1).unwrap().is_none());
        }
        assert_eq!(joiner.buffered(), 8 * FRAGMENT_MAX, "full");
        for tag in 2..10 {
            assert!(joiner.add(planted(&key, 0, 1, 100, tag), 1).unwrap().is_none());
        }
        assert!(
            joiner.add(planted(&key, 0, 1_000, 2, 9), 1).unwrap().is_none(),
            "outside the window: ignored"
        );
        // The honest next event still comes out whole.
        let honest = vec![5u8; 3 * FRAGMENT_MAX];
        let cells = seal_event(&key, place(), 0, 1, &honest).unwrap();
        let mut out = None;
        for cell in &cells {
            let Opened::Fragment(f) = open_cell(&key, place(), cell).unwrap() else { panic!() };
            out = joiner.add(f, 1).unwrap().or(out);
        }
        assert_eq!(out.map(|j| j.bytes.to_vec()), Some(honest));
        assert!(joiner.buffered() <= 8 * FRAGMENT_MAX);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// However a relay reorders and duplicates the cells of several events, each event comes
        /// out whole; and a cell it drops keeps its event from coming out at all.
        #[test]
        fn reordered_duplicated_or_dropped_cells_never_give_a_wrong_event(
            lens in proptest::collection::vec(1usize..3 * FRAGMENT_MAX, 1..4),
            order in proptest::collection::vec(any::<u32>(), 0..64),
            drop_one in any::<bool>(),
        ) {
            let key = key();
            let events: Vec<Vec<u8>> = lens.iter().enumerate().map(|(n, len)| vec![n as u8 + 1; *len]).collect();
            let mut cells = Vec::new();
            for (n, event) in events.iter().enumerate() {
                cells.extend(seal_event(&key, place(), n as u16, 1, event).unwrap());
            }
            let total = cells.len();
            // A relay's delivery: a shuffle, some cells twice, maybe one cell never.
            let mut delivered: Vec<Cell> = Vec::new();
            for (i, r) in order.iter().enumerate() {
                delivered.push(cells[(*r as usize + i) % total]);
            }
            let dropped = if drop_one { Some(cells[0]) } else { None };
            delivered.extend(cells.iter().filter(|c| Some(**c) != dropped));
            let joined = join_all(&key, place(), &delivered);
            for (sender, _, bytes) in &joined {
                prop_assert_eq!(bytes, &events[*sender as usize]);
            }
            // (A cell delivered again after its event came out makes it come out again: the
            // receiver drops it against the sender's pinned chain.)
            let mut senders: Vec<u16> = joined.iter().map(|j| j.0).collect();
            senders.sort_unstable();
            senders.dedup();
            let expected = if drop_one && !order.iter().enumerate().any(|(i, r)| (*r as usize + i).is_multiple_of(total)) {
                events.len() - 1
            } else {
                events.len()
            };
            prop_assert_eq!(senders.len(), expected);
        }
    }
}
