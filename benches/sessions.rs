//! Many idle interactive sessions through one bastion, from one process.
//!
//! `bench/openssh/measure.sh` runs it for ramps larger than one OpenSSH client per session can
//! carry (an `ssh` process costs about 1.5 MB; here a session costs a few tens of kB). Each
//! session is what `ssh -tt -p PORT USER@ADDR TARGET` does: public-key login, a session
//! channel, a pty, and an exec request naming the target, round-robin over the targets given.
//! It then types `echo RE""ADY`; the session is *up* when `READY` comes back from the target's
//! shell (the typed line's own echo never contains it). At most `--inflight` sessions are
//! starting at once, and at most `--rate` start per second.
//!
//! When all are up or have failed, or `--up-timeout` seconds passed, or `--stall` seconds went
//! by without a session coming up or failing, the sessions still starting are given up, `DIR/up`
//! is written, and the rest are held idle until `DIR/release` exists, SIGUSR1 or SIGTERM
//! arrives, or `--hold-max` seconds have passed since the start. Then each gets `exit` and an
//! end of input, and the program waits at most `--close-wait` seconds for every channel to
//! close before it drops what is left. Every step is bounded in time.
//!
//! Files written in DIR (the ones `bench/tools/hold-sessions.pl` writes, plus the reasons):
//!   times       t0 t_launched t_up t_release t_closed (epoch seconds)
//!   ready.tsv   I START READY (one line per session that came up; START = its connect began)
//!   exit.tsv    I STATUS END [forced] (STATUS: the target's exit status, 255 for a session
//!               that failed, `lost` for one that never ended; forced = ended by this program)
//!   errors.tsv  I PHASE REASON (one line per session that failed or was given up)
//!   up          "READY FAILED" when the holding phase starts
//!
//! `cargo bench --bench sessions -- --help` lists the options.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use russh::ChannelMsg;
use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use tokio::sync::{Semaphore, watch};

#[path = "sessions/driver.rs"]
mod driver;
use driver::run;

/// Command line: where the bastion is, who logs in, how many sessions and how fast.
#[derive(Parser, Debug)]
#[command(about = "Open N idle interactive sessions through a bastion, hold them, close them")]
struct Args {
    /// Directory for the result files (created if missing).
    #[arg(long)]
    dir: PathBuf,
    /// Number of sessions.
    #[arg(long)]
    n: usize,
    /// Bastion address.
    #[arg(long, default_value = "127.0.0.1")]
    addr: String,
    /// Bastion port.
    #[arg(long)]
    port: u16,
    /// Login name at the bastion.
    #[arg(long)]
    user: String,
    /// The user's private key (OpenSSH format, no passphrase).
    #[arg(long)]
    key: PathBuf,
    /// The bastion's public host key (one OpenSSH public key line); nothing else is accepted.
    #[arg(long)]
    host_key: PathBuf,
    /// Target names, comma-separated; session I asks for target (I-1) mod K.
    #[arg(long, value_delimiter = ',', required = true)]
    targets: Vec<String>,
    /// Sessions starting (connecting, logging in, waiting for READY) at once.
    #[arg(long, default_value_t = 64)]
    inflight: usize,
    /// Session starts per second at most (0: no limit besides --inflight).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Bound on one session's start, from connect to READY (s).
    #[arg(long, default_value_t = 120.0)]
    connect_timeout: f64,
    /// Stop waiting for sessions to come up after this long from the start (s).
    #[arg(long, default_value_t = 240.0)]
    up_timeout: f64,
    /// ... or after this long without a session coming up or failing (s).
    #[arg(long, default_value_t = 30.0)]
    stall: f64,
    /// Hold no session longer than this from the start (s).
    #[arg(long, default_value_t = 360.0)]
    hold_max: f64,
    /// After the release, wait at most this long for every channel to close (s).
    #[arg(long, default_value_t = 120.0)]
    close_wait: f64,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Why a session did not come up, or ended before it was released: the reason in errors.tsv.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// TCP or key exchange failed, or the bastion disconnected (with its reason).
    #[error("connect: {0}")]
    Connect(String),
    /// The bastion offered another host key than the one pinned.
    #[error("the bastion's host key is not the one given")]
    HostKey,
    /// The bastion refused the user's key.
    #[error("login refused for {0}")]
    LoginRefused(String),
    /// The bastion answered the pty or exec request with a failure.
    #[error("the bastion refused the {0} request")]
    Refused(&'static str),
    /// The channel closed before READY: what the session printed last says why.
    #[error("ended before READY (exit {status}): {output}")]
    EndedEarly { status: String, output: String },
    /// No READY within the session's start bound.
    #[error("no READY within {0:?}")]
    Timeout(Duration),
    /// Still starting when the ramp ended (timed out or stalled).
    #[error("given up: the ramp ended before READY")]
    GivenUp,
    /// Still waiting for a place to start when the ramp ended.
    #[error("not started: the ramp ended first")]
    NotStarted,
    /// Anything else on the wire.
    #[error("ssh: {0}")]
    Ssh(String),
}

impl Failure {
    fn phase(&self) -> &'static str {
        match self {
            Failure::Connect(_) | Failure::HostKey => "connect",
            Failure::LoginRefused(_) => "login",
            Failure::Refused(_) => "request",
            Failure::EndedEarly { .. } | Failure::Ssh(_) => "session",
            Failure::Timeout(_) => "timeout",
            Failure::GivenUp | Failure::NotStarted => "given-up",
        }
    }
}

