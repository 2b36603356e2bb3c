//! What one sync read: the directory's users, their keys and their policy groups, built from
//! the raw entries by a pure function so that every rule about bad entries is tested without
//! a server.
//!
//! Bad entries never widen anything. An entry without a valid login name, two entries with the
//! same name, a key that does not parse or that two people share: each is left out (the person,
//! or the key) and listed in [`Snapshot::skipped`], so `directory show` and the sync's audit
//! line say why someone cannot log in.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use russh::keys::PublicKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::directory::{DirectoryConfig, Membership};

/// One entry as the server returned it: its DN and its attributes (names lower-cased).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawEntry {
    /// The entry's DN.
    pub dn: String,
    /// Attribute (lower case) → values that are text.
    pub attrs: HashMap<String, Vec<String>>,
}

impl RawEntry {
    /// The values of `attr` (any case), or none.
    pub fn values(&self, attr: &str) -> &[String] {
        self.attrs
            .get(&attr.to_ascii_lowercase())
            .map_or(&[], Vec::as_slice)
    }
}

/// One person as the directory describes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryUser {
    /// Login name.
    pub name: String,
    /// The entry it came from.
    pub dn: String,
    /// OpenSSH public keys (`type base64 [comment]`), each checked to parse.
    pub keys: Vec<String>,
    /// Policy groups, through `[directory] groups`.
    pub groups: Vec<String>,
    /// The directory groups that gave them (as named in `[directory] groups`).
    pub directory_groups: Vec<String>,
}

/// The outcome of one successful read of the directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Users by login name.
    pub users: BTreeMap<String, DirectoryUser>,
    /// Accounts matching the disabled filter, left out.
    pub disabled: BTreeSet<String>,
    /// Entries or keys left out, and why.
    pub skipped: Vec<String>,
    /// When it was read (Unix seconds).
    pub fetched_at: i64,
}

impl Snapshot {
    /// A digest of who is in it and with what, to tell whether a sync changed anything.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for u in self.users.values() {
            h.update(u.name.as_bytes());
            h.update([0]);
            for part in u.keys.iter().chain(&u.groups) {
                h.update(part.as_bytes());
                h.update([1]);
            }
            h.update([2]);
        }
        for d in &self.disabled {
            h.update(d.as_bytes());
            h.update([3]);
        }
        crate::recording::files::to_hex(&h.finalize()[..16])
    }

    /// Users in `self` that `next` no longer has (gone from the directory, or disabled).
    pub fn removed_in(&self, next: &Snapshot) -> Vec<String> {
        self.users
            .keys()
            .filter(|n| !next.users.contains_key(*n))
            .cloned()
            .collect()
    }
}

/// The raw results of the searches one sync makes.
#[derive(Debug, Default)]
pub struct RawDirectory {
    /// Entries matching the user filter.
    pub users: Vec<RawEntry>,
    /// Entries matching both the user filter and the disabled filter.
    pub disabled: Vec<RawEntry>,
    /// Group entries (empty when groups are read from the users' own attribute).
    pub groups: Vec<RawEntry>,
}

