//! `gatehouse tokens create|list|revoke`: API tokens for scripts and other systems, which send
//! them as `Authorization: Bearer TOKEN`.
//!
//! A token acts for one policy user, within one scope ([`TokenScope`]), and never beyond what
//! the policy lets that user do. Its secret is printed once, alone on stdout (so
//! `TOKEN=$(gatehouse tokens create …)` captures exactly it), and only its SHA-256 is stored.
//!
//! The operator is the Unix account of the process's real uid, named in the audit log as the
//! grant commands name it (the policy user it is mapped to by `[[operator]]`, else
//! `operator:ACCOUNT`). Each creation and revocation is written durably to the audit log before
//! it is stored: a token never exists, or stops existing, without its line. (A failure between
//! the two leaves a line for a change that did not happen, never the reverse.)

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use crate::config::Config;
use crate::credentials::{NewToken, TokenRecord, TokenScope};
use crate::events::{AuditRecorder, Event, EventKind, Events};
use crate::grants::{Actor, operator};
use crate::policy::Policy;
use crate::server::verbs::grants::when;
use crate::store::{self, Store, StoreError};

/// How long a token lasts when `--for` is not given.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(90 * 86_400);

/// Ids drawn before giving up when each one is taken already (each draw is 32 random bits).
const ID_DRAWS: usize = 5;

/// `gatehouse tokens …`.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token for a policy user and print it (once).
    Create {
        /// The policy user the token acts for.
        #[arg(long)]
        user: String,
        /// What it may do: read, review (read and acknowledge break-glass reviews) or approve
        /// (read, approve or deny requests, revoke grants).
        #[arg(long)]
        scope: TokenScope,
        /// How long it works (default 90d; at most a year).
        #[arg(long = "for", value_name = "DURATION", value_parser = crate::duration::parse)]
        lifetime: Option<Duration>,
    },
    /// List tokens (never their secrets).
    List {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: it is refused from now on.
    Revoke {
        /// The token's id (`tok_…`).
        id: String,
    },
}

/// Runs one tokens subcommand.
pub fn run(config: Config, command: TokensCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let store = store::open(&config.store).await?;
        match command {
            TokensCommand::Create {
                user,
                scope,
                lifetime,
            } => {
                create(
                    &config,
                    &store,
                    &user,
                    scope,
                    lifetime.unwrap_or(DEFAULT_LIFETIME),
                )
                .await
            }
            TokensCommand::List { user, json } => {
                let tokens = store.tokens(user.as_deref()).await?;
                if json {
                    println!("{}", serde_json::to_string(&tokens)?);
                } else {
                    print!("{}", table(&tokens, crate::grants::now()));
                }
                Ok(ExitCode::SUCCESS)
            }
            TokensCommand::Revoke { id } => revoke(&config, &store, &id).await,
        }
    })
}

/// Who is acting under `policy`, as the audit log names them, or the exit code when that
/// cannot be known.
fn operator_actor(policy: &Policy) -> Result<Actor, ExitCode> {
    // Who acts comes from the operating system; an account that cannot be resolved acts not.
    super::operator_account().map(|account| operator::actor_for(policy, &account))
}

/// The audit log, for this command's own lines.
async fn audit(config: &Config) -> anyhow::Result<Events> {
    let log = crate::events::open_direct(&config.audit_log, &config.cluster.node_name).await?;
    Ok(Events::new(Some(AuditRecorder::Direct(log)), None).on_node(&config.cluster.node_name))
}

/// The line for a change to `token` made by `actor`.
fn token_event(kind: EventKind, actor: &Actor, token: &TokenRecord) -> Event {
    let mut detail = serde_json::json!({
        "token_id": token.id,
        "scope": token.scope,
        "expires_at": token.expires_at,
    });
    if let Some(serde_json::Value::Object(door)) = actor.detail() {
        for (k, v) in door {
            detail[k] = v;
        }
    }
    Event {
        user: Some(token.user.clone()),
        actor: Some(actor.name()),
        detail: Some(detail),
        ..Event::new(kind)
    }
}

