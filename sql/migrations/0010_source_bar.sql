-- A bar as the one roll-up (_roll_up_bars) takes it: derived bars pass stored
-- rows, today's live bars the rows a worker staged, both as an array of these.
CREATE TYPE pgbars.source_bar AS (
    ts timestamptz,
    provider text,
    open double precision,
    high double precision,
    low double precision,
    close double precision,
    volume double precision,
    vwap double precision,
    trade_count bigint
);
