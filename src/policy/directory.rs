//! The policy with the directory's people in it.
//!
//! The policy files stay the source of targets, roles and operators; the directory adds users,
//! with their keys and their (mapped) groups. Where the two disagree, nobody gains anything:
//! a name defined in both keeps only its policy-file definition (and `gatehouse check` fails
//! until one is removed), and a directory key that a policy user already has is not used.

use std::sync::Arc;

use russh::keys::PublicKey;

use super::{Policy, User, UserSource, fingerprint};
use crate::directory::snapshot::Snapshot;

/// Something the directory says that the policy could not take, for `gatehouse check`, the
/// sync's audit line and `directory show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The user concerned.
    pub user: String,
    /// What was left out, and why, naming both places.
    pub message: String,
}

impl Policy {
    /// This policy with the users of `snapshot` added, and what could not be added.
    pub fn with_directory(&self, snapshot: &Snapshot) -> (Policy, Vec<Conflict>) {
        let mut policy = self.clone();
        let mut conflicts = Vec::new();
        for entry in snapshot.users.values() {
            if let Some(defined) = self.users.get(&entry.name) {
                conflicts.push(Conflict {
                    user: entry.name.clone(),
                    message: format!(
                        "user {:?} is defined at {} and in the directory ({}); only the \
                         policy file's definition is used until one of them is removed",
                        entry.name, defined.source, entry.dn
                    ),
                });
                continue;
            }
            let mut keys = Vec::new();
            for line in &entry.keys {
                // The snapshot holds only keys that parsed when it was built.
                let Ok(key) = PublicKey::from_openssh(line) else {
                    continue;
                };
                let fp = fingerprint(&key);
                if let Some(owner) = policy.key_owner.get(&fp) {
                    conflicts.push(Conflict {
                        user: entry.name.clone(),
                        message: format!(
                            "key {fp} of {:?} in the directory ({}) is already listed for \
                             user {owner:?}; a key must name one person, so {:?} cannot use it",
                            entry.name, entry.dn, entry.name
                        ),
                    });
                    continue;
                }
                policy.key_owner.insert(fp, entry.name.clone());
                keys.push(key);
            }
            policy.users.insert(
                entry.name.clone(),
                Arc::new(User {
                    name: entry.name.clone(),
                    keys,
                    groups: entry.groups.clone(),
                    source: UserSource::Directory {
                        dn: entry.dn.clone(),
                    },
                }),
            );
        }
        (policy, conflicts)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::directory::snapshot::DirectoryUser;
    use crate::testing::test_key;

    fn snapshot(users: &[(&str, &[String], &[&str])]) -> Snapshot {
        Snapshot {
            users: users
                .iter()
                .map(|(name, keys, groups)| {
                    (
                        name.to_string(),
                        DirectoryUser {
                            name: name.to_string(),
                            dn: format!("uid={name},ou=people,dc=example,dc=org"),
                            keys: keys.to_vec(),
                            groups: groups.iter().map(|g| g.to_string()).collect(),
                            directory_groups: vec![],
                        },
                    )
                })
                .collect(),
            ..Snapshot::default()
        }
    }

    fn base() -> Policy {
        let text = format!(
            "[[user]]\nname = \"alice\"\nkeys = [\"{}\"]\ngroups = [\"sre\"]\n\
             [[target]]\nname = \"web-01\"\naddress = \"127.0.0.1\"\nhost_keys = [\"{}\"]\n\
             [[role]]\nname = \"web-ops\"\nmembers = [\"ops\"]\ntargets = [\"web-01\"]\nlogin = \"ops\"\napprovals = 1\napprovers = [\"sre\"]\nshell = \"full\"\n",
            test_key(1),
            test_key(9)
        );
        let outside = ["ops".to_owned()].into();
        super::super::load_sources_with_groups(&[(Path::new("p/users.toml"), &text)], &outside)
            .unwrap()
    }

    #[test]
    fn directory_users_join_with_their_keys_and_groups() {
        let (merged, conflicts) =
            base().with_directory(&snapshot(&[("dora", &[test_key(2)], &["ops"])]));
        assert!(conflicts.is_empty(), "{conflicts:?}");
        let dora = merged.user("dora").unwrap();
        assert_eq!(dora.groups, ["ops"]);
        assert!(merged.role("web-ops").unwrap().has_member(dora));
        let key = PublicKey::from_openssh(&test_key(2)).unwrap();
        assert_eq!(merged.user_by_key(&key).unwrap().name, "dora");
        assert_eq!(
            dora.source.to_string(),
            "the directory (uid=dora,ou=people,dc=example,dc=org)"
        );
        assert!(
            base().user("dora").is_none(),
            "the base policy is unchanged"
        );
    }

    #[test]
    fn a_name_or_key_in_both_places_gives_nothing_new() {
        let (merged, conflicts) = base().with_directory(&snapshot(&[
            ("alice", &[test_key(3)], &["ops"]),
            ("erin", &[test_key(1), test_key(4)], &["ops"]),
        ]));
        let alice = merged.user("alice").unwrap();
        assert_eq!(
            alice.groups,
            ["sre"],
            "the policy file's alice stays as written"
        );
        assert!(matches!(alice.source, UserSource::Policy { line: 1, .. }));
        let erin = merged.user("erin").unwrap();
        assert_eq!(erin.keys.len(), 1, "alice's key is not erin's");
        let text: Vec<&str> = conflicts.iter().map(|c| c.message.as_str()).collect();
        assert!(
            text[0].contains("defined at p/users.toml:1 and in the directory"),
            "{text:?}"
        );
        assert!(
            text[1].contains("already listed for user \"alice\""),
            "{text:?}"
        );
    }
}
