//! Tests of the recording writer.

use super::super::cast::{EventKind, output_bytes, parse_cast, read_cast};
use super::super::files::{DIR_MODE, FILE_MODE, sha256_file};
use super::*;
use chrono::TimeZone;
use std::os::unix::fs::MetadataExt;

fn header() -> CastHeader {
    CastHeader {
        width: 120,
        height: 40,
        timestamp: 1_700_000_000,
        command: Some("uptime".to_owned()),
        title: Some("alice@web-01 [web-ops] grant 17".to_owned()),
        env: BTreeMap::from([
            ("TERM".to_owned(), "xterm-256color".to_owned()),
            ("SHELL".to_owned(), "/bin/bash".to_owned()),
        ]),
    }
}

fn started() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 7, 12, 0, 0).unwrap()
}

fn create(dir: &Path, cfg: RecorderConfig) -> Recorder {
    Recorder::create(dir, "sess-1", started(), header(), cfg).unwrap()
}

#[test]
fn creates_dated_path_with_modes_and_header() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = create(tmp.path(), RecorderConfig::default());
    let expected = tmp.path().join("2024/03/07/sess-1.cast");
    assert_eq!(rec.path(), expected);
    for dir in ["2024", "2024/03", "2024/03/07"] {
        let mode = std::fs::metadata(tmp.path().join(dir)).unwrap().mode();
        assert_eq!(mode & 0o777, DIR_MODE, "{dir}");
    }
    assert_eq!(
        std::fs::metadata(&expected).unwrap().mode() & 0o777,
        FILE_MODE
    );
    // The header is on disk immediately.
    let text = std::fs::read_to_string(&expected).unwrap();
    assert!(text.ends_with('\n'));
    let json: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
    assert_eq!(json["version"], 2);
    assert_eq!(json["width"], 120);
    assert_eq!(json["height"], 40);
    assert_eq!(json["timestamp"], 1_700_000_000);
    assert_eq!(json["command"], "uptime");
    assert_eq!(json["title"], "alice@web-01 [web-ops] grant 17");
    assert_eq!(json["env"]["TERM"], "xterm-256color");
    assert_eq!(json["env"]["SHELL"], "/bin/bash");
    drop(rec);
}

#[test]
fn header_omits_absent_command_and_title() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = header();
    h.command = None;
    h.title = None;
    h.env.clear();
    let rec = Recorder::create(tmp.path(), "s", started(), h, RecorderConfig::default()).unwrap();
    let text = std::fs::read_to_string(rec.path()).unwrap();
    let json: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
    assert!(json.get("command").is_none() && json.get("title").is_none());
    assert_eq!(json["env"], serde_json::json!({}));
}

#[test]
fn never_overwrites_and_rejects_unsafe_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let first = create(tmp.path(), RecorderConfig::default());
    let again = Recorder::create(
        tmp.path(),
        "sess-1",
        started(),
        header(),
        RecorderConfig::default(),
    );
    assert!(matches!(again, Err(RecordingError::Io { .. })));
    for bad in ["", "../x", "a/b", ".hidden", "a\0b", "é"] {
        let result = Recorder::create(
            tmp.path(),
            bad,
            started(),
            header(),
            RecorderConfig::default(),
        );
        assert!(
            matches!(result, Err(RecordingError::InvalidSessionId(_))),
            "{bad:?}"
        );
    }
    drop(first);
}

#[test]
fn missing_base_directory_is_an_error_with_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("absent");
    let err =
        Recorder::create(&base, "s", started(), header(), RecorderConfig::default()).unwrap_err();
    assert!(err.to_string().contains("absent"), "{err}");
}

#[test]
fn data_is_buffered_until_due_then_flushed_by_tick() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rec = create(tmp.path(), RecorderConfig::default());
    let t0 = rec.started;
    rec.output_at(b"hello ", t0 + Duration::from_millis(100))
        .unwrap();
    rec.output_at(b"world", t0 + Duration::from_millis(200))
        .unwrap();
    assert_eq!(rec.flush_deadline(), Some(t0 + Duration::from_millis(600)));
    rec.tick_at(t0 + Duration::from_millis(599)).unwrap();
    let on_disk = read_cast(rec.path()).unwrap();
    assert!(on_disk.events.is_empty(), "still buffered before due");
    rec.tick_at(t0 + Duration::from_millis(600)).unwrap();
    let on_disk = read_cast(rec.path()).unwrap();
    assert!(!on_disk.truncated);
    assert_eq!(output_bytes(&on_disk), b"hello world");
    assert_eq!(on_disk.events[0].time, 0.1);
    assert_eq!(on_disk.events[1].time, 0.2);
    assert_eq!(rec.flush_deadline(), None);
}

