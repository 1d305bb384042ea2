//! A member that holds its own keys and the epoch key and breaks the rules on purpose: two
//! events at one place of its chain, paths outside the prefix, a clock jumped ahead, events moved
//! to another epoch or place. Each is refused and named; changed cells are never accepted.

use crate::support::{self, GROUP};
use proptest::prelude::*;
use tresor_crypto::agree::{self, AgreementSecret};
use tresor_crypto::cell::Cell;
use tresor_crypto::{Key, SecretBytes, hash};
use tresor_sync::event::{Body, Event, Head, Op, Rekey, Wrapped};
use tresor_sync::frame::{self, Place};
use tresor_sync::member::{Identity, MemberKey};
use tresor_sync::pair::{self, Creator, Invitation, Message};
use tresor_sync::peer::{self, Peer, PeerError, Timing, Warning};
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
    let mailbox = peer::mailbox(&support::epoch_key(7), &GROUP);
    peer.download(&mailbox, cells.iter().map(|c| c.as_slice()), 1)
}

/// The cells of a member's upload (one mailbox: no epoch has changed).
fn uploaded(peer: &mut Peer, now: u64) -> Vec<Cell> {
    peer.upload(now).unwrap().into_iter().flat_map(|(_, cells)| cells).collect()
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
    let bobs = uploaded(&mut peers[1], 2);
    let warnings = deliver(&mut peers[0], &bobs);
    assert_eq!(
        alarms(&warnings),
        [Alarm::Fork { claimant: support::identity(1).id(), member: forger.identity.id(), seq: 1 }]
    );
    assert!(matches!(peers[0].replica().view("b"), View::Deleted), "the claim's event is not accepted");
}

