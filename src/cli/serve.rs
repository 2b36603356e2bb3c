//! `gatehouse serve`: run the bastion.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tracing::{error, info, warn};

use crate::alerts::{Alerts, Observers};
use crate::audit::{AuditLog, AuditWriter};
use crate::bastion::Bastion;
use crate::ca::Ca;
use crate::config::{Config, OnFailure};
use crate::events::{AuditRecorder, AuditedDeliveries, Event, EventKind, Events};
use crate::health::Health;
use crate::metrics::{Metrics, SAMPLE_EVERY};
use crate::{keys, policy, server, store};

/// Starts the bastion and runs it until SIGINT or SIGTERM, then drains it (live sessions are
/// told, given `[limits] shutdown_grace` or until a second signal, and closed with their ends
/// recorded; see [`server::drain`]) and flushes the audit log. Missing keys and the database are created on
/// the way, and each creation is logged.
pub fn run(config: Config) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    // First, so that everything started below is measured from its start.
    let metrics = Metrics::install();
    let outside_groups = crate::directory::outside_groups(&config);
    let policy = match policy::load_dir_with_groups(&config.policies, &outside_groups) {
        Ok(p) => p,
        Err(errors) => {
            for e in &errors.0 {
                error!("{e}");
            }
            anyhow::bail!(
                "the policy in {} did not load; not starting",
                config.policies.display()
            );
        }
    };
    for warning in policy.warnings() {
        warn!("{warning}");
    }
    let (ca_key, origin) = keys::load_or_create(&config.ca.key, "gatehouse-user-ca")?;
    if origin == keys::Origin::Created {
        info!(path = %config.ca.key.display(), "created a new CA key");
    }
    let (host_key, origin) = keys::load_or_create(&config.host_key, "gatehouse-host")?;
    if origin == keys::Origin::Created {
        info!(path = %config.host_key.display(), "created a new host key");
    }
    let store = store::open(&config.store)
        .await
        .context("opening the store")?;
    info!(store = %store.describe(), "the store is open");
    let ca = Ca::new(ca_key, config.ca.cert_ttl, config.ca.source_address.clone());
    info!(ca = %ca.public_key_line(), "targets must trust this CA (TrustedUserCAKeys)");
    // A log that was tampered with stops the bastion: it must not write evidence after a gap.
    let audit = AuditLog::open(&config.audit_log)
        .with_context(|| format!("opening the audit log {}", config.audit_log.display()))?
        .stamped_with(&config.cluster.node_name);
    let health = Health::default();
    // With "deny", a log that cannot be written refuses new sessions; with "allow" every
    // failure is only logged. Either way nothing queued is dropped.
    let audit_health = (config.audit.on_failure == OnFailure::Deny).then(|| health.clone());
    let (audit, audit_thread) = AuditWriter::start_with(audit, audit_health);
    let deliveries = Observers(vec![
        Arc::new(AuditedDeliveries(audit.clone())),
        Arc::new(metrics.clone()),
    ]);
    let alerts = Alerts::new(store.clone(), &config.alerts, Arc::new(deliveries))?;
    let dispatcher = alerts.spawn_dispatcher();
    info!(sinks = ?alerts.sink_labels(), "alert sinks");
    metrics.alert_sinks(&alerts.sink_labels());
    let mut events = Events::new(Some(AuditRecorder::Queued(audit)), Some(alerts))
        .on_node(&config.cluster.node_name)
        .with_sink(Arc::new(metrics.clone()));
    if config.http.listen.is_some() {
        events = events.with_console(&config.http.public_url);
    }
    // The directory's last good state, so its people keep their access across a restart while
    // the directory is down; a state that cannot be read stops the start (fail closed, and
    // loudly, rather than starting without them and ending their grants).
    let directory_revision = store.directory_revision().await?;
    let directory = crate::directory::stored_snapshot(&config, &store)
        .await
        .context("reading the directory's last good state")?;
    if let Some(d) = &directory {
        info!(
            users = d.users.len(),
            "the directory's last good state is in force"
        );
    }
    let mut bastion =
        Bastion::new(config.clone(), ca, policy, store.clone(), events)?.with_directory(directory);
    bastion.health = health.clone();
    bastion.metrics = Some(metrics.clone());
    let bastion = Arc::new(bastion);
    metrics.watch_health(&health);
    let sampler = metrics.spawn_sampler(store.clone(), SAMPLE_EVERY);
    // Every change of health is logged by `Health`, written to the audit log and sent to the
    // alert sinks directly (the outbox lives in the store, which may be what failed).
    let runtime = tokio::runtime::Handle::current();
    let weak = Arc::downgrade(&bastion);
    health.on_change(move |change| {
        if let Some(bastion) = weak.upgrade() {
            let change = change.clone();
            runtime.spawn(async move {
                bastion
                    .events
                    .health_changed(&change, std::time::Duration::from_secs(10))
                    .await;
            });
        }
    });
    bastion.store.monitor(&health);
    bastion.events.emit(Event {
        detail: Some(serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "listen": config.listen.to_string(),
        })),
        ..Event::new(EventKind::BastionStarted)
    });
    crate::grants::watch::spawn_poller(
        bastion.grants.clone(),
        bastion.watch.clone(),
        bastion.store.grant_changes(),
    );
    let membership = crate::cluster::join(bastion.clone()).await;
    let indexer = start_indexer(&bastion.store, &config.cluster.node_name);
    spawn_sweeper(bastion.clone());
    let retention = crate::retention::spawn(bastion.clone());
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    info!(listen = %listener.local_addr()?, "gatehouse is ready");
    spawn_reload_on_hangup(bastion.clone());
    if let Some(directory) = config.directory.clone() {
        crate::directory::follow::spawn(bastion.clone(), directory, directory_revision);
    }
    let web = crate::http::start(bastion.clone()).await?;
    let ssh = server::ssh_config(host_key, &config.ssh.ciphers);
    server::serve(bastion.clone(), listener, ssh, shutdown_signal).await?;
    if let Some(web) = web {
        web.abort();
    }
    // A deletion cut short leaves its file gone and its rows in place; the next start's sweep
    // finds the file missing and completes it.
    if let Some(retention) = retention {
        retention.abort();
    }
    // Every session has ended by now (or was given up on after the drain's bound, which is
    // logged); their index rows are completed in the background, so wait for those, then
    // what has been queued so far is written before exit.
    store::sessions::settle_ends(std::time::Duration::from_secs(10)).await;
    let stopping = indexer.clone();
    let _ = tokio::task::spawn_blocking(move || stopping.stop(std::time::Duration::from_secs(10)))
        .await;
    membership.leave().await;
    bastion.events.flush();
    dispatcher.shutdown().await;
    sampler.abort();
    drop(audit_thread);
    Ok(ExitCode::SUCCESS)
}

