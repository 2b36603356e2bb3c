//! `explain`: why a person may or may not open a session on a target, role by role, in the words
//! the bastion itself would use.
//!
//! Nothing here decides anew. The overall answer is [`access::decide`]'s, with the person's
//! grants as stored; each role's answer is `decide` again with the role named (what
//! `ssh bastion TARGET:ROLE …` would say); what the role's rules make of the command is
//! [`access::allowed_action`] (the check a session under a live grant makes), with each rule's
//! own verdict from [`rules::AllowList::verdicts`]; and the people who could approve a request
//! are those [`grants::may_decide`] admits for a request as it would be filed now. So an
//! explanation and a denial can never disagree, and a policy directory that is not loaded yet can
//! be explained exactly as it would behave once it is.

mod text;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::access::{self, Action, Allowed, Denial, Permit, SessionRequest};
use crate::grants::{self, Grant, GrantState, Timestamp};
use crate::outcome::DenialClass;
use crate::policy::{Policy, Role, ShellMode, User, rules};

pub use text::render;

/// Who the explanation is for, which decides how much it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// An operator at the `gatehouse` command line: every role that covers the target, and
    /// whether the target exists.
    Operator,
    /// The person themselves, over SSH: only the roles they are a member of, and nothing that
    /// tells a target they may not use from one that does not exist (as a denial does not).
    Holder,
}

/// What to explain.
#[derive(Debug, Clone)]
pub struct Question<'a> {
    /// The policy to judge by (the one in force, or a directory not loaded yet).
    pub policy: &'a Policy,
    /// The person.
    pub user: &'a Arc<User>,
    /// Their grants as stored (any state; only live ones open sessions).
    pub grants: &'a [Grant],
    /// The session they would ask for.
    pub request: &'a SessionRequest,
    /// Now.
    pub now: Timestamp,
    /// How long requests stay pending, for who could still decide one.
    pub request_ttl: Duration,
    /// How much to show.
    pub audience: Audience,
}

/// The answer, as printed by `explain` and as its `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The person.
    pub user: String,
    /// The target as asked.
    pub target: String,
    /// The role named with `TARGET:ROLE`, if one was.
    pub role: Option<String>,
    /// The command as asked (`None`: an interactive session).
    pub command: Option<String>,
    /// When the question was answered (Unix seconds).
    pub at: Timestamp,
    /// Whether the policy has such a target (operators only; a holder is not told).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_known: Option<bool>,
    /// What the bastion would answer to this very request now.
    pub verdict: Verdict,
    /// Every role that covers the target (for a holder: those they are a member of).
    pub roles: Vec<RoleExplanation>,
}

/// A decision as the user would meet it: allowed, with what runs, or the denial's words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Whether the session would open.
    pub allowed: bool,
    /// The role it would run in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The grant it would run under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<i64>,
    /// What would run: `full shell`, `restricted shell`, or the command sent to the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs: Option<String>,
    /// The denial, word for word as after `gatehouse: denied: `.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The hint line that goes with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The class of the denial, as the audit log counts it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<DenialClass>,
}

/// One role that covers the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleExplanation {
    /// The role.
    pub role: String,
    /// `none`, `restricted` or `full`.
    pub shell: &'static str,
    /// Approvals a request needs (0: self-service).
    pub approvals: u32,
    /// The longest grant (as written in policies).
    pub max_duration: String,
    /// Whether it is an emergency role.
    pub break_glass: bool,
    /// Whether the person may hold it.
    pub member: bool,
    /// The role's member groups.
    pub member_groups: Vec<String>,
    /// The person's groups through which they are a member.
    pub member_via: Vec<String>,
    /// The live grant a session would use, if there is one.
    pub live_grant: Option<GrantBrief>,
    /// Their requests for it still waiting for approval.
    pub pending: Vec<GrantBrief>,
    /// What `ssh bastion TARGET:ROLE …` would answer now.
    pub now: Verdict,
    /// What the role lets this request do once a grant is live.
    pub with_grant: CommandCheck,
    /// Who could approve a request for it.
    pub approvers: Vec<String>,
    /// What the person can do next.
    pub next: String,
}

/// A grant, briefly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantBrief {
    /// Its id.
    pub id: i64,
    /// Its state now.
    pub state: &'static str,
    /// Its target or pattern.
    pub target: String,
    /// When it ends, once active.
    pub expires_at: Option<Timestamp>,
    /// Approvals so far.
    pub approvals: usize,
}

