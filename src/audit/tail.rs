//! Showing the log to a person: [`tail`], [`follow`] and [`format_line`].
//!
//! Whatever a user managed to put in a name, reason or command reaches the reviewer's terminal
//! only escaped: a record's text is printed through `escape_debug`, and a line that is not a
//! record is printed with every non-printable byte escaped.

use std::fs::File;
use std::future::Future;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::AuditError;
use super::backwards::read_end;
use super::record::{self, MAX_LINE_BYTES};

/// Lines [`tail`] prints when not told otherwise: a screenful.
pub const DEFAULT_TAIL_LINES: usize = 20;

/// How often [`follow`] looks for new lines: quick enough to watch live, cheap enough to leave
/// running.
const POLL: Duration = Duration::from_millis(200);

/// Prints the last `n` complete lines of the log at `path` to `out`, each formatted by
/// [`format_line`], reading only the end of the file.
///
/// Returns the offset just past the last line printed, for [`follow`] to continue from without
/// a gap or a repeat. An incomplete last line (an append under way, or a crash remnant) is not
/// printed.
pub fn tail(
    path: impl AsRef<Path>,
    n: usize,
    json: bool,
    out: &mut impl Write,
) -> Result<u64, AuditError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(AuditError::io("open", path))?;
    let len = file.metadata().map_err(AuditError::io("stat", path))?.len();
    let end = read_end(&file, len, n, u64::MAX).map_err(AuditError::io("read", path))?;
    for line in &end.lines {
        writeln!(out, "{}", format_line(line, json)).map_err(output_error)?;
    }
    out.flush().map_err(output_error)?;
    Ok(end.complete_len)
}

fn output_error(e: std::io::Error) -> AuditError {
    AuditError::io("write", "the output")(e)
}

/// Prints lines appended to the log at `path` after offset `from` (as returned by [`tail`])
/// as they arrive, until `stop` completes (for the CLI: Ctrl-C).
///
/// Polls the file's size every 200 ms, so it needs no inotify and works on any filesystem. If
/// the file is replaced (rotation) it follows the new file from its start; if it shrinks it
/// continues at the new end. Both are announced in human mode (and logged with `tracing` in
/// JSON mode, to keep the output pure JSON lines). File reads are small and done inline.
pub async fn follow(
    path: impl AsRef<Path>,
    from: u64,
    json: bool,
    out: &mut impl Write,
    stop: impl Future<Output = ()>,
) -> Result<(), AuditError> {
    let path = path.as_ref();
    let mut file = File::open(path).map_err(AuditError::io("open", path))?;
    let mut inode = file.metadata().map_err(AuditError::io("stat", path))?.ino();
    let mut offset = from;
    let mut pending: Vec<u8> = Vec::new();
    let mut ticker = tokio::time::interval(POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            _ = ticker.tick() => {}
        }
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            // Moved away and not yet recreated: wait for the new file.
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(AuditError::io("stat", path)(e)),
        };
        let mut notice = None;
        if meta.ino() != inode {
            file = File::open(path).map_err(AuditError::io("open", path))?;
            inode = file.metadata().map_err(AuditError::io("stat", path))?.ino();
            offset = 0;
            pending.clear();
            notice = Some("-- the audit log was replaced; following the new file --".to_owned());
        } else if meta.len() < offset {
            notice = Some(format!(
                "-- the audit log shrank from {offset} to {} bytes (cut outside Gatehouse?); \
                 continuing at its end --",
                meta.len()
            ));
            offset = meta.len();
            pending.clear();
        }
        if let Some(notice) = notice {
            if json {
                tracing::warn!(path = %path.display(), "{notice}");
            } else {
                writeln!(out, "{notice}").map_err(output_error)?;
            }
        }
        let len = file.metadata().map_err(AuditError::io("stat", path))?.len();
        if len <= offset {
            out.flush().map_err(output_error)?;
            continue;
        }
        let mut chunk = vec![0u8; usize::try_from(len - offset).unwrap_or(usize::MAX)];
        file.read_exact_at(&mut chunk, offset)
            .map_err(AuditError::io("read", path))?;
        offset = len;
        pending.extend_from_slice(&chunk);
        if let Some(last_newline) = pending.iter().rposition(|b| *b == b'\n') {
            for line in pending[..last_newline].split(|b| *b == b'\n') {
                writeln!(out, "{}", format_line(line, json)).map_err(output_error)?;
            }
            pending.drain(..=last_newline);
        }
        if pending.len() > MAX_LINE_BYTES {
            // No record is this long: show what there is rather than buffer without limit.
            writeln!(out, "{}", format_line(&pending, json)).map_err(output_error)?;
            pending.clear();
        }
        out.flush().map_err(output_error)?;
    }
}

