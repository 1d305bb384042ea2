//! Tampering with stored objects (T03, T04, T05): every kind of object, flipped, moved, swapped,
//! copied, injected or deleted directly in the vault directory, must surface as the right error
//! naming the object, never as a panic or a wrong value.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, assert_integrity, err, flip};
use tresor::layout;
use tresor::{Error, ObjectKind, Vault};

struct Secret {
    path: &'static str,
    value: &'static [u8],
    blob: String,
}

/// Sets `path` and returns the name of the blob the write added.
async fn set_tracked(env: &Env, v: &mut Vault, path: &str, value: &[u8]) -> String {
    let before = env.objects(layout::BLOB_DIR);
    v.set(path, value).await.unwrap();
    let added: Vec<String> =
        env.objects(layout::BLOB_DIR).into_iter().filter(|n| !before.contains(n)).collect();
    assert_eq!(added.len(), 1, "one set, one blob");
    added[0].clone()
}

/// A vault with three secrets: commits 1 (genesis) to 4, audit records 1 to 4.
async fn setup() -> (Env, Vec<Secret>) {
    let env = Env::new();
    let mut v = env.init().await;
    let mut secrets = Vec::new();
    for (path, value) in [
        ("db/password", b"hunter2".as_slice()),
        ("api/token", b"tok-123".as_slice()),
        ("mail/smtp", b"smtp-secret".as_slice()),
    ] {
        let blob = set_tracked(&env, &mut v, path, value).await;
        secrets.push(Secret { path, value, blob });
    }
    drop(v);
    assert_eq!(env.objects(layout::LOG_DIR).len(), 4);
    (env, secrets)
}

/// Reads every secret and checks its value.
async fn read_all(v: &mut Vault, secrets: &[Secret]) {
    for s in secrets {
        assert_eq!(v.get(s.path, None).await.unwrap().as_slice(), s.value, "{}", s.path);
    }
}

#[tokio::test]
async fn fail_flipped_key_file_byte_is_auth_failed() {
    let (env, secrets) = setup().await;
    let file = env.obj(&layout::keyfile(1));
    let original = std::fs::read(&file).unwrap();
    assert_eq!(original.len(), 215, "8 + 16 + 8 + 1 header, one 150-byte slot, 32-byte MAC");
    // Magic, vault id, generation, slot count, slot kind, KDF id, m_kib (up and down), t, p, salt,
    // wrapped root, MAC.
    for i in [0, 12, 31, 32, 33, 34, 37, 41, 46, 60, 120, 182, 200, 214] {
        flip(&file, i);
        let e = err(env.unlock().await);
        if (8..24).contains(&i) {
            // Another vault id than the one this machine pinned at the location: refused as
            // another vault before any password is tried.
            assert!(matches!(e, Error::VaultChanged { .. }), "byte {i}: {e:?}");
        } else {
            assert!(matches!(e, Error::AuthFailed), "byte {i}: {e:?}");
            assert_eq!(e.to_string(), "authentication failed", "deliberately one message");
        }
        std::fs::write(&file, &original).unwrap();
    }
    let mut v = env.unlock().await.unwrap();
    read_all(&mut v, &secrets).await;
}

#[tokio::test]
async fn fail_flipped_commit_byte_names_the_commit() {
    let (env, secrets) = setup().await;
    for seq in [1, 2, 4] {
        let name = layout::commit(seq);
        let file = env.obj(&name);
        let original = std::fs::read(&file).unwrap();
        // Log magic, log role, sequence number, previous link, envelope magic, nonce, ciphertext, tag.
        for i in [0, 5, 13, 14, 45, 46, 60, 100, usize::MAX] {
            flip(&file, i);
            let e = err(env.unlock().await);
            assert_integrity(&e, ObjectKind::Commit, Some(&name));
            std::fs::write(&file, &original).unwrap();
        }
    }
    let mut v = env.unlock().await.unwrap();
    read_all(&mut v, &secrets).await;
}

