//! `gatehouse sessions list|show|search|reindex|verify|hold|release|export` and
//! `gatehouse replay`: what reviewers use to find sessions, see what happened in them, keep them
//! and hand them on.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use crate::config::Config;
use crate::recording::files::HashCheck;
use crate::recording::{self, ReplayOptions};
use crate::server::verbs::grants::when;
use crate::store::retention::Hold;
use crate::store::sessions::{SessionFilter, SessionRecord};
use crate::store::{self, Store};

/// `gatehouse sessions …`.
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Sessions, newest first.
    List(Filter),
    /// One session in full.
    Show {
        /// Session id (or a unique prefix of it).
        id: String,
    },
    /// Sessions whose output, input, marker labels or command, or a path in whose file
    /// transcript, contains TEXT, with where it first appears (from the text index).
    Search {
        /// The text to look for (exact, case-sensitive, at most 200 bytes; 1 or 2 characters
        /// cannot use the index and take longer).
        text: String,
        /// Narrow the search.
        #[command(flatten)]
        filter: Filter,
    },
    /// Rebuild the text index of recordings from the files (every ended session recorded on
    /// this node, or the ones named).
    Reindex {
        /// Session ids (or unique prefixes); none: every ended session of this node.
        ids: Vec<String>,
    },
    /// Check that a session's recording still matches the hash taken when it ended, or (with
    /// --export) that an export verifies on its own.
    Verify {
        /// Session id (or a unique prefix of it).
        #[arg(required_unless_present = "export", conflicts_with = "export")]
        id: Option<String>,
        /// Check the export in DIR instead: needs nothing but the directory.
        #[arg(long, value_name = "DIR")]
        export: Option<PathBuf>,
    },
    /// Put a session on legal hold: retention keeps it until the hold is released.
    Hold {
        /// Session id (or a unique prefix of it).
        id: String,
        /// Why (a case or ticket; at least 10 characters).
        #[arg(long)]
        reason: String,
    },
    /// Release a session's legal hold.
    Release {
        /// Session id (or a unique prefix of it).
        id: String,
        /// Why (at least 10 characters).
        #[arg(long)]
        reason: String,
    },
    /// Export a session (recording, its hash, its audit lines and its grant's) into a new or
    /// empty directory, as evidence that verifies on its own.
    Export {
        /// Session id (or a unique prefix of it).
        id: String,
        /// The directory to write (never overwritten).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// Filters shared by `list` and `search`.
#[derive(Debug, Clone, clap::Args)]
pub struct Filter {
    /// Only this user's sessions.
    #[arg(long)]
    user: Option<String>,
    /// Only sessions on this target.
    #[arg(long)]
    target: Option<String>,
    /// Only sessions started within this long (e.g. 2h, 7d).
    #[arg(long)]
    since: Option<String>,
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl Filter {
    fn to_store(&self) -> anyhow::Result<SessionFilter> {
        let since = match &self.since {
            Some(text) => {
                Some(crate::grants::now() - crate::duration::parse(text)?.as_secs() as i64)
            }
            None => None,
        };
        Ok(SessionFilter {
            user: self.user.clone(),
            target: self.target.clone(),
            since,
            limit: Some(100_000),
            ..SessionFilter::default()
        })
    }
}

/// Options of `gatehouse replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Session id (or a unique prefix of it).
    id: String,
    /// Playback speed (2 = twice as fast).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Longest pause between outputs, in seconds.
    #[arg(long)]
    idle_limit: Option<f64>,
    /// Play the recorded bytes unchanged, escape sequences and all (only for trusted sessions).
    #[arg(long)]
    raw: bool,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Runs one sessions subcommand.
pub fn run(config: Config, command: SessionsCommand) -> anyhow::Result<ExitCode> {
    // An export is checked with nothing but its directory: no config, no store.
    if let SessionsCommand::Verify {
        export: Some(dir), ..
    } = &command
    {
        return Ok(super::export::verify(dir));
    }
    runtime()?.block_on(async move {
        let store = store::open(&config.store).await?;
        match command {
            SessionsCommand::List(filter) => {
                let found = store.sessions(&filter.to_store()?).await?;
                let holds: HashMap<String, Hold> = if filter.json {
                    store.holds().await?.into_iter().map(|h| (h.session_id.clone(), h)).collect()
                } else {
                    HashMap::new()
                };
                print_sessions(&found, filter.json, &holds);
                Ok(ExitCode::SUCCESS)
            }
            SessionsCommand::Show { id } => {
                let Some(s) = resolve(&store, &id).await? else {
                    return Ok(no_such(&id));
                };
                print!("{}", describe(&s));
                if let Some(h) = store.hold_of(&s.id).await? {
                    println!("{:12} by {} since {}: {}", "hold", h.held_by, when(h.held_at), h.reason.escape_debug());
                }
                if s.kind == "files" {
                    print!("{}", super::transcript::describe(&store.file_ops(&s.id).await?));
                }
                if let Some(path) = &s.recording
                    && let Err(e) = std::fs::metadata(path)
                {
                    println!("note: {}", unreadable(&s, &config, &e));
                }
                Ok(ExitCode::SUCCESS)
            }
            SessionsCommand::Search { text, filter } => {
                crate::search::query::check_needle(&text)?;
                let sessions = store.sessions(&filter.to_store()?).await?;
                let hits = crate::search::search(&store, &text, &sessions).await?;
                let found: Vec<(SessionRecord, recording::TextMatch)> = sessions
                    .into_iter()
                    .filter_map(|s| hits.get(&s.id).copied().map(|hit| (s, hit)))
                    .collect();
                print_hits(&found, filter.json);
                Ok(if found.is_empty() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
            }
            SessionsCommand::Reindex { ids } => reindex(&store, &config, &ids).await,
            SessionsCommand::Hold { id, reason } => {
                super::holds::change(&config, &store, &id, &reason, true).await
            }
            SessionsCommand::Release { id, reason } => {
                super::holds::change(&config, &store, &id, &reason, false).await
            }
            SessionsCommand::Export { id, out } => super::export::run(&config, &store, &id, &out).await,
            SessionsCommand::Verify { id, .. } => {
                let id = id.unwrap_or_default();
                let Some(s) = resolve(&store, &id).await? else {
                    return Ok(no_such(&id));
                };
                if s.recording.is_none() && matches!(s.kind.as_str(), "files" | "forward") {
                    println!("session {}: a {} session has no recording; its operations are in the index (sessions show)", s.id, s.kind);
                    return Ok(ExitCode::FAILURE);
                }
                let (Some(path), Some(want)) = (&s.recording, &s.sha256) else {
                    println!("session {}: no recording hash was taken (the session did not end cleanly, or was not recorded)", s.id);
                    return Ok(ExitCode::FAILURE);
                };
                match recording::files::check_hash(Path::new(path), want) {
                    HashCheck::Matches => {
                        println!("ok: {path} matches sha256 {want}");
                        Ok(ExitCode::SUCCESS)
                    }
                    HashCheck::Modified(have) => {
                        println!("MODIFIED: {path} has sha256 {have}, but {want} was recorded when the session ended");
                        Ok(ExitCode::FAILURE)
                    }
                    HashCheck::Unreadable(e) => {
                        println!("MISSING: {}", unreadable(&s, &config, &e));
                        Ok(ExitCode::FAILURE)
                    }
                }
            }
        }
    })
}

/// Plays a session's recording in the terminal.
pub fn replay(config: Config, args: ReplayArgs) -> anyhow::Result<ExitCode> {
    if !(args.speed.is_finite() && args.speed > 0.0) {
        anyhow::bail!("--speed must be a positive number");
    }
    runtime()?.block_on(async move {
        let store = store::open(&config.store).await?;
        let Some(s) = resolve(&store, &args.id).await? else {
            return Ok(no_such(&args.id));
        };
        let Some(path) = &s.recording else {
            anyhow::bail!("session {} has no recording", s.id);
        };
        let cast = recording::read_cast(Path::new(path))
            .map_err(|e| anyhow::anyhow!(unreadable(&s, &config, &e)))?;
        if cast.truncated {
            eprintln!("note: the recording ends in a partial line (the bastion stopped during the session)");
        }
        let options = ReplayOptions { speed: args.speed, idle_limit: args.idle_limit, raw: args.raw };
        let interactive = std::io::stdin().is_terminal();
        // Keys come from the terminal; without one, playback just runs to the end.
        let (_keep_open, keys) = if interactive {
            (None, recording::spawn_key_reader(std::io::stdin()))
        } else {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            (Some(tx), rx)
        };
        let raw_mode = if interactive { recording::RawMode::enable(0).ok() } else { None };
        let ended = recording::replay(&cast, options, keys, tokio::io::stdout()).await;
        if std::io::stdout().is_terminal() {
            print!("{}", recording::replay::TERMINAL_RESET);
        }
        drop(raw_mode);
        ended?;
        Ok(ExitCode::SUCCESS)
    })
}

/// `gatehouse sessions reindex`: rebuilds the named sessions' rows of the text index (or every
/// ended local session's), each from its recording file.
async fn reindex(store: &Store, config: &Config, ids: &[String]) -> anyhow::Result<ExitCode> {
    let node = &config.cluster.node_name;
    let sessions = if ids.is_empty() {
        crate::search::reindex::local_sessions(store, node).await?
    } else {
        let mut named = Vec::new();
        for id in ids {
            match resolve(store, id).await? {
                Some(s) => named.push(s),
                None => return Ok(no_such(id)),
            }
        }
        named
    };
    let mut failed = false;
    let total = sessions.len();
    let mut builder = crate::search::segment::SegmentBuilder::default();
    for (i, s) in sessions.iter().enumerate() {
        let Some(path) = &s.recording else {
            println!("session {}: not recorded; nothing to index", s.id);
            continue;
        };
        if s.ended_at.is_none() {
            println!(
                "session {}: still running; the bastion indexes it as it is written",
                s.id
            );
            continue;
        }
        match crate::search::reindex::rebuild(store, &s.id, Path::new(path), &mut builder).await {
            Ok(bytes) => println!(
                "[{}/{total}] session {}: {bytes} bytes of recording indexed",
                i + 1,
                s.id
            ),
            Err(e) => {
                failed = true;
                eprintln!("session {}: {}", s.id, unreadable(s, config, &e));
            }
        }
    }
    // The rest is sealed, and every segment merged into one without the rows rebuilt or
    // deleted since they were written.
    crate::search::segment::seal(store, &mut builder).await?;
    crate::search::segment::compact(store).await?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Search results: each session with where the text first appears.
fn print_hits(found: &[(SessionRecord, recording::TextMatch)], json: bool) {
    if json {
        let items: Vec<serde_json::Value> = found
            .iter()
            .map(|(s, hit)| {
                let mut item = serde_json::to_value(s).unwrap_or_default();
                item["hit"] = serde_json::json!({ "source": hit.source, "time": hit.time });
                item
            })
            .collect();
        println!("{}", serde_json::Value::Array(items));
        return;
    }
    let sessions: Vec<SessionRecord> = found.iter().map(|(s, _)| s.clone()).collect();
    print_sessions(&sessions, false, &HashMap::new());
    for (s, hit) in found {
        let source = serde_json::to_value(hit.source).ok();
        let source = source.as_ref().and_then(|v| v.as_str()).unwrap_or("?");
        println!("{}  first in {source} at {:.3} s", s.id, hit.time);
    }
}

/// Says there is no session `id` (exit 2).
pub(super) fn no_such(id: &str) -> ExitCode {
    eprintln!("gatehouse: there is no session {id:?}");
    ExitCode::from(2)
}

/// A session by id, or by a unique prefix of at least 8 characters.
pub(super) async fn resolve(store: &Store, id: &str) -> anyhow::Result<Option<SessionRecord>> {
    if let Some(s) = store.session(id).await? {
        return Ok(Some(s));
    }
    if id.len() < 8 {
        return Ok(None);
    }
    let all = store
        .sessions(&SessionFilter {
            limit: Some(1_000_000),
            ..SessionFilter::default()
        })
        .await?;
    let mut matching = all.into_iter().filter(|s| s.id.starts_with(id));
    match (matching.next(), matching.next()) {
        (Some(one), None) => Ok(Some(one)),
        (Some(_), Some(_)) => {
            anyhow::bail!("{id:?} names more than one session; give more of the id")
        }
        _ => Ok(None),
    }
}

/// A session as `list --json` prints it: its index row and its legal hold (or `null`).
#[derive(serde::Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    session: &'a SessionRecord,
    hold: Option<&'a Hold>,
}

fn print_sessions(sessions: &[SessionRecord], json: bool, holds: &HashMap<String, Hold>) {
    if json {
        let listed: Vec<Listed<'_>> = sessions
            .iter()
            .map(|session| Listed {
                session,
                hold: holds.get(&session.id),
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string(&listed).unwrap_or_else(|_| "[]".into())
        );
        return;
    }
    let mut out = format!(
        "{:36}  {:23}  {:10}  {:14}  {:12}  {:>5}  {:10}  {:>4}  COMMAND\n",
        "SESSION", "STARTED", "USER", "TARGET", "ROLE", "GRANT", "KIND", "EXIT"
    );
    for s in sessions {
        let exit = s
            .exit_status
            .map(|c| c.to_string())
            .unwrap_or_else(|| "-".into());
        let command: String = s
            .command
            .as_deref()
            .unwrap_or("")
            .chars()
            .take(60)
            .collect();
        let _ = writeln!(
            out,
            "{:36}  {:23}  {:10}  {:14}  {:12}  {:>5}  {:10}  {:>4}  {}",
            s.id,
            when(s.started_at),
            s.user,
            s.target,
            s.role,
            s.grant_id,
            s.kind,
            exit,
            command.escape_debug()
        );
    }
    print!("{out}");
}

fn describe(s: &SessionRecord) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| {
        let _ = writeln!(out, "{k:12} {v}");
    };
    line("session", s.id.clone());
    line("user", s.user.clone());
    line("target", s.target.clone());
    line("role", s.role.clone());
    line("grant", s.grant_id.to_string());
    line("kind", s.kind.clone());
    if let Some(c) = &s.command {
        let label = if s.kind == "forward" {
            "destination"
        } else {
            "command"
        };
        line(label, c.escape_debug().to_string());
    }
    if s.break_glass {
        line("break-glass", "yes".into());
    }
    if !s.node.is_empty() {
        line("node", s.node.clone());
    }
    line("started", when(s.started_at));
    line(
        "ended",
        s.ended_at
            .map(when)
            .unwrap_or_else(|| "(no end recorded)".into()),
    );
    if let Some(code) = s.exit_status {
        line("exit", code.to_string());
    }
    if let (Some(i), Some(o)) = (s.bytes_in, s.bytes_out) {
        line("bytes", format!("{i} in, {o} out"));
    }
    if let Some(r) = &s.end_reason {
        line("closed", r.escape_debug().to_string());
    }
    if s.recording.is_some() || !matches!(s.kind.as_str(), "files" | "forward") {
        line(
            "recording",
            s.recording.clone().unwrap_or_else(|| "(none)".into()),
        );
        line(
            "sha256",
            s.sha256.clone().unwrap_or_else(|| "(none)".into()),
        );
    }
    out
}

/// Why a session's recording cannot be read here, naming the node that wrote it when the file
/// is simply not on this machine (the nodes do not share a recordings volume).
pub(crate) fn unreadable(s: &SessionRecord, config: &Config, e: &dyn std::fmt::Display) -> String {
    let path = s.recording.as_deref().unwrap_or("(none)");
    let here = &config.cluster.node_name;
    let missing = s
        .recording
        .as_deref()
        .is_some_and(|p| !Path::new(p).exists());
    if missing && !s.node.is_empty() && &s.node != here {
        format!(
            "{path} is not on this machine ({here}): node {} recorded it; share the recordings \
             directory between nodes, or run this on {}",
            s.node, s.node
        )
    } else {
        format!("{path}: {e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(node: &str, recording: &str) -> SessionRecord {
        SessionRecord {
            id: "s1".into(),
            node: node.into(),
            user: "alice".into(),
            target: "web-01".into(),
            role: "web-ops".into(),
            grant_id: 1,
            kind: "exec".into(),
            command: None,
            break_glass: false,
            started_at: 1,
            ended_at: None,
            bytes_in: None,
            bytes_out: None,
            exit_status: None,
            end_reason: None,
            recording: Some(recording.into()),
            sha256: None,
        }
    }

    #[test]
    fn a_recording_on_another_node_names_that_node() {
        let mut config = Config::defaults_in(Path::new("."));
        config.cluster.node_name = "bastion-a".into();
        let gone = "/nonexistent/recordings/s1.cast";
        let elsewhere = unreadable(&session("bastion-b", gone), &config, &"not found");
        assert!(
            elsewhere.contains("node bastion-b recorded it") && elsewhere.contains("(bastion-a)"),
            "{elsewhere}"
        );
        let here = unreadable(&session("bastion-a", gone), &config, &"not found");
        assert_eq!(here, format!("{gone}: not found"));
    }
}
