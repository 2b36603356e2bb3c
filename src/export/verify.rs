//! Checking an export on its own (`gatehouse sessions verify --export DIR`): no config, no
//! store, no audit log; only the directory. Every check is made and every problem named, so a
//! tampered export says everything that is wrong with it.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde_json::Value;

use super::select::hex_sha256;
use super::{FORMAT, MANIFEST, Manifest, SUMS};

/// What a check of an export found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyOutcome {
    /// What holds, one sentence each.
    pub passed: Vec<String>,
    /// What does not.
    pub problems: Vec<String>,
}

impl VerifyOutcome {
    /// Whether the export verifies.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks the export in `dir`.
pub fn verify(dir: &Path) -> VerifyOutcome {
    let mut out = VerifyOutcome::default();
    let Some(files) = check_sums(dir, &mut out) else {
        return out;
    };
    let manifest: Manifest = match files
        .get(MANIFEST)
        .map(|bytes| serde_json::from_slice::<Manifest>(bytes))
    {
        Some(Ok(m)) if m.format == FORMAT => m,
        Some(Ok(m)) => {
            out.problems.push(format!(
                "{MANIFEST} has format {:?}, not {FORMAT:?}",
                m.format
            ));
            return out;
        }
        Some(Err(e)) => {
            out.problems.push(format!("{MANIFEST} cannot be read: {e}"));
            return out;
        }
        None => {
            out.problems
                .push(format!("{MANIFEST} is not listed in {SUMS}"));
            return out;
        }
    };
    let Some(audit) = files.get(&manifest.audit.file) else {
        out.problems
            .push(format!("{} is not listed in {SUMS}", manifest.audit.file));
        return out;
    };
    let lines = check_chain(audit, &manifest, &mut out);
    check_recording(&files, &manifest, &lines, &mut out);
    out
}

/// Reads `SHA256SUMS` and every file it lists, checking each against its hash, and that the
/// directory holds nothing else. Returns the files' contents by name.
fn check_sums(dir: &Path, out: &mut VerifyOutcome) -> Option<BTreeMap<String, Vec<u8>>> {
    let sums = match fs::read_to_string(dir.join(SUMS)) {
        Ok(text) => text,
        Err(e) => {
            out.problems.push(format!("{SUMS}: {e}"));
            return None;
        }
    };
    let mut files = BTreeMap::new();
    for (n, line) in sums.lines().enumerate() {
        let Some((hash, name)) = line.split_once("  ") else {
            out.problems
                .push(format!("{SUMS} line {} is not \"HASH  NAME\"", n + 1));
            continue;
        };
        let plain =
            !name.is_empty() && name != "." && name != ".." && !name.contains('/') && name != SUMS;
        if !plain {
            out.problems.push(format!(
                "{SUMS} line {} names {name:?}, not a file of the export",
                n + 1
            ));
            continue;
        }
        match fs::read(dir.join(name)) {
            Ok(bytes) if hex_sha256(&bytes) == hash => {
                files.insert(name.to_owned(), bytes);
            }
            Ok(_) => out
                .problems
                .push(format!("{name}: its SHA-256 is not {hash}")),
            Err(e) => out.problems.push(format!("{name}: {e}")),
        }
    }
    match fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name != SUMS
                    && !sums
                        .lines()
                        .any(|l| l.split_once("  ").map(|x| x.1) == Some(&name))
                {
                    out.problems
                        .push(format!("{name} is in the directory but not in {SUMS}"));
                }
            }
        }
        Err(e) => out.problems.push(format!("{}: {e}", dir.display())),
    }
    if out.problems.is_empty() {
        out.passed
            .push(format!("every file matches {SUMS} ({} files)", files.len()));
    }
    Some(files)
}

