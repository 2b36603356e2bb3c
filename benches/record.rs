//! The recorder's cost per byte of session output: what recording adds to every byte a session
//! streams, for printable text and for binary output (NUL bytes), in 32 KiB chunks as the bridge
//! delivers them. The file is written to a temporary directory, so the figure includes the
//! encoding, the hash and the write.
//!
//! `record/text` and `record/zeros` call the encoder directly; `record/text, session path` and
//! `record/zeros, session path` go the way a session's output goes: from an async task through
//! the queue to a recording I/O thread, each chunk awaited until it is in the file (up to four
//! queued at once, as the bridge does).
//!
//! `cargo bench --bench record`

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gatehouse::recording::{CastHeader, IoPool, LiveRecording, Recorder, RecorderConfig};

const CHUNK: usize = 32 * 1024;
const CHUNKS: usize = 1024;

fn text_chunk() -> Vec<u8> {
    b"the quick brown fox 0123456789\n"
        .iter()
        .copied()
        .cycle()
        .take(CHUNK)
        .collect()
}

fn header() -> CastHeader {
    CastHeader {
        width: 80,
        height: 24,
        timestamp: 0,
        command: None,
        title: None,
        env: BTreeMap::new(),
    }
}

fn record(c: &mut Criterion, name: &str, chunk: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("record");
    group.throughput(Throughput::Bytes((chunk.len() * CHUNKS) as u64));
    group.measurement_time(Duration::from_secs(8));
    let mut n = 0u64;
    group.bench_function(name, |b| {
        b.iter(|| {
            n += 1;
            let mut recorder = Recorder::create(
                dir.path(),
                &format!("{name}-{n}"),
                Utc::now(),
                header(),
                RecorderConfig::default(),
            )
            .unwrap();
            for _ in 0..CHUNKS {
                recorder.output(chunk).unwrap();
            }
            let path = recorder.path().to_owned();
            drop(recorder);
            std::fs::remove_file(path).unwrap();
        })
    });
    group.finish();
}

/// The session's way: an async task hands each chunk to the I/O pool and waits until it is in
/// the file before it would send it on, with up to four chunks queued as the bridge has.
fn record_live(c: &mut Criterion, name: &str, chunk: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pool = IoPool::new(16, Duration::from_secs(10));
    let chunk = Bytes::copy_from_slice(chunk);
    let mut group = c.benchmark_group("record");
    group.throughput(Throughput::Bytes((chunk.len() * CHUNKS) as u64));
    group.measurement_time(Duration::from_secs(8));
    let mut n = 0u64;
    group.bench_function(format!("{name}, session path"), |b| {
        b.iter(|| {
            n += 1;
            runtime.block_on(async {
                let recording = LiveRecording::create(
                    &pool,
                    dir.path(),
                    &format!("{name}-live-{n}"),
                    Utc::now(),
                    header(),
                    RecorderConfig::default(),
                    Duration::from_secs(5),
                )
                .await
                .unwrap();
                // As the bridge does: up to four chunks queued, each shown once it is written.
                let mut queued = VecDeque::new();
                for _ in 0..CHUNKS {
                    if queued.len() == 4
                        && let Some(oldest) = queued.pop_front()
                    {
                        recording.wait_queued(&oldest).await.unwrap();
                    }
                    queued.push_back(recording.queue_output(chunk.clone()).unwrap());
                }
                for oldest in queued {
                    recording.wait_queued(&oldest).await.unwrap();
                }
                let path = recording.path().to_owned();
                drop(recording);
                std::fs::remove_file(path).unwrap();
            })
        })
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    record(c, "text", &text_chunk());
    record(c, "zeros", &vec![0u8; CHUNK]);
    record_live(c, "text", &text_chunk());
    record_live(c, "zeros", &vec![0u8; CHUNK]);
}

criterion_group!(benches, bench);
criterion_main!(benches);
