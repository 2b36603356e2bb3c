//! The command sink: runs a program with the JSON alert on stdin; exit status 0 is a delivery.
//!
//! The program runs without a shell, in a process group of its own, so that at the timeout the
//! whole group is killed: a script that started `curl` or `sleep` does not leave it behind.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::{Alert, CommandSink};

/// How much of the program's stdout and of its stderr goes into a failure message.
const MAX_OUTPUT: usize = 4096;

/// How long to wait for output after the program exited: a background process that inherited
/// its stdout must not turn a success into a timeout.
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// One configured command.
pub(super) struct Command {
    program: PathBuf,
    args: Vec<String>,
    timeout: Duration,
}

/// Kills a process group when dropped, unless disarmed: an attempt that is abandoned (the loop
/// shut down, the outer bound hit) must not leave the program running.
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory is
            // involved.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Command {
    pub(super) fn new(config: &CommandSink) -> Command {
        Command {
            program: config.program.clone(),
            args: config.args.clone(),
            timeout: config.timeout,
        }
    }

    /// Runs the program once. Besides the JSON on stdin it gets `GATEHOUSE_ALERT_ID`,
    /// `GATEHOUSE_ALERT_EVENT` and `GATEHOUSE_ALERT_SEVERITY`, so that a script can route on
    /// them without parsing JSON.
    pub(super) async fn deliver(&self, alert: &Alert, payload: &str) -> Result<(), String> {
        let mut child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .env("GATEHOUSE_ALERT_ID", alert.id.to_string())
            .env("GATEHOUSE_ALERT_EVENT", alert.event.name())
            .env("GATEHOUSE_ALERT_SEVERITY", alert.severity.name())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.program.display()))?;
        let mut group = GroupGuard(child.id().and_then(|pid| i32::try_from(pid).ok()));
        let stdout = tokio::spawn(read_capped(child.stdout.take()));
        let stderr = tokio::spawn(read_capped(child.stderr.take()));
        let mut stdin = child.stdin.take();
        let input = format!("{payload}\n");
        let run = async {
            if let Some(stdin) = stdin.as_mut() {
                // A program that does not read its input may exit first; its exit status is
                // what counts, so a broken pipe here is not a failure.
                let _ = stdin.write_all(input.as_bytes()).await;
            }
            // Close stdin so that the program sees the end of its input.
            drop(stdin.take());
            child.wait().await
        };
        let status = match tokio::time::timeout(self.timeout, run).await {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => return Err(format!("waiting for the program: {e}")),
            Err(_) => {
                group.kill();
                let _ = child.kill().await;
                stdout.abort();
                stderr.abort();
                return Err(format!(
                    "killed after {} without finishing",
                    crate::duration::format(self.timeout)
                ));
            }
        };
        // The program is gone; whatever is left in its group was started on purpose.
        group.0 = None;
        if status.success() {
            stdout.abort();
            stderr.abort();
            return Ok(());
        }
        let mut error = format!("exited with {status}");
        for (name, task) in [("stderr", stderr), ("stdout", stdout)] {
            let text = match tokio::time::timeout(OUTPUT_GRACE, task).await {
                Ok(Ok(text)) => text,
                Ok(Err(_)) | Err(_) => String::new(),
            };
            if !text.is_empty() {
                error.push_str(&format!("; {name}: {text}"));
            }
        }
        Err(error)
    }
}

