//! `gatehouse review list|ack`: the queue of break-glass sessions, each acknowledged by someone
//! other than the person who broke the glass.
//!
//! The reviewer is the Unix account of the process's real uid, mapped to a policy user by
//! `[[operator]]`; an unmapped account cannot review, because nothing would then tell it apart
//! from the person who broke the glass.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Subcommand;

use crate::config::Config;
use crate::events::{Event, EventKind};
use crate::server::verbs::grants::when;
use crate::store;
use crate::store::sessions::{AckError, AckedLine, Review};

/// `gatehouse review …`.
#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// Break-glass sessions waiting for review (--all: reviewed ones too).
    List {
        /// Reviewed sessions too.
        #[arg(long)]
        all: bool,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge a break-glass session after looking at it.
    Ack {
        /// Session id (or a unique prefix of it).
        id: String,
        /// What you found.
        #[arg(long)]
        note: String,
    },
}

/// Runs one review subcommand.
pub fn run(config: Config, command: ReviewCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let store = store::open(&config.store).await?;
        match command {
            ReviewCommand::List { all, json } => {
                let queue = store.review_queue(!all).await?;
                if json {
                    let items: Vec<_> = queue
                        .iter()
                        .map(|(s, r)| serde_json::json!({ "session": s, "review": r }))
                        .collect();
                    println!("{}", serde_json::Value::Array(items));
                    return Ok(ExitCode::SUCCESS);
                }
                if queue.is_empty() {
                    println!("No break-glass sessions {}.", if all { "yet" } else { "wait for review" });
                    return Ok(ExitCode::SUCCESS);
                }
                let mut out = format!("{:36}  {:23}  {:10}  {:14}  {:>5}  REVIEW\n", "SESSION", "STARTED", "USER", "TARGET", "GRANT");
                for (s, r) in &queue {
                    let review = match r {
                        Some(r) => format!("acked by {} at {}: {}", r.reviewer, when(r.at), r.note.escape_debug()),
                        None => "pending".to_owned(),
                    };
                    let _ = writeln!(out, "{:36}  {:23}  {:10}  {:14}  {:>5}  {review}", s.id, when(s.started_at), s.user, s.target, s.grant_id);
                }
                print!("{out}");
                Ok(ExitCode::SUCCESS)
            }
            ReviewCommand::Ack { id, note } => {
                let account = match super::operator_account() {
                    Ok(account) => account,
                    Err(code) => return Ok(code),
                };
                let policy = crate::directory::policy_in_force(&config, &store).await?;
                let Some(reviewer) = policy.operator(&account).map(|u| u.name.clone()) else {
                    eprintln!("gatehouse: denied: the account {account:?} is not mapped to a policy user; add an [[operator]] entry to review break-glass sessions");
                    return Ok(ExitCode::from(126));
                };
                let note = match crate::grants::check_text("note", &note, 1) {
                    Ok(n) => n,
                    Err(e) => {
                        eprintln!("gatehouse: {e}");
                        return Ok(ExitCode::from(2));
                    }
                };
                let queue = store.review_queue(false).await?;
                let matching: Vec<_> = queue.iter().filter(|(s, _)| s.id == id || (id.len() >= 8 && s.id.starts_with(&id))).collect();
                let (session, _) = match matching.as_slice() {
                    [one] => *one,
                    [] => {
                        eprintln!("gatehouse: there is no break-glass session {id:?}");
                        return Ok(ExitCode::from(2));
                    }
                    _ => {
                        eprintln!("gatehouse: {id:?} names more than one session; give more of the id");
                        return Ok(ExitCode::from(2));
                    }
                };
                if session.user == reviewer {
                    eprintln!("gatehouse: denied: {reviewer} broke the glass in this session; someone else must review it");
                    return Ok(ExitCode::from(126));
                }
                let review = Review { reviewer: reviewer.clone(), note: note.clone(), at: crate::grants::now() };
                let events = super::operator_events(&config, &store).await?;
                let acked = Event {
                    user: Some(session.user.clone()),
                    actor: Some(reviewer),
                    target: Some(session.target.clone()),
                    role: Some(session.role.clone()),
                    grant_id: Some(session.grant_id),
                    session_id: Some(session.id.clone()),
                    reason: Some(note),
                    detail: Some(serde_json::json!({ "unix_account": account })),
                    ..Event::new(EventKind::ReviewAcked)
                };
                let seal = AckedLine { events: &events, acked: &acked };
                match store.acknowledge(&session.id, &review, &seal).await {
                    Ok(()) => {}
                    Err(e @ AckError::Taken(_)) => {
                        eprintln!("gatehouse: {e}");
                        return Ok(ExitCode::FAILURE);
                    }
                    Err(AckError::Unwritable(e)) => {
                        eprintln!("gatehouse: the review of session {} was not stored: {e}", session.id);
                        return Ok(ExitCode::FAILURE);
                    }
                    Err(AckError::Store(e)) => return Err(e.into()),
                }
                events.alert(&acked);
                events.settle().await;
                println!("session {} reviewed", session.id);
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}
