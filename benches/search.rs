//! Search over a generated corpus of real recordings (written by Gatehouse's own recorder:
//! shell prompts, commands, logs, listings, a little repetition as terminals have), indexed by
//! the same code as `gatehouse sessions reindex`, then queried with rare, common and short
//! needles. Prints the corpus and index sizes, the indexing CPU-seconds per GiB and each
//! query's time.
//!
//! `CORPUS_GIB` sets the corpus size (default 0.05; `CORPUS_GIB=10` for the full figure);
//! `CORPUS_KIND=yes` makes every session the text workload of `bench/run.sh` instead (`yes`
//! of one line, in 32 KiB reads), to measure what indexing costs on that path;
//! `CORPUS_DIR` where it is written (default: a temporary directory, removed at the end). It
//! refuses to start when the disk has less than three times the corpus free.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse::recording::{CastHeader, Recorder, RecorderConfig};
use gatehouse::store::sessions::SessionRecord;

const RARE: &str = "ZEBRA-7731-unique";

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

fn free_bytes(dir: &Path) -> u64 {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs writes into the struct given.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return 0;
    }
    stat.f_bavail as u64 * stat.f_frsize as u64
}

#[path = "support/rng.rs"]
mod rng;
use rng::Rng;

const COMMANDS: &[&str] = &[
    "ls -la /var/log",
    "tail -n 50 /var/log/syslog",
    "systemctl status nginx",
    "df -h",
    "ps aux --sort=-%mem | head",
    "journalctl -u sshd --since today",
    "grep -r error /etc/nginx",
    "cat /proc/meminfo",
    "kubectl get pods -A",
    "git log --oneline -20",
];
const SERVICES: &[&str] = &[
    "nginx", "sshd", "postgres", "kubelet", "cron", "dockerd", "systemd",
];
const LEVELS: &[&str] = &["INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG"];
const WORDS: &[&str] = &[
    "connection",
    "accepted",
    "from",
    "closed",
    "timeout",
    "request",
    "upstream",
    "worker",
    "started",
    "stopped",
    "failed",
    "retrying",
    "session",
    "opened",
    "for",
    "user",
    "root",
    "disk",
    "usage",
    "cache",
    "miss",
    "hit",
    "query",
    "took",
    "ms",
    "GET",
    "POST",
    "/api/v1/items",
];

/// `yes 'the quick brown fox 0123456789'` read 32 KiB at a time, about `bytes` long.
fn yes_text(bytes: usize) -> Vec<(bool, String)> {
    let stream = "the quick brown fox 0123456789\n".repeat(bytes / 31 + 1);
    stream
        .as_bytes()
        .chunks(32 * 1024)
        .map(|c| (false, String::from_utf8_lossy(c).into_owned()))
        .collect()
}

