//! Several `gatehouse serve` nodes on one real PostgreSQL, in front of one real `sshd`: the
//! deployment the multi-node tests run against.
//!
//! The nodes share what a real deployment shares (the database, the user CA key, the SSH host
//! key behind the load balancer's one address, the policies and a recordings volume) and keep
//! apart what is per node (the data directory with its audit log, the port, the node name).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::postgres::Postgres;
use super::*;

/// Timings short enough for tests: a heartbeat a second, a node gone after 4 s, sessions
/// closed after 3 s without a confirmed view of the grants.
pub const FAST_CLUSTER: &str = "heartbeat = \"1s\"\ngone_after = \"4s\"\nlost_grace = \"3s\"\n";

/// The database, the nodes and the target.
pub struct Cluster {
    /// The nodes, named `node-a`, `node-b`, ….
    pub nodes: Vec<Gatehouse>,
    /// The target behind them.
    pub target: Target,
    /// The CA public key line the target trusts.
    pub ca: String,
    /// The shared recordings directory.
    pub recordings: PathBuf,
    /// The PostgreSQL server (declared after the nodes, so it stops after them).
    pub pg: Postgres,
    /// Keeps the directory alive.
    pub tmp: tempfile::TempDir,
}

/// The name of node `i`.
pub fn node_name(i: usize) -> String {
    format!("node-{}", (b'a' + i as u8) as char)
}

impl Cluster {
    /// Starts PostgreSQL and prepares `count` nodes with `cluster` as their `[cluster]` lines
    /// (besides `node_name`) and `extra` appended to every config; generates keys for `names`.
    /// The nodes are not started: write the policy with [`Cluster::write_policy`] first.
    pub fn new(names: &[&str], count: usize, cluster: &str, extra: &str) -> (Cluster, Vec<Person>) {
        let tmp = tempfile::tempdir().unwrap();
        let pg = Postgres::start();
        let url = pg.create_database("gatehouse");
        let shared = tmp.path().join("shared");
        std::fs::create_dir_all(&shared).unwrap();
        let recordings = shared.join("recordings");
        let people = people(tmp.path(), names);
        let mut nodes = Vec::new();
        let mut ca = String::new();
        for i in 0..count {
            let config = format!(
                "store = \"{url}\"\nhost_key = \"{host}\"\n{extra}\n\
                 [ca]\nkey = \"{ca_key}\"\n\n[recordings]\ndir = \"{rec}\"\n\n\
                 [cluster]\nnode_name = \"{name}\"\n{cluster}\n",
                host = shared.join("host_ed25519").display(),
                ca_key = shared.join("user_ca").display(),
                rec = recordings.display(),
                name = node_name(i),
            );
            let (gh, node_ca) = Gatehouse::prepare(&tmp.path().join(node_name(i)), &config);
            // The harness pins the host key it finds in the node's data directory; every node
            // presents the shared one.
            let keys = gh.dir.join("data/keys");
            std::fs::create_dir_all(&keys).unwrap();
            std::os::unix::fs::symlink(shared.join("host_ed25519"), keys.join("host_ed25519"))
                .unwrap();
            ca = node_ca;
            nodes.push(gh);
        }
        let target = Target::start(&tmp.path().join("target"), &ca, "");
        (
            Cluster {
                nodes,
                target,
                ca,
                recordings,
                pg,
                tmp,
            },
            people,
        )
    }

    /// Writes the same policy file on every node.
    pub fn write_policy(&self, name: &str, text: &str) {
        for node in &self.nodes {
            node.write_policy(name, text);
        }
    }

    /// Starts every node, one after the other.
    pub fn start(&mut self) {
        for node in &mut self.nodes {
            node.start();
        }
    }

    /// The `[[target]]` table for the target under `name`.
    pub fn target_toml(&self, name: &str) -> String {
        format!(
            "[[target]]\nname = \"{name}\"\naddress = \"127.0.0.1\"\nport = {}\nhost_keys = [\"{}\"]\n\n",
            self.target.port, self.target.host_key
        )
    }

    /// `gatehouse nodes list --json` run on node `i`.
    pub fn nodes_list(&self, i: usize) -> serde_json::Value {
        let out = run(
            self.nodes[i].command(&["nodes", "list", "--json"]),
            b"",
            Duration::from_secs(30),
        );
        assert_eq!(out.code(), 0, "nodes list: {}", out.err());
        serde_json::from_str(&out.out()).unwrap()
    }

    /// Waits until `check` holds for `nodes list` seen from node `i`.
    pub fn wait_for_nodes(
        &self,
        i: usize,
        limit: Duration,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + limit;
        loop {
            let list = self.nodes_list(i);
            if check(&list) {
                return list;
            }
            assert!(
                Instant::now() < deadline,
                "the nodes never reached the expected state: {list}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Node `i`'s audit log, one JSON value per line.
    pub fn audit(&self, i: usize) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.nodes[i].dir.join("data/audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}
