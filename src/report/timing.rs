//! Time, approvals and break-glass: what grants were asked for, given and used, who approved
//! them and how fast, and every emergency use with its alert and its review.

use std::collections::{BTreeMap, HashMap};

use crate::grants::{Grant, GrantState, Timestamp};
use crate::store::sessions::SessionRecord;

use super::facts::Facts;
use super::model::{
    AlertDelivery, ApprovalPair, Approvals, BreakGlassUse, GrantTime, Latency, ReviewState,
    RoleTime, Stats, Time,
};

/// The sessions of the period by grant id.
pub type ByGrant<'a> = HashMap<i64, Vec<&'a SessionRecord>>;

/// Groups the period's sessions by their grant.
pub fn sessions_by_grant(facts: &Facts) -> ByGrant<'_> {
    let mut by: ByGrant<'_> = HashMap::new();
    for s in &facts.sessions {
        by.entry(s.grant_id).or_default().push(s);
    }
    for list in by.values_mut() {
        list.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
    }
    by
}

/// When a grant stopped (or stops) being live, if it ever was: its revocation, or its end.
pub fn grant_end(g: &Grant) -> Option<Timestamp> {
    g.activated_at?;
    match g.state {
        GrantState::Revoked => g.ended_at.or(g.expires_at),
        _ => g.expires_at,
    }
}

/// Minimum, median, maximum and total of `values`.
pub fn stats(mut values: Vec<u64>) -> Stats {
    if values.is_empty() {
        return Stats::default();
    }
    values.sort_unstable();
    Stats {
        count: values.len() as u64,
        total: values.iter().sum(),
        min: values[0],
        median: values[(values.len() - 1) / 2],
        max: values[values.len() - 1],
    }
}

/// Seconds of `g`'s live time during which at least one of `sessions` ran (overlapping
/// sessions count once); a session with no recorded end runs to the grant's end or now.
pub fn used_seconds(g: &Grant, sessions: &[&SessionRecord], now: Timestamp) -> u64 {
    let (Some(start), Some(end)) = (g.activated_at, grant_end(g)) else {
        return 0;
    };
    let end = end.min(now);
    let mut spans: Vec<(i64, i64)> = sessions
        .iter()
        .map(|s| (s.started_at.max(start), s.ended_at.unwrap_or(end).min(end)))
        .filter(|(a, b)| b > a)
        .collect();
    spans.sort_unstable();
    let mut total = 0u64;
    let mut current: Option<(i64, i64)> = None;
    for (a, b) in spans {
        current = match current {
            Some((ca, cb)) if a <= cb => Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                total += (cb - ca) as u64;
                Some((a, b))
            }
            None => Some((a, b)),
        };
    }
    if let Some((a, b)) = current {
        total += (b - a) as u64;
    }
    total
}

/// The grants requested in the period, by id.
pub fn in_period(facts: &Facts) -> Vec<&Grant> {
    let mut found: Vec<&Grant> = facts
        .grants
        .iter()
        .filter(|g| g.requested_at >= facts.since && g.requested_at < facts.until)
        .collect();
    found.sort_by_key(|g| g.id);
    found
}

fn state(g: &Grant, facts: &Facts) -> GrantState {
    g.state_at(facts.now, facts.request_ttl)
}

/// One role's grants, gathered before they are summed up.
#[derive(Default)]
struct RoleTotals {
    requested: Vec<u64>,
    granted: Vec<u64>,
    used: u64,
    grants: Vec<i64>,
}

/// The time section.
pub fn time(facts: &Facts, grants: &[&Grant], by_grant: &ByGrant<'_>) -> Time {
    let mut rows = Vec::with_capacity(grants.len());
    let mut roles: BTreeMap<&str, RoleTotals> = BTreeMap::new();
    let mut expired = Vec::new();
    let mut revoked = Vec::new();
    for g in grants {
        let sessions = by_grant.get(&g.id).map(Vec::as_slice).unwrap_or(&[]);
        let granted = match (g.activated_at, grant_end(g)) {
            (Some(a), Some(e)) => Some(e.saturating_sub(a).max(0) as u64),
            _ => None,
        };
        let used = used_seconds(g, sessions, facts.now);
        let now_state = state(g, facts);
        match now_state {
            GrantState::Expired => expired.push(g.id),
            GrantState::Revoked => revoked.push(g.id),
            _ => {}
        }
        let role = roles.entry(g.role.as_str()).or_default();
        role.requested.push(g.duration.as_secs());
        role.granted.extend(granted);
        role.used += used;
        role.grants.push(g.id);
        rows.push(GrantTime {
            id: g.id,
            user: g.user.clone(),
            role: g.role.clone(),
            target: g.target.clone(),
            state: now_state.as_str().to_owned(),
            break_glass: g.break_glass,
            requested_at: g.requested_at,
            activated_at: g.activated_at,
            ends_at: grant_end(g),
            requested: g.duration.as_secs(),
            granted,
            used,
            ended_by: g.ended_by.clone(),
            sessions: sessions.iter().map(|s| s.id.clone()).collect(),
        });
    }
    let roles = roles
        .into_iter()
        .map(|(role, totals)| {
            let granted = stats(totals.granted);
            RoleTime {
                role: role.to_owned(),
                requested: stats(totals.requested),
                used_percent: (granted.total > 0)
                    .then(|| (totals.used as f64 * 1000.0 / granted.total as f64).round() / 10.0),
                granted,
                used: totals.used,
                grants: totals.grants,
            }
        })
        .collect();
    Time {
        roles,
        grants: rows,
        expired,
        revoked,
    }
}

