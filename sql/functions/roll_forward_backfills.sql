-- Extend every open-ended job to the last completed session: new chunks for the new sessions only.
CREATE OR REPLACE FUNCTION pgbars.roll_forward_backfills()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
A job rolls forward when it was planned up to the last completed session of
its day: the first session after its last chunk had not closed yet when that
chunk was planned (backfill_chunks.created_at, the planning clock). A window
requested with an explicit end in the past fails that test and stays where it
was asked to end; an end at or after the last completed session is the same
as no end. The test reads one chunk and one session per job through their
primary keys, so a run that finds nothing new reads little and writes nothing.

The planning itself is seed_backfill_for_symbol's (chunk sizing, routes, the
job lock), called per job with the window from the day after its last planned
session to the last completed session. The job row is locked first and its
end read again, so a second caller waits, then finds the job current. Jobs
are taken in id order, so two callers cannot deadlock. A job no enabled route
serves (SQLSTATE 55000) is skipped and reported; the others still roll, and
the next call tries it again.
*/
DECLARE
    v_last_completed date := pgbars._last_completed_session(pgbars._now());
    v_job record;
    v_last_session date;
    v_seed jsonb;
    v_chunks integer;
    v_sessions integer;
    v_jobs jsonb := '[]';
    v_skipped jsonb := '[]';
    v_chunks_added integer := 0;
    v_sessions_added integer := 0;
BEGIN
    FOR v_job IN
        SELECT
            j.id,
            j.symbol_id,
            j.timeframe,
            s.ticker::text AS ticker
        FROM pgbars.backfill_jobs AS j
        INNER JOIN pgbars.symbols AS s ON j.symbol_id = s.id
        CROSS JOIN LATERAL (
            SELECT
                c.last_session,
                c.created_at
            FROM pgbars.backfill_chunks AS c
            WHERE c.job_id = j.id
            ORDER BY c.last_session DESC
            LIMIT 1
        ) AS last_chunk
        CROSS JOIN LATERAL (
            SELECT ms.after_hours_close
            FROM pgbars.market_sessions AS ms
            WHERE ms.session_date > last_chunk.last_session
            ORDER BY ms.session_date
            LIMIT 1
        ) AS next_session
        WHERE
            next_session.after_hours_close <= pgbars._now()
            AND next_session.after_hours_close > last_chunk.created_at
        ORDER BY j.id
    LOOP
        PERFORM 1 FROM pgbars.backfill_jobs AS j WHERE j.id = v_job.id FOR UPDATE;
        -- Read again under the lock: another caller may have rolled it meanwhile.
        SELECT max(c.last_session) INTO v_last_session
        FROM pgbars.backfill_chunks AS c
        WHERE c.job_id = v_job.id;
        CONTINUE WHEN v_last_session >= v_last_completed;

        BEGIN
            v_seed := pgbars.seed_backfill_for_symbol(
                v_job.symbol_id, ARRAY[v_job.timeframe], v_last_session + 1, v_last_completed
            );
        EXCEPTION WHEN object_not_in_prerequisite_state THEN
            v_skipped := v_skipped || jsonb_build_object(
                'job_id', v_job.id,
                'ticker', v_job.ticker,
                'timeframe', v_job.timeframe,
                'error', sqlerrm
            );
            CONTINUE;
        END;

        v_chunks := (v_seed -> 'jobs' -> 0 ->> 'chunks_added')::integer;
        v_sessions := (v_seed -> 'jobs' -> 0 ->> 'sessions_added')::integer;
        CONTINUE WHEN v_chunks = 0;
        v_chunks_added := v_chunks_added + v_chunks;
        v_sessions_added := v_sessions_added + v_sessions;
        v_jobs := v_jobs || jsonb_build_object(
            'job_id', v_job.id,
            'ticker', v_job.ticker,
            'timeframe', v_job.timeframe,
            'first_session', (
                SELECT min(c.first_session)
                FROM pgbars.backfill_chunks AS c
                WHERE c.job_id = v_job.id AND c.first_session > v_last_session
            ),
            'last_session', v_last_completed,
            'chunks_added', v_chunks,
            'sessions_added', v_sessions
        );
    END LOOP;

    RETURN jsonb_build_object(
        'last_completed_session', v_last_completed,
        'jobs_extended', jsonb_array_length(v_jobs),
        'chunks_added', v_chunks_added,
        'sessions_added', v_sessions_added,
        'jobs', v_jobs,
        'skipped', v_skipped
    );
END;
$$;

COMMENT ON FUNCTION pgbars.roll_forward_backfills() IS
'Extends every job planned up to its last completed session (not explicit past ends) to the current '
'last completed session, with new chunks for the new sessions only (planned by seed_backfill_for_symbol). '
'Writes nothing when every job is current; returns jobs_extended, chunks_added, sessions_added and the jobs.';
