//! The credentials of the web console and the HTTP API, as values: one-time sign-in links,
//! browser sessions and API tokens, and the secrets behind them.
//!
//! A secret is shown once (printed, put in a cookie or a link) and never stored: the store
//! keeps only its SHA-256, so a copy of the database signs no one in. Every secret is 32 random
//! bytes, written as 64 lowercase hex digits (safe in URLs, cookies and headers as is).
//!
//! What the store does with these lives in [`crate::store::web`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::grants::Timestamp;

/// The random bytes in every secret.
pub const SECRET_BYTES: usize = 32;

/// How a secret is made and recognised.
pub struct Secret;

impl Secret {
    /// A new secret: `(plaintext, sha256hex)`. The plaintext is given to its holder once; the
    /// hash is what the store keeps.
    pub fn generate() -> (String, String) {
        let bytes: [u8; SECRET_BYTES] = rand::random();
        let plaintext = hex(&bytes);
        let hash = Secret::hash(&plaintext);
        (plaintext, hash)
    }

    /// The SHA-256 (lowercase hex) of a presented secret, to look it up in the store. Any text
    /// may be hashed: one that was never issued simply matches nothing.
    pub fn hash(plaintext: &str) -> String {
        hex(&Sha256::digest(plaintext.as_bytes()))
    }
}

/// Bytes as lowercase hex.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}

/// `now` plus `span`, saturating, for expiries computed from a lifetime.
pub fn after(now: Timestamp, span: Duration) -> Timestamp {
    now.saturating_add(i64::try_from(span.as_secs()).unwrap_or(i64::MAX))
}

/// What following a one-time sign-in link came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutcome {
    /// The link was valid and is now spent: `user` signs in.
    SignedIn {
        /// The user the link was issued to.
        user: String,
    },
    /// The link was followed before (by this browser or another); it signs no one in again.
    AlreadyUsed,
    /// The link was never followed but its time ran out.
    Expired,
    /// No such link was ever issued.
    Unknown,
}

/// A browser session to create: the cookie's hash, and what the server needs back on each
/// request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebSession {
    /// SHA-256 (hex) of the cookie's secret.
    pub hash: String,
    /// The user signed in.
    pub user: String,
    /// How they signed in (`ssh-link`, later `oidc`), for the audit trail and the console.
    pub method: String,
    /// The session's anti-forgery value (see [`WebSession::csrf`]).
    pub csrf: String,
    /// When it starts; it counts as seen then.
    pub created_at: Timestamp,
    /// When it ends however active it is (`created_at` plus the maximum age).
    pub expires_at: Timestamp,
}

impl NewWebSession {
    /// A new session for `user`, signed in by `method` at `now`, for at most `max_age`: the
    /// cookie's plaintext secret (to set once in the browser) and the session to store.
    pub fn generate(
        user: &str,
        method: &str,
        now: Timestamp,
        max_age: Duration,
    ) -> (String, NewWebSession) {
        let (cookie, hash) = Secret::generate();
        let (csrf, _) = Secret::generate();
        let session = NewWebSession {
            hash,
            user: user.to_owned(),
            method: method.to_owned(),
            csrf,
            created_at: now,
            expires_at: after(now, max_age),
        };
        (cookie, session)
    }
}

/// A live browser session, as found by its cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    /// The user signed in.
    pub user: String,
    /// How they signed in.
    pub method: String,
    /// The value the server embeds in its forms and requires back with every state-changing
    /// request. It is random, stored as is, and never part of the cookie: a page of another
    /// site can make the browser send the cookie but cannot read this value.
    pub csrf: String,
    /// When the session started.
    pub created_at: Timestamp,
    /// The request that found it (this one).
    pub last_seen: Timestamp,
    /// When it ends however active it is.
    pub expires_at: Timestamp,
}

/// What an API token may do. Scopes are not ranked: each says which kind of change, beyond
/// reading, the token may make on behalf of its user, and the user's own rights in the policy
/// still bound every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    /// See what the user may see (grants, sessions, recordings, the review queue); change
    /// nothing.
    Read,
    /// `read`, and acknowledge break-glass reviews.
    Review,
    /// `read`, and approve or deny requests and revoke grants.
    Approve,
}

impl TokenScope {
    /// Every scope, in the order they are listed to people.
    pub const ALL: [TokenScope; 3] = [TokenScope::Read, TokenScope::Review, TokenScope::Approve];

    /// The stored and written name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Review => "review",
            TokenScope::Approve => "approve",
        }
    }

    /// Whether the token may acknowledge break-glass reviews.
    pub fn may_review(self) -> bool {
        self == TokenScope::Review
    }

    /// Whether the token may approve or deny requests and revoke grants.
    pub fn may_approve(self) -> bool {
        self == TokenScope::Approve
    }
}

impl fmt::Display for TokenScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scope name that is not one of `read`, `review`, `approve`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown token scope {0:?} (use read, review or approve)")]
pub struct ScopeError(pub String);