/// Where the run is: starting sessions, holding them, or closing them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Ramp,
    Hold,
    Release,
}

/// What became of one session.
#[derive(Debug, Default)]
struct Record {
    start: Option<f64>,
    ready: Option<f64>,
    /// Exit status, or None when it never ended.
    status: Option<String>,
    end: f64,
    forced: bool,
    failure: Option<(&'static str, String)>,
}

/// Accepts only the bastion's host key given on the command line, and remembers the reason
/// the bastion gave when it disconnected.
struct Client {
    host: PublicKey,
    disconnect: Arc<std::sync::Mutex<Option<String>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(matches!(
            offered,
            PublicKeyOrCertificate::PublicKey { key, .. } if key.key_data() == self.host.key_data()
        ))
    }

    async fn disconnected(
        &mut self,
        reason: client::DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        match reason {
            client::DisconnectReason::ReceivedDisconnect(info) => {
                *self.disconnect.lock().unwrap_or_else(|p| p.into_inner()) = Some(info.message);
                Ok(())
            }
            client::DisconnectReason::Error(e) => Err(e),
        }
    }
}

/// What every session shares.
struct Shared {
    args: Args,
    config: Arc<client::Config>,
    key: Arc<PrivateKey>,
    host: PublicKey,
    inflight: Semaphore,
    phase: watch::Receiver<Phase>,
    ready: AtomicUsize,
    failed: AtomicUsize,
    /// Last time (ms since t0) a session came up or failed.
    progress_ms: AtomicU64,
    t0: Instant,
}

