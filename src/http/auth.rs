//! Authenticating a request: an API token (`Authorization: Bearer …`) or a browser session
//! cookie, and for a browser, proof against cross-site request forgery on every change.
//!
//! Fail closed: a store that cannot answer is a 503, never a pass. A browser's change must
//! come from this origin (the `Origin` and `Sec-Fetch-Site` headers, when the browser sends
//! them) and carry the session's anti-forgery value, from a form field or the
//! `X-CSRF-Token` header; the cookie alone never suffices. Token calls carry no ambient
//! credential, so they need no such proof.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};

use super::Web;
use super::caller::{Caller, Via};
use super::error::ApiError;
use crate::credentials::Secret;
use crate::grants;

/// The session cookie. `__Host-` makes browsers refuse it unless it is Secure, has no Domain
/// and has Path `/`, so no other host or path can set or shadow it.
pub const COOKIE: &str = "__Host-gatehouse";

/// The header a script sends the anti-forgery value in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How a request proves it is not forged, if it must.
#[derive(Debug, Clone, Copy)]
pub enum CsrfProof<'a> {
    /// A safe method (GET, HEAD): it changes nothing.
    NotNeeded,
    /// A change through the API: the `X-CSRF-Token` header.
    Header,
    /// A change through a page's form: its `csrf` field.
    Form(&'a str),
}

impl FromRequestParts<Web> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Caller, ApiError> {
        let proof = if matches!(parts.method, Method::GET | Method::HEAD) {
            CsrfProof::NotNeeded
        } else {
            CsrfProof::Header
        };
        authenticate(parts, web, proof).await
    }
}

/// Who sent the request described by `parts`, checked against `proof` for a browser's change.
pub async fn authenticate(
    parts: &Parts,
    web: &Web,
    proof: CsrfProof<'_>,
) -> Result<Caller, ApiError> {
    let now = grants::now();
    let bastion = &web.bastion;
    let policy = bastion.policy();
    let reviewers = &bastion.config.http.reviewers;
    if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
        let secret = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthenticated("Authorization must be `Bearer TOKEN`"))?;
        let token = bastion
            .store
            .token_by_hash(&Secret::hash(secret), now)
            .await
            .map_err(ApiError::store)?
            .ok_or_else(|| ApiError::unauthenticated("the token is unknown, revoked or expired"))?;
        let user = policy.user(&token.user).cloned().ok_or_else(|| {
            ApiError::unauthenticated("the token's user is no longer in the policy")
        })?;
        let via = Via::Token {
            id: token.id,
            scope: token.scope,
        };
        return Ok(Caller::new(user, policy, via, reviewers));
    }
    let secret = cookie(&parts.headers, COOKIE).ok_or_else(|| {
        ApiError::unauthenticated("not signed in: run `ssh bastion web` for a sign-in link")
    })?;
    let hash = Secret::hash(secret);
    let session = bastion
        .store
        .web_session(&hash, now, bastion.config.http.session_idle)
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| {
            ApiError::unauthenticated(
                "your session has ended: run `ssh bastion web` to sign in again",
            )
        })?;
    match proof {
        CsrfProof::NotNeeded => {}
        CsrfProof::Header => {
            same_origin(&parts.headers, &bastion.config.http.public_url)?;
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            check_csrf(sent, &session.csrf)?;
        }
        CsrfProof::Form(sent) => {
            same_origin(&parts.headers, &bastion.config.http.public_url)?;
            check_csrf(sent, &session.csrf)?;
        }
    }
    let user = policy
        .user(&session.user)
        .cloned()
        .ok_or_else(|| ApiError::unauthenticated("your account is no longer in the policy"))?;
    let via = Via::Browser {
        session: hash,
        csrf: session.csrf,
    };
    Ok(Caller::new(user, policy, via, reviewers))
}