/// One session's worth of terminal output, about `bytes` long, with its typed commands.
fn session_text(rng: &mut Rng, bytes: usize, rare: bool) -> Vec<(bool, String)> {
    let mut events = Vec::new();
    let mut size = 0;
    let host = format!("web-{:02}", rng.below(40));
    while size < bytes {
        let command = rng.pick(COMMANDS).to_owned();
        let prompt = format!("\x1b[32mroot@{host}\x1b[0m:\x1b[34m~\x1b[0m# ");
        events.push((false, prompt.clone()));
        events.push((true, format!("{command}\r")));
        let mut out = format!("{command}\r\n");
        for _ in 0..(20 + rng.below(200)) {
            let line = match rng.below(3) {
                0 => format!(
                    "2026-03-{:02}T{:02}:{:02}:{:02}Z {} {}[{}]: {} {} {} {}\r\n",
                    1 + rng.below(28),
                    rng.below(24),
                    rng.below(60),
                    rng.below(60),
                    rng.pick(LEVELS),
                    rng.pick(SERVICES),
                    rng.below(65536),
                    rng.pick(WORDS),
                    rng.pick(WORDS),
                    rng.pick(WORDS),
                    rng.below(100_000)
                ),
                1 => format!(
                    "-rw-r--r-- 1 root root {:>9} Mar {:>2} {:02}:{:02} file-{:x}.log\r\n",
                    rng.below(10_000_000),
                    1 + rng.below(28),
                    rng.below(24),
                    rng.below(60),
                    rng.next() & 0xffff_ffff
                ),
                // Repeated lines, as terminals have them (progress, `watch`, `yes`).
                _ => "waiting for the lock on /var/lib/dpkg/lock-frontend ...\r\n".to_owned(),
            };
            out.push_str(&line);
        }
        size += out.len() + prompt.len();
        events.push((false, out));
    }
    if rare {
        events.push((false, format!("secret token {RARE} printed once\r\n")));
    }
    events
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let gib: f64 = std::env::var("CORPUS_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.05);
    let total = (gib * (1u64 << 30) as f64) as u64;
    let keep = std::env::var_os("CORPUS_DIR");
    let tmp = tempfile::tempdir_in(keep.clone().unwrap_or_else(|| std::env::temp_dir().into()))
        .expect("a directory for the corpus");
    let dir = tmp.path();
    let free = free_bytes(dir);
    assert!(
        free > total * 3,
        "{:.1} GiB free under {}, less than three times the corpus ({gib} GiB): set CORPUS_DIR",
        free as f64 / (1u64 << 30) as f64,
        dir.display()
    );
    let session_bytes = (total / 64).clamp(1 << 20, 32 << 20) as usize;
    let sessions = (total as usize).div_ceil(session_bytes);
    println!(
        "corpus: {sessions} sessions of about {} MiB ({gib} GiB)",
        session_bytes >> 20
    );
    let recordings = dir.join("recordings");
    std::fs::create_dir_all(&recordings).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let started = Instant::now();
    let mut records = Vec::new();
    let mut recorded_bytes = 0u64;
    for i in 0..sessions {
        let id = format!("0192f000-0000-7000-8000-{i:012}");
        let mut recorder = Recorder::create(
            &recordings,
            &id,
            chrono::Utc::now(),
            CastHeader::default(),
            RecorderConfig {
                record_input: true,
                max_bytes: u64::MAX / 2,
                ..RecorderConfig::default()
            },
        )
        .unwrap();
        let events = if std::env::var("CORPUS_KIND").as_deref() == Ok("yes") {
            yes_text(session_bytes)
        } else {
            session_text(&mut rng, session_bytes, i == sessions / 2)
        };
        for (input, text) in events {
            if input {
                recorder.input(text.as_bytes()).unwrap();
            } else {
                recorder.output(text.as_bytes()).unwrap();
            }
        }
        let summary = recorder.finish().unwrap();
        recorded_bytes += summary.file_bytes;
        records.push(SessionRecord {
            id,
            node: String::new(),
            user: "alice".into(),
            target: "web-01".into(),
            role: "ops".into(),
            grant_id: 1,
            kind: "shell".into(),
            command: None,
            break_glass: false,
            started_at: 0,
            ended_at: Some(1),
            bytes_in: None,
            bytes_out: None,
            exit_status: None,
            end_reason: None,
            recording: Some(summary.path.display().to_string()),
            sha256: None,
        });
    }
    println!(
        "generated {:.2} GiB of recordings in {:.1} s",
        recorded_bytes as f64 / (1u64 << 30) as f64,
        started.elapsed().as_secs_f64()
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = runtime
        .block_on(gatehouse::store::open(&format!(
            "sqlite://{}",
            dir.join("data/gatehouse.db").display()
        )))
        .unwrap();
    let store: Arc<dyn gatehouse::store::Backend> = store;
    let (cpu, wall) = (cpu_seconds(), Instant::now());
    let mut builder = gatehouse::search::segment::SegmentBuilder::default();
    for s in &records {
        let path = s.recording.as_deref().unwrap();
        runtime
            .block_on(gatehouse::search::reindex::rebuild(
                &store,
                &s.id,
                Path::new(path),
                &mut builder,
            ))
            .unwrap();
    }
    runtime
        .block_on(gatehouse::search::segment::seal(&store, &mut builder))
        .unwrap();
    let cpu = cpu_seconds() - cpu;
    let segments = runtime.block_on(store.index_segments()).unwrap();
    println!(
        "{} segments: {:?} MiB of text",
        segments.len(),
        segments
            .iter()
            .map(|s| s.text_bytes >> 20)
            .collect::<Vec<_>>()
    );
    let gib_recorded = recorded_bytes as f64 / (1u64 << 30) as f64;
    let index_bytes = runtime.block_on(store.index_bytes()).unwrap();
    println!(
        "indexed in {:.1} s wall, {:.1} CPU-s ({:.1} CPU-s per GiB of recording); index {:.2} GiB ({:.0}% of the recordings)",
        wall.elapsed().as_secs_f64(),
        cpu,
        cpu / gib_recorded,
        index_bytes as f64 / (1u64 << 30) as f64,
        100.0 * index_bytes as f64 / recorded_bytes as f64
    );
    for needle in [
        RARE,
        "systemctl status nginx",
        "ERROR kubelet",
        "root@web-07",
        "error",
        "42",
    ] {
        let mut best = Duration::MAX;
        let mut found = 0;
        for _ in 0..3 {
            let t = Instant::now();
            let hits = runtime
                .block_on(gatehouse::search::search(&store, needle, &records))
                .unwrap();
            best = best.min(t.elapsed());
            found = hits.len();
        }
        println!(
            "query {needle:?}: {found} of {} sessions in {:.1} ms (best of 3)",
            records.len(),
            best.as_secs_f64() * 1000.0
        );
    }
    drop(store);
    if keep.is_none() {
        drop(tmp);
    } else {
        println!("corpus kept in {}", tmp.keep().display());
    }
}