#[tokio::test]
async fn fail_flipped_audit_record_byte_is_found_by_verify() {
    let (env, _) = setup().await;
    let v = env.unlock().await.unwrap();
    v.verify().await.unwrap();
    for seq in [1, 2, 3] {
        let name = layout::audit(seq);
        let file = env.obj(&name);
        let original = std::fs::read(&file).unwrap();
        for i in [0, 5, 13, 14, 46, 80, usize::MAX] {
            flip(&file, i);
            let e = err(v.verify().await);
            assert_integrity(&e, ObjectKind::AuditRecord, Some(&name));
            let e = err(v.audit_trail().await);
            assert_integrity(&e, ObjectKind::AuditRecord, Some(&name));
            std::fs::write(&file, &original).unwrap();
        }
    }
    v.verify().await.unwrap();
}

#[tokio::test]
async fn fail_flipped_newest_audit_record() {
    let (env, _) = setup().await;
    let name = layout::audit(4);
    flip(&env.obj(&name), 60);
    // This machine has seen record 4: unlock refuses the changed one.
    let e = err(env.unlock().await);
    match &e {
        Error::Fork { kind: ObjectKind::AuditRecord, seq: 4 } => {
            assert!(e.to_string().contains("audit record 4"), "{e}");
        }
        _ => {
            assert_integrity(&e, ObjectKind::AuditRecord, Some(&name));
        }
    }
    // Record 4 is anchored in the commit log: a machine that never saw the vault refuses it too.
    let fresh = env.path("fresh-trust");
    let e = err(env.unlock_with(&fresh, common::PASSWORD).await);
    assert_integrity(&e, ObjectKind::AuditRecord, Some(&name));
}

/// A machine with trust state `trust` reads once, then dies (a power failure) before the read's
/// entry is made durable and pinned; returns that machine's lane and its newest entry.
async fn read_then_lose_power(env: &Env, trust: &std::path::Path) -> (layout::AuditLane, u64) {
    let v = env.unlock_with(trust, common::PASSWORD).await.unwrap();
    v.get("db/password", None).await.unwrap();
    let (id, location) = (v.vault_id(), v.store().location().to_string());
    std::mem::forget(v);
    let own = tresor::trust::TrustStore::new(trust).load(&id, &location).unwrap().own_lane().unwrap();
    let newest = env
        .objects(layout::AUDIT_DIR)
        .iter()
        .filter_map(|n| layout::parse_audit(n))
        .filter(|(lane, _)| *lane == own)
        .map(|(_, seq)| seq)
        .max()
        .unwrap();
    (own, newest)
}

#[tokio::test]
async fn unpinned_unreadable_audit_records_are_removed_and_reported() {
    // Reads append records without fsync; a power failure can leave them torn. Past the last pin
    // such a record is removed at the next unlock, and the unlock record says so.
    // Each machine appends to its own lane of the trail, and repairs only its own.
    let (env, _) = setup().await;
    let other = env.path("other-trust");
    let (lane, newest) = read_then_lose_power(&env, &other).await;
    std::fs::write(env.obj(&lane.entry(newest)), b"").unwrap();
    // Another machine does not touch that lane: its `audit verify` passes (the entry is past every
    // anchor and pin) and counts the torn entry.
    let third = env.unlock_with(&env.path("third-trust"), common::PASSWORD).await.unwrap();
    assert_eq!(third.verify().await.unwrap().torn_audit_entries, 1);
    drop(third);
    // The lane's own machine removes it at its next unlock, and says so.
    let v = env.unlock_with(&other, common::PASSWORD).await.unwrap();
    v.verify().await.unwrap();
    let trail = v.audit_trail().await.unwrap();
    let unlock =
        trail.iter().rev().find(|tresor::model::TrailRecord { record: r, .. }| r.op == "unlock").unwrap();
    let detail = unlock.record.detail.clone().unwrap_or_default();
    assert!(detail.contains("removed 1 unreadable unpinned audit records"), "{detail}");
}

#[tokio::test]
async fn fail_a_store_claiming_more_torn_audit_records_than_a_power_failure_leaves_is_refused() {
    // A power failure tears fewer than 2 × 64 unpinned entries per process; a store that puts an
    // unreadable entry past the pin and claims 1,024 or more after it is not that: the unlock is
    // refused and nothing is deleted on its word.
    let (env, _) = setup().await;
    let other = env.path("other-trust");
    let (lane, newest) = read_then_lose_power(&env, &other).await;
    let planted: Vec<String> = (newest + 1..=newest + 1025).map(|seq| lane.entry(seq)).collect();
    for name in &planted {
        std::fs::write(env.obj(name), b"not an audit entry").unwrap();
    }
    let e = err(env.unlock_with(&other, common::PASSWORD).await);
    let detail = assert_integrity(&e, ObjectKind::AuditRecord, Some(&planted[0]));
    assert!(detail.contains("the store claims 1024 more records after it"), "{detail}");
    assert!(planted.iter().all(|name| env.obj(name).exists()), "nothing was deleted");
}

