//! The syslog sink: one RFC 5424 message per alert, to a local datagram socket or a UDP address.
//!
//! The message is `<PRI>1 TIMESTAMP HOSTNAME gatehouse PROCID MSGID [SD] MSG`, with the key
//! fields as structured data (so that receivers can filter without parsing JSON) and the whole
//! alert as JSON in MSG. User text cannot forge a second line or close the structured data early:
//! control characters are replaced and `"`, `\` and `]` escaped.

use std::path::PathBuf;

use chrono::SecondsFormat;
use tokio::net::{UdpSocket, UnixDatagram};

use super::{Alert, SYSLOG_TIMEOUT, SyslogFacility, SyslogSink};

/// The private enterprise number in the structured-data id. 32473 is the one RFC 5612 reserves
/// for documentation and examples, which is what Gatehouse uses until it registers its own.
pub(super) const SD_ID: &str = "gatehouse@32473";

/// The longest message sent. rsyslog's default limit is 8 KiB; the structured data comes
/// before MSG, so a truncated message keeps the fields that matter.
const MAX_MESSAGE: usize = 8192;

/// Where messages go.
enum Destination {
    Socket(PathBuf),
    Address(String),
}

/// One configured syslog receiver.
pub(super) struct Syslog {
    destination: Destination,
    facility: SyslogFacility,
    hostname: String,
}

impl Syslog {
    pub(super) fn new(config: &SyslogSink, hostname: String) -> Syslog {
        let destination = match (&config.socket, &config.address) {
            (Some(socket), _) => Destination::Socket(socket.clone()),
            (None, address) => Destination::Address(address.clone().unwrap_or_default()),
        };
        Syslog {
            destination,
            facility: config.facility,
            hostname,
        }
    }

    /// Sends the message. A datagram has no acknowledgement: handing it to the socket is the
    /// delivery, and a socket nobody listens on (or a host that cannot be resolved) a failure.
    pub(super) async fn deliver(&self, alert: &Alert, payload: &str) -> Result<(), String> {
        let message = format_message(
            alert,
            payload,
            self.facility,
            &self.hostname,
            std::process::id(),
        );
        let send = async {
            match &self.destination {
                Destination::Socket(path) => {
                    let socket = UnixDatagram::unbound().map_err(|e| e.to_string())?;
                    socket
                        .send_to(message.as_bytes(), path)
                        .await
                        .map_err(|e| format!("{}: {e}", path.display()))
                }
                Destination::Address(address) => {
                    let to = tokio::net::lookup_host(address.as_str())
                        .await
                        .map_err(|e| format!("{address}: {e}"))?
                        .next()
                        .ok_or_else(|| format!("{address}: no address"))?;
                    let local = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
                    let socket = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
                    socket
                        .send_to(message.as_bytes(), to)
                        .await
                        .map_err(|e| format!("{to}: {e}"))
                }
            }
        };
        let sent = tokio::time::timeout(SYSLOG_TIMEOUT, send)
            .await
            .map_err(|_| {
                format!(
                    "the receiver took nothing within {}",
                    crate::duration::format(SYSLOG_TIMEOUT)
                )
            })??;
        if sent != message.len() {
            return Err(format!("sent {sent} of {} bytes", message.len()));
        }
        Ok(())
    }
}

/// This machine's name for the HOSTNAME field, or `-` (the RFC's "unknown") when it has none
/// that fits the field (printable ASCII without spaces, at most 255 characters).
pub(super) fn hostname() -> String {
    crate::config::cluster::host_name().unwrap_or_else(|| "-".to_owned())
}

/// The RFC 5424 message for `alert`, whose JSON is `payload`.
pub(super) fn format_message(
    alert: &Alert,
    payload: &str,
    facility: SyslogFacility,
    hostname: &str,
    pid: u32,
) -> String {
    let pri = u16::from(facility.code()) * 8 + u16::from(alert.severity.syslog_code());
    let timestamp = alert.time.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut sd = format!("[{SD_ID}");
    let mut param = |name: &str, value: &str| {
        sd.push_str(&format!(" {name}=\"{}\"", sd_escape(value)));
    };
    param("id", &alert.id.to_string());
    param("event", alert.event.name());
    param("severity", alert.severity.name());
    let fields = [
        ("user", alert.user.clone()),
        ("actor", alert.actor.clone()),
        ("target", alert.target.clone()),
        ("role", alert.role.clone()),
        ("grant", alert.grant_id.map(|g| g.to_string())),
        ("session", alert.session_id.clone()),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            param(name, &value);
        }
    }
    sd.push(']');
    let mut message = format!(
        "<{pri}>1 {timestamp} {hostname} gatehouse {pid} {msgid} {sd} ",
        msgid = alert.event.name()
    );
    // serde_json already escapes C0 controls inside strings; this catches DEL, C1 controls
    // and Unicode line separators, which it leaves as they are.
    message.push_str(&scrub(payload));
    if message.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    message
}

