//! TLS to PostgreSQL, chosen by `sslmode` (and `sslrootcert`) in the store URL: a server of
//! the test's own, switched to TLS with a certificate from a test CA made by `openssl`.

use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse::store;

use crate::common::certs::{ca, server_cert};
use crate::common::postgres::Postgres;

/// Turns TLS on in the running server with the certificate in `dir`, which the server's
/// account must be able to read (the key only by it).
fn enable_tls(pg: &Postgres, dir: &Path) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let data = pg.psql("postgres", "SHOW data_directory");
    let owner = std::fs::metadata(data.trim()).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (file, mode) in [("server.pem", 0o644), ("server.key", 0o600)] {
        let path = dir.join(file);
        std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid())).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    pg.psql(
        "postgres",
        &format!(
            "ALTER SYSTEM SET ssl_cert_file = '{}';\nALTER SYSTEM SET ssl_key_file = '{}';\n\
             ALTER SYSTEM SET ssl = on;\nSELECT pg_reload_conf();",
            dir.join("server.pem").display(),
            dir.join("server.key").display()
        ),
    );
    let started = Instant::now();
    while pg.psql("postgres", "SHOW ssl").trim() != "on" {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "TLS did not come on:\n{}",
            pg.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How many of Gatehouse's connections to the server use TLS.
fn tls_connections(pg: &Postgres) -> u32 {
    pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = 'gatehouse' AND s.ssl",
    )
    .trim()
    .parse()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_in_the_url_chooses_tls_and_verify_full_checks_the_server() {
    let pg = tokio::task::block_in_place(Postgres::start);
    let url = pg.create_database("tls");
    // The server has no TLS yet: a store that requires it is refused, by the server's answer
    // (TLS is built in).
    let refused = store::open(&format!("{url}?sslmode=require"))
        .await
        .err()
        .expect("TLS required from a server without it")
        .to_string();
    assert!(
        refused.contains("TLS") && !refused.contains("without TLS"),
        "{refused}"
    );

    let dir = tempfile::tempdir().unwrap();
    ca(dir.path(), "test-ca");
    ca(dir.path(), "other-ca");
    server_cert(dir.path(), "test-ca");
    tokio::task::block_in_place(|| enable_tls(&pg, dir.path()));

    let required = store::open(&format!("{url}?sslmode=require"))
        .await
        .unwrap();
    assert_eq!(required.revision().await.unwrap(), 0);
    assert!(tokio::task::block_in_place(|| tls_connections(&pg)) > 0);
    drop(required);

    let root = dir.path().join("test-ca.pem");
    let verified = store::open(&format!(
        "{url}?sslmode=verify-full&sslrootcert={}",
        root.display()
    ))
    .await
    .unwrap();
    assert_eq!(verified.revision().await.unwrap(), 0);

    let stranger = dir.path().join("other-ca.pem");
    let started = Instant::now();
    let refused = store::open(&format!(
        "{url}?sslmode=verify-full&sslrootcert={}",
        stranger.display()
    ))
    .await;
    let refused = refused
        .err()
        .expect("a server certificate from another CA")
        .to_string();
    assert!(refused.contains("certificate"), "{refused}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
