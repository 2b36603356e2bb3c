//! A big directory, measured against a real OpenLDAP `slapd`: `USERS` people (default 10,000)
//! with three Ed25519 keys each, in 20 groups, loaded with `slapadd` before slapd starts.
//!
//! 1. **The sync.** The time of a first sync (everyone is new), of a sync that changes nothing,
//!    and of one after 1 % of the people left a group, each read whole with paged searches,
//!    built, stored (SQLite) and composed with the policy files.
//! 2. **Sessions do not stall.** While each sync runs, a task on the same runtime wakes every
//!    millisecond; the worst lateness of its wake-ups is what a session's I/O would have waited.
//!
//! It prints one markdown table. `cargo bench --bench directory`; `USERS` changes the size.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::slapd::{self, Slapd};
use gatehouse::config::Config;
use gatehouse::directory::sync::{self, Outcome};
use gatehouse::events::Events;

const GROUPS: usize = 20;

fn main() {
    let users: usize = std::env::var("USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (ldif, group_of) = directory(users);
    let ldap = Slapd::start(&ldif);
    println!(
        "loaded {users} people x 3 keys into slapd in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let groups: Vec<String> = (0..GROUPS)
        .map(|g| format!("\"ldap-g{g}\" = \"g{g}\""))
        .collect();
    std::fs::create_dir_all(tmp.path().join("policies")).unwrap();
    std::fs::write(
        tmp.path().join("gatehouse.toml"),
        format!(
            "store = \"sqlite://{}\"\n[directory]\nurl = \"{}\"\nbind_dn = \"{}\"\n\
             password_file = \"{}\"\nbase_dn = \"ou=people,{}\"\ngroup_base_dn = \"ou=groups,{}\"\n\
             groups = {{ {} }}\nmax_removal = \"100%\"\ntimeout = \"10m\"\n",
            tmp.path().join("g.db").display(),
            ldap.url(),
            slapd::SERVICE,
            ldap.password_file().display(),
            slapd::BASE,
            slapd::BASE,
            groups.join(", ")
        ),
    )
    .unwrap();
    let config = Config::load(&tmp.path().join("gatehouse.toml")).unwrap();
    let directory = config.directory.clone().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = runtime
        .block_on(gatehouse::store::open(&config.store))
        .unwrap();
    let events = Events::default();
    let files = gatehouse::policy::load_dir_with_groups(
        &config.policies,
        &gatehouse::directory::outside_groups(&config),
    )
    .unwrap();

    let mut rows = Vec::new();
    let mut measure = |label: &str| {
        let (took, worst, outcome) = runtime.block_on(async {
            let stop = Arc::new(AtomicBool::new(false));
            let worst = Arc::new(AtomicU64::new(0));
            let ticker = tokio::spawn(lateness(stop.clone(), worst.clone()));
            let start = Instant::now();
            let outcome = sync::run(&directory, &store, &events, "bench", false)
                .await
                .expect("sync");
            if let Outcome::Applied { snapshot, .. } = &outcome {
                let (policy, conflicts) = files.with_directory(snapshot);
                assert!(conflicts.is_empty());
                assert_eq!(policy.users().count(), users);
            }
            let took = start.elapsed();
            stop.store(true, Ordering::Relaxed);
            let _ = ticker.await;
            (
                took,
                Duration::from_micros(worst.load(Ordering::Relaxed)),
                outcome,
            )
        });
        let what = match outcome {
            Outcome::Applied { changes, .. } => format!(
                "applied: {} added, {} removed, {} changed",
                changes.added.len(),
                changes.removed.len(),
                changes.changed.len()
            ),
            Outcome::Unchanged { users } => format!("unchanged ({users} people)"),
            Outcome::Held(h) => format!("held ({} removed)", h.removed.len()),
        };
        rows.push(format!(
            "| {label} | {:.2} | {:.1} | {what} |",
            took.as_secs_f64(),
            worst.as_secs_f64() * 1000.0
        ));
    };
    measure("first sync (everyone new)");
    measure("sync, nothing changed");
    // 1 % of the people leave their group.
    let leaving = users / 100;
    for (i, group) in group_of.iter().enumerate().take(leaving) {
        let uid = format!("u{i:05}");
        ldap.modify(&format!(
            "dn: cn=ldap-g{group},ou=groups,{}\nchangetype: modify\ndelete: member\nmember: {}\n",
            slapd::BASE,
            slapd::person_dn(&uid)
        ));
    }
    measure("sync after 1 % left a group");

    println!(
        "\n| sync of {users} people x 3 keys | seconds | worst wake-up lateness, ms | outcome |"
    );
    println!("|---|---:|---:|---|");
    for row in rows {
        println!("{row}");
    }
}

/// Wakes every millisecond until `stop`, keeping the worst lateness in microseconds.
async fn lateness(stop: Arc<AtomicBool>, worst: Arc<AtomicU64>) {
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let now = Instant::now();
        let late = now
            .duration_since(last)
            .saturating_sub(Duration::from_millis(1));
        worst.fetch_max(late.as_micros() as u64, Ordering::Relaxed);
        last = now;
    }
}

/// The LDIF of `users` people with three keys each, spread over the groups, and each person's
/// group.
fn directory(users: usize) -> (String, Vec<usize>) {
    let mut ldif = String::with_capacity(users * 700);
    let mut members: Vec<Vec<String>> = vec![Vec::new(); GROUPS];
    let mut group_of = Vec::with_capacity(users);
    for i in 0..users {
        let uid = format!("u{i:05}");
        let keys: Vec<String> = (0..3).map(|k| key(i * 3 + k)).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        ldif.push_str(&slapd::person(&uid, 10_000 + i as u32, &refs));
        members[i % GROUPS].push(uid);
        group_of.push(i % GROUPS);
    }
    for (g, list) in members.iter().enumerate() {
        let refs: Vec<&str> = list.iter().map(String::as_str).collect();
        ldif.push_str(&slapd::group(&format!("ldap-g{g}"), &refs));
    }
    (ldif, group_of)
}

/// A fresh Ed25519 public key line.
fn key(n: usize) -> String {
    let private =
        russh::keys::PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519)
            .expect("key generation");
    let mut line = private.public_key().to_openssh().expect("OpenSSH line");
    line.push_str(&format!(" bench-{n}"));
    line
}
