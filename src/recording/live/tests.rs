//! Tests of the recording fed from async code.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Instant;

use super::*;
use crate::recording::cast::{EventKind, input_bytes, output_bytes, read_cast};
use crate::recording::sha256_file;

fn header() -> CastHeader {
    CastHeader {
        width: 80,
        height: 24,
        timestamp: 1_700_000_000,
        command: None,
        title: None,
        env: BTreeMap::new(),
    }
}

async fn create(
    pool: &IoPool,
    dir: &Path,
    id: &str,
    cfg: RecorderConfig,
    stall: Duration,
) -> Result<LiveRecording, CreateError> {
    LiveRecording::create(pool, dir, id, Utc::now(), header(), cfg, stall).await
}

/// Occupies every thread of a one-thread pool until the returned sender is used or dropped,
/// as a write stuck on a frozen disk would.
fn occupy(pool: &IoPool) -> mpsc::Sender<()> {
    let (release, wait) = mpsc::channel::<()>();
    let (started, running) = mpsc::channel();
    let busy_pool = pool.clone();
    pool.spawn(move || {
        let _busy = busy_pool.busy();
        started.send(()).unwrap();
        let _ = wait.recv();
    });
    running.recv_timeout(Duration::from_secs(5)).unwrap();
    release
}

#[tokio::test]
async fn output_is_in_the_file_when_the_call_returns() {
    let pool = IoPool::new(4, Duration::from_secs(5));
    let tmp = tempfile::tempdir().unwrap();
    let cfg = RecorderConfig {
        record_input: true,
        ..RecorderConfig::default()
    };
    let rec = create(&pool, tmp.path(), "s1", cfg, Duration::from_secs(5))
        .await
        .unwrap();
    rec.output(Bytes::from_static(b"hello \xff")).await.unwrap();
    rec.input(Bytes::from_static(b"ls\r")).await.unwrap();
    rec.resize(100, 30).await.unwrap();
    rec.marker("run: ls").await.unwrap();
    // No tick, no finish: it is in the file already.
    let cast = read_cast(rec.path()).unwrap();
    assert_eq!(output_bytes(&cast), b"hello \xff");
    assert_eq!(input_bytes(&cast), b"ls\r");
    let kinds: Vec<EventKind> = cast.events.iter().map(|e| e.kind.clone()).collect();
    assert_eq!(
        kinds,
        [
            EventKind::Output,
            EventKind::Input,
            EventKind::Resize,
            EventKind::Marker
        ]
    );
    let Finishing::Done(Ok(summary)) = rec.finish().await else {
        panic!("not finished");
    };
    assert_eq!(summary.sha256, sha256_file(&summary.path).unwrap());
    assert_eq!(summary.bytes_out, 7);
}

#[tokio::test]
async fn input_is_not_sent_to_the_writer_unless_recorded() {
    let pool = IoPool::new(1, Duration::from_secs(5));
    let tmp = tempfile::tempdir().unwrap();
    let rec = create(
        &pool,
        tmp.path(),
        "s1",
        RecorderConfig::default(),
        Duration::from_millis(200),
    )
    .await
    .unwrap();
    // Even with the writer stuck, unrecorded input costs nothing and cannot stall.
    let release = occupy(&pool);
    rec.input(Bytes::from_static(b"secret")).await.unwrap();
    drop(release);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_directions_at_once_keep_every_event_in_order_of_submission() {
    let pool = IoPool::new(4, Duration::from_secs(5));
    let tmp = tempfile::tempdir().unwrap();
    let cfg = RecorderConfig {
        record_input: true,
        ..RecorderConfig::default()
    };
    let rec = Arc::new(
        create(&pool, tmp.path(), "s1", cfg, Duration::from_secs(5))
            .await
            .unwrap(),
    );
    let out = {
        let rec = Arc::clone(&rec);
        tokio::spawn(async move {
            for n in 0..500 {
                rec.output(Bytes::from(format!("o{n};"))).await.unwrap();
            }
        })
    };
    let inp = {
        let rec = Arc::clone(&rec);
        tokio::spawn(async move {
            for n in 0..500 {
                rec.input(Bytes::from(format!("i{n};"))).await.unwrap();
            }
        })
    };
    out.await.unwrap();
    inp.await.unwrap();
    let cast = read_cast(rec.path()).unwrap();
    let expected_out: String = (0..500).map(|n| format!("o{n};")).collect();
    let expected_in: String = (0..500).map(|n| format!("i{n};")).collect();
    assert_eq!(output_bytes(&cast), expected_out.as_bytes());
    assert_eq!(input_bytes(&cast), expected_in.as_bytes());
}

#[tokio::test]
async fn a_stuck_writer_is_reported_as_stalled_within_the_bound() {
    let pool = IoPool::new(1, Duration::from_secs(5));
    let tmp = tempfile::tempdir().unwrap();
    let stall = Duration::from_millis(300);
    let rec = create(&pool, tmp.path(), "s1", RecorderConfig::default(), stall)
        .await
        .unwrap();
    rec.output(Bytes::from_static(b"before ")).await.unwrap();
    let release = occupy(&pool);
    let started = Instant::now();
    let err = rec
        .output(Bytes::from_static(b"never shown"))
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, WriteError::Stalled(d) if d == stall), "{err}");
    assert!(waited >= stall && waited < stall * 4, "{waited:?}");
    assert!(err.to_string().contains("stalled"), "{err}");

    // Finishing does not wait past the bound either, and completes once the disk is back.
    let Finishing::Late(late) = rec.finish().await else {
        panic!("finish did not notice the stall");
    };
    drop(release);
    let summary = late.wait().await.unwrap();
    let cast = read_cast(&summary.path).unwrap();
    // What was queued is recorded once the writer is free again; it was never shown.
    assert_eq!(output_bytes(&cast), b"before never shown");
}

