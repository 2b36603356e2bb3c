//! What every store backend must do with web sign-in and API tokens: links spent once however
//! many browsers (and nodes) race for them, sessions that idle out, age out and end, tokens
//! stored only as hashes and revoked once.

use std::time::Duration;

use gatehouse::credentials::{LinkOutcome, NewToken, NewWebSession, Secret, TokenScope};
use gatehouse::store::{self, Store, StoreError};

use crate::Opened;

/// One test per scenario and backend.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(&crate::sqlite().await).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(&crate::postgres().await).await;
                }
            )*
        }
    };
}

on_both!(
    a_link_signs_in_exactly_once_however_many_follow_it_at_once,
    a_link_expires_and_an_unknown_one_is_unknown,
    sessions_idle_out_age_out_and_end,
    all_sessions_of_a_user_end_together,
    tokens_are_stored_only_as_hashes,
    a_token_is_revoked_once_and_then_refused,
    an_expired_token_is_refused,
    an_unreadable_scope_fails_closed,
    spent_links_and_sessions_are_forgotten,
);

/// Every row of `table` as text, read straight from the database (not through the store).
async fn dump(opened: &Opened, table: &str) -> String {
    let rows: Vec<String> = if opened.url.starts_with("sqlite://") {
        let pool = sqlx::SqlitePool::connect(&opened.url).await.unwrap();
        let columns: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT name FROM pragma_table_info('{table}')"
        )))
        .fetch_all(&pool)
        .await
        .unwrap();
        let joined: Vec<String> = columns
            .iter()
            .map(|c| format!("COALESCE(CAST(\"{c}\" AS TEXT), '')"))
            .collect();
        let rows = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM {table}",
            joined.join(" || '|' || ")
        )))
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows
    } else {
        let pool = sqlx::PgPool::connect(&opened.url).await.unwrap();
        let rows = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT t::text FROM {table} t"
        )))
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows
    };
    rows.join("\n")
}