#[test]
fn continuous_output_flushes_without_tick() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rec = create(tmp.path(), RecorderConfig::default());
    let t0 = rec.started;
    for ms in (0..=600).step_by(100) {
        rec.output_at(b"x", t0 + Duration::from_millis(ms)).unwrap();
    }
    let on_disk = read_cast(rec.path()).unwrap();
    assert_eq!(output_bytes(&on_disk), b"xxxxxx");
}

#[test]
fn large_output_flushes_at_high_water() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rec = create(tmp.path(), RecorderConfig::default());
    let t0 = rec.started;
    // Each 0x01 is written as `\u0001`, so a quarter of the high water mark passes it.
    rec.output_at(&[1u8; HIGH_WATER / 4], t0).unwrap();
    let on_disk = read_cast(rec.path()).unwrap();
    assert_eq!(output_bytes(&on_disk), vec![1u8; HIGH_WATER / 4]);
}

#[test]
fn crash_leaves_a_valid_file_up_to_the_last_flush() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rec = create(tmp.path(), RecorderConfig::default());
    let path = rec.path().to_owned();
    let t0 = rec.started;
    rec.output_at("flushed €".as_bytes(), t0).unwrap();
    rec.resize_at(100, 30, t0).unwrap();
    rec.tick_at(t0 + Duration::from_secs(1)).unwrap();
    rec.output_at(b"lost in the crash", t0 + Duration::from_millis(1100))
        .unwrap();
    // A crash: no finish, no Drop.
    std::mem::forget(rec);
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.ends_with(b"\n"));
    let cast = parse_cast(&bytes).unwrap();
    assert!(!cast.truncated);
    assert_eq!(output_bytes(&cast), "flushed €".as_bytes());
    assert_eq!(cast.events[1].kind, EventKind::Resize);
    assert_eq!(cast.events[1].data, "100x30");
}

const CRASH_CHILD_ENV: &str = "GATEHOUSE_RECORDING_CRASH_CHILD";

/// Runs a recorder in a child process (this test binary again), kills it
/// with SIGKILL mid-stream and checks what is on disk.
#[test]
fn killed_process_leaves_a_playable_file() {
    if let Some(dir) = std::env::var_os(CRASH_CHILD_ENV) {
        crash_child(Path::new(&dir));
    }
    let tmp = tempfile::tempdir().unwrap();
    let module = module_path!();
    let test_name = format!(
        "{}::killed_process_leaves_a_playable_file",
        &module[module.find("::").map_or(0, |i| i + 2)..]
    );
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &test_name, "--nocapture", "--test-threads=1"])
        .env(CRASH_CHILD_ENV, tmp.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let path = tmp.path().join("2024/01/02/crash.cast");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lines = std::fs::read(&path).map_or(0, |b| b.split(|&c| c == b'\n').count());
        if lines > 3 {
            break;
        }
        assert!(Instant::now() < deadline, "child recorded nothing");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let cast = read_cast(&path).unwrap();
    let expected: String = (0..)
        .map(|n| format!("line {n}\r\n"))
        .take(100_000)
        .collect();
    let recorded = String::from_utf8(output_bytes(&cast)).unwrap();
    assert!(recorded.len() > 10);
    assert!(
        expected.starts_with(&recorded),
        "not a prefix of the stream"
    );
}

fn crash_child(dir: &Path) -> ! {
    let started = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
    let cfg = RecorderConfig {
        flush_interval: Duration::from_millis(100),
        ..RecorderConfig::default()
    };
    let mut rec = Recorder::create(dir, "crash", started, header(), cfg).unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    while Instant::now() < until {
        rec.output(format!("line {n}\r\n").as_bytes()).unwrap();
        rec.tick().unwrap();
        n += 1;
        std::thread::sleep(Duration::from_micros(200));
    }
    std::process::exit(1);
}

#[test]
fn drop_without_finish_flushes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rec = create(tmp.path(), RecorderConfig::default());
    let path = rec.path().to_owned();
    rec.output(b"kept").unwrap();
    drop(rec);
    assert_eq!(output_bytes(&read_cast(&path).unwrap()), b"kept");
}