#[tokio::test]
async fn a_run_of_reads_without_a_commit_pins_its_lane_and_leaves_at_most_twice_pin_every_unpinned() {
    // Reads append entries without fsync; every 64 entries the lane is made durable and its head
    // pinned in the trust state, in the background after the reads it follows are answered.
    let (env, _) = setup().await;
    let trust = env.path("reader-trust");
    let v = env.unlock_with(&trust, common::PASSWORD).await.unwrap();
    let (id, location) = (v.vault_id(), v.store().location().to_string());
    let states = tresor::trust::TrustStore::new(&trust);
    let own = states.load(&id, &location).unwrap().own_lane().unwrap();
    let pinned = || states.load(&id, &location).unwrap().audit_pin(own).0;
    let head = || {
        env.objects(layout::AUDIT_DIR)
            .iter()
            .filter_map(|n| layout::parse_audit(n))
            .filter(|(lane, _)| *lane == own)
            .map(|(_, seq)| seq)
            .max()
            .unwrap_or(0)
    };
    let before = pinned();
    for _ in 0..200 {
        v.get("db/password", None).await.unwrap();
        assert!(head() - pinned() < 2 * 64 + 1, "head {} pinned {}", head(), pinned());
    }
    let mut after = pinned();
    for _ in 0..500 {
        if after + 64 > head() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        after = pinned();
    }
    assert!(after >= before + 128, "pinned {before} then {after}, head {}", head());
    assert!(after + 64 > head(), "pinned {after}, head {}", head());
}

#[tokio::test]
async fn fail_flipped_epoch_key_byte_on_get_and_set() {
    let (env, secrets) = setup().await;
    let name = layout::epoch_key(1);
    let file = env.obj(&name);
    let original = std::fs::read(&file).unwrap();
    for i in [0, 10, 40, usize::MAX] {
        flip(&file, i);
        // A fresh handle: an open one caches the unwrapped key.
        let v = env.unlock().await.unwrap();
        let e = err(v.get(secrets[0].path, None).await);
        assert_integrity(&e, ObjectKind::EpochKey, Some(&name));
        let e = err(v.set("new/secret", b"x").await);
        assert_integrity(&e, ObjectKind::EpochKey, Some(&name));
        std::fs::write(&file, &original).unwrap();
    }
    let mut v = env.unlock().await.unwrap();
    read_all(&mut v, &secrets).await;
    assert!(matches!(v.get("new/secret", None).await, Err(Error::NotFound { .. })));
}

#[tokio::test]
async fn fail_flipped_value_blob_byte_on_get() {
    let (env, secrets) = setup().await;
    for target in &secrets {
        let file = env.obj(&target.blob);
        let original = std::fs::read(&file).unwrap();
        for i in [0, 5, 6, 29, 30, 100, usize::MAX] {
            flip(&file, i);
            // A fresh handle: an open one serves the ciphertexts it already authenticated from
            // memory (see the next test).
            let v = env.unlock().await.unwrap();
            for s in &secrets {
                let got = v.get(s.path, None).await;
                if s.blob == target.blob {
                    let e = err(got);
                    let detail = assert_integrity(&e, ObjectKind::ValueBlob, Some(&target.blob));
                    assert!(detail.contains("does not authenticate"), "{e}");
                } else {
                    assert_eq!(got.unwrap().as_slice(), s.value);
                }
            }
            std::fs::write(&file, &original).unwrap();
        }
    }
    let mut v = env.unlock().await.unwrap();
    read_all(&mut v, &secrets).await;
    v.verify().await.unwrap();
}

