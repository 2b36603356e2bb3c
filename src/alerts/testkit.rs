//! Shared pieces of the alert tests: an outbox in a temporary database and a tiny HTTP receiver.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::RetryPolicy;
use super::{Alert, AlertEvent, Alerts, AlertsConfig, Observation, RecordingObserver};
use crate::store::SqliteStore;

/// A typical alert: alice on web-01 as emergency, grant 17.
pub fn alert(event: AlertEvent) -> Alert {
    Alert {
        user: Some("alice".into()),
        target: Some("web-01".into()),
        role: Some("emergency".into()),
        grant_id: Some(17),
        reason: Some("primary down".into()),
        ..Alert::new(event)
    }
}

/// Retries within milliseconds, so that tests run on real time and stay fast.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(50),
        cap: Duration::from_millis(200),
        poll: Duration::from_secs(1),
    }
}

/// A loopback port that nothing listens on (for now).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Alerts on a database file in a temporary directory, with a recording observer.
pub struct Harness {
    _dir: tempfile::TempDir,
    path: PathBuf,
    pub alerts: Alerts,
    pub observer: Arc<RecordingObserver>,
}

impl Harness {
    pub async fn new(config: &AlertsConfig) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gatehouse.db");
        let observer = Arc::new(RecordingObserver::default());
        let alerts = open(&path, config, observer.clone()).await;
        Harness {
            _dir: dir,
            path,
            alerts,
            observer,
        }
    }

    /// Simulates a restart: a new store handle on the same file and new sinks.
    pub async fn reopen(&mut self, config: &AlertsConfig) {
        self.alerts = open(&self.path, config, self.observer.clone()).await;
    }

    /// A second handle on the database, as another process would open it.
    pub async fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.path).await.unwrap()
    }

    /// Another process on the same database, reporting to the same observer.
    pub async fn second_process(&self, config: &AlertsConfig) -> Alerts {
        open(&self.path, config, self.observer.clone()).await
    }

    /// Waits until `alert` was delivered `n` times and has no row left to deliver.
    pub async fn wait_delivered(&self, alert: Uuid, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let delivered = self
                .observer
                .observations()
                .iter()
                .filter(
                    |o| matches!(o, Observation::Delivered { alert_id, .. } if *alert_id == alert),
                )
                .count();
            let pending = self.alerts.pending().await.unwrap();
            if delivered >= n && pending.iter().all(|p| p.alert_id != alert) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "alert {alert} not delivered {n} times: {:?}; pending {pending:?}",
                self.observer.observations()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until at least `n` failed attempts were observed.
    pub async fn wait_failures(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while self.failures().len() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "fewer than {n} failures: {:?}",
                self.observer.observations()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The failed attempts observed: (attempt number, error).
    pub fn failures(&self) -> Vec<(u32, String)> {
        self.observer
            .observations()
            .into_iter()
            .filter_map(|o| match o {
                Observation::Failed { attempt, error, .. } => Some((attempt, error)),
                Observation::Delivered { .. } => None,
            })
            .collect()
    }

    /// How many deliveries were observed.
    pub fn delivered(&self) -> usize {
        self.observer
            .observations()
            .iter()
            .filter(|o| matches!(o, Observation::Delivered { .. }))
            .count()
    }
}

async fn open(
    path: &std::path::Path,
    config: &AlertsConfig,
    observer: Arc<RecordingObserver>,
) -> Alerts {
    let store = std::sync::Arc::new(SqliteStore::open(path).await.unwrap());
    Alerts::with_retry(store, config, observer, fast_retry()).unwrap()
}

/// How the test receiver answers one request.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    /// This status, with the body `try later`.
    Status(u16),
    /// Reads the request and never answers.
    Hang,
    /// Answers 200 after this long.
    Delay(Duration),
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
}

#[derive(Default)]
struct Seen {
    script: Vec<Reply>,
    requests: Vec<Request>,
    connections: usize,
}

/// A minimal HTTP/1.1 receiver on loopback: answers each request with the next scripted
/// reply (200 once the script is used up) and closes the connection.
pub struct HttpServer {
    port: u16,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpServer {
    pub async fn start(script: Vec<Reply>) -> HttpServer {
        HttpServer::listen(TcpListener::bind("127.0.0.1:0").await.unwrap(), script)
    }

    pub async fn start_on(port: u16, script: Vec<Reply>) -> HttpServer {
        HttpServer::listen(
            TcpListener::bind(("127.0.0.1", port)).await.unwrap(),
            script,
        )
    }

    fn listen(listener: TcpListener, script: Vec<Reply>) -> HttpServer {
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Seen {
            script,
            ..Seen::default()
        }));
        let shared = seen.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                shared.lock().unwrap().connections += 1;
                connections.spawn(serve(stream, shared.clone()));
            }
        });
        HttpServer { port, seen, task }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.seen.lock().unwrap().requests.clone()
    }

    pub fn connections(&self) -> usize {
        self.seen.lock().unwrap().connections
    }
}

async fn serve(mut stream: TcpStream, seen: Arc<Mutex<Seen>>) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_owned();
    let path = first.next().unwrap_or("").to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while data.len() < head_end + length {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
    let body = data[head_end..head_end + length].to_vec();
    let reply = {
        let mut seen = seen.lock().unwrap();
        seen.requests.push(Request {
            method,
            path,
            headers,
            body,
        });
        if seen.script.is_empty() {
            None
        } else {
            Some(seen.script.remove(0))
        }
    };
    let status = match reply {
        None => 200,
        Some(Reply::Status(status)) => status,
        Some(Reply::Hang) => {
            std::future::pending::<()>().await;
            return;
        }
        Some(Reply::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            200
        }
    };
    let body = if status == 200 { "ok" } else { "try later" };
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}
