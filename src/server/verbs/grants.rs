//! The grant verbs: `request`, `approve`, `deny`, `revoke` and `grants`.

use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::json;

use super::Reply;
use super::args::{self, Takes};
use crate::bastion::Bastion;
use crate::grants::{
    self, Actor, Decision, Grant, GrantError, GrantState, RequestInput, store::GrantFilter,
};
use crate::policy::{Policy, User};

/// Turns a grant error into what the user reads and the exit status.
pub fn reply_for(error: GrantError) -> Reply {
    match error {
        GrantError::Usage(m) => Reply::usage(&m),
        GrantError::Denied(m) => Reply::denied(&m, None),
        GrantError::Conflict(m) => Reply::failed(&m),
        GrantError::Store(m) => Reply::failed(&format!(
            "the grant store failed ({m}); nothing was decided"
        )),
        e @ GrantError::Audit(_) => Reply::failed(&e.to_string()),
    }
}

/// Formats a Unix time for people (UTC).
pub fn when(t: grants::Timestamp) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// `request TARGET [--role ROLE] --for DURATION --reason TEXT`.
pub async fn request(bastion: &Bastion, policy: &Policy, user: &Arc<User>, raw: &str) -> Reply {
    let spec = [
        ("role", Takes::Word),
        ("for", Takes::Word),
        ("reason", Takes::Text),
    ];
    let a = match args::parse(raw, &spec) {
        Ok(a) => a,
        Err(e) => return Reply::usage(&e),
    };
    let [target] = a.positional.as_slice() else {
        return Reply::usage("request needs exactly one TARGET");
    };
    let Some(for_text) = a.get("for") else {
        return Reply::usage("request needs --for DURATION (for example --for 1h)");
    };
    let duration = match crate::duration::parse(for_text) {
        Ok(d) => d,
        Err(e) => return Reply::usage(&e.to_string()),
    };
    let Some(reason) = a.get("reason") else {
        return Reply::usage("request needs --reason TEXT");
    };
    let role = match a.get("role") {
        Some(role) => role.to_owned(),
        None => {
            let candidates: Vec<&str> = policy
                .target(target)
                .map(|t| {
                    policy
                        .roles_for(user, t)
                        .filter(|r| !r.break_glass)
                        .map(|r| r.name.as_str())
                        .collect()
                })
                .unwrap_or_default();
            match candidates.as_slice() {
                [only] => (*only).to_owned(),
                [] => {
                    return Reply::denied(
                        &format!("no role of yours covers target {target:?}"),
                        Some("ssh bastion targets"),
                    );
                }
                several => {
                    return Reply::usage(&format!(
                        "several roles cover {target:?}; add --role ({})",
                        several.join(", ")
                    ));
                }
            }
        }
    };
    let now = grants::now();
    let input = RequestInput {
        user,
        role: &role,
        target,
        duration,
        reason,
    };
    let new = match bastion.desk().request(policy, &input, now).await {
        Ok(grant) => grant,
        Err(e) => return reply_for(e),
    };
    let id = new.id;
    let length = crate::duration::format(new.duration);
    if new.state == GrantState::Active {
        let until = when(new.expires_at.unwrap_or(now));
        return Reply::ok(format!(
            "grant {id} is active: role {role} on {target} until {until} ({length})\n"
        ));
    }
    let needed = policy.role(&role).map(|r| r.approvals).unwrap_or(1);
    let approvers = policy
        .role(&role)
        .map(|r| r.approvers.join(", "))
        .unwrap_or_default();
    Reply::ok(format!(
        "grant {id} requested: role {role} on {target} for {length}\n\
         It needs {needed} approval(s) from: {approvers}. The clock starts when it is approved.\n"
    ))
}

/// `approve ID [--comment TEXT]`, `deny ID --reason TEXT`, `revoke ID [--reason TEXT]`.
pub async fn decide(
    bastion: &Bastion,
    policy: &Policy,
    user: &Arc<User>,
    verb: &str,
    raw: &str,
) -> Reply {
    let option = if verb == "approve" {
        "comment"
    } else {
        "reason"
    };
    let a = match args::parse(raw, &[(option, Takes::Text)]) {
        Ok(a) => a,
        Err(e) => return Reply::usage(&e),
    };
    let [id] = a.positional.as_slice() else {
        return Reply::usage(&format!("{verb} needs exactly one grant ID"));
    };
    let Ok(id) = id.parse::<i64>() else {
        return Reply::usage(&format!(
            "{:?} is not a grant id",
            id.chars().take(20).collect::<String>()
        ));
    };
    let text = a.get(option).map(str::to_owned);
    let decision = match verb {
        "approve" => Decision::Approve(text),
        "deny" => match text {
            Some(reason) => Decision::Deny(reason),
            None => return Reply::usage("deny needs --reason TEXT"),
        },
        _ => Decision::Revoke(text),
    };
    match bastion
        .desk()
        .decide(policy, &Actor::User(user.clone()), id, &decision)
        .await
    {
        Ok(grant) => Reply::ok(describe_outcome(&grant, verb)),
        Err(e) => reply_for(e),
    }
}

