//! Reading what a report counts: the store, the recordings and the audit log, and checking the
//! evidence itself on the way.
//!
//! The store is read through its traits only, so a report works the same on SQLite and on
//! PostgreSQL. The audit log is read once for the records a report counts and verified once
//! with [`audit::verify`]; each recording of the period is checked against its hash with the
//! check `gatehouse sessions verify` makes.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::ReportError;
use super::aggregate;
use super::facts::{EVENTS, Facts};
use super::model::{AuditCheck, FORMAT, Integrity, Meta, RecordingCheck, RecordingProblem, Report};
use crate::audit;
use crate::grants::store::GrantFilter;
use crate::policy::Policy;
use crate::recording::cast::{EventLines, ParsedLine};
use crate::recording::files::{HashCheck, check_hash};
use crate::recording::{Event, EventKind};
use crate::store::Backend;
use crate::store::sessions::SessionFilter;

/// Where a report reads from, and the period it covers.
pub struct Source<'a> {
    /// The store.
    pub store: &'a dyn Backend,
    /// The policy to judge entitlements by (the one in force).
    pub policy: &'a Policy,
    /// Its directory, for the digest.
    pub policies_dir: &'a Path,
    /// The audit log.
    pub audit_log: &'a Path,
    /// How long requests stay pending.
    pub request_ttl: Duration,
    /// The start of the period (included), Unix seconds.
    pub since: i64,
    /// The end of the period (excluded).
    pub until: i64,
    /// Now.
    pub now: i64,
    /// A `max_duration` above this is standing privilege.
    pub long_after: Duration,
    /// Who makes the report (the Unix account).
    pub generated_by: String,
}

/// Told what the report is doing, for an operator watching a long run.
pub trait Progress {
    /// One step begins, or one finished with a count.
    fn step(&mut self, what: &str);
}

impl<F: FnMut(&str)> Progress for F {
    fn step(&mut self, what: &str) {
        self(what);
    }
}

/// Makes the report.
///
/// # Errors
///
/// The store cannot be read. A missing or damaged audit log, or missing recordings, are not
/// errors: the report says so in its integrity section.
pub async fn generate(
    src: &Source<'_>,
    progress: &mut dyn Progress,
) -> Result<Report, ReportError> {
    let store_error = |e: &dyn std::fmt::Display| ReportError::Store(e.to_string());
    progress.step("reading grants");
    let grants = src
        .store
        .list(&GrantFilter {
            limit: Some(u32::MAX),
            ..GrantFilter::default()
        })
        .await
        .map_err(|e| store_error(&e))?;
    progress.step(&format!("{} grants; reading sessions", grants.len()));
    let mut sessions = src
        .store
        .sessions(&SessionFilter {
            since: Some(src.since),
            until: Some(src.until),
            limit: Some(u32::MAX),
            ..SessionFilter::default()
        })
        .await
        .map_err(|e| store_error(&e))?;
    sessions.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
    let reviews = src
        .store
        .review_queue(false)
        .await
        .map_err(|e| store_error(&e))?
        .into_iter()
        .filter_map(|(s, review)| review.map(|r| (s.id, r)))
        .collect();
    progress.step(&format!(
        "{} sessions; reading restricted-shell commands",
        sessions.len()
    ));
    let shell_lines = sessions
        .iter()
        .filter(|s| s.kind == "restricted")
        .filter_map(|s| {
            let path = s.recording.as_deref()?;
            Some((s.id.clone(), run_lines(Path::new(path))))
        })
        .collect::<HashMap<_, _>>();
    let mut facts = Facts {
        since: src.since,
        until: src.until,
        now: src.now,
        request_ttl: src.request_ttl,
        grants,
        sessions,
        reviews,
        shell_lines,
        ..Facts::default()
    };
    progress.step("reading the audit log");
    let scanned = audit::scan(src.audit_log, |e| EVENTS.contains(&e), |e| facts.take(e));
    match scanned {
        Ok(s) => progress.step(&format!("{} audit lines; verifying the chain", s.lines)),
        Err(e) => progress.step(&format!("the audit log cannot be read ({e}); verifying it")),
    }
    let audit = audit_check(src.audit_log);
    progress.step("checking the recordings against their hashes");
    let recordings = recording_check(&facts);
    let digest = policy_digest(src.policies_dir);
    let version = env!("CARGO_PKG_VERSION").to_owned();
    let meta = Meta {
        format: FORMAT,
        gatehouse_version: version.clone(),
        generated_at: src.now,
        generated_by: src.generated_by.clone(),
        since: src.since,
        until: src.until,
        store: src.store.describe(),
        policies: src.policies_dir.display().to_string(),
        policy_digest: digest.clone(),
        audit_log: src.audit_log.display().to_string(),
    };
    let integrity = Integrity {
        audit,
        recordings,
        policy_digest: digest,
        gatehouse_version: version,
    };
    progress.step("counting");
    Ok(aggregate::build(
        src.policy,
        &facts,
        meta,
        integrity,
        src.long_after,
    ))
}

