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

A timeframe with an enabled derived route (h4 from h1, w1 from d1) is never
fetched: its source timeframe is planned instead, for the same window (for
w1 from the Monday of the window's first week), and a derived job
(derived_jobs) ties it to the source job, whose stored chunks derive its
bars (store_chunk_bars -> derive_bars). A new derived job is derived at once
from the source bars already stored. Derived timeframes are listed under
'derived' in the result; 'jobs' lists the jobs that were planned.
*/
DECLARE
    v_ticker text;
    v_window record;
    v_from date;
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
    v_firsts date[];
    v_lasts date[];
    v_counts integer[];
    v_providers text[];
    v_sessions_added integer;
    v_chunks_added integer;
    v_jobs jsonb := '[]';
    v_requested text[];
    v_planned text[];
    v_derived record;
    v_derived_created boolean;
    v_done_span record;
    v_bars_derived integer;
    v_derived_jobs jsonb := '[]';
BEGIN
    SELECT s.ticker INTO v_ticker FROM pgbars.symbols AS s WHERE s.id = p_symbol_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown symbol id %', p_symbol_id
            USING ERRCODE = '22023';
    END IF;
    SELECT * INTO v_window FROM pgbars._resolve_backfill_window(p_start, p_end, p_years);

    -- Derived timeframes are planned as their source timeframe.
    v_requested := pgbars._validate_timeframes(p_timeframes);
    SELECT array_agg(tf.name ORDER BY tf.sort_order)
    INTO v_planned
    FROM pgbars.timeframes AS tf
    WHERE tf.name IN (
        SELECT coalesce(r.source_timeframe, t.requested)
        FROM unnest(v_requested) AS t (requested)
        LEFT JOIN pgbars.derived_routes AS r ON t.requested = r.timeframe AND r.enabled
    );

    FOREACH v_timeframe IN ARRAY v_planned LOOP
        SELECT tf.is_intraday INTO v_is_intraday FROM pgbars.timeframes AS tf WHERE tf.name = v_timeframe;
        -- A source of a requested weekly derivation (d1 for w1) starts on the Monday
        -- of the window's first week, so that the first derived week is whole.
        v_from := v_window.window_start;
        IF EXISTS (
            SELECT
            FROM pgbars.derived_routes AS r
            INNER JOIN pgbars.timeframes AS tf ON r.timeframe = tf.name
            WHERE
                r.enabled
                AND r.source_timeframe = v_timeframe
                AND r.timeframe = ANY(v_requested)
                AND NOT tf.is_intraday
        ) THEN
            v_from := date_trunc('week', v_window.window_start::timestamp)::date;
        END IF;

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
        -- the chunks as they are cut: first and last session, sessions, provider
        v_firsts := '{}';
        v_lasts := '{}';
        v_counts := '{}';
        v_providers := '{}';
        v_sessions_added := 0;
        v_chunk_no := 0;
        v_chunk_cost := 0;
        v_chunk_provider := NULL;
        v_prev_seq := NULL;
        FOR v_session IN
            -- the timeframe's history routes, read once (not once per session)
            WITH routes AS MATERIALIZED (
                SELECT
                    r.provider,
                    r.priority,
                    r.max_lookback,
                    p.request_capacity
                FROM pgbars.provider_routes AS r
                INNER JOIN pgbars.providers AS p ON r.provider = p.name
                WHERE
                    r.timeframe = v_timeframe
                    AND r.purpose = 'history'
                    AND r.enabled
                    AND p.enabled
            )

            -- each session with its route: the first by priority whose lookback reaches it
            -- (one sort of the window, not one per session); NULL: none does
            SELECT DISTINCT ON (cal.session_date)
                cal.session_date,
                cal.seq,
                CASE WHEN v_is_intraday THEN cal.base_minutes ELSE 1 END AS cost,
                r.provider,
                r.request_capacity
            FROM (
                -- seq numbers the window's sessions: consecutive sessions, consecutive numbers
                SELECT
                    s.session_date,
                    s.base_minutes,
                    row_number() OVER (ORDER BY s.session_date) AS seq
                FROM pgbars.market_sessions AS s
                WHERE s.session_date BETWEEN v_from AND v_window.window_end
            ) AS cal
            LEFT JOIN routes AS r
                ON r.max_lookback IS NULL OR cal.session_date >= v_today - r.max_lookback
            WHERE
                NOT EXISTS (
                    SELECT 1
                    FROM pgbars.backfill_chunks AS c
                    WHERE
                        c.job_id = v_job_id
                        AND cal.session_date BETWEEN c.first_session AND c.last_session
                )
            ORDER BY cal.session_date, r.priority
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
                v_firsts := v_firsts || v_session.session_date;
                v_lasts := v_lasts || v_session.session_date;
                v_counts := v_counts || 0;
                v_providers := v_providers || v_session.provider;
            END IF;
            v_chunk_cost := v_chunk_cost + v_session.cost;
            v_prev_seq := v_session.seq;
            v_lasts[v_chunk_no] := v_session.session_date;
            v_counts[v_chunk_no] := v_counts[v_chunk_no] + 1;
            v_sessions_added := v_sessions_added + 1;
        END LOOP;

        -- created_at is the planning clock: roll_forward_backfills reads it to tell
        -- jobs planned up to their last completed session from explicit past ends.
        INSERT INTO pgbars.backfill_chunks (
            job_id, provider, first_session, last_session, session_count, created_at
        )
        SELECT
            v_job_id, plan.provider, plan.first_session, plan.last_session, plan.session_count,
            pgbars._now()
        FROM unnest(v_providers, v_firsts, v_lasts, v_counts) AS plan (
            provider, first_session, last_session, session_count
        );
        GET DIAGNOSTICS v_chunks_added = ROW_COUNT;

        IF v_chunks_added > 0 AND NOT v_created THEN
            UPDATE pgbars.backfill_jobs SET updated_at = now() WHERE id = v_job_id;
        END IF;

        v_jobs := v_jobs || jsonb_build_object(
            'job_id', v_job_id,
            'timeframe', v_timeframe,
            'created', v_created,
            'chunks_added', v_chunks_added,
            'sessions_added', v_sessions_added,
            'chunks_total', (SELECT count(*) FROM pgbars.backfill_chunks AS c WHERE c.job_id = v_job_id)
        );
    END LOOP;

    -- Tie each requested derived timeframe to its source job (planned and
    -- locked above); a new tie derives from the source bars stored so far.
    FOR v_derived IN
        SELECT
            r.timeframe,
            r.source_timeframe,
            j.id AS source_job_id
        FROM pgbars.derived_routes AS r
        INNER JOIN pgbars.timeframes AS tf ON r.timeframe = tf.name
        INNER JOIN pgbars.backfill_jobs AS j
            ON j.symbol_id = p_symbol_id AND r.source_timeframe = j.timeframe
        WHERE r.enabled AND r.timeframe = ANY(v_requested)
        ORDER BY tf.sort_order
    LOOP
        INSERT INTO pgbars.derived_jobs (source_job_id, timeframe)
        VALUES (v_derived.source_job_id, v_derived.timeframe)
        ON CONFLICT (source_job_id, timeframe) DO NOTHING;
        v_derived_created := FOUND;
        v_bars_derived := 0;
        IF v_derived_created THEN
            SELECT min(c.first_session) AS first_session, max(c.last_session) AS last_session
            INTO v_done_span
            FROM pgbars.backfill_chunks AS c
            WHERE c.job_id = v_derived.source_job_id AND c.status = 'done';
            IF v_done_span.first_session IS NOT NULL THEN
                v_bars_derived := pgbars.derive_bars(
                    p_symbol_id, v_derived.source_timeframe, v_done_span.first_session, v_done_span.last_session
                );
            END IF;
        END IF;
        v_derived_jobs := v_derived_jobs || jsonb_build_object(
            'timeframe', v_derived.timeframe,
            'source_timeframe', v_derived.source_timeframe,
            'source_job_id', v_derived.source_job_id,
            'created', v_derived_created,
            'bars_derived', v_bars_derived
        );
    END LOOP;

    -- The symbol's corporate actions (docs/database.md): fetched from every
    -- enabled source at once for a new symbol, and again at once when the
    -- window now reaches before the ex-dates the last refresh covered.
    INSERT INTO pgbars.action_refreshes AS r (symbol_id, provider)
    SELECT p_symbol_id, src.provider
    FROM pgbars.corporate_action_sources AS src
    WHERE src.enabled
    ON CONFLICT (symbol_id, provider) DO UPDATE
        SET due_at = least(r.due_at, now())
        WHERE r.covered_from > (
            SELECT min(c.first_session)
            FROM pgbars.backfill_jobs AS j
            INNER JOIN pgbars.backfill_chunks AS c ON j.id = c.job_id
            WHERE j.symbol_id = p_symbol_id
        );

    RETURN jsonb_build_object(
        'symbol_id', p_symbol_id,
        'ticker', v_ticker,
        'window_start', v_window.window_start,
        'window_end', v_window.window_end,
        'jobs', v_jobs,
        'derived', v_derived_jobs
    );
END;
$$;

COMMENT ON FUNCTION pgbars.seed_backfill_for_symbol(uuid, text[], date, date, integer) IS
'Plans backfill for a symbol: one job per timeframe (default h1), chunks of consecutive sessions '
'sized to one provider request, for the sessions of the window (default: the last 2 years of '
'completed sessions) that are not planned yet. A derived timeframe (derived_routes) plans its source '
'timeframe and gets a derived job instead of chunks. Idempotent; returns the jobs as jsonb.';