/// What a role's rules make of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandCheck {
    /// Whether the role allows it.
    pub allowed: bool,
    /// What would run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs: Option<String>,
    /// The rule that allows it (the first, in policy order).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Why not, in the denial's words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The denial's hint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Rules whose words fit but whose wildcards the option guard (or a pinned scope, or the
    /// harmless-subcommand check) refuses: the option or subcommand it would refuse.
    pub guard: Vec<RuleCheck>,
    /// Each rule's verdict, in policy order (empty when the role does not judge commands).
    pub rules: Vec<RuleCheck>,
}

/// One rule's verdict on the command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleCheck {
    /// The rule as written.
    pub rule: String,
    /// `allows`, `guarded` or `mismatch`.
    pub verdict: &'static str,
    /// Why, for `guarded` and `mismatch`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Verdict {
    fn of(decided: Result<Permit, Denial>) -> Verdict {
        match decided {
            Ok(permit) => Verdict {
                allowed: true,
                role: Some(permit.role().name.clone()),
                grant: Some(permit.grant_id()),
                runs: Some(runs(permit.allowed())),
                reason: None,
                hint: None,
                class: None,
            },
            Err(denial) => Verdict::denied(denial),
        }
    }

    fn denied(denial: Denial) -> Verdict {
        Verdict {
            allowed: false,
            role: None,
            grant: None,
            runs: None,
            reason: Some(denial.reason),
            hint: denial.hint,
            class: Some(denial.class),
        }
    }
}

/// What an allowed action runs, in a few words.
fn runs(allowed: &Allowed) -> String {
    match allowed {
        Allowed::Shell => "full shell".to_owned(),
        Allowed::RestrictedShell => "restricted shell".to_owned(),
        Allowed::Exec { command } => command.clone(),
        Allowed::Files => "file transfer (SFTP)".to_owned(),
        Allowed::Forward { destination } => format!("a connection to {destination}"),
    }
}

