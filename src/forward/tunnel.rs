//! One forwarded connection (a `direct-tcpip` channel), from the decision to its end.
//!
//! The channel is answered only once the bastion has decided, resolved the destination,
//! checked every address against its own listeners, confirmed the grant as just read and
//! connected: a refused or unreachable destination is a refused channel. The connection is
//! made to an address that was checked, never to the name again. It is indexed as a session of
//! kind `forward` (the destination in its command column, with the address used), its bytes
//! counted each way, and it is closed within moments of its grant ending.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use russh::server::{ChannelOpenHandle, Msg};
use russh::{Channel, ChannelOpenFailure, ChannelReadHalf, ChannelWriteHalf};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::dest::{Destination, Host};
use super::guard::OwnListeners;
use crate::access::{Denial, Permit, decide_forward};
use crate::bastion::Bastion;
use crate::events::{Event, EventKind};
use crate::grants::watch::{GrantLifetime, LifetimeEvent};
use crate::grants::{self, Timestamp};
use crate::outcome::{DenialClass, EndClass, Ending};
use crate::server::auth::Identity;
use crate::server::ends::SessionEnds;
use crate::store::sessions::{SessionEnd, SessionRecord, complete_in_background};

/// What a client asked to reach.
pub struct Request {
    /// `host_to_connect` as sent.
    pub host: String,
    /// `port_to_connect` as sent.
    pub port: u32,
}

/// Why a forward was refused: the audit reason and the channel failure to answer.
struct Refusal {
    denial: Denial,
    failure: ChannelOpenFailure,
}

impl Refusal {
    fn denied(denial: Denial) -> Refusal {
        Refusal {
            denial,
            failure: ChannelOpenFailure::AdministrativelyProhibited,
        }
    }

    fn unreachable(why: String) -> Refusal {
        Refusal {
            denial: Denial::new(DenialClass::Other, why),
            failure: ChannelOpenFailure::ConnectFailed,
        }
    }
}

/// A decided, connected forward, not yet answered.
struct Ready {
    permit: Permit,
    session_id: String,
    lifetime: GrantLifetime,
    stream: TcpStream,
    address: SocketAddr,
    destination: Destination,
    started: Timestamp,
}

/// Decides, connects and runs one forwarded connection on `channel`, answering `reply`.
pub async fn run(
    bastion: Arc<Bastion>,
    identity: Arc<Identity>,
    channel: Channel<Msg>,
    reply: ChannelOpenHandle,
    request: Request,
    ends: Arc<SessionEnds>,
) {
    let ready = match prepare(&bastion, &identity, &request).await {
        Ok(ready) => ready,
        Err(refusal) => {
            bastion.events.emit(Event {
                user: Some(identity.user.name.clone()),
                reason: Some(refusal.denial.reason.clone()),
                denial: Some(refusal.denial.class),
                detail: Some(serde_json::json!({
                    "kind": "forward",
                    "destination": format!("{}:{}", request.host, request.port),
                })),
                ..Event::new(EventKind::SessionDenied)
            });
            reply.reject(refusal.failure).await;
            return;
        }
    };
    let Ready {
        permit,
        session_id,
        mut lifetime,
        stream,
        address,
        destination,
        started,
    } = ready;
    let event = |kind| Event {
        user: Some(permit.user().name.clone()),
        target: Some(permit.target().name.clone()),
        role: Some(permit.role().name.clone()),
        grant_id: Some(permit.grant_id()),
        session_id: Some(session_id.clone()),
        ..Event::new(kind)
    };
    let command = format!("{destination} ({address})");
    let record = SessionRecord {
        id: session_id.clone(),
        node: bastion.config.cluster.node_name.clone(),
        user: permit.user().name.clone(),
        target: permit.target().name.clone(),
        role: permit.role().name.clone(),
        grant_id: permit.grant_id(),
        kind: "forward".into(),
        command: Some(command.clone()),
        break_glass: permit.break_glass(),
        started_at: started,
        ended_at: None,
        bytes_in: None,
        bytes_out: None,
        exit_status: None,
        end_reason: None,
        recording: None,
        sha256: None,
    };
    if let Err(e) = bastion.sessions.started(&record).await {
        let why = bastion.store_unavailable("the forward cannot be indexed", &e);
        bastion.events.emit(Event {
            reason: Some(why),
            denial: Some(DenialClass::StoreUnavailable),
            ..event(EventKind::SessionDenied)
        });
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        return;
    }
    let open_end = ends.open(&session_id, event(EventKind::SessionEnded));
    reply.accept().await;
    open_end.started();
    let detail = serde_json::json!({
        "kind": "forward",
        "destination": destination.to_string(),
        "address": address.to_string(),
    });
    bastion.events.emit(Event {
        detail: Some(detail),
        ..event(EventKind::SessionStarted)
    });
    let began = Instant::now();
    let counts = Counts::default();
    let (mut from_client, to_client) = channel.split();
    let ended = tokio::select! {
        () = bridge(&mut from_client, &to_client, stream, &counts) => None,
        end = grant_end(&mut lifetime) => Some(end),
    };
    // Closed whichever way it ended: a grant's end cuts the connection here and now.
    let _ = to_client.eof().await;
    let _ = to_client.close().await;
    let (reason, class) = match ended {
        Some(end) => (Some(end.message), end.class),
        None => (None, EndClass::Normal),
    };
    let end = SessionEnd {
        ended_at: grants::now(),
        bytes_in: counts.to_destination.load(Ordering::Relaxed),
        bytes_out: counts.to_client.load(Ordering::Relaxed),
        exit_status: None,
        end_reason: reason.clone(),
        sha256: None,
    };
    if !open_end.claim() {
        return;
    }
    complete_in_background(bastion.sessions.clone(), session_id.clone(), end.clone());
    bastion.events.emit(Event {
        reason,
        detail: Some(serde_json::json!({
            "kind": "forward",
            "destination": destination.to_string(),
            "address": address.to_string(),
            "bytes_in": end.bytes_in,
            "bytes_out": end.bytes_out,
            "duration_ms": began.elapsed().as_millis() as u64,
        })),
        ending: Some(Ending {
            class,
            started: true,
        }),
        ..event(EventKind::SessionEnded)
    });
}

