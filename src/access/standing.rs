//! Whether a decision still stands: a permit (a live session) or a grant, read against the
//! policy in force now and the grant as last stored.
//!
//! A permit is decided once, but the session it opens lives on while policies are reloaded and
//! grants revoked. Everything here is a pure function of the policy, the grant and the clock,
//! so that the same answer closes live sessions after a reload, ends grants the policy no longer
//! supports, and stops a dial whose grant ended during its setup.

use std::sync::Arc;

use super::{Allowed, Denial, Permit};
use crate::grants::watch::{end_class, end_message};
use crate::grants::{Grant, GrantState, Timestamp};
use crate::outcome::{DenialClass, EndClass};
use crate::policy::{Policy, Role, ShellMode, Target, User, glob};

/// Why a session or a grant no longer stands. The text is what the user reads before the
/// session closes, and what the audit log keeps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Lapse {
    /// The user was removed from the policy.
    #[error("user {0} is no longer in the policy")]
    UserGone(String),
    /// The role was removed from the policy.
    #[error("role {0} is no longer in the policy")]
    RoleGone(String),
    /// The user is no longer in any of the role's member groups.
    #[error("{user} is no longer a member of role {role}")]
    NotMember {
        /// The user.
        user: String,
        /// The role.
        role: String,
    },
    /// The target was removed from the policy.
    #[error("target {0} is no longer in the policy")]
    TargetGone(String),
    /// The role no longer covers the target (or no longer lists the grant's target pattern).
    #[error("role {role} no longer covers target {target}")]
    NotCovered {
        /// The role.
        role: String,
        /// The target name or pattern.
        target: String,
    },
    /// The role no longer gives this kind of interactive session.
    #[error("role {role} no longer gives a {kind}")]
    ShellWithdrawn {
        /// The role.
        role: String,
        /// "full shell" or "restricted shell".
        kind: &'static str,
    },
    /// The role no longer allows file transfer, or forwarding to this destination.
    #[error("role {role} no longer allows {what}")]
    Withdrawn {
        /// The role.
        role: String,
        /// "file transfer" or "forwarding to HOST:PORT".
        what: String,
    },
    /// The grant is gone, or no longer covers the session; the text says how.
    #[error("{0}")]
    GrantEnded(String),
    /// The grant is no longer live: it was revoked or ran out (`state`); the text says how.
    #[error("{message}")]
    GrantOver {
        /// The state the grant ended in (an active grant past its end counts as expired).
        state: GrantState,
        /// What the user reads.
        message: String,
    },
    /// The key the session logged in with is no longer listed for the user (removed from the
    /// directory or from the policy files).
    #[error("the key {fingerprint} that {user} logged in with is no longer listed for them")]
    KeyWithdrawn {
        /// The user.
        user: String,
        /// The key's SHA-256 fingerprint.
        fingerprint: String,
    },
    /// The grant could not be read: nothing is started without a fresh look (fail closed).
    #[error("store unavailable: the grant cannot be checked now ({0})")]
    Unchecked(String),
}

impl Lapse {
    /// Whether the policy (rather than the grant's own life) is why it lapsed.
    pub fn is_policy(&self) -> bool {
        !matches!(
            self,
            Lapse::GrantEnded(_) | Lapse::GrantOver { .. } | Lapse::Unchecked(_)
        )
    }

    /// The class of a session refused for this lapse.
    pub fn denial_class(&self) -> DenialClass {
        match self {
            Lapse::GrantEnded(_) | Lapse::GrantOver { .. } => DenialClass::NoGrant,
            Lapse::Unchecked(_) => DenialClass::StoreUnavailable,
            _ => DenialClass::Policy,
        }
    }

    /// The class of a running session's end for this lapse.
    pub fn end_class(&self) -> EndClass {
        match self {
            Lapse::GrantOver { state, .. } => end_class(*state),
            Lapse::GrantEnded(_) | Lapse::Unchecked(_) => EndClass::Other,
            _ => EndClass::Policy,
        }
    }
}

/// A session's user, role and target, as a policy has them.
pub type Standing = (Arc<User>, Arc<Role>, Arc<Target>);

