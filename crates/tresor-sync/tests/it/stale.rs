//! A member's older copy (a backup restored, or a copy of the vault syncing beside it) sees an
//! event its own key signed that it did not make, and from then on signs and sends nothing — so
//! the group never sees two events at one place of its chain; while the member's own events
//! replayed to it by the relay change nothing.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::support;
use std::collections::BTreeMap;
use tresor_crypto::SecretBytes;
use tresor_sync::event::Op;
use tresor_sync::peer::{Peer, PeerError, Timing};

fn put(path: &str, value: &[u8]) -> Vec<Op> {
    vec![Op::Put { path: path.to_string(), value: SecretBytes::new(value.to_vec()) }]
}

/// Everything `peer` uploads at `now`, added to the relay's mailboxes.
fn upload(peer: &mut Peer, relay: &mut BTreeMap<[u8; 32], Vec<Vec<u8>>>, now: u64) {
    for (mailbox, cells) in peer.upload(now).unwrap() {
        relay.entry(mailbox).or_default().extend(cells.iter().map(|c| c.to_vec()));
    }
}

/// Every cell of every mailbox `peer` reads, given to it; the warnings.
fn download(peer: &mut Peer, relay: &BTreeMap<[u8; 32], Vec<Vec<u8>>>, now: u64) -> Vec<String> {
    let mut warnings = Vec::new();
    for mailbox in peer.mailboxes() {
        let cells = relay.get(&mailbox).cloned().unwrap_or_default();
        warnings.extend(
            peer.download(&mailbox, cells.iter().map(Vec::as_slice), now).iter().map(|w| w.to_string()),
        );
    }
    warnings
}

#[test]
fn an_older_copy_of_a_member_signs_nothing_and_the_group_sees_nothing_of_it() {
    let timing = Timing { heartbeat: 60, skew: 30, grace: 3600 };
    let mut peers = support::members(2, &support::epoch_key(9), timing);
    let mut relay = BTreeMap::new();
    peers[0].write(put("db", b"one"), 10).unwrap();
    upload(&mut peers[0], &mut relay, 10);
    assert!(download(&mut peers[1], &relay, 10).is_empty());
    let backup = peers[0].save().unwrap();
    // The member goes on after its backup.
    peers[0].write(put("db", b"two"), 20).unwrap();
    upload(&mut peers[0], &mut relay, 20);
    // Its own events, replayed to it, are nothing new.
    assert!(download(&mut peers[0], &relay, 25).is_empty());
    assert_eq!(peers[0].stale(), None);

    // The backup, restored: it writes before it reads (as a round does), then reads the relay.
    let mut older = Peer::restore(support::identity(0), &backup).unwrap();
    older.write(put("db", b"from-the-older-copy"), 30).unwrap();
    download(&mut older, &relay, 30);
    assert!(older.stale().is_some(), "the older copy did not see its own later event");
    assert!(matches!(older.write(put("db", b"again"), 31), Err(PeerError::Stale(_))));
    assert!(older.upload(31).unwrap().is_empty(), "the older copy sends");
    // The group saw nothing of it: no equivocation, and the member's own value.
    assert!(download(&mut peers[1], &relay, 40).is_empty());
    match peers[1].replica().view("db") {
        tresor_sync::replica::View::Value(value, 0) => assert_eq!(value.as_slice(), b"two"),
        _ => panic!("not the member's own value"),
    }
}
