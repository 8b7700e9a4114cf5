-- Counting connections by status (metrics) reads indexes, not rows: all connections through the
-- primary key, the ones not active, which are few, through this one. (A plain index on `status`
-- would also match the due-for-refresh queries' `status = 'active'` and lead SQLite's planner
-- away from their partial indexes.)
CREATE INDEX connections_not_active ON connections (status) WHERE status <> 'active';
