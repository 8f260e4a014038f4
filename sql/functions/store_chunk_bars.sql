-- Write a chunk's staged bars and rejected rows, and mark the chunk done.
CREATE OR REPLACE FUNCTION pgbars.store_chunk_bars(
    p_chunk_id bigint,
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
The write half of a chunk, inside the worker's transaction. The worker has
COPYed the validated bars into pgbars.staged_bars and the rows it refused
into pgbars.staged_rejects, under the lease's id; this function reads them,
and deletes them before it returns. SECURITY DEFINER: the worker role may
only add staged rows, never write bars or the quarantine itself. The lease is checked first and
again by complete_backfill_chunk at the end, whose PB001 aborts the whole
transaction: a worker that lost its lease writes nothing.
Bars are merged by _merge_staged_bars (the one write of fetched bars: a
row whose values did not change is not rewritten, so re-fetching a range
costs reads only). The chunk's quarantine is replaced by this fetch's.
Timeframes derived from this one (the job's derived_jobs: h4 from h1) are
recomputed by derive_bars for the chunk's sessions, in this transaction.
Backfill bars are history (is_provisional false): a chunk never holds the
session in progress. bars_written counts the valid bars of the answer (stored or already
there); bars_changed those inserted or updated.
*/
DECLARE
    v_chunk record;
    v_written integer;
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

    SELECT count(*) INTO v_written FROM pgbars.staged_bars AS s WHERE s.lease_id = p_lease_id;
    v_changed := pgbars._merge_staged_bars(
        p_lease_id, v_chunk.first_session, v_chunk.last_session,
        v_chunk.symbol_id, v_chunk.timeframe, v_chunk.provider, FALSE
    );

    -- Derived bars cost no request: recomputed here from the bars just stored
    -- (and, for w1, the rest of their weeks). Without derived jobs, one lookup.
    PERFORM pgbars.derive_bars(v_chunk.symbol_id, v_chunk.timeframe, v_chunk.first_session, v_chunk.last_session);

    DELETE FROM pgbars.rejected_bars AS r WHERE r.chunk_id = p_chunk_id;
    INSERT INTO pgbars.rejected_bars (chunk_id, symbol_id, timeframe, provider, ts, raw, reason)
    SELECT p_chunk_id, v_chunk.symbol_id, v_chunk.timeframe, v_chunk.provider, s.ts, pgbars._redact_json(s.raw), s.reason
    FROM pgbars.staged_rejects AS s
    WHERE s.lease_id = p_lease_id;
    GET DIAGNOSTICS v_rejected = ROW_COUNT;
    DELETE FROM pgbars.staged_bars AS s WHERE s.lease_id = p_lease_id;
    DELETE FROM pgbars.staged_rejects AS s WHERE s.lease_id = p_lease_id;

    PERFORM pgbars.complete_backfill_chunk(p_chunk_id, p_lease_id, v_written, v_rejected, p_requests);
    RETURN QUERY SELECT v_written, v_changed, v_rejected;
END;
$$;

COMMENT ON FUNCTION pgbars.store_chunk_bars(bigint, uuid, integer) IS
'Merges the bars the worker staged for the lease in pgbars.staged_bars (unchanged rows are not rewritten), '
'quarantines its pgbars.staged_rejects in rejected_bars and marks the leased chunk done, in the '
'caller''s transaction. Returns bars written, changed and rejected; raises PB001 without the lease.';
