//! Check-and-set writes (`tresor set --cas N`, as Vault's KV v2 has): a writer that read version N
//! fails cleanly when another writer got there first, and nothing of its write becomes visible.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, err};
use tresor::{Error, layout};

#[tokio::test]
async fn cas_succeeds_on_the_expected_version_and_fails_cleanly_otherwise() {
    let env = Env::new();
    let a = env.init().await;
    // 0: only if the secret does not exist.
    assert_eq!(a.set_cas("db/password", b"v1", 0).await.unwrap(), 1);
    assert!(matches!(err(a.set_cas("db/password", b"again", 0).await), Error::Conflict(_)));

    // Another handle (another process, another machine) writes version 2.
    let b = env.unlock().await.unwrap();
    assert_eq!(b.set_cas("db/password", b"v2 from b", 1).await.unwrap(), 2);

    // `a` last saw version 1: its check-and-set on 1 fails after catching up, and says why.
    let commits = env.objects(layout::LOG_DIR).len();
    let e = err(a.set_cas("db/password", b"v2 from a", 1).await);
    assert!(e.to_string().contains("is at version 2, not 1"), "{e}");
    assert_eq!(env.objects(layout::LOG_DIR).len(), commits, "a failed check-and-set commits nothing");
    assert_eq!(a.get("db/password", None).await.unwrap().as_slice(), b"v2 from b");
    assert_eq!(a.set_cas("db/password", b"v3", 2).await.unwrap(), 3);

    // A deleted secret has no live version: 0 creates it anew.
    a.delete("db/password").await.unwrap();
    assert_eq!(a.set_cas("db/password", b"v4", 0).await.unwrap(), 4);
    let history = a.history("db/password").await.unwrap();
    assert_eq!(history.iter().map(|h| h.version).collect::<Vec<_>>(), [1, 2, 3, 4]);
}

/// Vault's KV v2 counts a check-and-set against the newest version, deleted or destroyed: a
/// soft-deleted secret is written over by naming its deleted version, and 0 means "never had
/// one". (The server answered such a write as a conflict, and 0 created it anew.)
#[tokio::test]
async fn regression_cas_on_a_deleted_secret_followed_live_versions_not_vaults_newest_version() {
    let env = Env::new();
    let a = env.init().await;
    assert_eq!(a.set_cas_newest("db/password", b"v1", 0).await.unwrap(), 1);
    assert_eq!(a.set_cas_newest("db/password", b"v2", 1).await.unwrap(), 2);
    a.delete("db/password").await.unwrap();
    let e = err(a.set_cas_newest("db/password", b"again", 0).await);
    assert!(e.to_string().contains("has newest version 2 (deleted or destroyed), not 0"), "{e}");
    assert!(matches!(err(a.set_cas_newest("db/password", b"stale", 1).await), Error::Conflict(_)));
    assert_eq!(a.set_cas_newest("db/password", b"v3", 2).await.unwrap(), 3);
    // The live-version check-and-set of the same state says what it found.
    a.delete("db/password").await.unwrap();
    let e = err(a.set_cas("db/password", b"x", 3).await);
    assert!(e.to_string().contains("has no live version (version 3 is deleted or destroyed), not 3"), "{e}");
    assert_eq!(a.get("db/password", Some(3)).await.unwrap().as_slice(), b"v3");
}
