//! What every store backend must do with the text index of recordings: rows replaced as they
//! grow, progress stored with them, the first matching row of each session and stream found by
//! trigrams or (for short needles) row by row, and rows forgotten for a rebuild.

use gatehouse::recording::MatchSource;
use gatehouse::search::chunk::EventTimes;
use gatehouse::store::Store;
use gatehouse::store::search::{ChunkRow, IndexBatch, IndexProgress, TextStream};
use gatehouse::store::transfers::FileOp;

use crate::records::session;

fn row(id: &str, stream: TextStream, seq: u32, text: &str, events: &[(u32, i64)]) -> ChunkRow {
    ChunkRow {
        session_id: id.into(),
        stream,
        seq,
        text: text.into(),
        events: EventTimes(events.to_vec()).encode(),
        after_gap: seq == 0,
        gap_after: false,
    }
}

fn progress(id: &str, bytes: u64, complete: bool) -> IndexProgress {
    IndexProgress {
        session_id: id.into(),
        indexed_bytes: bytes,
        complete,
    }
}

pub async fn rows_are_found_by_text_and_forgotten(store: &Store) {
    let mut s1 = session("s1", "n1", "alice", false, 1_000);
    s1.command = Some("uptime".into());
    let mut s2 = session("s2", "n1", "bob", false, 2_000);
    s2.command = None;
    s2.kind = "files".into();
    s2.recording = None;
    for s in [&s1, &s2] {
        store.started(s).await.unwrap();
    }
    // A row that grows is stored again under the same key.
    let first = IndexBatch {
        rows: vec![row(
            "s1",
            TextStream::Output,
            0,
            "$ sudo rm",
            &[(0, 1_000_000)],
        )],
        progress: vec![progress("s1", 100, false)],
    };
    store.index_commit(&first).await.unwrap();
    let grown = IndexBatch {
        rows: vec![
            row(
                "s1",
                TextStream::Output,
                0,
                "$ sudo rm -rf /var/lib",
                &[(0, 1_000_000), (9, 2_500_000)],
            ),
            row(
                "s1",
                TextStream::Output,
                1,
                "-rf /var/lib\nagain rm -rf /var/lib",
                &[(0, 2_500_000), (12, 9_000_000)],
            ),
            row(
                "s1",
                TextStream::Input,
                0,
                "sudo rm -rf /var/lib\r",
                &[(0, 500_000)],
            ),
            row("s1", TextStream::Marker, 0, "run: id", &[(0, 7_000_000)]),
        ],
        progress: vec![progress("s1", 900, true)],
    };
    store.index_commit(&grown).await.unwrap();
    assert_eq!(
        store.index_progress(None).await.unwrap(),
        vec![progress("s1", 900, true)]
    );
    let last = store.index_last_rows("s1").await.unwrap();
    assert_eq!(last.len(), 3);
    assert!(last.contains(&grown.rows[1]) && last.contains(&grown.rows[3]));

    // One first row per stream; the row that grew is found by its new text.
    let mut found = store.index_first_rows("rm -rf /var", None).await.unwrap();
    found.sort_by_key(|r| (r.stream, r.seq));
    assert_eq!(found, vec![grown.rows[0].clone(), grown.rows[2].clone()]);
    assert!(
        store
            .index_first_rows("RM -RF", None)
            .await
            .unwrap()
            .is_empty(),
        "case-sensitive"
    );
    assert!(
        store
            .index_first_rows("100%_x", None)
            .await
            .unwrap()
            .is_empty(),
        "no wildcards"
    );
    let again = store.index_first_rows("again", None).await.unwrap();
    assert_eq!(again, vec![grown.rows[1].clone()]);
    // Short needles are looked for row by row, in the sessions named.
    let short = store
        .index_first_rows("id", Some(&["s1".to_owned()]))
        .await
        .unwrap();
    assert_eq!(short, vec![grown.rows[3].clone()]);
    assert!(
        store
            .index_first_rows("id", Some(&["s2".to_owned()]))
            .await
            .unwrap()
            .is_empty()
    );

    // The whole search: the command first, then the earliest of the streams, and file paths.
    store
        .file_op(&FileOp {
            session_id: "s2".into(),
            seq: 1,
            at_ms: 2_003_500,
            op: "read".into(),
            path: "/var/lib/dump".into(),
            to_path: None,
            bytes: None,
            result: "ok".into(),
            sha256: None,
        })
        .await
        .unwrap();
    let sessions = vec![s1.clone(), s2.clone()];
    let hits = gatehouse::search::search(store, "/var/lib", &sessions)
        .await
        .unwrap();
    assert_eq!(hits["s1"].source, MatchSource::Input);
    assert_eq!(hits["s1"].time, 0.5);
    assert_eq!(hits["s2"].source, MatchSource::File);
    assert_eq!(hits["s2"].time, 3.5);
    let hits = gatehouse::search::search(store, "-rf /var/lib\nagain", &sessions)
        .await
        .unwrap();
    assert_eq!(
        (hits["s1"].source, hits["s1"].time),
        (MatchSource::Output, 2.5)
    );
    let hits = gatehouse::search::search(store, "upt", &sessions)
        .await
        .unwrap();
    assert_eq!(hits["s1"].source, MatchSource::Command);
    assert!(
        gatehouse::search::search(store, "", &sessions)
            .await
            .is_err()
    );
    assert!(
        gatehouse::search::search(store, &"x".repeat(201), &sessions)
            .await
            .is_err()
    );

    store.index_forget(Some(&["s1".to_owned()])).await.unwrap();
    assert!(
        store
            .index_first_rows("rm -rf", None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.index_progress(None).await.unwrap().is_empty());
    store.index_commit(&first).await.unwrap();
    store.index_forget(None).await.unwrap();
    assert!(
        store
            .index_first_rows("sudo", None)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The rows a search finds first, as (session, stream, seq).
async fn firsts(store: &Store, needle: &str) -> Vec<(String, TextStream, u32)> {
    let mut found: Vec<_> = store
        .index_first_rows(needle, None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.session_id, r.stream, r.seq))
        .collect();
    found.sort();
    found
}

/// A segment of the rows given (their keys and text).
fn segment_of(rows: &[(i64, &str)]) -> gatehouse::store::search::SegmentData {
    let mut builder = gatehouse::search::segment::SegmentBuilder::default();
    for &(key, text) in rows {
        builder.add(key, text);
    }
    builder.build()
}

pub async fn sealed_and_unsealed_rows_are_found_and_merges_keep_the_answers(store: &Store) {
    let texts = [
        "alpha one",
        "beta two",
        "alpha beta",
        "beta gamma",
        "delta, still growing",
    ];
    let rows: Vec<ChunkRow> = texts
        .iter()
        .enumerate()
        .map(|(seq, text)| row("s3", TextStream::Output, seq as u32, text, &[(0, 1)]))
        .collect();
    let batch = IndexBatch {
        rows: rows.clone(),
        progress: vec![progress("s3", 10, false)],
    };
    let keys = store.index_commit(&batch).await.unwrap();
    assert_eq!(keys.len(), 5);
    // Every row but the last of a session still being indexed is final.
    let mut unsealed = store.index_unsealed(&["s3".to_owned()]).await.unwrap();
    unsealed.sort();
    let expected: Vec<(i64, String)> = (0..4).map(|i| (keys[i], texts[i].into())).collect();
    assert_eq!(unsealed, expected);

    // Row 1 in one segment, rows 2 and 3 in another; rows 0 and 4 stay unsealed.
    let a = store
        .index_seal(&segment_of(&[(keys[1], texts[1])]))
        .await
        .unwrap();
    let b = store
        .index_seal(&segment_of(&[(keys[2], texts[2]), (keys[3], texts[3])]))
        .await
        .unwrap();
    assert_ne!(a, b);
    let unsealed = store.index_unsealed(&["s3".to_owned()]).await.unwrap();
    assert_eq!(unsealed, vec![(keys[0], texts[0].to_owned())]);
    let out = |seq| vec![("s3".to_owned(), TextStream::Output, seq)];
    let answers = [
        ("alpha", out(0)),  // unsealed row 0 before sealed row 2
        ("beta", out(1)),   // sealed in both segments, the first wins
        ("gamma", out(3)),  // only in a sealed row
        ("delta", out(4)),  // only in an unsealed row
        ("a be", out(2)),   // across a word, sealed
        ("absent", vec![]), // nowhere
    ];
    for (needle, expected) in &answers {
        assert_eq!(&firsts(store, needle).await, expected, "{needle}");
    }

    // Another session, sealed, then deleted: the merge leaves its keys out.
    let gone = IndexBatch {
        rows: vec![row("s4", TextStream::Input, 0, "alpha gone", &[(0, 1)])],
        progress: vec![progress("s4", 10, true)],
    };
    let gone_key = store.index_commit(&gone).await.unwrap()[0];
    let c = store
        .index_seal(&segment_of(&[(gone_key, "alpha gone")]))
        .await
        .unwrap();
    assert_eq!(firsts(store, "gone").await.len(), 1);
    store.index_forget(Some(&["s4".to_owned()])).await.unwrap();
    assert!(firsts(store, "gone").await.is_empty());

    let merged = store.index_merge(&[a, b, c]).await.unwrap().unwrap();
    let segments = store.index_segments().await.unwrap();
    assert_eq!(
        segments.iter().map(|s| s.seg).collect::<Vec<_>>(),
        vec![merged]
    );
    assert!(
        segments[0].text_bytes < (texts[1].len() + texts[2].len() + texts[3].len() + 10) as u64
    );
    for (needle, expected) in &answers {
        assert_eq!(
            &firsts(store, needle).await,
            expected,
            "{needle} after the merge"
        );
    }
    assert!(firsts(store, "gone").await.is_empty());
    // Segments merged already are not merged twice.
    assert_eq!(store.index_merge(&[a, merged]).await.unwrap(), None);

    // A sealed row stored again (it grew) is unsealed, and found by its new text.
    let mut grown = rows[1].clone();
    grown.text = "beta two zeta".into();
    store
        .index_commit(&IndexBatch {
            rows: vec![grown],
            progress: vec![progress("s3", 20, true)],
        })
        .await
        .unwrap();
    assert_eq!(firsts(store, "zeta").await, out(1));
    // Once wholly indexed, the last row is final too.
    let mut unsealed = store.index_unsealed(&["s3".to_owned()]).await.unwrap();
    unsealed.sort();
    assert_eq!(
        unsealed.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        vec![keys[0], keys[1], keys[4]]
    );
    // Forgetting everything drops the segments too.
    store.index_forget(None).await.unwrap();
    assert!(store.index_segments().await.unwrap().is_empty());
    assert!(firsts(store, "beta").await.is_empty());
}

/// Two sessions whose output holds every part of `root@web-07`, one of them the whole of it,
/// committed and sealed in two segments (the sessions started first if `start`).
async fn prompts_of_two_hosts(store: &Store, start: bool) {
    let texts = [
        (
            "s5",
            "root@web-01:~# date\r\n2026-03-07T10:00:00Z\r\nroot@web-01:~# ",
        ),
        ("s6", "2026-03-07T10:00:00Z\r\nroot@web-07:~# uptime"),
    ];
    let mut keys = Vec::new();
    for (id, text) in texts {
        if start {
            store
                .started(&session(id, "n1", "alice", false, 1_000))
                .await
                .unwrap();
        }
        let batch = IndexBatch {
            rows: vec![row(id, TextStream::Output, 0, text, &[(0, 5_000)])],
            progress: vec![progress(id, 100, true)],
        };
        keys.push((store.index_commit(&batch).await.unwrap()[0], text));
    }
    for &(key, text) in &keys {
        store.index_seal(&segment_of(&[(key, text)])).await.unwrap();
    }
}

pub async fn a_needle_of_common_parts_is_found_only_where_it_is_whole(store: &Store) {
    prompts_of_two_hosts(store, true).await;
    let whole = vec![("s6".to_owned(), TextStream::Output, 0)];
    assert_eq!(firsts(store, "root@web-07").await, whole);
    assert_eq!(firsts(store, "07:~# up").await, whole);
    assert_eq!(firsts(store, "root@web-0").await.len(), 2);
    let segs: Vec<i64> = store
        .index_segments()
        .await
        .unwrap()
        .iter()
        .map(|s| s.seg)
        .collect();
    store.index_merge(&segs).await.unwrap().unwrap();
    assert_eq!(firsts(store, "root@web-07").await, whole);
    assert!(firsts(store, "root@web-08").await.is_empty());
}

/// Opens the store at `url` again, after `rewind` put its schema back to before postings had
/// marks, and checks the index was emptied so the indexer rebuilds it from the recordings.
async fn reopened_from_before_gram_marks_is_empty(url: &str) {
    let store = gatehouse::store::open(url).await.unwrap();
    assert!(store.index_progress(None).await.unwrap().is_empty());
    assert!(store.index_segments().await.unwrap().is_empty());
    assert!(firsts(&store, "root@web-0").await.is_empty());
    // Rebuilt, it answers again.
    prompts_of_two_hosts(&store, false).await;
    assert_eq!(firsts(&store, "root@web-07").await.len(), 1);
}

#[tokio::test]
async fn a_sqlite_index_from_before_gram_marks_is_emptied_for_a_rebuild() {
    let crate::Opened { store, url, _dir } = crate::sqlite().await;
    prompts_of_two_hosts(&store, true).await;
    drop(store);
    let dir = _dir.as_ref().unwrap().path();
    let search = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.join("store.search.db").display()
    ))
    .await
    .unwrap();
    sqlx::query("DELETE FROM schema_version WHERE version > 1")
        .execute(&search)
        .await
        .unwrap();
    search.close().await;
    reopened_from_before_gram_marks_is_empty(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_index_from_before_gram_marks_is_emptied_for_a_rebuild() {
    let crate::Opened { store, url, .. } = crate::postgres().await;
    prompts_of_two_hosts(&store, true).await;
    drop(store);
    let db = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query("DELETE FROM schema_version WHERE version > 6")
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    reopened_from_before_gram_marks_is_empty(&url).await;
}
