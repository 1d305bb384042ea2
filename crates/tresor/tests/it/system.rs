//! The system namespace: what a program built on the vault (the server) keeps for itself is
//! stored, versioned, audited and carried like any secret, but no user path names it and no user
//! listing or count shows it.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, pw};
use tresor::path::SecretPath;
use tresor::{Error, Store};

#[tokio::test]
async fn system_entries_live_beside_secrets_unseen_by_users() {
    let env = Env::new();
    let v = env.init().await;
    let token = SecretPath::system("tokens/ab12").unwrap();
    let mounts = SecretPath::system("mounts").unwrap();
    v.set("db/pw", b"user value").await.unwrap();
    assert_eq!(v.set(&token, b"record 1").await.unwrap(), 1);
    assert_eq!(
        v.set_many(tresor::model::AuditOp::Set, &[(&mounts, &b"{}"[..]), (&token, &b"record 2"[..])])
            .await
            .unwrap(),
        vec![1, 2]
    );

    // Users see their secrets only; the system namespace lists on its own.
    let user: Vec<String> = v.list("").await.unwrap().into_iter().map(|e| e.path).collect();
    assert_eq!(user, ["db/pw"]);
    assert_eq!(v.status().await.unwrap().secrets, 1);
    let system: Vec<String> = v.list_system("").await.unwrap().into_iter().map(|e| e.path).collect();
    assert_eq!(system, [mounts.to_string(), token.to_string()]);
    assert_eq!(v.list_system("tokens/").await.unwrap().len(), 1);
    // No text names a system path, and a user prefix never reaches one.
    assert!(matches!(v.get(token.as_str(), None).await, Err(Error::InvalidPath(_))));
    assert!(matches!(v.set(token.as_str(), b"x").await, Err(Error::InvalidPath(_))));
    assert!(v.list("\u{1}").await.unwrap().is_empty());

    // Versioned and deleted like secrets, and read back after a reopen from the log and from a
    // snapshot.
    assert_eq!(v.get(&token, Some(1)).await.unwrap().as_slice(), b"record 1");
    assert_eq!(v.history(&token).await.unwrap().len(), 2);
    v.delete(&mounts).await.unwrap();
    v.snapshot().await.unwrap();
    drop(v);
    let v = env.unlock().await.unwrap();
    assert_eq!(v.get(&token, None).await.unwrap().as_slice(), b"record 2");
    assert!(matches!(v.get(&mounts, None).await, Err(Error::Deleted { .. })));
    assert_eq!(v.list("").await.unwrap().len(), 1);
    v.verify().await.unwrap();

    // An export carries it to a new location.
    let archive = v.export().await.unwrap();
    let target = env.path("restored");
    let restored = tresor::archive::import(
        Store::open(target.to_str().unwrap(), true).unwrap(),
        &archive,
        &pw(common::PASSWORD),
        common::opts(&env.path("trust2")),
    )
    .await
    .unwrap();
    assert_eq!(restored.get(&token, None).await.unwrap().as_slice(), b"record 2");
    assert_eq!(restored.list("").await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_check_and_set_retried_on_a_checked_handle_converges_past_another_servers_write() {
    // A server request (one checked handle) spends a token's use with check-and-set while another
    // server changed the record after the request's check: the write refreshes the shared view,
    // so the retry reads the other server's version and succeeds on it.
    use tresor::vault::SystemEntry;
    let env = Env::new();
    let v = env.init().await;
    let record = SecretPath::system("tokens/ab12").unwrap();
    v.set(&record, b"uses=3").await.unwrap();
    let request = v.checked().await.unwrap();
    let other = env.unlock().await.unwrap();
    other.set(&record, b"uses=2").await.unwrap();
    // The request still sees version 1: its check came first.
    let SystemEntry::Current(seen, _) = request.system_entry(&record, None).await.unwrap() else {
        panic!("version 1 expected")
    };
    assert_eq!(seen, 1);
    assert!(matches!(request.set_cas(&record, b"uses=2", seen).await, Err(Error::Conflict(_))));
    // The refused write applied the other server's commit: the retry reads it and wins.
    let SystemEntry::Current(seen, value) = request.system_entry(&record, None).await.unwrap() else {
        panic!("version 2 expected")
    };
    assert_eq!((seen, value.as_slice()), (2, &b"uses=2"[..]));
    assert_eq!(request.set_cas(&record, b"uses=1", seen).await.unwrap(), 3);
    let SystemEntry::Current(3, value) = other.system_entry(&record, None).await.unwrap() else {
        panic!("version 3 expected")
    };
    assert_eq!(value.as_slice(), b"uses=1");
}

#[tokio::test]
async fn system_entry_follows_versions_refuses_user_paths_and_writes_no_audit_record() {
    use tresor::vault::SystemEntry;
    let env = Env::new();
    let v = env.init().await;
    let policy = SecretPath::system("policies/p").unwrap();
    assert!(matches!(v.system_entry(&policy, None).await.unwrap(), SystemEntry::Absent));
    v.set(&policy, b"first").await.unwrap();
    let audited = v.audit_trail().await.unwrap().len();
    match v.system_entry(&policy, None).await.unwrap() {
        SystemEntry::Current(1, value) => assert_eq!(value.as_slice(), b"first"),
        _ => panic!("version 1 expected"),
    }
    assert!(matches!(v.system_entry(&policy, Some(1)).await.unwrap(), SystemEntry::Unchanged(1)));
    // A second handle on the store (another server) changes it: the first sees it at once.
    let other = env.unlock().await.unwrap();
    other.set(&policy, b"second").await.unwrap();
    match v.system_entry(&policy, Some(1)).await.unwrap() {
        SystemEntry::Current(2, value) => assert_eq!(value.as_slice(), b"second"),
        _ => panic!("version 2 expected"),
    }
    other.delete(&policy).await.unwrap();
    assert!(matches!(v.system_entry(&policy, Some(2)).await.unwrap(), SystemEntry::Absent));
    // Bookkeeping reads leave no record of their own (the trail grew by the other handle's two
    // writes only).
    let records = v.audit_trail().await.unwrap();
    assert!(records[audited..].iter().all(|r| r.record.op != "get"), "a bookkeeping read was audited");
    // A user path is refused.
    let user = SecretPath::parse("db/pw").unwrap();
    assert!(matches!(v.system_entry(&user, None).await, Err(Error::Invalid(_))));
}