/// An open handle keeps the ciphertexts it authenticated: a value blob tampered with after it
/// was read still reads as it was written (nothing forged is ever returned), and `audit verify`,
/// which reads the store itself, reports the damage.
#[tokio::test]
async fn fail_value_blob_tampered_after_a_read_is_served_authentic_and_verify_reports_it() {
    let (env, secrets) = setup().await;
    let mut v = env.unlock().await.unwrap();
    read_all(&mut v, &secrets).await;
    let target = &secrets[0];
    flip(&env.obj(&target.blob), 30);
    assert_eq!(v.get(target.path, None).await.unwrap().as_slice(), target.value);
    let report = v.verify().await.unwrap();
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    assert_eq!(report.damaged[0].path, target.path, "{report:?}");
    let fresh = env.unlock().await.unwrap();
    let e = err(fresh.get(target.path, None).await);
    assert_integrity(&e, ObjectKind::ValueBlob, Some(&target.blob));
}

#[tokio::test]
async fn fail_swapped_value_blobs() {
    let (env, secrets) = setup().await;
    let (a, b) = (env.obj(&secrets[0].blob), env.obj(&secrets[1].blob));
    let (bytes_a, bytes_b) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    std::fs::write(&a, &bytes_b).unwrap();
    std::fs::write(&b, &bytes_a).unwrap();
    let v = env.unlock().await.unwrap();
    for s in &secrets[..2] {
        let e = err(v.get(s.path, None).await);
        let detail = assert_integrity(&e, ObjectKind::ValueBlob, Some(&s.blob));
        assert!(detail.contains("moved from another name"), "{e}");
    }
    assert_eq!(v.get(secrets[2].path, None).await.unwrap().as_slice(), secrets[2].value);
}

#[tokio::test]
async fn fail_value_blob_moved_to_another_blobs_name() {
    let (env, secrets) = setup().await;
    std::fs::rename(env.obj(&secrets[0].blob), env.obj(&secrets[1].blob)).unwrap();
    let v = env.unlock().await.unwrap();
    let e = err(v.get(secrets[0].path, None).await);
    let detail = assert_integrity(&e, ObjectKind::ValueBlob, Some(&secrets[0].blob));
    assert!(detail.contains("missing"), "{e}");
    let e = err(v.get(secrets[1].path, None).await);
    let detail = assert_integrity(&e, ObjectKind::ValueBlob, Some(&secrets[1].blob));
    assert!(detail.contains("does not authenticate"), "{e}");
}

#[tokio::test]
async fn fail_value_blob_from_another_vault() {
    let (env, secrets) = setup().await;
    let (other, other_secrets) = setup().await;
    // Same path, same value, another vault's key and id: the store swaps the blobs.
    std::fs::copy(other.obj(&other_secrets[0].blob), env.obj(&secrets[0].blob)).unwrap();
    let v = env.unlock().await.unwrap();
    let e = err(v.get(secrets[0].path, None).await);
    assert_integrity(&e, ObjectKind::ValueBlob, Some(&secrets[0].blob));
    // And another vault's commit as our next one.
    let o = other.unlock().await.unwrap();
    o.set("extra", b"1").await.unwrap();
    drop(o);
    drop(v);
    std::fs::copy(other.obj(&layout::commit(5)), env.obj(&layout::commit(5))).unwrap();
    let e = err(env.unlock().await);
    assert_integrity(&e, ObjectKind::Commit, Some(&layout::commit(5)));
}

#[tokio::test]
async fn fail_commit_copied_over_the_previous_one() {
    let (env, _) = setup().await;
    std::fs::copy(env.obj(&layout::commit(3)), env.obj(&layout::commit(2))).unwrap();
    let e = err(env.unlock().await);
    let detail = assert_integrity(&e, ObjectKind::Commit, Some(&layout::commit(2)));
    assert!(detail.contains("holds entry 3"), "{e}");
}

