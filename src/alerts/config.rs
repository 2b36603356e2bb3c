//! The `[alerts]` section of `gatehouse.toml`: the sinks, how each is checked before use and
//! how each is named in outbox rows and shown in logs.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The longest timeout a sink may have: a sink slower than this is broken, and a claim on an
/// outbox row lasts about this long, so a crashed attempt is retried within minutes.
pub const MAX_SINK_TIMEOUT: Duration = Duration::from_secs(600);

/// How long a webhook may take when its config names no `timeout`.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a command may run when its config names no `timeout`.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a syslog datagram may wait for room in the socket; a datagram socket has no reply
/// to wait for, so this only guards against a receiver that stopped reading.
pub const SYSLOG_TIMEOUT: Duration = Duration::from_secs(5);
/// The `[alerts]` section of `gatehouse.toml`: the sinks every alert goes to.
///
/// An empty section (the default) means alerts are only logged; that is allowed so that a fresh
/// install runs, and `gatehouse check` can warn about it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// `[[alerts.webhook]]` entries.
    #[serde(default)]
    pub webhook: Vec<WebhookSink>,
    /// `[[alerts.syslog]]` entries.
    #[serde(default)]
    pub syslog: Vec<SyslogSink>,
    /// `[[alerts.command]]` entries.
    #[serde(default)]
    pub command: Vec<CommandSink>,
}

/// A webhook (`[[alerts.webhook]]`): the most common way to reach a chat channel or a pager.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSink {
    /// Where to POST; `http://` or `https://`.
    pub url: String,
    /// What to POST.
    #[serde(default)]
    pub format: WebhookFormat,
    /// How long one attempt may take, as `"5s"` or `"1m"`.
    #[serde(
        default = "default_webhook_timeout",
        deserialize_with = "crate::duration::serde_text::deserialize"
    )]
    pub timeout: Duration,
}

/// The body a webhook receives, so that chat tools can be fed without a translating proxy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The alert as JSON (the same document a command reads).
    #[default]
    Json,
    /// `{"text": "..."}`, which Slack and its look-alikes display as a message.
    Slack,
}

/// A syslog receiver (`[[alerts.syslog]]`): where security teams already collect auth events.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogSink {
    /// A local datagram socket such as `/dev/log`.
    pub socket: Option<PathBuf>,
    /// A UDP `host:port` such as `127.0.0.1:514`.
    pub address: Option<String>,
    /// `auth` (4) or `authpriv` (10, the default: alerts carry reasons that may be private).
    #[serde(default)]
    pub facility: SyslogFacility,
}

/// The syslog facility, which decides the log file a receiver files the message in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogFacility {
    /// `auth` (4).
    Auth,
    /// `authpriv` (10).
    #[default]
    Authpriv,
}

impl SyslogFacility {
    /// The facility number that goes into the message's PRI.
    pub fn code(self) -> u8 {
        match self {
            SyslogFacility::Auth => 4,
            SyslogFacility::Authpriv => 10,
        }
    }
}

/// A program to run for every alert (`[[alerts.command]]`): the escape hatch for anything the
/// other sinks cannot reach (a pager CLI, a mail command, a ticket script).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSink {
    /// The program, as an absolute path (no `PATH` lookup, so what runs is what was configured).
    pub program: PathBuf,
    /// Its arguments; no shell is involved.
    #[serde(default)]
    pub args: Vec<String>,
    /// How long it may run before it is killed, as `"10s"` or `"1m"`.
    #[serde(
        default = "default_command_timeout",
        deserialize_with = "crate::duration::serde_text::deserialize"
    )]
    pub timeout: Duration,
}

fn default_webhook_timeout() -> Duration {
    DEFAULT_WEBHOOK_TIMEOUT
}

fn default_command_timeout() -> Duration {
    DEFAULT_COMMAND_TIMEOUT
}

/// A sink entry that parses but cannot work; the message names the entry so the operator can
/// find it in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entry}: {message}")]
pub struct AlertsConfigError {
    /// Which entry, as `[[alerts.webhook]] #1`.
    pub entry: String,
    /// What is wrong.
    pub message: String,
}

