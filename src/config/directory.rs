//! `[directory]`: people, their keys and their groups from an LDAP directory.
//!
//! Off unless `url` is set. The directory is read over TLS (`ldaps://`, or `ldap://` with
//! `starttls = true`); plain `ldap://` is accepted only to a loopback address, where nothing
//! crosses a network, and even then it is logged as a warning at start.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::duration;

/// How group membership is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// Group entries under a base DN list their members (`member` with user DNs, as
    /// groupOfNames and Active Directory do, or `memberUid` with user names, as posixGroup does).
    GroupEntries {
        /// Where the group entries are.
        base_dn: String,
        /// Which entries are groups.
        filter: String,
        /// The attribute that lists members.
        member_attr: String,
    },
    /// Each user entry lists the DNs of its groups (`memberOf`: Active Directory, or OpenLDAP
    /// with the memberof overlay).
    UserAttribute(String),
}

impl Membership {
    /// Whether members are named by user name (`memberUid`) rather than by DN.
    pub fn by_name(&self) -> bool {
        matches!(self, Membership::GroupEntries { member_attr, .. }
            if member_attr.eq_ignore_ascii_case("memberUid"))
    }
}

/// How many users one sync may remove before an operator must accept it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxRemoval {
    /// A share of the users known before the sync, in percent.
    Percent(f64),
    /// A number of users.
    Count(u64),
}

impl MaxRemoval {
    /// Whether removing `removed` of `before` users stays within the limit.
    pub fn allows(self, removed: usize, before: usize) -> bool {
        match self {
            MaxRemoval::Percent(p) => {
                // A percentage above zero always allows one person, so that in a small team
                // a departure is not held.
                let floor = if p > 0.0 { 1.0 } else { 0.0 };
                (removed as f64) <= ((before as f64) * p / 100.0).max(floor)
            }
            MaxRemoval::Count(n) => (removed as u64) <= n,
        }
    }
}

/// The directory source (`[directory]`).
#[derive(Debug, Clone, PartialEq)]
pub struct DirectoryConfig {
    /// `ldaps://host[:port]` or `ldap://host[:port]`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS before binding.
    pub starttls: bool,
    /// PEM file of the CA that signed the directory's certificate; the system's roots when unset.
    pub ca_file: Option<PathBuf>,
    /// The DN Gatehouse binds as (read-only access is enough); anonymous when unset.
    pub bind_dn: Option<String>,
    /// File holding the bind password (its first line); read at every sync so it can rotate.
    pub password_file: Option<PathBuf>,
    /// Where user entries are searched (subtree).
    pub base_dn: String,
    /// Which entries are users.
    pub user_filter: String,
    /// The attribute holding the login name.
    pub name_attr: String,
    /// The attribute holding OpenSSH public keys, one per value.
    pub key_attr: String,
    /// How group membership is read.
    pub membership: Membership,
    /// Users matching this filter too are disabled: they are left out, as if gone.
    pub disabled_filter: Option<String>,
    /// Directory group (its CN, or its whole DN) → policy group.
    pub groups: BTreeMap<String, String>,
    /// How often the directory is read.
    pub sync_interval: Duration,
    /// The longest a whole sync may take before it counts as failed.
    pub timeout: Duration,
    /// The most users one sync may remove without an operator's `directory sync --accept`.
    pub max_removal: MaxRemoval,
    /// Entries per page of a search (the paged results control).
    pub page_size: i32,
}

