//! Moving bytes between the user's channel and the target's channel until one side ends.
//!
//! Each direction is its own loop, so a slow reader on one side never stalls the other
//! direction. Writes wait for the peer's SSH window (russh's flow control), and reads come from
//! bounded queues, so a slow side applies back-pressure instead of growing a buffer.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig, client, server};
use tracing::debug;

use super::record::{RecordingFault, SessionRecording};
use crate::grants::watch::{GrantLifetime, LifetimeEvent};
use crate::outcome::EndClass;
use crate::recording::Queued;
use crate::upstream::UpstreamChannel;

/// How a bridged session ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BridgeOutcome {
    /// The target's exit status, if it sent one.
    pub exit_status: Option<u32>,
    /// The signal that ended the command on the target, if any.
    pub exit_signal: Option<String>,
    /// Bytes from the user to the target.
    pub bytes_in: u64,
    /// Bytes from the target to the user (stdout and stderr).
    pub bytes_out: u64,
    /// Whether the user closed the channel before the target finished.
    pub user_left: bool,
    /// Why the bastion closed the session, when its grant ended.
    pub grant_ended: Option<String>,
    /// Why the bastion closed the session, when its recording failed.
    pub recording_failed: Option<String>,
    /// The class of end, when the bastion closed the session (`None`: it ended by itself).
    pub closed_as: Option<EndClass>,
}

/// Exit status sent when the bastion closes a running session (its grant ended, or its
/// recording failed).
pub const EXIT_GRANT_ENDED: u32 = 126;

/// Messages from the target held at most while their output is being recorded: enough that
/// writing one chunk overlaps with sending the previous ones, few enough that back-pressure
/// still reaches the target at once.
const PIPELINE_DEPTH: usize = 4;

/// Things that happen on the user's side that the bridge forwards to the target.
fn forwarded_signal(signal: &Sig) -> bool {
    matches!(signal, Sig::INT | Sig::TERM | Sig::HUP)
}

