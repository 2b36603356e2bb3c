//! This node among the others that share its store.
//!
//! * **Heartbeat.** The node records a heartbeat every `[cluster] heartbeat`, so every node and
//!   `gatehouse nodes list` see who is up.
//! * **Lost nodes.** A node silent for `[cluster] gone_after` is declared gone by whichever node
//!   notices first (the store hands each loss to exactly one), and its sessions that never
//!   recorded an end are closed in the index as `node lost`. A node that restarts closes its
//!   own leftovers the same way.
//! * **Lost view.** A node that cannot confirm the grants against the store for
//!   `[cluster] lost_grace` closes its running sessions: it could no longer see a revocation
//!   made on another node, and a session that outlives its grant is the one thing a bastion
//!   must not allow. New sessions are refused meanwhile (the store is faulty), and the node
//!   recovers by itself once the store answers.
//!
//! A single node is a cluster of one and runs the same code.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::bastion::Bastion;
use crate::events::{Event, EventKind};
use crate::grants::watch::GrantEnd;
use crate::health::Component;
use crate::outcome::EndClass;
use crate::store::nodes::Heartbeat;

/// Why a session closed by a lost node shows in the index.
pub const NODE_LOST: &str = "node lost";

/// How often the view of the grants is checked against `lost_grace`.
const VIEW_CHECK: Duration = Duration::from_millis(250);

/// This node's membership: its heartbeat and its watch on the grant view. Stop it with
/// [`Membership::leave`] at a clean shutdown.
pub struct Membership {
    bastion: Arc<Bastion>,
    tasks: Vec<JoinHandle<()>>,
}

/// Joins the cluster: closes what an earlier run of this node left open, records the first
/// heartbeat, and starts the heartbeat and the view watch.
pub async fn join(bastion: Arc<Bastion>) -> Membership {
    let cluster = &bastion.config.cluster;
    let beat = Heartbeat {
        name: cluster.node_name.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        listen: bastion.config.listen.to_string(),
        started_at: crate::grants::now(),
    };
    // Sessions of this node that started before this run and have no end: the run that had
    // them died without recording it.
    close_lost(&bastion, &beat.name, beat.started_at, false).await;
    if let Err(e) = bastion.store.heartbeat(&beat, crate::grants::now()).await {
        warn!(error = %e, "cannot record this node's heartbeat yet");
    }
    let tasks = vec![
        tokio::spawn(heartbeat(bastion.clone(), beat)),
        tokio::spawn(watch_view(bastion.clone())),
    ];
    Membership { bastion, tasks }
}

impl Membership {
    /// Stops the heartbeat and records that this node stopped cleanly, so no other node
    /// declares it lost.
    pub async fn leave(self) {
        for task in &self.tasks {
            task.abort();
        }
        let name = &self.bastion.config.cluster.node_name;
        if let Err(e) = self
            .bastion
            .store
            .node_stopped(name, crate::grants::now())
            .await
        {
            warn!(error = %e, "cannot record that this node stopped");
        }
    }
}

/// Records a heartbeat every `[cluster] heartbeat` and declares gone the nodes that went
/// silent.
async fn heartbeat(bastion: Arc<Bastion>, beat: Heartbeat) {
    let cluster = bastion.config.cluster.clone();
    let mut tick = tokio::time::interval(cluster.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // A store that is known to fail (locked, full, away) is left to its monitor: a
        // heartbeat would only queue behind the same fault, ahead of the writes that matter
        // (session ends, decisions). Other nodes see this node as silent, which it is.
        if bastion.health.is_faulty(Component::Store) {
            continue;
        }
        let now = crate::grants::now();
        if let Err(e) = bastion.store.heartbeat(&beat, now).await {
            warn!(error = %e, "cannot record this node's heartbeat");
            continue;
        }
        let silent_since = now - cluster.gone_after.as_secs() as i64;
        match bastion.store.mark_gone(silent_since).await {
            Ok(gone) => {
                for node in gone {
                    close_lost(&bastion, &node, now + 1, true).await;
                }
            }
            Err(e) => warn!(error = %e, "cannot look for nodes that went silent"),
        }
    }
}

/// Closes in the index the sessions of `node` started before `before` that have no end, and
/// reports it (with an alert when another node was lost, not when this node restarts).
async fn close_lost(bastion: &Bastion, node: &str, before: i64, other: bool) {
    let closed = match bastion
        .store
        .close_orphans(node, before, crate::grants::now(), NODE_LOST)
        .await
    {
        Ok(closed) => closed,
        Err(e) => {
            error!(node, error = %e, "cannot close the sessions of a lost node in the index");
            return;
        }
    };
    if !other && closed.is_empty() {
        return;
    }
    let reason = if other {
        format!("node {node} stopped heartbeating; its open sessions were closed as {NODE_LOST:?}")
    } else {
        format!("an earlier run of node {node} stopped without recording these sessions' ends")
    };
    warn!(node, sessions = closed.len(), "{reason}");
    let event = Event {
        reason: Some(reason),
        detail: Some(serde_json::json!({ "lost_node": node, "sessions": closed })),
        ..Event::new(EventKind::NodeLost)
    };
    if other {
        bastion.events.emit(event);
    } else {
        // Not an alert: nothing was lost now, only written down late.
        bastion.events.record_only(&event);
    }
}

/// Closes every running session once the grants have gone unconfirmed for `lost_grace`, and
/// keeps the store marked faulty (so new sessions are refused) until they are confirmed again.
async fn watch_view(bastion: Arc<Bastion>) {
    let grace = bastion.config.cluster.lost_grace;
    let mut tick = tokio::time::interval(VIEW_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lost = false;
    loop {
        tick.tick().await;
        let unconfirmed = bastion.watch.unconfirmed_for();
        if unconfirmed < grace {
            if lost {
                info!(
                    "the grants are confirmed again; new sessions are allowed once the store is healthy"
                );
                lost = false;
            }
            continue;
        }
        let why = format!(
            "the grants could not be confirmed for {} (store unavailable): a revocation \
             would not be seen",
            crate::duration::format(grace)
        );
        if !bastion.health.is_faulty(Component::Store) {
            bastion.health.fault(Component::Store, why.clone());
        }
        let live = bastion.watch.live_sessions();
        if live.is_empty() && lost {
            continue;
        }
        lost = true;
        if live.is_empty() {
            continue;
        }
        let message = format!("gatehouse: session closed: {why}");
        for session in &live {
            bastion.watch.close_session(
                session.key,
                GrantEnd {
                    message: message.clone(),
                    class: EndClass::ClosedByBastion,
                },
            );
        }
        error!(sessions = live.len(), "closed every running session: {why}");
        bastion.events.emit(Event {
            reason: Some(why),
            detail: Some(serde_json::json!({
                "sessions": live.iter().map(|s| s.session_id.clone()).collect::<Vec<_>>(),
            })),
            ..Event::new(EventKind::SessionsClosed)
        });
    }
}
