//! The PostgreSQL server the end-to-end tests run against: real, on loopback only, its data
//! surviving a clean stop and a crash, and none of its processes outliving it.

mod common;

use std::net::TcpStream;
use std::path::Path;

use common::postgres::Postgres;

#[test]
fn server_keeps_its_data_across_stop_and_crash_and_leaves_no_process_behind() {
    let mut pg = Postgres::start();
    let url = pg.create_database("harness");
    assert_eq!(
        url,
        format!("postgres://gatehouse@127.0.0.1:{}/harness", pg.port())
    );
    assert_eq!(
        pg.psql("harness", "SHOW listen_addresses").trim(),
        "127.0.0.1"
    );
    pg.psql(
        "harness",
        "CREATE TABLE t (n int); INSERT INTO t VALUES (1), (2);",
    );
    assert_eq!(
        pg.psql("harness", "SELECT n, n * 10 FROM t ORDER BY n"),
        "1|10\n2|20\n"
    );

    pg.stop();
    assert!(
        pg.processes().is_empty(),
        "processes after stop: {:?}",
        pg.processes()
    );
    assert!(
        TcpStream::connect(("127.0.0.1", pg.port())).is_err(),
        "the port still answers after stop"
    );
    pg.start_again();
    assert_eq!(pg.psql("harness", "SELECT sum(n) FROM t").trim(), "3");

    pg.psql("harness", "INSERT INTO t VALUES (4)");
    pg.kill();
    assert!(
        pg.processes().is_empty(),
        "processes after kill: {:?}",
        pg.processes()
    );
    pg.start_again();
    assert!(
        pg.log().contains("was not properly shut down"),
        "no crash recovery after kill:\n{}",
        pg.log()
    );
    assert_eq!(pg.psql("harness", "SELECT sum(n) FROM t").trim(), "7");

    let pids = pg.processes();
    assert!(pids.contains(&pg.pid()), "{pids:?} lacks the postmaster");
    assert!(pids.len() > 1, "no backends or helpers among {pids:?}");
    drop(pg);
    let left: Vec<_> = pids
        .iter()
        .filter(|pid| Path::new(&format!("/proc/{pid}")).exists())
        .collect();
    assert!(left.is_empty(), "processes outlive the server: {left:?}");
}
