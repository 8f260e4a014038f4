-- Today's bars from the live provider (issue 5): settings, the per-symbol
-- refresh state, and an index on provisional bars. Same statements as in
-- sql/schema.sql.

-- Today's bars (provisional): how often a live refresh may repeat, how old a
-- provisional bar must be before cleanup may delete it (once history has
-- replaced its session), and how long into the regular session an empty
-- answer is still normal. One row; change it with one UPDATE.
CREATE TABLE pgbars.live_settings (
    id boolean PRIMARY KEY DEFAULT TRUE CHECK (id),
    refresh_every interval NOT NULL DEFAULT '60 seconds' CHECK (refresh_every >= interval '0'),
    keep_provisional interval NOT NULL DEFAULT '1 day' CHECK (keep_provisional >= interval '0'),
    empty_grace interval NOT NULL DEFAULT '30 minutes' CHECK (empty_grace >= interval '0')
);

INSERT INTO pgbars.live_settings DEFAULT VALUES;

-- One row per watchlist symbol and fetched live timeframe (m1, m5, m15 from
-- the live provider_routes): its lease while a worker refreshes it, the
-- timeframes stored from the answer (targets: the fetched one and those
-- rolled up from it, e.g. h1 and h4 from m15), and the last outcome.
-- no_data marks a symbol the provider does not serve this session (no bar
-- at all well into the regular session: an unknown symbol): it is not asked
-- again until the next session.
CREATE TABLE pgbars.live_refreshes (
    symbol_id uuid NOT NULL REFERENCES pgbars.symbols (id) ON DELETE CASCADE,
    timeframe text NOT NULL REFERENCES pgbars.timeframes (name),
    provider text NOT NULL REFERENCES pgbars.providers (name),
    session_date date NOT NULL REFERENCES pgbars.market_sessions (session_date),
    targets text[] NOT NULL,
    lease_id uuid,
    claimed_by text,
    lease_expires_at timestamptz,
    refreshed_at timestamptz,
    bars_written integer,
    bars_rejected integer,
    requests_used integer,
    no_data text,
    last_error text,
    PRIMARY KEY (symbol_id, timeframe)
);

-- is_intraday now marks provisional bars only. Before 0005, store_chunk_bars
-- set it on intraday history too (until the fix that made history false):
-- those bars are history, and reads, coverage, derivations and cleanup must
-- see them as such. No provisional bar exists before this migration.
UPDATE pgbars.ohlc_bars_v2
SET is_intraday = FALSE
WHERE is_intraday;

-- Provisional bars are few; cleanup finds them without reading history.
CREATE INDEX ohlc_bars_v2_provisional_idx ON pgbars.ohlc_bars_v2 (ts) WHERE is_intraday;
