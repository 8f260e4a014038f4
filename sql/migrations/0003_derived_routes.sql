-- Derived timeframes (issue 5): h4 from h1 and w1 from d1, computed in SQL
-- by pgbars.derive_bars when a source chunk is stored. Same statements as
-- in sql/schema.sql.

-- Timeframes pgbars computes from another timeframe's stored bars instead of
-- fetching them (no provider request): h4 from h1, in 4-hour buckets from
-- 04:00 New York inside one session; w1 from d1, by ISO week (Monday). The
-- CHECK lists the rules pgbars.derive_bars implements. An enabled row
-- replaces the timeframe's provider_routes for planning: requesting h4 plans
-- h1. w1 starts disabled: Yahoo serves decades of weekly bars in one request.
CREATE TABLE pgbars.derived_routes (
    timeframe text PRIMARY KEY REFERENCES pgbars.timeframes (name),
    source_timeframe text NOT NULL REFERENCES pgbars.timeframes (name),
    enabled boolean NOT NULL DEFAULT TRUE,
    CONSTRAINT derived_routes_known_rule CHECK (
        (timeframe = 'h4' AND source_timeframe = 'h1')
        OR (timeframe = 'w1' AND source_timeframe = 'd1')
    )
);

INSERT INTO pgbars.derived_routes (timeframe, source_timeframe, enabled) VALUES
('h4', 'h1', TRUE),
('w1', 'd1', FALSE);

-- A derived timeframe requested for a symbol. It has no chunks of its own:
-- its bars are derived from the source job's bars each time one of that
-- job's chunks is stored, so its progress is the source job's.
CREATE TABLE pgbars.derived_jobs (
    source_job_id bigint NOT NULL REFERENCES pgbars.backfill_jobs (id) ON DELETE CASCADE,
    timeframe text NOT NULL REFERENCES pgbars.derived_routes (timeframe),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_job_id, timeframe)
);
