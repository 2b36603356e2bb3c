//! The access report over a large history: 1,000,000 audit lines, 100,000 sessions (1,000 of
//! them restricted shells with recordings whose markers and hashes are read) and 10,000
//! grants; then rendering that report as HTML.
//!
//! `cargo bench --bench report` (on SQLite in a temporary directory), or on another store given
//! by URL: `GATEHOUSE_BENCH_STORE=postgres://USER@HOST/DB cargo bench --bench report`. The
//! database must be empty: the bench fills it. Filling takes a while; it is not measured.

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse::audit::AuditLog;
use gatehouse::grants::store::{Applied, Reads, Snapshot, Transition, Write};
use gatehouse::grants::{self, GrantError, GrantState, NewGrant};
use gatehouse::policy::{Policy, load_sources};
use gatehouse::report::{self, Source, html};
use gatehouse::store::sessions::{SessionEnd, SessionRecord};
use gatehouse::store::{self, Store};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

const AUDIT_LINES: usize = 1_000_000;
const SESSIONS: usize = 100_000;
const RECORDED: usize = 1_000;
const GRANTS: usize = 10_000;
const USERS: usize = 200;

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

fn policy() -> Policy {
    let mut text = String::new();
    let key = || {
        let key =
            russh::keys::PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519)
                .unwrap();
        key.public_key().to_openssh().unwrap()
    };
    for u in 0..USERS {
        text.push_str(&format!(
            "[[user]]\nname = \"user{u}\"\nkeys = [\"{}\"]\ngroups = [\"sre\"]\n",
            key()
        ));
    }
    let host = key();
    for t in 0..50 {
        text.push_str(&format!(
            "[[target]]\nname = \"web-{t:02}\"\naddress = \"127.0.0.1\"\nhost_keys = [\"{host}\"]\n"
        ));
    }
    text.push_str(
        "[[role]]\nname = \"web-read\"\nmembers = [\"sre\"]\ntargets = [\"web-*\"]\nlogin = \"ops\"\n\
         max_duration = \"4h\"\napprovals = 1\napprovers = [\"sre\"]\nshell = \"restricted\"\n\
         commands = [\"echo *\", \"uptime\", \"systemctl status *\", \"journalctl -u nginx *\"]\n\
         [[role]]\nname = \"web-ops\"\nmembers = [\"sre\"]\ntargets = [\"web-*\"]\nlogin = \"ops\"\n\
         max_duration = \"2h\"\napprovals = 0\nshell = \"full\"\n",
    );
    load_sources(&[(Path::new("bench.toml"), &text)]).unwrap()
}

fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

/// A million lines, mostly what a busy bastion writes (sessions starting and ending, logins),
/// with the kinds a report counts mixed in.
fn fill_audit(path: &Path) {
    let log = AuditLog::open(path).unwrap();
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..AUDIT_LINES {
        let user = format!("user{}", i % USERS);
        let record = match i % 20 {
            0 => (
                "session.denied",
                json!({"user": user, "target": "web-01", "reason": format!("no rule allows \"rm -rf /{}\"", i % 7),
                       "denial_class": "command_not_allowed", "role": "web-read"}),
            ),
            1 => (
                "grant.refused",
                json!({"user": user, "actor": user, "grant_id": i % GRANTS + 1, "role": "web-read",
                       "reason": "your own request", "detail": {"decision": "approve", "refusal": "self_approval"}}),
            ),
            2 => ("login", json!({"user": user})),
            3..=11 => (
                "session.started",
                json!({"user": user, "target": "web-01", "role": "web-read", "session_id": format!("s{i}")}),
            ),
            _ => (
                "session.ended",
                json!({"user": user, "session_id": format!("s{i}"), "bytes_in": 10, "bytes_out": 2048}),
            ),
        };
        batch.push((record.0.to_owned(), fields(record.1)));
        if batch.len() == batch.capacity() {
            log.append_batch(&batch).unwrap();
            batch.clear();
        }
    }
    log.append_batch(&batch).unwrap();
}

/// A restricted-shell recording with a few `run:` markers, and its hash.
fn recording(dir: &Path, i: usize) -> (String, String) {
    let path = dir.join(format!("s{i}.cast"));
    let mut text =
        String::from("{\"version\": 2, \"width\": 80, \"height\": 24, \"timestamp\": 1}\n");
    for n in 0..5 {
        text.push_str(&format!(
            "[{n}.1, \"o\", \"user@web-01 [web-read]$ \"]\n[{n}.2, \"m\", \"run: 'systemctl' 'status' 'nginx'\"]\n\
             [{n}.3, \"o\", \"active (running)\\r\\n\"]\n"
        ));
    }
    std::fs::write(&path, &text).unwrap();
    let hash: String = Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (path.display().to_string(), hash)
}

