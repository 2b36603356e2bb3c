//! The directory's last good state on every backend: compare-and-set saves, a held sync, the
//! first failure since the last good sync, and the lease that lets one node sync at a time.

use gatehouse::store::{Store, StoreError};

/// Saves are compare-and-set on the revision, and a save clears a held sync and a failure.
pub async fn directory_state_is_saved_held_and_failed(store: &Store) {
    let empty = store.directory().await.unwrap();
    assert_eq!(empty.revision, 0);
    assert!(empty.snapshot.is_none() && empty.held.is_none() && empty.failure.is_none());
    assert_eq!(store.directory_revision().await.unwrap(), 0);

    let rev = store
        .save_directory(0, "{\"a\":1}", 100, "node-a")
        .await
        .unwrap();
    assert_eq!(rev, 1);
    let stale = store.save_directory(0, "{\"b\":2}", 101, "node-b").await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    let saved = store.directory().await.unwrap();
    assert_eq!(saved.snapshot.as_deref(), Some("{\"a\":1}"));
    assert_eq!(
        (saved.synced_at, saved.synced_by.as_deref()),
        (Some(100), Some("node-a"))
    );

    // Only the first failure since the last good sync is the one that alerts.
    assert!(store.directory_failed("down", 110).await.unwrap());
    assert!(!store.directory_failed("still down", 120).await.unwrap());
    store.hold_directory("{\"removed\":[]}", 130).await.unwrap();
    let troubled = store.directory().await.unwrap();
    assert_eq!(troubled.failure, Some(("still down".to_owned(), 120)));
    assert_eq!(troubled.held, Some(("{\"removed\":[]}".to_owned(), 130)));
    assert_eq!(troubled.revision, 1, "neither changes the state in force");
    assert_eq!(troubled.snapshot.as_deref(), Some("{\"a\":1}"));

    store
        .save_directory(1, "{\"c\":3}", 140, "cli:root")
        .await
        .unwrap();
    let clean = store.directory().await.unwrap();
    assert!(clean.held.is_none() && clean.failure.is_none(), "{clean:?}");
    assert_eq!(store.directory_revision().await.unwrap(), 2);
    assert!(store.directory_failed("down again", 150).await.unwrap());
}

/// One node holds the lease until it runs out; it renews its own.
pub async fn one_node_at_a_time_holds_the_directory_lease(store: &Store) {
    assert!(store.claim_directory_sync("a", 100, 200).await.unwrap());
    assert!(!store.claim_directory_sync("b", 150, 250).await.unwrap());
    assert!(store.claim_directory_sync("a", 190, 290).await.unwrap());
    assert!(!store.claim_directory_sync("b", 289, 389).await.unwrap());
    assert!(store.claim_directory_sync("b", 291, 391).await.unwrap());
    assert!(!store.claim_directory_sync("a", 300, 400).await.unwrap());
}
