-- Store the bars the worker staged for a lease of either kind, in the worker's transaction.
CREATE OR REPLACE FUNCTION pgbars.store_lease(
    p_lease_id uuid,
    p_requests integer DEFAULT 1
)
RETURNS TABLE (bars_written integer, bars_changed integer, bars_rejected integer)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
The worker's one store: the lease names its work, a history chunk
(store_chunk_bars) or a live refresh (store_live_bars), which write the
bars the worker staged under the lease's id (pgbars.staged_bars,
staged_rejects), delete them and end the lease; or an action refresh
(store_actions: pgbars.staged_actions; the columns then count actions). Raises PB001 when the lease
is no longer held. SECURITY DEFINER: the worker role writes bars only
through this function, within its lease's sessions.
Bars that changed are announced on channel pgbars_bars
(_notify_bars_stored), delivered when the worker's transaction commits.
*/
DECLARE
    v_chunk_id bigint;
    v_symbol_id uuid;
    v_timeframe text;
    v_timeframes text[];
    v_from timestamptz;
    v_to timestamptz;
    v_written integer;
    v_changed integer;
    v_rejected integer;
BEGIN
    SELECT min(s.ts), max(s.ts) INTO v_from, v_to
    FROM pgbars.staged_bars AS s
    WHERE s.lease_id = p_lease_id;
    SELECT c.id, j.symbol_id, j.timeframe, j.timeframe || array(
        SELECT d.timeframe FROM pgbars.derived_jobs AS d WHERE d.source_job_id = j.id ORDER BY d.timeframe
    )
    INTO v_chunk_id, v_symbol_id, v_timeframe, v_timeframes
    FROM pgbars.backfill_chunks AS c
    INNER JOIN pgbars.backfill_jobs AS j ON c.job_id = j.id
    WHERE c.lease_id = p_lease_id;
    IF FOUND THEN
        SELECT * INTO v_written, v_changed, v_rejected
        FROM pgbars.store_chunk_bars(v_chunk_id, p_lease_id, p_requests);
        IF v_changed > 0 THEN
            PERFORM pgbars._notify_bars_stored(v_symbol_id, v_timeframes, v_from, v_to, v_changed, FALSE);
        END IF;
        RETURN QUERY SELECT v_written, v_changed, v_rejected;
        RETURN;
    END IF;
    SELECT r.symbol_id, r.timeframe, r.targets INTO v_symbol_id, v_timeframe, v_timeframes
    FROM pgbars.live_refreshes AS r
    WHERE r.lease_id = p_lease_id;
    IF FOUND THEN
        SELECT * INTO v_written, v_changed, v_rejected
        FROM pgbars.store_live_bars(v_symbol_id, v_timeframe, p_lease_id, p_requests);
        IF v_changed > 0 THEN
            PERFORM pgbars._notify_bars_stored(v_symbol_id, v_timeframes, v_from, v_to, v_changed, TRUE);
        END IF;
        RETURN QUERY SELECT v_written, v_changed, v_rejected;
    ELSIF EXISTS (SELECT FROM pgbars.action_refreshes AS a WHERE a.lease_id = p_lease_id) THEN
        RETURN QUERY SELECT * FROM pgbars.store_actions(p_lease_id, p_requests);
    ELSE
        RAISE EXCEPTION 'lease % is no longer held: bars not stored', p_lease_id
            USING ERRCODE = 'PB001',
            HINT = 'The lease expired and the work was claimed again, or it was already finished.';
    END IF;
END;
$$;

COMMENT ON FUNCTION pgbars.store_lease(uuid, integer) IS
'Stores the caller''s staged bars for a lease of either kind (store_chunk_bars or store_live_bars) and '
'ends it. Returns bars written, changed and rejected; raises PB001 when the lease is no longer held.';