impl DirectoryConfig {
    /// Whether the connection is plain LDAP (allowed on loopback only).
    pub fn is_plain(&self) -> bool {
        self.url.starts_with("ldap://") && !self.starttls
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDirectory {
    url: Option<String>,
    starttls: Option<bool>,
    ca_file: Option<PathBuf>,
    bind_dn: Option<String>,
    password_file: Option<PathBuf>,
    base_dn: Option<String>,
    user_filter: Option<String>,
    name_attr: Option<String>,
    key_attr: Option<String>,
    group_base_dn: Option<String>,
    group_filter: Option<String>,
    member_attr: Option<String>,
    member_of_attr: Option<String>,
    disabled_filter: Option<String>,
    #[serde(default)]
    groups: BTreeMap<String, String>,
    sync_interval: Option<String>,
    timeout: Option<String>,
    max_removal: Option<String>,
    page_size: Option<i32>,
}

/// Checks `[directory]` and fills in its defaults; `None` when no `url` is set (and nothing
/// else is, which would be a directory half configured). Relative paths are taken from `base`.
pub(super) fn resolve(raw: RawDirectory, base: &Path) -> Result<Option<DirectoryConfig>, String> {
    let Some(url) = raw.url else {
        if raw.base_dn.is_some() || raw.bind_dn.is_some() || !raw.groups.is_empty() {
            return Err(
                "directory: url is not set, so the rest of [directory] would do nothing; \
                 set url or remove the section"
                    .into(),
            );
        }
        return Ok(None);
    };
    let starttls = raw.starttls.unwrap_or(false);
    check_url(&url, starttls)?;
    let path = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
    if raw.bind_dn.is_some() != raw.password_file.is_some() {
        return Err("directory: bind_dn and password_file go together".into());
    }
    let base_dn = non_empty("base_dn", raw.base_dn)?;
    let user_filter = filter("user_filter", raw.user_filter, "(objectClass=posixAccount)")?;
    let disabled_filter = match raw.disabled_filter {
        Some(f) => Some(filter("disabled_filter", Some(f), "")?),
        None => None,
    };
    let membership = match (raw.group_base_dn, raw.member_of_attr) {
        (Some(_), Some(_)) => {
            return Err(
                "directory: group_base_dn (group entries) and member_of_attr (an attribute \
                 of the user) are two ways to read groups; choose one"
                    .into(),
            );
        }
        (Some(group_base), None) => Membership::GroupEntries {
            base_dn: non_empty("group_base_dn", Some(group_base))?,
            filter: filter(
                "group_filter",
                raw.group_filter,
                "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup)(objectClass=group))",
            )?,
            member_attr: attribute("member_attr", raw.member_attr, "member")?,
        },
        (None, Some(attr)) => {
            if raw.member_attr.is_some() || raw.group_filter.is_some() {
                return Err("directory: member_attr and group_filter need group_base_dn".into());
            }
            Membership::UserAttribute(attribute("member_of_attr", Some(attr), "")?)
        }
        (None, None) => {
            return Err(
                "directory: set group_base_dn (group entries with member or memberUid) or \
                 member_of_attr (memberOf on the user), so groups can be read"
                    .into(),
            );
        }
    };
    if raw.groups.is_empty() {
        return Err(
            "directory.groups: map at least one directory group to a policy group; \
             without it no directory user could hold a role"
                .into(),
        );
    }
    for (from, to) in &raw.groups {
        if from.trim().is_empty() {
            return Err("directory.groups: an empty directory group name".into());
        }
        if matches!(membership, Membership::UserAttribute(_)) && !from.contains('=') {
            return Err(format!(
                "directory.groups: {from:?}: with member_of_attr, name each group by its whole \
                 DN (\"cn={from},ou=groups,…\"), so that a group of that name created \
                 elsewhere in the directory does not count"
            ));
        }
        if !crate::policy::valid_role_name(to) {
            return Err(format!(
                "directory.groups: {to:?} (for {from:?}) is not a valid policy group name \
                 ([a-z0-9_][a-z0-9_.-]{{0,62}})"
            ));
        }
    }
    let dur = |key: &str, value: Option<String>, default: &str| {
        duration::parse(value.as_deref().unwrap_or(default))
            .map_err(|e| format!("directory.{key}: {e}"))
    };
    let sync_interval = dur("sync_interval", raw.sync_interval, "60s")?;
    if !(Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(&sync_interval) {
        return Err("directory.sync_interval: must be between 1s and 24h".into());
    }
    let timeout = dur("timeout", raw.timeout, "30s")?;
    if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&timeout) {
        return Err("directory.timeout: must be between 1s and 1h".into());
    }
    let page_size = raw.page_size.unwrap_or(500);
    if !(1..=10_000).contains(&page_size) {
        return Err("directory.page_size: must be between 1 and 10000".into());
    }
    Ok(Some(DirectoryConfig {
        url,
        starttls,
        ca_file: raw.ca_file.map(path),
        bind_dn: raw.bind_dn,
        password_file: raw.password_file.map(path),
        base_dn,
        user_filter,
        name_attr: attribute("name_attr", raw.name_attr, "uid")?,
        key_attr: attribute("key_attr", raw.key_attr, "sshPublicKey")?,
        membership,
        disabled_filter,
        groups: raw.groups,
        sync_interval,
        timeout,
        max_removal: max_removal(raw.max_removal.as_deref().unwrap_or("10%"))?,
        page_size,
    }))
}

/// `ldaps://` anywhere; `ldap://` with StartTLS anywhere, or plain to a loopback host only.
fn check_url(url: &str, starttls: bool) -> Result<(), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("directory.url: {url:?} is not an ldap:// or ldaps:// URL"))?;
    let host_port = rest.split('/').next().unwrap_or("");
    if host_port.is_empty() || rest.contains('?') || host_port.contains('@') {
        return Err(format!(
            "directory.url: {url:?} must be scheme://host[:port], with no user, path or query"
        ));
    }
    match scheme {
        "ldaps" if starttls => Err(
            "directory.starttls: ldaps:// is TLS from the start; starttls is for ldap:// URLs"
                .into(),
        ),
        "ldaps" => Ok(()),
        "ldap" if starttls || is_loopback(host_port) => Ok(()),
        "ldap" => Err(format!(
            "directory.url: plain ldap:// to {host_port} would send the bind password and \
             every key in clear; use ldaps://, or starttls = true (plain LDAP is allowed \
             on a loopback address only)"
        )),
        _ => Err(format!(
            "directory.url: {url:?} is not an ldap:// or ldaps:// URL"
        )),
    }
}

