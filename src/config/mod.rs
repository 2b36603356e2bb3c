//! `gatehouse.toml`: where the bastion listens, where its state lives, and how it signs.
//!
//! Every key has a default so that `gatehouse serve` runs on a fresh clone with no file at all.
//! Relative paths are resolved against the directory of the config file (or the working
//! directory when there is none), so a deployment can be moved as one folder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::duration;

pub mod cluster;
pub mod directory;
pub mod http;
pub mod retention;
pub mod ssh;

pub use cluster::ClusterConfig;
pub use directory::DirectoryConfig;
pub use http::HttpConfig;
pub use ssh::SshConfig;

/// The file name looked up in the working directory when neither `--config` nor
/// `GATEHOUSE_CONFIG` names one.
pub const DEFAULT_CONFIG_FILE: &str = "gatehouse.toml";

/// Errors reading or validating the configuration; each names the file and, where known, the line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has a wrong or unknown key.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A value is well-formed TOML but not acceptable.
    #[error("{path}: {message}")]
    Invalid {
        /// The config file (or `<defaults>`).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration, with paths already resolved.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from, if any.
    pub source: Option<PathBuf>,
    /// Address the SSH server listens on.
    pub listen: SocketAddr,
    /// SQLite database, keys and audit log live here.
    pub data_dir: PathBuf,
    /// Directory of `*.toml` policy files.
    pub policies: PathBuf,
    /// Grant store URL: `sqlite://PATH` (relative to the config directory).
    pub store: String,
    /// The bastion's own SSH host key (generated if missing).
    pub host_key: PathBuf,
    /// The user CA that signs per-session certificates.
    pub ca: CaConfig,
    /// Session recordings.
    pub recordings: RecordingsConfig,
    /// How long a pending request waits for approval before it lapses.
    pub request_ttl: Duration,
    /// Connections to targets.
    pub upstream: UpstreamConfig,
    /// Limits that keep one user or one connection from exhausting the bastion.
    pub limits: LimitsConfig,
    /// Penalties per source address for connections that end without logging in.
    pub penalties: PenaltiesConfig,
    /// Break-glass limits.
    pub breakglass: BreakglassConfig,
    /// The hash-chained audit log.
    pub audit_log: PathBuf,
    /// What the server does while the audit log cannot be written (`[audit]`).
    pub audit: AuditConfig,
    /// Alert sinks.
    pub alerts: crate::alerts::AlertsConfig,
    /// This node's place among several sharing one store (`[cluster]`).
    pub cluster: ClusterConfig,
    /// The web console, HTTP API and operations endpoints (`[http]`).
    pub http: HttpConfig,
    /// What the SSH server offers its users on the wire (`[ssh]`).
    pub ssh: SshConfig,
    /// People, keys and groups from an LDAP directory (`[directory]`), when set.
    pub directory: Option<DirectoryConfig>,
}

/// Break-glass (`[breakglass]`).
#[derive(Debug, Clone)]
pub struct BreakglassConfig {
    /// Uses allowed per user within `window`.
    pub max_uses: u32,
    /// The window the uses are counted in.
    pub window: Duration,
    /// Longest wait for the alert sinks before the session starts anyway.
    pub alert_wait: Duration,
}

/// The user CA (`[ca]`).
#[derive(Debug, Clone)]
pub struct CaConfig {
    /// OpenSSH private key file; generated (Ed25519, 0600) if missing.
    pub key: PathBuf,
    /// How long a per-session certificate is valid (the session may outlive it).
    pub cert_ttl: Duration,
    /// Public keys of CAs whose user certificates may log in to Gatehouse itself.
    pub trusted_user_ca_keys: Vec<String>,
    /// Written into each certificate's `source-address` critical option when set.
    pub source_address: Option<String>,
}

/// What to do when evidence (a recording, the audit log) cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Refuse or close the session (the default: no evidence, no access).
    Deny,
    /// Let the session go on without that evidence, logging loudly.
    Allow,
}

