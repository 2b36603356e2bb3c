-- The alert outbox: one row per alert and sink, written (all sinks in one transaction) before any
-- delivery is tried, so that an alert survives a sink that is down and a restart of the bastion.
-- Times are Unix milliseconds: retries start at one second and tests run them much faster.
CREATE TABLE alert_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id        TEXT    NOT NULL,
    -- The sink's stable name: webhook:<url>, syslog:<socket or address>, command:<program>.
    sink            TEXT    NOT NULL,
    -- The alert as JSON, exactly as it is posted to webhooks and written to commands.
    payload         TEXT    NOT NULL,
    created_ms      INTEGER NOT NULL,
    -- Attempts started so far; a claim counts as one even if the process dies during it.
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- When the row may next be claimed: the retry time, or the end of a claim's lease.
    next_attempt_ms INTEGER NOT NULL,
    last_error      TEXT,
    delivered_ms    INTEGER,
    UNIQUE (alert_id, sink)
);
CREATE INDEX alert_outbox_due ON alert_outbox (next_attempt_ms) WHERE delivered_ms IS NULL;
CREATE INDEX alert_outbox_delivered ON alert_outbox (delivered_ms) WHERE delivered_ms IS NOT NULL;
