//! Deterministic simulation: 3–5 members write through a relay that drops, delays, duplicates,
//! reorders, replays, injects and withholds — per member, so that members see different
//! histories — chosen per seed; then the relay turns honest and the group must settle.
//!
//! For every seed: all members converge to identical state once quiet; every write of every
//! member is applied everywhere (it survives as the value, a sibling or history); no honest
//! member is ever accused; every injected cell a member was shown is counted as foreign by it,
//! and no other cell is; a member shown nothing of another for three windows says so.
//!
//! `TRESOR_SIM_SEEDS` sets the number of seeds (64 by default; the full run is 1,000).

use crate::support;
use proptest::prelude::{Rng, RngExt};
use proptest::test_runner::{RngAlgorithm, TestRng};
use tresor_crypto::SecretBytes;
use tresor_sync::event::Op;
use tresor_sync::member::MemberId;
use tresor_sync::peer::{Peer, Timing, Warning};

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

/// What the hostile relay does in one seed.
struct Attack {
    drop_stored: f64,
    drop_shown: f64,
    duplicate: f64,
    replay: f64,
    inject: f64,
    stall: f64,
    reorder: bool,
    /// (viewer, sender, from, to): the sender's cells are hidden from the viewer in that time.
    blackout: Option<(usize, usize, u64, u64)>,
}

impl Attack {
    fn draw(rng: &mut TestRng, members: usize, window: u64) -> Attack {
        let p = |rng: &mut TestRng, max: f64| rng.random::<f64>() * max;
        let blackout = (members > 1).then(|| {
            let viewer = rng.random_range(0..members);
            let sender = (viewer + rng.random_range(1..members)) % members;
            let length = 3 * window;
            let from = rng.random_range(0..HOSTILE_ROUNDS * TICK - length);
            (viewer, sender, from, from + length)
        });
        Attack {
            drop_stored: p(rng, 0.3),
            drop_shown: p(rng, 0.3),
            duplicate: p(rng, 0.3),
            replay: p(rng, 0.2),
            inject: p(rng, 0.05),
            stall: p(rng, 0.3),
            reorder: rng.random(),
            blackout,
        }
    }
}

/// The relay: an append-only list of cells and one cursor per member.
struct Relay {
    log: Vec<Stored>,
    cursors: Vec<usize>,
}

impl Relay {
    /// What member `viewer` is shown at `now`, hostile or not; advances its cursor.
    fn fetch(&mut self, viewer: usize, now: u64, attack: Option<&Attack>, rng: &mut TestRng) -> Vec<Stored> {
        let from = self.cursors[viewer];
        let Some(attack) = attack else {
            self.cursors[viewer] = self.log.len();
            return self.log[from..]
                .iter()
                .map(|s| Stored { from: s.from, cell: s.cell.clone(), injected: s.injected })
                .collect();
        };
        if rng.random_bool(attack.stall) {
            return Vec::new();
        }
        let mut shown = Vec::new();
        for stored in &self.log[from..] {
            let hidden = attack
                .blackout
                .is_some_and(|(v, s, a, b)| v == viewer && s == stored.from && (a..b).contains(&now));
            if hidden || rng.random_bool(attack.drop_shown) {
                continue;
            }
            let copies = if rng.random_bool(attack.duplicate) { 2 } else { 1 };
            for _ in 0..copies {
                shown.push(Stored {
                    from: stored.from,
                    cell: stored.cell.clone(),
                    injected: stored.injected,
                });
            }
        }
        if !self.log.is_empty() && rng.random_bool(attack.replay) {
            for _ in 0..rng.random_range(1..8) {
                let old = &self.log[rng.random_range(0..self.log.len())];
                let hidden = attack
                    .blackout
                    .is_some_and(|(v, s, a, b)| v == viewer && s == old.from && (a..b).contains(&now));
                if !hidden {
                    shown.push(Stored { from: old.from, cell: old.cell.clone(), injected: old.injected });
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
        self.cursors[viewer] = self.log.len();
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
}

/// One seed's run; panics with the seed in the message on any failed property.
fn run(seed: u64, exercised: &mut Exercised) {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_be_bytes());
    let mut rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let size = rng.random_range(3..=5u8);
    let timing = Timing { heartbeat: 60, skew: 30 };
    let mut peers = support::members(size, &support::epoch_key(7), timing);
    let n = peers.len();
    let attack = Attack::draw(&mut rng, n, timing.window());
    let mut relay = Relay { log: Vec::new(), cursors: vec![0; n] };
    let mut writes: Vec<(MemberId, u64)> = Vec::new();
    let mut injected_shown = vec![0usize; n];
    let mut foreign_counted = vec![0usize; n];
    let mut blackout_reported = false;
    let ids: Vec<MemberId> = peers.iter().map(Peer::id).collect();

    let mut now = 0;
    for round in 0..HOSTILE_ROUNDS + SETTLE_ROUNDS {
        now += TICK;
        let hostile = round < HOSTILE_ROUNDS;
        let attack_now = hostile.then_some(&attack);
        for (i, peer) in peers.iter_mut().enumerate() {
            if hostile && rng.random_bool(0.25) {
                let seq = peer.write(random_ops(&mut rng), now).expect("a write");
                writes.push((ids[i], seq));
            }
            for cell in peer.upload(now).expect("an upload") {
                if !(hostile && rng.random_bool(attack.drop_stored)) {
                    relay.log.push(Stored { from: i, cell: cell.to_vec(), injected: false });
                }
            }
        }
        for (i, peer) in peers.iter_mut().enumerate() {
            let shown = relay.fetch(i, now, attack_now, &mut rng);
            injected_shown[i] += shown.iter().filter(|s| s.injected).count();
            for warning in peer.download(shown.iter().map(|s| s.cell.as_slice()), now) {
                match warning {
                    Warning::Foreign(count) => foreign_counted[i] += count,
                    other => panic!("seed {seed}: member {i} accused an honest group or relay of {other:?}"),
                }
            }
            if let Some((viewer, sender, from, to)) = attack.blackout
                && viewer == i
                && (from..=to + TICK).contains(&now)
            {
                blackout_reported |= peer.silence(now).iter().any(|w| match w {
                    Warning::Silent { member, .. } => *member == ids[sender],
                    Warning::Behind { .. } => true,
                    _ => false,
                });
            }
        }
        let quiet = !hostile && peers.iter().all(|p| p.unacknowledged() == 0);
        if quiet {
            break;
        }
    }

    assert!(
        peers.iter().all(|p| p.unacknowledged() == 0),
        "seed {seed}: not settled after {SETTLE_ROUNDS} honest rounds: {:?}",
        peers.iter().map(Peer::unacknowledged).collect::<Vec<_>>()
    );
    let digest = peers[0].replica().digest();
    for (i, peer) in peers.iter().enumerate() {
        assert_eq!(peer.replica().digest(), digest, "seed {seed}: member {i} differs from member 0");
        for (member, seq) in &writes {
            assert!(
                peer.replica().has_applied(member, *seq),
                "seed {seed}: member {i} lost write {seq} of {member}"
            );
        }
    }
    assert_eq!(foreign_counted, injected_shown, "seed {seed}: foreign cells counted vs injected cells shown");
    if attack.blackout.is_some() {
        assert!(
            blackout_reported,
            "seed {seed}: a member shown nothing of another for three windows did not say so"
        );
        exercised.blackouts += 1;
    }
    exercised.writes += writes.len();
    exercised.conflicts += peers[0].replica().conflicts().count();
    exercised.foreign += foreign_counted.iter().sum::<usize>();
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
    }
}
