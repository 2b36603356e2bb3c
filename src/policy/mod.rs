//! The policy: who may reach which target, in which role, with which commands.
//!
//! Policy is code: plain TOML files under `policies/`, reviewed in git. [`load`] turns them into a
//! validated, immutable [`Policy`]; nothing else in Gatehouse reads policy files. Every error is
//! reported with its file and line, and a policy that does not load is never half-applied.

mod directory;
pub mod glob;
mod load;
mod operators;
pub mod rules;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use russh::keys::{HashAlg, PublicKey};

pub use load::{
    LoadError, PolicyError, load_dir, load_dir_with_groups, load_sources, load_sources_with_groups,
};

/// Words that start an SSH command on the bastion. A target may not be named like one of them,
/// so that `ssh bastion grants` can never mean two things.
pub const VERBS: &[&str] = &[
    "help",
    "whoami",
    "targets",
    "grants",
    "request",
    "approve",
    "deny",
    "revoke",
    "breakglass",
    "lobby",
    "sessions",
    "version",
    "web",
    "explain",
];

/// A person who logs in to the bastion.
#[derive(Debug)]
pub struct User {
    /// Login name (`ssh alice@bastion`).
    pub name: String,
    /// Public keys that authenticate this user.
    pub keys: Vec<PublicKey>,
    /// Groups, which roles name as members and approvers.
    pub groups: Vec<String>,
    /// Where the user is defined, for messages that must name it.
    pub source: UserSource,
}

impl User {
    /// Whether the key with this SHA-256 fingerprint is listed for the user now: a session or
    /// connection that logged in with a key stands only while it is.
    pub fn lists_key(&self, fingerprint: &str) -> bool {
        self.keys
            .iter()
            .any(|k| self::fingerprint(k) == fingerprint)
    }
}

/// Where a user is defined: a policy file, or the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserSource {
    /// A `[[user]]` table in a policy file.
    Policy {
        /// The file.
        file: std::path::PathBuf,
        /// Its line.
        line: usize,
    },
    /// An entry in the directory (`[directory]`).
    Directory {
        /// The entry's DN.
        dn: String,
    },
}

impl std::fmt::Display for UserSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserSource::Policy { file, line } => write!(f, "{}:{line}", file.display()),
            UserSource::Directory { dn } => write!(f, "the directory ({dn})"),
        }
    }
}

/// How a target proves its identity to the bastion. There is no trust on first use.
#[derive(Debug, Clone)]
pub enum HostTrust {
    /// Any of these exact host keys.
    Pinned(Vec<PublicKey>),
    /// A host certificate signed by this CA, naming the target's address or name.
    Ca(PublicKey),
}

/// A host behind the bastion.
#[derive(Debug)]
pub struct Target {
    /// Name users type (`ssh bastion web-01`).
    pub name: String,
    /// Host name or IP address to connect to.
    pub address: String,
    /// SSH port.
    pub port: u16,
    /// How its host key is verified.
    pub trust: HostTrust,
    /// Free-form labels that roles may select on.
    pub labels: BTreeMap<String, String>,
}

/// What an interactive session on a role gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShellMode {
    /// Exec requests under the allow-list only.
    None,
    /// A prompt served by Gatehouse; each line is checked like an exec request.
    Restricted,
    /// A real shell on the target, and any command.
    Full,
}

impl ShellMode {
    /// The word used in policy files.
    pub fn as_str(self) -> &'static str {
        match self {
            ShellMode::None => "none",
            ShellMode::Restricted => "restricted",
            ShellMode::Full => "full",
        }
    }
}

/// A set of privileges on a set of targets, held through a grant.
#[derive(Debug)]
pub struct Role {
    /// Role name (`ssh bastion web-01:web-ops`).
    pub name: String,
    /// Groups whose users may request or hold it.
    pub members: Vec<String>,
    /// Target name patterns it covers.
    pub targets: Vec<String>,
    /// Labels a target must carry (all of them) to be covered.
    pub target_labels: BTreeMap<String, String>,
    /// Account on the target: the certificate's principal.
    pub login: String,
    /// Longest grant that may be requested.
    pub max_duration: Duration,
    /// Approvals needed; 0 means self-service.
    pub approvals: u32,
    /// Groups whose users may approve.
    pub approvers: Vec<String>,
    /// Interactive mode.
    pub shell: ShellMode,
    /// Whether keystrokes are recorded as well as output.
    pub record_input: bool,
    /// Command allow-list rules as written in the policy.
    pub commands: Vec<String>,
    /// The parsed allow-list: the rules and the option guard (built-in plus `deny_options`).
    pub allow: rules::AllowList,
    /// Whether exec sessions get a pty on the target.
    pub exec_pty: bool,
    /// Whether this is an emergency role usable without approval.
    pub break_glass: bool,
    /// What may be read and written over SFTP; `None`: no file transfer.
    pub files: Option<crate::files::FileRules>,
    /// Where `ssh -L` / `ssh -W` may lead; empty: no forwarding.
    pub forward: Vec<crate::forward::Destination>,
}