#[tokio::test]
async fn new_recordings_are_refused_at_once_while_a_write_is_stuck() {
    let pool = IoPool::new(2, Duration::from_secs(5));
    let tmp = tempfile::tempdir().unwrap();
    let stall = Duration::from_millis(200);
    let release = occupy(&pool);
    std::thread::sleep(stall);
    let started = Instant::now();
    let err = create(&pool, tmp.path(), "s2", RecorderConfig::default(), stall)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, CreateError::NotResponding(_)), "{err}");
    assert!(started.elapsed() < stall, "refused without waiting");
    assert!(err.to_string().contains("not responding"), "{err}");
    drop(release);
    // Once the stuck write is done, recordings are created again.
    let deadline = Instant::now() + Duration::from_secs(5);
    while pool.stalled_for().is_some() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    create(&pool, tmp.path(), "s3", RecorderConfig::default(), stall)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_create_that_does_not_complete_in_time_is_refused_and_leaves_no_file() {
    let pool = IoPool::new(1, Duration::from_secs(5));
    let tmp = tempfile::tempdir().unwrap();
    let stall = Duration::from_millis(200);
    // The only thread is taken, but not (yet) for longer than the bound.
    let (release, wait) = mpsc::channel::<()>();
    pool.spawn(move || {
        let _ = wait.recv();
    });
    let err = create(&pool, tmp.path(), "late", RecorderConfig::default(), stall)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, CreateError::Stalled(_)), "{err}");
    drop(release);
    // The create runs once a thread is free, sees nobody waiting, and removes its file.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let files: Vec<_> = walk(tmp.path());
        if files.is_empty() && tmp.path().join(day_dir()).exists() {
            break;
        }
        assert!(Instant::now() < deadline, "left {files:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn day_dir() -> String {
    Utc::now().format("%Y/%m/%d").to_string()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn at_the_size_limit_earlier_events_count_as_written_and_later_ones_fail() {
    let pool = IoPool::new(2, Duration::from_secs(5));
    let tmp = tempfile::tempdir().unwrap();
    let cfg = RecorderConfig {
        max_bytes: 600,
        ..RecorderConfig::default()
    };
    let rec = create(&pool, tmp.path(), "s1", cfg, Duration::from_secs(5))
        .await
        .unwrap();
    let mut accepted = Vec::new();
    let err = loop {
        match rec.output(Bytes::from_static(&[b'a'; 40])).await {
            Ok(()) => accepted.extend_from_slice(&[b'a'; 40]),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(err, WriteError::LimitReached { limit: 600 }),
        "{err}"
    );
    assert!(matches!(
        rec.marker("late").await,
        Err(WriteError::LimitReached { .. })
    ));
    let Finishing::Done(Ok(summary)) = rec.finish().await else {
        panic!("not finished");
    };
    assert!(summary.limit_reached);
    let cast = read_cast(&summary.path).unwrap();
    assert_eq!(output_bytes(&cast), accepted);
}

#[tokio::test]
async fn a_recording_dropped_without_finish_is_closed_on_the_pool_with_its_events() {
    let pool = IoPool::new(1, Duration::from_secs(5));
    let tmp = tempfile::tempdir().unwrap();
    let rec = create(
        &pool,
        tmp.path(),
        "s1",
        RecorderConfig::default(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let path = rec.path().to_owned();
    rec.note(Bytes::from_static(b"last words"));
    drop(rec);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if output_bytes(&read_cast(&path).unwrap()) == b"last words" {
            break;
        }
        assert!(Instant::now() < deadline, "never written");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_caller_that_does_not_wait_meets_the_queue_bound() {
    let pool = IoPool::new(1, Duration::from_secs(5));
    let tmp = tempfile::tempdir().unwrap();
    let rec = create(
        &pool,
        tmp.path(),
        "s1",
        RecorderConfig::default(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let release = occupy(&pool);
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let mut queued = 0;
    while rec.submit(Op::Output(chunk.clone()), chunk.len()).is_ok() {
        queued += chunk.len();
        assert!(queued <= MAX_QUEUED_BYTES);
    }
    assert_eq!(queued, MAX_QUEUED_BYTES);
    drop(release);
}

#[tokio::test]
async fn queued_output_is_confirmed_in_order_and_stalls_count_from_queueing() {
    let pool = IoPool::new(1, Duration::from_secs(5));
    let tmp = tempfile::tempdir().unwrap();
    let stall = Duration::from_millis(300);
    let rec = create(&pool, tmp.path(), "s1", RecorderConfig::default(), stall)
        .await
        .unwrap();
    let first = rec.queue_output(Bytes::from_static(b"one ")).unwrap();
    let second = rec.queue_output(Bytes::from_static(b"two")).unwrap();
    rec.wait_queued(&second).await.unwrap();
    assert!(rec.is_written(&first) && rec.is_written(&second));
    assert_eq!(output_bytes(&read_cast(rec.path()).unwrap()), b"one two");

    let release = occupy(&pool);
    let stuck = rec.queue_output(Bytes::from_static(b"three")).unwrap();
    assert!(!rec.is_written(&stuck));
    tokio::time::sleep(stall).await;
    // The bound ran out while nobody was waiting yet: the wait ends at once.
    let started = Instant::now();
    let err = rec.wait_queued(&stuck).await.unwrap_err();
    assert!(matches!(err, WriteError::Stalled(_)), "{err}");
    assert!(started.elapsed() < stall / 2, "{:?}", started.elapsed());
    drop(release);
}
