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
Bars are upserted on the table's key; a row whose values did not change
is not rewritten (no dead tuple, fetched_at kept), so re-fetching a range
costs reads only. The chunk's quarantine is replaced by this fetch's.
bars_written counts the valid bars of the answer (stored or already
there); bars_changed those inserted or updated.
*/
DECLARE
    v_chunk record;
    v_written integer;
    v_changed integer;
    v_rejected integer;
BEGIN
    SELECT c.id, c.provider, j.symbol_id, j.timeframe, tf.is_intraday
    INTO v_chunk
    FROM pgbars.backfill_chunks AS c
    INNER JOIN pgbars.backfill_jobs AS j ON c.job_id = j.id
    INNER JOIN pgbars.timeframes AS tf ON j.timeframe = tf.name
    WHERE c.id = p_chunk_id AND c.lease_id = p_lease_id AND c.status = 'running';
    IF NOT FOUND THEN
        PERFORM pgbars._raise_lease_lost(p_chunk_id);
    END IF;

    SELECT count(*) INTO v_written FROM pg_temp.pgbars_staged_bars;

    INSERT INTO pgbars.ohlc_bars_v2 AS b (
        symbol_id, timeframe, ts, provider, is_forecast, open, high, low, close,
        volume, vwap, trade_count, is_intraday, adjustment, fetched_at
    )
    SELECT
        v_chunk.symbol_id,
        v_chunk.timeframe,
        s.ts,
        v_chunk.provider,
        FALSE,
        s.open,
        s.high,
        s.low,
        s.close,
        s.volume,
        s.vwap,
        s.trade_count,
        v_chunk.is_intraday,
        'raw',
        now()
    FROM pg_temp.pgbars_staged_bars AS s
    ON CONFLICT (symbol_id, timeframe, ts, provider, is_forecast) DO UPDATE
        SET
            open = excluded.open,
            high = excluded.high,
            low = excluded.low,
            close = excluded.close,
            volume = excluded.volume,
            vwap = excluded.vwap,
            trade_count = excluded.trade_count,
            is_intraday = excluded.is_intraday,
            adjustment = excluded.adjustment,
            fetched_at = excluded.fetched_at
        WHERE
            (b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trade_count, b.is_intraday, b.adjustment)
            IS DISTINCT FROM
            (
                excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume,
                excluded.vwap, excluded.trade_count, excluded.is_intraday, excluded.adjustment
            );
    GET DIAGNOSTICS v_changed = ROW_COUNT;

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
'Upserts the bars the worker staged in pg_temp.pgbars_staged_bars (unchanged rows are not rewritten), '
'quarantines pg_temp.pgbars_staged_rejects in rejected_bars and marks the leased chunk done, in the '
'caller''s transaction. Returns bars written, changed and rejected; raises PB001 without the lease.';
