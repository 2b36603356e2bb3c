//! What every store backend must do with the transcripts of file sessions.

use gatehouse::store::Store;
use gatehouse::store::transfers::FileOp;

use crate::records::session;

fn op(session_id: &str, seq: i64, op: &str, path: &str, result: &str) -> FileOp {
    FileOp {
        session_id: session_id.into(),
        seq,
        at_ms: 1_700_000_000_000 + seq,
        op: op.into(),
        path: path.into(),
        to_path: None,
        bytes: None,
        result: result.into(),
        sha256: None,
    }
}

pub async fn file_operations_are_kept_in_order_and_found_by_path(store: &Store) {
    for id in ["f1", "f2"] {
        let mut s = session(id, "n1", "alice", false, 100);
        s.kind = "files".into();
        s.command = None;
        s.recording = None;
        store.started(&s).await.unwrap();
    }
    let read = FileOp {
        bytes: Some(20_500),
        sha256: Some("84cc0dca".into()),
        ..op("f1", 1, "read", "/var/log/nginx/access.log", "ok")
    };
    let renamed = FileOp {
        to_path: Some("/srv/upload/b.tar".into()),
        ..op("f1", 3, "rename", "/srv/upload/a.tar", "ok")
    };
    let denied = op(
        "f1",
        2,
        "stat",
        "/etc/shadow",
        "denied: not allowed by role logs",
    );
    for o in [&read, &renamed, &denied] {
        store.file_op(o).await.unwrap();
    }
    store
        .file_op(&op("f2", 1, "list", "/var/log/nginx", "ok"))
        .await
        .unwrap();
    assert!(
        store.file_op(&denied).await.is_err(),
        "a place in the transcript is taken once"
    );
    assert_eq!(
        store.file_ops("f1").await.unwrap(),
        vec![read, denied, renamed]
    );
    assert!(store.file_ops("none").await.unwrap().is_empty());
    let mut found = store
        .sessions_with_file_path("/var/log/nginx")
        .await
        .unwrap();
    found.sort();
    assert_eq!(found, ["f1", "f2"]);
    assert_eq!(
        store.sessions_with_file_path("b.tar").await.unwrap(),
        ["f1"],
        "the new name too"
    );
    assert_eq!(
        store.sessions_with_file_path("shadow").await.unwrap(),
        ["f1"]
    );
    assert!(
        store
            .sessions_with_file_path("SHADOW")
            .await
            .unwrap()
            .is_empty(),
        "exact"
    );
    assert!(
        store.sessions_with_file_path("%").await.unwrap().is_empty(),
        "no patterns"
    );
}