impl AlertsConfig {
    /// Checks what serde cannot: URL schemes, one syslog destination per entry, absolute
    /// program paths, sane timeouts and no sink configured twice (two entries with one name
    /// would share outbox rows).
    pub fn validate(&self) -> Result<(), AlertsConfigError> {
        let mut seen = std::collections::HashSet::new();
        let entries = self
            .webhook
            .iter()
            .enumerate()
            .map(|(i, w)| (format!("[[alerts.webhook]] #{}", i + 1), w.check()))
            .chain(
                self.syslog
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (format!("[[alerts.syslog]] #{}", i + 1), s.check())),
            )
            .chain(
                self.command
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (format!("[[alerts.command]] #{}", i + 1), c.check())),
            );
        for (entry, checked) in entries {
            let name = checked.map_err(|message| AlertsConfigError {
                entry: entry.clone(),
                message,
            })?;
            if !seen.insert(name.clone()) {
                return Err(AlertsConfigError {
                    entry,
                    message: format!("the sink {} is configured twice", sink_label(&name)),
                });
            }
        }
        Ok(())
    }

    /// True when no sink is configured, so that callers can say "alerts are only logged".
    pub fn is_empty(&self) -> bool {
        self.webhook.is_empty() && self.syslog.is_empty() && self.command.is_empty()
    }
}

fn check_timeout(timeout: Duration) -> Result<(), String> {
    if timeout.is_zero() || timeout > MAX_SINK_TIMEOUT {
        return Err(format!(
            "timeout must be between 1s and {}",
            crate::duration::format(MAX_SINK_TIMEOUT)
        ));
    }
    Ok(())
}

impl WebhookSink {
    /// Validates the entry and returns its stable sink name.
    fn check(&self) -> Result<String, String> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| format!("url {:?} is not a URL: {e}", self.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "url must start with http:// or https://, not {}://",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("url has no host".to_owned());
        }
        check_timeout(self.timeout)?;
        Ok(self.name())
    }

    /// The stable name that keys this sink's outbox rows.
    pub fn name(&self) -> String {
        format!("webhook:{}", self.url)
    }
}

impl SyslogSink {
    /// Validates the entry and returns its stable sink name.
    fn check(&self) -> Result<String, String> {
        match (&self.socket, &self.address) {
            (Some(socket), None) => {
                if !socket.is_absolute() {
                    return Err(format!(
                        "socket {} must be an absolute path",
                        socket.display()
                    ));
                }
            }
            (None, Some(address)) => {
                let (host, port) = address
                    .rsplit_once(':')
                    .ok_or_else(|| format!("address {address:?} must be host:port"))?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                if host.is_empty() || host.contains(char::is_whitespace) {
                    return Err(format!("address {address:?} has no usable host"));
                }
                if !matches!(port.parse::<u16>(), Ok(p) if p != 0) {
                    return Err(format!("address {address:?} has no valid port"));
                }
            }
            _ => return Err("give exactly one of socket or address".to_owned()),
        }
        Ok(self.name())
    }

    /// The stable name that keys this sink's outbox rows.
    pub fn name(&self) -> String {
        match (&self.socket, &self.address) {
            (Some(socket), _) => format!("syslog:{}", socket.display()),
            (None, Some(address)) => format!("syslog:{address}"),
            (None, None) => "syslog:".to_owned(),
        }
    }
}

impl CommandSink {
    /// Validates the entry and returns its stable sink name.
    fn check(&self) -> Result<String, String> {
        if !self.program.is_absolute() {
            return Err(format!(
                "program {} must be an absolute path",
                self.program.display()
            ));
        }
        check_timeout(self.timeout)?;
        Ok(self.name())
    }

    /// The stable name that keys this sink's outbox rows.
    pub fn name(&self) -> String {
        format!("command:{}", self.program.display())
    }
}