/// The user, role and target of a session as `policy` has them now, if the user is still a
/// member of the role and the role still covers the target.
pub fn standing(policy: &Policy, user: &str, role: &str, target: &str) -> Result<Standing, Lapse> {
    let user = policy
        .user(user)
        .ok_or_else(|| Lapse::UserGone(user.to_owned()))?;
    let role = policy
        .role(role)
        .ok_or_else(|| Lapse::RoleGone(role.to_owned()))?;
    if !role.has_member(user) {
        return Err(Lapse::NotMember {
            user: user.name.clone(),
            role: role.name.clone(),
        });
    }
    let target = policy
        .target(target)
        .ok_or_else(|| Lapse::TargetGone(target.to_owned()))?;
    if !role.covers(target) {
        return Err(Lapse::NotCovered {
            role: role.name.clone(),
            target: target.name.clone(),
        });
    }
    Ok((user.clone(), role.clone(), target.clone()))
}

/// Whether a pending or active grant is one that `policy` would still give: its user, its
/// role, the membership, and its target (a target the role covers, or a pattern the role
/// lists), read the way a request is checked.
pub fn grant_standing(policy: &Policy, grant: &Grant) -> Result<(), Lapse> {
    let user = policy
        .user(&grant.user)
        .ok_or_else(|| Lapse::UserGone(grant.user.clone()))?;
    let role = policy
        .role(&grant.role)
        .ok_or_else(|| Lapse::RoleGone(grant.role.clone()))?;
    if !role.has_member(user) {
        return Err(Lapse::NotMember {
            user: user.name.clone(),
            role: role.name.clone(),
        });
    }
    let covered = match policy.target(&grant.target) {
        Some(target) => role.covers(target),
        None if glob::is_pattern(&grant.target) => role.targets.iter().any(|p| p == &grant.target),
        None => return Err(Lapse::TargetGone(grant.target.clone())),
    };
    if covered {
        Ok(())
    } else {
        Err(Lapse::NotCovered {
            role: role.name.clone(),
            target: grant.target.clone(),
        })
    }
}

/// Proof that a permit was confirmed against its grant, as just read, and the policy in force:
/// only a confirmed permit sends the request that starts something on a target.
#[derive(Debug)]
pub struct Confirmed<'p> {
    permit: &'p Permit,
}

impl Confirmed<'_> {
    /// The permit that was confirmed.
    pub fn permit(&self) -> &Permit {
        self.permit
    }
}

impl Permit {
    /// This permit, tied to the key the user logged in with (its SHA-256 fingerprint; `None`
    /// for a certificate): the session stands only while that key is listed for the user.
    pub fn logged_in_with(self, key: Option<String>) -> Permit {
        Permit {
            login_key: key,
            ..self
        }
    }

    /// The permit as `policy` would give it now: the same person, role, target, grant and
    /// action, with their current definitions (a changed host key or login applies to the next
    /// dial), or why the session no longer stands. A command rule that was removed does not
    /// lapse a permit; each restricted-shell line is checked against the rules in force on its
    /// own (see [`Permit::for_line`]).
    pub fn renewed(&self, policy: &Policy) -> Result<Permit, Lapse> {
        let (user, role, target) =
            standing(policy, &self.user.name, &self.role.name, &self.target.name)?;
        if let Some(fp) = &self.login_key
            && !user.lists_key(fp)
        {
            return Err(Lapse::KeyWithdrawn {
                user: user.name.clone(),
                fingerprint: fp.clone(),
            });
        }
        let withdrawn = match (&self.allowed, role.shell) {
            (Allowed::Shell, ShellMode::None | ShellMode::Restricted) => Some("full shell"),
            (Allowed::RestrictedShell, ShellMode::None) => Some("restricted shell"),
            _ => None,
        };
        if let Some(kind) = withdrawn {
            return Err(Lapse::ShellWithdrawn {
                role: role.name.clone(),
                kind,
            });
        }
        let transfer = match &self.allowed {
            Allowed::Files if role.files.is_none() => Some("file transfer".to_owned()),
            Allowed::Forward { destination } if !role.forward.contains(destination) => {
                Some(format!("forwarding to {destination}"))
            }
            _ => None,
        };
        if let Some(what) = transfer {
            return Err(Lapse::Withdrawn {
                role: role.name.clone(),
                what,
            });
        }
        Ok(Permit {
            user,
            role,
            target,
            ..self.clone()
        })
    }