/// Runs the session until the target closes the channel, the user goes away, or the grant ends.
pub async fn run(
    mut user_read: ChannelReadHalf,
    user_write: ChannelWriteHalf<server::Msg>,
    user_handle: server::Handle,
    upstream: UpstreamChannel,
    lifetime: &mut GrantLifetime,
    recording: &SessionRecording,
) -> BridgeOutcome {
    let UpstreamChannel {
        channel,
        connection,
        early,
    } = upstream;
    let (mut target_read, target_write) = channel.split();
    let mut outcome = BridgeOutcome::default();
    let bytes_in = AtomicU64::new(0);
    let bytes_out = AtomicU64::new(0);

    let to_target = async {
        while let Some(msg) = user_read.wait().await {
            let sent = match msg {
                ChannelMsg::Data { data } => {
                    recording.input(data.clone()).await?;
                    bytes_in.fetch_add(data.len() as u64, Ordering::Relaxed);
                    target_write.data_bytes(data).await
                }
                ChannelMsg::Eof => target_write.eof().await,
                ChannelMsg::WindowChange {
                    col_width,
                    row_height,
                    pix_width,
                    pix_height,
                } => {
                    recording.resize(col_width, row_height).await?;
                    target_write
                        .window_change(col_width, row_height, pix_width, pix_height)
                        .await
                }
                ChannelMsg::Signal { signal } if forwarded_signal(&signal) => {
                    target_write.signal(signal).await
                }
                ChannelMsg::Close => break,
                _ => Ok(()),
            };
            if sent.is_err() {
                break;
            }
        }
        Ok::<(), RecordingFault>(())
    };

    let to_user = async {
        let mut status = None;
        let mut signal = None;
        let mut early = early.into_iter();
        // The target's messages in order. Output waits here until it is in the recording file
        // (nothing reaches the user unrecorded, and a write that fails or stalls closes the
        // session before these bytes go out); meanwhile the next chunks are read and queued, so
        // that writing one chunk overlaps with sending the one before.
        let mut held: VecDeque<(Option<Queued>, ChannelMsg)> = VecDeque::new();
        let mut target_done = false;
        'run: loop {
            while let Some((queued, _)) = held.front() {
                if queued.as_ref().is_some_and(|q| !recording.is_written(q)) {
                    break;
                }
                let Some((_, msg)) = held.pop_front() else {
                    break;
                };
                let sent = match msg {
                    ChannelMsg::Data { data } => {
                        bytes_out.fetch_add(data.len() as u64, Ordering::Relaxed);
                        user_write.data_bytes(data).await
                    }
                    ChannelMsg::ExtendedData { data, ext } => {
                        bytes_out.fetch_add(data.len() as u64, Ordering::Relaxed);
                        user_write.extended_data_bytes(ext, data).await
                    }
                    ChannelMsg::Eof => user_write.eof().await,
                    ChannelMsg::ExitStatus { exit_status } => {
                        status = Some(exit_status);
                        user_write.exit_status(exit_status).await
                    }
                    ChannelMsg::ExitSignal {
                        signal_name,
                        core_dumped,
                        error_message,
                        lang_tag,
                    } => {
                        signal = Some(format!("{signal_name:?}"));
                        user_handle
                            .exit_signal_request(
                                user_write.id(),
                                signal_name,
                                core_dumped,
                                error_message,
                                lang_tag,
                            )
                            .await
                            .map_err(|_| russh::Error::SendError)
                    }
                    ChannelMsg::Close => break 'run,
                    _ => Ok(()),
                };
                if sent.is_err() {
                    break 'run;
                }
            }
            if target_done && held.is_empty() {
                break;
            }
            let front = held.front().and_then(|(queued, _)| *queued);
            let reading = !target_done && held.len() < PIPELINE_DEPTH;
            tokio::select! {
                confirmed = async {
                    match &front {
                        Some(queued) => recording.confirm(queued).await,
                        None => Ok(()),
                    }
                }, if front.is_some() => confirmed?,
                msg = async {
                    match early.next() {
                        Some(msg) => Some(msg),
                        None => target_read.wait().await,
                    }
                }, if reading => match msg {
                    None => target_done = true,
                    Some(msg) => {
                        let queued = match &msg {
                            ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. } => {
                                recording.queue_output(data.clone())?
                            }
                            _ => None,
                        };
                        held.push_back((queued, msg));
                    }
                },
            }
        }
        Ok::<_, RecordingFault>((status, signal))
    };

    tokio::pin!(to_target);
    tokio::pin!(to_user);
    // Why the bastion itself ends the session, if it does.
    let closing: Option<String> = loop {
        tokio::select! {
            ended = &mut to_user => match ended {
                Ok((status, signal)) => {
                    outcome.exit_status = status;
                    outcome.exit_signal = signal;
                    break None;
                }
                Err(RecordingFault(why)) => {
                    outcome.recording_failed = Some(why.clone());
                    outcome.closed_as = Some(EndClass::RecordingFailed);
                    break Some(why);
                }
            },
            ended = &mut to_target => match ended {
                Ok(()) => {
                    outcome.user_left = true;
                    debug!("user closed the channel first");
                    break None;
                }
                Err(RecordingFault(why)) => {
                    outcome.recording_failed = Some(why.clone());
                    outcome.closed_as = Some(EndClass::RecordingFailed);
                    break Some(why);
                }
            },
            event = lifetime.next() => match event {
                LifetimeEvent::Warning(text) => {
                    let line = format!("\r\ngatehouse: {text}\r\n");
                    if let Err(RecordingFault(why)) = recording.output(line.clone()).await {
                        outcome.recording_failed = Some(why.clone());
                    outcome.closed_as = Some(EndClass::RecordingFailed);
                        break Some(why);
                    }
                    let _ = user_write.extended_data_bytes(1, line.into_bytes()).await;
                }
                LifetimeEvent::End(end) => {
                    outcome.grant_ended = Some(end.message.clone());
                    outcome.closed_as = Some(end.class);
                    break Some(end.message);
                }
            },
        }
    };
    if let Some(why) = closing {
        let line = format!("\r\ngatehouse: {why}: closing the session\r\n");
        recording.note(&line);
        let _ = user_write.extended_data_bytes(1, line.into_bytes()).await;
        let _ = user_write.exit_status(EXIT_GRANT_ENDED).await;
        let _ = user_write.eof().await;
    }
    outcome.bytes_in = bytes_in.load(Ordering::Relaxed);
    outcome.bytes_out = bytes_out.load(Ordering::Relaxed);
    let _ = user_write.close().await;
    let _ = target_write.close().await;
    let _ = connection
        .disconnect(russh::Disconnect::ByApplication, "session over", "en")
        .await;
    drop::<client::Handle<_>>(connection);
    outcome
}