/// One log line as the CLI prints it, without a newline.
///
/// Human form: `TIME #SEQ EVENT key=value ...`, string values quoted and passed through
/// `escape_debug`, other values as compact ASCII JSON, so terminal control characters, bidi
/// overrides and line separators in user text show as escapes. A line that is not a record is
/// shown as `!! not an audit record (...)` followed by its escaped bytes.
///
/// JSON form: the line as stored, which is printable ASCII for every line Gatehouse writes; a
/// line that is not (so not written by Gatehouse) has its other bytes escaped as `\xNN`, so
/// `--json` cannot be used to reach a terminal either.
pub fn format_line(line: &[u8], json: bool) -> String {
    let printable = line.iter().all(|b| (b' '..=b'~').contains(b));
    if json {
        return if printable {
            String::from_utf8(line.to_vec()).expect("ASCII")
        } else {
            line.escape_ascii().to_string()
        };
    }
    let rec = match record::parse(line) {
        Ok(rec) => rec,
        Err(reason) => {
            return format!(
                "!! not an audit record ({reason}): {}",
                String::from_utf8_lossy(line).escape_debug()
            );
        }
    };
    let mut out = format!("{} #{} {}", rec.time, rec.seq, rec.event.escape_debug());
    for (key, value) in &rec.fields {
        out.push(' ');
        out.extend(key.escape_debug());
        out.push('=');
        match value {
            Value::String(s) => {
                out.push('"');
                out.extend(s.escape_debug());
                out.push('"');
            }
            other => out.push_str(&record::to_ascii_json(other)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditLog;
    use crate::audit::test_support::{fields, lines, log_with};
    use serde_json::json;

    /// Characters that must never reach a terminal raw.
    fn is_dangerous(c: char) -> bool {
        c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }

    #[test]
    fn human_form_shows_time_seq_event_and_escaped_fields() {
        let line = record::render(
            12,
            "2025-03-01T09:30:00.125Z",
            record::ZERO_HASH,
            "session.ended",
            &fields(json!({"user": "alice", "exit_status": 0, "argv": ["ls", "-l"], "gone": null})),
        )
        .unwrap();
        assert_eq!(
            format_line(line.as_bytes(), false),
            "2025-03-01T09:30:00.125Z #12 session.ended argv=[\"ls\",\"-l\"] exit_status=0 \
             gone=null user=\"alice\""
        );
        assert_eq!(format_line(line.as_bytes(), true), line);
    }

    #[test]
    fn human_form_escapes_control_characters_in_user_text() {
        let hostile = "x\u{1b}]0;pwned\u{7}\u{1b}[2J\r\n\u{8}\u{0}\u{7f}\u{85}\u{9b}31m\u{202e}\u{2066}\u{2028}\"";
        let line = record::render(
            1,
            "2025-03-01T09:30:00.125Z",
            record::ZERO_HASH,
            hostile,
            &fields(json!({ hostile: hostile, "list": [hostile] })),
        )
        .unwrap();
        let shown = format_line(line.as_bytes(), false);
        assert!(!shown.chars().any(is_dangerous), "{shown:?}");
        assert!(shown.contains("x\\u{1b}]0;pwned\\u{7}"), "{shown}");
        assert!(
            shown.contains("\\u{202e}") && shown.contains("\\u{2028}"),
            "{shown}"
        );
        assert!(shown.contains("\\r\\n"), "{shown}");
        assert!(shown.contains("\\\""), "{shown}");
        let raw = format_line(line.as_bytes(), true);
        assert!(raw.bytes().all(|b| (b' '..=b'~').contains(&b)), "{raw}");
    }

    #[test]
    fn lines_not_written_by_gatehouse_are_escaped_too() {
        let forged = "{\"seq\":1,\"evil\":\"\u{1b}[2J\u{202e}\"}\r".as_bytes();
        for json in [false, true] {
            let shown = format_line(forged, json);
            assert!(!shown.chars().any(is_dangerous), "{shown:?}");
        }
        assert!(format_line(forged, false).starts_with("!! not an audit record (raw byte 0x1b"));
        assert_eq!(format_line(b"\xff\x1b", true), "\\xff\\x1b");
    }

    #[test]
    fn tail_prints_the_last_lines_and_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_with(dir.path(), 30);
        let mut out = Vec::new();
        let offset = tail(&path, DEFAULT_TAIL_LINES, true, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let all = lines(&path);
        assert_eq!(text.lines().collect::<Vec<_>>(), all[10..]);
        assert_eq!(offset, std::fs::metadata(&path).unwrap().len());

        let mut out = Vec::new();
        tail(&path, 2, false, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(
            text.lines().next().unwrap().contains(" #29 e29 n=29"),
            "{text}"
        );

        // An append in progress is not shown yet.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut file, b"{\"seq\":31").unwrap();
        let mut out = Vec::new();
        assert_eq!(tail(&path, 1, true, &mut out).unwrap(), offset);
        assert_eq!(String::from_utf8(out).unwrap().trim_end(), all[29]);
    }

    #[tokio::test]
    async fn follow_prints_new_lines_until_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_with(dir.path(), 2);
        let offset = tail(&path, 0, false, &mut Vec::new()).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let follow_path = path.clone();
        let follower = tokio::spawn(async move {
            let mut out = Vec::new();
            let stop = async {
                let _ = stopped.await;
            };
            follow(&follow_path, offset, false, &mut out, stop)
                .await
                .unwrap();
            String::from_utf8(out).unwrap()
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let log = AuditLog::open(&path).unwrap();
        log.append("grant.approved", fields(json!({"by": "bob\u{1b}[2J"})))
            .unwrap();
        log.append("grant.activated", serde_json::Map::new())
            .unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
        stop.send(()).unwrap();
        let text = follower.await.unwrap();
        let shown: Vec<_> = text.lines().collect();
        assert_eq!(shown.len(), 2, "{text}");
        assert!(
            shown[0].contains("#3 grant.approved by=\"bob\\u{1b}[2J\""),
            "{text}"
        );
        assert!(shown[1].contains("#4 grant.activated"), "{text}");
    }
}
