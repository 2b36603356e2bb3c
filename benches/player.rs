//! The web console player's costs on a large recording: reading it once into a screen index,
//! the first frame, seeking to the middle with the index cached and cold, and the live view.
//!
//! The recording is generated in a temporary directory: shell prompts and typed commands,
//! coloured `ls` listings, compiler-style output with Unicode, log lines, screen clears and a
//! full-screen program redrawing the alternate screen, in pty-sized chunks, with restricted
//! shell markers. Its size is `PLAYER_BENCH_MIB` MiB (default 1024); `PLAYER_BENCH_KEYFRAME_KIB`
//! overrides the keyframe interval to compare densities.
//!
//! The one-off costs (generating, building the index, the cold seek) take seconds each, so they
//! are timed once and printed; the rest are criterion measurements on the cached index.
//!
//! `cargo bench --bench player`

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse::recording::screen::{IndexOptions, ScreenIndex, Screens};

#[path = "support/rng.rs"]
mod rng;
use rng::Rng;

const WORDS: &[&str] = &[
    "deploy",
    "config",
    "server",
    "gatehouse",
    "session",
    "index",
    "README.md",
    "Cargo.toml",
    "src",
    "target",
    "build.rs",
    "main.rs",
    "lib.rs",
    "tests",
    "données",
    "日本語",
    "naïve",
    "warning",
    "error",
    "ok",
    "✓",
    "→",
    "backup-2024.tar.gz",
    "node_modules",
    ".ssh",
];
const COLOURS: &[&str] = &[
    "\x1b[0m",
    "\x1b[1;34m",
    "\x1b[0;32m",
    "\x1b[1;31m",
    "\x1b[38;5;208m",
    "\x1b[38;2;90;160;250m",
    "\x1b[7m",
    "\x1b[4;33m",
    "\x1b[2m",
    "\x1b[3m",
];

/// Writes recordings event by event, as the recorder would, splitting output into pty reads.
struct CastWriter {
    out: BufWriter<File>,
    time: f64,
    written: u64,
}

impl CastWriter {
    fn event(&mut self, gap: f64, code: &str, data: &str) {
        self.time += gap;
        let line = serde_json::to_string(&(self.time, code, data)).unwrap();
        self.out.write_all(line.as_bytes()).unwrap();
        self.out.write_all(b"\n").unwrap();
        self.written += line.len() as u64 + 1;
    }

    fn output(&mut self, rng: &mut Rng, text: &str) {
        let mut rest = text;
        while !rest.is_empty() {
            let mut cut = rest.len().min(512 + rng.below(3584) as usize);
            while !rest.is_char_boundary(cut) {
                cut += 1;
            }
            self.event(0.001 + rng.below(20) as f64 / 1000.0, "o", &rest[..cut]);
            rest = &rest[cut..];
        }
    }
}

