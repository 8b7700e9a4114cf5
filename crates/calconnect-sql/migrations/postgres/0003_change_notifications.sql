-- One truth across instances (docs/architecture.md §4): every connection event (created,
-- reauthorized, status changed, deleted) is also a NOTIFY on channel `calconnect_connections`
-- with the connection id, delivered at commit. Keepers LISTEN and drop their cached token of
-- that connection at once.
CREATE OR REPLACE FUNCTION calconnect_notify_connection_event() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('calconnect_connections', NEW.connection_id::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER connection_events_notify
    AFTER INSERT ON connection_events
    FOR EACH ROW EXECUTE FUNCTION calconnect_notify_connection_event();