/// Runs one statement straight on the database.
async fn execute(opened: &Opened, sql: &'static str) {
    if opened.url.starts_with("sqlite://") {
        let pool = sqlx::SqlitePool::connect(&opened.url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&opened.url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    }
}

pub async fn a_link_signs_in_exactly_once_however_many_follow_it_at_once(opened: &Opened) {
    // A second store on the same database: another node (or process).
    let other = store::open(&opened.url).await.unwrap();
    for round in 0..5 {
        let (secret, hash) = Secret::generate();
        opened
            .store
            .create_login_link(&hash, "alice", 100, 160)
            .await
            .unwrap();
        let followers: Vec<_> = (0..24)
            .map(|i| {
                let store: Store = if i % 2 == 0 {
                    opened.store.clone()
                } else {
                    other.clone()
                };
                let hash = Secret::hash(&secret);
                tokio::spawn(async move { store.consume_login_link(&hash, 110).await })
            })
            .collect();
        let mut signed_in = 0;
        for follower in followers {
            match follower.await.unwrap().unwrap() {
                LinkOutcome::SignedIn { user } => {
                    assert_eq!(user, "alice");
                    signed_in += 1;
                }
                LinkOutcome::AlreadyUsed => {}
                outcome => panic!("round {round}: {outcome:?}"),
            }
        }
        assert_eq!(signed_in, 1, "round {round}: one browser signs in");
        assert_eq!(
            other.consume_login_link(&hash, 111).await.unwrap(),
            LinkOutcome::AlreadyUsed
        );
        // Spent stays spent, even once its time is up.
        assert_eq!(
            opened.store.consume_login_link(&hash, 500).await.unwrap(),
            LinkOutcome::AlreadyUsed
        );
    }
}

pub async fn a_link_expires_and_an_unknown_one_is_unknown(opened: &Opened) {
    let store = &opened.store;
    let (_, late) = Secret::generate();
    store
        .create_login_link(&late, "alice", 100, 160)
        .await
        .unwrap();
    assert_eq!(
        store.consume_login_link(&late, 160).await.unwrap(),
        LinkOutcome::Expired,
        "valid until just before its expiry"
    );
    // Refusing an expired link does not spend it: it stays expired, not used.
    assert_eq!(
        store.consume_login_link(&late, 161).await.unwrap(),
        LinkOutcome::Expired
    );
    let (_, just_in_time) = Secret::generate();
    store
        .create_login_link(&just_in_time, "bob", 100, 160)
        .await
        .unwrap();
    assert_eq!(
        store.consume_login_link(&just_in_time, 159).await.unwrap(),
        LinkOutcome::SignedIn { user: "bob".into() }
    );
    assert_eq!(
        store
            .consume_login_link(&Secret::hash("never issued"), 120)
            .await
            .unwrap(),
        LinkOutcome::Unknown
    );
    assert!(
        store
            .create_login_link(&late, "mallory", 100, 160)
            .await
            .is_err(),
        "a link's hash is issued once"
    );
}

pub async fn sessions_idle_out_age_out_and_end(opened: &Opened) {
    let store = &opened.store;
    let idle = Duration::from_secs(600);
    let (cookie, new) =
        NewWebSession::generate("alice", "ssh-link", 1000, Duration::from_secs(3600));
    store.create_web_session(&new).await.unwrap();
    let hash = Secret::hash(&cookie);

    let found = store.web_session(&hash, 1100, idle).await.unwrap().unwrap();
    assert_eq!(
        (
            found.user.as_str(),
            found.method.as_str(),
            found.csrf.as_str()
        ),
        ("alice", "ssh-link", new.csrf.as_str())
    );
    assert_eq!(
        (found.created_at, found.last_seen, found.expires_at),
        (1000, 1100, 4600)
    );
    // Each use counts as activity: 600 s after the first use but 500 after the last is fine.
    for at in [1600, 2100, 2600, 3100, 3600, 4100, 4599] {
        let s = store.web_session(&hash, at, idle).await.unwrap();
        assert_eq!(s.map(|s| s.last_seen), Some(at), "in use at {at}");
    }
    // However busy, it ends at its maximum age.
    assert!(
        store
            .web_session(&hash, 4600, idle)
            .await
            .unwrap()
            .is_none()
    );

    // Idle for longer than `idle`: refused.
    let (cookie, new) =
        NewWebSession::generate("alice", "ssh-link", 1000, Duration::from_secs(3600));
    store.create_web_session(&new).await.unwrap();
    let hash = Secret::hash(&cookie);
    let still = store.web_session(&hash, 1600, idle).await.unwrap();
    assert!(still.is_some(), "idle exactly `idle` is still good");
    assert!(
        store
            .web_session(&hash, 2201, idle)
            .await
            .unwrap()
            .is_none()
    );

    // A node whose clock lags does not move the last use back.
    let (cookie, new) = NewWebSession::generate("bob", "ssh-link", 1000, Duration::from_secs(3600));
    store.create_web_session(&new).await.unwrap();
    let hash = Secret::hash(&cookie);
    store.web_session(&hash, 1500, idle).await.unwrap().unwrap();
    let lagging = store.web_session(&hash, 1400, idle).await.unwrap().unwrap();
    assert_eq!(lagging.last_seen, 1500);

    // Signing out ends it once, for good.
    assert!(store.end_web_session(&hash, 1600).await.unwrap());
    assert!(!store.end_web_session(&hash, 1601).await.unwrap());
    assert!(
        store
            .web_session(&hash, 1602, idle)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .web_session(&Secret::hash("no such cookie"), 1100, idle)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !store
            .end_web_session(&Secret::hash("no such cookie"), 1100)
            .await
            .unwrap()
    );
}

pub async fn all_sessions_of_a_user_end_together(opened: &Opened) {
    let store = &opened.store;
    let idle = Duration::from_secs(600);
    let hour = Duration::from_secs(3600);
    let mut alice = Vec::new();
    for _ in 0..2 {
        let (cookie, new) = NewWebSession::generate("alice", "ssh-link", 1000, hour);
        store.create_web_session(&new).await.unwrap();
        alice.push(Secret::hash(&cookie));
    }
    let (_, signed_out) = NewWebSession::generate("alice", "ssh-link", 1000, hour);
    store.create_web_session(&signed_out).await.unwrap();
    assert!(store.end_web_session(&signed_out.hash, 1010).await.unwrap());
    let (_, old) = NewWebSession::generate("alice", "ssh-link", 0, Duration::from_secs(10));
    store.create_web_session(&old).await.unwrap();
    let (bob_cookie, bob) = NewWebSession::generate("bob", "ssh-link", 1000, hour);
    store.create_web_session(&bob).await.unwrap();

    assert_eq!(
        store.end_web_sessions_of("alice", 1100).await.unwrap(),
        2,
        "the ended and the expired ones do not count"
    );
    for hash in &alice {
        assert!(store.web_session(hash, 1101, idle).await.unwrap().is_none());
    }
    assert!(
        store
            .web_session(&Secret::hash(&bob_cookie), 1101, idle)
            .await
            .unwrap()
            .is_some(),
        "another user's session stays"
    );
    assert_eq!(store.end_web_sessions_of("alice", 1102).await.unwrap(), 0);
}

pub async fn tokens_are_stored_only_as_hashes(opened: &Opened) {
    let store = &opened.store;
    let day = Duration::from_secs(86_400);
    let mut secrets = Vec::new();
    let mut ids = Vec::new();
    for (i, (user, scope)) in [
        ("alice", TokenScope::Approve),
        ("bob", TokenScope::Read),
        ("alice", TokenScope::Review),
    ]
    .into_iter()
    .enumerate()
    {
        let (secret, token) =
            NewToken::generate(user, scope, "operator:root", 100 + i as i64, Some(day));
        store.create_token(&token).await.unwrap();
        secrets.push(secret);
        ids.push(token.id);
    }
    let listed = store.tokens(None).await.unwrap();
    let listed_ids: Vec<_> = listed.iter().map(|t| t.id.clone()).collect();
    assert_eq!(listed_ids, ids, "oldest first");
    assert_eq!(listed[0].scope, TokenScope::Approve);
    assert_eq!(listed[0].created_by, "operator:root");
    assert_eq!(listed[0].expires_at, Some(100 + 86_400));
    assert_eq!(listed[0].last_used_at, None);
    let alice: Vec<_> = store.tokens(Some("alice")).await.unwrap();
    assert_eq!(
        alice.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        [ids[0].as_str(), ids[2].as_str()]
    );
    assert!(store.tokens(Some("carol")).await.unwrap().is_empty());

    // A token is found by the hash of what its holder presents, and its use is recorded.
    let found = store
        .token_by_hash(&Secret::hash(&secrets[1]), 5000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.id.as_str(), found.user.as_str()),
        (ids[1].as_str(), "bob")
    );
    assert_eq!(found.last_used_at, Some(5000));
    let listed = store.tokens(Some("bob")).await.unwrap();
    assert_eq!(listed[0].last_used_at, Some(5000));
    assert!(
        store
            .token_by_hash(&secrets[1], 5001)
            .await
            .unwrap()
            .is_none(),
        "the secret itself is not what is looked up"
    );

    // The database holds the hashes, never a secret.
    let mut cookies = Vec::new();
    let (cookie, session) = NewWebSession::generate("alice", "ssh-link", 100, day);
    store.create_web_session(&session).await.unwrap();
    cookies.push(cookie);
    let (link, link_hash) = Secret::generate();
    store
        .create_login_link(&link_hash, "alice", 100, 160)
        .await
        .unwrap();
    let tokens = dump(opened, "api_tokens").await;
    let sessions = dump(opened, "web_sessions").await;
    let links = dump(opened, "web_login_links").await;
    for secret in &secrets {
        assert!(tokens.contains(&Secret::hash(secret)), "{tokens}");
    }
    assert!(sessions.contains(&session.hash) && sessions.contains(&session.csrf));
    assert!(links.contains(&link_hash));
    let everything = format!("{tokens}\n{sessions}\n{links}");
    for secret in secrets.iter().chain(&cookies).chain([&link]) {
        assert!(!everything.contains(secret.as_str()), "a secret is stored");
    }

    // An id drawn twice is a conflict, so the caller can draw again.
    let (_, mut twin) = NewToken::generate("alice", TokenScope::Read, "x", 200, None);
    twin.id = ids[0].clone();
    let refused = store.create_token(&twin).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(store.tokens(None).await.unwrap().len(), 3);
}

