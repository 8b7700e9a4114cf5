-- The refresh budget (docs/scaling.md): one token bucket per egress IP, shared by every process
-- on this file. Permits are counted in millionths; times are microseconds since the Unix epoch.
CREATE TABLE refresh_budgets (
    name               TEXT    PRIMARY KEY NOT NULL,
    micro_permits      INTEGER NOT NULL,
    micro_background   INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    paused_until       INTEGER
);