async fn fill_store(store: &Store, recordings: &Path, now: i64) {
    let mut batch = Vec::with_capacity(1000);
    for i in 0..GRANTS {
        let start = now - 80 * 86_400 + (i as i64) * 600;
        batch.push(NewGrant {
            user: format!("user{}", i % USERS),
            role: if i % 3 == 0 { "web-ops" } else { "web-read" }.into(),
            target: format!("web-{:02}", i % 50),
            reason: "benchmark".into(),
            duration: Duration::from_secs(3600),
            state: GrantState::Expired,
            break_glass: i % 500 == 0,
            requested_at: start,
            activated_at: Some(start + 60),
            expires_at: Some(start + 3660),
        });
        if batch.len() == 1000 {
            store
                .transact(&Seed(std::mem::take(&mut batch)))
                .await
                .unwrap();
        }
    }
    for i in 0..SESSIONS {
        let grant = (i % GRANTS) as i64 + 1;
        let start = now - 80 * 86_400 + (grant - 1) * 600 + 120 + (i / GRANTS) as i64 * 30;
        let (kind, command, recording) = if i < RECORDED {
            let (path, hash) = recording(recordings, i);
            ("restricted", None, Some((path, hash)))
        } else if i % 3 == 0 {
            ("shell", None, None)
        } else {
            (
                "exec",
                Some("'systemctl' 'status' 'nginx'".to_owned()),
                None,
            )
        };
        let record = SessionRecord {
            id: format!("{i:08}-bench"),
            node: "bench".into(),
            user: format!("user{}", (grant as usize - 1) % USERS),
            target: format!("web-{:02}", (grant as usize - 1) % 50),
            role: if (grant - 1) % 3 == 0 {
                "web-ops"
            } else {
                "web-read"
            }
            .into(),
            grant_id: grant,
            kind: kind.into(),
            command,
            break_glass: (grant - 1) % 500 == 0,
            started_at: start,
            ended_at: None,
            bytes_in: None,
            bytes_out: None,
            exit_status: None,
            end_reason: None,
            recording: recording.as_ref().map(|(p, _)| p.clone()),
            sha256: None,
        };
        store.started(&record).await.unwrap();
        let end = SessionEnd {
            ended_at: start + 20,
            bytes_in: 10,
            bytes_out: 2048,
            exit_status: Some(0),
            end_reason: None,
            sha256: recording.map(|(_, h)| h),
        };
        store.ended(&record.id, &end).await.unwrap();
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = std::env::var("GATEHOUSE_BENCH_STORE")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let store = runtime.block_on(store::open(&url)).unwrap();
    assert_eq!(
        runtime.block_on(store.revision()).unwrap(),
        0,
        "{} is not empty: the bench fills the store itself",
        store.describe()
    );
    let now = grants::now();
    let recordings = dir.path().join("recordings");
    std::fs::create_dir_all(&recordings).unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let audit = dir.path().join("audit.jsonl");
    let filling = Instant::now();
    fill_audit(&audit);
    runtime.block_on(fill_store(&store, &recordings, now));
    eprintln!("filled in {:?}", filling.elapsed());
    // The audit lines carry the time they were written: the period ends after them.
    let now = grants::now();
    let policy = policy();
    let source = Source {
        store: store.as_ref(),
        policy: &policy,
        policies_dir: &policies,
        audit_log: &audit,
        request_ttl: Duration::from_secs(86_400),
        since: now - 90 * 86_400,
        until: now + 1,
        now,
        long_after: Duration::from_secs(8 * 3600),
        generated_by: "bench".into(),
    };
    // Once with the steps timed, to see where the time goes.
    let started = Instant::now();
    let mut steps = |what: &str| eprintln!("{:>8.2?}  {what}", started.elapsed());
    let made = runtime
        .block_on(report::generate(&source, &mut steps))
        .unwrap();
    eprintln!("{:>8.2?}  done", started.elapsed());
    assert_eq!(made.time.grants.len(), GRANTS);
    assert!(made.integrity.audit.ok);
    assert_eq!(made.integrity.recordings.matching, RECORDED as u64);
    assert_eq!(made.denials.total, (AUDIT_LINES / 20) as u64);
    let name = format!(
        "report over {AUDIT_LINES} audit lines, {SESSIONS} sessions, {GRANTS} grants ({})",
        if url.starts_with("sqlite://") {
            "SQLite"
        } else {
            "PostgreSQL"
        }
    );
    c.bench_function(&name, |b| {
        b.to_async(&runtime)
            .iter(|| async { report::generate(&source, &mut |_: &str| {}).await.unwrap() })
    });
    c.bench_function("render that report as HTML", |b| {
        b.iter(|| html::render(&made))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(60));
    targets = bench
}
criterion_main!(benches);
