//! The restricted shell: a prompt served by Gatehouse itself on the user's terminal. Its own
//! messages (denials, warnings) go to the terminal like everything else in the session.
//!
//! Each line is checked exactly like an exec request (tokenised, matched, option-guarded)
//! against the policy in force when it is typed (a reload that removed a rule denies the next
//! line; one that removed the user, the role, the membership or the target closes the session),
//! and, if allowed, run on the target as its own exec, under a permit of its own, with a fresh
//! certificate whose `force-command` is the re-quoted approved argv. The user never holds a
//! shell on the target, and the line that runs is always the line that was checked (see
//! `line_editor`).
//!
//! While a command runs, the user's keystrokes are not passed to it (commands get no stdin and
//! no pty). What is typed meanwhile is kept and read as the next lines once the command ends, as
//! a terminal's type-ahead would be, each line checked on its own; Ctrl-C interrupts the command
//! (a second Ctrl-C abandons it) and throws the type-ahead away. Command output (stdout and
//! stderr alike) is shown on the terminal.
//!
//! Everything shown is recorded before it is shown, input when the role records it, and each
//! denial and each command as a marker; a recording that fails closes the session.

use std::collections::VecDeque;
use std::fmt::Write as _;

use russh::server::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};

use super::dial::{DialError, Dialer};
use super::line_editor::{LineEditor, LineEvent};
use super::record::{RecordingFault, SessionRecording};
use crate::access::{Allowed, Denial, Lapse, Permit};
use crate::events::{Event, EventKind};
use crate::grants::watch::{GrantLifetime, LifetimeEvent};
use crate::outcome::{DenialClass, EndClass};
use crate::policy::rules;
use crate::upstream::UpstreamChannel;

/// How a restricted shell session ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShellOutcome {
    /// Lines that ran on the target.
    pub commands_run: u32,
    /// Lines refused by the rules.
    pub commands_denied: u32,
    /// Why the bastion closed the session (the grant ended, the recording failed).
    pub closed: Option<String>,
    /// The class of end, when the bastion closed the session.
    pub closed_as: Option<EndClass>,
}

/// What handling one line led to.
enum Next {
    Prompt,
    Exit,
    /// The bastion closes the session (the grant ended or the recording failed): why, and the
    /// class of end.
    Closed(String, EndClass),
    UserLeft,
}

/// The shell for one session.
pub struct RestrictedShell<'a> {
    read: &'a mut ChannelReadHalf,
    write: &'a ChannelWriteHalf<Msg>,
    dialer: Dialer<'a>,
    permit: &'a Permit,
    lifetime: &'a mut GrantLifetime,
    recording: &'a SessionRecording,
    editor: LineEditor,
    pending: VecDeque<u8>,
    input_ended: bool,
    /// Set when the recording failed: the session must close.
    fault: Option<String>,
    outcome: ShellOutcome,
}