/// A structured-data parameter value: escapes `"`, `\` and `]` (RFC 5424 §6.3.3) after
/// replacing control characters.
fn sd_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in scrub(value).chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Replaces every character that could end or fake a log line (control characters, Unicode
/// line and paragraph separators) with U+FFFD.
fn scrub(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::testkit::{self, Harness};
    use crate::alerts::{AlertEvent, AlertsConfig, Observation};
    use chrono::{DateTime, Utc};
    use std::time::Duration;

    /// The typical alert, at a fixed time so that whole messages can be compared.
    fn alert() -> Alert {
        Alert {
            time: DateTime::parse_from_rfc3339("2025-03-01T12:34:56.789Z")
                .unwrap()
                .with_timezone(&Utc),
            ..testkit::alert(AlertEvent::BreakglassActivated)
        }
    }

    #[test]
    fn message_follows_rfc_5424() {
        let a = alert();
        let payload = a.to_json();
        let m = format_message(&a, &payload, SyslogFacility::Auth, "bastion-1", 4242);
        // auth (4) × 8 + crit (2) = 34
        let expected_head = format!(
            "<34>1 2025-03-01T12:34:56.789Z bastion-1 gatehouse 4242 breakglass.activated \
             [gatehouse@32473 id=\"{}\" event=\"breakglass.activated\" severity=\"critical\" \
             user=\"alice\" target=\"web-01\" role=\"emergency\" grant=\"17\"] ",
            a.id
        );
        assert_eq!(m, format!("{expected_head}{payload}"));
        let info = Alert::new(AlertEvent::GrantRequested);
        let m = format_message(&info, "{}", SyslogFacility::Authpriv, "h", 1);
        // authpriv (10) × 8 + informational (6) = 86
        assert!(m.starts_with("<86>1 "), "{m}");
    }

    #[test]
    fn user_text_cannot_break_out_of_the_structured_data_or_the_line() {
        let a = Alert {
            user: Some("mallory\"] [evil@1 x=\"y".into()),
            target: Some("back\\slash".into()),
            reason: Some("line\nforged <34>1 line\u{2028}x\u{85}y".into()),
            ..alert()
        };
        let m = format_message(&a, &a.to_json(), SyslogFacility::Auth, "h", 1);
        assert!(m.contains(r#"user="mallory\"\] [evil@1 x=\"y""#), "{m}");
        assert!(m.contains(r#"target="back\\slash""#), "{m}");
        assert!(
            !m.chars().any(|c| c.is_control() || c == '\u{2028}'),
            "{m:?}"
        );
        assert_eq!(m.lines().count(), 1);
        // MSG is still the JSON alert.
        let msg = &m[m.find("] {").unwrap() + 2..];
        let back: serde_json::Value = serde_json::from_str(msg).unwrap();
        assert_eq!(back["id"], a.id.to_string());
    }

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        let a = Alert {
            reason: Some("é".repeat(10_000)),
            ..alert()
        };
        let m = format_message(&a, &a.to_json(), SyslogFacility::Auth, "h", 1);
        assert!(m.len() <= MAX_MESSAGE);
        assert!(m.contains("grant=\"17\"]"));
    }

    #[test]
    fn hostname_fits_the_field() {
        let h = hostname();
        assert!(!h.is_empty() && !h.contains(' '));
    }

    fn syslog_config(socket: Option<PathBuf>, address: Option<String>) -> AlertsConfig {
        AlertsConfig {
            syslog: vec![SyslogSink {
                socket,
                address,
                facility: SyslogFacility::Auth,
            }],
            ..AlertsConfig::default()
        }
    }

    #[tokio::test]
    async fn delivers_over_udp() {
        let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = receiver.local_addr().unwrap().to_string();
        let h = Harness::new(&syslog_config(None, Some(address.clone()))).await;
        let _loop = h.alerts.spawn_dispatcher();
        let a = Alert {
            reason: Some("a \"quoted\" ] reason".into()),
            ..testkit::alert(AlertEvent::SessionDenied)
        };
        h.alerts.enqueue(&a).await.unwrap();
        let mut buf = vec![0u8; 65536];
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), receiver.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let line = std::str::from_utf8(&buf[..n]).unwrap();
        // auth (4) × 8 + warning (4) = 36
        assert!(line.starts_with("<36>1 "), "{line}");
        assert!(
            line.contains(&format!(
                " gatehouse {} session.denied [gatehouse@32473 ",
                std::process::id()
            )),
            "{line}"
        );
        assert!(line.contains(r#"user="alice""#), "{line}");
        assert!(line.ends_with(&a.to_json()), "{line}");
        h.wait_delivered(a.id, 1).await;
        assert_eq!(
            h.observer.observations(),
            vec![Observation::Delivered {
                alert_id: a.id,
                sink: format!("syslog:{address}"),
            }]
        );
    }

    #[tokio::test]
    async fn delivers_to_a_unix_datagram_socket_once_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let h = Harness::new(&syslog_config(Some(path.clone()), None)).await;
        let _loop = h.alerts.spawn_dispatcher();
        let a = Alert {
            target: Some("db]\\01".into()),
            ..testkit::alert(AlertEvent::GrantRevoked)
        };
        h.alerts.enqueue(&a).await.unwrap();
        // Nobody listens yet: the attempt fails and is retried.
        h.wait_failures(1).await;
        let receiver = UnixDatagram::bind(&path).unwrap();
        let mut buf = vec![0u8; 65536];
        let n = tokio::time::timeout(Duration::from_secs(5), receiver.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let line = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(line.starts_with("<36>1 "), "{line}");
        assert!(line.contains(r#"target="db\]\\01""#), "{line}");
        assert!(line.contains(" grant.revoked [gatehouse@32473 "), "{line}");
        h.wait_delivered(a.id, 1).await;
    }
}
