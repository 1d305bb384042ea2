//! Deterministic simulation: 3–5 members write through a relay that drops, delays, duplicates,
//! reorders, replays, injects and withholds — per member, so that members see different
//! histories — chosen per seed; then the relay turns honest and the group must settle.
//!
//! For every seed: all members converge to identical state once quiet; every write of every
//! member is applied everywhere (it survives as the value, a sibling or history); no honest
//! member is ever accused; every injected cell a member was shown is counted as foreign by it,
//! and no other cell is; when the relay withholds one member's uploads from the others for three
//! windows, every other member says so. (Withholding from one viewer only does not work: the
//! others forward what it lacks.)
//!
//! The admin starts two new epochs on the way, in half the seeds admits a new member (paired,
//! then starting from the admin's snapshot mid-run), and in half the seeds removes a member: the
//! removed member, with every key it held and the whole relay, opens none of the later epochs'
//! cells, and none of its writes after its removal is taken by anyone.
//!
//! `TRESOR_SIM_SEEDS` sets the number of seeds (64 by default; the full run is 1,000).

use crate::support;
use proptest::prelude::{Rng, RngExt};
use proptest::test_runner::{RngAlgorithm, TestRng};
use std::collections::{BTreeMap, BTreeSet};
use tresor_crypto::SecretBytes;
use tresor_sync::event::Op;
use tresor_sync::member::MemberId;
use tresor_sync::pair::{self, Message};
use tresor_sync::peer::{Peer, Timing, Warning};
use tresor_sync::receive::Alarm;

/// Seconds between rounds.
const TICK: u64 = 10;
/// Rounds with the relay hostile (15 minutes).
const HOSTILE_ROUNDS: u64 = 90;
/// Rounds the group gets, with an honest relay, to settle.
const SETTLE_ROUNDS: u64 = 200;

/// One cell on the relay, and who uploaded it (the relay knows its connections).
struct Stored {
    from: usize,
    cell: Vec<u8>,
    injected: bool,
}

impl Stored {
    fn copy(&self) -> Stored {
        Stored { from: self.from, cell: self.cell.clone(), injected: self.injected }
    }
}

/// What the hostile relay does in one seed.
struct Attack {
    drop_stored: f64,
    drop_shown: f64,
    duplicate: f64,
    replay: f64,
    inject: f64,
    stall: f64,
    reorder: bool,
    /// (sender, from, to): the sender's uploads are hidden from every other member in that time.
    blackout: Option<(usize, u64, u64)>,
}

impl Attack {
    fn draw(rng: &mut TestRng, members: usize, window: u64) -> Attack {
        let p = |rng: &mut TestRng, max: f64| rng.random::<f64>() * max;
        let sender = rng.random_range(0..members);
        let length = 3 * window;
        let from = rng.random_range(0..HOSTILE_ROUNDS * TICK - length);
        Attack {
            drop_stored: p(rng, 0.3),
            drop_shown: p(rng, 0.3),
            duplicate: p(rng, 0.3),
            replay: p(rng, 0.2),
            inject: p(rng, 0.05),
            stall: p(rng, 0.3),
            reorder: rng.random(),
            blackout: Some((sender, from, from + length)),
        }
    }

    fn hides(&self, viewer: usize, stored: &Stored, now: u64) -> bool {
        self.blackout.is_some_and(|(s, a, b)| viewer != s && s == stored.from && (a..b).contains(&now))
    }
}

/// The relay: an append-only list of cells per mailbox, and one cursor per member and mailbox.
#[derive(Default)]
struct Relay {
    log: BTreeMap<[u8; 32], Vec<Stored>>,
    cursors: BTreeMap<(usize, [u8; 32]), usize>,
}