#[test]
fn finish_returns_hash_and_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = RecorderConfig {
        record_input: true,
        ..RecorderConfig::default()
    };
    let mut rec = create(tmp.path(), cfg);
    rec.output(b"$ ").unwrap();
    rec.input(b"ls\r").unwrap();
    rec.output(b"ls\r\nfile\r\n").unwrap();
    rec.marker("command: ls").unwrap();
    let summary = rec.finish().unwrap();
    assert_eq!(summary.bytes_out, 12);
    assert_eq!(summary.bytes_in, 3);
    assert!(!summary.limit_reached);
    assert_eq!(
        summary.file_bytes,
        std::fs::metadata(&summary.path).unwrap().len()
    );
    assert_eq!(summary.sha256, sha256_file(&summary.path).unwrap());
    assert_eq!(summary.sha256.len(), 64);
    let cast = read_cast(&summary.path).unwrap();
    let codes: Vec<&str> = cast.events.iter().map(|e| e.kind.code()).collect();
    assert_eq!(codes, ["o", "i", "o", "m"]);
    assert_eq!(cast.events[3].data, "command: ls");
}

#[test]
fn input_is_ignored_unless_enabled() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rec = create(tmp.path(), RecorderConfig::default());
    rec.input(b"secret").unwrap();
    let summary = rec.finish().unwrap();
    assert_eq!(summary.bytes_in, 0);
    assert!(read_cast(&summary.path).unwrap().events.is_empty());
}

#[test]
fn split_and_invalid_utf8_is_recorded_losslessly() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rec = create(tmp.path(), RecorderConfig::default());
    let mut original = Vec::new();
    let chunks: [&[u8]; 6] = [
        b"emoji \xf0\x9f",
        b"\x98\x80 euro \xe2",
        b"\x82\xac bad \xff\xfe",
        "genuine \u{FFFD} ".as_bytes(),
        b"\x00\x1b[31mred\x1b[0m",
        b" cut \xe2\x82",
    ];
    for chunk in chunks {
        rec.output(chunk).unwrap();
        original.extend_from_slice(chunk);
    }
    let summary = rec.finish().unwrap();
    let cast = read_cast(&summary.path).unwrap();
    assert_eq!(output_bytes(&cast), original);
    let shown: String = cast.events.iter().map(|e| e.data.as_str()).collect();
    assert!(shown.starts_with("emoji 😀 euro € bad \u{FFFD}\u{FFFD}"));
    assert!(shown.ends_with(" cut \u{FFFD}\u{FFFD}"));
    assert_eq!(summary.bytes_out, original.len() as u64);
}

#[test]
fn size_limit_stops_recording_with_a_marker() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = RecorderConfig {
        max_bytes: 600,
        ..RecorderConfig::default()
    };
    let mut rec = create(tmp.path(), cfg);
    let mut accepted = 0;
    let err = loop {
        match rec.output(&[b'a'; 40]) {
            Ok(()) => accepted += 1,
            Err(err) => break err,
        }
    };
    assert!(matches!(err, RecordingError::LimitReached { limit: 600 }));
    assert!(accepted > 0);
    // Further events keep failing; finish still works.
    assert!(matches!(
        rec.marker("late"),
        Err(RecordingError::LimitReached { .. })
    ));
    rec.tick().unwrap();
    let summary = rec.finish().unwrap();
    assert!(summary.limit_reached);
    assert!(summary.file_bytes <= 600, "{}", summary.file_bytes);
    let cast = read_cast(&summary.path).unwrap();
    let last = cast.events.last().unwrap();
    assert_eq!(last.kind, EventKind::Marker);
    assert_eq!(last.data, LIMIT_MARKER_LABEL);
    assert_eq!(output_bytes(&cast).len(), accepted * 40);
    assert_eq!(summary.bytes_out, accepted as u64 * 40);
}

#[test]
fn write_errors_fail_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rec = create(tmp.path(), RecorderConfig::default());
    // Replace the file handle with a read-only one so writes fail.
    rec.file = File::open(rec.path()).unwrap();
    rec.output(b"x").unwrap();
    let err = rec
        .tick_at(Instant::now() + Duration::from_secs(5))
        .unwrap_err();
    assert!(matches!(err, RecordingError::Io { .. }), "{err}");
    assert!(matches!(
        rec.output(b"y"),
        Err(RecordingError::Failed { .. })
    ));
    assert!(matches!(rec.tick(), Err(RecordingError::Failed { .. })));
    assert!(matches!(rec.finish(), Err(RecordingError::Failed { .. })));
}

