//! From facts to a report: every number of the report is computed here, by pure functions of
//! the policy and the [`Facts`], so that each one has a unit test.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::policy::Policy;

use super::entitlements;
use super::facts::{Denied, Facts};
use super::model::{Count, Denials, Integrity, Meta, Report};
use super::timing;

/// Builds the report.
pub fn build(
    policy: &Policy,
    facts: &Facts,
    meta: Meta,
    integrity: Integrity,
    long_after: Duration,
) -> Report {
    let grants = timing::in_period(facts);
    let by_grant = timing::sessions_by_grant(facts);
    Report {
        meta,
        roles: entitlements::roles(policy),
        standing: entitlements::standing(policy, facts, long_after),
        time: timing::time(facts, &grants, &by_grant),
        approvals: timing::approvals(facts, &grants),
        break_glass: timing::break_glass(facts, &grants, &by_grant),
        unused: entitlements::unused(policy, facts),
        denials: denials(&facts.denials),
        integrity,
    }
}

/// The denials counted by reason, user, role and class.
pub fn denials(denied: &[Denied]) -> Denials {
    Denials {
        total: denied.len() as u64,
        by_reason: count(denied, |d| d.reason.clone()),
        by_user: count(denied, |d| d.user.clone()),
        by_role: count(denied, |d| d.role.clone().unwrap_or_else(|| "-".to_owned())),
        by_class: count(denied, |d| d.class.clone()),
    }
}

/// Counts by `key`, most frequent first, then by key.
fn count(denied: &[Denied], key: impl Fn(&Denied) -> String) -> Vec<Count> {
    let mut by: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for d in denied {
        by.entry(key(d)).or_default().push(d.seq);
    }
    let mut counts: Vec<Count> = by
        .into_iter()
        .map(|(key, seqs)| Count {
            key,
            count: seqs.len() as u64,
            seqs,
        })
        .collect();
    counts.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    counts
}

#[cfg(test)]
#[path = "aggregate_tests.rs"]
pub(crate) mod tests;
