//! The phases of a `sessions` run (ramp, hold, release, close) and its result files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::AtomicBool;

use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;

use super::*;

/// Why the run could not start, or its files could not be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("key {0}: {1}")]
    Key(String, String),
}

fn io(what: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |e| RunError::Io(what.display().to_string(), e)
}

/// The bastion's host key: the first key line of the file.
fn host_key(path: &Path) -> Result<PublicKey, RunError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| RunError::Key(path.display().to_string(), "no key line".into()))?;
    PublicKey::from_openssh(line)
        .map_err(|e| RunError::Key(path.display().to_string(), e.to_string()))
}

/// Sets `flag` at SIGUSR1, SIGTERM or SIGINT: release the sessions now.
fn watch_signals(flag: Arc<AtomicBool>) -> Result<(), RunError> {
    let sig = |k| signal(k).map_err(|e| RunError::Io("signal handler".into(), e));
    let (mut usr1, mut term, mut int) = (
        sig(SignalKind::user_defined1())?,
        sig(SignalKind::terminate())?,
        sig(SignalKind::interrupt())?,
    );
    tokio::spawn(async move {
        tokio::select! {
            _ = usr1.recv() => {}
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        flag.store(true, Ordering::Relaxed);
    });
    Ok(())
}

/// Starts the sessions, at most `--rate` a second; returns their tasks and when the last began.
async fn launch(shared: Arc<Shared>) -> (Vec<JoinHandle<Record>>, f64) {
    let n = shared.args.n;
    let mut tasks = Vec::with_capacity(n);
    let mut tick = (shared.args.rate > 0.0).then(|| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / shared.args.rate));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    for i in 1..=n {
        if let Some(t) = tick.as_mut()
            && *shared.phase.borrow() == Phase::Ramp
        {
            tokio::select! {
                _ = t.tick() => {}
                () = left(shared.phase.clone(), Phase::Ramp) => {}
            }
        }
        tasks.push(tokio::spawn(session(shared.clone(), i)));
    }
    (tasks, now())
}

/// Runs the whole test and writes the result files in `args.dir`.
pub(crate) async fn run(args: Args) -> Result<(), RunError> {
    let dir = args.dir.clone();
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    for f in [
        "up",
        "release",
        "times",
        "ready.tsv",
        "exit.tsv",
        "errors.tsv",
    ] {
        let p = dir.join(f);
        if p.exists() {
            std::fs::remove_file(&p).map_err(io(&p))?;
        }
    }
    let key = russh::keys::load_secret_key(&args.key, None)
        .map_err(|e| RunError::Key(args.key.display().to_string(), e.to_string()))?;
    let host = host_key(&args.host_key)?;
    let config = Arc::new(client::Config {
        inactivity_timeout: None,
        keepalive_interval: None,
        nodelay: true,
        window_size: 256 * 1024,
        ..Default::default()
    });
    let (phase_tx, phase_rx) = watch::channel(Phase::Ramp);
    let (n, inflight) = (args.n, args.inflight);
    let (up_timeout, stall, hold_max, close_wait) =
        (args.up_timeout, args.stall, args.hold_max, args.close_wait);
    let t0 = now();
    let shared = Arc::new(Shared {
        args,
        config,
        key: Arc::new(key),
        host,
        inflight: Semaphore::new(inflight),
        phase: phase_rx,
        ready: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        progress_ms: AtomicU64::new(0),
        t0: Instant::now(),
    });
    let signalled = Arc::new(AtomicBool::new(false));
    watch_signals(signalled.clone())?;
    let launcher = tokio::spawn(launch(shared.clone()));
    let tick = Duration::from_millis(50);
    let settled = || shared.ready.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed);

    // 1. Until every session is up or has failed, or the ramp times out or stalls.
    loop {
        let elapsed = shared.t0.elapsed().as_secs_f64();
        let quiet = elapsed - shared.progress_ms.load(Ordering::Relaxed) as f64 / 1000.0;
        if settled() >= n || elapsed > up_timeout || quiet > stall {
            break;
        }
        if signalled.load(Ordering::Relaxed) {
            break;
        }
        tokio::time::sleep(tick).await;
    }
    let t_up = now();
    let _ = phase_tx.send(Phase::Hold);
    // Sessions still starting give up at once; let them say so before counting.
    let settle_until = Instant::now() + Duration::from_secs(5);
    while settled() < n && Instant::now() < settle_until {
        tokio::time::sleep(tick).await;
    }
    let (nready, nfailed) = (
        shared.ready.load(Ordering::Relaxed),
        shared.failed.load(Ordering::Relaxed),
    );
    write_file(&dir.join("up"), &format!("{nready} {nfailed}\n")).map_err(io(&dir))?;
    eprintln!(
        "sessions: {nready} of {n} up, {nfailed} failed, after {:.1} s; holding",
        t_up - t0
    );

    // 2. Held idle until released.
    let release = dir.join("release");
    while !release.exists()
        && !signalled.load(Ordering::Relaxed)
        && shared.t0.elapsed().as_secs_f64() < hold_max
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let t_release = now();
    let _ = phase_tx.send(Phase::Release);

    // 3. Every session closes within the close wait, or is dropped.
    let (tasks, t_launched) = match launcher.await {
        Ok(v) => v,
        Err(e) => return Err(RunError::Io("launcher".into(), std::io::Error::other(e))),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(close_wait + 10.0);
    let mut records = Vec::with_capacity(n);
    for mut task in tasks {
        let rec = match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(Ok(rec)) => rec,
            Ok(Err(e)) => lost(format!("task: {e}")),
            Err(_) => {
                task.abort();
                lost("still open after the close wait".into())
            }
        };
        records.push(rec);
    }
    let t_closed = now();
    write_results(&dir, &records, [t0, t_launched, t_up, t_release, t_closed])?;
    eprintln!("{}", summary(&records, t_release, t_closed));
    Ok(())
}

