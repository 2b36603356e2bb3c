//! A client process driven step by step: type something, wait until the output shows
//! something, act elsewhere (reload a policy, revoke a grant), type again.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Output;

/// A running client with its stdout and stderr collected as they come.
pub struct Interactive {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

fn collect(mut from: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let into = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = from.read(&mut chunk) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    buf
}

impl Interactive {
    /// Starts `cmd` with piped stdin, stdout and stderr.
    pub fn spawn(mut cmd: Command) -> Interactive {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stdin = child.stdin.take();
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Interactive {
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    /// Types `bytes`.
    pub fn send(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    /// Everything shown so far, stdout then stderr.
    pub fn seen(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.stdout.lock().unwrap()),
            String::from_utf8_lossy(&self.stderr.lock().unwrap())
        )
    }

    /// Waits until stdout or stderr has shown `text` `times` times in all.
    pub fn wait_for_count(&self, text: &str, times: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.seen().matches(text).count() < times {
            assert!(
                Instant::now() < deadline,
                "{text:?} (×{times}) not shown within {timeout:?}; shown:\n{}",
                self.seen()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until stdout or stderr has shown `text`.
    pub fn wait_for(&self, text: &str, timeout: Duration) {
        self.wait_for_count(text, 1, timeout);
    }

    /// Waits for the process to exit by itself within `timeout` (stdin stays open).
    pub fn wait_exit(mut self, timeout: Duration) -> Output {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the client did not exit within {timeout:?}; shown:\n{}",
                    self.seen()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // Let the readers take the last bytes.
        std::thread::sleep(Duration::from_millis(100));
        Output {
            status,
            stdout: self.stdout.lock().unwrap().clone(),
            stderr: self.stderr.lock().unwrap().clone(),
        }
    }
}

impl Drop for Interactive {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
