//! A member that holds its own keys and the epoch key and breaks the rules on purpose: two
//! events at one place of its chain, paths outside the prefix, a clock jumped ahead, events moved
//! to another epoch or place. Each is refused and named; changed cells are never accepted.

use crate::support::{self, GROUP};
use proptest::prelude::*;
use tresor_crypto::cell::Cell;
use tresor_crypto::{SecretBytes, hash};
use tresor_sync::event::{Body, Event, Head, Op};
use tresor_sync::frame::{self, Place};
use tresor_sync::member::Identity;
use tresor_sync::peer::{self, Peer, Timing, Warning};
use tresor_sync::receive::Alarm;
use tresor_sync::replica::View;

/// Cells of an event `mallory` (member 2 of 3) signs herself, sealed into the group's mailbox.
struct Forger {
    identity: Identity,
}

impl Forger {
    fn new() -> Forger {
        Forger { identity: support::identity(2) }
    }

    fn event(&self, seq: u64, prev: [u8; 32], heads: Vec<Head>, lamport: u64, ops: Vec<Op>) -> Event {
        Event {
            group: GROUP,
            epoch: 0,
            sender: self.identity.id(),
            seq,
            prev,
            heads,
            lamport,
            time: 1,
            body: Body::Write(ops),
        }
    }

    /// The signed bytes, their hash and the cells carrying them.
    fn seal(&self, event: &Event) -> ([u8; 32], Vec<Cell>) {
        let signed = event.sign(&self.identity).unwrap();
        let key = support::epoch_key(7);
        let mailbox = peer::mailbox(&key, &GROUP);
        let place = Place { group: &GROUP, epoch: event.epoch, mailbox: &mailbox };
        let cells = frame::seal_event(&frame::cell_key(&key), place, 2, event.seq, &signed).unwrap();
        (hash(&signed), cells)
    }
}

fn put(path: &str, value: &[u8]) -> Vec<Op> {
    vec![Op::Put { path: path.into(), value: SecretBytes::new(value.to_vec()) }]
}

fn group() -> Vec<Peer> {
    support::members(3, &support::epoch_key(7), Timing::default())
}

fn deliver(peer: &mut Peer, cells: &[Cell]) -> Vec<Warning> {
    peer.download(cells.iter().map(|c| c.as_slice()), 1)
}

fn alarms(warnings: &[Warning]) -> Vec<Alarm> {
    warnings.iter().filter_map(|w| if let Warning::Group(a) = w { Some(a.clone()) } else { None }).collect()
}

#[test]
fn two_events_at_one_place_of_a_chain_exclude_their_signer() {
    let forger = Forger::new();
    let mut peers = group();
    let (_, first) = forger.seal(&forger.event(1, [0; 32], vec![], 1, put("a", b"for alice")));
    let (_, second) = forger.seal(&forger.event(1, [0; 32], vec![], 1, put("a", b"for bob")));
    assert!(deliver(&mut peers[0], &first).is_empty());
    let warnings = deliver(&mut peers[0], &second);
    assert_eq!(alarms(&warnings), [Alarm::Equivocation { member: forger.identity.id(), seq: 1 }]);
    // Excluded: even a correct next event of hers is no longer taken.
    let (h1, _) = forger.seal(&forger.event(1, [0; 32], vec![], 1, put("a", b"for alice")));
    let (_, next) = forger.seal(&forger.event(2, h1, vec![], 2, put("b", b"more")));
    deliver(&mut peers[0], &next);
    assert!(matches!(peers[0].replica().view("b"), View::Deleted));
}

#[test]
fn a_member_that_saw_the_other_branch_of_a_fork_is_caught_by_its_claim() {
    // Mallory shows alice one event 1 and bob another; bob's next event claims bob's branch.
    let forger = Forger::new();
    let mut peers = group();
    let (_, for_alice) = forger.seal(&forger.event(1, [0; 32], vec![], 1, put("a", b"for alice")));
    let (_, for_bob) = forger.seal(&forger.event(1, [0; 32], vec![], 1, put("a", b"for bob")));
    deliver(&mut peers[0], &for_alice);
    deliver(&mut peers[1], &for_bob);
    peers[1].write(put("b", b"bob writes"), 2).unwrap();
    let bobs = peers[1].upload(2).unwrap();
    let warnings = deliver(&mut peers[0], &bobs);
    assert_eq!(
        alarms(&warnings),
        [Alarm::Fork { claimant: support::identity(1).id(), member: forger.identity.id(), seq: 1 }]
    );
    assert!(matches!(peers[0].replica().view("b"), View::Deleted), "the claim's event is not accepted");
}

