-- PostgreSQL notifies other instances of connection events in this version (LISTEN/NOTIFY).
-- SQLite has no such channel: keepers on one SQLite file revalidate their cached tokens instead
-- (docs/architecture.md §4). Nothing changes in the schema.
SELECT 1;
