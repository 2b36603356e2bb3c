//! `gatehouse nodes list`: the nodes sharing this store, so an operator sees at a glance which
//! are up, which version each runs, and where the live sessions are.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Subcommand;

use crate::config::Config;
use crate::server::verbs::grants::when;
use crate::store;
use crate::store::nodes::NodeRecord;

/// `gatehouse nodes …`.
#[derive(Debug, Subcommand)]
pub enum NodesCommand {
    /// Each node: its state, version, last heartbeat and live sessions.
    List {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `nodes` subcommand.
pub fn run(config: Config, command: NodesCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = store::open(&config.store).await?;
        match command {
            NodesCommand::List { json } => {
                let nodes = store.nodes().await?;
                if json {
                    println!("{}", serde_json::to_string(&nodes)?);
                } else {
                    print!("{}", table(&nodes, crate::grants::now()));
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

/// The nodes as a table, with how long ago each was last heard from.
fn table(nodes: &[NodeRecord], now: i64) -> String {
    if nodes.is_empty() {
        return "No node has started on this store yet.\n".to_owned();
    }
    let mut out = format!(
        "{:20}  {:8}  {:10}  {:23}  {:>9}  {:>8}  LISTEN\n",
        "NODE", "STATE", "VERSION", "LAST HEARTBEAT", "AGO", "SESSIONS"
    );
    for n in nodes {
        let _ = writeln!(
            out,
            "{:20}  {:8}  {:10}  {:23}  {:>8}s  {:>8}  {}",
            n.name,
            n.state.as_str(),
            n.version,
            when(n.last_seen),
            (now - n.last_seen).max(0),
            n.live_sessions,
            n.listen
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::nodes::NodeState;

    #[test]
    fn the_table_names_every_node() {
        let node = |name: &str, state| NodeRecord {
            name: name.into(),
            version: "0.1.0".into(),
            listen: "127.0.0.1:2222".into(),
            started_at: 100,
            last_seen: 110,
            state,
            live_sessions: 3,
        };
        let text = table(
            &[
                node("bastion-a", NodeState::Up),
                node("bastion-b", NodeState::Gone),
            ],
            115,
        );
        assert!(text.contains("bastion-a") && text.contains("up"), "{text}");
        assert!(
            text.contains("bastion-b") && text.contains("gone"),
            "{text}"
        );
        assert!(text.contains("5s"), "{text}");
        assert_eq!(table(&[], 0), "No node has started on this store yet.\n");
    }
}