/// Starts the text index of recordings, and in the background queues the recordings of this node
/// that it is behind on (made before it existed, or interrupted by a crash).
fn start_indexer(store: &store::Store, node: &str) -> crate::search::Indexer {
    let indexer = crate::search::Indexer::start(store.clone(), tokio::runtime::Handle::current());
    let started = crate::grants::now();
    let (store, node, queue) = (store.clone(), node.to_owned(), indexer.clone());
    tokio::spawn(async move {
        match crate::search::reindex::behind(&store, &node, started).await {
            Ok(behind) => queue.catch_up(behind),
            Err(e) => {
                warn!(error = %e, "cannot tell which recordings the text index is behind on; they are indexed at the next start")
            }
        }
        // Final rows the last run committed but did not seal (a crash): they are found by
        // their text meanwhile.
        let unsealed = match crate::search::reindex::local_sessions(&store, &node).await {
            Ok(sessions) => {
                let ids: Vec<String> = sessions.into_iter().map(|s| s.id).collect();
                store.index_unsealed(&ids).await
            }
            Err(e) => Err(e),
        };
        match unsealed {
            Ok(rows) => queue.adopt(rows),
            Err(e) => {
                warn!(error = %e, "cannot read the text index's unsealed rows; they are searched by their text until the next start")
            }
        }
    });
    indexer
}

/// Once a second, writes down grants that expired or lapsed and reports them; once an hour,
/// forgets the web sign-ins that ended more than a day ago.
fn spawn_sweeper(bastion: Arc<Bastion>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seconds: u64 = 0;
        loop {
            tick.tick().await;
            seconds = seconds.wrapping_add(1);
            // Once an hour, sign-in links and browser sessions that can no longer sign anyone
            // in are deleted a day after they ended.
            if seconds % 3600 == 1 {
                let day_ago = crate::grants::now() - 86_400;
                if let Err(e) = bastion.store.forget_web_before(day_ago).await {
                    warn!(error = %e, "cannot forget ended web sessions");
                }
            }
            // The desk records each expiry and lapse before it is committed.
            if let Err(e) = bastion.desk().sweep(crate::grants::now()).await {
                warn!(error = %e, "cannot sweep grants");
            }
        }
    });
}

/// Reloads the policy on SIGHUP; a policy that does not load leaves the old one in force. The
/// policy the bastion started with is applied first, so that grants written under an older
/// policy (while the bastion was down) that it no longer gives are ended too.
fn spawn_reload_on_hangup(bastion: Arc<Bastion>) {
    tokio::spawn(async move {
        let report = bastion.reapply_policy().await;
        for e in &report.errors {
            error!("applying the policy at start-up: {e}");
        }
        if !report.grants_ended.is_empty() {
            info!(
                grants = report.grants_ended.len(),
                "ended grants that the policy in force no longer gives"
            );
        }
        let Ok(mut hangups) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            warn!("cannot listen for SIGHUP; policy reload is off");
            return;
        };
        while hangups.recv().await.is_some() {
            match bastion.reload_policy().await {
                Ok((p, report)) => {
                    for e in &report.errors {
                        error!("policy reload: {e}");
                    }
                    bastion.events.emit(Event {
                        detail: Some(serde_json::json!({
                            "ok": true,
                            "users": p.users().count(),
                            "targets": p.targets().count(),
                            "roles": p.roles().count(),
                            "sessions_closed": report.sessions_closed,
                            "grants_ended": report.grants_ended,
                            "errors": report.errors,
                        })),
                        ..Event::new(EventKind::PolicyReloaded)
                    })
                }
                Err(errors) => {
                    for e in &errors.0 {
                        error!("{e}");
                    }
                    let errors: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
                    bastion.events.emit(Event {
                        reason: Some(
                            "the new policy did not load; the previous policy stays in force"
                                .into(),
                        ),
                        detail: Some(serde_json::json!({ "ok": false, "errors": errors })),
                        ..Event::new(EventKind::PolicyReloaded)
                    });
                }
            }
        }
    });
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}