async fn create(
    config: &Config,
    store: &Store,
    user: &str,
    scope: TokenScope,
    lifetime: Duration,
) -> anyhow::Result<ExitCode> {
    let policy = crate::directory::policy_in_force(config, store).await?;
    if policy.user(user).is_none() {
        eprintln!(
            "gatehouse: there is no user {user:?} in the policy; a token acts for a policy user"
        );
        return Ok(ExitCode::from(2));
    }
    let actor = match operator_actor(&policy) {
        Ok(actor) => actor,
        Err(code) => return Ok(code),
    };
    let now = crate::grants::now();
    let existing: Vec<String> = store
        .tokens(None)
        .await?
        .into_iter()
        .map(|t| t.id)
        .collect();
    let mut drawn = None;
    for _ in 0..ID_DRAWS {
        let candidate = NewToken::generate(user, scope, &actor.name(), now, Some(lifetime));
        if !existing.contains(&candidate.1.id) {
            drawn = Some(candidate);
            break;
        }
    }
    let Some((secret, token)) = drawn else {
        anyhow::bail!("no free token id after {ID_DRAWS} draws");
    };
    let record = TokenRecord {
        id: token.id.clone(),
        user: token.user.clone(),
        scope,
        created_by: token.created_by.clone(),
        created_at: now,
        expires_at: token.expires_at,
        last_used_at: None,
        revoked_at: None,
    };
    let events = audit(config).await?;
    if let Err(e) = events
        .record_durable(&[token_event(EventKind::TokenCreated, &actor, &record)])
        .await
    {
        eprintln!("gatehouse: no token was created: {e}");
        return Ok(ExitCode::FAILURE);
    }
    match store.create_token(&token).await {
        Ok(()) => {}
        Err(StoreError::Conflict(why)) => {
            eprintln!("gatehouse: no token was created ({why}); run the command again");
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e.into()),
    }
    println!("{secret}");
    let expires = token.expires_at.map(when).unwrap_or_else(|| "never".into());
    eprintln!(
        "gatehouse: token {} for {user} (scope {scope}, expires {expires}); the line above is \
         its secret, shown only this once",
        token.id
    );
    Ok(ExitCode::SUCCESS)
}

async fn revoke(config: &Config, store: &Store, id: &str) -> anyhow::Result<ExitCode> {
    let policy = crate::directory::policy_in_force(config, store).await?;
    let actor = match operator_actor(&policy) {
        Ok(actor) => actor,
        Err(code) => return Ok(code),
    };
    let found = store.tokens(None).await?.into_iter().find(|t| t.id == id);
    let token = match found {
        None => {
            eprintln!("gatehouse: there is no token {id:?}");
            return Ok(ExitCode::FAILURE);
        }
        Some(t) => match t.revoked_at {
            Some(at) => {
                eprintln!("gatehouse: token {id} was revoked already, at {}", when(at));
                return Ok(ExitCode::FAILURE);
            }
            None => t,
        },
    };
    let events = audit(config).await?;
    if let Err(e) = events
        .record_durable(&[token_event(EventKind::TokenRevoked, &actor, &token)])
        .await
    {
        eprintln!("gatehouse: token {id} was not revoked: {e}");
        return Ok(ExitCode::FAILURE);
    }
    if !store.revoke_token(id, crate::grants::now()).await? {
        eprintln!("gatehouse: token {id} was revoked by someone else meanwhile");
        return Ok(ExitCode::FAILURE);
    }
    println!("token {id} revoked (by {})", actor.name());
    Ok(ExitCode::SUCCESS)
}

/// The tokens as a table.
fn table(tokens: &[TokenRecord], now: i64) -> String {
    if tokens.is_empty() {
        return "No tokens.\n".to_owned();
    }
    let at = |t: Option<i64>| t.map(when).unwrap_or_else(|| "-".to_owned());
    let mut out = format!(
        "{:12}  {:12}  {:7}  {:7}  {:23}  {:23}  {:23}  {:23}  CREATED BY\n",
        "ID", "USER", "SCOPE", "STATE", "CREATED", "EXPIRES", "LAST USED", "REVOKED"
    );
    for t in tokens {
        let state = match (t.revoked_at, t.is_live(now)) {
            (Some(_), _) => "revoked",
            (None, true) => "live",
            (None, false) => "expired",
        };
        let _ = writeln!(
            out,
            "{:12}  {:12}  {:7}  {:7}  {:23}  {:23}  {:23}  {:23}  {}",
            t.id,
            t.user,
            t.scope,
            state,
            when(t.created_at),
            at(t.expires_at),
            at(t.last_used_at),
            at(t.revoked_at),
            t.created_by
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_each_token_and_its_state_but_no_secret() {
        let token = |id: &str, expires_at, revoked_at| TokenRecord {
            id: id.into(),
            user: "alice".into(),
            scope: TokenScope::Approve,
            created_by: "operator:root".into(),
            created_at: 0,
            expires_at,
            last_used_at: None,
            revoked_at,
        };
        let text = table(
            &[
                token("tok_00000001", Some(100), None),
                token("tok_00000002", Some(10), None),
                token("tok_00000003", None, Some(5)),
            ],
            50,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[1].contains("tok_00000001") && lines[1].contains("live"));
        assert!(lines[2].contains("expired"), "{text}");
        assert!(lines[3].contains("revoked") && lines[3].contains("1970-01-01 00:00:05"));
        assert!(lines[1].contains("approve") && lines[1].contains("operator:root"));
        assert_eq!(table(&[], 0), "No tokens.\n");
    }
}
