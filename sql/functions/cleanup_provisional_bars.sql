-- Delete provisional (live) bars that history has replaced.
CREATE OR REPLACE FUNCTION pgbars.cleanup_provisional_bars()
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
A provisional bar (is_provisional: stored by a live refresh; history bars,
derived ones included, never have it) is deleted once its start is older
than live_settings.keep_provisional (by the planning clock) and history has
replaced its session: a done chunk of the symbol's job for that timeframe,
or for the timeframe it is derived from (h4 from h1), covers the session,
and the timeframe has history bars on that session's date. Until then it
stays, so a session whose history fetch failed, is still queued or came
back empty keeps today's bars: nothing is lost. Every
pgbars work run calls this after the roll-forward; when no provisional bar
is old enough (the partial index finds that out) it takes no write lock on
the bars. Returns the bars deleted.
*/
DECLARE
    v_deleted integer;
BEGIN
    IF NOT EXISTS (
        SELECT
        FROM pgbars.ohlc_bars_v2 AS b
        WHERE b.is_provisional AND b.ts < pgbars._now() - (SELECT cfg.keep_provisional FROM pgbars.live_settings AS cfg)
    ) THEN
        RETURN 0;
    END IF;
    DELETE FROM pgbars.ohlc_bars_v2 AS b
    USING pgbars.live_settings AS cfg
    WHERE
        b.is_provisional
        AND b.ts < pgbars._now() - cfg.keep_provisional
        AND EXISTS (
            SELECT
            FROM pgbars.backfill_jobs AS j
            INNER JOIN pgbars.backfill_chunks AS c ON j.id = c.job_id
            WHERE
                j.symbol_id = b.symbol_id
                AND c.status = 'done'
                AND (b.ts AT TIME ZONE 'America/New_York')::date BETWEEN c.first_session AND c.last_session
                AND (
                    j.timeframe = b.timeframe
                    OR EXISTS (
                        SELECT FROM pgbars.derived_jobs AS d
                        WHERE d.source_job_id = j.id AND d.timeframe = b.timeframe
                    )
                )
        )
        AND EXISTS (
            SELECT
            FROM pgbars.ohlc_bars_v2 AS h
            WHERE
                h.symbol_id = b.symbol_id
                AND h.timeframe = b.timeframe
                AND NOT h.is_provisional
                AND NOT h.is_forecast
                AND h.ts >= ((b.ts AT TIME ZONE 'America/New_York')::date)::timestamp AT TIME ZONE 'America/New_York'
                AND h.ts < ((b.ts AT TIME ZONE 'America/New_York')::date + 1)::timestamp AT TIME ZONE 'America/New_York'
        );
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END;
$$;

COMMENT ON FUNCTION pgbars.cleanup_provisional_bars() IS
'Deletes provisional bars older than live_settings.keep_provisional whose session history has replaced '
'(a done chunk covers it and history bars exist on its date). Returns the number deleted.';
