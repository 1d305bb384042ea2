//! `Vault::apply`, how changes from a sync group's members land: puts and deletes of several
//! paths and the caller's system entries in one commit, all or none, each audited as `sync`
//! under its own actor; a check-and-set that fails writes nothing at all.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common::Env;
use tresor::Error;
use tresor::path::SecretPath;
use tresor::vault::Change;
use zeroize::Zeroizing;

fn put(path: &str, value: &[u8], actor: &str, expect: Option<u64>) -> Change {
    Change {
        path: SecretPath::parse(path).unwrap(),
        value: Some(Zeroizing::new(value.to_vec())),
        actor: actor.into(),
        expect,
    }
}

fn delete(path: &str, actor: &str, expect: Option<u64>) -> Change {
    Change { path: SecretPath::parse(path).unwrap(), value: None, actor: actor.into(), expect }
}

#[tokio::test]
async fn changes_land_in_one_commit_each_under_its_own_actor() {
    let env = Env::new();
    let v = env.init().await;
    v.set("team/old", b"old").await.unwrap();
    let commits = v.status().await.unwrap().commits;
    let state = SecretPath::system("sync/g/state/0").unwrap();
    let versions = v
        .apply(vec![
            put("team/a", b"kept in history", "peer aa", Some(0)),
            put("team/a", b"shown", "peer bb", None),
            delete("team/old", "peer bb", Some(1)),
            delete("team/never", "peer bb", None),
            Change {
                path: state.clone(),
                value: Some(Zeroizing::new(b"state".to_vec())),
                actor: "cli".into(),
                expect: Some(0),
            },
        ])
        .await
        .unwrap();
    assert_eq!(versions, [1, 2, 1, 0, 1]);
    assert_eq!(v.status().await.unwrap().commits, commits + 1, "not one commit");
    assert_eq!(v.get("team/a", None).await.unwrap().as_slice(), b"shown");
    assert_eq!(v.get("team/a", Some(1)).await.unwrap().as_slice(), b"kept in history");
    assert!(matches!(v.get("team/old", None).await, Err(Error::Deleted { .. })));
    assert_eq!(v.get(&state, None).await.unwrap().as_slice(), b"state");

    let trail = v.audit_trail().await.unwrap();
    let synced: Vec<(String, String)> = trail
        .iter()
        .filter(|r| r.record.op == "sync")
        .map(|r| (r.record.actor.clone(), r.record.path.clone().unwrap_or_default()))
        .collect();
    for (actor, path) in
        [("peer aa", "team/a"), ("peer bb", "team/a"), ("peer bb", "team/old"), ("cli", state.as_str())]
    {
        assert!(synced.contains(&(actor.to_string(), path.to_string())), "{actor} {path}: {synced:?}");
    }
    v.verify().await.unwrap();

    // A deletion of nothing, then a put of the same path: each change gets its own answer.
    let versions = v
        .apply(vec![delete("team/fresh", "peer aa", None), put("team/fresh", b"new", "peer aa", Some(0))])
        .await
        .unwrap();
    assert_eq!(versions, [0, 1]);

    // After a reopen, from the log.
    drop(v);
    let v = env.unlock().await.unwrap();
    assert_eq!(v.get("team/a", None).await.unwrap().as_slice(), b"shown");
    assert_eq!(v.history("team/a").await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_failed_check_writes_nothing_of_the_whole_call() {
    let env = Env::new();
    let v = env.init().await;
    v.set("team/a", b"one").await.unwrap();
    v.set("team/a", b"two").await.unwrap();
    let state = SecretPath::system("sync/g/state/0").unwrap();
    let commits = v.status().await.unwrap().commits;
    // The state was saved by someone else (version 1 expected absent), and team/a moved on.
    v.set(&state, b"theirs").await.unwrap();
    for stale in [
        vec![put("team/b", b"x", "peer aa", None), put("team/a", b"three", "peer aa", Some(1))],
        vec![
            put("team/b", b"x", "peer aa", None),
            Change {
                path: state.clone(),
                value: Some(Zeroizing::new(b"mine".to_vec())),
                actor: "cli".into(),
                expect: Some(0),
            },
        ],
        vec![put("team/b", b"x", "peer aa", None), delete("team/a", "peer aa", Some(1))],
    ] {
        let e = v.apply(stale).await.unwrap_err();
        assert!(matches!(e, Error::Conflict(_)), "{e}");
        assert!(
            matches!(v.get("team/b", None).await, Err(Error::NotFound { .. })),
            "a refused call wrote team/b"
        );
    }
    assert_eq!(v.get("team/a", None).await.unwrap().as_slice(), b"two");
    assert_eq!(v.get(&state, None).await.unwrap().as_slice(), b"theirs");
    assert_eq!(v.status().await.unwrap().commits, commits + 1, "a refused call committed");
    // Refused values and paths fail before anything is written.
    let huge = vec![0u8; v.max_value() + 1];
    assert!(matches!(
        v.apply(vec![put("team/c", &huge, "peer aa", None)]).await,
        Err(Error::TooLarge { .. })
    ));
    v.verify().await.unwrap();
}