fn lost(why: String) -> Record {
    Record {
        forced: true,
        failure: Some(("close", why)),
        ..Record::default()
    }
}

fn write_results(dir: &Path, records: &[Record], times: [f64; 5]) -> Result<(), RunError> {
    let (mut ready, mut exit, mut errors) = (String::new(), String::new(), String::new());
    for (i, r) in records.iter().enumerate().map(|(i, r)| (i + 1, r)) {
        if let (Some(s), Some(u)) = (r.start, r.ready) {
            let _ = writeln!(ready, "{i}\t{s:.6}\t{u:.6}");
        }
        let status = r.status.as_deref().unwrap_or("lost");
        let forced = if r.forced { "\tforced" } else { "" };
        let _ = writeln!(exit, "{i}\t{status}\t{:.6}{forced}", r.end);
        if let Some((phase, why)) = &r.failure {
            let _ = writeln!(errors, "{i}\t{phase}\t{}", why.replace(['\t', '\n'], " "));
        }
    }
    let [t0, launched, up, release, closed] = times;
    for (name, text) in [
        ("ready.tsv", ready),
        ("exit.tsv", exit),
        ("errors.tsv", errors),
        (
            "times",
            format!("{t0:.6} {launched:.6} {up:.6} {release:.6} {closed:.6}\n"),
        ),
    ] {
        let p = dir.join(name);
        write_file(&p, &text).map_err(io(&p))?;
    }
    Ok(())
}

/// One line on what became of the sessions, the reasons grouped with digits as N.
fn summary(records: &[Record], t_release: f64, t_closed: f64) -> String {
    let up = records.iter().filter(|r| r.ready.is_some()).count();
    let closed = records
        .iter()
        .filter(|r| r.ready.is_some() && r.status.is_some() && !r.forced && r.end >= t_release)
        .count();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for (phase, why) in records.iter().filter_map(|r| r.failure.as_ref()) {
        let why: String = why
            .chars()
            .map(|c| if c.is_ascii_digit() { 'N' } else { c })
            .collect();
        *reasons.entry(format!("{phase}: {why}")).or_default() += 1;
    }
    let mut s = format!(
        "sessions: {up} of {} came up; {closed} closed after the release in {:.2} s",
        records.len(),
        t_closed - t_release
    );
    for (why, count) in reasons {
        let _ = write!(s, "\n  {count}\t{why}");
    }
    s
}