pub async fn a_token_is_revoked_once_and_then_refused(opened: &Opened) {
    let other = store::open(&opened.url).await.unwrap();
    let (secret, token) = NewToken::generate("alice", TokenScope::Approve, "bob", 100, None);
    opened.store.create_token(&token).await.unwrap();
    let hash = Secret::hash(&secret);
    assert!(
        opened
            .store
            .token_by_hash(&hash, 1_000_000_000)
            .await
            .unwrap()
            .is_some(),
        "a token without an expiry does not expire"
    );
    let revokers: Vec<_> = (0..16)
        .map(|i| {
            let store: Store = if i % 2 == 0 {
                opened.store.clone()
            } else {
                other.clone()
            };
            let id = token.id.clone();
            tokio::spawn(async move { store.revoke_token(&id, 200 + i).await })
        })
        .collect();
    let mut revoked = 0;
    for revoker in revokers {
        if revoker.await.unwrap().unwrap() {
            revoked += 1;
        }
    }
    assert_eq!(revoked, 1, "revoked once");
    assert!(!opened.store.revoke_token(&token.id, 300).await.unwrap());
    assert!(
        !opened
            .store
            .revoke_token("tok_ffffffff", 300)
            .await
            .unwrap()
    );
    assert!(
        opened
            .store
            .token_by_hash(&hash, 301)
            .await
            .unwrap()
            .is_none()
    );
    let listed = opened.store.tokens(None).await.unwrap();
    let at = listed[0].revoked_at.expect("revoked");
    assert!((200..216).contains(&at), "{at}");
}