/// The audit log's behaviour under faults (`[audit]`).
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// While the log cannot be written: refuse new sessions (`deny`, the default), or let
    /// them start with an error logged for every failure (`allow`). Either way no line is
    /// dropped: they wait in order and are written once the log can be written again.
    pub on_failure: OnFailure,
}

/// Session recordings (`[recordings]`).
#[derive(Debug, Clone)]
pub struct RecordingsConfig {
    /// Root of `YYYY/MM/DD/<session-id>.cast`.
    pub dir: PathBuf,
    /// What a write failure does.
    pub on_failure: OnFailure,
    /// Largest recording in bytes; the session is closed when it is reached, whatever
    /// `on_failure` says.
    pub max_bytes: u64,
    /// Longest a recording write (or the creation of a recording) may take before the session is
    /// closed (or refused): past it the recordings disk is taken as not responding.
    pub stall_timeout: Duration,
    /// How long after its session ended a recording (and its index rows) is kept; `None`
    /// keeps it forever. Sessions on legal hold are kept whatever this says.
    pub keep: Option<Duration>,
}

/// The most `[upstream] max_startups` may be: far above any sshd's `MaxStartups`, and a bound
/// that keeps a mistyped value from being taken as "unlimited".
pub const MAX_STARTUPS_LIMIT: usize = 10_000;

/// Connections to targets (`[upstream]`).
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// How long to wait for a target's TCP connect, key exchange and authentication.
    pub connect_timeout: Duration,
    /// Keep one connection (key exchange done, nobody logged in) ready for the next session to
    /// a recently used target, which takes the key exchange out of session setup.
    pub prewarm: bool,
    /// Connections to one target (sshd address and port) that may be starting up (connecting,
    /// exchanging keys, authenticating) at once; kept below sshd's `MaxStartups` (10 by
    /// default), past which sshd drops new connections at random.
    pub max_startups: usize,
    /// Longest a session waits for one of those slots before it is refused as busy.
    pub startup_wait: Duration,
}

/// Resource limits (`[limits]`).
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Concurrent client connections; further ones are closed at once.
    pub max_connections: usize,
    /// Session channels one client connection may open.
    pub max_channels_per_connection: usize,
    /// Seconds an unauthenticated connection may take to log in.
    pub login_grace: Duration,
    /// An authenticated connection with no session channel in progress for this long is
    /// closed. A running session, however quiet (a shell at its prompt), never counts as idle.
    pub idle_timeout: Duration,
    /// Authenticated connections one user may hold at once; the next login is refused with a
    /// message saying so.
    pub connections_per_user: usize,
    /// On SIGTERM: how long live sessions are given, after being told, before they are closed.
    pub shutdown_grace: Duration,
}

/// Penalties per source address (`[penalties]`), after OpenSSH's `PerSourcePenalties`.
///
/// A connection that ends without logging in adds time to its source address's penalty; once
/// the penalty reaches `min`, new connections from that address are refused until it has run
/// out. Time counts down continuously, so only a burst of failures (a scanner, a key exchange
/// flood, password spraying) blocks an address; successful logins never add anything, so a
/// burst of real logins from one NAT address is never throttled.
#[derive(Debug, Clone)]
pub struct PenaltiesConfig {
    /// Whether penalties are applied at all.
    pub enabled: bool,
    /// Added for a connection that ended without trying to log in (a scan, a key exchange
    /// flood).
    pub noauth: Duration,
    /// Added for a connection that ended after a failed login.
    pub authfail: Duration,
    /// Added for a connection that used up `[limits] login_grace`.
    pub grace_exceeded: Duration,
    /// The penalty an address must accumulate before its connections are refused.
    pub min: Duration,
    /// The longest penalty an address can accumulate.
    pub max: Duration,
    /// Source addresses (IPv4, IPv6 /64 blocks) tracked at once; beyond this, new addresses
    /// are not penalised (a flood of spoofed sources cannot exhaust memory) and a warning is
    /// logged.
    pub max_sources: usize,
    /// Networks never penalised: health checks, a trusted jump network.
    pub exempt: Vec<crate::server::penalty::Network>,
    /// Connections from one source address (IPv4 address, IPv6 /64) that may be between
    /// admission and login at once, after OpenSSH's `PerSourceMaxStartups`: parallel
    /// connections would otherwise each get a key exchange and could hold every connection
    /// slot for the login grace time. A few more wait briefly for a place; the rest are refused.
    pub max_startups: usize,
}