/// Whether `host[:port]` names this machine: `localhost`, or a loopback address.
fn is_loopback(host_port: &str) -> bool {
    let host = if let Some(rest) = host_port.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn non_empty(key: &str, value: Option<String>) -> Result<String, String> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(format!("directory.{key}: must be set")),
    }
}

/// A search filter: parenthesised, balanced, and parseable as LDAP filter syntax.
fn filter(key: &str, value: Option<String>, default: &str) -> Result<String, String> {
    let f = value.unwrap_or_else(|| default.to_owned());
    let parenthesised = f.starts_with('(') && f.ends_with(')');
    if !parenthesised || ldap3::parse_filter(&f).is_err() {
        return Err(format!(
            "directory.{key}: {f:?} is not an LDAP search filter (RFC 4515)"
        ));
    }
    Ok(f)
}

/// An attribute name: letters, digits and hyphens, starting with a letter (RFC 4512).
fn attribute(key: &str, value: Option<String>, default: &str) -> Result<String, String> {
    let a = value.unwrap_or_else(|| default.to_owned());
    let mut chars = a.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
        && a.len() <= 64;
    if ok {
        Ok(a)
    } else {
        Err(format!(
            "directory.{key}: {a:?} is not an LDAP attribute name"
        ))
    }
}

/// `"10%"` (a share of the users before the sync) or `"25"` (a number of users).
fn max_removal(text: &str) -> Result<MaxRemoval, String> {
    let bad =
        || format!("directory.max_removal: {text:?} is neither a percentage (\"10%\") nor a count");
    match text.trim().strip_suffix('%') {
        Some(p) => {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(0.0..=100.0).contains(&p) {
                return Err("directory.max_removal: a percentage is between 0% and 100%".into());
            }
            Ok(MaxRemoval::Percent(p))
        }
        None => Ok(MaxRemoval::Count(text.trim().parse().map_err(|_| bad())?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<DirectoryConfig>, String> {
        let raw: RawDirectory = toml::from_str(text).map_err(|e| e.to_string())?;
        resolve(raw, Path::new("/etc/gatehouse"))
    }

    const MINIMAL: &str = "url = \"ldaps://ldap.example.org\"\nbase_dn = \"dc=example,dc=org\"\n\
        group_base_dn = \"ou=groups,dc=example,dc=org\"\ngroups = { ldap-ops = \"ops\" }\n";

    #[test]
    fn defaults_follow_openssh_lpk_and_posix() {
        let c = parse(MINIMAL).unwrap().unwrap();
        assert_eq!(c.name_attr, "uid");
        assert_eq!(c.key_attr, "sshPublicKey");
        assert_eq!(c.user_filter, "(objectClass=posixAccount)");
        assert_eq!(c.sync_interval, Duration::from_secs(60));
        assert_eq!(c.max_removal, MaxRemoval::Percent(10.0));
        assert!(
            matches!(c.membership, Membership::GroupEntries { ref member_attr, .. } if member_attr == "member")
        );
        assert!(!c.is_plain());
        assert_eq!(parse("").unwrap(), None);
    }

    #[test]
    fn plain_ldap_only_on_loopback_or_with_starttls() {
        let with = |url: &str, extra: &str| {
            parse(&format!("{MINIMAL}{extra}").replace("ldaps://ldap.example.org", url))
        };
        for ok in [
            "ldap://127.0.0.1:3890",
            "ldap://[::1]:389",
            "ldap://localhost",
        ] {
            assert!(with(ok, "").unwrap().unwrap().is_plain(), "{ok}");
        }
        let e = with("ldap://ldap.example.org", "").unwrap_err();
        assert!(e.contains("in clear"), "{e}");
        assert!(with("ldap://ldap.example.org", "starttls = true\n").is_ok());
        let e = with("ldaps://ldap.example.org", "starttls = true\n").unwrap_err();
        assert!(e.contains("TLS from the start"), "{e}");
        for bad in ["http://x", "ldaps://", "ldaps://u@x", "ldaps://x/dc=a?uid"] {
            assert!(with(bad, "").is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_values_are_named() {
        for (extra, needle) in [
            ("user_filter = \"objectClass=*\"\n", "user_filter"),
            ("disabled_filter = \"(a=\"\n", "disabled_filter"),
            ("key_attr = \"ssh key\"\n", "key_attr"),
            ("member_of_attr = \"memberOf\"\n", "choose one"),
            ("max_removal = \"lots\"\n", "max_removal"),
            ("max_removal = \"150%\"\n", "between 0% and 100%"),
            ("sync_interval = \"0s\"\n", "sync_interval"),
            ("bind_dn = \"cn=x\"\n", "go together"),
            ("page_size = 0\n", "page_size"),
            ("groups = { x = \"Not Valid\" }\n", "policy group name"),
        ] {
            let text = if extra.starts_with("groups") {
                MINIMAL.replace("groups = { ldap-ops = \"ops\" }\n", extra)
            } else {
                format!("{MINIMAL}{extra}")
            };
            let e = parse(&text).unwrap_err();
            assert!(e.contains(needle), "{extra}: {e}");
        }
        let e = parse("base_dn = \"dc=x\"").unwrap_err();
        assert!(e.contains("url is not set"), "{e}");
    }

    #[test]
    fn member_of_reads_groups_from_the_user() {
        let text = MINIMAL.replace(
            "group_base_dn = \"ou=groups,dc=example,dc=org\"\n",
            "member_of_attr = \"memberOf\"\n",
        );
        let e = parse(&text).unwrap_err();
        assert!(e.contains("by its whole DN"), "{e}");
        let text = text.replace(
            "ldap-ops = \"ops\"",
            "\"cn=ldap-ops,ou=groups,dc=example,dc=org\" = \"ops\"",
        );
        let c = parse(&text).unwrap().unwrap();
        assert_eq!(c.membership, Membership::UserAttribute("memberOf".into()));
    }

    #[test]
    fn removal_limits() {
        assert!(MaxRemoval::Percent(10.0).allows(1, 10));
        assert!(!MaxRemoval::Percent(10.0).allows(2, 10));
        assert!(
            MaxRemoval::Percent(10.0).allows(1, 3),
            "one person may always leave"
        );
        assert!(!MaxRemoval::Percent(10.0).allows(2, 3));
        assert!(!MaxRemoval::Percent(0.0).allows(1, 100));
        assert!(MaxRemoval::Percent(10.0).allows(0, 0));
        assert!(MaxRemoval::Count(3).allows(3, 4));
        assert!(!MaxRemoval::Count(3).allows(4, 400));
        assert_eq!(max_removal(" 25 ").unwrap(), MaxRemoval::Count(25));
    }
}

/// A `[directory]` section from TOML text, for other modules' unit tests.
#[cfg(test)]
pub mod tests_support {
    use super::*;

    /// Parses `text` as the body of `[directory]`; panics on an error (a test's own input).
    pub fn parse(text: &str) -> DirectoryConfig {
        let raw: RawDirectory = toml::from_str(text).expect("directory TOML");
        resolve(raw, Path::new("/etc/gatehouse"))
            .expect("valid [directory]")
            .expect("url set")
    }
}