impl Relay {
    /// What member `viewer` is shown of `mailbox` at `now`, hostile or not; advances its cursor.
    fn fetch(
        &mut self,
        viewer: usize,
        mailbox: [u8; 32],
        now: u64,
        attack: Option<&Attack>,
        rng: &mut TestRng,
    ) -> Vec<Stored> {
        let log = self.log.entry(mailbox).or_default();
        let cursor = self.cursors.entry((viewer, mailbox)).or_default();
        let from = *cursor;
        let Some(attack) = attack else {
            *cursor = log.len();
            return log[from..].iter().map(Stored::copy).collect();
        };
        if rng.random_bool(attack.stall) {
            return Vec::new();
        }
        let mut shown = Vec::new();
        for stored in &log[from..] {
            if attack.hides(viewer, stored, now) || rng.random_bool(attack.drop_shown) {
                continue;
            }
            let copies = if rng.random_bool(attack.duplicate) { 2 } else { 1 };
            shown.extend((0..copies).map(|_| stored.copy()));
        }
        if !log.is_empty() && rng.random_bool(attack.replay) {
            for _ in 0..rng.random_range(1..8) {
                let old = &log[rng.random_range(0..log.len())];
                if !attack.hides(viewer, old, now) {
                    shown.push(old.copy());
                }
            }
        }
        if rng.random_bool(attack.inject) {
            for _ in 0..rng.random_range(1..4) {
                let mut cell = vec![0u8; tresor_crypto::cell::CELL_LEN];
                rng.fill_bytes(&mut cell);
                shown.push(Stored { from: usize::MAX, cell, injected: true });
            }
        }
        if attack.reorder {
            for i in (1..shown.len()).rev() {
                shown.swap(i, rng.random_range(0..=i));
            }
        }
        *cursor = log.len();
        shown
    }
}

/// A random write: one to three puts or deletes among a few paths, values of up to three cells.
fn random_ops(rng: &mut TestRng) -> Vec<Op> {
    (0..rng.random_range(1..4))
        .map(|_| {
            let path = format!("app{}/key{}", rng.random_range(0..2), rng.random_range(0..3));
            if rng.random_bool(0.2) {
                Op::Delete { path }
            } else {
                let mut value = vec![0u8; rng.random_range(1..3000)];
                rng.fill_bytes(&mut value);
                Op::Put { path, value: SecretBytes::new(value) }
            }
        })
        .collect()
}

/// What one seed exercised, summed over seeds to show the simulation does what it claims.
#[derive(Default, Debug)]
struct Exercised {
    writes: usize,
    conflicts: usize,
    foreign: usize,
    blackouts: usize,
    epochs: u64,
    removals: usize,
    refused_after_removal: usize,
    /// Wraps of an epoch key to a long-term key (no one-time key was left), out of all wraps.
    long_term_wraps: u64,
    joins: usize,
    /// Members stopped and started again from their saved state.
    restarts: usize,
}

