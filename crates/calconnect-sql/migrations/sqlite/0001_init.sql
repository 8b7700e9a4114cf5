-- calconnect SQLite schema, version 1. Times are microseconds since the Unix epoch (UTC).
-- Tokens and verifiers are sealed blobs (calconnect::crypto); nothing secret is stored in clear.

CREATE TABLE connections (
    id                          BLOB    PRIMARY KEY NOT NULL,
    end_user                    TEXT    NOT NULL,
    client_id                   TEXT    NOT NULL,
    owner_kind                  TEXT    NOT NULL CHECK (owner_kind IN ('user', 'team')),
    owner_id                    INTEGER NOT NULL,
    scopes                      TEXT    NOT NULL,
    status                      TEXT    NOT NULL CHECK (status IN ('active', 'needs_reauth', 'refresh_lost')),
    status_reason               TEXT    NOT NULL,
    status_changed_at           INTEGER NOT NULL,
    access_token                BLOB    NOT NULL,
    refresh_token               BLOB,
    access_expires_at           INTEGER,
    last_refreshed_at           INTEGER NOT NULL,
    refresh_expires_at_estimate INTEGER,
    version                     INTEGER NOT NULL,
    lease_owner                 TEXT,
    lease_until                 INTEGER,
    refresh_intent_started_at   INTEGER,
    created_at                  INTEGER NOT NULL,
    updated_at                  INTEGER NOT NULL,
    -- One connection per Cal.com identity and client (docs/calcom.md §3.4).
    UNIQUE (client_id, owner_kind, owner_id)
);

CREATE INDEX connections_end_user ON connections (end_user, created_at);
-- The due-for-refresh query: one partial index per reason.
CREATE INDEX connections_due_access ON connections (access_expires_at) WHERE status = 'active';
CREATE INDEX connections_due_keepalive ON connections (last_refreshed_at) WHERE status = 'active';

CREATE TABLE pending_authorizations (
    id              BLOB    PRIMARY KEY NOT NULL,
    state_key       BLOB    NOT NULL UNIQUE,
    pkce_verifier   BLOB    NOT NULL,
    end_user        TEXT    NOT NULL,
    scopes          TEXT    NOT NULL,
    redirect_uri    TEXT    NOT NULL,
    return_to       TEXT,
    browser_binding BLOB    NOT NULL,
    expires_at      INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);

CREATE INDEX pending_authorizations_expires ON pending_authorizations (expires_at);

-- No foreign key: events outlive their connection (audit).
CREATE TABLE connection_events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_id BLOB    NOT NULL,
    end_user      TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    from_status   TEXT,
    to_status     TEXT,
    reason        TEXT    NOT NULL,
    at            INTEGER NOT NULL
);

CREATE INDEX connection_events_connection ON connection_events (connection_id, seq);
