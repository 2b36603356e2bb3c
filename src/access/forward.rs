//! The decision for a forwarded connection (`ssh -L`, `ssh -W`): which live grant, if any,
//! lets this person reach this destination now.
//!
//! A destination is allowed through a live grant of a role that lists it in `forward` (named
//! as the list names it) and that the user is still a member of. The permit's target is the
//! grant's target (for a grant on a pattern, the first target by name that the pattern and the
//! role both cover), so the connection is indexed, watched and ended with that grant like any
//! session on it.

use std::sync::Arc;

use super::{Allowed, Denial, Permit};
use crate::forward::Destination;
use crate::grants::{Grant, Timestamp};
use crate::outcome::DenialClass;
use crate::policy::{Policy, Role, Target, User};

/// Decides a forward to `wanted` for `user`, given the user's grants and the time.
pub fn decide_forward(
    policy: &Policy,
    user: &Arc<User>,
    grants: &[Grant],
    wanted: &Destination,
    now: Timestamp,
) -> Result<Permit, Denial> {
    let mut candidates: Vec<(&Grant, &Arc<Role>, &Arc<Target>)> = Vec::new();
    for grant in grants
        .iter()
        .filter(|g| g.user == user.name && g.is_live(now))
    {
        let Some(role) = policy.role(&grant.role) else {
            continue;
        };
        if !role.has_member(user) || !role.forward.contains(wanted) {
            continue;
        }
        let target = match policy.target(&grant.target) {
            Some(t) if role.covers(t) => Some(t),
            Some(_) => None,
            None => policy.targets_of(role).find(|t| grant.covers(&t.name)),
        };
        if let Some(target) = target {
            candidates.push((grant, role, target));
        }
    }
    // Of several, the grant that lasts longest.
    candidates.sort_by_key(|(g, _, _)| std::cmp::Reverse(g.expires_at));
    let Some(&(grant, role, target)) = candidates.first() else {
        return Err(no_forward(policy, user, wanted));
    };
    Ok(Permit {
        user: user.clone(),
        target: target.clone(),
        role: role.clone(),
        grant_id: grant.id,
        expires_at: grant.expires_at.unwrap_or(now),
        break_glass: grant.break_glass,
        allowed: Allowed::Forward {
            destination: wanted.clone(),
        },
        login_key: None,
    })
}