/// How a sink is shown in logs, reports and the audit log.
///
/// Webhook URLs often are the credential (a Slack incoming-webhook URL is a bearer token), so
/// beyond `scheme://host:port/` they are replaced by a fingerprint of the whole name: distinct
/// webhooks stay distinguishable without the secret landing in every log line.
pub fn sink_label(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let Some(url) = name.strip_prefix("webhook:") else {
        return name.to_owned();
    };
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return "webhook:(invalid url)".to_owned();
    };
    let plain = parsed.username().is_empty()
        && parsed.password().is_none()
        && parsed.query().is_none()
        && parsed.fragment().is_none()
        && parsed.path() == "/";
    if plain {
        return name.to_owned();
    }
    let digest = Sha256::digest(name.as_bytes());
    let fingerprint: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!(
        "webhook:{}://{}{}/…#{}",
        parsed.scheme(),
        parsed.host_str().unwrap_or(""),
        port,
        fingerprint
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AlertsConfig, String> {
        let config: AlertsConfig = toml::from_str::<toml::Table>(text)
            .map_err(|e| e.to_string())?
            .remove("alerts")
            .unwrap_or(toml::Value::Table(toml::Table::new()))
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn reads_the_documented_config() {
        let config = parse(
            r#"
            [[alerts.webhook]]
            url = "https://hooks.example.com/gatehouse"

            [[alerts.webhook]]
            url = "https://hooks.slack.com/services/T0/B0/xyz"
            format = "slack"
            timeout = "10s"

            [[alerts.syslog]]
            socket = "/dev/log"

            [[alerts.syslog]]
            address = "127.0.0.1:514"
            facility = "auth"

            [[alerts.command]]
            program = "/usr/local/bin/page-oncall"
            args = ["--team", "infra"]
            timeout = "1m"
            "#,
        )
        .unwrap();
        assert_eq!(config.webhook.len(), 2);
        assert_eq!(config.webhook[0].format, WebhookFormat::Json);
        assert_eq!(config.webhook[0].timeout, DEFAULT_WEBHOOK_TIMEOUT);
        assert_eq!(config.webhook[1].format, WebhookFormat::Slack);
        assert_eq!(config.webhook[1].timeout, Duration::from_secs(10));
        assert_eq!(config.syslog[0].facility, SyslogFacility::Authpriv);
        assert_eq!(config.syslog[1].facility, SyslogFacility::Auth);
        assert_eq!(config.command[0].args, vec!["--team", "infra"]);
        assert_eq!(config.command[0].timeout, Duration::from_secs(60));
        let names: Vec<String> = config
            .webhook
            .iter()
            .map(WebhookSink::name)
            .chain(config.syslog.iter().map(SyslogSink::name))
            .chain(config.command.iter().map(CommandSink::name))
            .collect();
        assert_eq!(
            names,
            vec![
                "webhook:https://hooks.example.com/gatehouse",
                "webhook:https://hooks.slack.com/services/T0/B0/xyz",
                "syslog:/dev/log",
                "syslog:127.0.0.1:514",
                "command:/usr/local/bin/page-oncall",
            ]
        );
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn refuses_sinks_that_cannot_work() {
        for (text, expected) in [
            (
                "[[alerts.webhook]]\nurl = \"ftp://x.example/\"",
                "[[alerts.webhook]] #1: url must start with http:// or https://",
            ),
            (
                "[[alerts.webhook]]\nurl = \"hooks.example.com\"",
                "is not a URL",
            ),
            (
                "[[alerts.webhook]]\nurl = \"https://x.example/\"\ntimeout = \"5\"",
                "invalid duration",
            ),
            (
                "[[alerts.webhook]]\nurl = \"https://x.example/\"\ntimeout = \"2h\"",
                "timeout must be between 1s and 10m",
            ),
            (
                "[[alerts.webhook]]\nurl = \"https://x.example/\"\nformat = \"teams\"",
                "unknown variant",
            ),
            (
                "[[alerts.webhook]]\nurl = \"https://x.example/\"\nsecret = \"x\"",
                "unknown field",
            ),
            ("[alerts]\npagerduty = []", "unknown field"),
            (
                "[[alerts.syslog]]\nsocket = \"/dev/log\"\naddress = \"127.0.0.1:514\"",
                "[[alerts.syslog]] #1: give exactly one of socket or address",
            ),
            ("[[alerts.syslog]]", "give exactly one of socket or address"),
            (
                "[[alerts.syslog]]\naddress = \"127.0.0.1\"",
                "must be host:port",
            ),
            (
                "[[alerts.syslog]]\naddress = \"127.0.0.1:0\"",
                "no valid port",
            ),
            (
                "[[alerts.syslog]]\nsocket = \"dev/log\"",
                "must be an absolute path",
            ),
            (
                "[[alerts.syslog]]\nsocket = \"/dev/log\"\nfacility = \"local0\"",
                "unknown variant",
            ),
            (
                "[[alerts.command]]\nprogram = \"page-oncall\"",
                "[[alerts.command]] #1: program page-oncall must be an absolute path",
            ),
            (
                "[[alerts.command]]\nprogram = \"/bin/a\"\n[[alerts.command]]\nprogram = \"/bin/a\"",
                "[[alerts.command]] #2: the sink command:/bin/a is configured twice",
            ),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn labels_hide_webhook_secrets_but_keep_sinks_apart() {
        let a = sink_label("webhook:https://hooks.slack.com/services/T0/B0/secret1");
        let b = sink_label("webhook:https://hooks.slack.com/services/T0/B0/secret2");
        assert!(a.starts_with("webhook:https://hooks.slack.com/…#"), "{a}");
        assert!(!a.contains("secret") && !a.contains("services"), "{a}");
        assert_ne!(a, b);
        assert!(!sink_label("webhook:https://u:pw@h.example/").contains("pw"));
        assert_eq!(
            sink_label("webhook:https://h.example:8443/"),
            "webhook:https://h.example:8443/"
        );
        assert_eq!(sink_label("syslog:/dev/log"), "syslog:/dev/log");
        assert_eq!(sink_label("command:/bin/page"), "command:/bin/page");
    }
}