impl FromStr for TokenScope {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<TokenScope, ScopeError> {
        TokenScope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| ScopeError(s.chars().take(40).collect()))
    }
}

/// An API token to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// The public id (`tok_` and 8 hex digits), by which it is listed and revoked.
    pub id: String,
    /// SHA-256 (hex) of the secret the caller presents.
    pub hash: String,
    /// The user it acts for.
    pub user: String,
    /// What it may do.
    pub scope: TokenScope,
    /// Who created it (an operator as the audit log names them).
    pub created_by: String,
    /// When.
    pub created_at: Timestamp,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
}

impl NewToken {
    /// A new token with a fresh id and secret: the plaintext secret (to show once) and the
    /// token to store.
    pub fn generate(
        user: &str,
        scope: TokenScope,
        created_by: &str,
        now: Timestamp,
        lifetime: Option<Duration>,
    ) -> (String, NewToken) {
        let (secret, hash) = Secret::generate();
        let token = NewToken {
            id: token_id(),
            hash,
            user: user.to_owned(),
            scope,
            created_by: created_by.to_owned(),
            created_at: now,
            expires_at: lifetime.map(|span| after(now, span)),
        };
        (secret, token)
    }
}

/// A fresh public token id: `tok_` and 8 random hex digits. Short enough to type; a collision
/// is refused by the store and the caller draws again.
pub fn token_id() -> String {
    let bytes: [u8; 4] = rand::random();
    format!("tok_{}", hex(&bytes))
}

/// An API token as listed: everything but its secret, which is never stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenRecord {
    /// The public id.
    pub id: String,
    /// The user it acts for.
    pub user: String,
    /// What it may do.
    pub scope: TokenScope,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: Timestamp,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// When it was last accepted.
    pub last_used_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

impl TokenRecord {
    /// Whether the token is accepted at `now`: not revoked and not expired.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| now < at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_random_hex_and_its_hash_is_sha256_of_the_text() {
        let (plain, hash) = Secret::generate();
        assert_eq!(plain.len(), 2 * SECRET_BYTES);
        assert!(
            plain
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(hash, Secret::hash(&plain));
        assert_eq!(hash.len(), 64);
        assert_ne!(hash, plain);
        // The SHA-256 of "abc" (FIPS 180-2, appendix B.1).
        assert_eq!(
            Secret::hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let (other, _) = Secret::generate();
        assert_ne!(plain, other);
    }

    #[test]
    fn scopes_read_and_write_their_names() {
        for scope in TokenScope::ALL {
            assert_eq!(scope.to_string().parse::<TokenScope>(), Ok(scope));
        }
        assert_eq!("approve".parse(), Ok(TokenScope::Approve));
        assert_eq!(
            "Admin".parse::<TokenScope>(),
            Err(ScopeError("Admin".into()))
        );
        assert!("".parse::<TokenScope>().is_err());
        assert!(TokenScope::Approve.may_approve() && !TokenScope::Approve.may_review());
        assert!(TokenScope::Review.may_review() && !TokenScope::Review.may_approve());
        assert!(!TokenScope::Read.may_review() && !TokenScope::Read.may_approve());
        assert_eq!(
            serde_json::to_string(&TokenScope::Review).unwrap(),
            "\"review\""
        );
    }

    #[test]
    fn generated_tokens_and_sessions_carry_hashes_not_secrets() {
        let (secret, token) = NewToken::generate(
            "alice",
            TokenScope::Read,
            "operator:root",
            100,
            Some(Duration::from_secs(90 * 86_400)),
        );
        assert_eq!(token.hash, Secret::hash(&secret));
        assert_eq!(token.expires_at, Some(100 + 90 * 86_400));
        assert!(
            token.id.starts_with("tok_") && token.id.len() == 12,
            "{}",
            token.id
        );
        assert!(token.id[4..].bytes().all(|b| b.is_ascii_hexdigit()));
        let (_, forever) = NewToken::generate("alice", TokenScope::Read, "x", 100, None);
        assert_eq!(forever.expires_at, None);

        let (cookie, session) =
            NewWebSession::generate("alice", "ssh-link", 100, Duration::from_secs(3600));
        assert_eq!(session.hash, Secret::hash(&cookie));
        assert_ne!(session.csrf, cookie);
        assert_eq!(session.csrf.len(), 64);
        assert_eq!(session.expires_at, 3700);
        assert_eq!(after(i64::MAX - 1, Duration::from_secs(10)), i64::MAX);
    }

    #[test]
    fn a_token_is_live_until_revoked_or_expired() {
        let record = TokenRecord {
            id: "tok_00000000".into(),
            user: "alice".into(),
            scope: TokenScope::Read,
            created_by: "bob".into(),
            created_at: 0,
            expires_at: Some(10),
            last_used_at: None,
            revoked_at: None,
        };
        assert!(record.is_live(9));
        assert!(!record.is_live(10));
        let revoked = TokenRecord {
            revoked_at: Some(5),
            expires_at: None,
            ..record
        };
        assert!(!revoked.is_live(1));
    }
}