/// One seed's run; panics with the seed in the message on any failed property.
fn run(seed: u64, exercised: &mut Exercised) {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_be_bytes());
    let mut rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let size = rng.random_range(3..=5u8);
    let timing = Timing { heartbeat: 60, skew: 30, grace: 24 * 3600 };
    let mut peers = support::members(size, &support::epoch_key(7), timing);
    let n = peers.len();
    let attack = Attack::draw(&mut rng, n, timing.window());
    // Member 0 is the admin; it rekeys twice, and in half the seeds removes one member.
    let rekeys = [rng.random_range(10..40), rng.random_range(45..80)];
    let removal = rng.random_bool(0.5).then(|| (rng.random_range(1..n), rng.random_range(10..80u64)));
    let removed = removal.map(|(member, _)| member);
    // In half the seeds a new member pairs with the admin and joins mid-run (it is number n).
    let join_at = rng.random_bool(0.5).then(|| rng.random_range(15..85u64));
    let mut joined_at = None;
    let mut removed_at = None;
    let mut relay = Relay::default();
    let mut writes: Vec<(usize, u64, u64)> = Vec::new();
    let mut injected_shown = vec![0usize; n + 1];
    let mut foreign_counted = vec![0usize; n + 1];
    let mut refused = 0;
    let mut blackout_reported = vec![false; n + 1];
    let mut later_mailboxes: BTreeSet<[u8; 32]> = BTreeSet::new();
    let mut before_removal: BTreeSet<[u8; 32]> = BTreeSet::new();
    let mut ids: Vec<MemberId> = peers.iter().map(Peer::id).collect();

    let mut now = 0;
    for round in 0..HOSTILE_ROUNDS + SETTLE_ROUNDS {
        now += TICK;
        let hostile = round < HOSTILE_ROUNDS;
        let attack_now = hostile.then_some(&attack);
        if let Some((member, at)) = removal
            && at == round
        {
            before_removal.extend(peers[0].mailboxes());
            peers[0].rekey(&[ids[member]], now).expect("a removal");
            removed_at = Some(now);
        } else if rekeys.contains(&round) {
            peers[0].rekey(&[], now).expect("a rekey");
        }
        if join_at == Some(round) && !peers[0].is_removed() {
            let newcomer = support::identity(40);
            let (mut joiner, commit) = pair::Joiner::new(newcomer.key()).expect("a joiner");
            let mut creator = pair::Creator::new(
                support::GROUP,
                peers[0].members()[0],
                peers[0].epoch(),
                peers[0].members().to_vec(),
            )
            .expect("a creator");
            let Message::Commit(commit) = commit else { unreachable!() };
            let Message::Offer(offer) = creator.on_commit(commit).expect("an offer") else { unreachable!() };
            let (reveal, offer, _) = joiner.on_offer(offer).expect("a reveal");
            let Message::Reveal { keys, nonce } = reveal else { unreachable!() };
            let (learnt, _) = creator.on_reveal(keys, nonce).expect("the words");
            let Message::Welcome { rekey, snapshot } = peers[0].admit(learnt, now).expect("a welcome") else {
                unreachable!()
            };
            ids.push(newcomer.id());
            peers.push(Peer::join(newcomer, &offer, &rekey, &snapshot, "team", timing, now).expect("a join"));
            joined_at = Some(now);
        }
        if removed_at.is_some() {
            later_mailboxes.extend(peers[0].mailboxes().into_iter().filter(|m| !before_removal.contains(m)));
        }
        for (i, peer) in peers.iter_mut().enumerate() {
            // A member stops and starts again from the state its vault keeps: what was not
            // whole yet (fragments, events waiting for others) is gone, the rest is as it was.
            if rng.random_bool(0.05) {
                let saved = peer.save().expect("a saved state");
                let identity = support::identity(if i < n { i as u8 } else { 40 });
                *peer = Peer::restore(identity, &saved).expect("a restart");
                assert_eq!(
                    *peer.save().expect("saved again"),
                    *saved,
                    "seed {seed}: a restart changed member {i}"
                );
                exercised.restarts += 1;
            }
            if hostile && !peer.is_removed() && rng.random_bool(0.25) {
                let seq = peer.write(random_ops(&mut rng), now).expect("a write");
                writes.push((i, seq, now));
            }
            for (mailbox, cells) in peer.upload(now).expect("an upload") {
                for cell in cells {
                    if !(hostile && rng.random_bool(attack.drop_stored)) {
                        relay.log.entry(mailbox).or_default().push(Stored {
                            from: i,
                            cell: cell.to_vec(),
                            injected: false,
                        });
                    }
                }
            }
        }
        for (i, peer) in peers.iter_mut().enumerate() {
            for mailbox in peer.mailboxes() {
                if !peer.mailboxes().contains(&mailbox) {
                    continue; // Retired by the download before.
                }
                let shown = relay.fetch(i, mailbox, now, attack_now, &mut rng);
                injected_shown[i] += shown.iter().filter(|s| s.injected).count();
                for warning in peer.download(&mailbox, shown.iter().map(|s| s.cell.as_slice()), now) {
                    match warning {
                        Warning::Foreign(count) => foreign_counted[i] += count,
                        Warning::Group(Alarm::AfterRemoval { member, .. })
                            if Some(member) == removed.map(|r| ids[r]) =>
                        {
                            refused += 1;
                        }
                        _ if Some(i) == removed => {}
                        other => {
                            panic!("seed {seed}: member {i} accused an honest group or relay of {other:?}")
                        }
                    }
                }
            }
            if let Some((sender, from, to)) = attack.blackout
                && sender != i
                && (from..=to + TICK).contains(&now)
            {
                blackout_reported[i] |= peer.silence(now).iter().any(|w| match w {
                    Warning::Silent { member, .. } => *member == ids[sender],
                    Warning::Behind { .. } => true,
                    _ => false,
                });
            }
        }
        let quiet = !hostile
            && (0..peers.len()).filter(|i| Some(*i) != removed).all(|i| peers[i].unacknowledged() == 0);
        if quiet {
            break;
        }
    }

    let staying: Vec<usize> = (0..peers.len()).filter(|i| Some(*i) != removed).collect();
    let digest = peers[0].replica().digest();
    let view = peers[0].replica().view_digest();
    for &i in &staying {
        let replica = peers[i].replica();
        // A member that joined later has not applied the events before it (its snapshot holds
        // their result): it must show the same, the others must hold the same.
        assert_eq!(
            peers[i].unacknowledged(),
            0,
            "seed {seed}: member {i} not settled after {SETTLE_ROUNDS} honest rounds"
        );
        assert_eq!(replica.view_digest(), view, "seed {seed}: member {i} shows other values than member 0");
        if i < n {
            assert_eq!(replica.digest(), digest, "seed {seed}: member {i} differs from member 0");
        }
        for (writer, seq, at) in &writes {
            let applied = replica.has_applied(&ids[*writer], *seq);
            if i == n && joined_at.is_some_and(|j| *at < j) {
                continue;
            }
            if Some(*writer) != removed {
                assert!(applied, "seed {seed}: member {i} lost write {seq} of member {writer}");
            } else if removed_at.is_some_and(|r| *at >= r) {
                assert!(
                    !applied,
                    "seed {seed}: member {i} took write {seq} of the removed member after its removal"
                );
            }
        }
        assert_eq!(
            foreign_counted[i], injected_shown[i],
            "seed {seed}: member {i}: foreign cells counted vs injected cells shown"
        );
        assert_eq!(peers[i].epoch(), peers[0].epoch(), "seed {seed}: member {i} is in another epoch");
    }
    if let Some(r) = removed {
        // The removed member, with every key it ever held and every cell on the relay, opens
        // none of the cells of the epochs after its removal (and did open the first epoch's).
        let after: Vec<&[u8]> = later_mailboxes
            .iter()
            .flat_map(|m| relay.log.get(m).into_iter().flatten())
            .map(|s| s.cell.as_slice())
            .collect();
        assert!(!after.is_empty(), "seed {seed}: nothing was written after the removal");
        assert_eq!(
            peers[r].readable(after.iter().copied()),
            0,
            "seed {seed}: the removed member read a later epoch"
        );
        // And the check can succeed: the cells of an epoch it still holds, it does open.
        let held: Vec<&[u8]> = peers[r]
            .mailboxes()
            .iter()
            .flat_map(|m| relay.log.get(m).into_iter().flatten())
            .map(|s| s.cell.as_slice())
            .collect();
        assert!(
            held.is_empty() || peers[r].readable(held.iter().copied()) > 0,
            "seed {seed}: the check above proves nothing"
        );
        exercised.removals += 1;
    }
    if let Some((sender, ..)) = attack.blackout
        && Some(sender) != removed
    {
        for viewer in (0..n).filter(|v| *v != sender && Some(*v) != removed) {
            assert!(
                blackout_reported[viewer],
                "seed {seed}: member {viewer}, shown nothing of member {sender} for three windows, did not say so"
            );
        }
        exercised.blackouts += 1;
    }
    exercised.writes += writes.len();
    exercised.conflicts += peers[0].replica().conflicts().len();
    exercised.foreign += foreign_counted.iter().sum::<usize>();
    exercised.epochs += peers[0].epoch();
    exercised.refused_after_removal += refused;
    exercised.long_term_wraps += peers[0].long_term_wraps();
    exercised.joins += usize::from(joined_at.is_some());
}

#[test]
fn honest_members_converge_through_a_hostile_relay_and_see_its_attacks() {
    let seeds: u64 = std::env::var("TRESOR_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(64);
    let mut exercised = Exercised::default();
    for seed in 0..seeds {
        run(seed, &mut exercised);
    }
    eprintln!("{seeds} seeds: {exercised:?}");
    if seeds >= 16 {
        assert!(exercised.writes > 0 && exercised.conflicts > 0, "{exercised:?}");
        assert!(exercised.foreign > 0 && exercised.blackouts > 0, "{exercised:?}");
        assert!(exercised.removals > 0 && exercised.epochs > 0 && exercised.joins > 0, "{exercised:?}");
        assert!(exercised.restarts > 0, "{exercised:?}");
    }
}