pub async fn an_expired_token_is_refused(opened: &Opened) {
    let store = &opened.store;
    let (secret, token) = NewToken::generate(
        "alice",
        TokenScope::Read,
        "bob",
        100,
        Some(Duration::from_secs(100)),
    );
    store.create_token(&token).await.unwrap();
    let hash = Secret::hash(&secret);
    let live = store.token_by_hash(&hash, 199).await.unwrap().unwrap();
    assert_eq!(live.last_used_at, Some(199));
    assert!(store.token_by_hash(&hash, 200).await.unwrap().is_none());
    assert!(store.token_by_hash(&hash, 150).await.unwrap().is_some());
    let listed = store.tokens(None).await.unwrap();
    assert_eq!(
        listed[0].last_used_at,
        Some(199),
        "refusals and lagging clocks do not count"
    );
    assert!(!listed[0].is_live(200));
}

pub async fn an_unreadable_scope_fails_closed(opened: &Opened) {
    let (secret, token) = NewToken::generate("alice", TokenScope::Read, "bob", 100, None);
    opened.store.create_token(&token).await.unwrap();
    execute(opened, "UPDATE api_tokens SET scope = 'admin'").await;
    let refused = opened
        .store
        .token_by_hash(&Secret::hash(&secret), 200)
        .await;
    assert!(
        matches!(refused, Err(StoreError::Corrupt(_))),
        "{refused:?}"
    );
    assert!(matches!(
        opened.store.tokens(None).await,
        Err(StoreError::Corrupt(_))
    ));
}

pub async fn spent_links_and_sessions_are_forgotten(opened: &Opened) {
    let store = &opened.store;
    let idle = Duration::from_secs(600);
    let (_, old_link) = Secret::generate();
    store
        .create_login_link(&old_link, "alice", 0, 60)
        .await
        .unwrap();
    let (_, new_link) = Secret::generate();
    store
        .create_login_link(&new_link, "alice", 990, 1050)
        .await
        .unwrap();
    let (_, aged) = NewWebSession::generate("alice", "ssh-link", 0, Duration::from_secs(100));
    store.create_web_session(&aged).await.unwrap();
    let (_, ended) = NewWebSession::generate("alice", "ssh-link", 0, Duration::from_secs(3600));
    store.create_web_session(&ended).await.unwrap();
    store.end_web_session(&ended.hash, 500).await.unwrap();
    let (live_cookie, live) =
        NewWebSession::generate("alice", "ssh-link", 900, Duration::from_secs(3600));
    store.create_web_session(&live).await.unwrap();
    let (_, token) = NewToken::generate(
        "alice",
        TokenScope::Read,
        "bob",
        0,
        Some(Duration::from_secs(1)),
    );
    store.create_token(&token).await.unwrap();

    assert_eq!(store.forget_web_before(1000).await.unwrap(), 3);
    assert_eq!(store.forget_web_before(1000).await.unwrap(), 0);
    assert_eq!(
        store.consume_login_link(&old_link, 1000).await.unwrap(),
        LinkOutcome::Unknown
    );
    assert_eq!(
        store.consume_login_link(&new_link, 1000).await.unwrap(),
        LinkOutcome::SignedIn {
            user: "alice".into()
        }
    );
    assert!(
        store
            .web_session(&Secret::hash(&live_cookie), 1000, idle)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store.tokens(None).await.unwrap().len(),
        1,
        "tokens are kept"
    );
}