#[test]
fn a_path_outside_the_prefix_is_refused_and_names_its_signer() {
    let long = "a".repeat(tresor_sync::receive::MAX_SHARED_PATH + 1);
    for bad in ["../escape", "a/../../b", "/abs", "a//b", "", "a\u{1}b", "\u{1}sys/tokens", &long] {
        let forger = Forger::new();
        let mut peers = group();
        let (_, cells) = forger.seal(&forger.event(1, [0; 32], vec![], 1, put(bad, b"x")));
        let warnings = deliver(&mut peers[0], &cells);
        assert_eq!(
            alarms(&warnings),
            [Alarm::Misbehaved {
                member: forger.identity.id(),
                seq: 1,
                why: "a path the group's path rules refuse"
            }],
            "{bad:?}"
        );
        assert_eq!(peers[0].replica().paths().len(), 0, "{bad:?}");
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
fn a_signed_event_of_a_later_epoch_in_this_epochs_cells_is_named_forged() {
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
    assert_eq!(peers[1].replica().paths().len(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any change to any bit of any cell: the cell is foreign, nothing is accepted, and the
    /// unchanged cells delivered afterwards are.
    #[test]
    fn a_changed_cell_is_never_accepted(which in 0usize..4, byte in 0usize..1024, bit in 0u8..8) {
        let mut peers = group();
        peers[0].write(put("a", &vec![9u8; 2500]), 1).unwrap();
        let cells = uploaded(&mut peers[0], 1);
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

/// Delivers everything `from` uploads at `now` to `to`, mailbox by mailbox.
fn pass(from: &mut Peer, to: &mut Peer, now: u64) -> Vec<Warning> {
    let mut warnings = Vec::new();
    for (mailbox, cells) in from.upload(now).unwrap() {
        warnings.extend(to.download(&mailbox, cells.iter().map(|c| c.as_slice()), now));
    }
    warnings
}

#[test]
fn a_rekey_from_a_member_that_is_not_the_admin_is_refused() {
    let forger = Forger::new();
    let mut peers = group();
    let members = (0..3).map(|n| support::identity(n).key()).collect();
    let rekey = Rekey { epoch: 1, members, wraps: Vec::new(), removed: Vec::new() };
    let mut event = forger.event(1, [0; 32], vec![], 1, Vec::new());
    event.body = Body::Rekey(rekey);
    let (_, cells) = forger.seal(&event);
    let warnings = deliver(&mut peers[0], &cells);
    assert!(
        matches!(alarms(&warnings).as_slice(), [Alarm::Misbehaved { why, .. }] if why.contains("not the admin")),
        "{warnings:?}"
    );
    assert_eq!(peers[0].epoch(), 0);
}

#[test]
fn an_epoch_key_wrapped_to_a_substituted_key_is_reported_not_used() {
    // The admin's rekey wraps bob's key to a key bob does not hold (a substitution): bob says so
    // and stays in the epoch he can prove, writing nothing under a key someone else chose.
    let mut peers = group();
    let substitute = AgreementSecret::generate().unwrap();
    let key = Key::generate().unwrap();
    let members: Vec<MemberKey> = (0..3).map(|n| support::identity(n).key()).collect();
    let wraps = members[1..]
        .iter()
        .map(|m| {
            let to = if m.id() == support::identity(1).id() { substitute.public() } else { m.agreement };
            let context = [b"tresor-sync wrap".as_slice(), &GROUP, &1u64.to_be_bytes(), &m.id().0].concat();
            Wrapped { member: m.id(), to, sealed: agree::wrap_to(&to, &context, &key).unwrap().to_vec() }
        })
        .collect();
    let cells = admin_rekey(Rekey { epoch: 1, members, wraps, removed: Vec::new() });
    let warnings = deliver(&mut peers[1], &cells);
    assert!(
        matches!(warnings.as_slice(), [Warning::Forged(why)] if why.contains("does not open")),
        "{warnings:?}"
    );
    assert_eq!(peers[1].epoch(), 0);
    // Carol, whose wrap is honest, moves on.
    assert!(deliver(&mut peers[2], &cells).is_empty());
    assert_eq!(peers[2].epoch(), 1);
}

#[test]
fn a_removed_member_writes_nothing_anyone_takes_and_what_it_wrote_past_its_cut_is_taken_back() {
    let mut peers = group();
    let (alice, rest) = peers.split_first_mut().unwrap();
    let (bob, carol) = rest.split_first_mut().unwrap();
    let carol = &mut carol[0];
    // Alice removes bob before she has anything of his: his cut is at 0.
    alice.rekey(&[bob.id()], 1).unwrap();
    // Bob, not told yet, writes; carol takes it (she has not seen the removal either).
    bob.write(put("bob/secret", b"written while being removed"), 2).unwrap();
    assert!(pass(bob, carol, 2).is_empty());
    assert!(matches!(carol.replica().view("bob/secret"), View::Value(..)));
    // Alice's rekey (in the old mailbox) reaches carol: bob's write is taken back, and carol
    // moves to epoch 1 (keeping epoch 0 until everyone has moved on).
    let old = peer::mailbox(&support::epoch_key(7), &GROUP);
    for (mailbox, cells) in alice.upload(3).unwrap() {
        if mailbox == old {
            assert!(carol.download(&mailbox, cells.iter().map(|c| c.as_slice()), 3).is_empty());
        }
    }
    assert!(matches!(carol.replica().view("bob/secret"), View::Deleted));
    assert_eq!(carol.epoch(), 1);
    assert!(!carol.members().iter().any(|m| m.id() == bob.id()));
    // Bob writes again: refused and named.
    bob.write(put("bob/again", b"x"), 4).unwrap();
    let warnings = pass(bob, carol, 4);
    assert!(
        alarms(&warnings)
            .iter()
            .all(|a| matches!(a, Alarm::AfterRemoval { member, .. } if *member == bob.id())),
        "{warnings:?}"
    );
    assert!(!alarms(&warnings).is_empty());
    assert!(matches!(carol.replica().view("bob/again"), View::Deleted));
    // Alice's first event of epoch 1 is not readable by bob with every key he holds.
    alice.write(put("after", b"new epoch"), 5).unwrap();
    let after: Vec<Cell> = alice.upload(5).unwrap().into_iter().flat_map(|(_, c)| c).collect();
    assert!(!after.is_empty());
    assert_eq!(bob.readable(after.iter().map(|c| c.as_slice())), 0);
    // Bob learns of his removal from the rekey in the old mailbox, and stops writing.
    let mut to_bob = Vec::new();
    let rekey_cells = {
        // Alice uploads her rekey again after a window; take it from there.
        let uploads = alice.upload(5 + Timing::default().window()).unwrap();
        uploads.into_iter().filter(|(m, _)| *m == old).flat_map(|(_, c)| c).collect::<Vec<_>>()
    };
    to_bob.extend(bob.download(&old, rekey_cells.iter().map(|c| c.as_slice()), 6));
    assert!(to_bob.contains(&Warning::Removed), "{to_bob:?}");
    assert!(bob.is_removed());
    assert!(bob.write(put("x", b"y"), 7).is_err());
}

/// The cells of the admin's (alice's) first event, the rekey `rekey`, in the genesis mailbox.
fn admin_rekey(rekey: Rekey) -> Vec<Cell> {
    let admin = support::identity(0);
    let event = Event {
        group: GROUP,
        epoch: 0,
        sender: admin.id(),
        seq: 1,
        prev: [0; 32],
        heads: Vec::new(),
        lamport: 1,
        time: 1,
        body: Body::Rekey(rekey),
    };
    let signed = event.sign(&admin).unwrap();
    let epoch_key = support::epoch_key(7);
    let mailbox = peer::mailbox(&epoch_key, &GROUP);
    let place = Place { group: &GROUP, epoch: 0, mailbox: &mailbox };
    frame::seal_event(&frame::cell_key(&epoch_key), place, 0, 1, &signed).unwrap()
}

/// The group's three members with alice (the admin) having removed bob, and the rekey's cells
/// delivered to carol's stand-in: `peers[0]` is alice.
fn with_bob_removed() -> Vec<Peer> {
    let mut peers = group();
    let bob = peers[1].id();
    peers[0].rekey(&[bob], 1).unwrap();
    peers
}

#[test]
fn a_claim_about_a_removed_members_events_buys_no_more_than_one_clock_tick_each() {
    // Mallory names bob's events past his cut (which alice cannot check) to lift her clock.
    let forger = Forger::new();
    let bob = support::identity(1).id();
    for (claimed, lamport, ok) in [(5, 6, true), (5, 7, false), (5, 1_000_000, false), (5_000, 5_001, false)]
    {
        let mut peers = with_bob_removed();
        let heads = vec![Head { member: bob, seq: claimed, hash: [1; 32] }];
        let (_, cells) = forger.seal(&forger.event(1, [0; 32], heads, lamport, put("win", b"x")));
        let warnings = deliver(&mut peers[0], &cells);
        match ok {
            true => assert!(warnings.is_empty(), "{claimed} {lamport}: {warnings:?}"),
            false => assert!(
                matches!(alarms(&warnings).as_slice(), [Alarm::Misbehaved { why, .. }] if why.contains("Lamport") || why.contains("far past")),
                "{claimed} {lamport}: {warnings:?}"
            ),
        }
        assert_eq!(matches!(peers[0].replica().view("win"), View::Value(..)), ok);
    }
}

#[test]
fn a_one_time_key_of_small_order_is_refused() {
    let forger = Forger::new();
    let mut peers = group();
    let mut event = forger.event(1, [0; 32], vec![], 1, Vec::new());
    event.body = Body::Ack { one_time: vec![AgreementSecret::generate().unwrap().public(), [0; 32]] };
    let (_, cells) = forger.seal(&event);
    let warnings = deliver(&mut peers[0], &cells);
    assert!(
        matches!(alarms(&warnings).as_slice(), [Alarm::Misbehaved { why, .. }] if why.contains("small order"))
    );
}

#[test]
fn a_rekey_that_drops_a_member_without_cutting_it_is_refused() {
    // The admin's rekey leaves bob out but names no cut: bob's later old-epoch writes would
    // never be refused.
    let mut peers = group();
    let members: Vec<MemberKey> = [0, 2].iter().map(|n| support::identity(*n).key()).collect();
    let key = Key::generate().unwrap();
    let carol = support::identity(2).key();
    let context = [b"tresor-sync wrap".as_slice(), &GROUP, &1u64.to_be_bytes(), &carol.id().0].concat();
    let wraps = vec![Wrapped {
        member: carol.id(),
        to: carol.agreement,
        sealed: agree::wrap_to(&carol.agreement, &context, &key).unwrap().to_vec(),
    }];
    let cells = admin_rekey(Rekey { epoch: 1, members, wraps, removed: Vec::new() });
    let warnings = deliver(&mut peers[2], &cells);
    assert!(
        matches!(alarms(&warnings).as_slice(), [Alarm::Misbehaved { why, .. }] if why.contains("without cutting")),
        "{warnings:?}"
    );
    assert_eq!(peers[2].epoch(), 0);
}

#[test]
fn an_equivocation_shown_to_different_members_is_proved_to_all_and_undone_everywhere() {
    // Mallory (member 3 of 4) signs two events at her place 1 and the relay shows alice one and
    // bob the other. Alice, bob and carol then talk through an honest relay: each learns of both
    // (members forward what they hold when a claim disagrees), cuts mallory before place 1, and
    // all three end with the same state, holding neither of her events.
    let timing = Timing { heartbeat: 1, skew: 0, grace: 3600 };
    let key = support::epoch_key(7);
    let mut peers = support::members(4, &key, timing);
    let mallory = support::identity(3);
    let mailbox = peer::mailbox(&key, &GROUP);
    let place = Place { group: &GROUP, epoch: 0, mailbox: &mailbox };
    let sealed = |value: &[u8]| {
        let event = Event {
            group: GROUP,
            epoch: 0,
            sender: mallory.id(),
            seq: 1,
            prev: [0; 32],
            heads: Vec::new(),
            lamport: 1,
            time: 1,
            body: Body::Write(put("mallory", value)),
        };
        let signed = event.sign(&mallory).unwrap();
        frame::seal_event(&frame::cell_key(&key), place, 3, 1, &signed).unwrap()
    };
    let (for_alice, for_bob) = (sealed(b"for alice"), sealed(b"for bob"));
    assert!(peers[0].download(&mailbox, for_alice.iter().map(|c| c.as_slice()), 1).is_empty());
    assert!(peers[1].download(&mailbox, for_bob.iter().map(|c| c.as_slice()), 1).is_empty());
    let mut seen = [false; 3];
    for now in 2..40 {
        let uploads: Vec<(usize, [u8; 32], Vec<Cell>)> = (0..3)
            .flat_map(|i| peers[i].upload(now).unwrap().into_iter().map(move |(m, c)| (i, m, c)))
            .collect();
        for (to, peer) in peers.iter_mut().enumerate().take(3) {
            for (from, mailbox, cells) in &uploads {
                if *from != to {
                    for warning in peer.download(mailbox, cells.iter().map(|c| c.as_slice()), now) {
                        match warning {
                            Warning::Group(Alarm::Equivocation { member, .. }) if member == mallory.id() => {
                                seen[to] = true
                            }
                            Warning::Group(Alarm::Fork { member, .. }) if member == mallory.id() => {}
                            other => panic!("member {to}: {other:?}"),
                        }
                    }
                }
            }
        }
    }
    assert_eq!(seen, [true; 3], "every member proved the equivocation itself");
    for peer in &peers[..3] {
        assert!(matches!(peer.replica().view("mallory"), View::Deleted));
        assert_eq!(peer.replica().digest(), peers[0].replica().digest());
    }
}

#[test]
fn a_member_paired_through_the_relay_joins_mid_history_and_the_group_converges() {
    // Alice (admin) and bob share a history, a conflict included; carol pairs with alice through
    // the relay (the words match), is admitted, and starts from alice's snapshot.
    let timing = Timing { heartbeat: 1, skew: 0, grace: 3600 };
    let key = support::epoch_key(7);
    let mut peers = support::members(2, &key, timing);
    let everyone = |peers: &mut Vec<Peer>, now: u64| {
        let uploads: Vec<(usize, [u8; 32], Vec<Cell>)> = (0..peers.len())
            .flat_map(|i| peers[i].upload(now).unwrap().into_iter().map(move |(m, c)| (i, m, c)))
            .collect();
        for (to, peer) in peers.iter_mut().enumerate() {
            for (from, mailbox, cells) in &uploads {
                if *from != to {
                    let warnings = peer.download(mailbox, cells.iter().map(|c| c.as_slice()), now);
                    assert!(warnings.is_empty(), "member {to}: {warnings:?}");
                }
            }
        }
    };
    peers[0].write(put("db/password", b"from alice"), 1).unwrap();
    peers[1].write(put("db/password", b"from bob"), 1).unwrap();
    peers[1].write(put("api/token", b"tok"), 1).unwrap();
    for now in 2..6 {
        everyone(&mut peers, now);
    }

    // Pairing through the relay's pairing mailbox.
    let invitation = Invitation::parse(&Invitation::new("http://127.0.0.1:8250").unwrap().to_text()).unwrap();
    let alice_key = support::identity(0).key();
    let mut creator = Creator::new(GROUP, alice_key, peers[0].epoch(), peers[0].members().to_vec()).unwrap();
    let carol = support::identity(2);
    let (mut joiner, commit) = pair::Joiner::new(carol.key()).unwrap();
    let cells = invitation.seal(1, 1, &commit).unwrap();
    let [(1, Message::Commit(c))] = invitation.open(cells.iter().map(|c| c.as_slice()))[..] else { panic!() };
    let Message::Offer(offer) = creator.on_commit(c).unwrap() else { panic!() };
    let (reveal, offer, carol_words) = joiner.on_offer(offer).unwrap();
    let Message::Reveal { keys, nonce } = reveal else { panic!() };
    let (learnt, alice_words) = creator.on_reveal(keys, nonce).unwrap();
    assert_eq!(alice_words, carol_words, "the people compare the words: they match");
    let welcome = peers[0].admit(learnt, 6).unwrap();
    let cells = invitation.seal(0, 2, &welcome).unwrap();
    let [(0, Message::Welcome { rekey, snapshot })] =
        &invitation.open(cells.iter().map(|c| c.as_slice()))[..]
    else {
        panic!()
    };
    // The welcome is sealed: whoever read the invitation cannot read the snapshot's values.
    assert!(!snapshot.windows(8).any(|w| w == b"from bob"));
    let carol_peer = Peer::join(carol, &offer, rekey, snapshot, "shared", timing, 6).unwrap();
    assert!(matches!(carol_peer.replica().view("api/token"), View::Value(v, 0) if v.ct_eq(b"tok")));
    assert!(matches!(carol_peer.replica().view("db/password"), View::Value(_, 1)), "the conflict came along");
    peers.push(carol_peer);
    peers[2].write(put("from/carol", b"hello"), 7).unwrap();
    peers[1].write(put("db/password", b"bob resolves"), 7).unwrap();
    for now in 7..20 {
        everyone(&mut peers, now);
    }
    for peer in &peers {
        assert_eq!(peer.replica().view_digest(), peers[0].replica().view_digest());
        assert_eq!(peer.unacknowledged(), 0);
        assert_eq!(peer.epoch(), 1);
        assert!(matches!(peer.replica().view("from/carol"), View::Value(..)));
        assert!(matches!(peer.replica().view("db/password"), View::Value(v, 0) if v.ct_eq(b"bob resolves")));
    }
}

#[test]
fn a_welcome_from_anyone_but_the_admin_or_for_someone_else_is_refused() {
    let timing = Timing::default();
    let key = support::epoch_key(7);
    let mut peers = support::members(2, &key, timing);
    let carol = support::identity(2);
    let offer = pair::Offer {
        group: GROUP,
        admin: support::identity(0).key(),
        epoch: 0,
        members: peers[0].members().to_vec(),
        nonce: [0; 32],
    };
    let Message::Welcome { rekey, snapshot } = peers[0].admit(carol.key(), 1).unwrap() else { panic!() };
    // Dave, who read the invitation, takes carol's welcome: not his key.
    let dave = support::identity(3);
    assert!(matches!(Peer::join(dave, &offer, &rekey, &snapshot, "s", timing, 1), Err(PeerError::Join(_))));
    // An offer naming bob as the admin: the rekey is not his.
    let forged = pair::Offer { admin: support::identity(1).key(), ..offer.clone() };
    assert!(matches!(
        Peer::join(support::identity(2), &forged, &rekey, &snapshot, "s", timing, 1),
        Err(PeerError::Join(_))
    ));
    // A changed snapshot.
    let mut bad = snapshot.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(matches!(
        Peer::join(support::identity(2), &offer, &rekey, &bad, "s", timing, 1),
        Err(PeerError::Join(_))
    ));
    assert!(Peer::join(support::identity(2), &offer, &rekey, &snapshot, "s", timing, 1).is_ok());
}
