//! What the policy entitles people to, and how much of it they used: the roles, standing
//! privilege, the grants active at the end of the period, and the entitlements with no use.
//!
//! Which rule allowed a command is asked of the role's own allow-list
//! ([`crate::policy::rules::AllowList::admit`]), the same check that let the command run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::grants::Grant;
use crate::policy::{Policy, Role, ShellMode, rules};

use super::facts::Facts;
use super::model::{
    ActiveGrant, Membership, RoleRules, RoleSummary, RuleRef, RuleUse, Standing, StandingRole,
    Unused,
};
use super::timing::grant_end;

/// Every role with who may hold it, what it covers and what it allows.
pub fn roles(policy: &Policy) -> Vec<RoleSummary> {
    policy
        .roles()
        .map(|r| RoleSummary {
            role: r.name.clone(),
            shell: r.shell.as_str().to_owned(),
            approvals: r.approvals,
            approvers: r.approvers.clone(),
            max_duration: r.max_duration.as_secs(),
            break_glass: r.break_glass,
            members: holders(policy, r),
            targets: policy.targets_of(r).map(|t| t.name.clone()).collect(),
            rules: r.commands.clone(),
        })
        .collect()
}

fn holders(policy: &Policy, role: &Role) -> Vec<String> {
    policy
        .users()
        .filter(|u| role.has_member(u))
        .map(|u| u.name.clone())
        .collect()
}

/// Roles that carry standing privilege, and the grants active at the end of the period.
pub fn standing(policy: &Policy, facts: &Facts, long_after: Duration) -> Standing {
    let roles = policy
        .roles()
        .filter_map(|r| {
            let mut why = Vec::new();
            if r.approvals == 0 && !r.break_glass {
                why.push("self-service".to_owned());
            }
            if r.shell == ShellMode::Full {
                why.push("full shell".to_owned());
            }
            if r.break_glass {
                why.push("break-glass".to_owned());
            }
            if r.max_duration > long_after {
                why.push("long max_duration".to_owned());
            }
            (!why.is_empty()).then(|| StandingRole {
                role: r.name.clone(),
                why,
                max_duration: r.max_duration.as_secs(),
                holders: holders(policy, r),
            })
        })
        .collect();
    let at = facts.until.min(facts.now);
    let mut active: Vec<ActiveGrant> = facts
        .grants
        .iter()
        .filter_map(|g| active_at(g, at))
        .collect();
    active.sort_by_key(|g| g.id);
    Standing {
        long_after: long_after.as_secs(),
        roles,
        active_at: at,
        active,
    }
}

/// The grant as active at `at`, if it was.
fn active_at(g: &Grant, at: i64) -> Option<ActiveGrant> {
    let start = g.activated_at?;
    let end = grant_end(g)?;
    (start <= at && at < end).then(|| ActiveGrant {
        id: g.id,
        user: g.user.clone(),
        role: g.role.clone(),
        target: g.target.clone(),
        break_glass: g.break_glass,
        activated_at: start,
        expires_at: end,
    })
}

/// Users, roles, targets, memberships and rules with no use in the period, and how often each
/// rule of a role with command rules was used.
pub fn unused(policy: &Policy, facts: &Facts) -> Unused {
    let mut users = BTreeSet::new();
    let mut roles = BTreeSet::new();
    let mut targets = BTreeSet::new();
    let mut pairs = BTreeSet::new();
    for s in &facts.sessions {
        users.insert(s.user.as_str());
        roles.insert(s.role.as_str());
        targets.insert(s.target.as_str());
        pairs.insert((s.role.as_str(), s.user.as_str()));
    }
    let mut memberships = Vec::new();
    for r in policy.roles() {
        for user in holders(policy, r) {
            if !pairs.contains(&(r.name.as_str(), user.as_str())) {
                memberships.push(Membership {
                    role: r.name.clone(),
                    user,
                });
            }
        }
    }
    let rule_use = rule_use(policy, facts);
    let rules = rule_use
        .iter()
        .flat_map(|r| {
            r.rules.iter().filter(|u| u.uses == 0).map(|u| RuleRef {
                role: r.role.clone(),
                rule: u.rule.clone(),
            })
        })
        .collect();
    Unused {
        users: policy
            .users()
            .filter(|u| !users.contains(u.name.as_str()))
            .map(|u| u.name.clone())
            .collect(),
        roles: policy
            .roles()
            .filter(|r| !roles.contains(r.name.as_str()))
            .map(|r| r.name.clone())
            .collect(),
        targets: policy
            .targets()
            .filter(|t| !targets.contains(t.name.as_str()))
            .map(|t| t.name.clone())
            .collect(),
        rules,
        memberships,
        rule_use,
    }
}

/// For each role whose commands are judged by its rules: which commands of the period each
/// rule allowed (exec sessions' commands, and the lines restricted shells ran).
fn rule_use(policy: &Policy, facts: &Facts) -> Vec<RoleRules> {
    let mut commands: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    for s in &facts.sessions {
        let lines: Vec<&str> = match s.kind.as_str() {
            "exec" => s.command.as_deref().into_iter().collect(),
            "restricted" => facts
                .shell_lines
                .get(&s.id)
                .map(|l| l.iter().map(String::as_str).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        for line in lines {
            commands
                .entry(s.role.as_str())
                .or_default()
                .push((s.id.as_str(), line));
        }
    }
    policy
        .roles()
        .filter(|r| r.shell != ShellMode::Full && !r.allow.rules().is_empty())
        .map(|r| {
            let mut uses: Vec<RuleUse> = r
                .allow
                .rules()
                .iter()
                .map(|rule| RuleUse {
                    rule: rule.source().to_owned(),
                    uses: 0,
                    sessions: Vec::new(),
                })
                .collect();
            let mut unmatched = 0;
            for (session, line) in commands.get(r.name.as_str()).into_iter().flatten() {
                let allowed = rules::tokenize(line.as_bytes())
                    .ok()
                    .and_then(|argv| r.allow.admit(&argv).ok().map(|rule| rule.source()));
                let found = allowed.and_then(|rule| uses.iter_mut().find(|u| u.rule == rule));
                match found {
                    Some(u) => {
                        u.uses += 1;
                        if u.sessions.last().map(String::as_str) != Some(session) {
                            u.sessions.push((*session).to_owned());
                        }
                    }
                    None => unmatched += 1,
                }
            }
            RoleRules {
                role: r.name.clone(),
                shell: r.shell.as_str().to_owned(),
                rules: uses,
                unmatched,
            }
        })
        .collect()
}
