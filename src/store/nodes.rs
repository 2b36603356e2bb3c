//! The nodes of a cluster as the store records them: each node's heartbeat, so that every node
//! (and `gatehouse nodes list`) sees who is up, and a node that went silent is declared gone
//! once, by whichever node notices first.

use async_trait::async_trait;

use super::StoreError;
use crate::grants::Timestamp;

/// A node's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// The node's name (`[cluster] node_name`).
    pub name: String,
    /// The Gatehouse version it runs.
    pub version: String,
    /// Where it listens for SSH.
    pub listen: String,
    /// When this run of the node started.
    pub started_at: Timestamp,
}

/// Where a node stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Heartbeating.
    Up,
    /// Stopped by its operator (a clean shutdown).
    Stopped,
    /// Silent for longer than the timeout; its open sessions were closed as `node lost`.
    Gone,
}

impl NodeState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Up => "up",
            NodeState::Stopped => "stopped",
            NodeState::Gone => "gone",
        }
    }

    /// The state a stored name stands for.
    pub fn parse(s: &str) -> Option<NodeState> {
        match s {
            "up" => Some(NodeState::Up),
            "stopped" => Some(NodeState::Stopped),
            "gone" => Some(NodeState::Gone),
            _ => None,
        }
    }
}

/// One node as listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeRecord {
    /// Its name.
    pub name: String,
    /// The version it last reported.
    pub version: String,
    /// Where it listens for SSH.
    pub listen: String,
    /// When its current (or last) run started.
    pub started_at: Timestamp,
    /// Its last heartbeat.
    pub last_seen: Timestamp,
    /// Where it stands.
    pub state: NodeState,
    /// Sessions it started that have no end in the index.
    pub live_sessions: i64,
}

/// The node registry.
#[async_trait]
pub trait NodeRegistry: Send + Sync {
    /// Records a heartbeat at `now`: the node is up.
    async fn heartbeat(&self, beat: &Heartbeat, now: Timestamp) -> Result<(), StoreError>;
    /// Records that the node stopped cleanly at `now`.
    async fn node_stopped(&self, name: &str, now: Timestamp) -> Result<(), StoreError>;
    /// Every node the store knows, by name.
    async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError>;
    /// Declares gone every node that is up and whose last heartbeat is before `silent_since`,
    /// and returns their names. Atomic: of several nodes that look at once, exactly one gets
    /// each name back, so each loss is handled and reported once.
    async fn mark_gone(&self, silent_since: Timestamp) -> Result<Vec<String>, StoreError>;
}
