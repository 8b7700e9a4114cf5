-- Connect links are single use and their outcome can be redeemed once by the app
-- (docs/architecture.md §3.1): how often the link was opened, when a flow through it finished,
-- and the outcome with a one-time result token (its SHA-256 only) for the app's backend; and
-- the digest of the state of each flow a link started, by which the callback finds the session.
ALTER TABLE broker_connect_sessions ADD COLUMN opened BIGINT NOT NULL DEFAULT 0;
ALTER TABLE broker_connect_sessions ADD COLUMN consumed_at BIGINT;
ALTER TABLE broker_connect_sessions ADD COLUMN outcome TEXT;
ALTER TABLE broker_connect_sessions ADD COLUMN connection_id TEXT;
ALTER TABLE broker_connect_sessions ADD COLUMN result_hash TEXT;
ALTER TABLE broker_connect_sessions ADD COLUMN redeemed_at BIGINT;
CREATE TABLE broker_connect_flows (
    flow_state TEXT PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL
);
CREATE INDEX broker_connect_flows_session ON broker_connect_flows (session_id);