#[tokio::test]
async fn fail_injected_commits() {
    let (env, secrets) = setup().await;
    let next = layout::commit(5);
    // A copy of the newest commit as the next one.
    std::fs::copy(env.obj(&layout::commit(4)), env.obj(&next)).unwrap();
    let e = err(env.unlock().await);
    let detail = assert_integrity(&e, ObjectKind::Commit, Some(&next));
    assert!(detail.contains("holds entry 4"), "{e}");
    // Garbage, and garbage with a valid log header.
    std::fs::write(env.obj(&next), b"not a commit").unwrap();
    assert_integrity(&err(env.unlock().await), ObjectKind::Commit, Some(&next));
    let mut framed = std::fs::read(env.obj(&layout::commit(4))).unwrap();
    framed[13] = 5; // sequence number 5 ...
    framed[14..46].copy_from_slice(&[7; 32]); // ... after a made-up link
    std::fs::write(env.obj(&next), &framed).unwrap();
    assert_integrity(&err(env.unlock().await), ObjectKind::Commit, Some(&next));
    // A commit after a gap.
    std::fs::remove_file(env.obj(&next)).unwrap();
    std::fs::copy(env.obj(&layout::commit(4)), env.obj(&layout::commit(7))).unwrap();
    let e = err(env.unlock().await);
    let detail = assert_integrity(&e, ObjectKind::Commit, Some(&next));
    assert!(detail.contains("missing"), "{e}");
    std::fs::remove_file(env.obj(&layout::commit(7))).unwrap();
    // Objects under names that are not ours are never shown.
    std::fs::write(env.obj("log/5"), b"x").unwrap();
    std::fs::write(env.obj("log/0000000000000000000x"), b"x").unwrap();
    std::fs::create_dir_all(env.obj("blob/0000000001")).unwrap();
    std::fs::write(env.obj("blob/0000000001/00112233445566778899aabbccddeeff"), b"x").unwrap();
    let mut v = env.unlock().await.unwrap();
    let listed: Vec<String> = v.list("").await.unwrap().into_iter().map(|e| e.path).collect();
    assert_eq!(listed, ["api/token", "db/password", "mail/smtp"]);
    read_all(&mut v, &secrets).await;
    v.verify().await.unwrap();
}

#[tokio::test]
async fn fail_swapped_commits_and_audit_records() {
    let (env, _) = setup().await;
    let swap = |a: &str, b: &str| {
        let (pa, pb) = (env.obj(a), env.obj(b));
        let (ba, bb) = (std::fs::read(&pa).unwrap(), std::fs::read(&pb).unwrap());
        std::fs::write(&pa, bb).unwrap();
        std::fs::write(&pb, ba).unwrap();
    };
    let v = env.unlock().await.unwrap();
    swap(&layout::audit(2), &layout::audit(3));
    assert_integrity(&err(v.verify().await), ObjectKind::AuditRecord, Some(&layout::audit(2)));
    swap(&layout::audit(2), &layout::audit(3));
    v.verify().await.unwrap();
    drop(v);
    swap(&layout::commit(2), &layout::commit(3));
    assert_integrity(&err(env.unlock().await), ObjectKind::Commit, Some(&layout::commit(2)));
    // A commit where an audit record belongs, and the other way round.
    swap(&layout::commit(2), &layout::commit(3));
    std::fs::copy(env.obj(&layout::commit(2)), env.obj(&layout::audit(2))).unwrap();
    let v = env.unlock().await.unwrap();
    assert_integrity(&err(v.verify().await), ObjectKind::AuditRecord, Some(&layout::audit(2)));
    drop(v);
    std::fs::copy(env.obj(&layout::audit(3)), env.obj(&layout::commit(3))).unwrap();
    assert_integrity(&err(env.unlock().await), ObjectKind::Commit, Some(&layout::commit(3)));
}

#[tokio::test]
async fn fail_deleted_middle_commit_is_missing() {
    let (env, _) = setup().await;
    let open = env.unlock().await.unwrap();
    std::fs::remove_file(env.obj(&layout::commit(2))).unwrap();
    let e = err(env.unlock().await);
    let detail = assert_integrity(&e, ObjectKind::Commit, Some(&layout::commit(2)));
    assert!(detail.contains("missing"), "{e}");
    // An open handle's verify finds it too.
    let e = err(open.verify().await);
    let detail = assert_integrity(&e, ObjectKind::Commit, Some(&layout::commit(2)));
    assert!(detail.contains("missing"), "{e}");
}

#[tokio::test]
async fn fail_deleted_middle_audit_record_is_missing() {
    let (env, _) = setup().await;
    let v = env.unlock().await.unwrap();
    std::fs::remove_file(env.obj(&layout::audit(2))).unwrap();
    let e = err(v.verify().await);
    let detail = assert_integrity(&e, ObjectKind::AuditRecord, Some(&layout::audit(2)));
    assert!(detail.contains("missing"), "{e}");
}