/// The approvals section.
pub fn approvals(facts: &Facts, grants: &[&Grant]) -> Approvals {
    let mut pairs: BTreeMap<(&str, &str), Vec<i64>> = BTreeMap::new();
    let mut latency = Vec::new();
    let mut denied = Vec::new();
    let mut lapsed = Vec::new();
    for g in grants {
        for a in &g.approvals {
            pairs
                .entry((a.approver.as_str(), g.user.as_str()))
                .or_default()
                .push(g.id);
        }
        if let (false, Some(active)) = (g.approvals.is_empty(), g.activated_at) {
            latency.push(Latency {
                grant: g.id,
                role: g.role.clone(),
                requester: g.user.clone(),
                approvers: g.approvals.iter().map(|a| a.approver.clone()).collect(),
                seconds: active.saturating_sub(g.requested_at).max(0) as u64,
            });
        }
        match state(g, facts) {
            GrantState::Denied => denied.push(g.id),
            GrantState::Lapsed => lapsed.push(g.id),
            _ => {}
        }
    }
    let refusals = facts.refusals.clone();
    let self_approvals_refused = refusals
        .iter()
        .filter(|r| r.refusal == "self_approval")
        .count() as u64;
    Approvals {
        pairs: pairs
            .into_iter()
            .map(|((approver, requester), grants)| ApprovalPair {
                approver: approver.to_owned(),
                requester: requester.to_owned(),
                grants,
            })
            .collect(),
        latency_stats: stats(latency.iter().map(|l| l.seconds).collect()),
        latency,
        denied,
        lapsed,
        other_refusals: refusals.len() as u64 - self_approvals_refused,
        self_approvals_refused,
        refusals,
    }
}

/// Every break-glass use of the period, unreviewed first, then by time.
pub fn break_glass(facts: &Facts, grants: &[&Grant], by_grant: &ByGrant<'_>) -> Vec<BreakGlassUse> {
    let mut uses: Vec<BreakGlassUse> = grants
        .iter()
        .filter(|g| g.break_glass)
        .map(|g| {
            let sessions = by_grant.get(&g.id).map(Vec::as_slice).unwrap_or(&[]);
            let at = g.activated_at.unwrap_or(g.requested_at);
            BreakGlassUse {
                grant: g.id,
                user: g.user.clone(),
                role: g.role.clone(),
                target: g.target.clone(),
                reason: g.reason.clone(),
                at,
                granted: grant_end(g).map_or(0, |e| e.saturating_sub(at).max(0) as u64),
                used: used_seconds(g, sessions, facts.now),
                state: state(g, facts).as_str().to_owned(),
                sessions: sessions.iter().map(|s| s.id.clone()).collect(),
                alert: alert(facts, g.id),
                review: review(facts, sessions, at),
            }
        })
        .collect();
    let rank = |u: &BreakGlassUse| match u.review.state.as_str() {
        "unreviewed" => 0,
        "partly reviewed" => 1,
        "no session" => 2,
        _ => 3,
    };
    uses.sort_by_key(|u| (rank(u), u.at, u.grant));
    uses
}

fn alert(facts: &Facts, grant: i64) -> AlertDelivery {
    let Some(sent) = facts.alerts.get(&grant) else {
        return AlertDelivery {
            state: "not recorded".to_owned(),
            alert_id: None,
            sinks: Vec::new(),
            at_once: Vec::new(),
            delivered: Vec::new(),
            failed_attempts: 0,
        };
    };
    let later = sent
        .alert_id
        .as_ref()
        .and_then(|id| facts.deliveries.get(id));
    let mut delivered: Vec<String> = sent.acknowledged.clone();
    if let Some(later) = later {
        delivered.extend(later.sinks.iter().cloned());
    }
    delivered.sort();
    delivered.dedup();
    let all = sent.sinks.iter().all(|s| delivered.contains(s));
    let state = if sent.sinks.is_empty() {
        "no sinks"
    } else if all {
        "delivered"
    } else if delivered.is_empty() {
        "undelivered"
    } else {
        "partly delivered"
    };
    AlertDelivery {
        state: state.to_owned(),
        alert_id: sent.alert_id.clone(),
        sinks: sent.sinks.clone(),
        at_once: sent.acknowledged.clone(),
        delivered,
        failed_attempts: later.map_or(0, |l| l.failed),
    }
}

fn review(facts: &Facts, sessions: &[&SessionRecord], at: Timestamp) -> ReviewState {
    let reviews: Vec<_> = sessions
        .iter()
        .filter_map(|s| facts.reviews.get(&s.id))
        .collect();
    let state = match (sessions.len(), reviews.len()) {
        (0, _) => "no session",
        (n, r) if r == n => "reviewed",
        (_, 0) => "unreviewed",
        _ => "partly reviewed",
    };
    let mut reviewers: Vec<String> = reviews.iter().map(|r| r.reviewer.clone()).collect();
    reviewers.sort();
    reviewers.dedup();
    let reviewed_at = reviews.iter().map(|r| r.at).max();
    ReviewState {
        state: state.to_owned(),
        reviewers,
        reviewed_at,
        seconds_to_review: reviewed_at
            .filter(|_| state == "reviewed")
            .map(|r| r.saturating_sub(at).max(0) as u64),
        notes: reviews.iter().map(|r| r.note.clone()).collect(),
    }
}
