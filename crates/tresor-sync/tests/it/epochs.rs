//! How old an epoch is, as each member counts it (the admin's periodic rekey reads it): from when
//! it started here — created, or its rekey taken in — and again from zero at the next one.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::support;
use tresor_sync::peer::Timing;

#[test]
fn an_epoch_is_as_old_as_its_start_here() {
    let timing = Timing { heartbeat: 60, skew: 30, grace: 3600 };
    let mut peers = support::members(2, &support::epoch_key(3), timing);
    assert_eq!(peers[0].epoch_age(1_000), 1_000, "the first epoch started at 0");
    peers[0].rekey(&[], 1_000).unwrap();
    assert_eq!((peers[0].epoch(), peers[0].epoch_age(1_500)), (1, 500));
    // The other member counts from when it took the rekey in.
    for (mailbox, cells) in peers[0].upload(1_000).unwrap() {
        peers[1].download(&mailbox, cells.iter().map(|c| c.as_slice()), 1_200);
    }
    assert_eq!((peers[1].epoch(), peers[1].epoch_age(1_500)), (1, 300));
    // And the age survives a restart.
    let saved = peers[1].save().unwrap();
    let restored = tresor_sync::peer::Peer::restore(support::identity(1), &saved).unwrap();
    assert_eq!(restored.epoch_age(1_500), 300);
}
