//! `gatehouse directory sync|show|status`: read the directory now, see what it says of one
//! person, and see the state of the sync.
//!
//! A sync from the command line is the same sync the server runs; it stores the new state,
//! and every running node puts it in force within a second.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use crate::config::Config;
use crate::config::directory::DirectoryConfig;
use crate::directory::snapshot::Snapshot;
use crate::directory::sync::{self, HeldSync, Outcome};
use crate::policy::Policy;
use crate::server::verbs::grants::when;
use crate::store::{self, Store};

/// `gatehouse directory …`.
#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Read the directory now and put what it says in force (on every node).
    Sync {
        /// Put it in force even if it removes more people than `max_removal`.
        #[arg(long)]
        accept: bool,
    },
    /// What the directory's last good state says of one person, and what it gives them.
    Show {
        /// The login name.
        user: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The last sync: when, by whom, how many people; a failure or a held sync.
    Status {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `directory` subcommand.
pub fn run(config: Config, command: DirectoryCommand) -> anyhow::Result<ExitCode> {
    let Some(directory) = config.directory.clone() else {
        eprintln!(
            "gatehouse: no [directory] is configured in {}",
            shown(&config)
        );
        return Ok(ExitCode::from(2));
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = store::open(&config.store).await?;
        match command {
            DirectoryCommand::Sync { accept } => {
                sync_now(&config, &directory, &store, accept).await
            }
            DirectoryCommand::Show { user, json } => show(&config, &store, &user, json).await,
            DirectoryCommand::Status { json } => status(&store, json).await,
        }
    })
}

fn shown(config: &Config) -> String {
    config
        .source
        .as_ref()
        .map_or("the built-in defaults".into(), |p| p.display().to_string())
}

async fn sync_now(
    config: &Config,
    directory: &DirectoryConfig,
    store: &Store,
    accept: bool,
) -> anyhow::Result<ExitCode> {
    let account = match super::operator_account() {
        Ok(account) => account,
        Err(code) => return Ok(code),
    };
    let events = super::operator_events(config, store).await?;
    let by = format!("cli:{account}");
    let outcome = sync::run(directory, store, &events, &by, accept).await;
    events.settle().await;
    match outcome {
        Ok(Outcome::Applied {
            snapshot, changes, ..
        }) => {
            println!(
                "synced: {} people ({} added, {} removed, {} changed); every node puts it in force within a second",
                snapshot.users.len(),
                changes.added.len(),
                changes.removed.len(),
                changes.changed.len()
            );
            for name in &changes.removed {
                println!("  removed: {name}");
            }
            for why in &snapshot.skipped {
                eprintln!("warning: {}", plain(why));
            }
            Ok(ExitCode::SUCCESS)
        }
        Ok(Outcome::Unchanged { users }) => {
            println!("unchanged: {users} people, as in force");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Outcome::Held(held)) => {
            eprintln!("{}", held_text(&held, directory));
            Ok(ExitCode::from(3))
        }
        Err(e) => {
            eprintln!(
                "gatehouse: {}; the last good state stays in force",
                plain(&e.to_string())
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

fn held_text(held: &HeldSync, directory: &DirectoryConfig) -> String {
    let mut out = format!(
        "held: the directory now has {} people against {} in force; {} would be removed, \
         over max_removal = {}. Nothing changed. Check the directory and the filter, then run \
         `gatehouse directory sync --accept` to put it in force.",
        held.after,
        held.before,
        held.removed.len(),
        sync::limit_text(directory.max_removal)
    );
    for name in held.removed.iter().take(20) {
        let _ = write!(out, "\n  would remove: {name}");
    }
    if held.removed.len() > 20 {
        let _ = write!(out, "\n  … and {} more", held.removed.len() - 20);
    }
    out
}

async fn show(config: &Config, store: &Store, user: &str, json: bool) -> anyhow::Result<ExitCode> {
    let record = store.directory().await?;
    let snapshot = sync::parse_stored(record.snapshot.as_deref())?.unwrap_or_default();
    let files = crate::policy::load_dir_with_groups(
        &config.policies,
        &crate::directory::outside_groups(config),
    )?;
    let (policy, conflicts) = files.with_directory(&snapshot);
    let Some(entry) = snapshot.users.get(user) else {
        let why = if snapshot.disabled.contains(user) {
            "the account is disabled in the directory"
        } else if record.snapshot.is_none() {
            "the directory has not been synced yet"
        } else {
            "not in the directory's last good state"
        };
        if json {
            println!(
                "{}",
                json!({ "user": user, "in_directory": false, "why": why })
            );
        } else {
            println!("{user}: {why}");
        }
        return Ok(ExitCode::from(1));
    };
    let keys: Vec<String> = entry
        .keys
        .iter()
        .filter_map(|line| russh::keys::PublicKey::from_openssh(line).ok())
        .map(|k| {
            format!(
                "{} {}",
                k.algorithm().as_str(),
                crate::policy::fingerprint(&k)
            )
        })
        .collect();
    let roles = roles_of(&policy, user);
    let conflicts: Vec<&str> = conflicts
        .iter()
        .filter(|c| c.user == user)
        .map(|c| c.message.as_str())
        .collect();
    if json {
        println!(
            "{}",
            json!({
                "user": user,
                "in_directory": true,
                "dn": entry.dn,
                "keys": keys,
                "directory_groups": entry.directory_groups,
                "groups": entry.groups,
                "roles": roles,
                "conflicts": conflicts,
                "synced_at": record.synced_at,
                "synced_by": record.synced_by,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = format!("{user}\n  entry:  {}\n", plain(&entry.dn));
    for k in &keys {
        let _ = writeln!(out, "  key:    {k}");
    }
    if keys.is_empty() {
        out.push_str("  key:    none (cannot log in with a key)\n");
    }
    let map = config.directory.as_ref().map(|d| &d.groups);
    for from in &entry.directory_groups {
        let to = map
            .and_then(|m| m.get(from))
            .map_or("(no longer mapped)", String::as_str);
        let _ = writeln!(out, "  group:  {} -> {to}", plain(from));
    }
    let _ = writeln!(
        out,
        "  roles:  {}",
        if roles.is_empty() {
            "none".to_owned()
        } else {
            roles.join(", ")
        }
    );
    for c in conflicts {
        let _ = writeln!(out, "  conflict: {}", plain(c));
    }
    if let Some(at) = record.synced_at {
        let _ = writeln!(
            out,
            "  as of:  {} (by {})",
            when(at),
            record.synced_by.as_deref().unwrap_or("?")
        );
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// The roles `user` may request or hold under `policy`.
fn roles_of(policy: &Policy, user: &str) -> Vec<String> {
    let Some(u) = policy.user(user) else {
        return Vec::new();
    };
    policy
        .roles()
        .filter(|r| r.has_member(u))
        .map(|r| r.name.clone())
        .collect()
}

async fn status(store: &Store, json: bool) -> anyhow::Result<ExitCode> {
    let record = store.directory().await?;
    let snapshot: Option<Snapshot> = sync::parse_stored(record.snapshot.as_deref())?;
    let held: Option<HeldSync> = record
        .held
        .as_ref()
        .map(|(t, _)| serde_json::from_str(t))
        .transpose()?;
    if json {
        println!(
            "{}",
            json!({
                "revision": record.revision,
                "users": snapshot.as_ref().map(|s| s.users.len()),
                "disabled": snapshot.as_ref().map(|s| s.disabled.len()),
                "skipped": snapshot.as_ref().map(|s| &s.skipped),
                "synced_at": record.synced_at,
                "synced_by": record.synced_by,
                "failure": record.failure.as_ref().map(|(e, at)| json!({"error": e, "at": at})),
                "held": held.as_ref().map(|h| json!({
                    "removed": h.removed, "before": h.before, "after": h.after,
                    "at": record.held.as_ref().map(|(_, at)| at),
                })),
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    match (&snapshot, record.synced_at) {
        (Some(s), Some(at)) => println!(
            "in force: {} people ({} disabled, {} entries or keys left out), read {} by {}",
            s.users.len(),
            s.disabled.len(),
            s.skipped.len(),
            when(at),
            record.synced_by.as_deref().unwrap_or("?")
        ),
        _ => println!("in force: nothing yet (no successful sync)"),
    }
    if let Some((error, at)) = &record.failure {
        println!("failing since {}: {}", when(*at), plain(error));
    }
    if let Some(h) = &held {
        println!(
            "held: {} would be removed ({} of {} left); run `gatehouse directory sync --accept`",
            h.removed.len(),
            h.after,
            h.before
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Text from the directory (DNs, values, the server's messages) as it may be printed to an
/// operator's terminal: control characters escaped, so an entry cannot drive the terminal.
fn plain(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}