fn generate(path: &Path, target: u64) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let header = "{\"version\": 2, \"width\": 120, \"height\": 40, \"timestamp\": 1700000000, \
                  \"title\": \"alice@web-01 [web-ops]\", \"env\": {\"TERM\": \"xterm-256color\"}}\n";
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).unwrap());
    out.write_all(header.as_bytes()).unwrap();
    let mut w = CastWriter {
        out,
        time: 0.0,
        written: header.len() as u64,
    };
    let mut text = String::new();
    while w.written < target {
        let prompt = "\x1b[1;32malice@web-01\x1b[0m:\x1b[1;34m~/src\x1b[0m$ ";
        w.output(&mut rng, prompt);
        let command = format!(
            "{} {}",
            rng.pick(&["ls -l", "cargo build", "tail", "top", "clear"]),
            rng.pick(WORDS)
        );
        for ch in command.chars() {
            w.event(0.05 + rng.below(200) as f64 / 1000.0, "i", &ch.to_string());
            w.event(0.002, "o", &ch.to_string());
        }
        w.event(0.1, "o", "\r\n");
        w.event(0.0, "m", &format!("run: {command}"));
        text.clear();
        match command.split(' ').next().unwrap_or("") {
            "ls" => {
                for _ in 0..20 + rng.below(200) {
                    text.push_str(&format!(
                        "-rw-r--r-- 1 alice staff {:>8} Nov {:>2} 12:{:02} {}{}\x1b[0m\r\n",
                        rng.below(1 << 20),
                        1 + rng.below(30),
                        rng.below(60),
                        rng.pick(COLOURS),
                        rng.pick(WORDS)
                    ));
                }
            }
            "cargo" => {
                for _ in 0..50 + rng.below(400) {
                    let word = rng.pick(WORDS);
                    text.push_str(&format!(
                        "\x1b[1;32m   Compiling\x1b[0m {word} v0.{}.{} ({}/{word})\r\n",
                        rng.below(20),
                        rng.below(10),
                        rng.pick(WORDS)
                    ));
                    if rng.below(8) == 0 {
                        text.push_str(&format!(
                            "\x1b[1;33mwarning\x1b[0m\x1b[1m: unused variable: `{word}`\x1b[0m\r\n  \x1b[1;34m-->\x1b[0m src/{word}.rs:{}:{}\r\n",
                            rng.below(900),
                            rng.below(80)
                        ));
                    }
                }
            }
            "tail" => {
                for i in 0..100 + rng.below(2000) {
                    text.push_str(&format!(
                        "2024-11-{:02}T12:{:02}:{:02}Z {} request {i} from 10.0.{}.{} took {}ms {}\r\n",
                        1 + rng.below(28),
                        rng.below(60),
                        rng.below(60),
                        rng.pick(&["INFO", "WARN", "\x1b[31mERROR\x1b[0m", "DEBUG"]),
                        rng.below(256),
                        rng.below(256),
                        rng.below(5000),
                        rng.pick(WORDS)
                    ));
                }
            }
            "top" => {
                text.push_str("\x1b[?1049h\x1b[?25l");
                for _ in 0..5 + rng.below(40) {
                    text.push_str("\x1b[H\x1b[7m  PID USER      %CPU %MEM COMMAND                 \x1b[0m\x1b[K\r\n");
                    for row in 1..39 {
                        text.push_str(&format!(
                            "\x1b[{};1H{:>5} {:<8} {}{:>5}.{}\x1b[0m {:>4} {}\x1b[K",
                            row + 1,
                            rng.below(99999),
                            rng.pick(&["alice", "root", "www"]),
                            rng.pick(COLOURS),
                            rng.below(100),
                            rng.below(10),
                            rng.below(100),
                            rng.pick(WORDS)
                        ));
                    }
                }
                text.push_str("\x1b[?25h\x1b[?1049l");
            }
            _ => text.push_str("\x1b[H\x1b[2J"),
        }
        let pause = 0.5 + rng.below(5000) as f64 / 1000.0;
        w.event(pause, "o", "");
        let text = std::mem::take(&mut text);
        w.output(&mut rng, &text);
    }
    w.out.flush().unwrap();
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn bench(c: &mut Criterion) {
    let mib = env_number("PLAYER_BENCH_MIB", 1024);
    let mut options = IndexOptions::default();
    if let Ok(kib) = std::env::var("PLAYER_BENCH_KEYFRAME_KIB") {
        options.keyframe_bytes = kib.parse::<u64>().expect("PLAYER_BENCH_KEYFRAME_KIB") << 10;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.cast");
    let started = Instant::now();
    generate(&path, mib << 20);
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "generated {:.0} MiB recording in {:.1?}",
        size as f64 / f64::from(1 << 20),
        started.elapsed()
    );

    let started = Instant::now();
    let index = ScreenIndex::build_with(&path, options).unwrap();
    let built = started.elapsed();
    let duration = index.timeline().duration;
    println!(
        "index build: {built:.2?} ({:.0} MiB/s); {} keyframes, {} KiB of dumps; duration {:.0} s, {} marks",
        size as f64 / f64::from(1 << 20) / built.as_secs_f64(),
        index.keyframe_count(),
        index.keyframe_bytes() / 1024,
        duration,
        index.timeline().marks.len() as u64 + index.marks_dropped(),
    );
    let middle = duration / 2.0;

    let started = Instant::now();
    let cold = Screens::with_options(4, options);
    cold.frame_at(&path, middle).unwrap();
    println!(
        "seek to middle, cold index (build + seek): {:.2?}",
        started.elapsed()
    );

    let screens = Screens::with_options(4, options);
    screens.timeline(&path).unwrap();
    let mut group = c.benchmark_group("player");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("first frame, cached index", |b| {
        b.iter(|| screens.frame_at(&path, 0.0).unwrap())
    });
    group.bench_function("seek to middle, cached index", |b| {
        b.iter(|| screens.frame_at(&path, middle).unwrap())
    });
    let mut i = 0u64;
    group.bench_function("seek anywhere, cached index", |b| {
        b.iter(|| {
            // A spread of times that fall anywhere between keyframes.
            i = (i + 7919) % 10_007;
            screens
                .frame_at(&path, duration * i as f64 / 10_007.0)
                .unwrap()
        })
    });
    group.bench_function("latest, cached index", |b| {
        b.iter(|| screens.latest(&path).unwrap())
    });
    group.bench_function("frame to JSON", |b| {
        let frame = screens.frame_at(&path, middle).unwrap();
        b.iter(|| serde_json::to_vec(&frame).unwrap())
    });
    group.finish();
    keyframe_costs(c);
}

/// What a keyframe costs, to choose between dumps and replay: the dump of a busy 120×40 screen,
/// and recreating a terminal from it.
fn keyframe_costs(c: &mut Criterion) {
    let mut terminal = avt::Terminal::new(120, 40).unwrap();
    let mut rng = Rng(7);
    for row in 0..40 {
        terminal.feed(format!(
            "\x1b[{};1H{}{} {}\x1b[0m {}",
            row + 1,
            rng.pick(COLOURS),
            rng.pick(WORDS),
            rng.pick(WORDS),
            "x".repeat(rng.below(100) as usize)
        ));
    }
    let dump = terminal.dump();
    println!("dump of a busy 120x40 screen: {} bytes", dump.len());
    let mut group = c.benchmark_group("keyframe");
    group.bench_function("dump 120x40", |b| b.iter(|| terminal.dump()));
    group.bench_function("restore 120x40", |b| {
        b.iter(|| {
            let mut restored = avt::Terminal::new(120, 40).unwrap();
            restored.feed(dump.as_str());
            restored
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
