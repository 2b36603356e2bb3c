//! A deliberately slow target: a TCP proxy on loopback between the bastion and a target's
//! sshd that delays everything the target sends, and can hold one chunk of it until told to go
//! on, so that a test can act at a chosen moment of a session's setup.
//!
//! SSH session setup is a conversation: the bastion sends a message and waits for the target's
//! answer before the next step (key exchange, login, channel, pty, then the shell or exec
//! request). Holding the target's k-th chunk of a connection therefore stops the bastion at a
//! definite step of the setup, with everything after it not yet sent.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    /// Hold the k-th chunk (1-based) the target sends on the next connection accepted.
    armed: Option<usize>,
    /// A chunk is being held now.
    holding: bool,
    /// Let the held chunk go.
    release: bool,
    /// When the bastion last sent anything.
    last_from_client: Option<Instant>,
    /// Connections accepted so far.
    connections: usize,
}

/// The proxy; it stops accepting when dropped.
pub struct SlowProxy {
    /// Its port on 127.0.0.1; point the target's `port` here.
    pub port: u16,
    shared: Arc<(Mutex<State>, Condvar)>,
    stop: Arc<AtomicBool>,
}

impl SlowProxy {
    /// Starts a proxy to `127.0.0.1:target_port` that delays every chunk from the target by
    /// `delay`.
    pub fn start(target_port: u16, delay: Duration) -> SlowProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (accept_shared, accept_stop) = (shared.clone(), stop.clone());
        std::thread::spawn(move || {
            while !accept_stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let hold_at = {
                            let mut state = accept_shared.0.lock().unwrap();
                            state.connections += 1;
                            state.armed.take()
                        };
                        let Ok(target) = TcpStream::connect(("127.0.0.1", target_port)) else {
                            continue;
                        };
                        relay(client, target, delay, hold_at, accept_shared.clone());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        SlowProxy { port, shared, stop }
    }

    /// Holds the `k`-th chunk (1-based) the target sends on the next connection.
    pub fn hold_chunk_of_next_connection(&self, k: usize) {
        let mut state = self.shared.0.lock().unwrap();
        state.armed = Some(k);
        state.holding = false;
        state.release = false;
    }

    /// Waits until a chunk is held; false if none is within `timeout` (the connection ended
    /// before its k-th chunk).
    pub fn wait_holding(&self, timeout: Duration) -> bool {
        let (lock, cvar) = &*self.shared;
        let state = lock.lock().unwrap();
        let (state, _) = cvar
            .wait_timeout_while(state, timeout, |s| !s.holding)
            .unwrap();
        state.holding
    }

    /// Waits until the bastion has sent nothing for `quiet`.
    pub fn wait_client_quiet(&self, quiet: Duration) {
        loop {
            let last = self.shared.0.lock().unwrap().last_from_client;
            match last {
                Some(t) if t.elapsed() < quiet => std::thread::sleep(quiet - t.elapsed()),
                _ => return,
            }
        }
    }

    /// Lets the held chunk go on; nothing more is held until armed again.
    pub fn release(&self) {
        let (lock, cvar) = &*self.shared;
        let mut state = lock.lock().unwrap();
        state.armed = None;
        state.release = true;
        cvar.notify_all();
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.0.lock().unwrap().connections
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.release();
    }
}

/// Copies both ways on two threads: the bastion's bytes at once, the target's after `delay`
/// each, holding the `hold_at`-th chunk until released.
fn relay(
    client: TcpStream,
    target: TcpStream,
    delay: Duration,
    hold_at: Option<usize>,
    shared: Arc<(Mutex<State>, Condvar)>,
) {
    let (mut client_read, mut target_write) =
        (client.try_clone().unwrap(), target.try_clone().unwrap());
    let up_shared = shared.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match client_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    up_shared.0.lock().unwrap().last_from_client = Some(Instant::now());
                    if target_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = target_write.shutdown(Shutdown::Write);
    });
    let (mut target_read, mut client_write) = (target, client);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut chunks = 0usize;
        loop {
            match target_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    chunks += 1;
                    if hold_at == Some(chunks) {
                        let (lock, cvar) = &*shared;
                        let mut state = lock.lock().unwrap();
                        state.holding = true;
                        cvar.notify_all();
                        while !state.release {
                            state = cvar.wait(state).unwrap();
                        }
                        state.holding = false;
                    }
                    std::thread::sleep(delay);
                    if client_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = client_write.shutdown(Shutdown::Write);
    });
}
