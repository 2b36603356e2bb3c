//! The recorder's cost per byte of session output: what recording adds to every byte a session
//! streams, for printable text and for binary output (NUL bytes), in 32 KiB chunks as the bridge
//! delivers them. The file is written to a temporary directory, so the figure includes the
//! encoding, the hash and the write.
//!
//! `cargo bench --bench record`

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gatehouse::recording::{CastHeader, Recorder, RecorderConfig};

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

fn record(c: &mut Criterion, name: &str, chunk: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("record");
    group.throughput(Throughput::Bytes((chunk.len() * CHUNKS) as u64));
    group.measurement_time(Duration::from_secs(8));
    let mut n = 0u64;
    group.bench_function(name, |b| {
        b.iter(|| {
            n += 1;
            let header = CastHeader {
                width: 80,
                height: 24,
                timestamp: 0,
                command: None,
                title: None,
                env: BTreeMap::new(),
            };
            let mut recorder = Recorder::create(
                dir.path(),
                &format!("{name}-{n}"),
                Utc::now(),
                header,
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

fn bench(c: &mut Criterion) {
    record(c, "text", &text_chunk());
    record(c, "zeros", &vec![0u8; CHUNK]);
}

criterion_group!(benches, bench);
criterion_main!(benches);
