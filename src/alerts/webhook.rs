//! The webhook sink: an HTTP POST of the alert, as JSON or as a Slack-style message.

use std::error::Error as _;
use std::time::Duration;

use reqwest::header::CONTENT_TYPE;

use super::{Alert, WebhookFormat, WebhookSink};

/// How much of a refusing receiver's body goes into the error: enough for its explanation.
const MAX_BODY_IN_ERROR: usize = 512;

/// The HTTP client all webhooks share: rustls with the system's trust roots, a `User-Agent`
/// that tells receivers who calls, and no redirects (a redirected POST would go somewhere the
/// operator did not configure; a 3xx is reported as a failure instead).
pub(super) fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| error_text(&e))
}

/// One configured webhook.
pub(super) struct Webhook {
    url: String,
    format: WebhookFormat,
    timeout: Duration,
    client: reqwest::Client,
}

impl Webhook {
    pub(super) fn new(config: &WebhookSink, client: reqwest::Client) -> Webhook {
        Webhook {
            url: config.url.clone(),
            format: config.format,
            timeout: config.timeout,
            client,
        }
    }

    /// POSTs the alert; a 2xx answer is a delivery, anything else a failure that names the
    /// status. Errors never contain the URL, which may be a secret.
    pub(super) async fn deliver(&self, alert: &Alert, payload: &str) -> Result<(), String> {
        let body = match self.format {
            WebhookFormat::Json => payload.to_owned(),
            WebhookFormat::Slack => serde_json::json!({ "text": slack_text(alert) }).to_string(),
        };
        let response = self
            .client
            .post(&self.url)
            .timeout(self.timeout)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    format!("no answer within {}", crate::duration::format(self.timeout))
                } else {
                    error_text(&e.without_url())
                }
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let said = body_start(response).await;
        if said.is_empty() {
            Err(format!("HTTP {status}"))
        } else {
            Err(format!("HTTP {status}: {said}"))
        }
    }
}

/// The start of a response body, as one printable line.
async fn body_start(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < MAX_BODY_IN_ERROR {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(MAX_BODY_IN_ERROR);
    String::from_utf8_lossy(&body)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// An error with its causes ("error sending request: connection refused"), since reqwest's own
/// message alone rarely says what went wrong.
fn error_text(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The Slack message: `*breakglass.activated* alice on web-01 (role emergency, grant 17):
/// primary down`. Parts that are unknown are left out.
pub(super) fn slack_text(alert: &Alert) -> String {
    let mut text = format!("*{}*", alert.event.name());
    if let Some(user) = &alert.user {
        text.push(' ');
        text.push_str(&slack_escape(user));
    }
    if let Some(target) = &alert.target {
        text.push_str(" on ");
        text.push_str(&slack_escape(target));
    }
    let mut details = Vec::new();
    if let Some(role) = &alert.role {
        details.push(format!("role {}", slack_escape(role)));
    }
    if let Some(grant) = alert.grant_id {
        details.push(format!("grant {grant}"));
    }
    if let Some(session) = &alert.session_id {
        details.push(format!("session {}", slack_escape(session)));
    }
    if !details.is_empty() {
        text.push_str(&format!(" ({})", details.join(", ")));
    }
    if let Some(actor) = &alert.actor {
        text.push_str(" by ");
        text.push_str(&slack_escape(actor));
    }
    if let Some(reason) = &alert.reason {
        text.push_str(": ");
        text.push_str(&slack_escape(reason));
    }
    text
}

/// Slack's escaping: `&`, `<` and `>` become entities, so user text cannot turn into links or
/// `<!channel>` mentions. Control characters become spaces so a reason cannot fake extra lines.
fn slack_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{AlertEvent, testkit};

    fn alert() -> Alert {
        testkit::alert(AlertEvent::BreakglassActivated)
    }

    #[test]
    fn slack_text_reads_like_a_sentence() {
        assert_eq!(
            slack_text(&alert()),
            "*breakglass.activated* alice on web-01 (role emergency, grant 17): primary down"
        );
        let approved = Alert {
            actor: Some("bob".into()),
            reason: None,
            ..Alert::new(AlertEvent::GrantApproved)
        };
        assert_eq!(slack_text(&approved), "*grant.approved* by bob");
    }

    #[test]
    fn slack_text_escapes_what_slack_would_interpret() {
        let a = Alert {
            user: Some("<@U123>".into()),
            reason: Some("a & b <!channel>\nfake line".into()),
            ..alert()
        };
        let text = slack_text(&a);
        assert!(text.contains("&lt;@U123&gt;"), "{text}");
        assert!(
            text.ends_with(": a &amp; b &lt;!channel&gt; fake line"),
            "{text}"
        );
        assert!(!text.contains('<') && !text.contains('\n'));
    }

    #[test]
    fn the_client_builds_with_rustls() {
        client().unwrap();
    }
}
