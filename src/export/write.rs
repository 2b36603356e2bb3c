//! Writing an export: every check first, then the files into a fresh directory beside the
//! output, renamed into place at the end, so a failed export leaves nothing half-written.

use std::fs::{self, DirBuilder};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::select::{hex_sha256, select};
use super::{
    AUDIT, AuditEntry, ExportError, FORMAT, HOWTO, MANIFEST, Manifest, RecordingEntry, SUMS,
};
use crate::recording::files::{HashCheck, check_hash};
use crate::store::retention::Hold;
use crate::store::sessions::SessionRecord;

/// What to export, and where from.
pub struct ExportRequest<'a> {
    /// The session, as indexed.
    pub session: &'a SessionRecord,
    /// Its legal hold, if any.
    pub hold: Option<&'a Hold>,
    /// This node's audit log.
    pub audit_log: &'a Path,
    /// This node's name.
    pub node: &'a str,
    /// Who exports (the operator account).
    pub exported_by: &'a str,
    /// The output directory: new, or empty.
    pub out: &'a Path,
}

/// Exports one session into `request.out`; returns its manifest.
pub fn export(request: &ExportRequest<'_>) -> Result<Manifest, ExportError> {
    let s = request.session;
    refuse_if_not_empty(request.out)?;
    if !s.node.is_empty() && s.node != request.node {
        return Err(ExportError::OtherNode {
            id: s.id.clone(),
            node: s.node.clone(),
        });
    }
    let recording = checked_recording(s)?;
    let selected = select(request.audit_log, &s.id, s.grant_id)?;
    let recording = match recording {
        None => None,
        Some((path, sha256)) => {
            let ended = selected.parsed.iter().find(|e| {
                e.event == "session.ended"
                    && e.fields
                        .get("detail")
                        .and_then(|d| d.get("recording_sha256"))
                        .and_then(|v| v.as_str())
                        == Some(sha256.as_str())
            });
            let Some(ended) = ended else {
                return Err(ExportError::Audit(format!(
                    "{} holds no session.ended line of session {} with the recording's hash {sha256}",
                    request.audit_log.display(),
                    s.id
                )));
            };
            Some((path, sha256, ended.seq))
        }
    };
    let cast_name = format!("{}.cast", file_safe(&s.id));
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        session_id: s.id.clone(),
        grant_id: s.grant_id,
        session: serde_json::to_value(s).map_err(|e| ExportError::Io(e.to_string()))?,
        hold: request
            .hold
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| ExportError::Io(e.to_string()))?,
        recording: recording.as_ref().map(|(_, sha256, seq)| RecordingEntry {
            file: cast_name.clone(),
            sha256: sha256.clone(),
            ended_seq: *seq,
        }),
        audit: AuditEntry {
            file: AUDIT.to_owned(),
            log: request.audit_log.display().to_string(),
            lines: selected.entries.clone(),
            head_seq: selected.head.as_ref().map(|(seq, _)| *seq),
            head_sha256: selected.head.as_ref().map(|(_, h)| h.clone()),
        },
        exported_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        exported_by: request.exported_by.to_owned(),
        node: request.node.to_owned(),
    };
    let staging = staging_dir(request.out)?;
    let written = write_files(&staging, &manifest, &selected.lines, recording.as_ref());
    let placed = written.and_then(|()| {
        fs::rename(&staging, request.out).map_err(|e| {
            ExportError::Io(format!(
                "moving the export to {}: {e}",
                request.out.display()
            ))
        })
    });
    if placed.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    placed.map(|()| manifest)
}

/// Refuses an output path that holds anything: an export never overwrites.
fn refuse_if_not_empty(out: &Path) -> Result<(), ExportError> {
    match fs::read_dir(out) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err(ExportError::NotEmpty(out.display().to_string())),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(_) if out.exists() => Err(ExportError::NotEmpty(out.display().to_string())),
        Err(e) => Err(ExportError::Io(format!("{}: {e}", out.display()))),
    }
}

/// The session's recording and its recorded hash, once the file is found to match it; `None`
/// for a session that has no recording by its nature (file and forward sessions).
fn checked_recording(s: &SessionRecord) -> Result<Option<(PathBuf, String)>, ExportError> {
    let Some(path) = &s.recording else {
        if matches!(s.kind.as_str(), "files" | "forward") {
            return Ok(None);
        }
        return Err(ExportError::Recording(format!(
            "session {} has no recording",
            s.id
        )));
    };
    let Some(want) = &s.sha256 else {
        return Err(ExportError::Recording(format!(
            "no hash of {path} was taken (the session did not end cleanly), so it cannot be \
             vouched for"
        )));
    };
    match check_hash(Path::new(path), want) {
        HashCheck::Matches => Ok(Some((PathBuf::from(path), want.clone()))),
        HashCheck::Modified(have) => Err(ExportError::Recording(format!(
            "MODIFIED: {path} has sha256 {have}, but {want} was recorded when the session ended"
        ))),
        HashCheck::Unreadable(e) => Err(ExportError::Recording(format!("MISSING: {path}: {e}"))),
    }
}

