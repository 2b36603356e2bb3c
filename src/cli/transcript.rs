//! A file session's transcript as `gatehouse sessions show` prints it: one line per
//! operation, in order, with its time, path, bytes, result and hash.

use std::fmt::Write as _;

use crate::store::transfers::FileOp;

/// The transcript block of `sessions show`.
pub(super) fn describe(ops: &[FileOp]) -> String {
    let mut out = format!("{:12} {} operation(s)\n", "transcript", ops.len());
    for op in ops {
        let at = chrono::DateTime::from_timestamp_millis(op.at_ms)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
            .unwrap_or_else(|| op.at_ms.to_string());
        let bytes = op
            .bytes
            .map(|b| format!("{b} bytes"))
            .unwrap_or_else(|| "-".into());
        let mut path = op.path.escape_debug().to_string();
        if let Some(to) = &op.to_path {
            let _ = write!(path, " -> {}", to.escape_debug());
        }
        let _ = write!(
            out,
            "  {:>4}  {at}  {:<9}  {bytes:>14}  {path}  {}",
            op.seq,
            op.op,
            op.result.escape_debug()
        );
        if let Some(sha) = &op.sha256 {
            let _ = write!(out, "  sha256 {sha}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_operation_is_one_line_with_what_a_reviewer_needs() {
        let op = |seq, op: &str, path: &str, bytes, result: &str, sha: Option<&str>| FileOp {
            session_id: "s".into(),
            seq,
            at_ms: 1_700_000_000_123,
            op: op.into(),
            path: path.into(),
            to_path: None,
            bytes,
            result: result.into(),
            sha256: sha.map(str::to_owned),
        };
        let text = describe(&[
            op(1, "read", "/var/log/a.log", Some(42), "ok", Some("abc")),
            op(
                2,
                "stat",
                "/etc/shadow\n",
                None,
                "denied: not allowed",
                None,
            ),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "transcript   2 operation(s)");
        assert!(
            lines[1].contains("2023-11-14 22:13:20.123 UTC"),
            "{}",
            lines[1]
        );
        assert!(lines[1].contains(" read ") && lines[1].contains("42 bytes"));
        assert!(
            lines[1].ends_with("/var/log/a.log  ok  sha256 abc"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].contains("/etc/shadow\\n  denied: not allowed"),
            "{}",
            lines[2]
        );
        assert_eq!(lines.len(), 3, "a newline in a path cannot forge a line");
    }
}