impl<'a> RestrictedShell<'a> {
    /// A shell on the permitted target, reading the user's channel.
    pub(crate) fn new(
        read: &'a mut ChannelReadHalf,
        write: &'a ChannelWriteHalf<Msg>,
        dialer: Dialer<'a>,
        permit: &'a Permit,
        lifetime: &'a mut GrantLifetime,
        recording: &'a SessionRecording,
    ) -> RestrictedShell<'a> {
        let prompt = format!(
            "{}@{} [{}]$ ",
            permit.user().name,
            permit.target().name,
            permit.role().name
        );
        RestrictedShell {
            read,
            write,
            dialer,
            permit,
            lifetime,
            recording,
            editor: LineEditor::new(prompt),
            pending: VecDeque::new(),
            input_ended: false,
            fault: None,
            outcome: ShellOutcome::default(),
        }
    }

    /// Serves prompts until the user leaves or the grant ends, then closes the channel.
    pub async fn run(mut self) -> ShellOutcome {
        let permit = self.permit;
        let banner = format!(
            "Gatehouse restricted shell on {} as role {} (grant {}).\r\nType help for the allowed commands, exit to leave.\r\n",
            permit.target().name,
            permit.role().name,
            permit.grant_id()
        );
        self.say(banner.as_bytes()).await;
        let prompt = self.editor.prompt().as_bytes().to_vec();
        self.say(&prompt).await;
        let status = loop {
            let next = self.next_line().await;
            // A recording that failed closes the session before anything else is shown.
            let next = match self.fault.take() {
                Some(why) => Next::Closed(why, EndClass::RecordingFailed),
                None => next,
            };
            match next {
                Next::Prompt => {
                    let prompt = self.editor.prompt().as_bytes().to_vec();
                    self.say(&prompt).await;
                }
                Next::Exit => break Some(0),
                Next::UserLeft => break None,
                Next::Closed(text, class) => {
                    let line = format!("\r\ngatehouse: {text}: closing the session\r\n");
                    self.recording.note(&line);
                    let _ = self.write.data_bytes(line.into_bytes()).await;
                    self.outcome.closed = Some(text);
                    self.outcome.closed_as = Some(class);
                    break Some(super::bridge::EXIT_GRANT_ENDED);
                }
            }
        };
        if let Some(status) = status {
            let _ = self.write.exit_status(status).await;
        }
        let _ = self.write.eof().await;
        let _ = self.write.close().await;
        self.outcome
    }

    /// Shows bytes to the user once they are in the recording file. A recording failure (or
    /// stall) is remembered, the bytes are not shown, and the session closes at the next step.
    async fn say(&mut self, bytes: &[u8]) {
        if self.fault.is_some() {
            return;
        }
        let bytes = bytes::Bytes::copy_from_slice(bytes);
        if let Err(RecordingFault(why)) = self.recording.output(bytes.clone()).await {
            self.fault.get_or_insert(why);
            return;
        }
        let _ = self.write.data_bytes(bytes).await;
    }

    /// Records typed input (when the role records input).
    async fn typed(&mut self, bytes: &[u8]) {
        if self.fault.is_some() {
            return;
        }
        let bytes = bytes::Bytes::copy_from_slice(bytes);
        if let Err(RecordingFault(why)) = self.recording.input(bytes).await {
            self.fault.get_or_insert(why);
        }
    }

    /// Records a marker.
    async fn mark(&mut self, label: &str) {
        if self.fault.is_some() {
            return;
        }
        if let Err(RecordingFault(why)) = self.recording.marker(label).await {
            self.fault.get_or_insert(why);
        }
    }

    /// Reads input until a line is complete (or something ends the session) and handles it.
    async fn next_line(&mut self) -> Next {
        loop {
            if self.fault.is_some() {
                return Next::Prompt;
            }
            while let Some(byte) = self.pending.pop_front() {
                let mut echo = Vec::new();
                let event = self.editor.push(byte, &mut echo);
                if !echo.is_empty() {
                    self.say(&echo).await;
                }
                match event {
                    None => {}
                    Some(LineEvent::Cancel) => return Next::Prompt,
                    Some(LineEvent::Eof) => return Next::Exit,
                    Some(LineEvent::Submit(line)) => return self.handle(&line).await,
                }
            }
            if self.input_ended {
                return Next::Exit;
            }
            tokio::select! {
                msg = self.read.wait() => match msg {
                    Some(ChannelMsg::Data { data }) => {
                        self.typed(&data).await;
                        self.pending.extend(data.iter());
                    }
                    // End of input ends the shell once everything typed before it has run.
                    Some(ChannelMsg::Eof) => self.input_ended = true,
                    Some(ChannelMsg::Close) | None => return Next::UserLeft,
                    _ => {}
                },
                event = self.lifetime.next() => match event {
                    LifetimeEvent::Warning(text) => {
                        let mut out = format!("\r\ngatehouse: {text}\r\n").into_bytes();
                        out.extend_from_slice(&self.editor.redraw());
                        self.say(&out).await;
                    }
                    LifetimeEvent::End(end) => return Next::Closed(end.message, end.class),
                },
            }
        }
    }

    /// Checks one line and runs it if the rules allow it.
    async fn handle(&mut self, line: &[u8]) -> Next {
        let trimmed = trim(line);
        match trimmed {
            b"" => return Next::Prompt,
            b"exit" | b"logout" => return Next::Exit,
            b"help" => {
                let text = self.help();
                self.say(text.as_bytes()).await;
                return Next::Prompt;
            }
            _ => {}
        }
        // The session as the policy in force now gives it, and the line under its rules now.
        let current = match self.permit.renewed(&self.dialer.bastion.policy()) {
            Ok(current) => current,
            Err(lapse) => return Next::Closed(lapse.to_string(), lapse.end_class()),
        };
        let checked = rules::tokenize(trimmed)
            .map_err(|e| {
                Denial::new(
                    DenialClass::CommandNotAllowed,
                    format!("the command was refused: {e}"),
                )
            })
            .and_then(|argv| current.for_line(&argv));
        let line = match checked {
            Ok(line) => line,
            Err(Denial {
                reason,
                hint,
                class,
            }) => {
                let permit = self.permit;
                self.outcome.commands_denied += 1;
                self.dialer.bastion.events.emit(Event {
                    user: Some(permit.user().name.clone()),
                    target: Some(permit.target().name.clone()),
                    role: Some(permit.role().name.clone()),
                    grant_id: Some(permit.grant_id()),
                    session_id: Some(self.dialer.session_id.to_owned()),
                    reason: Some(reason.clone()),
                    detail: Some(serde_json::json!({ "line": String::from_utf8_lossy(trimmed) })),
                    denial: Some(class),
                    ..Event::new(EventKind::SessionDenied)
                });
                self.mark(&format!("denied: {reason}")).await;
                let mut text = format!("gatehouse: denied: {reason}\r\n");
                if let Some(hint) = hint {
                    let _ = write!(text, "gatehouse: hint: {hint}\r\n");
                }
                self.say(text.as_bytes()).await;
                return Next::Prompt;
            }
        };
        if let Allowed::Exec { command } = line.allowed() {
            self.mark(&format!("run: {command}")).await;
            if let Some(why) = self.fault.take() {
                return Next::Closed(why, EndClass::RecordingFailed);
            }
        }
        let upstream = match self.dialer.open(&line, None).await {
            Ok(upstream) => upstream,
            // The store could not confirm the grant: this line is refused, and the next one
            // gets a fresh look.
            Err(DialError::Lapsed(lapse @ Lapse::Unchecked(_))) => {
                self.outcome.commands_denied += 1;
                self.mark(&format!("denied: {lapse}")).await;
                let text = format!("gatehouse: denied: {lapse}\r\n");
                self.say(text.as_bytes()).await;
                return Next::Prompt;
            }
            Err(DialError::Lapsed(lapse)) => {
                return Next::Closed(lapse.to_string(), lapse.end_class());
            }
            Err(DialError::Target(e)) => {
                let text = format!("gatehouse: target {}: {e}\r\n", line.target().name);
                self.say(text.as_bytes()).await;
                return Next::Prompt;
            }
        };
        self.outcome.commands_run += 1;
        self.run_command(upstream).await
    }

    /// Streams one command's output to the user until it exits.
    async fn run_command(&mut self, upstream: UpstreamChannel) -> Next {
        let UpstreamChannel {
            channel,
            connection,
            early,
        } = upstream;
        let (mut target_read, target_write) = channel.split();
        let mut early = early.into_iter();
        let mut status = None;
        let mut interrupts = 0;
        let next = loop {
            let msg = match early.next() {
                Some(msg) => Some(msg),
                None => tokio::select! {
                    msg = target_read.wait() => msg,
                    input = self.read.wait() => match input {
                        Some(ChannelMsg::Data { data }) if data.contains(&0x03) => {
                            self.typed(&data).await;
                            self.pending.clear();
                            interrupts += 1;
                            if interrupts > 1 {
                                break Next::Prompt;
                            }
                            let _ = target_write.signal(Sig::INT).await;
                            continue;
                        }
                        Some(ChannelMsg::Data { data }) => {
                            self.typed(&data).await;
                            if self.pending.len() < super::line_editor::MAX_LINE * 4 {
                                self.pending.extend(data.iter());
                            }
                            continue;
                        }
                        // The command finishes and the type-ahead still runs; the shell ends
                        // when it has read everything.
                        Some(ChannelMsg::Eof) => {
                            self.input_ended = true;
                            continue;
                        }
                        Some(ChannelMsg::Close) | None => break Next::UserLeft,
                        _ => continue,
                    },
                    event = self.lifetime.next() => match event {
                        LifetimeEvent::Warning(text) => {
                            self.say(format!("\r\ngatehouse: {text}\r\n").as_bytes()).await;
                            continue;
                        }
                        LifetimeEvent::End(end) => break Next::Closed(end.message, end.class),
                    },
                },
            };
            match msg {
                Some(ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. }) => {
                    self.say(&to_crlf(&data)).await;
                    if let Some(why) = self.fault.take() {
                        break Next::Closed(why, EndClass::RecordingFailed);
                    }
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => status = Some(exit_status),
                Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                    self.say(format!("[killed by {signal_name:?}]\r\n").as_bytes())
                        .await;
                }
                Some(ChannelMsg::Close) | None => break Next::Prompt,
                Some(_) => {}
            }
        };
        let _ = target_write.close().await;
        let _ = connection
            .disconnect(russh::Disconnect::ByApplication, "command done", "en")
            .await;
        if let (Next::Prompt, Some(code)) = (&next, status)
            && code != 0
        {
            self.say(format!("[exit {code}]\r\n").as_bytes()).await;
        }
        next
    }

    fn help(&self) -> String {
        // The rules in force now.
        let policy = self.dialer.bastion.policy();
        let role = policy
            .role(&self.permit.role().name)
            .unwrap_or(self.permit.role());
        let mut text = format!(
            "Commands allowed for role {} (a * stands for one word; a trailing * for any further words):\r\n",
            role.name
        );
        for rule in role.allow.rules() {
            let _ = write!(text, "  {}\r\n", rule.source());
        }
        text.push_str("Also: help, exit. Ctrl-C interrupts a running command.\r\n");
        text
    }
}

/// The line without surrounding spaces and tabs.
fn trim(line: &[u8]) -> &[u8] {
    let start = line
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(line.len());
    let end = line
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &line[start..end]
}

/// Output of a command without a pty uses bare LF; the user's terminal is in raw mode and needs
/// CR LF to return to the first column.
fn to_crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 16);
    let mut previous = 0u8;
    for &b in data {
        if b == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        previous = b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends_become_crlf_once() {
        assert_eq!(to_crlf(b"a\nb\r\nc"), b"a\r\nb\r\nc");
    }

    #[test]
    fn trimming_keeps_inner_bytes() {
        assert_eq!(trim(b"  ls -l \t"), b"ls -l");
        assert_eq!(trim(b"   "), b"");
    }
}