/// Builds the snapshot from what the searches returned.
pub fn build(config: &DirectoryConfig, raw: &RawDirectory, fetched_at: i64) -> Snapshot {
    let mut snap = Snapshot {
        fetched_at,
        ..Snapshot::default()
    };
    let name_of = |e: &RawEntry| -> Result<String, String> {
        match e.values(&config.name_attr) {
            [one] if crate::policy::valid_user_name(one) => Ok(one.clone()),
            [one] => Err(format!(
                "{}: {}={one:?} is not a valid login name ([a-z_][a-z0-9_.-]{{0,31}})",
                e.dn, config.name_attr
            )),
            [] => Err(format!("{}: no {} attribute", e.dn, config.name_attr)),
            _ => Err(format!(
                "{}: more than one {} value; the login name must be one",
                e.dn, config.name_attr
            )),
        }
    };
    // Names, each from exactly one entry.
    let mut by_name: BTreeMap<String, Vec<&RawEntry>> = BTreeMap::new();
    for entry in &raw.users {
        match name_of(entry) {
            Ok(name) => by_name.entry(name).or_default().push(entry),
            Err(why) => snap.skipped.push(why),
        }
    }
    for entry in &raw.disabled {
        if let Ok(name) = name_of(entry) {
            snap.disabled.insert(name);
        }
    }
    let memberships = memberships(config, raw, &by_name, &mut snap.skipped);
    // Keys, each naming one person.
    let mut key_users: HashMap<String, Vec<String>> = HashMap::new();
    let mut users = Vec::new();
    for (name, entries) in &by_name {
        let [entry] = entries.as_slice() else {
            let dns: Vec<&str> = entries.iter().map(|e| e.dn.as_str()).collect();
            snap.skipped.push(format!(
                "{} entries are named {name:?} ({}); neither is used",
                entries.len(),
                dns.join("; ")
            ));
            continue;
        };
        if snap.disabled.contains(name) {
            continue;
        }
        let mut keys = Vec::new();
        let mut own = std::collections::HashSet::new();
        for line in entry.values(&config.key_attr) {
            match PublicKey::from_openssh(line.trim()) {
                Ok(key) => {
                    let fp = crate::policy::fingerprint(&key);
                    // The same key twice for one person (another comment) is one key.
                    if !own.insert(fp.clone()) {
                        continue;
                    }
                    key_users.entry(fp).or_default().push(name.clone());
                    keys.push(line.trim().to_owned());
                }
                Err(e) => snap.skipped.push(format!(
                    "{}: a {} value is not an OpenSSH public key ({e}); that key is not used",
                    entry.dn, config.key_attr
                )),
            }
        }
        let (groups, directory_groups) = memberships.get(name).cloned().unwrap_or_default();
        users.push(DirectoryUser {
            name: name.clone(),
            dn: entry.dn.clone(),
            keys,
            groups: groups.into_iter().collect(),
            directory_groups: directory_groups.into_iter().collect(),
        });
    }
    let shared: BTreeMap<&String, &Vec<String>> =
        key_users.iter().filter(|(_, u)| u.len() > 1).collect();
    for (fp, names) in &shared {
        snap.skipped.push(format!(
            "key {fp} is listed for {}; a key must name one person, so no one logs in with it",
            names.join(", ")
        ));
    }
    for mut user in users {
        if !shared.is_empty() {
            user.keys.retain(|line| {
                PublicKey::from_openssh(line)
                    .map(|k| !shared.contains_key(&crate::policy::fingerprint(&k)))
                    .unwrap_or(false)
            });
        }
        snap.users.insert(user.name.clone(), user);
    }
    snap
}

/// Login name → (policy groups, directory groups that gave them).
type Memberships = HashMap<String, (BTreeSet<String>, BTreeSet<String>)>;

/// Who is in which mapped group.
fn memberships(
    config: &DirectoryConfig,
    raw: &RawDirectory,
    by_name: &BTreeMap<String, Vec<&RawEntry>>,
    skipped: &mut Vec<String>,
) -> Memberships {
    let mut out: Memberships = HashMap::new();
    let mut add = |user: &str, directory_group: &str, policy_group: &str| {
        let (p, d) = out.entry(user.to_owned()).or_default();
        p.insert(policy_group.to_owned());
        d.insert(directory_group.to_owned());
    };
    match &config.membership {
        Membership::UserAttribute(attr) => {
            for (name, entries) in by_name {
                for entry in entries {
                    for group_dn in entry.values(attr) {
                        if let Some((key, to)) = mapped(config, group_dn) {
                            add(name, key, to);
                        }
                    }
                }
            }
        }
        Membership::GroupEntries { member_attr, .. } => {
            let by_dn: HashMap<String, &str> = by_name
                .iter()
                .flat_map(|(name, entries)| {
                    entries
                        .iter()
                        .map(move |e| (normalize_dn(&e.dn), name.as_str()))
                })
                .collect();
            let by_uid = config.membership.by_name();
            // A name may match one group only: two groups called `ldap-ops` in different
            // places make the mapping ambiguous, and neither gives anything.
            let mut matches: HashMap<&str, Vec<&str>> = HashMap::new();
            for group in &raw.groups {
                if let Some((key, _)) = mapped(config, &group.dn) {
                    matches.entry(key).or_default().push(&group.dn);
                }
            }
            for (key, dns) in &matches {
                if dns.len() > 1 {
                    skipped.push(format!(
                        "directory group {key:?} matches {} groups ({}); none of them gives \
                         anything until the mapping names one by its whole DN",
                        dns.len(),
                        dns.join("; ")
                    ));
                }
            }
            for group in &raw.groups {
                let Some((key, to)) = mapped(config, &group.dn) else {
                    continue;
                };
                if matches.get(key).is_some_and(|dns| dns.len() > 1) {
                    continue;
                }
                for member in group.values(member_attr) {
                    let user = if by_uid {
                        by_name.contains_key(member).then_some(member.as_str())
                    } else {
                        by_dn.get(&normalize_dn(member)).copied()
                    };
                    if let Some(user) = user {
                        add(user, key, to);
                    }
                }
            }
        }
    }
    out
}

