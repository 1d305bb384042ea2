//! Rollbacks and forks (T01, T02 on one store, T25): a store that serves an older copy of the vault,
//! drops its newest objects, or serves a history other than the one this machine has seen must be
//! refused with `Error::Rollback` / `Error::Fork`, and nothing may be written on top of it.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, PASSWORD, assert_rollback, copy_dir, err, files, pw, restore_dir, snapshot_bytes};
use tresor::layout;
use tresor::{Error, KdfParams, ObjectKind};

#[tokio::test]
async fn fail_restored_old_copy_is_a_rollback_and_nothing_is_written() {
    let env = Env::new();
    let v = env.init().await;
    v.set("a", b"1").await.unwrap();
    v.set("b", b"2").await.unwrap();
    drop(v);
    let snap = env.path("snapshot");
    copy_dir(&env.loc, &snap);
    let v = env.unlock().await.unwrap();
    for i in 0..3 {
        v.set(&format!("c{i}"), b"3").await.unwrap();
    }
    drop(v);
    restore_dir(&snap, &env.loc);
    let before = snapshot_bytes(&env.loc);
    let mut detected = 0;
    for _ in 0..2 {
        let e = err(env.unlock().await);
        assert_eq!(assert_rollback(&e, ObjectKind::Commit), (6, 3), "{e}");
        detected += 1;
    }
    assert_eq!(snapshot_bytes(&env.loc), before, "no write on top of the rolled-back state");
    println!("T01: commit-log rollbacks detected {detected}/2, objects written on rolled-back state 0");
    // The documented limit: a machine with no trust state cannot tell.
    let fresh = env.path("fresh-trust");
    let v = env.unlock_with(&fresh, PASSWORD).await.unwrap();
    assert_eq!(v.get("b", None).await.unwrap().as_slice(), b"2");
    assert!(matches!(v.get("c0", None).await, Err(Error::NotFound { .. })));
}

#[tokio::test]
async fn fail_deleted_newest_commit_is_a_rollback() {
    let env = Env::new();
    let v = env.init().await;
    v.set("a", b"1").await.unwrap();
    v.set("a", b"2").await.unwrap();
    drop(v);
    std::fs::remove_file(env.obj(&layout::commit(3))).unwrap();
    let before = files(&env.loc);
    let e = err(env.unlock().await);
    assert_eq!(assert_rollback(&e, ObjectKind::Commit), (3, 2));
    assert_eq!(files(&env.loc), before);
}

#[tokio::test]
async fn fail_deleted_newest_commit_under_an_open_handle_is_found_by_verify() {
    let env = Env::new();
    let v = env.init().await;
    v.set("a", b"1").await.unwrap();
    std::fs::remove_file(env.obj(&layout::commit(2))).unwrap();
    let e = err(v.verify().await);
    assert_eq!(assert_rollback(&e, ObjectKind::Commit), (2, 1));
}

