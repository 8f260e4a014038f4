-- ohlc_bars_v2 partitioned by RANGE (ts): one partition per calendar year
-- (UTC), ohlc_bars_v2_yYYYY, with ohlc_bars_v2_earlier before 2000 and
-- ohlc_bars_v2_later after the last year, so that every timestamp has a
-- partition (docs/scale.md: why by time, and the figures). The table is
-- rebuilt in place, in this migration's transaction: the bars are copied
-- once, into the year partitions their timestamps fall in (years through the
-- newest bar's, at most next year; pgbars.extend_bar_partitions, called by the installer after
-- the routines, adds the rest through the calendar's end). The views that
-- read the bars go with the old table and come back with the routines,
-- which the installer re-applies after any migration. The end state is
-- that of sql/schema.sql.

ALTER TABLE pgbars.ohlc_bars_v2 RENAME TO ohlc_bars_v2_unpartitioned;
ALTER INDEX pgbars.ohlc_bars_v2_pkey RENAME TO ohlc_bars_v2_unpartitioned_pkey;
ALTER INDEX pgbars.ohlc_bars_v2_provisional_idx RENAME TO ohlc_bars_v2_unpartitioned_provisional_idx;

-- Its NOT NULL constraints' names too, which the new table's take.
DO $$
DECLARE
    v_name text;
BEGIN
    FOR v_name IN
        SELECT conname FROM pg_catalog.pg_constraint
        WHERE conrelid = 'pgbars.ohlc_bars_v2_unpartitioned'::regclass AND contype = 'n'
    LOOP
        EXECUTE format(
            'ALTER TABLE pgbars.ohlc_bars_v2_unpartitioned RENAME CONSTRAINT %I TO %I',
            v_name,
            replace(v_name, 'ohlc_bars_v2_', 'ohlc_bars_v2_unpartitioned_')
        );
    END LOOP;
END;
$$;

CREATE TABLE pgbars.ohlc_bars_v2 (
    symbol_id uuid NOT NULL,
    timeframe text NOT NULL,
    ts timestamptz NOT NULL,
    provider text NOT NULL,
    is_forecast boolean NOT NULL DEFAULT FALSE,
    open double precision NOT NULL,
    high double precision NOT NULL,
    low double precision NOT NULL,
    close double precision NOT NULL,
    volume bigint NOT NULL,
    vwap double precision,
    trade_count bigint,
    is_provisional boolean NOT NULL DEFAULT FALSE,
    fetched_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol_id, timeframe, ts, provider, is_forecast),
    CONSTRAINT ohlc_bars_v2_prices_positive CHECK (open > 0 AND high > 0 AND low > 0 AND close > 0),
    CONSTRAINT ohlc_bars_v2_low_bound CHECK (low <= least(open, close)),
    CONSTRAINT ohlc_bars_v2_high_bound CHECK (high >= greatest(open, close)),
    CONSTRAINT ohlc_bars_v2_volume_nonnegative CHECK (volume >= 0),
    CONSTRAINT ohlc_bars_v2_vwap_positive CHECK (vwap IS NULL OR vwap > 0),
    CONSTRAINT ohlc_bars_v2_trade_count_nonnegative CHECK (trade_count IS NULL OR trade_count >= 0)
) PARTITION BY RANGE (ts);

DO $$
BEGIN
    IF current_setting('server_version_num')::integer >= 180000 THEN
        EXECUTE 'ALTER TABLE pgbars.ohlc_bars_v2 ADD CONSTRAINT ohlc_bars_v2_symbol_id_fkey'
        || ' FOREIGN KEY (symbol_id) REFERENCES pgbars.symbols (id) ON DELETE CASCADE NOT ENFORCED';
    END IF;
END;
$$;

CREATE INDEX ohlc_bars_v2_provisional_idx ON pgbars.ohlc_bars_v2 (ts) WHERE is_provisional;

-- The partitions: years 2000 through the newest bar's (at most next year's: a bar
-- further ahead stays in ohlc_bars_v2_later), between the two open ends.
DO $$
DECLARE
    v_next integer := extract(YEAR FROM now() AT TIME ZONE 'UTC')::integer + 1;
    v_last integer := coalesce(
        (
            SELECT extract(YEAR FROM max(ts) AT TIME ZONE 'UTC')::integer
            FROM pgbars.ohlc_bars_v2_unpartitioned
            WHERE ts < make_timestamptz(v_next + 1, 1, 1, 0, 0, 0, 'UTC')
        ),
        1999
    );
BEGIN
    CREATE TABLE pgbars.ohlc_bars_v2_earlier PARTITION OF pgbars.ohlc_bars_v2
    FOR VALUES FROM (MINVALUE) TO ('2000-01-01 00:00:00+00');
    FOR v_year IN 2000..v_last LOOP
        EXECUTE format(
            'CREATE TABLE pgbars.%I PARTITION OF pgbars.ohlc_bars_v2 FOR VALUES FROM (%L) TO (%L)',
            'ohlc_bars_v2_y' || v_year,
            make_timestamptz(v_year, 1, 1, 0, 0, 0, 'UTC'),
            make_timestamptz(v_year + 1, 1, 1, 0, 0, 0, 'UTC')
        );
    END LOOP;
    EXECUTE format(
        'CREATE TABLE pgbars.ohlc_bars_v2_later PARTITION OF pgbars.ohlc_bars_v2 FOR VALUES FROM (%L) TO (MAXVALUE)',
        make_timestamptz(greatest(v_last, 1999) + 1, 1, 1, 0, 0, 0, 'UTC')
    );
END;
$$;

-- No trigger is on the new table yet (the routines come after): the bars
-- were checked when they were stored.
INSERT INTO pgbars.ohlc_bars_v2 (
    symbol_id, timeframe, ts, provider, is_forecast, open, high, low, close, volume, vwap,
    trade_count, is_provisional, fetched_at
)
SELECT
    symbol_id,
    timeframe,
    ts,
    provider,
    is_forecast,
    open,
    high,
    low,
    close,
    volume,
    vwap,
    trade_count,
    is_provisional,
    fetched_at
FROM pgbars.ohlc_bars_v2_unpartitioned
ORDER BY symbol_id, timeframe, ts, provider, is_forecast;

DROP TABLE pgbars.ohlc_bars_v2_unpartitioned CASCADE;

-- Autovacuum analyses the partitions, never a partitioned table itself.
ANALYZE pgbars.ohlc_bars_v2;
