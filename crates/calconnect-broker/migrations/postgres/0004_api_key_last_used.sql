-- When each API key was last accepted (`calconnect api-keys list`), written at most once a
-- minute per key. Keys made before this version show no last use until their next one.
ALTER TABLE broker_api_keys ADD COLUMN last_used_at timestamptz;
