//! The store conformance story: what every backend must do the way tresor relies on it
//! (create-if-absent, reads of missing names, listing in name order, idempotent deletes).

use tresor::Store;
use tresor::store::Created;

/// Runs the story on an empty `store`; panics at the first thing the backend does otherwise.
pub async fn conformance(store: Store) {
    store.probe().await.unwrap();
    assert_eq!(store.create("a/1", b"x".to_vec()).await.unwrap(), Created::Yes);
    assert_eq!(store.create("a/1", b"y".to_vec()).await.unwrap(), Created::AlreadyExists);
    assert_eq!(store.get("a/1").await.unwrap().unwrap().as_ref(), b"x");
    assert_eq!(store.get("a/2").await.unwrap(), None);
    assert!(store.exists("a/1").await.unwrap());
    store.create("a/0", b"z".to_vec()).await.unwrap();
    store.create("b/0", b"z".to_vec()).await.unwrap();
    assert_eq!(store.list("a").await.unwrap(), vec!["a/0", "a/1"]);
    assert_eq!(store.list_all().await.unwrap(), vec!["a/0", "a/1", "b/0"]);
    store.delete("a/1").await.unwrap();
    store.delete("a/1").await.unwrap();
    assert_eq!(store.get("a/1").await.unwrap(), None);
}