/// A name made only of characters safe in a file name (session ids are UUIDs already).
fn file_safe(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A new directory beside `out`, on the same filesystem, for the rename at the end.
fn staging_dir(out: &Path) -> Result<PathBuf, ExportError> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".into());
    let staging = parent.join(format!(".{name}.partial-{}", uuid::Uuid::now_v7()));
    DirBuilder::new()
        .mode(0o750)
        .create(&staging)
        .map_err(|e| ExportError::Io(format!("{}: {e}", staging.display())))?;
    Ok(staging)
}

/// Writes the files of an export into `dir`, `SHA256SUMS` last.
fn write_files(
    dir: &Path,
    manifest: &Manifest,
    lines: &[Vec<u8>],
    recording: Option<&(PathBuf, String, u64)>,
) -> Result<(), ExportError> {
    let io_err = |what: &str, e: io::Error| ExportError::Io(format!("{what}: {e}"));
    let mut sums = Vec::new();
    if let (Some((path, sha256, _)), Some(entry)) = (recording, &manifest.recording) {
        let copy = dir.join(&entry.file);
        fs::copy(path, &copy).map_err(|e| io_err(&path.display().to_string(), e))?;
        // The file is read again from the copy: what is exported is what was checked.
        let have = crate::recording::sha256_file(&copy).map_err(|e| io_err(&entry.file, e))?;
        if &have != sha256 {
            return Err(ExportError::Recording(format!(
                "{} changed while it was exported (sha256 {have})",
                path.display()
            )));
        }
        sums.push((have, entry.file.clone()));
    }
    let mut audit = Vec::new();
    for line in lines {
        audit.extend_from_slice(line);
        audit.push(b'\n');
    }
    let manifest_text =
        serde_json::to_vec_pretty(manifest).map_err(|e| ExportError::Io(e.to_string()))?;
    let howto = howto(manifest);
    for (name, bytes) in [
        (AUDIT, audit.as_slice()),
        (MANIFEST, manifest_text.as_slice()),
        (HOWTO, howto.as_bytes()),
    ] {
        write_synced(&dir.join(name), bytes).map_err(|e| io_err(name, e))?;
        sums.push((hex_sha256(bytes), name.to_owned()));
    }
    sums.sort_by(|a, b| a.1.cmp(&b.1));
    let text: String = sums
        .iter()
        .map(|(hash, name)| format!("{hash}  {name}\n"))
        .collect();
    write_synced(&dir.join(SUMS), text.as_bytes()).map_err(|e| io_err(SUMS, e))?;
    Ok(())
}

/// Writes a new file and syncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// `VERIFY.txt`: how to check the export without Gatehouse.
fn howto(manifest: &Manifest) -> String {
    let cast = match &manifest.recording {
        Some(r) => format!(
            "2. The recording {file} has the SHA-256 that the session's session.ended line\n   \
             (seq {seq} in {AUDIT}) records as \"recording_sha256\":\n\n     \
             sha256sum {file}\n     grep '\"event\":\"session.ended\"' {AUDIT}\n\n",
            file = r.file,
            seq = r.ended_seq,
        ),
        None => "2. This session has no recording (a file or forward session): its operations \
                 are the\n   file.op lines of audit.jsonl.\n\n"
            .to_owned(),
    };
    format!(
        "Export of Gatehouse session {id} (grant {grant}), made {at} by {by} on node {node}.\n\n\
         How to check it without Gatehouse:\n\n\
         1. Every file is as exported:\n\n     sha256sum -c {SUMS}\n\n\
         {cast}\
         3. {AUDIT} holds the audit lines exactly as the bastion's log holds them. Each line's\n   \
         SHA-256 (of the line without its newline) is the \"prev\" of the line after it in\n   \
         that log. Where the next line is exported too, compare directly:\n\n     \
         sed -n 1p {AUDIT} | tr -d '\\n' | sha256sum\n     sed -n 2p {AUDIT}   # its \"prev\"\n\n   \
         {MANIFEST} lists each line's seq, SHA-256 and the next line's \"prev\"\n   \
         (audit.lines[].next_prev); compare them, by seq, with a copy of the audit log kept\n   \
         elsewhere (a SIEM, a syslog server) to show the lines were not rewritten.\n\n\
         With Gatehouse: gatehouse sessions verify --export DIR\n",
        id = manifest.session_id,
        grant = manifest.grant_id,
        at = manifest.exported_at,
        by = manifest.exported_by,
        node = manifest.node,
    )
}
