//! A recording relay: what it sees of two groups whose workloads differ in every name and value
//! but not in shape (the same number of writes, paths and values of the same lengths, at the same
//! times) is the same — the same uploads of the same cell counts to the same (renamed) mailboxes,
//! the same reads — so nothing it records tells the workloads apart; while the cells themselves
//! differ in every byte that is not padding.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::support;
use std::collections::BTreeMap;
use tresor_crypto::SecretBytes;
use tresor_sync::event::Op;
use tresor_sync::peer::Timing;

/// One thing the relay saw: (round, member, upload or read, mailbox in order of first sight,
/// cells).
type Seen = (u32, usize, &'static str, usize, usize);

/// Runs three members of a group under `epoch_key` through `rounds` of writes of `names` and
/// `values` (member `round % 3` writes in each round); what the relay saw, and every cell stored.
fn record(epoch_key: u8, names: &[&str], values: &[&[u8]]) -> (Vec<Seen>, Vec<Vec<u8>>) {
    let timing = Timing { heartbeat: 60, skew: 30, grace: 3600 };
    let mut peers = support::members(3, &support::epoch_key(epoch_key), timing);
    let mut stored: BTreeMap<[u8; 32], Vec<Vec<u8>>> = BTreeMap::new();
    let mut order: Vec<[u8; 32]> = Vec::new();
    let mut seen = Vec::new();
    let ordinal =
        |mailbox: [u8; 32], order: &mut Vec<[u8; 32]>| match order.iter().position(|m| *m == mailbox) {
            Some(at) => at,
            None => {
                order.push(mailbox);
                order.len() - 1
            }
        };
    let mut cursors: Vec<BTreeMap<[u8; 32], usize>> = vec![BTreeMap::new(); 3];
    for round in 0..(names.len() as u32 + 6) {
        let now = u64::from(round) * 20;
        if let (Some(name), Some(value)) = (names.get(round as usize), values.get(round as usize)) {
            let writer = round as usize % 3;
            let op = Op::Put { path: (*name).to_string(), value: SecretBytes::new(value.to_vec()) };
            peers[writer].write(vec![op], now).unwrap();
        }
        for (i, peer) in peers.iter_mut().enumerate() {
            for (mailbox, cells) in peer.upload(now).unwrap() {
                seen.push((round, i, "upload", ordinal(mailbox, &mut order), cells.len()));
                stored.entry(mailbox).or_default().extend(cells.iter().map(|c| c.to_vec()));
            }
        }
        for (i, peer) in peers.iter_mut().enumerate() {
            for mailbox in peer.mailboxes() {
                let all = stored.get(&mailbox).cloned().unwrap_or_default();
                let from = cursors[i].get(&mailbox).copied().unwrap_or(0);
                seen.push((round, i, "read", ordinal(mailbox, &mut order), all.len() - from));
                cursors[i].insert(mailbox, all.len());
                let warnings = peer.download(&mailbox, all[from..].iter().map(Vec::as_slice), now);
                assert!(warnings.is_empty(), "{warnings:?}");
            }
        }
    }
    (seen, stored.into_values().flatten().collect())
}

#[test]
fn two_workloads_of_one_shape_leave_the_same_record_on_the_relay() {
    let (a_seen, a_cells) = record(
        1,
        &["db/password", "api/token", "ssh/deploy", "db/password"],
        &[b"hunter2-hunter2", &[7; 3000], &[1; 900], b"correct-horse!!"],
    );
    let (b_seen, b_cells) = record(
        2,
        &["web/session", "aws/secret", "gpg/backup", "x/yyyyyyyyy"],
        &[b"abcdefghijklmno", &[9; 3000], &[2; 900], b"zzzzzzzzzzzzzzz"],
    );
    assert!(a_seen.iter().any(|s| s.2 == "upload" && s.4 > 1), "nothing was uploaded: {a_seen:?}");
    assert_eq!(a_seen, b_seen, "the relay could tell the two workloads apart");
    // The record is all it has: the cells themselves share nothing.
    assert_eq!(a_cells.len(), b_cells.len());
    let equal = a_cells.iter().filter(|c| b_cells.contains(c)).count();
    assert_eq!(equal, 0, "cells of two groups are equal");
}
