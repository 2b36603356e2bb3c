//! A tiny HTTP alert receiver on loopback: answers 200 and keeps each body with its arrival
//! time, so tests can see what a webhook sink delivered and when.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A tiny HTTP receiver on loopback that answers 200 and keeps each body with its arrival time.
pub struct Receiver {
    /// Every body received, with its arrival time (Unix seconds).
    pub got: Arc<Mutex<Vec<(f64, String)>>>,
}

/// Now, in Unix seconds.
pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

impl Receiver {
    /// Serves on `listener` until the test ends.
    pub fn start(listener: TcpListener) -> Receiver {
        let got = Arc::new(Mutex::new(Vec::new()));
        let store = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                store
                    .lock()
                    .unwrap()
                    .push((now_secs(), String::from_utf8_lossy(&body).into_owned()));
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        Receiver { got }
    }

    /// The first body containing `needle`, waiting at most `limit`.
    pub fn wait_for(&self, needle: &str, limit: Duration) -> (f64, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(hit) = self
                .got
                .lock()
                .unwrap()
                .iter()
                .find(|(_, b)| b.contains(needle))
                .cloned()
            {
                return hit;
            }
            assert!(
                Instant::now() < deadline,
                "no alert with {needle:?} within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
