-- calconnect PostgreSQL schema, version 1.
-- Tokens and verifiers are sealed blobs (calconnect::crypto); nothing secret is stored in clear.

CREATE TABLE connections (
    id                          uuid        PRIMARY KEY,
    end_user                    text        NOT NULL,
    client_id                   text        NOT NULL,
    owner_kind                  text        NOT NULL CHECK (owner_kind IN ('user', 'team')),
    owner_id                    bigint      NOT NULL,
    scopes                      text        NOT NULL,
    status                      text        NOT NULL CHECK (status IN ('active', 'needs_reauth', 'refresh_lost')),
    status_reason               text        NOT NULL,
    status_changed_at           timestamptz NOT NULL,
    access_token                bytea       NOT NULL,
    refresh_token               bytea,
    access_expires_at           timestamptz,
    last_refreshed_at           timestamptz NOT NULL,
    refresh_expires_at_estimate timestamptz,
    version                     bigint      NOT NULL,
    lease_owner                 text,
    lease_until                 timestamptz,
    refresh_intent_started_at   timestamptz,
    created_at                  timestamptz NOT NULL,
    updated_at                  timestamptz NOT NULL,
    -- One connection per Cal.com identity and client (docs/calcom.md §3.4).
    CONSTRAINT connections_identity UNIQUE (client_id, owner_kind, owner_id)
);

CREATE INDEX connections_end_user ON connections (end_user, created_at);
-- The due-for-refresh query: one partial index per reason.
CREATE INDEX connections_due_access ON connections (access_expires_at) WHERE status = 'active';
CREATE INDEX connections_due_keepalive ON connections (last_refreshed_at) WHERE status = 'active';

CREATE TABLE pending_authorizations (
    id              uuid        PRIMARY KEY,
    state_key       bytea       NOT NULL UNIQUE,
    pkce_verifier   bytea       NOT NULL,
    end_user        text        NOT NULL,
    scopes          text        NOT NULL,
    redirect_uri    text        NOT NULL,
    return_to       text,
    browser_binding bytea       NOT NULL,
    expires_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL
);

CREATE INDEX pending_authorizations_expires ON pending_authorizations (expires_at);

-- No foreign key: events outlive their connection (audit).
CREATE TABLE connection_events (
    seq           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection_id uuid        NOT NULL,
    end_user      text        NOT NULL,
    kind          text        NOT NULL,
    from_status   text,
    to_status     text,
    reason        text        NOT NULL,
    at            timestamptz NOT NULL
);

CREATE INDEX connection_events_connection ON connection_events (connection_id, seq);
