//! `[http]`: the web console, the HTTP API and the operations endpoints.
//!
//! Off unless `listen` is set. TLS is the default, from a certificate and key in the config or
//! one Gatehouse generates; plain HTTP is accepted only on a loopback address, where a reverse
//! proxy in front of it terminates TLS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::duration;

/// The HTTP side (`[http]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Where it listens; `None` keeps it off.
    pub listen: Option<SocketAddr>,
    /// The certificate and key it serves; `None` only for plain HTTP on loopback.
    pub tls: Option<TlsFiles>,
    /// The address people reach the console at (behind a load balancer or proxy, its
    /// address); sign-in links and alert links start with it.
    pub public_url: String,
    /// Groups whose members may view every recording and the audit log.
    pub reviewers: Vec<String>,
    /// A browser session unused for this long is signed out.
    pub session_idle: Duration,
    /// A browser session ends this long after sign-in, used or not.
    pub session_max: Duration,
}

/// A PEM certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// The private key (PEM, PKCS#8 or SEC1 or PKCS#1).
    pub key: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    listen: Option<String>,
    tls: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    public_url: Option<String>,
    #[serde(default)]
    reviewers: Vec<String>,
    session_idle: Option<String>,
    session_max: Option<String>,
}

/// Checks `[http]` and fills in its defaults; relative paths are taken from `base`, and the
/// generated certificate lives in `data_dir/keys`.
pub(super) fn resolve(raw: RawHttp, base: &Path, data_dir: &Path) -> Result<HttpConfig, String> {
    let listen =
        match raw.listen.as_deref() {
            None | Some("") => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
                format!("http.listen: {text:?} is not an address like 127.0.0.1:8443")
            })?),
        };
    let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
    let tls = match (raw.tls.unwrap_or(true), raw.tls_cert, raw.tls_key) {
        (false, None, None) => None,
        (false, _, _) => {
            return Err("http.tls = false cannot be combined with tls_cert or tls_key".into());
        }
        (true, Some(cert), Some(key)) => Some(TlsFiles {
            cert: resolve(cert),
            key: resolve(key),
        }),
        (true, None, None) => Some(TlsFiles {
            cert: data_dir.join("keys/http.crt"),
            key: data_dir.join("keys/http.key"),
        }),
        (true, _, _) => return Err("http.tls_cert and http.tls_key go together".into()),
    };
    if let Some(addr) = listen
        && tls.is_none()
        && !addr.ip().is_loopback()
    {
        return Err(format!(
            "http.listen: plain HTTP (tls = false) is only allowed on a loopback address, \
             behind a reverse proxy that terminates TLS; {addr} is not one"
        ));
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    let public_url = match raw.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => match listen {
            Some(addr) => format!("{scheme}://{addr}"),
            None => String::new(),
        },
    };
    if listen.is_some() && !valid_public_url(&public_url) {
        return Err(format!(
            "http.public_url: {public_url:?} must be an http:// or https:// address with a \
             host and no query"
        ));
    }
    for group in &raw.reviewers {
        if group.trim().is_empty() {
            return Err("http.reviewers: a group name is empty".into());
        }
    }
    let dur = |key: &str, value: Option<String>, default: &str| {
        duration::parse(value.as_deref().unwrap_or(default)).map_err(|e| format!("http.{key}: {e}"))
    };
    let session_idle = dur("session_idle", raw.session_idle, "30m")?;
    let session_max = dur("session_max", raw.session_max, "12h")?;
    if session_idle < Duration::from_secs(60) || session_idle > session_max {
        return Err("http.session_idle: must be at least 1m and at most session_max".into());
    }
    if session_max > Duration::from_secs(7 * 24 * 3600) {
        return Err("http.session_max: must be at most 7d".into());
    }
    Ok(HttpConfig {
        listen,
        tls,
        public_url,
        reviewers: raw.reviewers,
        session_idle,
        session_max,
    })
}

/// `http://` or `https://`, a host, no query or fragment, no spaces.
fn valid_public_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|rest| {
        !rest.is_empty()
            && !rest.starts_with('/')
            && !rest.contains(['?', '#', ' ', '"', '<', '>', '\\'])
            && rest.chars().all(|c| c.is_ascii_graphic())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HttpConfig, String> {
        let raw: RawHttp = toml::from_str(text).map_err(|e| e.to_string())?;
        resolve(raw, Path::new("/etc/gh"), Path::new("/var/gh"))
    }

    #[test]
    fn off_unless_listen_is_set() {
        let c = parse("").unwrap();
        assert_eq!(c.listen, None);
        assert_eq!(c.session_idle, Duration::from_secs(1800));
        assert_eq!(c.session_max, Duration::from_secs(12 * 3600));
    }

    #[test]
    fn tls_defaults_to_a_generated_certificate() {
        let c = parse("listen = \"0.0.0.0:8443\"").unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.cert, Path::new("/var/gh/keys/http.crt"));
        assert_eq!(tls.key, Path::new("/var/gh/keys/http.key"));
        assert_eq!(c.public_url, "https://0.0.0.0:8443");
    }

    #[test]
    fn configured_files_are_relative_to_the_config() {
        let c = parse("listen = \"127.0.0.1:1\"\ntls_cert = \"a.crt\"\ntls_key = \"/k/a.key\"")
            .unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.cert, Path::new("/etc/gh/a.crt"));
        assert_eq!(tls.key, Path::new("/k/a.key"));
    }

    #[test]
    fn plain_http_only_on_loopback() {
        let c = parse("listen = \"127.0.0.1:8080\"\ntls = false").unwrap();
        assert!(c.tls.is_none());
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
        assert!(parse("listen = \"[::1]:8080\"\ntls = false").is_ok());
        let e = parse("listen = \"0.0.0.0:8080\"\ntls = false").unwrap_err();
        assert!(e.contains("only allowed on a loopback"), "{e}");
        let e = parse("listen = \"10.0.0.1:8080\"\ntls = false").unwrap_err();
        assert!(e.contains("loopback"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        for (text, needle) in [
            ("listen = \"nope\"", "http.listen"),
            ("listen = \"127.0.0.1:1\"\ntls_cert = \"a\"", "go together"),
            ("tls = false\ntls_key = \"a\"", "cannot be combined"),
            (
                "listen = \"127.0.0.1:1\"\npublic_url = \"ftp://x\"",
                "http.public_url",
            ),
            (
                "listen = \"127.0.0.1:1\"\npublic_url = \"https://x/?a=<b>\"",
                "http.public_url",
            ),
            ("session_idle = \"10s\"", "http.session_idle"),
            ("session_max = \"30d\"", "http.session_max"),
            ("reviewers = [\" \"]", "http.reviewers"),
            ("bogus = 1", "unknown field"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn public_url_loses_its_trailing_slash() {
        let c =
            parse("listen = \"127.0.0.1:1\"\npublic_url = \"https://bastion.example/\"").unwrap();
        assert_eq!(c.public_url, "https://bastion.example");
    }
}
