-- One time encoding and one scope encoding per database (docs/architecture.md §6.3): the broker's
-- times become timestamptz, as in the store's tables (the `_ms` suffix goes), and a connect
-- session's scopes a JSON array of strings instead of space-separated text.

ALTER TABLE broker_api_keys
    ALTER COLUMN created_at_ms TYPE timestamptz
        USING timestamptz 'epoch' + created_at_ms * interval '1 millisecond',
    ALTER COLUMN revoked_at_ms TYPE timestamptz
        USING timestamptz 'epoch' + revoked_at_ms * interval '1 millisecond';
ALTER TABLE broker_api_keys RENAME COLUMN created_at_ms TO created_at;
ALTER TABLE broker_api_keys RENAME COLUMN revoked_at_ms TO revoked_at;

ALTER TABLE broker_connect_sessions
    ALTER COLUMN created_at_ms TYPE timestamptz
        USING timestamptz 'epoch' + created_at_ms * interval '1 millisecond',
    ALTER COLUMN expires_at_ms TYPE timestamptz
        USING timestamptz 'epoch' + expires_at_ms * interval '1 millisecond';
ALTER TABLE broker_connect_sessions RENAME COLUMN created_at_ms TO created_at;
ALTER TABLE broker_connect_sessions RENAME COLUMN expires_at_ms TO expires_at;
UPDATE broker_connect_sessions SET scopes = to_json(string_to_array(scopes, ' '))::text;

ALTER TABLE broker_webhook_deliveries
    ALTER COLUMN next_attempt_at_ms TYPE timestamptz
        USING timestamptz 'epoch' + next_attempt_at_ms * interval '1 millisecond',
    ALTER COLUMN lease_until_ms TYPE timestamptz
        USING timestamptz 'epoch' + lease_until_ms * interval '1 millisecond',
    ALTER COLUMN created_at_ms TYPE timestamptz
        USING timestamptz 'epoch' + created_at_ms * interval '1 millisecond',
    ALTER COLUMN delivered_at_ms TYPE timestamptz
        USING timestamptz 'epoch' + delivered_at_ms * interval '1 millisecond';
ALTER TABLE broker_webhook_deliveries RENAME COLUMN next_attempt_at_ms TO next_attempt_at;
ALTER TABLE broker_webhook_deliveries RENAME COLUMN lease_until_ms TO lease_until;
ALTER TABLE broker_webhook_deliveries RENAME COLUMN created_at_ms TO created_at;
ALTER TABLE broker_webhook_deliveries RENAME COLUMN delivered_at_ms TO delivered_at;