/// The `[directory] groups` entry a group DN matches: by its whole DN, or, for a key that is a
/// plain name, by a first RDN of `cn=NAME` (compared without regard to case). A plain name
/// is only accepted where groups are read from under `group_base_dn` (the config refuses it
/// with `member_of_attr`), so a group of that name created elsewhere in the directory does
/// not count.
fn mapped<'c>(config: &'c DirectoryConfig, group_dn: &str) -> Option<(&'c str, &'c str)> {
    let dn = normalize_dn(group_dn);
    let cn = dn
        .split(',')
        .next()
        .and_then(|rdn| rdn.strip_prefix("cn="))
        .map(str::to_owned);
    config
        .groups
        .iter()
        .find(|(key, _)| {
            let key = normalize_dn(key);
            if key.contains('=') {
                key == dn
            } else {
                Some(&key) == cn.as_ref()
            }
        })
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

/// A DN in a form two spellings of the same DN share: lower case, no spaces around `,` and `=`.
/// (Enough for the DNs directories hand out; escaped commas stay as they are.)
pub fn normalize_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    let mut chars = dn.trim().chars().peekable();
    let mut escaped = false;
    while let Some(c) = chars.next() {
        if !escaped && (c == ',' || c == '=') {
            while out.ends_with(' ') {
                out.pop();
            }
            out.push(c);
            while chars.peek() == Some(&' ') {
                chars.next();
            }
            continue;
        }
        escaped = !escaped && c == '\\';
        out.extend(c.to_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::test_key;

    fn config(membership: Membership) -> DirectoryConfig {
        let text = "url = \"ldap://127.0.0.1:1\"\nbase_dn = \"dc=example,dc=org\"\n\
            group_base_dn = \"ou=groups,dc=example,dc=org\"\n\
            groups = { ldap-ops = \"ops\", \"cn=Leads,ou=groups,dc=example,dc=org\" = \"leads\" }\n";
        let mut c = crate::config::directory::tests_support::parse(text);
        c.membership = membership;
        c
    }

    fn entry(dn: &str, attrs: &[(&str, &[&str])]) -> RawEntry {
        RawEntry {
            dn: dn.into(),
            attrs: attrs
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_ascii_lowercase(),
                        v.iter().map(|s| s.to_string()).collect(),
                    )
                })
                .collect(),
        }
    }

    fn person(uid: &str, keys: &[&str]) -> RawEntry {
        entry(
            &format!("uid={uid},ou=people,dc=example,dc=org"),
            &[("uid", &[uid]), ("sshPublicKey", keys)],
        )
    }

    fn groups() -> Membership {
        Membership::GroupEntries {
            base_dn: "ou=groups,dc=example,dc=org".into(),
            filter: "(objectClass=*)".into(),
            member_attr: "member".into(),
        }
    }

    #[test]
    fn members_by_dn_get_the_mapped_groups_only() {
        let (k1, k2) = (test_key(1), test_key(2));
        let raw = RawDirectory {
            users: vec![person("alice", &[&k1]), person("bob", &[&k2])],
            disabled: vec![],
            groups: vec![
                entry(
                    "cn=ldap-ops,ou=groups,dc=example,dc=org",
                    &[("member", &["UID=alice, ou=People,dc=example,dc=org"])],
                ),
                entry(
                    "cn=leads,ou=groups,dc=example,dc=org",
                    &[("member", &["uid=bob,ou=people,dc=example,dc=org"])],
                ),
                entry(
                    "cn=unmapped,ou=groups,dc=example,dc=org",
                    &[("member", &["uid=bob,ou=people,dc=example,dc=org"])],
                ),
            ],
        };
        let snap = build(&config(groups()), &raw, 7);
        assert_eq!(snap.users["alice"].groups, ["ops"]);
        assert_eq!(snap.users["alice"].directory_groups, ["ldap-ops"]);
        assert_eq!(snap.users["bob"].groups, ["leads"]);
        assert_eq!(snap.users["alice"].keys, [k1]);
        assert!(snap.skipped.is_empty(), "{:?}", snap.skipped);
    }

    #[test]
    fn member_uid_and_member_of_are_read_too() {
        let raw = RawDirectory {
            users: vec![person("alice", &[])],
            disabled: vec![],
            groups: vec![entry(
                "cn=ldap-ops,ou=groups,dc=example,dc=org",
                &[("memberUid", &["alice", "nobody"])],
            )],
        };
        let by_uid = Membership::GroupEntries {
            base_dn: "ou=groups".into(),
            filter: "(objectClass=*)".into(),
            member_attr: "memberUid".into(),
        };
        assert_eq!(
            build(&config(by_uid), &raw, 0).users["alice"].groups,
            ["ops"]
        );
        let mut alice = person("alice", &[]);
        alice.attrs.insert(
            "memberof".into(),
            vec!["CN=ldap-ops,OU=Groups,DC=example,DC=org".into()],
        );
        let raw = RawDirectory {
            users: vec![alice],
            ..RawDirectory::default()
        };
        let snap = build(
            &config(Membership::UserAttribute("memberOf".into())),
            &raw,
            0,
        );
        assert_eq!(snap.users["alice"].groups, ["ops"]);
    }

    #[test]
    fn bad_entries_are_left_out_and_named() {
        let k = test_key(3);
        let raw = RawDirectory {
            users: vec![
                person("Bad Name", &[]),
                entry("uid=x,dc=org", &[]),
                person("dup", &[]),
                entry("uid=dup,ou=other,dc=example,dc=org", &[("uid", &["dup"])]),
                person("carol", &["ssh-ed25519 not-base64", &k]),
                person("dave", &[&k]),
                person("erin", &[&test_key(4)]),
            ],
            disabled: vec![person("erin", &[])],
            groups: vec![],
        };
        let snap = build(&config(groups()), &raw, 0);
        let names: Vec<&str> = snap.users.keys().map(String::as_str).collect();
        assert_eq!(names, ["carol", "dave"]);
        assert!(
            snap.users["carol"].keys.is_empty(),
            "a shared key names no one"
        );
        assert!(snap.users["dave"].keys.is_empty());
        assert_eq!(snap.disabled.iter().collect::<Vec<_>>(), ["erin"]);
        let text = snap.skipped.join("\n");
        for needle in [
            "\"Bad Name\" is not a valid login name",
            "uid=x,dc=org: no uid attribute",
            "2 entries are named \"dup\"",
            "not an OpenSSH public key",
            "is listed for carol, dave",
        ] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
    }

    #[test]
    fn a_group_name_matches_one_cn_group_only() {
        let raw = RawDirectory {
            users: vec![person("alice", &[]), person("bob", &[])],
            disabled: vec![],
            groups: vec![
                // Not a cn: an organizational unit of that name gives nothing.
                entry(
                    "ou=ldap-ops,ou=groups,dc=example,dc=org",
                    &[("member", &["uid=alice,ou=people,dc=example,dc=org"])],
                ),
                // Two groups of one name: ambiguous, so neither counts.
                entry(
                    "cn=leads,ou=groups,dc=example,dc=org",
                    &[("member", &["uid=bob,ou=people,dc=example,dc=org"])],
                ),
            ],
        };
        let mut cfg = config(groups());
        cfg.groups = [
            ("leads".to_owned(), "leads".to_owned()),
            ("ldap-ops".to_owned(), "ops".to_owned()),
        ]
        .into();
        let mut twice = raw;
        twice.groups.push(entry(
            "cn=leads,ou=contractors,dc=example,dc=org",
            &[("member", &["uid=alice,ou=people,dc=example,dc=org"])],
        ));
        let snap = build(&cfg, &twice, 0);
        assert!(
            snap.users["alice"].groups.is_empty(),
            "{:?}",
            snap.users["alice"]
        );
        assert!(
            snap.users["bob"].groups.is_empty(),
            "{:?}",
            snap.users["bob"]
        );
        assert!(
            snap.skipped
                .iter()
                .any(|s| s.contains("\"leads\" matches 2 groups")),
            "{:?}",
            snap.skipped
        );
    }

    #[test]
    fn a_key_listed_twice_for_one_person_is_kept() {
        let k = test_key(5);
        let raw = RawDirectory {
            users: vec![person("alice", &[&k, &format!("{k} other-comment")])],
            ..RawDirectory::default()
        };
        let snap = build(&config(groups()), &raw, 0);
        assert_eq!(snap.users["alice"].keys, [k]);
        assert!(snap.skipped.is_empty(), "{:?}", snap.skipped);
    }

    #[test]
    fn digest_and_removals() {
        let raw = RawDirectory {
            users: vec![person("alice", &[]), person("bob", &[])],
            ..RawDirectory::default()
        };
        let before = build(&config(groups()), &raw, 0);
        let same = build(&config(groups()), &raw, 99);
        assert_eq!(
            before.digest(),
            same.digest(),
            "the time read is not content"
        );
        let raw = RawDirectory {
            users: vec![person("alice", &[])],
            ..RawDirectory::default()
        };
        let after = build(&config(groups()), &raw, 0);
        assert_ne!(before.digest(), after.digest());
        assert_eq!(before.removed_in(&after), ["bob"]);
    }

    #[test]
    fn dns_compare_without_case_or_spaces() {
        assert_eq!(
            normalize_dn(" CN=Ops , OU=Groups,dc=Example "),
            "cn=ops,ou=groups,dc=example"
        );
        assert_eq!(normalize_dn("cn=a\\,b,dc=x"), "cn=a\\,b,dc=x");
    }
}
