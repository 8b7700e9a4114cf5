-- calconnect broker tables (times in unix milliseconds)
CREATE TABLE broker_api_keys (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT
);
CREATE TABLE broker_connect_sessions (
    id TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    end_user_id TEXT NOT NULL,
    scopes TEXT NOT NULL,
    return_to TEXT,
    team BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
CREATE TABLE broker_webhook_cursor (
    name TEXT PRIMARY KEY NOT NULL,
    seq BIGINT NOT NULL
);
CREATE TABLE broker_webhook_deliveries (
    id BIGSERIAL PRIMARY KEY,
    event_id TEXT NOT NULL,
    event_seq BIGINT NOT NULL,
    endpoint TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at_ms BIGINT NOT NULL,
    lease_until_ms BIGINT,
    last_status_code BIGINT,
    last_error TEXT,
    created_at_ms BIGINT NOT NULL,
    delivered_at_ms BIGINT,
    UNIQUE (event_seq, endpoint)
);
CREATE INDEX broker_webhook_deliveries_due ON broker_webhook_deliveries (status, next_attempt_at_ms);
CREATE INDEX broker_webhook_deliveries_conn ON broker_webhook_deliveries (connection_id, endpoint, id);
