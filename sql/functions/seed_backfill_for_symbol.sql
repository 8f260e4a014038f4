-- Plan backfill chunks for a symbol: one job per timeframe, chunks for unplanned sessions.
CREATE OR REPLACE FUNCTION pgbars.seed_backfill_for_symbol(
    p_symbol_id uuid,
    p_timeframes text[] DEFAULT '{h1}',
    p_start date DEFAULT NULL,
    p_end date DEFAULT NULL,
    p_years integer DEFAULT 2
)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
One job per (symbol, timeframe), ever. Each call plans only sessions of the
window that no chunk of the job covers yet, so asking again extends the job
(older or newer sessions) and never duplicates a job or a chunk; the job row
is locked so concurrent seeders plan one after the other.

Chunks hold consecutive XNYS sessions served by one provider, as many as one
request of that provider can serve: for intraday timeframes each session
costs its minutes (960 for 04:00-20:00, 780 on early closes) against the
provider's request_capacity (Polygon: 50,000 minute bars), for d1/w1 one unit
per session. The provider is the highest-priority enabled history route
whose lookback reaches the session; a chunk never spans two providers.
*/
DECLARE
    v_ticker text;
    v_window record;
    v_timeframe text;
    v_is_intraday boolean;
    v_today date := (pgbars._now() AT TIME ZONE 'America/New_York')::date;
    v_job_id bigint;
    v_created boolean;
    v_session record;
    v_chunk_no integer;
    v_chunk_cost bigint;
    v_chunk_provider text;
    v_prev_seq bigint;
    v_dates date[];
    v_chunk_nos integer[];
    v_providers text[];
    v_chunks_added integer;
    v_jobs jsonb := '[]';
BEGIN
    SELECT s.ticker INTO v_ticker FROM pgbars.symbols AS s WHERE s.id = p_symbol_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown symbol id %', p_symbol_id
            USING ERRCODE = '22023';
    END IF;
    SELECT * INTO v_window FROM pgbars._resolve_backfill_window(p_start, p_end, p_years);

    FOREACH v_timeframe IN ARRAY pgbars._validate_timeframes(p_timeframes) LOOP
        SELECT tf.is_intraday INTO v_is_intraday FROM pgbars.timeframes AS tf WHERE tf.name = v_timeframe;

        INSERT INTO pgbars.backfill_jobs (symbol_id, timeframe)
        VALUES (p_symbol_id, v_timeframe)
        ON CONFLICT (symbol_id, timeframe) DO NOTHING
        RETURNING id INTO v_job_id;
        v_created := v_job_id IS NOT NULL;
        SELECT j.id INTO v_job_id
        FROM pgbars.backfill_jobs AS j
        WHERE j.symbol_id = p_symbol_id AND j.timeframe = v_timeframe
        FOR UPDATE;

        -- Assign each unplanned session a chunk number, greedily, in date order.
        v_dates := '{}';
        v_chunk_nos := '{}';
        v_providers := '{}';
        v_chunk_no := 0;
        v_chunk_cost := 0;
        v_chunk_provider := NULL;
        v_prev_seq := NULL;
        FOR v_session IN
            SELECT
                cal.session_date,
                cal.seq,
                CASE WHEN v_is_intraday THEN cal.base_minutes ELSE 1 END AS cost,
                route.provider,
                route.request_capacity
            FROM (
                SELECT
                    s.session_date,
                    s.base_minutes,
                    row_number() OVER (ORDER BY s.session_date) AS seq
                FROM pgbars.market_sessions AS s
            ) AS cal
            LEFT JOIN LATERAL (
                SELECT r.provider, p.request_capacity
                FROM pgbars.provider_routes AS r
                INNER JOIN pgbars.providers AS p ON r.provider = p.name
                WHERE
                    r.timeframe = v_timeframe
                    AND r.purpose = 'history'
                    AND r.enabled
                    AND p.enabled
                    AND (r.max_lookback IS NULL OR cal.session_date >= v_today - r.max_lookback)
                ORDER BY r.priority
                LIMIT 1
            ) AS route ON true
            WHERE
                cal.session_date BETWEEN v_window.window_start AND v_window.window_end
                AND NOT EXISTS (
                    SELECT 1
                    FROM pgbars.backfill_chunks AS c
                    WHERE
                        c.job_id = v_job_id
                        AND cal.session_date BETWEEN c.first_session AND c.last_session
                )
            ORDER BY cal.session_date
        LOOP
            IF v_session.provider IS NULL THEN
                RAISE EXCEPTION 'no enabled history route serves timeframe % for session %',
                    v_timeframe, v_session.session_date
                    USING ERRCODE = '55000',
                    HINT = 'See pgbars.provider_routes and pgbars.providers.enabled.';
            END IF;
            -- A new chunk starts after a planned gap, on a provider change, or when full.
            IF v_prev_seq IS NULL
                OR v_session.seq <> v_prev_seq + 1
                OR v_session.provider <> v_chunk_provider
                OR v_chunk_cost + v_session.cost > v_session.request_capacity THEN
                v_chunk_no := v_chunk_no + 1;
                v_chunk_cost := 0;
                v_chunk_provider := v_session.provider;
            END IF;
            v_chunk_cost := v_chunk_cost + v_session.cost;
            v_prev_seq := v_session.seq;
            v_dates := v_dates || v_session.session_date;
            v_chunk_nos := v_chunk_nos || v_chunk_no;
            v_providers := v_providers || v_session.provider;
        END LOOP;

        -- created_at is the planning clock: roll_forward_backfills reads it to tell
        -- jobs planned up to their last completed session from explicit past ends.
        INSERT INTO pgbars.backfill_chunks (
            job_id, provider, first_session, last_session, session_count, created_at
        )
        SELECT
            v_job_id, min(plan.provider), min(plan.session_date), max(plan.session_date), count(*),
            pgbars._now()
        FROM unnest(v_dates, v_chunk_nos, v_providers) AS plan (session_date, chunk_no, provider)
        GROUP BY plan.chunk_no;
        GET DIAGNOSTICS v_chunks_added = ROW_COUNT;

        IF v_chunks_added > 0 THEN
            UPDATE pgbars.backfill_jobs SET updated_at = now() WHERE id = v_job_id;
        END IF;

        v_jobs := v_jobs || jsonb_build_object(
            'job_id', v_job_id,
            'timeframe', v_timeframe,
            'created', v_created,
            'chunks_added', v_chunks_added,
            'sessions_added', cardinality(v_dates),
            'chunks_total', (SELECT count(*) FROM pgbars.backfill_chunks AS c WHERE c.job_id = v_job_id)
        );
    END LOOP;

    RETURN jsonb_build_object(
        'symbol_id', p_symbol_id,
        'ticker', v_ticker,
        'window_start', v_window.window_start,
        'window_end', v_window.window_end,
        'jobs', v_jobs
    );
END;
$$;

COMMENT ON FUNCTION pgbars.seed_backfill_for_symbol(uuid, text[], date, date, integer) IS
'Plans backfill for a symbol: one job per timeframe (default h1), chunks of consecutive sessions '
'sized to one provider request, for the sessions of the window (default: the last 2 years of '
'completed sessions) that are not planned yet. Idempotent; returns the jobs as jsonb.';