/// The commands a restricted shell ran, from its recording's `run:` markers, read as a stream
/// with the recording's own line parser. A recording that cannot be read (or ends early) gives
/// what could be read; the integrity section reports the file.
fn run_lines(path: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(file) = File::open(path) else {
        return found;
    };
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    // The header.
    if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
        return found;
    }
    let mut parser = EventLines::after_header();
    let mut last: Option<Event> = None;
    let mut keep = |event: Option<Event>| {
        if let Some(e) = event
            && e.kind == EventKind::Marker
            && let Some(command) = e.data.strip_prefix("run: ")
        {
            found.push(command.to_owned());
        }
    };
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        match parser.parse(&line, last.as_mut()) {
            Ok(ParsedLine::Event(event)) => keep(last.replace(event)),
            Ok(ParsedLine::Folded | ParsedLine::Blank) => {}
            Ok(ParsedLine::Unfinished) | Err(_) => break,
        }
    }
    keep(last);
    found
}

/// `gatehouse audit verify`, as data.
fn audit_check(path: &Path) -> AuditCheck {
    match audit::verify(path) {
        Ok(report) => AuditCheck {
            ok: true,
            lines: report.lines as u64,
            last_seq: report.last_seq,
            last_hash: report.last_hash,
            first_bad_line: None,
            problem: None,
            warnings: report.warnings.iter().map(ToString::to_string).collect(),
        },
        Err(failure) => AuditCheck {
            ok: false,
            lines: 0,
            last_seq: 0,
            last_hash: String::new(),
            first_bad_line: (failure.line > 0).then_some(failure.line as u64),
            problem: Some(failure.reason),
            warnings: Vec::new(),
        },
    }
}

/// Every recording of the period against the hash taken when its session ended.
fn recording_check(facts: &Facts) -> RecordingCheck {
    let mut check = RecordingCheck {
        checked: 0,
        matching: 0,
        modified: Vec::new(),
        unreadable: Vec::new(),
        unhashed: Vec::new(),
    };
    for s in &facts.sessions {
        let (Some(path), Some(want)) = (&s.recording, &s.sha256) else {
            check.unhashed.push(s.id.clone());
            continue;
        };
        check.checked += 1;
        let problem = |detail: String| RecordingProblem {
            session: s.id.clone(),
            path: path.clone(),
            detail,
        };
        match check_hash(Path::new(path), want) {
            HashCheck::Matches => check.matching += 1,
            HashCheck::Modified(have) => check.modified.push(problem(format!(
                "has sha256 {have}, but {want} was recorded when the session ended"
            ))),
            HashCheck::Unreadable(why) => check.unreadable.push(problem(why)),
        }
    }
    check
}

/// SHA-256 over the policy files `load_dir` reads (`*.toml`, in name order): each file's name,
/// a NUL, its length, a NUL and its bytes. Two directories with the same digest hold the same
/// policy.
pub fn policy_digest(dir: &Path) -> String {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut hasher = Sha256::new();
    for file in files {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
        let bytes = std::fs::read(&file).unwrap_or_default();
        hasher.update(name.unwrap_or_default().as_bytes());
        hasher.update([0]);
        hasher.update(bytes.len().to_string().as_bytes());
        hasher.update([0]);
        hasher.update(&bytes);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_markers_are_read_from_a_recording_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.cast");
        std::fs::write(
            &path,
            "{\"version\": 2, \"width\": 80, \"height\": 24, \"timestamp\": 1}\n\
             [0.1, \"o\", \"alice@web-01 [web-read]$ \"]\n\
             [0.2, \"m\", \"run: 'echo' 'one'\"]\n\
             [0.3, \"o\", \"one\\r\\n\"]\n\
             [0.4, \"m\", \"denied: no rule allows \\\"ls\\\"\"]\n\
             [0.5, \"m\", \"run: 'uptime'\"]\n",
        )
        .unwrap();
        assert_eq!(
            run_lines(&path),
            vec!["'echo' 'one'".to_owned(), "'uptime'".to_owned()]
        );
        assert!(run_lines(&dir.path().join("missing.cast")).is_empty());
    }

    #[test]
    fn the_policy_digest_follows_the_files_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), "x").unwrap();
        let first = policy_digest(dir.path());
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        assert_eq!(policy_digest(dir.path()), first);
        std::fs::write(dir.path().join("a.toml"), "y").unwrap();
        assert_ne!(policy_digest(dir.path()), first);
        assert_eq!(first.len(), 64);
    }
}