/// The most `[limits] connections_per_user` may be.
pub const CONNECTIONS_PER_USER_LIMIT: usize = 1_000_000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    policies: Option<PathBuf>,
    store: Option<String>,
    host_key: Option<PathBuf>,
    audit_log: Option<PathBuf>,
    request_ttl: Option<String>,
    #[serde(default)]
    ca: RawCa,
    #[serde(default)]
    recordings: RawRecordings,
    #[serde(default)]
    upstream: RawUpstream,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    penalties: RawPenalties,
    #[serde(default)]
    breakglass: RawBreakglass,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    alerts: crate::alerts::AlertsConfig,
    #[serde(default)]
    cluster: cluster::RawCluster,
    #[serde(default)]
    http: http::RawHttp,
    #[serde(default)]
    ssh: ssh::RawSsh,
    #[serde(default)]
    directory: directory::RawDirectory,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCa {
    key: Option<PathBuf>,
    cert_ttl: Option<String>,
    #[serde(default)]
    trusted_user_ca_keys: Vec<String>,
    source_address: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecordings {
    dir: Option<PathBuf>,
    on_failure: Option<OnFailure>,
    max_bytes: Option<u64>,
    stall_timeout: Option<String>,
    #[serde(default, deserialize_with = "retention::deserialize")]
    keep: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    connect_timeout: Option<String>,
    prewarm: Option<bool>,
    max_startups: Option<usize>,
    startup_wait: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBreakglass {
    max_uses: Option<u32>,
    window: Option<String>,
    alert_wait: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    on_failure: Option<OnFailure>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_connections: Option<usize>,
    max_channels_per_connection: Option<usize>,
    login_grace: Option<String>,
    idle_timeout: Option<String>,
    connections_per_user: Option<usize>,
    shutdown_grace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPenalties {
    enabled: Option<bool>,
    noauth: Option<String>,
    authfail: Option<String>,
    grace_exceeded: Option<String>,
    min: Option<String>,
    max: Option<String>,
    max_sources: Option<usize>,
    max_startups: Option<usize>,
    #[serde(default)]
    exempt: Vec<String>,
}

impl Config {
    /// Finds the config file the way the CLI documents (`--config`, then `GATEHOUSE_CONFIG`, then
    /// `./gatehouse.toml`) and loads it; with no file anywhere, the defaults apply.
    pub fn discover(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        if let Some(path) = explicit {
            return Config::load(path);
        }
        if let Some(env) = std::env::var_os("GATEHOUSE_CONFIG").filter(|v| !v.is_empty()) {
            return Config::load(Path::new(&env));
        }
        let local = Path::new(DEFAULT_CONFIG_FILE);
        if local.exists() {
            return Config::load(local);
        }
        Config::from_raw(RawConfig::default(), None, Path::new("."))
    }

    /// Loads one config file; relative paths in it are taken from its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let raw: RawConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            line: e.span().map(|s| line_of(&text, s.start)).unwrap_or(1),
            message: e.message().to_owned(),
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Config::from_raw(raw, Some(path.to_owned()), base)
    }

    /// The defaults, resolved against `base`: what `serve` uses with no config file.
    pub fn defaults_in(base: &Path) -> Config {
        Config::from_raw(RawConfig::default(), None, base).expect("the defaults are valid")
    }

    fn from_raw(
        raw: RawConfig,
        source: Option<PathBuf>,
        base: &Path,
    ) -> Result<Config, ConfigError> {
        let file = source
            .clone()
            .unwrap_or_else(|| PathBuf::from("<defaults>"));
        let invalid = |message: String| ConfigError::Invalid {
            path: file.clone(),
            message,
        };
        let dur = |key: &str, value: Option<String>, default: &str| {
            duration::parse(value.as_deref().unwrap_or(default))
                .map_err(|e| invalid(format!("{key}: {e}")))
        };
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };

        let listen_text = raw.listen.unwrap_or_else(|| "127.0.0.1:2222".into());
        let listen = listen_text.parse().map_err(|_| {
            invalid(format!(
                "listen: {listen_text:?} is not an address like 127.0.0.1:2222"
            ))
        })?;
        let data_dir = resolve(raw.data_dir.unwrap_or_else(|| "data".into()));
        let store = match raw.store {
            Some(url) => resolve_store_url(&url, base).map_err(invalid)?,
            None => format!("sqlite://{}", data_dir.join("gatehouse.db").display()),
        };
        let ca = CaConfig {
            key: raw
                .ca
                .key
                .map(resolve)
                .unwrap_or_else(|| data_dir.join("keys/user_ca")),
            cert_ttl: dur("ca.cert_ttl", raw.ca.cert_ttl, "2m")?,
            trusted_user_ca_keys: raw.ca.trusted_user_ca_keys,
            source_address: raw.ca.source_address,
        };
        if ca.cert_ttl > Duration::from_secs(3600) {
            return Err(invalid(
                "ca.cert_ttl: keep certificates short-lived (at most 1h)".into(),
            ));
        }
        raw.alerts
            .validate()
            .map_err(|e| invalid(format!("alerts: {e}")))?;
        let config = Config {
            alerts: raw.alerts,
            listen,
            policies: resolve(raw.policies.unwrap_or_else(|| "policies".into())),
            store,
            host_key: raw
                .host_key
                .map(resolve)
                .unwrap_or_else(|| data_dir.join("keys/host_ed25519")),
            ca,
            recordings: RecordingsConfig {
                dir: resolve(raw.recordings.dir.unwrap_or_else(|| "recordings".into())),
                on_failure: raw.recordings.on_failure.unwrap_or(OnFailure::Deny),
                max_bytes: raw.recordings.max_bytes.unwrap_or(8 << 30),
                // Long enough for a busy disk, short enough that a frozen one is noticed.
                stall_timeout: Some(dur(
                    "recordings.stall_timeout",
                    raw.recordings.stall_timeout,
                    "5s",
                )?)
                .filter(|d| (Duration::from_secs(1)..=Duration::from_secs(600)).contains(d))
                .ok_or_else(|| {
                    invalid("recordings.stall_timeout: must be between 1s and 10m".into())
                })?,
                keep: raw.recordings.keep,
            },
            request_ttl: dur("request_ttl", raw.request_ttl, "24h")?,
            upstream: UpstreamConfig {
                connect_timeout: dur(
                    "upstream.connect_timeout",
                    raw.upstream.connect_timeout,
                    "10s",
                )?,
                prewarm: raw.upstream.prewarm.unwrap_or(true),
                max_startups: match raw.upstream.max_startups.unwrap_or(8) {
                    n @ 1..=MAX_STARTUPS_LIMIT => n,
                    _ => {
                        return Err(invalid(format!(
                            "upstream.max_startups: must be between 1 and {MAX_STARTUPS_LIMIT}"
                        )));
                    }
                },
                startup_wait: dur("upstream.startup_wait", raw.upstream.startup_wait, "30s")?,
            },
            limits: LimitsConfig {
                max_connections: raw.limits.max_connections.unwrap_or(10_000),
                max_channels_per_connection: raw.limits.max_channels_per_connection.unwrap_or(10),
                login_grace: dur("limits.login_grace", raw.limits.login_grace, "30s")?,
                idle_timeout: dur("limits.idle_timeout", raw.limits.idle_timeout, "10m")?,
                connections_per_user: match raw.limits.connections_per_user.unwrap_or(100) {
                    n @ 1..=CONNECTIONS_PER_USER_LIMIT => n,
                    _ => {
                        return Err(invalid(format!(
                            "limits.connections_per_user: must be between 1 and {CONNECTIONS_PER_USER_LIMIT}"
                        )));
                    }
                },
                shutdown_grace: dur("limits.shutdown_grace", raw.limits.shutdown_grace, "30s")?,
            },
            penalties: penalties(raw.penalties).map_err(invalid)?,
            audit_log: raw
                .audit_log
                .map(resolve)
                .unwrap_or_else(|| data_dir.join("audit.jsonl")),
            audit: AuditConfig {
                on_failure: raw.audit.on_failure.unwrap_or(OnFailure::Deny),
            },
            breakglass: BreakglassConfig {
                max_uses: raw.breakglass.max_uses.unwrap_or(3),
                window: dur("breakglass.window", raw.breakglass.window, "24h")?,
                alert_wait: dur("breakglass.alert_wait", raw.breakglass.alert_wait, "3s")?,
            },
            cluster: cluster::resolve(raw.cluster).map_err(invalid)?,
            http: http::resolve(raw.http, base, &data_dir).map_err(invalid)?,
            ssh: raw.ssh.resolve(),
            directory: directory::resolve(raw.directory, base).map_err(invalid)?,
            data_dir,
            source,
        };
        Ok(config)
    }
}

/// Reads `[penalties]`; a `min` above `max` would never block anything and is refused.
fn penalties(raw: RawPenalties) -> Result<PenaltiesConfig, String> {
    let d = |key: &str, value: Option<String>, default: &str| {
        duration::parse(value.as_deref().unwrap_or(default)).map_err(|e| format!("{key}: {e}"))
    };
    let config = PenaltiesConfig {
        enabled: raw.enabled.unwrap_or(true),
        noauth: d("penalties.noauth", raw.noauth, "1s")?,
        authfail: d("penalties.authfail", raw.authfail, "5s")?,
        grace_exceeded: d("penalties.grace_exceeded", raw.grace_exceeded, "10s")?,
        min: d("penalties.min", raw.min, "15s")?,
        max: d("penalties.max", raw.max, "10m")?,
        max_sources: raw.max_sources.unwrap_or(65_536),
        max_startups: raw.max_startups.unwrap_or(10),
        exempt: raw
            .exempt
            .iter()
            .map(|text| {
                text.parse()
                    .map_err(|e| format!("penalties.exempt: {text:?}: {e}"))
            })
            .collect::<Result<_, _>>()?,
    };
    if config.min > config.max {
        return Err("penalties.min: must not be longer than penalties.max".into());
    }
    if config.max_sources == 0 {
        return Err("penalties.max_sources: must be at least 1".into());
    }
    if config.max_startups == 0 {
        return Err("penalties.max_startups: must be at least 1".into());
    }
    Ok(config)
}

/// Makes a relative SQLite path in a store URL relative to the config directory; a PostgreSQL
/// URL is kept as written.
fn resolve_store_url(url: &str, base: &Path) -> Result<String, String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(url.to_owned());
    }
    match url.strip_prefix("sqlite://") {
        Some(path) if !path.is_empty() => {
            let p = Path::new(path);
            let p = if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            };
            Ok(format!("sqlite://{}", p.display()))
        }
        _ => Err(format!(
            "store: {url:?} is not supported; use sqlite://PATH or postgres://USER@HOST/DB"
        )),
    }
}

/// The 1-based line number of a byte offset, for `file:line` messages.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod limits_tests;

#[cfg(test)]
mod audit_tests;

#[cfg(test)]
mod recordings_tests;

#[cfg(test)]
mod tests;