impl Shared {
    fn progress(&self) {
        let ms = u64::try_from(self.t0.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.progress_ms.fetch_max(ms, Ordering::Relaxed);
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Waits until the phase is no longer `from` (or the sender is gone).
async fn left(mut phase: watch::Receiver<Phase>, from: Phase) {
    let _ = phase.wait_for(|p| *p != from).await;
}

/// The last printable bytes of what a session printed, for a failure's reason.
fn tail_text(buf: &[u8]) -> String {
    let s = String::from_utf8_lossy(&buf[buf.len().saturating_sub(200)..]);
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An open session that has come up.
struct Up {
    handle: client::Handle<Client>,
    channel: russh::Channel<client::Msg>,
}

/// Connects, logs in, asks for a pty and the target, types the probe and waits for READY.
async fn start(shared: &Shared, target: &str) -> Result<Up, Failure> {
    let a = &shared.args;
    let disconnect = Arc::new(std::sync::Mutex::new(None));
    let handler = Client {
        host: shared.host.clone(),
        disconnect: disconnect.clone(),
    };
    let said = || disconnect.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut handle = client::connect(shared.config.clone(), (a.addr.as_str(), a.port), handler)
        .await
        .map_err(|e| match e {
            russh::Error::UnknownKey => Failure::HostKey,
            e => Failure::Connect(said().unwrap_or_else(|| e.to_string())),
        })?;
    let key = PrivateKeyWithHashAlg::new(shared.key.clone(), None);
    let auth = handle
        .authenticate_publickey(a.user.clone(), key)
        .await
        .map_err(|e| Failure::Ssh(said().unwrap_or_else(|| e.to_string())))?;
    if !auth.success() {
        return Err(Failure::LoginRefused(a.user.clone()));
    }
    let ssh = |e: russh::Error| Failure::Ssh(said().unwrap_or_else(|| e.to_string()));
    let mut channel = handle.channel_open_session().await.map_err(ssh)?;
    channel
        .request_pty(true, "xterm", 80, 24, 0, 0, &[])
        .await
        .map_err(ssh)?;
    channel.exec(true, target.as_bytes()).await.map_err(ssh)?;
    channel.data(&b"echo RE\"\"ADY\n"[..]).await.map_err(ssh)?;
    let mut replies = ["pty", "exec"].into_iter();
    let mut output = Vec::new();
    let mut status = String::from("none");
    loop {
        match channel.wait().await {
            Some(ChannelMsg::Success) => {
                replies.next();
            }
            Some(ChannelMsg::Failure) => {
                return Err(Failure::Refused(replies.next().unwrap_or("channel")));
            }
            Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. }) => {
                output.extend_from_slice(&data);
                if output.windows(5).any(|w| w == b"READY") {
                    return Ok(Up { handle, channel });
                }
                if output.len() > 4096 {
                    output.drain(..output.len() - 256);
                }
            }
            Some(ChannelMsg::ExitStatus { exit_status }) => status = exit_status.to_string(),
            Some(ChannelMsg::Eof) => {}
            Some(ChannelMsg::Close) | None => {
                let mut text = tail_text(&output);
                if let Some(why) = said() {
                    text = format!("{text} [disconnect: {why}]");
                }
                return Err(Failure::EndedEarly {
                    status,
                    output: text,
                });
            }
            Some(_) => {}
        }
    }
}

/// One session from start to close, as a record.
async fn session(shared: Arc<Shared>, i: usize) -> Record {
    let mut rec = Record::default();
    let target = &shared.args.targets[(i - 1) % shared.args.targets.len()];
    let fail = |rec: &mut Record, f: Failure, forced: bool| {
        rec.end = now();
        rec.status = Some("255".into());
        rec.forced = forced;
        rec.failure = Some((f.phase(), f.to_string()));
        shared.failed.fetch_add(1, Ordering::Relaxed);
        shared.progress();
    };
    // A place among the sessions starting at once, unless the ramp ends first.
    let permit = tokio::select! {
        p = shared.inflight.acquire() => p.ok(),
        () = left(shared.phase.clone(), Phase::Ramp) => None,
    };
    let Some(permit) = permit else {
        fail(&mut rec, Failure::NotStarted, true);
        return rec;
    };
    rec.start = Some(now());
    let limit = Duration::from_secs_f64(shared.args.connect_timeout);
    let started = tokio::select! {
        r = tokio::time::timeout(limit, start(&shared, target)) => Some(r.unwrap_or(Err(Failure::Timeout(limit)))),
        () = left(shared.phase.clone(), Phase::Ramp) => None,
    };
    drop(permit);
    let mut up = match started {
        None => {
            fail(&mut rec, Failure::GivenUp, true);
            return rec;
        }
        Some(Err(f)) => {
            fail(&mut rec, f, false);
            return rec;
        }
        Some(Ok(up)) => up,
    };
    rec.ready = Some(now());
    shared.ready.fetch_add(1, Ordering::Relaxed);
    shared.progress();

    // Held idle: whatever arrives is read and dropped, until the release.
    let mut status = None;
    let mut ended = false;
    let mut phase = shared.phase.clone();
    while !ended {
        tokio::select! {
            msg = up.channel.wait() => match msg {
                Some(ChannelMsg::ExitStatus { exit_status }) => status = Some(exit_status.to_string()),
                Some(ChannelMsg::Close) | None => ended = true,
                Some(_) => {}
            },
            r = phase.wait_for(|p| *p == Phase::Release) => { let _ = r; break; }
        }
    }
    if ended {
        // Ended before the release: counted as an early end by the caller.
        rec.end = now();
        rec.status = Some(status.unwrap_or_else(|| "255".into()));
        rec.failure = Some(("held", "the session ended before the release".to_string()));
        return rec;
    }

    // Release: type `exit`, end the input, wait (bounded) for the channel to close.
    let close = async {
        let _ = up.channel.data(&b"exit\n"[..]).await;
        let _ = up.channel.eof().await;
        loop {
            match up.channel.wait().await {
                Some(ChannelMsg::ExitStatus { exit_status }) => {
                    status = Some(exit_status.to_string())
                }
                Some(ChannelMsg::Close) | None => break,
                Some(_) => {}
            }
        }
    };
    let wait = Duration::from_secs_f64(shared.args.close_wait);
    let closed = tokio::time::timeout(wait, close).await.is_ok();
    rec.end = now();
    rec.forced = !closed;
    rec.status = if closed {
        Some(status.unwrap_or_else(|| "none".into()))
    } else {
        None
    };
    let bye = up
        .handle
        .disconnect(russh::Disconnect::ByApplication, "", "en");
    let _ = tokio::time::timeout(Duration::from_secs(5), bye).await;
    rec
}

fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Raises the open-file limit to what N sessions need, or says why it cannot.
fn raise_nofile(n: usize) -> Result<(), String> {
    let need = u64::try_from(n).unwrap_or(u64::MAX).saturating_add(64);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err("getrlimit(RLIMIT_NOFILE) failed".into());
    }
    if lim.rlim_cur >= need {
        return Ok(());
    }
    if lim.rlim_max < need {
        return Err(format!(
            "{n} sessions need {need} open files; the hard limit is {}",
            lim.rlim_max
        ));
    }
    lim.rlim_cur = need;
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(format!("setrlimit(RLIMIT_NOFILE, {need}) failed"));
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    if let Err(e) = check(&args).and_then(|()| raise_nofile(args.n)) {
        eprintln!("sessions: {e}");
        std::process::exit(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sessions: no runtime: {e}");
            std::process::exit(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("sessions: {e}");
            std::process::exit(1);
        }
    }
    // Sessions dropped after the close wait may still hold tasks: do not wait for them.
    runtime.shutdown_timeout(Duration::from_secs(2));
}

fn check(a: &Args) -> Result<(), String> {
    if a.n == 0 || a.inflight == 0 {
        return Err("--n and --inflight must be at least 1".into());
    }
    if a.targets.iter().any(|t| t.trim().is_empty()) {
        return Err("--targets has an empty name".into());
    }
    for (name, v) in [
        ("--rate", a.rate),
        ("--connect-timeout", a.connect_timeout),
        ("--up-timeout", a.up_timeout),
        ("--stall", a.stall),
        ("--hold-max", a.hold_max),
        ("--close-wait", a.close_wait),
    ] {
        if !(0.0..=86_400.0).contains(&v) {
            return Err(format!("{name} must be between 0 and 86400 s"));
        }
    }
    Ok(())
}