#[test]
fn a_path_outside_the_prefix_is_refused_and_names_its_signer() {
    for bad in ["../escape", "a/../../b", "/abs", "a//b", "", "a\u{1}b"] {
        let forger = Forger::new();
        let mut peers = group();
        let (_, cells) = forger.seal(&forger.event(1, [0; 32], vec![], 1, put(bad, b"x")));
        let warnings = deliver(&mut peers[0], &cells);
        assert_eq!(
            alarms(&warnings),
            [Alarm::Misbehaved {
                member: forger.identity.id(),
                seq: 1,
                why: "a path the vault's path rules refuse"
            }],
            "{bad:?}"
        );
        assert_eq!(peers[0].replica().paths().count(), 0, "{bad:?}");
    }
}

#[test]
fn a_lamport_clock_jumped_ahead_to_win_is_refused() {
    let forger = Forger::new();
    let mut peers = group();
    let (_, cells) = forger.seal(&forger.event(1, [0; 32], vec![], 1_000_000, put("a", b"wins?")));
    let warnings = deliver(&mut peers[0], &cells);
    assert!(
        matches!(alarms(&warnings).as_slice(), [Alarm::Misbehaved { why, .. }] if why.contains("Lamport"))
    );
    assert!(matches!(peers[0].replica().view("a"), View::Deleted));
}

#[test]
fn an_event_sealed_for_another_epoch_does_not_open_here() {
    let forger = Forger::new();
    let mut peers = group();
    let mut event = forger.event(1, [0; 32], vec![], 1, put("a", b"x"));
    event.epoch = 1;
    let (_, cells) = forger.seal(&event);
    assert_eq!(deliver(&mut peers[0], &cells), [Warning::Foreign(cells.len())]);
}

#[test]
fn a_signed_event_of_another_epoch_in_this_epochs_cells_is_named_forged() {
    // The event says epoch 5, its cells are this epoch's: a holder of the epoch key moved it.
    let forger = Forger::new();
    let mut peers = group();
    let mut event = forger.event(1, [0; 32], vec![], 1, put("a", b"x"));
    event.epoch = 5;
    let signed = event.sign(&forger.identity).unwrap();
    let key = support::epoch_key(7);
    let mailbox = peer::mailbox(&key, &GROUP);
    let place = Place { group: &GROUP, epoch: 0, mailbox: &mailbox };
    let cells = frame::seal_event(&frame::cell_key(&key), place, 2, 1, &signed).unwrap();
    assert!(matches!(deliver(&mut peers[0], &cells).as_slice(), [Warning::Forged(_)]));
    assert!(matches!(peers[0].replica().view("a"), View::Deleted));
}

#[test]
fn an_event_claimed_by_another_members_index_is_named_forged() {
    // Mallory signs, but seals the cells under alice's index: alice's key does not verify it.
    let forger = Forger::new();
    let mut peers = group();
    let event = forger.event(1, [0; 32], vec![], 1, put("a", b"x"));
    let signed = event.sign(&forger.identity).unwrap();
    let key = support::epoch_key(7);
    let mailbox = peer::mailbox(&key, &GROUP);
    let place = Place { group: &GROUP, epoch: 0, mailbox: &mailbox };
    let cells = frame::seal_event(&frame::cell_key(&key), place, 0, 1, &signed).unwrap();
    assert!(matches!(deliver(&mut peers[1], &cells).as_slice(), [Warning::Forged(_)]));
    assert_eq!(peers[1].replica().paths().count(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any change to any bit of any cell: the cell is foreign, nothing is accepted, and the
    /// unchanged cells delivered afterwards are.
    #[test]
    fn a_changed_cell_is_never_accepted(which in 0usize..4, byte in 0usize..1024, bit in 0u8..8) {
        let mut peers = group();
        peers[0].write(put("a", &vec![9u8; 2500]), 1).unwrap();
        let cells = peers[0].upload(1).unwrap();
        let which = which % cells.len();
        let mut changed = cells.clone();
        changed[which][byte] ^= 1 << bit;
        let warnings = deliver(&mut peers[1], &changed[which..=which]);
        prop_assert_eq!(warnings, vec![Warning::Foreign(1)]);
        prop_assert!(matches!(peers[1].replica().view("a"), View::Deleted));
        prop_assert!(deliver(&mut peers[1], &cells).is_empty());
        prop_assert!(matches!(peers[1].replica().view("a"), View::Value(v, 0) if v.ct_eq(&[9u8; 2500])));
    }
}