/// `Ok` unless the browser says the request comes from another site.
///
/// Under the console's `Referrer-Policy: no-referrer`, browsers send `Origin: null` with every
/// form post and script `POST`, even to the page's own origin (the Fetch standard serialises
/// the origin as `null` under that policy). `null` is accepted only when the browser's own
/// `Sec-Fetch-Site` header, which no page can set, says the request comes from this origin;
/// a `null` from anywhere else (a sandboxed frame, a `data:` page) is refused.
pub fn same_origin(headers: &HeaderMap, public_url: &str) -> Result<(), ApiError> {
    let fetch_site = headers
        .get("sec-fetch-site")
        .map(|v| v.to_str().unwrap_or(""));
    let site = fetch_site.unwrap_or("same-origin");
    if !matches!(site, "same-origin" | "none") {
        return Err(ApiError::forbidden(format!(
            "a change from another site ({site}) is refused"
        )));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let vouched = origin == "null" && fetch_site == Some("same-origin");
        if origin != origin_of(public_url) && !vouched {
            return Err(ApiError::forbidden(format!(
                "a change from origin {:?} is refused; the console is at {}",
                origin.chars().take(100).collect::<String>(),
                origin_of(public_url)
            )));
        }
    }
    Ok(())
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// Compares the anti-forgery value sent with the session's, in constant time.
fn check_csrf(sent: &str, expected: &str) -> Result<(), ApiError> {
    let (a, b) = (sent.as_bytes(), expected.as_bytes());
    let differs = a.len() != b.len()
        || a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) != 0
        || b.is_empty();
    if differs {
        Err(ApiError::forbidden(
            "the request's anti-forgery token is missing or wrong; reload the page",
        ))
    } else {
        Ok(())
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// The `Set-Cookie` value of a new session, living at most `max_age`.
pub fn session_cookie(secret: &str, max_age: std::time::Duration) -> String {
    format!(
        "{COOKIE}={secret}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
        max_age.as_secs()
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn cleared_cookie() -> String {
    format!("{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn finds_the_cookie_among_others() {
        let h = headers(&[
            ("cookie", "a=1; __Host-gatehouse=abc ; b=2"),
            ("cookie", "c=3"),
        ]);
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), Some("3"));
        assert_eq!(cookie(&h, "d"), None);
        assert_eq!(
            cookie(&headers(&[("cookie", "__Host-gatehouse=")]), COOKIE),
            None
        );
    }

    #[test]
    fn refuses_other_sites_and_origins() {
        let url = "https://bastion.example:8443";
        assert!(same_origin(&headers(&[]), url).is_ok());
        assert!(same_origin(&headers(&[("origin", "https://bastion.example:8443")]), url).is_ok());
        assert!(same_origin(&headers(&[("origin", "https://evil.example")]), url).is_err());
        assert!(same_origin(&headers(&[("origin", "null")]), url).is_err());
        // A browser's same-origin post under `Referrer-Policy: no-referrer`.
        let own_null = [("origin", "null"), ("sec-fetch-site", "same-origin")];
        assert!(same_origin(&headers(&own_null), url).is_ok());
        for site in ["none", "cross-site", "same-site"] {
            let other_null = [("origin", "null"), ("sec-fetch-site", site)];
            assert!(same_origin(&headers(&other_null), url).is_err(), "{site}");
        }
        assert!(same_origin(&headers(&[("sec-fetch-site", "cross-site")]), url).is_err());
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-site")]), url).is_err());
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")]), url).is_ok());
        assert_eq!(origin_of("https://a.example/x/y"), "https://a.example");
    }

    #[test]
    fn csrf_must_match_exactly() {
        assert!(check_csrf("abc", "abc").is_ok());
        assert!(check_csrf("abd", "abc").is_err());
        assert!(check_csrf("ab", "abc").is_err());
        assert!(check_csrf("", "").is_err());
    }

    #[test]
    fn the_cookie_is_locked_down() {
        let c = session_cookie("s3cret", std::time::Duration::from_secs(3600));
        for part in [
            "__Host-gatehouse=s3cret",
            "Path=/",
            "Secure",
            "HttpOnly",
            "SameSite=Strict",
            "Max-Age=3600",
        ] {
            assert!(c.contains(part), "{c}");
        }
        assert!(cleared_cookie().contains("Max-Age=0"));
    }
}
