//! The access decision with 100,000 grants in the store: the pure decision over one user's live
//! grants, and the whole hot path (the indexed store read plus the decision) that every session
//! start pays; and the decision for exec requests checked against a role's command rules (the
//! tokeniser, the matcher, the option guard and the rules' scoping and subcommand checks).
//!
//! `cargo bench --bench decide` (on SQLite in a temporary file), or on another store, such as
//! PostgreSQL, given by URL: `GATEHOUSE_BENCH_STORE=postgres://USER@HOST/DB cargo bench --bench
//! decide`. The database must be empty: the bench fills it.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse::access::{self, Action, SessionRequest};
use gatehouse::grants::store::{Applied, Reads, Snapshot, Transition, Write};
use gatehouse::grants::{self, GrantError, GrantState, NewGrant};
use gatehouse::policy::{Policy, load_sources};
use gatehouse::store;

const GRANTS: usize = 100_000;
const USERS: usize = 1_000;

/// Inserts a batch of grants through the store's one write path, with nothing to audit.
struct Seed(Vec<NewGrant>);

#[async_trait::async_trait]
impl Transition for Seed {
    fn reads(&self) -> Reads {
        Reads::default()
    }
    fn decide(&self, _: &Snapshot) -> Result<Vec<Write>, GrantError> {
        Ok(self.0.iter().cloned().map(Write::Insert).collect())
    }
    async fn seal(&self, _: &[Applied]) -> Result<(), GrantError> {
        Ok(())
    }
}

/// Command rules of a just-enough-access role: literal, trailing-star, pinned-scope and
/// wildcard-subcommand rules, so that every check a rule can carry is exercised.
const RULES: &[&str] = &[
    "systemctl status *",
    "systemctl restart nginx",
    "journalctl -u nginx *",
    "tail -n * /var/log/nginx/*.log",
    "ls *",
    "grep -r * /srv/app",
    "curl -sS https://status.internal/health *",
    "docker logs web *",
    "systemctl * nginx",
    "git -C /srv/app *",
    "kubectl get pods -n web *",
    "kubectl describe pod -n web *",
];

/// Exec requests the rules above allow, the last ones matched by the last rules.
const COMMANDS: &[&str] = &[
    "systemctl status nginx --no-pager",
    "journalctl -u nginx --since today -n 50 --no-pager",
    "systemctl reload nginx",
    "git -C /srv/app log --oneline -n 5",
    "kubectl describe pod -n web web-0 --show-events=false",
];

fn policy_with(shell: &str, commands: &[&str]) -> Policy {
    let mut text = String::new();
    let key = |_: usize| {
        let key =
            russh::keys::PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519)
                .unwrap();
        key.public_key().to_openssh().unwrap()
    };
    for u in 0..4 {
        text.push_str(&format!(
            "[[user]]\nname = \"user{u}\"\nkeys = [\"{}\"]\ngroups = [\"sre\"]\n",
            key(u)
        ));
    }
    let host = key(99);
    for t in 0..50 {
        text.push_str(&format!(
            "[[target]]\nname = \"web-{t:02}\"\naddress = \"127.0.0.1\"\nhost_keys = [\"{host}\"]\n"
        ));
    }
    text.push_str(&format!("[[role]]\nname = \"web-ops\"\nmembers = [\"sre\"]\ntargets = [\"web-*\"]\nlogin = \"ops\"\nmax_duration = \"4h\"\napprovals = 0\nshell = \"{shell}\"\n"));
    if !commands.is_empty() {
        text.push_str("commands = [\n");
        for rule in commands {
            text.push_str(&format!("  '{rule}',\n"));
        }
        text.push_str("]\n");
    }
    load_sources(&[(std::path::Path::new("bench.toml"), &text)]).unwrap()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = std::env::var("GATEHOUSE_BENCH_STORE")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let store = runtime.block_on(store::open(&url)).unwrap();
    let backend = if url.starts_with("sqlite://") {
        "SQLite"
    } else {
        "PostgreSQL"
    };
    assert_eq!(
        runtime.block_on(store.revision()).unwrap(),
        0,
        "{} is not empty: the bench fills the store itself",
        store.describe()
    );
    let now = grants::now();
    runtime.block_on(async {
        let mut batch = Vec::with_capacity(1000);
        for i in 0..GRANTS {
            let active = (i / USERS).is_multiple_of(10);
            let grant = NewGrant {
                user: format!("user{}", i % USERS),
                role: "web-ops".into(),
                target: format!("web-{:02}", i % 50),
                reason: "benchmark".into(),
                duration: Duration::from_secs(3600),
                state: if active {
                    GrantState::Active
                } else {
                    GrantState::Expired
                },
                break_glass: false,
                requested_at: now - 10,
                activated_at: Some(now - 10),
                expires_at: Some(if active { now + 3600 } else { now - 5 }),
            };
            batch.push(grant);
            if batch.len() == 1000 {
                store
                    .transact(&Seed(std::mem::take(&mut batch)))
                    .await
                    .unwrap();
            }
        }
    });
    let policy = policy_with("full", &[]);
    let user = policy.user("user1").unwrap().clone();
    let request = SessionRequest {
        target: "web-01".into(),
        role: None,
        action: Action::Exec(b"uptime".to_vec()),
    };
    let held = runtime.block_on(store.live_for_user("user1", now)).unwrap();
    assert!(!held.is_empty());

    c.bench_function("decide (pure, one user's live grants)", |b| {
        b.iter(|| access::decide(&policy, &user, &held, &request, now).unwrap())
    });
    let jea = policy_with("none", RULES);
    let requests: Vec<SessionRequest> = COMMANDS
        .iter()
        .map(|command| SessionRequest {
            target: "web-01".into(),
            role: None,
            action: Action::Exec(command.as_bytes().to_vec()),
        })
        .collect();
    let jea_user = jea.user("user1").unwrap().clone();
    c.bench_function("decide (exec against 12 command rules, 5 commands)", |b| {
        b.iter(|| {
            for request in &requests {
                access::decide(&jea, &jea_user, &held, request, now).unwrap();
            }
        })
    });
    let name = format!("store read + decide (100k grants in {backend})");
    c.bench_function(&name, |b| {
        b.to_async(&runtime).iter(|| {
            let store = store.clone();
            let policy = &policy;
            let user = &user;
            let request = &request;
            async move {
                let held = store.live_for_user("user1", now).await.unwrap();
                access::decide(policy, user, &held, request, now).unwrap()
            }
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
