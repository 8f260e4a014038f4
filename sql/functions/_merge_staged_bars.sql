-- Merge the bars a worker staged for a lease into ohlc_bars_v2: history and live bars alike.
CREATE OR REPLACE FUNCTION pgbars._merge_staged_bars(
    p_lease_id uuid,
    p_first_session date,
    p_last_session date,
    p_symbol_id uuid,
    p_timeframe text,
    p_provider text,
    p_provisional boolean
)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pgbars, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
/*
The one write of fetched bars: store_chunk_bars (history, p_provisional
false) and store_live_bars (today's bars, true) both call it, inside the
worker's transaction, after the worker COPYed the validated bars into
pgbars.staged_bars under the lease's id. Bars are merged on the table's key; a row whose
values did not change is not rewritten (no dead tuple, fetched_at kept), so
re-fetching a range costs reads only. Returns the bars inserted or updated.

Every stored bar is raw (as traded). A provider whose price_basis is
'split_adjusted' (Yahoo, Tradier) serves bars adjusted for the splits up to
the day it answered: they are converted here, prices multiplied and volume
divided by the ratio (split_to / split_from) of each split in
corporate_actions with an ex-date
after the bar and on or before today (_adjustment_steps as of the planning
clock), volume rounded. Under the symbol's actions lock, which
_apply_corporate_actions takes too: a split learned at the same moment is
either seen here or finds these bars stored and reconciles them.

Two rules keep a worker (or a faulty one) from losing stored history: a
staged bar outside the lease's sessions (00:00 New York of the Monday of
the first session's week up to the end of the last session's day) raises
22023 and nothing of the lease is stored, and a provisional bar never
replaces a history bar (is_provisional false) of the same key.

MERGE rather than INSERT ... ON CONFLICT: new rows are plain inserts (no
speculative insertion) and the existing rows are read once, as one index
range (the ts bounds keep it to the staged range, not the symbol's whole
history), instead of one probe per row. Measured in docs/benchmarks.md. A
lease gives its rows one writer; were another transaction to insert the
same key meanwhile, this raises unique_violation and the worker retries.
plan_cache_mode: the MERGE is planned for each lease's actual range and
rows. A generic plan (what PL/pgSQL switches to after five calls on one
connection) guessed both and, on the shared staging table, took minutes per
50,000-bar chunk instead of a second (docs/benchmarks.md).
Called by the SECURITY DEFINER store functions only; the worker role
cannot execute it, nor write the bars itself.
*/
DECLARE
    v_first_ts timestamptz;
    v_last_ts timestamptz;
    v_changed integer;
    v_from timestamptz := date_trunc('week', p_first_session)::timestamp AT TIME ZONE 'America/New_York';
    v_to timestamptz := (p_last_session + 1)::timestamp AT TIME ZONE 'America/New_York';
    v_thresholds timestamptz [] := '{}';
    v_factors double precision [] := '{1}';
BEGIN
    SELECT min(s.ts), max(s.ts) INTO v_first_ts, v_last_ts
    FROM pgbars.staged_bars AS s
    WHERE s.lease_id = p_lease_id;
    IF v_first_ts < v_from OR v_last_ts >= v_to THEN
        RAISE EXCEPTION 'a staged bar at % is outside the lease''s sessions (% to %): nothing stored',
            CASE WHEN v_first_ts < v_from THEN v_first_ts ELSE v_last_ts END, p_first_session, p_last_session
            USING ERRCODE = '22023';
    END IF;

    IF (SELECT p.price_basis FROM pgbars.providers AS p WHERE p.name = p_provider) = 'split_adjusted' THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('pgbars.actions/' || p_symbol_id, 0));
        SELECT st.thresholds, st.raw_factors INTO v_thresholds, v_factors
        FROM pgbars._adjustment_steps(p_symbol_id, p_timeframe, 'splits', pgbars._now()) AS st;
    END IF;

    MERGE INTO pgbars.ohlc_bars_v2 AS b
    USING (
        SELECT
            s.ts,
            s.open * f.factor AS open,
            s.high * f.factor AS high,
            s.low * f.factor AS low,
            s.close * f.factor AS close,
            round(s.volume / f.factor)::bigint AS volume,
            s.vwap * f.factor AS vwap,
            s.trade_count
        FROM pgbars.staged_bars AS s
        CROSS JOIN LATERAL (
            SELECT v_factors[width_bucket(s.ts, v_thresholds) + 1] AS factor
        ) AS f
        WHERE s.lease_id = p_lease_id
    ) AS s
        ON
            b.symbol_id = p_symbol_id
            AND b.timeframe = p_timeframe
            AND b.provider = p_provider
            AND NOT b.is_forecast
            AND b.ts = s.ts
            AND b.ts BETWEEN v_first_ts AND v_last_ts
    WHEN MATCHED AND p_provisional AND NOT b.is_provisional THEN
        DO NOTHING
    WHEN MATCHED AND (
        b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trade_count, b.is_provisional
    ) IS DISTINCT FROM (
        s.open, s.high, s.low, s.close, s.volume, s.vwap, s.trade_count, p_provisional
    ) THEN
        UPDATE SET
            open = s.open,
            high = s.high,
            low = s.low,
            close = s.close,
            volume = s.volume,
            vwap = s.vwap,
            trade_count = s.trade_count,
            is_provisional = p_provisional,
            fetched_at = now()
    WHEN NOT MATCHED THEN
        INSERT (
            symbol_id, timeframe, ts, provider, is_forecast, open, high, low, close,
            volume, vwap, trade_count, is_provisional, fetched_at
        )
        VALUES (
            p_symbol_id, p_timeframe, s.ts, p_provider, FALSE, s.open, s.high,
            s.low, s.close, s.volume, s.vwap, s.trade_count, p_provisional, now()
        );
    GET DIAGNOSTICS v_changed = ROW_COUNT;
    RETURN v_changed;
END;
$$;

COMMENT ON FUNCTION pgbars._merge_staged_bars(uuid, date, date, uuid, text, text, boolean) IS
'Merges a lease''s rows of pgbars.staged_bars into ohlc_bars_v2 under one symbol, timeframe and provider '
'(history or provisional); unchanged rows are not rewritten, a provisional bar never replaces history, '
'a bar outside the lease''s sessions raises. Returns the bars inserted or updated.';