impl Role {
    /// Whether this role covers `target`: by name pattern, by labels, or both when both are set
    /// (the narrower reading of "and/or", so that adding labels never widens a role).
    pub fn covers(&self, target: &Target) -> bool {
        let by_name = self.targets.iter().any(|p| glob::matches(p, &target.name));
        let by_labels = self
            .target_labels
            .iter()
            .all(|(k, v)| target.labels.get(k) == Some(v));
        match (self.targets.is_empty(), self.target_labels.is_empty()) {
            (false, false) => by_name && by_labels,
            (false, true) => by_name,
            (true, false) => by_labels,
            (true, true) => false,
        }
    }

    /// Whether `user` is a member through one of their groups.
    pub fn has_member(&self, user: &User) -> bool {
        self.members.iter().any(|g| user.groups.contains(g))
    }

    /// Whether `user` may approve requests for this role.
    pub fn has_approver(&self, user: &User) -> bool {
        self.approvers.iter().any(|g| user.groups.contains(g))
    }
}

/// The validated policy. Immutable: a reload builds a new one and swaps it in whole.
#[derive(Debug, Default, Clone)]
pub struct Policy {
    users: BTreeMap<String, Arc<User>>,
    targets: BTreeMap<String, Arc<Target>>,
    roles: BTreeMap<String, Arc<Role>>,
    key_owner: HashMap<String, String>,
    /// `[[operator]]`: Unix account → user name.
    operators: BTreeMap<String, String>,
    warnings: Vec<String>,
    notes: Vec<String>,
}

impl Policy {
    /// A user by login name.
    pub fn user(&self, name: &str) -> Option<&Arc<User>> {
        self.users.get(name)
    }

    /// The user a Unix account acts as at the `gatehouse` command line (`[[operator]]`), so
    /// that separation of duties holds for operators as for SSH users. The account name is
    /// compared exactly, as the operating system reports it.
    pub fn operator(&self, unix_account: &str) -> Option<&Arc<User>> {
        self.operators
            .get(unix_account)
            .and_then(|name| self.users.get(name))
    }

    /// A target by name.
    pub fn target(&self, name: &str) -> Option<&Arc<Target>> {
        self.targets.get(name)
    }

    /// A role by name.
    pub fn role(&self, name: &str) -> Option<&Arc<Role>> {
        self.roles.get(name)
    }

    /// All users, by name.
    pub fn users(&self) -> impl Iterator<Item = &Arc<User>> {
        self.users.values()
    }

    /// All targets, by name.
    pub fn targets(&self) -> impl Iterator<Item = &Arc<Target>> {
        self.targets.values()
    }

    /// All roles, by name.
    pub fn roles(&self) -> impl Iterator<Item = &Arc<Role>> {
        self.roles.values()
    }

    /// The user who owns this public key, if any. Keys are unique across users (checked at load),
    /// so a key names at most one person.
    pub fn user_by_key(&self, key: &PublicKey) -> Option<&Arc<User>> {
        self.key_owner
            .get(&fingerprint(key))
            .and_then(|name| self.users.get(name))
    }

    /// Roles `user` is a member of that cover `target`.
    pub fn roles_for<'a>(
        &'a self,
        user: &'a User,
        target: &'a Target,
    ) -> impl Iterator<Item = &'a Arc<Role>> + 'a {
        self.roles
            .values()
            .filter(move |r| r.has_member(user) && r.covers(target))
    }

    /// Targets a role covers.
    pub fn targets_of<'a>(&'a self, role: &'a Role) -> impl Iterator<Item = &'a Arc<Target>> + 'a {
        self.targets.values().filter(move |t| role.covers(t))
    }

    /// Things that load but look wrong (a glob that matches nothing, `commands` on a `full` role).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// What the command rules' checks do with their wildcards (the subcommands a wildcard
    /// subcommand admits, the scopes a rule pins) and the reasons given for rules acknowledged
    /// as unsafe, each with its file and line, for `gatehouse check`.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }
}

/// The SHA-256 fingerprint used to index keys; the key's comment plays no part.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Whether `name` is a valid login name on the bastion (`[a-z_][a-z0-9_.-]{0,31}`).
pub fn valid_user_name(name: &str) -> bool {
    valid_name(
        name,
        32,
        |c| c.is_ascii_lowercase() || c == '_',
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'),
    )
}

/// Whether `name` is a plausible Unix account name for `[[operator]]`
/// (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}`). Case is kept: the account is matched exactly.
pub fn valid_unix_account(name: &str) -> bool {
    valid_name(
        name,
        32,
        |c| c.is_ascii_alphanumeric() || c == '_',
        |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'),
    )
}

/// Whether `name` is a valid target name (`[a-z0-9][a-z0-9-]{0,62}`).
pub fn valid_target_name(name: &str) -> bool {
    valid_name(
        name,
        63,
        |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-',
    )
}

/// Whether `name` is a valid role or group name (`[a-z0-9_][a-z0-9_.-]{0,62}`).
pub fn valid_role_name(name: &str) -> bool {
    valid_name(
        name,
        63,
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_',
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'),
    )
}

fn valid_name(
    name: &str,
    max: usize,
    first: impl Fn(char) -> bool,
    rest: impl Fn(char) -> bool,
) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if first(c) => {}
        _ => return false,
    }
    name.len() <= max && chars.all(rest)
}