#[tokio::test]
async fn fail_deleted_value_blob_is_missing() {
    let (env, secrets) = setup().await;
    std::fs::remove_file(env.obj(&secrets[1].blob)).unwrap();
    let v = env.unlock().await.unwrap();
    let e = err(v.get(secrets[1].path, None).await);
    let detail = assert_integrity(&e, ObjectKind::ValueBlob, Some(&secrets[1].blob));
    assert!(detail.contains("missing"), "{e}");
    assert_eq!(v.get(secrets[0].path, None).await.unwrap().as_slice(), secrets[0].value);
}

#[tokio::test]
async fn fail_deleted_epoch_key_is_missing() {
    let (env, secrets) = setup().await;
    std::fs::remove_file(env.obj(&layout::epoch_key(1))).unwrap();
    let v = env.unlock().await.unwrap();
    let e = err(v.get(secrets[0].path, None).await);
    let detail = assert_integrity(&e, ObjectKind::EpochKey, Some(&layout::epoch_key(1)));
    assert!(detail.contains("missing"), "{e}");
}

// ---- audit lanes: each machine appends to its own lane; the store cannot mix, drop or cut them --

/// The entries of the named lanes, sorted (lane, then sequence number).
fn lane_entries(env: &Env) -> Vec<(layout::AuditLane, u64, String)> {
    let mut out: Vec<_> = env
        .objects(layout::AUDIT_DIR)
        .into_iter()
        .filter_map(|n| match layout::parse_audit(&n) {
            Some((lane @ layout::AuditLane::Named(_), seq)) => Some((lane, seq, n)),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

/// The vault of [`setup`], and a second machine (its own trust state) that wrote and read once.
async fn two_machines() -> (Env, std::path::PathBuf) {
    let (env, _) = setup().await;
    let other = env.path("other-trust");
    let v = env.unlock_with(&other, common::PASSWORD).await.unwrap();
    v.set("other/written", b"by the second machine").await.unwrap();
    v.get("db/password", None).await.unwrap();
    drop(v);
    (env, other)
}

#[tokio::test]
async fn lanes_keep_machines_apart_and_verify_as_one_trail() {
    let (env, _) = setup().await;
    let main_before = env.objects(layout::AUDIT_DIR).len();
    let (env, _) = {
        let other = env.path("other-trust");
        let v = env.unlock_with(&other, common::PASSWORD).await.unwrap();
        v.set("other/written", b"by the second machine").await.unwrap();
        drop(v);
        (env, other)
    };
    // The second machine wrote nothing into the main lane, everything into one lane of its own.
    let lanes = lane_entries(&env);
    let main_after: Vec<_> = env
        .objects(layout::AUDIT_DIR)
        .into_iter()
        .filter(|n| matches!(layout::parse_audit(n), Some((layout::AuditLane::Main, _))))
        .collect();
    assert_eq!(main_after.len(), main_before);
    assert!(lanes.len() >= 2, "unlock, set and lock records: {lanes:?}");
    assert!(lanes.iter().all(|(lane, _, _)| *lane == lanes[0].0), "one lane: {lanes:?}");
    // The creator proves both lanes, and the anchor the second machine's commit put in the log.
    let v = env.unlock().await.unwrap();
    let report = v.verify().await.unwrap();
    assert_eq!(report.audit_lanes, 2, "{report:?}");
    assert_eq!(report.anchors, 5, "four commits anchor the main lane, one the other lane: {report:?}");
    let trail = v.audit_trail().await.unwrap();
    let set = trail.iter().find(|t| t.record.path.as_deref() == Some("other/written")).unwrap();
    assert_eq!(set.lane, lanes[0].0.label());
    assert!(trail.windows(2).all(|w| w[0].record.time_ms <= w[1].record.time_ms), "merged by time");
}

#[tokio::test]
async fn fail_lane_entry_copied_into_another_lane() {
    let (env, _) = two_machines().await;
    let (_, _, first) = lane_entries(&env)[0].clone();
    // The second machine's first entry planted as the first entry of a lane nobody wrote.
    let planted = layout::AuditLane::Named([0xab; 8]).entry(1);
    std::fs::create_dir_all(env.obj(&planted).parent().unwrap()).unwrap();
    std::fs::copy(env.obj(&first), env.obj(&planted)).unwrap();
    let v = env.unlock().await.unwrap();
    assert_integrity(&err(v.verify().await), ObjectKind::AuditRecord, Some(&planted));
    std::fs::remove_file(env.obj(&planted)).unwrap();
    // Main-lane entry 2 copied after the second machine's last entry: past every anchor and pin,
    // it cannot be told from a torn tail, so it is reported as one, and never read as a record.
    let (lane, seq, _) = lane_entries(&env).last().unwrap().clone();
    let moved = lane.entry(seq + 1);
    std::fs::copy(env.obj(&layout::audit(2)), env.obj(&moved)).unwrap();
    let report = v.verify().await.unwrap();
    assert_eq!(report.torn_audit_entries, 1);
    std::fs::remove_file(env.obj(&moved)).unwrap();
    // The same entry over the lane's first entry (always written durably): an integrity error.
    let first_entry = lane.entry(1);
    std::fs::copy(env.obj(&layout::audit(2)), env.obj(&first_entry)).unwrap();
    assert_integrity(&err(v.verify().await), ObjectKind::AuditRecord, Some(&first_entry));
}

#[tokio::test]
async fn fail_anchored_lane_deleted_by_the_store() {
    let (env, _) = two_machines().await;
    let entries = lane_entries(&env);
    for (_, _, name) in &entries {
        std::fs::remove_file(env.obj(name)).unwrap();
    }
    // The commit log anchors the lane: the creator, which never pinned it, still finds it gone.
    let v = env.unlock().await.unwrap();
    let e = err(v.verify().await);
    let detail = assert_integrity(&e, ObjectKind::AuditRecord, None);
    assert!(detail.contains("anchored in the commit log but missing"), "{e}");
}

#[tokio::test]
async fn fail_lane_cut_below_what_machines_pinned() {
    let (env, other) = two_machines().await;
    // The creator verifies once, pinning the second machine's lane head too.
    env.unlock().await.unwrap().verify().await.unwrap();
    // The store keeps only the lane's first entry (the set's anchored entry is gone too).
    let entries = lane_entries(&env);
    let (lane, newest, _) = entries.last().unwrap().clone();
    for (_, _, name) in &entries[1..] {
        std::fs::remove_file(env.obj(name)).unwrap();
    }
    // The lane's own machine refuses to unlock on it, the creator's verify reports it.
    match err(env.unlock_with(&other, common::PASSWORD).await) {
        Error::Rollback { kind: ObjectKind::AuditRecord, seen, served } => {
            assert_eq!((seen, served), (newest, 1), "{lane:?}")
        }
        e => panic!("expected a rollback of the audit trail, got {e}"),
    }
    let v = env.unlock().await.unwrap();
    match err(v.verify().await) {
        Error::Rollback { kind: ObjectKind::AuditRecord, seen, served } => assert!(seen >= 2 && served == 1),
        e => panic!("expected a rollback of the audit trail, got {e}"),
    }
}

/// Review finding: `audit verify` pinned every lane's newest entry, also entries another machine
/// had not made durable yet; losing them to a power failure then read as a rollback. It pins
/// only what the commit log anchors.
#[tokio::test]
async fn regression_verify_pins_only_anchored_lane_entries() {
    let (env, other) = two_machines().await;
    env.unlock().await.unwrap().verify().await.unwrap();
    // The other machine loses its entries after the anchor (never synced), then reads again.
    let (lane, _, _) = lane_entries(&env)[0].clone();
    let v = env.unlock().await.unwrap();
    let anchored = v.verify().await.unwrap();
    drop(v);
    let after_anchor: Vec<_> =
        lane_entries(&env).into_iter().filter(|(l, _, _)| *l == lane).skip(2).collect();
    assert!(!after_anchor.is_empty(), "the other machine read and locked after its set");
    for (_, _, name) in &after_anchor {
        std::fs::remove_file(env.obj(name)).unwrap();
    }
    let v = env.unlock().await.unwrap();
    let report = v.verify().await.unwrap();
    assert_eq!(report.audit_lanes, anchored.audit_lanes);
    drop(v);
    // The lane's own machine pinned them: it, and only it, sees a rollback.
    assert!(matches!(
        env.unlock_with(&other, common::PASSWORD).await,
        Err(Error::Rollback { kind: ObjectKind::AuditRecord, .. })
    ));
}
