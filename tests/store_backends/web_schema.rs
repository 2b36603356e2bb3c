//! The migrations since web sign-in and API tokens, on a database an earlier version made:
//! each backend applies every later step, each once, and keeps what the database held.

use gatehouse::credentials::{NewToken, TokenScope};
use gatehouse::store;

/// How many migrations a backend has (the `.sql` files in `dir` under `migrations/`).
fn migrations(dir: &str) -> i64 {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    std::fs::read_dir(path)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count() as i64
}

/// SQLite: a database made by an earlier version (migrations 0001-0005) gets every later one,
/// once each, and keeps what it held.
#[tokio::test]
async fn an_existing_sqlite_database_gets_only_the_new_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    {
        let options: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
        let pool = sqlx::SqlitePool::connect_with(options.create_if_missing(true))
            .await
            .unwrap();
        sqlx::query("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        let previous = [
            include_str!("../../migrations/0001_grants.sql"),
            include_str!("../../migrations/0002_sessions.sql"),
            include_str!("../../migrations/0003_reviews.sql"),
            include_str!("../../migrations/0004_alerts.sql"),
            include_str!("../../migrations/0005_nodes.sql"),
        ];
        for (i, sql) in previous.iter().enumerate() {
            sqlx::raw_sql(*sql).execute(&pool).await.unwrap();
            sqlx::query("INSERT INTO schema_version (version) VALUES (?)")
                .bind(i as i64 + 1)
                .execute(&pool)
                .await
                .unwrap();
        }
        sqlx::query("INSERT INTO nodes (name, version, listen, started_at, last_seen, state) VALUES ('old', '0.1', 'x', 1, 2, 'up')")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
    let store = store::open(&url).await.unwrap();
    assert_eq!(store.nodes().await.unwrap()[0].name, "old");
    let (_, token) = NewToken::generate("alice", TokenScope::Read, "bob", 0, None);
    store.create_token(&token).await.unwrap();
    drop(store);
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM schema_version ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
    let all = migrations("migrations");
    assert!(all >= 6, "{all}");
    assert_eq!(versions, (1..=all).collect::<Vec<_>>());
    // Opening again applies nothing.
    store::open(&url).await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schema_version")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, all);
}

/// PostgreSQL: a database made by an earlier version (schema 1) gets every later migration,
/// once each, and keeps what it held.
#[tokio::test]
async fn an_existing_postgres_database_gets_only_the_new_migrations() {
    let url = crate::fresh_database();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    {
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("CREATE TABLE schema_version (version BIGINT NOT NULL)")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::raw_sql(include_str!("../../migrations/postgres/0001_schema.sql"))
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query("INSERT INTO schema_version (version) VALUES (1)")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query("INSERT INTO nodes (name, version, listen, started_at, last_seen, state) VALUES ('old', '0.1', 'x', 1, 2, 'up')")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let store = store::open(&url).await.unwrap();
    assert_eq!(store.nodes().await.unwrap()[0].name, "old");
    let (_, token) = NewToken::generate("alice", TokenScope::Read, "bob", 0, None);
    store.create_token(&token).await.unwrap();
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM schema_version ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
    let all = migrations("migrations/postgres");
    assert!(all >= 2, "{all}");
    assert_eq!(versions, (1..=all).collect::<Vec<_>>());
    // Other nodes opening it now apply nothing.
    store::open(&url).await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schema_version")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, all);
}