#[tokio::test]
async fn fail_forked_history_is_a_fork() {
    let env = Env::new();
    let v = env.init().await;
    v.set("common", b"0").await.unwrap();
    drop(v);
    let snap = env.path("snapshot");
    copy_dir(&env.loc, &snap);
    // This machine writes A as commit 3.
    let v = env.unlock().await.unwrap();
    v.set("a", b"A").await.unwrap();
    drop(v);
    // The store forgets it and lets another machine write B as commit 3.
    restore_dir(&snap, &env.loc);
    let other = env.path("other-trust");
    let w = env.unlock_with(&other, PASSWORD).await.unwrap();
    w.set("b", b"B").await.unwrap();
    w.set("b2", b"B").await.unwrap();
    drop(w);
    let before = snapshot_bytes(&env.loc);
    let e = err(env.unlock().await);
    assert!(matches!(e, Error::Fork { kind: ObjectKind::Commit, seq: 3 }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("fork") && text.contains("commit 3"), "{text}");
    assert_eq!(snapshot_bytes(&env.loc), before, "no write on top of the forked state");
    // A third machine writes C on the common prefix: the other machine (which saw B at 3 and 4)
    // refuses it, as a rollback while it is shorter and as a fork once it is as long.
    restore_dir(&snap, &env.loc);
    let v = env.unlock_with(&env.path("third-trust"), PASSWORD).await.unwrap();
    v.set("c", b"C").await.unwrap();
    let e = err(env.unlock_with(&other, PASSWORD).await);
    assert_eq!(assert_rollback(&e, ObjectKind::Commit), (4, 3));
    v.set("c2", b"C").await.unwrap();
    drop(v);
    let e = err(env.unlock_with(&other, PASSWORD).await);
    assert!(matches!(e, Error::Fork { kind: ObjectKind::Commit, seq: 4 }), "{e:?}");
}

#[tokio::test]
async fn fail_replaced_newest_commit_is_a_fork() {
    let env = Env::new();
    let v = env.init().await;
    v.set("a", b"1").await.unwrap();
    drop(v);
    let snap = env.path("snapshot");
    copy_dir(&env.loc, &snap);
    let v = env.unlock().await.unwrap();
    v.set("b", b"mine").await.unwrap();
    drop(v);
    let ours = std::fs::read(env.obj(&layout::commit(3))).unwrap();
    // Another writer's commit 3, validly sealed, copied over ours (our audit trail kept).
    let elsewhere = env.path("elsewhere");
    copy_dir(&snap, &elsewhere);
    let w = tresor::Vault::unlock(
        common::store(&elsewhere, false),
        &pw(PASSWORD),
        common::opts(&env.path("other-trust")),
    )
    .await
    .unwrap();
    w.set("b", b"theirs").await.unwrap();
    drop(w);
    let theirs = std::fs::read(elsewhere.join(layout::commit(3))).unwrap();
    assert_ne!(ours, theirs);
    std::fs::write(env.obj(&layout::commit(3)), &theirs).unwrap();
    let e = err(env.unlock().await);
    assert!(matches!(e, Error::Fork { kind: ObjectKind::Commit, seq: 3 }), "{e:?}");
}

/// A store that dropped an open handle's newest commit and took another writer's under its
/// number served each its own history: the first handle went on committing onto the head it had
/// applied, acknowledged writes no other reader could ever see (found by review, with servers on
/// one bucket). Its next write must see that the head is not the one it applied.
#[tokio::test]
async fn regression_a_handle_kept_committing_onto_its_own_head_after_the_store_replaced_it() {
    let env = Env::new();
    let a = env.init().await;
    a.set("a", b"1").await.unwrap();
    let b = env.unlock_with(&env.path("other-trust"), PASSWORD).await.unwrap();
    a.set("fork/a", b"from a").await.unwrap();
    let head = env.objects(layout::LOG_DIR).last().cloned().unwrap();
    std::fs::remove_file(env.obj(&head)).unwrap();
    // B never saw A's commit: it writes its own under that number.
    b.set("fork/b", b"from b").await.unwrap();
    assert_eq!(env.objects(layout::LOG_DIR).last(), Some(&head));
    let commits = env.objects(layout::LOG_DIR).len();
    let e = err(a.set("fork/a2", b"again").await);
    assert!(matches!(e, Error::Fork { kind: ObjectKind::Commit, .. }), "{e:?}");
    assert_eq!(env.objects(layout::LOG_DIR).len(), commits, "nothing was committed onto the fork");
    drop(b);
}

#[tokio::test]
async fn fail_restored_old_key_file_after_passwd_is_a_rollback() {
    let env = Env::new();
    let v = env.init().await;
    v.set("a", b"1").await.unwrap();
    let old_name = layout::keyfile(1);
    let old = std::fs::read(env.obj(&old_name)).unwrap();
    v.passwd(&pw("a brand new password"), KdfParams::MINIMUM).await.unwrap();
    drop(v);
    assert_eq!(env.objects(layout::KEYFILE_DIR), [layout::keyfile(2)], "the old generation is removed");
    let new = std::fs::read(env.obj(&layout::keyfile(2))).unwrap();
    // The store brings back the old key file (which the old password opens) and drops the new one.
    std::fs::remove_file(env.obj(&layout::keyfile(2))).unwrap();
    std::fs::write(env.obj(&old_name), &old).unwrap();
    let before = files(&env.loc);
    let e = err(env.unlock().await);
    assert_eq!(assert_rollback(&e, ObjectKind::KeyFile), (2, 1), "from the trust state");
    // A machine without trust state learns it from the commit log.
    let e = err(env.unlock_with(&env.path("fresh-trust"), PASSWORD).await);
    assert_eq!(assert_rollback(&e, ObjectKind::KeyFile), (2, 1), "from the commit log");
    assert_eq!(files(&env.loc), before);
    // Both generations present: the newest counts, and only the new password opens it.
    std::fs::write(env.obj(&layout::keyfile(2)), &new).unwrap();
    assert!(matches!(env.unlock().await, Err(Error::AuthFailed)));
    let v = env.unlock_with(&env.trust, "a brand new password").await.unwrap();
    drop(v);
}

#[tokio::test]
async fn fail_truncated_audit_trail_under_an_open_handle() {
    let env = Env::new();
    let v = env.init().await;
    v.set("a", b"1").await.unwrap();
    for _ in 0..3 {
        v.get("a", None).await.unwrap();
    }
    let newest = env.objects(layout::AUDIT_DIR).pop().unwrap();
    std::fs::remove_file(env.obj(&newest)).unwrap();
    let e = err(v.verify().await);
    let (seen, served) = assert_rollback(&e, ObjectKind::AuditRecord);
    assert_eq!(seen, served + 1);
}

#[tokio::test]
async fn fail_truncated_audit_trail_after_lock() {
    let env = Env::new();
    let v = env.init().await;
    v.set("a", b"1").await.unwrap();
    for _ in 0..3 {
        v.get("a", None).await.unwrap();
    }
    v.lock("test").await.unwrap();
    let newest = env.objects(layout::AUDIT_DIR).pop().unwrap();
    std::fs::remove_file(env.obj(&newest)).unwrap();
    let e = err(env.unlock().await);
    let (seen, served) = assert_rollback(&e, ObjectKind::AuditRecord);
    assert_eq!(seen, served + 1);
}

#[tokio::test]
async fn fail_truncated_audit_trail_after_reads_without_lock() {
    // The common CLI shape: unlock, read, exit (no `lock`). The store then drops the newest audit
    // record, the record of the read.
    let env = Env::new();
    let v = env.init().await;
    v.set("a", b"1").await.unwrap();
    drop(v);
    let v = env.unlock().await.unwrap();
    for _ in 0..3 {
        v.get("a", None).await.unwrap();
    }
    drop(v);
    let audit = env.objects(layout::AUDIT_DIR);
    let newest = audit.last().unwrap().clone();
    std::fs::remove_file(env.obj(&newest)).unwrap();
    let detected = match env.unlock().await {
        Err(e) => {
            assert!(matches!(e, Error::Rollback { kind: ObjectKind::AuditRecord, .. }), "{e:?}");
            true
        }
        Ok(v) => match v.verify().await {
            Err(Error::Rollback { kind: ObjectKind::AuditRecord, .. }) => true,
            Err(Error::Integrity { kind: ObjectKind::AuditRecord, .. }) => true,
            Err(e) => panic!("unexpected {e:?}"),
            Ok(_) => false,
        },
    };
    assert!(detected, "the store removed the newest audit record ({newest}) unnoticed");
}