/// Reads a pipe to its end (so the program never blocks on a full pipe) and keeps the first
/// [`MAX_OUTPUT`] bytes as one printable line.
async fn read_capped(pipe: Option<impl AsyncRead + Unpin>) -> String {
    let Some(mut pipe) = pipe else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    String::from_utf8_lossy(&kept)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::testkit::{self, Harness};
    use crate::alerts::{AlertEvent, AlertsConfig, Observation};
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use tokio::time::Instant;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn config(program: PathBuf, args: &[&str], timeout: Duration) -> AlertsConfig {
        AlertsConfig {
            command: vec![CommandSink {
                program,
                args: args.iter().map(|a| a.to_string()).collect(),
                timeout,
            }],
            ..AlertsConfig::default()
        }
    }

    #[tokio::test]
    async fn the_program_reads_the_alert_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.json");
        let env = dir.path().join("env.txt");
        let program = script(
            dir.path(),
            "sink.sh",
            r#"cat > "$1"; echo "$GATEHOUSE_ALERT_EVENT $GATEHOUSE_ALERT_SEVERITY $GATEHOUSE_ALERT_ID" > "$2""#,
        );
        let h = Harness::new(&config(
            program.clone(),
            &[out.to_str().unwrap(), env.to_str().unwrap()],
            Duration::from_secs(10),
        ))
        .await;
        let _loop = h.alerts.spawn_dispatcher();
        let a = testkit::alert(AlertEvent::GrantApproved);
        h.alerts.enqueue(&a).await.unwrap();
        h.wait_delivered(a.id, 1).await;
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            format!("{}\n", a.to_json())
        );
        assert_eq!(
            std::fs::read_to_string(&env).unwrap(),
            format!("grant.approved info {}\n", a.id)
        );
        assert_eq!(
            h.observer.observations(),
            vec![Observation::Delivered {
                alert_id: a.id,
                sink: format!("command:{}", program.display()),
            }]
        );
    }

    #[tokio::test]
    async fn a_failing_program_is_retried_until_it_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let count = dir.path().join("count");
        let out = dir.path().join("out.json");
        // Fails twice (saying why on stderr), then succeeds.
        let program = script(
            dir.path(),
            "flaky.sh",
            r#"n=$(cat "$1" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$1"
if [ $n -lt 3 ]; then echo "pager service unavailable" >&2; exit 1; fi
cat > "$2""#,
        );
        let h = Harness::new(&config(
            program,
            &[count.to_str().unwrap(), out.to_str().unwrap()],
            Duration::from_secs(10),
        ))
        .await;
        let _loop = h.alerts.spawn_dispatcher();
        let a = testkit::alert(AlertEvent::GrantExpired);
        h.alerts.enqueue(&a).await.unwrap();
        h.wait_delivered(a.id, 1).await;
        assert_eq!(std::fs::read_to_string(&count).unwrap(), "3\n");
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            format!("{}\n", a.to_json())
        );
        let failures = h.failures();
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert_eq!(failures[0].0, 1);
        assert_eq!(failures[1].0, 2);
        assert!(
            failures[0].1.contains("exit status: 1")
                && failures[0].1.contains("stderr: pager service unavailable"),
            "{failures:?}"
        );
    }

    #[tokio::test]
    async fn a_hanging_program_is_killed_with_its_children_at_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let program = script(dir.path(), "hang.sh", r#"sleep 60 & echo $! > "$1"; wait"#);
        let sink = Command::new(&CommandSink {
            program,
            args: vec![pid_file.to_str().unwrap().to_owned()],
            timeout: Duration::from_secs(1),
        });
        let a = testkit::alert(AlertEvent::GrantDenied);
        let started = Instant::now();
        let error = sink.deliver(&a, &a.to_json()).await.unwrap_err();
        let took = started.elapsed();
        assert!(error.contains("killed after 1s"), "{error}");
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(5),
            "{took:?}"
        );
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The grandchild `sleep` died too (it may linger as a zombie until reaped).
        let gone = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|stat| {
                    stat.rsplit_once(')')
                        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
                })
                .unwrap_or(true)
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !gone() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gone(), "sleep {pid} survived the timeout");
    }

    #[tokio::test]
    async fn a_missing_program_is_a_failure_not_a_panic() {
        let sink = Command::new(&CommandSink {
            program: "/nonexistent/gatehouse-alert".into(),
            args: vec![],
            timeout: Duration::from_secs(1),
        });
        let a = testkit::alert(AlertEvent::GrantDenied);
        let error = sink.deliver(&a, &a.to_json()).await.unwrap_err();
        assert!(
            error.starts_with("cannot start /nonexistent/gatehouse-alert"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn output_in_errors_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let program = script(
            dir.path(),
            "noisy.sh",
            "head -c 100000 /dev/zero | tr '\\0' x >&2; exit 3",
        );
        let sink = Command::new(&CommandSink {
            program,
            args: vec![],
            timeout: Duration::from_secs(10),
        });
        let a = testkit::alert(AlertEvent::GrantDenied);
        let error = sink.deliver(&a, &a.to_json()).await.unwrap_err();
        assert!(
            error.starts_with("exited with exit status: 3; stderr: xxx"),
            "{error}"
        );
        assert!(error.len() < MAX_OUTPUT + 100, "{}", error.len());
    }
}