/// Everything before the channel is answered: decide, resolve, check, confirm, connect.
async fn prepare(
    bastion: &Bastion,
    identity: &Identity,
    request: &Request,
) -> Result<Ready, Refusal> {
    let denied = |class, why: String| Refusal::denied(Denial::new(class, why));
    let Some(destination) = Destination::requested(&request.host, request.port) else {
        return Err(denied(
            DenialClass::Policy,
            format!("{:?}:{} is not a destination", request.host, request.port),
        ));
    };
    let policy = bastion.policy();
    let now = grants::now();
    let (user, held) = bastion
        .standing(identity, &policy, now)
        .await
        .map_err(Refusal::denied)?;
    // Tied to the key the user logged in with, like any session: removing the key ends it.
    let permit = decide_forward(&policy, &user, &held, &destination, now)
        .map_err(Refusal::denied)?
        .logged_in_with(identity.method.key_fingerprint());
    let session_id = uuid::Uuid::now_v7().to_string();
    let lifetime = GrantLifetime::new(&bastion.watch, &permit, &session_id, false, now);
    let timeout = bastion.config.upstream.connect_timeout;
    let addresses = resolve(&policy, &destination, timeout)
        .await
        .map_err(Refusal::unreachable)?;
    let own =
        OwnListeners::new(std::iter::once(bastion.config.listen).chain(bastion.config.http.listen));
    if let Some(address) = addresses.iter().find(|a| own.is_own(**a)) {
        return Err(denied(
            DenialClass::Policy,
            format!(
                "{destination} ({address}) is the bastion itself, which is never a destination"
            ),
        ));
    }
    if let Err(lapse) = crate::server::dial::confirm(bastion, &permit).await {
        return Err(denied(lapse.denial_class(), lapse.to_string()));
    }
    if let Err(why) = bastion.health.check() {
        return Err(denied(DenialClass::StoreUnavailable, why.to_string()));
    }
    let mut last = String::from("no address");
    for address in addresses {
        match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(Ready {
                    permit,
                    session_id,
                    lifetime,
                    stream,
                    address,
                    destination,
                    started: now,
                });
            }
            Ok(Err(e)) => last = format!("{address}: {e}"),
            Err(_) => last = format!("{address}: timed out after {timeout:?}"),
        }
    }
    Err(Refusal::unreachable(format!(
        "{destination} cannot be reached ({last})"
    )))
}

/// The addresses of `destination`, resolved once: a policy target's address, a DNS name, or
/// the IP address itself.
async fn resolve(
    policy: &crate::policy::Policy,
    destination: &Destination,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, String> {
    let name = match &destination.host {
        Host::Ip(ip) => return Ok(vec![SocketAddr::new(*ip, destination.port)]),
        Host::Name(name) => match policy.target(name) {
            Some(target) => target.address.clone(),
            None => name.clone(),
        },
    };
    let found = tokio::time::timeout(
        timeout,
        tokio::net::lookup_host((name.as_str(), destination.port)),
    )
    .await
    .map_err(|_| format!("{name} did not resolve within {timeout:?}"))?
    .map_err(|e| format!("{name} does not resolve: {e}"))?;
    let mut addresses: Vec<SocketAddr> = found.collect();
    addresses.dedup();
    if addresses.is_empty() {
        return Err(format!("{name} has no address"));
    }
    Ok(addresses)
}

/// Bytes moved each way.
#[derive(Default)]
struct Counts {
    to_destination: AtomicU64,
    to_client: AtomicU64,
}

/// Moves bytes between the channel and the connection until both directions have ended.
async fn bridge(
    from_client: &mut ChannelReadHalf,
    to_client: &ChannelWriteHalf<Msg>,
    stream: TcpStream,
    counts: &Counts,
) {
    let (from_dest, to_dest) = stream.into_split();
    let up = pump(from_client.make_reader(), to_dest, &counts.to_destination);
    let down = pump(from_dest, to_client.make_writer(), &counts.to_client);
    tokio::join!(up, down);
}

/// Copies `from` to `to`, counting, and shuts `to` down when `from` ends.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    count: &AtomicU64,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        count.fetch_add(n as u64, Ordering::Relaxed);
    }
    let _ = to.shutdown().await;
}

/// Waits for the grant's end (warnings are not shown on a forward).
async fn grant_end(lifetime: &mut GrantLifetime) -> crate::grants::watch::GrantEnd {
    loop {
        if let LifetimeEvent::End(end) = lifetime.next().await {
            return end;
        }
    }
}
