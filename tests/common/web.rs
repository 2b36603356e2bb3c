//! The web console of a test bastion, seen from outside: its `[http]` config, sign-in through a
//! real `ssh … web`, and HTTPS calls that trust exactly the certificate the bastion generated.

use std::time::Duration;

use super::{Gatehouse, Person, free_port, wait_for_port};

/// The `[http]` section of a bastion whose console listens on `port`, with the group
/// `audit` as reviewers.
pub fn http_config(port: u16) -> String {
    format!("[http]\nlisten = \"127.0.0.1:{port}\"\nreviewers = [\"audit\"]\n")
}

/// A free port for a console, and its `[http]` section.
pub fn console_config() -> (u16, String) {
    let port = free_port();
    (port, http_config(port))
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// The headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl Answer {
    /// The first header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

/// How a call authenticates.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// `Authorization: Bearer …`.
    pub token: Option<String>,
    /// The session cookie's value.
    pub cookie: Option<String>,
    /// `X-CSRF-Token`.
    pub csrf: Option<String>,
    /// `Origin`.
    pub origin: Option<String>,
}

/// The console of a running bastion.
pub struct Console {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Console {
    /// The console of `gatehouse` (started) on `port`, trusting only its generated certificate.
    pub fn new(gatehouse: &Gatehouse, port: u16) -> Console {
        wait_for_port(port, Duration::from_secs(20));
        let pem = std::fs::read(gatehouse.dir.join("data/keys/http.crt")).unwrap();
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Console {
            url: format!("https://127.0.0.1:{port}"),
            client,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    /// Sends `method path` with `auth` and an optional body (`Content-Type` given with it).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        auth: &Auth,
        body: Option<(&str, String)>,
    ) -> Answer {
        let mut request = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.url));
        if let Some(token) = &auth.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(cookie) = &auth.cookie {
            request = request.header("cookie", format!("__Host-gatehouse={cookie}"));
        }
        if let Some(csrf) = &auth.csrf {
            request = request.header("x-csrf-token", csrf);
        }
        if let Some(origin) = &auth.origin {
            request = request.header("origin", origin);
        }
        if let Some((kind, body)) = body {
            request = request.header("content-type", kind).body(body);
        }
        self.runtime.block_on(async {
            let response = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect();
            let body = response.text().await.unwrap_or_default();
            Answer {
                status,
                headers,
                body,
            }
        })
    }

    /// `GET path`.
    pub fn get(&self, path: &str, auth: &Auth) -> Answer {
        self.call("GET", path, auth, None)
    }

    /// `POST path` with a JSON body.
    pub fn post_json(&self, path: &str, auth: &Auth, body: serde_json::Value) -> Answer {
        self.call(
            "POST",
            path,
            auth,
            Some(("application/json", body.to_string())),
        )
    }

    /// `POST path` with a form.
    pub fn post_form(&self, path: &str, auth: &Auth, fields: &[(&str, &str)]) -> Answer {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.call(
            "POST",
            path,
            auth,
            Some(("application/x-www-form-urlencoded", body)),
        )
    }

    /// The one-time link `ssh … web` prints for `person`.
    pub fn link_for(gatehouse: &Gatehouse, person: &Person) -> String {
        let out = gatehouse.ssh(person, &["web"]);
        assert_eq!(out.code(), 0, "ssh web: {}", out.err());
        out.out()
            .lines()
            .find(|l| l.starts_with("https://"))
            .unwrap_or_else(|| panic!("no link in {:?}", out.out()))
            .to_owned()
    }

    /// Signs `person` in through a link from a real `ssh … web`, as a browser would: returns
    /// the session cookie and the session's anti-forgery value.
    pub fn sign_in(&self, gatehouse: &Gatehouse, person: &Person) -> Auth {
        let link = Console::link_for(gatehouse, person);
        let token = link.split("token=").nth(1).unwrap().to_owned();
        let answer = self.post_form("/login", &Auth::default(), &[("token", &token)]);
        assert_eq!(answer.status, 303, "sign-in: {}", answer.body);
        let cookie = answer
            .header("set-cookie")
            .and_then(|c| c.strip_prefix("__Host-gatehouse="))
            .and_then(|c| c.split(';').next())
            .expect("a session cookie")
            .to_owned();
        let mut auth = Auth {
            cookie: Some(cookie),
            ..Auth::default()
        };
        let page = self.get("/grants", &auth);
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = page
            .body
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the page carries the anti-forgery value")
            .to_owned();
        auth.csrf = Some(csrf);
        auth
    }
}

/// Percent-encodes a form value.
pub fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