/// Plays a recording with every Gatehouse feature through the reference
/// asciinema implementation (`pip install asciinema==2.4.0`), if present.
#[test]
fn reference_asciinema_plays_the_file() {
    let available = std::process::Command::new("python3")
        .args(["-c", "import asciinema"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !available {
        println!("note: python asciinema package not installed; skipping compatibility check");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cfg = RecorderConfig {
        record_input: true,
        ..RecorderConfig::default()
    };
    let mut rec = create(tmp.path(), cfg);
    rec.output(b"\x1b[1;31mbold red\x1b[0m \"quoted\" \\ tab\t\r\n")
        .unwrap();
    rec.output(b"split \xe2\x82").unwrap();
    rec.input(b"ls\r").unwrap();
    rec.output(b"\xac and bad \xff\xc3( nul \x00 c1 \xc2\x9b end\r\n")
        .unwrap();
    rec.resize(100, 30).unwrap();
    rec.marker("denied: rm -rf /").unwrap();
    rec.output("genuine \u{FFFD} 😀\r\n".as_bytes()).unwrap();
    let summary = rec.finish().unwrap();
    let cast = read_cast(&summary.path).unwrap();
    let shown: String = cast
        .events
        .iter()
        .filter(|event| event.kind == EventKind::Output)
        .map(|event| event.data.as_str())
        .collect();
    let path = summary.path.to_str().unwrap();
    for args in [
        &["cat", path][..],
        &["play", "-s", "1000", path][..],
        &["play", "-s", "1000", "-i", "0.1", path][..],
    ] {
        let result = std::process::Command::new("python3")
            .args(["-m", "asciinema"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            result.status.success(),
            "asciinema {args:?}: {}",
            String::from_utf8_lossy(&result.stderr)
        );
        assert_eq!(String::from_utf8(result.stdout).unwrap(), shown, "{args:?}");
    }
}

#[test]
fn bytes_held_back_as_incomplete_characters_are_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rec = create(tmp.path(), RecorderConfig::default());
    for chunk in [&b"\xe2"[..], b"\x82\0\0", b"\xac", b"\xe2\x82"] {
        rec.output(chunk).unwrap();
    }
    let summary = rec.finish().unwrap();
    assert_eq!(summary.bytes_out, 7);
    let cast = read_cast(&summary.path).unwrap();
    assert_eq!(output_bytes(&cast), b"\xe2\x82\0\0\xac\xe2\x82");
}

#[test]
fn binary_heavy_output_stays_compact() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rec = create(tmp.path(), RecorderConfig::default());
    // More than one event's worth in one call, then NULs among invalid bytes and a
    // genuine U+FFFD.
    let mut shown = vec![0u8; 3 * MAX_NULS_PER_EVENT + 5];
    rec.output(&shown).unwrap();
    let mixed = b"a\0\0\xff\0\xef\xbf\xbd\0b\xfe\0";
    rec.output(mixed).unwrap();
    shown.extend_from_slice(mixed);
    let summary = rec.finish().unwrap();
    assert!(summary.file_bytes < 1024, "{} bytes", summary.file_bytes);
    let cast = read_cast(&summary.path).unwrap();
    assert_eq!(output_bytes(&cast), shown);
    // Players see what a terminal shows: NUL is not there, invalid bytes are U+FFFD.
    let data: String = cast.events.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(data, "a\u{FFFD}\u{FFFD}b\u{FFFD}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
    #[test]
    fn any_output_and_input_round_trip_through_the_file(
        chunks in proptest::collection::vec(
            (
                proptest::bool::ANY,
                proptest::collection::vec(
                    proptest::prop_oneof![
                        proptest::num::u8::ANY,
                        proptest::strategy::Just(0u8),
                        proptest::strategy::Just(0xffu8),
                        proptest::strategy::Just(b'a'),
                    ],
                    0..64,
                ),
            ),
            0..24,
        ),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = RecorderConfig {
            record_input: true,
            ..RecorderConfig::default()
        };
        let mut rec = create(tmp.path(), cfg);
        let (mut out, mut input) = (Vec::new(), Vec::new());
        for (is_input, chunk) in &chunks {
            if *is_input {
                rec.input(chunk).unwrap();
                input.extend_from_slice(chunk);
            } else {
                rec.output(chunk).unwrap();
                out.extend_from_slice(chunk);
            }
        }
        let summary = rec.finish().unwrap();
        let cast = read_cast(&summary.path).unwrap();
        proptest::prop_assert_eq!(output_bytes(&cast), out);
        proptest::prop_assert_eq!(super::super::cast::input_bytes(&cast), input);
    }
}
