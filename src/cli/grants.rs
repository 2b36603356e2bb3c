//! `gatehouse grants list|show|approve|deny|revoke`: the operator's view of grants, acting on
//! the same store as the running bastion, through the same desk as the SSH verbs.
//!
//! The operator is the Unix account of the process's real uid (never `USER` or `SUDO_USER`).
//! Mapped to a policy user by `[[operator]]`, they act as that user: approvals count as theirs
//! and the separation-of-duties rules apply. Unmapped, they are recorded as
//! `operator:<account>` and may deny and revoke but not approve. A running bastion closes the
//! sessions of a revoked grant within a second.

use std::process::ExitCode;

use clap::Subcommand;

use crate::config::Config;
use crate::grants::desk::GrantDesk;
use crate::grants::store::GrantFilter;
use crate::grants::{self, Decision, GrantError, GrantState, operator};
use crate::server::verbs::grants::{grant_json, table, when};
use crate::store;
use crate::store::Store;

/// `gatehouse grants …`.
#[derive(Debug, Subcommand)]
pub enum GrantsCommand {
    /// List grants (pending and active; --all for every state).
    List {
        /// Every state, not only pending and active.
        #[arg(long)]
        all: bool,
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one grant with its approvals.
    Show {
        /// Grant id.
        id: i64,
    },
    /// Approve a pending request (counts as one approval).
    Approve {
        /// Grant id.
        id: i64,
        /// A comment for the record.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Deny a pending request.
    Deny {
        /// Grant id.
        id: i64,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// End an active grant; its sessions close.
    Revoke {
        /// Grant id.
        id: i64,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Runs one grants subcommand.
pub fn run(config: Config, command: GrantsCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let store = store::open(&config.store).await?;
        let ttl = config.request_ttl;
        let now = grants::now();
        match command {
            GrantsCommand::List { all, user, json } => {
                let states = if all {
                    vec![]
                } else {
                    vec![GrantState::Pending, GrantState::Active]
                };
                let found = store
                    .list(&GrantFilter {
                        user,
                        states,
                        limit: Some(10_000),
                    })
                    .await?;
                let shown: Vec<_> = found
                    .iter()
                    .filter(|g| all || !g.state_at(now, ttl).is_final())
                    .collect();
                if json {
                    let items: Vec<_> = shown.iter().map(|g| grant_json(g, now, ttl)).collect();
                    println!("{}", serde_json::Value::Array(items));
                } else {
                    print!("{}", table(&shown, now, ttl));
                }
                Ok(ExitCode::SUCCESS)
            }
            GrantsCommand::Show { id } => {
                let Some(g) = store.get(id).await? else {
                    eprintln!("gatehouse: there is no grant {id}");
                    return Ok(ExitCode::from(2));
                };
                println!("grant        {}", g.id);
                println!("user         {}", g.user);
                println!("role         {}", g.role);
                println!("target       {}", g.target);
                println!("state        {}", g.state_at(now, ttl));
                println!("reason       {}", g.reason.escape_debug());
                println!("duration     {}", crate::duration::format(g.duration));
                println!("requested    {}", when(g.requested_at));
                if let Some(t) = g.activated_at {
                    println!("activated    {}", when(t));
                }
                if let Some(t) = g.expires_at {
                    println!("expires      {}", when(t));
                }
                for a in &g.approvals {
                    let comment = a
                        .comment
                        .as_deref()
                        .map(|c| format!(" ({})", c.escape_debug()))
                        .unwrap_or_default();
                    println!("approved by  {} at {}{comment}", a.approver, when(a.at));
                }
                if let (Some(by), Some(t)) = (&g.ended_by, g.ended_at) {
                    let why = g
                        .end_reason
                        .as_deref()
                        .map(|r| format!(" ({})", r.escape_debug()))
                        .unwrap_or_default();
                    println!("ended by     {by} at {}{why}", when(t));
                }
                if g.break_glass {
                    println!("break-glass  yes");
                }
                Ok(ExitCode::SUCCESS)
            }
            GrantsCommand::Approve { id, comment } => {
                decide(&config, &store, id, Decision::Approve(comment)).await
            }
            GrantsCommand::Deny { id, reason } => {
                decide(&config, &store, id, Decision::Deny(reason)).await
            }
            GrantsCommand::Revoke { id, reason } => {
                decide(&config, &store, id, Decision::Revoke(reason)).await
            }
        }
    })
}

async fn decide(
    config: &Config,
    store: &Store,
    id: i64,
    decision: Decision,
) -> anyhow::Result<ExitCode> {
    // Who acts comes from the operating system; an account that cannot be resolved acts not.
    let account = match super::operator_account() {
        Ok(account) => account,
        Err(code) => return Ok(code),
    };
    let policy = crate::directory::policy_in_force(config, store).await?;
    let actor = operator::actor_for(&policy, &account);
    let events = super::operator_events(config, store).await?;
    let desk = GrantDesk {
        store: store.as_ref(),
        events: &events,
        watch: None,
        request_ttl: config.request_ttl,
    };
    let decided = desk.decide(&policy, &actor, id, &decision).await;
    // The decision's alert is in the outbox before this command exits; the bastion delivers it.
    events.settle().await;
    match decided {
        Ok(g) => {
            println!("grant {} is now {} (by {})", g.id, g.state, actor.name());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("gatehouse: {e}");
            let code = match e {
                GrantError::Usage(_) => 2,
                GrantError::Denied(_) => 126,
                _ => 1,
            };
            Ok(ExitCode::from(code))
        }
    }
}
