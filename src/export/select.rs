//! Which audit lines belong to an export, read with their exact bytes and with what a third
//! party needs to tie each one to the chain: its own hash and the `prev` of the line after it.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::{ExportError, LineEntry};
use crate::audit::{self, Entry};

/// The lines of one session (and of the grant it ran under) as read from the log.
#[derive(Debug, Default)]
pub struct Selected {
    /// The lines, exactly as in the log, without newlines, in log order.
    pub lines: Vec<Vec<u8>>,
    /// For each line: its seq, event, hash and the next line's `prev`.
    pub entries: Vec<LineEntry>,
    /// The parsed lines, for the checks made before writing.
    pub parsed: Vec<Entry>,
    /// The last line of the log when it was read: its seq and hash.
    pub head: Option<(u64, String)>,
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether a record belongs to the export of `session_id`, run under `grant_id`: every line
/// that names the session (its start and end, its recording's hash, denials and file
/// operations in it, its review), and the grant's own lines (request, approvals, activation,
/// break-glass, end), which name no session.
pub fn belongs(entry: &Entry, session_id: &str, grant_id: i64) -> bool {
    match entry.str("session_id") {
        Some(id) => id == session_id,
        None => {
            grant_id > 0
                && entry.int("grant_id") == Some(grant_id)
                && (entry.event.starts_with("grant.") || entry.event.starts_with("breakglass."))
        }
    }
}

/// The `prev` from a line's fixed header (`{"seq":…,"time":"…","prev":"HEX",…`).
fn header_prev(line: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b",\"prev\":\"";
    let at = line.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let hash = line.get(at..at + 64)?;
    std::str::from_utf8(hash).ok()
}

/// The `seq` from a line's fixed header (`{"seq":N,…`).
fn header_seq(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(b"{\"seq\":")?;
    let end = rest.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Reads the log at `log` and picks the lines of `session_id` and `grant_id`. The chain is
/// checked from the first line picked to the one after the last: a break there fails the
/// export, since those lines could then not be vouched for. Breaks elsewhere are
/// `gatehouse audit verify`'s business.
pub fn select(log: &Path, session_id: &str, grant_id: i64) -> Result<Selected, ExportError> {
    let grant_key = format!("\"grant_id\":{grant_id}");
    let mut out = Selected::default();
    let mut index: u64 = 0;
    let mut last_hash: Option<String> = None;
    let mut last_seq: Option<u64> = None;
    let mut breaks: Vec<u64> = Vec::new();
    let mut picked_at: Vec<u64> = Vec::new();
    audit::each_line(log, |line| {
        index += 1;
        let hash = hex_sha256(line);
        let prev = header_prev(line);
        if !picked_at.is_empty() && prev != last_hash.as_deref() {
            breaks.push(index);
        }
        if picked_at.last() == Some(&(index - 1))
            && let Some(entry) = out.entries.last_mut()
        {
            entry.next_prev = prev.map(str::to_owned);
        }
        let mentions = contains(line, session_id.as_bytes())
            || (grant_id > 0 && contains(line, grant_key.as_bytes()));
        if let Some((entry, _)) = mentions
            .then(|| audit::read_line(line))
            .flatten()
            .filter(|(entry, _)| belongs(entry, session_id, grant_id))
        {
            out.entries.push(LineEntry {
                seq: entry.seq,
                event: entry.event.clone(),
                sha256: hash.clone(),
                next_prev: None,
            });
            out.lines.push(line.to_vec());
            out.parsed.push(entry);
            picked_at.push(index);
        }
        last_hash = Some(hash);
        last_seq = header_seq(line);
    })
    .map_err(|e| ExportError::Audit(format!("{}: {e}", log.display())))?;
    if let Some(&last) = picked_at.last()
        && let Some(at) = breaks.iter().find(|&&b| b <= last + 1)
    {
        return Err(ExportError::Audit(format!(
            "the audit log's chain is broken at line {at}, among this session's lines; run \
             `gatehouse audit verify`"
        )));
    }
    out.head = last_seq.zip(last_hash);
    Ok(out)
}