/// Checks each exported line against its manifest entry and the chain: its hash is the next
/// line's `prev`. Returns the lines parsed.
fn check_chain(audit: &[u8], manifest: &Manifest, out: &mut VerifyOutcome) -> Vec<Value> {
    let before = out.problems.len();
    let raw: Vec<&[u8]> = audit
        .strip_suffix(b"\n")
        .unwrap_or(audit)
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let entries = &manifest.audit.lines;
    if raw.len() != entries.len() {
        out.problems.push(format!(
            "the audit file has {} lines, the manifest lists {}",
            raw.len(),
            entries.len()
        ));
    }
    let mut parsed = Vec::new();
    for (i, (line, entry)) in raw.iter().zip(entries).enumerate() {
        let value: Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(e) => {
                out.problems
                    .push(format!("audit line {} is not JSON: {e}", i + 1));
                continue;
            }
        };
        let seq = value.get("seq").and_then(Value::as_u64);
        let hash = hex_sha256(line);
        if seq != Some(entry.seq) {
            out.problems.push(format!(
                "audit line {} has seq {seq:?}, the manifest says {}",
                i + 1,
                entry.seq
            ));
        }
        if hash != entry.sha256 {
            out.problems.push(format!(
                "audit line {} (seq {}) hashes to {hash}, the manifest says {}",
                i + 1,
                entry.seq,
                entry.sha256
            ));
        }
        if let Some(next) = &entry.next_prev
            && next != &hash
        {
            out.problems.push(format!(
                "audit line seq {}: the next line's prev is {next}, but the line hashes to {hash}",
                entry.seq
            ));
        }
        // The next exported line continues the chain directly when it is the next in the log.
        if let (Some(next_line), Some(next_entry)) = (raw.get(i + 1), entries.get(i + 1))
            && next_entry.seq == entry.seq + 1
        {
            let next_prev = serde_json::from_slice::<Value>(next_line)
                .ok()
                .and_then(|v| v.get("prev").and_then(Value::as_str).map(str::to_owned));
            if next_prev.as_deref() != Some(hash.as_str()) {
                out.problems.push(format!(
                    "audit line seq {} does not carry the hash of seq {} as its prev",
                    next_entry.seq, entry.seq
                ));
            }
        }
        if i > 0 && entries[i - 1].seq >= entry.seq {
            out.problems
                .push(format!("audit line seq {} is out of order", entry.seq));
        }
        let names_session =
            value.get("session_id").and_then(Value::as_str) == Some(manifest.session_id.as_str());
        let names_grant = value.get("session_id").is_none()
            && value.get("grant_id").and_then(Value::as_i64) == Some(manifest.grant_id);
        if !names_session && !names_grant {
            out.problems.push(format!(
                "audit line seq {} is about neither session {} nor grant {}",
                entry.seq, manifest.session_id, manifest.grant_id
            ));
        }
        parsed.push(value);
    }
    if out.problems.len() == before {
        out.passed.push(format!(
            "{} audit lines match their hashes and the chain",
            raw.len()
        ));
    }
    parsed
}

/// Checks the recording against the hash in the session's `session.ended` line.
fn check_recording(
    files: &BTreeMap<String, Vec<u8>>,
    manifest: &Manifest,
    lines: &[Value],
    out: &mut VerifyOutcome,
) {
    let Some(recording) = &manifest.recording else {
        out.passed
            .push("the session has no recording (a file or forward session)".to_owned());
        return;
    };
    let Some(cast) = files.get(&recording.file) else {
        out.problems
            .push(format!("{} is not listed in {SUMS}", recording.file));
        return;
    };
    let have = hex_sha256(cast);
    let ended = lines.iter().find(|v| {
        v.get("event").and_then(Value::as_str) == Some("session.ended")
            && v.get("session_id").and_then(Value::as_str) == Some(manifest.session_id.as_str())
            && v.get("seq").and_then(Value::as_u64) == Some(recording.ended_seq)
    });
    let recorded = ended
        .and_then(|v| v.pointer("/detail/recording_sha256"))
        .and_then(Value::as_str);
    match recorded {
        None => out.problems.push(format!(
            "no session.ended line (seq {}) of session {} records the recording's hash",
            recording.ended_seq, manifest.session_id
        )),
        Some(want) if want == have && want == recording.sha256 => out.passed.push(format!(
            "{} has sha256 {have}, as its session.ended line (seq {}) records",
            recording.file, recording.ended_seq
        )),
        Some(want) => out.problems.push(format!(
            "{} has sha256 {have}, but its session.ended line (seq {}) records {want}",
            recording.file, recording.ended_seq
        )),
    }
}