/// The denial for a destination no live grant allows, with the roles that would.
fn no_forward(policy: &Policy, user: &User, wanted: &Destination) -> Denial {
    let roles: Vec<&str> = policy
        .roles()
        .filter(|r| r.has_member(user) && r.forward.contains(wanted))
        .map(|r| r.name.as_str())
        .collect();
    if roles.is_empty() {
        return Denial::new(
            DenialClass::Policy,
            format!("no role of yours allows forwarding to {wanted}"),
        );
    }
    Denial::new(
        DenialClass::NoGrant,
        format!("you hold no active grant of a role that allows forwarding to {wanted}"),
    )
    .with_hint(format!(
        "request a grant of {}: ssh bastion request TARGET --role ROLE --for 1h --reason TEXT",
        roles.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::grants::GrantState;
    use crate::policy::load_sources;
    use crate::testing::test_key;

    fn policy() -> Policy {
        let text = format!(
            "[[user]]\nname = \"alice\"\nkeys = [\"{}\"]\ngroups = [\"sre\"]\n\
             [[user]]\nname = \"eve\"\nkeys = [\"{}\"]\ngroups = [\"qa\"]\n\
             [[target]]\nname = \"db-01\"\naddress = \"127.0.0.1\"\nhost_keys = [\"{}\"]\n\
             [[target]]\nname = \"db-replica-01\"\naddress = \"10.0.4.20\"\nhost_keys = [\"{}\"]\n\
             [[role]]\nname = \"db-ops\"\nmembers = [\"sre\", \"qa\"]\ntargets = [\"db-*\"]\nlogin = \"ops\"\napprovals = 0\n\
             forward = [\"db-replica-01:5432\", \"127.0.0.1:9090\"]\n\
             [[role]]\nname = \"plain\"\nmembers = [\"sre\"]\ntargets = [\"db-01\"]\nlogin = \"ops\"\napprovals = 0\ncommands = [\"uptime\"]\n",
            test_key(1),
            test_key(2),
            test_key(3),
            test_key(4)
        );
        load_sources(&[(std::path::Path::new("p.toml"), &text)]).unwrap()
    }

    fn grant(id: i64, user: &str, role: &str, target: &str, expires: Timestamp) -> Grant {
        Grant {
            id,
            user: user.into(),
            role: role.into(),
            target: target.into(),
            reason: "INC-1".into(),
            duration: Duration::from_secs(3600),
            state: GrantState::Active,
            break_glass: false,
            requested_at: 0,
            activated_at: Some(0),
            expires_at: Some(expires),
            ended_at: None,
            ended_by: None,
            end_reason: None,
            approvals: vec![],
        }
    }

    fn dest(text: &str) -> Destination {
        Destination::parse(text).unwrap()
    }

    #[test]
    fn a_listed_destination_needs_a_live_grant_of_a_role_listing_it() {
        let p = policy();
        let alice = p.user("alice").unwrap();
        let held = [grant(3, "alice", "db-ops", "db-01", 1000)];
        let permit = decide_forward(&p, alice, &held, &dest("db-replica-01:5432"), 10).unwrap();
        assert_eq!(permit.grant_id(), 3);
        assert_eq!(permit.target().name, "db-01");
        assert_eq!(
            permit.allowed(),
            &Allowed::Forward {
                destination: dest("db-replica-01:5432")
            }
        );
        assert!(decide_forward(&p, alice, &held, &dest("127.0.0.1:9090"), 10).is_ok());
        // Named otherwise, on another port, or not listed at all.
        for other in [
            "10.0.4.20:5432",
            "db-replica-01:5433",
            "127.0.0.1:22",
            "localhost:9090",
        ] {
            let d = decide_forward(&p, alice, &held, &dest(other), 10).unwrap_err();
            assert_eq!(d.class, DenialClass::Policy, "{other}");
        }
    }

    #[test]
    fn no_live_grant_is_a_denial_naming_the_roles_to_request() {
        let p = policy();
        let alice = p.user("alice").unwrap();
        let expired = [grant(3, "alice", "db-ops", "db-01", 10)];
        let d = decide_forward(&p, alice, &expired, &dest("db-replica-01:5432"), 10).unwrap_err();
        assert_eq!(d.class, DenialClass::NoGrant);
        assert!(d.hint.unwrap().contains("db-ops"));
        let other_role = [grant(4, "alice", "plain", "db-01", 1000)];
        assert!(decide_forward(&p, alice, &other_role, &dest("db-replica-01:5432"), 10).is_err());
        let someone_elses = [grant(5, "eve", "db-ops", "db-01", 1000)];
        assert!(
            decide_forward(&p, alice, &someone_elses, &dest("db-replica-01:5432"), 10).is_err()
        );
    }

    #[test]
    fn a_pattern_grant_forwards_under_a_target_it_covers_and_the_longest_grant_wins() {
        let p = policy();
        let alice = p.user("alice").unwrap();
        let held = [
            grant(6, "alice", "db-ops", "db-*", 500),
            grant(7, "alice", "db-ops", "db-01", 900),
        ];
        let permit = decide_forward(&p, alice, &held, &dest("db-replica-01:5432"), 10).unwrap();
        assert_eq!(permit.grant_id(), 7);
        let pattern = [grant(6, "alice", "db-ops", "db-*", 500)];
        let permit = decide_forward(&p, alice, &pattern, &dest("db-replica-01:5432"), 10).unwrap();
        assert_eq!(
            permit.target().name,
            "db-01",
            "the first covered target by name"
        );
    }
}
