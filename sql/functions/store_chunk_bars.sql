-- Write a chunk's staged bars and rejected rows, and mark the chunk done.
CREATE OR REPLACE FUNCTION pgbars.store_chunk_bars(
    p_chunk_id bigint,
    p_lease_id uuid,
    p_requests integer DEFAULT 1
)
RETURNS TABLE (bars_written integer, bars_changed integer, bars_rejected integer)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
The write half of a chunk, inside the worker's transaction. The worker has
COPYed the validated bars into pg_temp.pgbars_staged_bars and the rows it
refused into pg_temp.pgbars_staged_rejects (both ON COMMIT DELETE ROWS).
SECURITY INVOKER: the staging tables belong to the caller's role, which
only it can read; it needs INSERT/UPDATE on the bars and INSERT/DELETE on
the quarantine (pgbars_worker has them). The lease is checked first and
again by complete_backfill_chunk at the end, whose PB001 aborts the whole
transaction: a worker that lost its lease writes nothing.
Bars are merged on the table's key; a row whose values did not change
is not rewritten (no dead tuple, fetched_at kept), so re-fetching a range
costs reads only. The chunk's quarantine is replaced by this fetch's.
Timeframes derived from this one (the job's derived_jobs: h4 from h1) are
recomputed by derive_bars for the chunk's sessions, in this transaction.
Backfill bars are history (is_provisional false): a chunk never holds the
session in progress. bars_written counts the valid bars of the answer (stored or already
there); bars_changed those inserted or updated.
*/
DECLARE
    v_chunk record;
    v_written integer;
    v_first_ts timestamptz;
    v_last_ts timestamptz;
    v_changed integer;
    v_rejected integer;
BEGIN
    SELECT c.id, c.provider, c.first_session, c.last_session, j.symbol_id, j.timeframe
    INTO v_chunk
    FROM pgbars.backfill_chunks AS c
    INNER JOIN pgbars.backfill_jobs AS j ON c.job_id = j.id
    WHERE c.id = p_chunk_id AND c.lease_id = p_lease_id AND c.status = 'running';
    IF NOT FOUND THEN
        PERFORM pgbars._raise_lease_lost(p_chunk_id);
    END IF;

    SELECT count(*), min(s.ts), max(s.ts)
    INTO v_written, v_first_ts, v_last_ts
    FROM pg_temp.pgbars_staged_bars AS s;

    -- MERGE rather than INSERT ... ON CONFLICT: new rows are plain inserts (no
    -- speculative insertion) and the chunk's existing rows are read once, as
    -- one index range (the ts bounds keep it to the chunk, not the symbol's
    -- whole history), instead of one probe per row. Measured in
    -- docs/benchmarks.md. A chunk's lease gives its rows one writer; were
    -- another transaction to insert the same key meanwhile, this raises
    -- unique_violation and the worker retries the chunk.
    MERGE INTO pgbars.ohlc_bars_v2 AS b
    USING (
        SELECT
            s.ts,
            s.open,
            s.high,
            s.low,
            s.close,
            s.volume::bigint AS volume,
            s.vwap,
            s.trade_count
        FROM pg_temp.pgbars_staged_bars AS s
    ) AS s
        ON
            b.symbol_id = v_chunk.symbol_id
            AND b.timeframe = v_chunk.timeframe
            AND b.provider = v_chunk.provider
            AND NOT b.is_forecast
            AND b.ts = s.ts
            AND b.ts BETWEEN v_first_ts AND v_last_ts
    WHEN MATCHED AND (
        b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trade_count, b.is_provisional, b.adjustment
    ) IS DISTINCT FROM (
        s.open, s.high, s.low, s.close, s.volume, s.vwap, s.trade_count, FALSE, 'raw'
    ) THEN
        UPDATE SET
            open = s.open,
            high = s.high,
            low = s.low,
            close = s.close,
            volume = s.volume,
            vwap = s.vwap,
            trade_count = s.trade_count,
            is_provisional = FALSE,
            adjustment = 'raw',
            fetched_at = now()
    WHEN NOT MATCHED THEN
        INSERT (
            symbol_id, timeframe, ts, provider, is_forecast, open, high, low, close,
            volume, vwap, trade_count, is_provisional, adjustment, fetched_at
        )
        VALUES (
            v_chunk.symbol_id, v_chunk.timeframe, s.ts, v_chunk.provider, FALSE, s.open, s.high,
            s.low, s.close, s.volume, s.vwap, s.trade_count, FALSE, 'raw', now()
        );
    GET DIAGNOSTICS v_changed = ROW_COUNT;

    -- Derived bars cost no request: recomputed here from the bars just stored
    -- (and, for w1, the rest of their weeks). Without derived jobs, one lookup.
    PERFORM pgbars.derive_bars(v_chunk.symbol_id, v_chunk.timeframe, v_chunk.first_session, v_chunk.last_session);

    DELETE FROM pgbars.rejected_bars AS r WHERE r.chunk_id = p_chunk_id;
    INSERT INTO pgbars.rejected_bars (chunk_id, symbol_id, timeframe, provider, ts, raw, reason)
    SELECT p_chunk_id, v_chunk.symbol_id, v_chunk.timeframe, v_chunk.provider, s.ts, s.raw, s.reason
    FROM pg_temp.pgbars_staged_rejects AS s;
    GET DIAGNOSTICS v_rejected = ROW_COUNT;

    PERFORM pgbars.complete_backfill_chunk(p_chunk_id, p_lease_id, v_written, v_rejected, p_requests);
    RETURN QUERY SELECT v_written, v_changed, v_rejected;
END;
$$;

COMMENT ON FUNCTION pgbars.store_chunk_bars(bigint, uuid, integer) IS
'Merges the bars the worker staged in pg_temp.pgbars_staged_bars (unchanged rows are not rewritten), '
'quarantines pg_temp.pgbars_staged_rejects in rejected_bars and marks the leased chunk done, in the '
'caller''s transaction. Returns bars written, changed and rejected; raises PB001 without the lease.';
