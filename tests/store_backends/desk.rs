//! One node's grant desk: a store of its own on the shared database, and an audit log of its
//! own written through the server's batching writer, as a bastion node has them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gatehouse::audit::{AuditLog, AuditThread, AuditWriter};
use gatehouse::events::{AuditRecorder, Events};
use gatehouse::grants::desk::GrantDesk;
use gatehouse::grants::{Actor, RequestInput};
use gatehouse::policy::{Policy, load_sources};
use gatehouse::store::{self, Store};

/// How long requests stay pending.
pub const TTL: Duration = Duration::from_secs(3600);

/// A node: its store and its audit log.
pub struct Node {
    pub store: Store,
    pub events: Events,
    pub audit: PathBuf,
    _thread: AuditThread,
}

impl Node {
    /// Opens `url` as a node whose audit log is `audit`.
    pub async fn open(url: &str, audit: &Path) -> Node {
        let store = store::open(url).await.unwrap();
        let (writer, thread) = AuditWriter::start(AuditLog::open(audit).unwrap());
        Node {
            store,
            events: Events::new(Some(AuditRecorder::Queued(writer)), None),
            audit: audit.to_owned(),
            _thread: thread,
        }
    }

    /// The node's desk.
    pub fn desk(&self) -> GrantDesk<'_> {
        GrantDesk {
            store: self.store.as_ref(),
            events: &self.events,
            watch: None,
            request_ttl: TTL,
        }
    }

    /// How many lines of `event` the node's audit log holds.
    pub fn audit_lines(&self, event: &str) -> usize {
        self.events.flush();
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .matches(&format!("\"event\":\"{event}\""))
            .count()
    }
}

/// A random Ed25519 public key line.
fn key() -> String {
    let key =
        russh::keys::PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519).unwrap();
    key.public_key().to_openssh().unwrap()
}

/// alice (sre), bob and carol (leads); target db-01; role db-ops needing two approvals from
/// leads, and self (self-service).
pub fn policy() -> Policy {
    let mut text = String::new();
    for (name, group) in [("alice", "sre"), ("bob", "leads"), ("carol", "leads")] {
        text.push_str(&format!(
            "[[user]]\nname = \"{name}\"\nkeys = [\"{}\"]\ngroups = [\"{group}\"]\n",
            key()
        ));
    }
    text.push_str(&format!(
        "[[target]]\nname = \"db-01\"\naddress = \"127.0.0.1\"\nhost_keys = [\"{}\"]\n",
        key()
    ));
    text.push_str(
        "[[role]]\nname = \"db-ops\"\nmembers = [\"sre\"]\ntargets = [\"db-01\"]\nlogin = \"ops\"\n\
         max_duration = \"1h\"\napprovals = 2\napprovers = [\"leads\"]\nshell = \"full\"\n\
         [[role]]\nname = \"self\"\nmembers = [\"sre\"]\ntargets = [\"db-01\"]\nlogin = \"ops\"\n\
         approvals = 0\nshell = \"full\"\n",
    );
    load_sources(&[(Path::new("policy.toml"), &text)]).unwrap()
}

/// `name` as an acting user of `policy`.
pub fn user(policy: &Policy, name: &str) -> Actor {
    Actor::User(policy.user(name).unwrap().clone())
}

/// Files alice's request for `role` on db-01 at `now` through `node`.
pub async fn request(
    node: &Node,
    policy: &Policy,
    role: &str,
    now: i64,
) -> gatehouse::grants::Grant {
    let input = RequestInput {
        user: policy.user("alice").unwrap(),
        role,
        target: "db-01",
        duration: Duration::from_secs(600),
        reason: "INC-7 replica lag",
    };
    node.desk().request(policy, &input, now).await.unwrap()
}

/// Two nodes on one fresh database, each with its own audit log in `dir`.
pub async fn two_nodes(dir: &Path) -> (Arc<Node>, Arc<Node>) {
    let url = crate::fresh_database();
    let a = Node::open(&url, &dir.join("a.jsonl")).await;
    let b = Node::open(&url, &dir.join("b.jsonl")).await;
    (Arc::new(a), Arc::new(b))
}
