-- The refresh budget (docs/scaling.md): one token bucket per egress IP, shared by every instance
-- on this database. Permits are counted in millionths (integers, so every instance computes
-- the same refill); a 429 from the token endpoint sets paused_until for all of them.
CREATE TABLE refresh_budgets (
    name               TEXT        PRIMARY KEY NOT NULL,
    micro_permits      BIGINT      NOT NULL,
    micro_background   BIGINT      NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    paused_until       TIMESTAMPTZ
);