/// Answers the question.
pub fn explain(q: &Question<'_>) -> Explanation {
    let request = q.request;
    let target = q.policy.target(&request.target);
    let roles: Vec<&Arc<Role>> = match target {
        Some(t) => q
            .policy
            .roles()
            .filter(|r| r.covers(t))
            .filter(|r| q.audience == Audience::Operator || r.has_member(q.user))
            .collect(),
        None => Vec::new(),
    };
    Explanation {
        user: q.user.name.clone(),
        target: request.target.clone(),
        role: request.role.clone(),
        command: match &request.action {
            Action::Exec(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            Action::Interactive { .. } | Action::Files => None,
        },
        at: q.now,
        target_known: (q.audience == Audience::Operator).then_some(target.is_some()),
        verdict: Verdict::of(access::decide(q.policy, q.user, q.grants, request, q.now)),
        roles: roles.into_iter().map(|r| explain_role(q, r)).collect(),
    }
}

/// One role's part.
fn explain_role(q: &Question<'_>, role: &Arc<Role>) -> RoleExplanation {
    let user = q.user;
    let target = &q.request.target;
    let member_via: Vec<String> = user
        .groups
        .iter()
        .filter(|g| role.members.contains(g))
        .cloned()
        .collect();
    let mine = |g: &&Grant| g.user == user.name && g.role == role.name && g.covers(target);
    let live_grant = q
        .grants
        .iter()
        .filter(mine)
        .filter(|g| g.is_live(q.now))
        .max_by_key(|g| g.expires_at)
        .map(|g| brief(g, q));
    let pending: Vec<GrantBrief> = q
        .grants
        .iter()
        .filter(mine)
        .filter(|g| g.state_at(q.now, q.request_ttl) == GrantState::Pending)
        .map(|g| brief(g, q))
        .collect();
    let named = SessionRequest {
        role: Some(role.name.clone()),
        ..q.request.clone()
    };
    let now = Verdict::of(access::decide(q.policy, user, q.grants, &named, q.now));
    let approvers = approvers(q, role);
    let next = next_step(q, role, !member_via.is_empty(), &live_grant, &pending);
    RoleExplanation {
        role: role.name.clone(),
        shell: role.shell.as_str(),
        approvals: role.approvals,
        max_duration: crate::duration::format(role.max_duration),
        break_glass: role.break_glass,
        member: role.has_member(user),
        member_groups: role.members.clone(),
        member_via,
        live_grant,
        pending,
        now,
        with_grant: command_check(role, &q.request.action),
        approvers,
        next,
    }
}

fn brief(g: &Grant, q: &Question<'_>) -> GrantBrief {
    GrantBrief {
        id: g.id,
        state: g.state_at(q.now, q.request_ttl).as_str(),
        target: g.target.clone(),
        expires_at: g.expires_at,
        approvals: g.approvals.len(),
    }
}

/// What the role's rules make of the action, as a session under a live grant would be told.
pub fn command_check(role: &Role, action: &Action) -> CommandCheck {
    let decided = access::allowed_action(role, action);
    let mut check = match decided {
        Ok(allowed) => CommandCheck {
            allowed: true,
            runs: Some(runs(&allowed)),
            rule: None,
            reason: None,
            hint: None,
            guard: Vec::new(),
            rules: Vec::new(),
        },
        Err(denial) => CommandCheck {
            allowed: false,
            runs: None,
            rule: None,
            reason: Some(denial.reason),
            hint: denial.hint,
            guard: Vec::new(),
            rules: Vec::new(),
        },
    };
    let Action::Exec(bytes) = action else {
        return check;
    };
    if role.shell == ShellMode::Full {
        return check;
    }
    let Ok(argv) = rules::tokenize(bytes) else {
        return check;
    };
    check.rule = role
        .allow
        .admit(&argv)
        .ok()
        .map(|rule| rule.source().to_owned());
    for (rule, verdict) in role.allow.verdicts(&argv) {
        let (word, detail) = match verdict {
            rules::RuleVerdict::Allows => ("allows", None),
            rules::RuleVerdict::Guarded(why) => ("guarded", Some(why)),
            rules::RuleVerdict::Mismatch(why) => ("mismatch", Some(why)),
        };
        let line = RuleCheck {
            rule: rule.source().to_owned(),
            verdict: word,
            detail,
        };
        if word == "guarded" {
            check.guard.push(line.clone());
        }
        check.rules.push(line);
    }
    check
}

/// The people who could approve a request for `role` filed by the person now: those
/// [`grants::may_decide`] admits for exactly such a request.
fn approvers(q: &Question<'_>, role: &Role) -> Vec<String> {
    if role.approvals == 0 || role.break_glass {
        return Vec::new();
    }
    let probe = Grant {
        id: 0,
        user: q.user.name.clone(),
        role: role.name.clone(),
        target: q.request.target.clone(),
        reason: String::new(),
        duration: role.max_duration,
        state: GrantState::Pending,
        break_glass: false,
        requested_at: q.now,
        activated_at: None,
        expires_at: None,
        ended_at: None,
        ended_by: None,
        end_reason: None,
        approvals: Vec::new(),
    };
    q.policy
        .users()
        .filter(|u| grants::may_decide(&probe, u, q.policy, q.now, q.request_ttl))
        .map(|u| u.name.clone())
        .collect()
}

/// The next thing the person can do about this role.
fn next_step(
    q: &Question<'_>,
    role: &Role,
    member: bool,
    live: &Option<GrantBrief>,
    pending: &[GrantBrief],
) -> String {
    let target = &q.request.target;
    if !member {
        return format!(
            "not a member: only members of {} may hold it (a policy change)",
            role.members.join(", ")
        );
    }
    if let Some(g) = live {
        return format!(
            "grant {} is live: ssh bastion {target}:{} …",
            g.id, role.name
        );
    }
    if role.break_glass {
        return format!("in an emergency: ssh bastion breakglass {target} --reason TEXT");
    }
    if let Some(p) = pending.first() {
        return format!(
            "request {} is waiting for approval ({} of {})",
            p.id, p.approvals, role.approvals
        );
    }
    let request = format!(
        "ssh bastion request {target} --role {} --for {} --reason TEXT",
        role.name,
        crate::duration::format(role.max_duration.min(Duration::from_secs(3600)))
    );
    if role.approvals == 0 {
        format!("{request} (self-service: active at once)")
    } else {
        format!(
            "{request}, then {} approval(s) by an approver of the role",
            role.approvals
        )
    }
}

#[cfg(test)]
mod tests;
