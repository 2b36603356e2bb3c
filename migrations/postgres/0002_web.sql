-- Web sign-in and API tokens: the same tables as the SQLite migration 0006. Secrets are never
-- stored: each row is found by the SHA-256 (hex) of its secret.

-- One-time sign-in links (`ssh bastion web`): spent once, by the first browser that follows.
CREATE TABLE web_login_links (
    hash       TEXT   PRIMARY KEY,
    "user"     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    -- When it was followed; a link is spent once.
    used_at    BIGINT
);
CREATE INDEX web_login_links_expires ON web_login_links (expires_at);

-- Browser sessions, by the hash of the cookie's secret.
CREATE TABLE web_sessions (
    hash       TEXT   PRIMARY KEY,
    "user"     TEXT   NOT NULL,
    -- How the user signed in: ssh-link, later oidc.
    method     TEXT   NOT NULL,
    -- The anti-forgery value embedded in forms (random, not part of the cookie).
    csrf       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL,
    -- The end whatever the activity: created_at plus the maximum age.
    expires_at BIGINT NOT NULL,
    ended_at   BIGINT
);
CREATE INDEX web_sessions_user ON web_sessions ("user") WHERE ended_at IS NULL;
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);

-- API tokens: a short public id to list and revoke, the hash of the secret to authenticate.
CREATE TABLE api_tokens (
    id           TEXT   PRIMARY KEY,
    hash         TEXT   NOT NULL UNIQUE,
    "user"       TEXT   NOT NULL,
    -- read, review or approve.
    scope        TEXT   NOT NULL,
    created_by   TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens ("user", created_at);
