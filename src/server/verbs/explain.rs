//! `explain TARGET[:ROLE] [--json] [-- COMMAND…]`: what the bastion would answer the person
//! asking, and why, for each role of theirs that covers the target.
//!
//! The same explanation as `gatehouse explain`, for the person about themselves: roles they are
//! not a member of are left out, and an unknown target gets the same words as a target they may
//! not use, as a denial does.

use std::sync::Arc;

use super::Reply;
use super::args::{self, Takes};
use crate::access::{Action, SessionRequest};
use crate::bastion::Bastion;
use crate::explain::{self, Audience, Question};
use crate::grants::store::GrantFilter;
use crate::grants::{self, GrantState};
use crate::policy::{Policy, User};
use crate::server::breakglass::split_command;

/// Runs `explain` for `user`.
pub async fn run(bastion: &Bastion, policy: &Policy, user: &Arc<User>, raw: &str) -> Reply {
    let (options, command) = split_command(raw.as_bytes());
    let Ok(options) = std::str::from_utf8(options) else {
        return Reply::usage("arguments must be valid UTF-8");
    };
    let parsed = match args::parse(options, &[("json", Takes::Nothing)]) {
        Ok(a) => a,
        Err(e) => return Reply::usage(&e),
    };
    let [first] = parsed.positional.as_slice() else {
        return Reply::usage("explain needs exactly one TARGET (or TARGET:ROLE), then -- COMMAND");
    };
    let (target, role) = match first.split_once(':') {
        Some((t, r)) => (t.to_owned(), Some(r.to_owned())),
        None => (first.clone(), None),
    };
    let request = SessionRequest {
        target,
        role,
        action: match command {
            Some(command) => Action::Exec(command.to_vec()),
            None => Action::Interactive { pty: true },
        },
    };
    let held = bastion
        .grants
        .list(&GrantFilter {
            user: Some(user.name.clone()),
            states: vec![GrantState::Pending, GrantState::Active],
            limit: Some(10_000),
        })
        .await;
    let held = match held {
        Ok(held) => held,
        Err(e) => {
            return Reply::failed(&format!(
                "your grants cannot be read now ({e}); nothing to explain"
            ));
        }
    };
    let answer = explain::explain(&Question {
        policy,
        user,
        grants: &held,
        request: &request,
        now: grants::now(),
        request_ttl: bastion.config.request_ttl,
        audience: Audience::Holder,
    });
    if parsed.has("json") {
        Reply::ok(format!(
            "{}\n",
            serde_json::to_string(&answer).unwrap_or_default()
        ))
    } else {
        Reply::ok(explain::render(&answer))
    }
}
