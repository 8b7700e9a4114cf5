-- One time encoding and one scope encoding per database (docs/architecture.md §6.3): the broker's
-- times become integer microseconds since the Unix epoch, as in the store's tables (the `_ms`
-- suffix goes), and a connect session's scopes a JSON array of strings instead of
-- space-separated text. Scopes never contain spaces; quotes and backslashes are escaped.

ALTER TABLE broker_api_keys RENAME COLUMN created_at_ms TO created_at;
ALTER TABLE broker_api_keys RENAME COLUMN revoked_at_ms TO revoked_at;
UPDATE broker_api_keys SET created_at = created_at * 1000, revoked_at = revoked_at * 1000;

ALTER TABLE broker_connect_sessions RENAME COLUMN created_at_ms TO created_at;
ALTER TABLE broker_connect_sessions RENAME COLUMN expires_at_ms TO expires_at;
UPDATE broker_connect_sessions SET
    created_at = created_at * 1000,
    expires_at = expires_at * 1000,
    scopes = CASE WHEN scopes = '' THEN '[]'
        ELSE '["' || replace(replace(replace(scopes, '\', '\\'), '"', '\"'), ' ', '","') || '"]'
    END;

ALTER TABLE broker_webhook_deliveries RENAME COLUMN next_attempt_at_ms TO next_attempt_at;
ALTER TABLE broker_webhook_deliveries RENAME COLUMN lease_until_ms TO lease_until;
ALTER TABLE broker_webhook_deliveries RENAME COLUMN created_at_ms TO created_at;
ALTER TABLE broker_webhook_deliveries RENAME COLUMN delivered_at_ms TO delivered_at;
UPDATE broker_webhook_deliveries SET
    next_attempt_at = next_attempt_at * 1000,
    lease_until = lease_until * 1000,
    created_at = created_at * 1000,
    delivered_at = delivered_at * 1000;