fn describe_outcome(grant: &Grant, verb: &str) -> String {
    match (verb, grant.state) {
        ("approve", GrantState::Active) => format!(
            "grant {} approved: it is active until {}\n",
            grant.id,
            when(grant.expires_at.unwrap_or_default())
        ),
        ("approve", _) => format!("grant {} approved; it needs more approvals\n", grant.id),
        ("deny", _) => format!("grant {} denied\n", grant.id),
        _ => format!(
            "grant {} revoked; its sessions are being closed\n",
            grant.id
        ),
    }
}

/// `grants [--all] [--json]`: the user's grants, and for approvers the requests they may decide.
pub async fn list(bastion: &Bastion, policy: &Policy, user: &Arc<User>, raw: &str) -> Reply {
    let a = match args::parse(raw, &[("all", Takes::Nothing), ("json", Takes::Nothing)]) {
        Ok(a) if a.positional.is_empty() => a,
        Ok(_) => return Reply::usage("grants takes only --all and --json"),
        Err(e) => return Reply::usage(&e),
    };
    let now = grants::now();
    let ttl = bastion.config.request_ttl;
    let states = if a.has("all") {
        vec![]
    } else {
        vec![GrantState::Pending, GrantState::Active]
    };
    let mine = match bastion
        .grants
        .list(&GrantFilter {
            user: Some(user.name.clone()),
            states,
            limit: Some(200),
        })
        .await
    {
        Ok(g) => g,
        Err(e) => return reply_for(e),
    };
    let pending = match bastion
        .grants
        .list(&GrantFilter {
            user: None,
            states: vec![GrantState::Pending],
            limit: Some(500),
        })
        .await
    {
        Ok(g) => g,
        Err(e) => return reply_for(e),
    };
    let decidable: Vec<&Grant> = pending
        .iter()
        .filter(|g| grants::may_decide(g, user, policy, now, ttl))
        .collect();
    let mine: Vec<&Grant> = mine
        .iter()
        .filter(|g| a.has("all") || !g.state_at(now, ttl).is_final())
        .collect();
    if a.has("json") {
        let item = |g: &Grant| grant_json(g, now, ttl);
        let body = json!({
            "grants": mine.iter().map(|g| item(g)).collect::<Vec<_>>(),
            "pending_for_you": decidable.iter().map(|g| item(g)).collect::<Vec<_>>(),
        });
        return Reply::ok(format!("{body}\n"));
    }
    let mut out = String::new();
    if mine.is_empty() {
        out.push_str("You hold no grants. Request one: ssh bastion request TARGET --role ROLE --for 1h --reason TEXT\n");
    } else {
        out.push_str(&table(&mine, now, ttl));
    }
    if !decidable.is_empty() {
        out.push_str(
            "\nRequests you may decide (ssh bastion approve ID / deny ID --reason TEXT):\n",
        );
        out.push_str(&table(&decidable, now, ttl));
    }
    Reply::ok(out)
}

/// One grant as JSON, for `grants --json` and `gatehouse grants list --json`.
pub fn grant_json(
    g: &Grant,
    now: grants::Timestamp,
    ttl: std::time::Duration,
) -> serde_json::Value {
    json!({
        "id": g.id, "user": g.user, "role": g.role, "target": g.target, "reason": g.reason,
        "state": g.state_at(now, ttl).as_str(), "duration": crate::duration::format(g.duration),
        "requested_at": g.requested_at, "activated_at": g.activated_at, "expires_at": g.expires_at,
        "approvals": g.approvals.iter().map(|ap| ap.approver.clone()).collect::<Vec<_>>(),
        "break_glass": g.break_glass,
    })
}

/// An aligned table of grants.
pub fn table(grants: &[&Grant], now: grants::Timestamp, ttl: std::time::Duration) -> String {
    let mut out = format!(
        "{:>6}  {:10}  {:12}  {:14}  {:16}  {:8}  {}\n",
        "ID", "USER", "ROLE", "TARGET", "STATE", "FOR", "REASON"
    );
    for g in grants {
        let state = g.state_at(now, ttl);
        let state_text = match (state, g.expires_at) {
            (GrantState::Active, Some(end)) => format!("active {}m left", ((end - now) + 59) / 60),
            (GrantState::Pending, _) => format!("pending {}", g.approvals.len()),
            (s, _) => s.to_string(),
        };
        let reason: String = g.reason.chars().take(60).collect();
        let _ = writeln!(
            out,
            "{:>6}  {:10}  {:12}  {:14}  {:16}  {:8}  {}",
            g.id,
            g.user,
            g.role,
            g.target,
            state_text,
            crate::duration::format(g.duration),
            reason.escape_debug()
        );
    }
    out
}