    /// Confirms the permit against `fresh`, its grant as just read from the store, and against
    /// `policy`, the policy in force now.
    pub fn confirm(
        &self,
        policy: &Policy,
        fresh: Option<&Grant>,
        now: Timestamp,
    ) -> Result<Confirmed<'_>, Lapse> {
        let id = self.grant_id;
        let grant = fresh
            .filter(|g| g.id == id)
            .ok_or_else(|| Lapse::GrantEnded(format!("grant {id} no longer exists")))?;
        if !grant.is_live(now) {
            let state = match grant.state {
                GrantState::Active => GrantState::Expired,
                other => other,
            };
            return Err(Lapse::GrantOver {
                state,
                message: end_message(
                    id,
                    state,
                    grant.ended_by.as_deref(),
                    grant.end_reason.as_deref(),
                ),
            });
        }
        if grant.user != self.user.name
            || grant.role != self.role.name
            || !grant.covers(&self.target.name)
        {
            return Err(Lapse::GrantEnded(format!(
                "grant {id} does not cover this session"
            )));
        }
        self.renewed(policy)?;
        Ok(Confirmed { permit: self })
    }

    /// A permit for one line of a restricted shell, `argv` as tokenised, checked against the
    /// rules of this permit's role. Call it on a permit [`renewed`](Permit::renewed) from the
    /// policy in force, so that a rule removed by a reload no longer runs.
    pub fn for_line(&self, argv: &[String]) -> Result<Permit, Denial> {
        if self.allowed != Allowed::RestrictedShell {
            return Err(Denial::new(
                DenialClass::Policy,
                "this session has no restricted shell",
            ));
        }
        self.role.allow.check(argv).map_err(Denial::from)?;
        Ok(Permit {
            allowed: Allowed::Exec {
                command: crate::policy::rules::quote(argv),
            },
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::access::{Action, SessionRequest, decide};
    use crate::policy::load_sources;
    use crate::testing::test_key;

    fn grant(id: i64, user: &str, role: &str, target: &str, state: GrantState) -> Grant {
        Grant {
            id,
            user: user.into(),
            role: role.into(),
            target: target.into(),
            reason: "INC-1".into(),
            duration: Duration::from_secs(3600),
            state,
            break_glass: false,
            requested_at: 0,
            activated_at: Some(0),
            expires_at: Some(1000),
            ended_at: None,
            ended_by: None,
            end_reason: None,
            approvals: vec![],
        }
    }

    fn permit(p: &Policy, role: &str, action: Action) -> Permit {
        let alice = p.user("alice").unwrap();
        let g = [grant(7, "alice", role, "web-01", GrantState::Active)];
        let request = SessionRequest {
            target: "web-01".into(),
            role: Some(role.into()),
            action,
        };
        decide(p, alice, &g, &request, 10).unwrap()
    }

    /// The sample policy with one substitution in its text.
    fn edited(from: &str, to: &str) -> Policy {
        let base = sample_policy_text();
        assert!(base.contains(from), "{from:?} is not in the sample policy");
        let text = base.replacen(from, to, 1);
        load_sources(&[(std::path::Path::new("p.toml"), &text)]).unwrap()
    }

    fn sample_policy_text() -> String {
        format!(
            "[[user]]\nname = \"alice\"\nkeys = [\"{}\"]\ngroups = [\"sre\"]\n\
             [[user]]\nname = \"bob\"\nkeys = [\"{}\"]\ngroups = [\"leads\", \"oncall\"]\n\
             [[user]]\nname = \"carol\"\nkeys = [\"{}\"]\ngroups = [\"sre\"]\n\
             [[target]]\nname = \"web-01\"\naddress = \"127.0.0.1\"\nhost_keys = [\"{}\"]\n\
             [[target]]\nname = \"web-02\"\naddress = \"127.0.0.1\"\nhost_keys = [\"{}\"]\n\
             [[role]]\nname = \"web-ops\"\nmembers = [\"sre\"]\ntargets = [\"web-*\"]\nlogin = \"ops\"\napprovers = [\"leads\"]\nshell = \"full\"\n\
             [[role]]\nname = \"web-read\"\nmembers = [\"sre\", \"oncall\"]\ntargets = [\"web-01\"]\nlogin = \"ops\"\napprovals = 0\nshell = \"restricted\"\ncommands = [\"uptime\", \"df -h\"]\n",
            test_key(1),
            test_key(2),
            test_key(3),
            test_key(4),
            test_key(5)
        )
    }

    fn base() -> Policy {
        load_sources(&[(std::path::Path::new("p.toml"), &sample_policy_text())]).unwrap()
    }

    #[test]
    fn a_session_lapses_when_its_user_role_membership_or_target_goes() {
        let p = base();
        let shell = permit(&p, "web-read", Action::Interactive { pty: true });
        assert!(shell.renewed(&p).is_ok());
        let cases = [
            (
                edited("name = \"alice\"", "name = \"alicia\""),
                Lapse::UserGone("alice".into()),
            ),
            (
                edited("name = \"web-read\"", "name = \"web-look\""),
                Lapse::RoleGone("web-read".into()),
            ),
            (
                edited("members = [\"sre\", \"oncall\"]", "members = [\"oncall\"]"),
                Lapse::NotMember {
                    user: "alice".into(),
                    role: "web-read".into(),
                },
            ),
            (
                edited("targets = [\"web-01\"]", "targets = [\"web-02\"]"),
                Lapse::NotCovered {
                    role: "web-read".into(),
                    target: "web-01".into(),
                },
            ),
            (
                edited("shell = \"restricted\"", "shell = \"none\""),
                Lapse::ShellWithdrawn {
                    role: "web-read".into(),
                    kind: "restricted shell",
                },
            ),
        ];
        for (policy, lapse) in cases {
            assert_eq!(shell.renewed(&policy).unwrap_err(), lapse);
            assert!(lapse.is_policy());
        }
        // A removed target: web-ops covers web-* and the session was on web-01.
        let full = permit(&p, "web-ops", Action::Exec(b"uptime".to_vec()));
        let text = sample_policy_text().replace("web-01", "web-09");
        let gone = load_sources(&[(std::path::Path::new("p.toml"), &text)]).unwrap();
        assert_eq!(
            full.renewed(&gone).unwrap_err(),
            Lapse::TargetGone("web-01".into())
        );
    }

    #[test]
    fn a_removed_command_rule_does_not_lapse_a_session_but_denies_the_next_line() {
        let p = base();
        let shell = permit(&p, "web-read", Action::Interactive { pty: true });
        let argv = vec!["df".to_owned(), "-h".to_owned()];
        assert!(shell.renewed(&p).unwrap().for_line(&argv).is_ok());
        let fewer = edited(
            "commands = [\"uptime\", \"df -h\"]",
            "commands = [\"uptime\"]",
        );
        let now = shell.renewed(&fewer).expect("the session stands");
        assert!(now.for_line(&argv).is_err(), "the rule in force now");
        let line = now.for_line(&["uptime".to_owned()]).unwrap();
        assert_eq!(
            line.allowed(),
            &Allowed::Exec {
                command: "'uptime'".into()
            }
        );
        // The captured permit still has the old rules; only a renewed one is used per line.
        assert!(shell.for_line(&argv).is_ok());
        // Exec permits have no lines.
        let exec = permit(&p, "web-ops", Action::Exec(b"ls".to_vec()));
        assert!(exec.for_line(&argv).is_err());
    }

    #[test]
    fn confirming_needs_the_live_grant_itself_as_just_read() {
        let p = base();
        let exec = permit(&p, "web-ops", Action::Exec(b"ls".to_vec()));
        let live = grant(7, "alice", "web-ops", "web-01", GrantState::Active);
        assert!(exec.confirm(&p, Some(&live), 10).is_ok());
        let expired = exec.confirm(&p, Some(&live), 1000).unwrap_err();
        assert_eq!(
            expired,
            Lapse::GrantOver {
                state: GrantState::Expired,
                message: "grant 7 has expired".into()
            }
        );
        assert_eq!(expired.end_class(), EndClass::Expired);
        assert_eq!(expired.denial_class(), DenialClass::NoGrant);
        let mut revoked = live.clone();
        revoked.state = GrantState::Revoked;
        revoked.ended_by = Some("operator:root".into());
        let err = exec.confirm(&p, Some(&revoked), 10).unwrap_err();
        assert_eq!(err.to_string(), "grant 7 was revoked by operator:root");
        assert!(!err.is_policy());
        assert_eq!(err.end_class(), EndClass::Revoked);
        let gone = exec.confirm(&p, None, 10).unwrap_err();
        assert_eq!(gone.denial_class(), DenialClass::NoGrant);
        let other = grant(8, "alice", "web-ops", "web-01", GrantState::Active);
        assert!(exec.confirm(&p, Some(&other), 10).is_err(), "another grant");
        let no_alice = edited("name = \"alice\"", "name = \"alicia\"");
        let lapse = exec.confirm(&no_alice, Some(&live), 10).unwrap_err();
        assert_eq!(lapse, Lapse::UserGone("alice".into()));
        assert_eq!(lapse.denial_class(), DenialClass::Policy);
        assert_eq!(lapse.end_class(), EndClass::Policy);
        let unchecked = Lapse::Unchecked("database is locked".into());
        assert_eq!(unchecked.denial_class(), DenialClass::StoreUnavailable);
    }

    #[test]
    fn grants_stand_while_the_policy_would_still_give_them() {
        let p = base();
        let named = grant(1, "alice", "web-ops", "web-01", GrantState::Active);
        let pattern = grant(2, "alice", "web-ops", "web-*", GrantState::Pending);
        assert_eq!(grant_standing(&p, &named), Ok(()));
        assert_eq!(grant_standing(&p, &pattern), Ok(()));
        let narrower = edited("targets = [\"web-*\"]", "targets = [\"web-02\"]");
        assert!(matches!(
            grant_standing(&narrower, &named),
            Err(Lapse::NotCovered { .. })
        ));
        assert!(matches!(
            grant_standing(&narrower, &pattern),
            Err(Lapse::NotCovered { .. })
        ));
        let no_role = edited("name = \"web-ops\"", "name = \"web-admin\"");
        assert_eq!(
            grant_standing(&no_role, &named),
            Err(Lapse::RoleGone("web-ops".into()))
        );
        let no_member = edited("groups = [\"sre\"]", "groups = [\"oncall\"]");
        assert!(matches!(
            grant_standing(&no_member, &pattern),
            Err(Lapse::NotMember { .. })
        ));
        let gone = grant(3, "alice", "web-ops", "web-07", GrantState::Active);
        assert_eq!(
            grant_standing(&p, &gone),
            Err(Lapse::TargetGone("web-07".into()))
        );
    }

    #[test]
    fn a_session_lapses_when_the_key_it_logged_in_with_is_no_longer_listed() {
        let p = base();
        let key = russh::keys::PublicKey::from_openssh(&test_key(1)).unwrap();
        let fp = crate::policy::fingerprint(&key);
        let shell = permit(&p, "web-read", Action::Interactive { pty: true })
            .logged_in_with(Some(fp.clone()));
        assert!(shell.renewed(&p).is_ok());
        // alice's key is replaced (the directory, or the policy file, dropped it).
        let rekeyed = edited(&test_key(1), &test_key(9));
        assert_eq!(
            shell.renewed(&rekeyed).unwrap_err(),
            Lapse::KeyWithdrawn {
                user: "alice".into(),
                fingerprint: fp
            }
        );
        assert_eq!(
            shell.renewed(&rekeyed).unwrap_err().end_class(),
            EndClass::Policy
        );
        // A certificate login names no key, so only the person, role and target count.
        let by_certificate =
            permit(&p, "web-read", Action::Interactive { pty: true }).logged_in_with(None);
        assert!(by_certificate.renewed(&rekeyed).is_ok());
    }
}
