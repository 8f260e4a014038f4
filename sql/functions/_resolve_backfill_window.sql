-- Turn a requested backfill window into session dates, or raise.
CREATE OR REPLACE FUNCTION pgbars._resolve_backfill_window(
    p_start date,
    p_end date,
    p_years integer
)
RETURNS TABLE (window_start date, window_end date)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pgbars
AS $$
/*
Defaults: the window ends at the last completed session and reaches back
p_years years. An explicit end after the last completed session is clamped
to it (today's session is not history yet); dates in the future, windows
that end before they start, windows without a session (weekends, holidays)
and dates before the calendar are errors.
*/
DECLARE
    v_today date := (pgbars._now() AT TIME ZONE 'America/New_York')::date;
    v_last_completed date := pgbars._last_completed_session(pgbars._now());
    v_calendar_start date;
BEGIN
    SELECT min(s.session_date) INTO v_calendar_start FROM pgbars.market_sessions AS s;
    IF v_calendar_start IS NULL OR v_last_completed IS NULL THEN
        RAISE EXCEPTION 'the trading calendar is empty'
            USING ERRCODE = '55000', HINT = 'Run `pgbars db upgrade` to load market_sessions.';
    END IF;
    IF p_years IS NOT NULL AND (p_years < 1 OR p_years > 50) THEN
        RAISE EXCEPTION 'years must be between 1 and 50, not %', p_years
            USING ERRCODE = '22023';
    END IF;
    IF p_start > v_today THEN
        RAISE EXCEPTION 'start date % is in the future (today in New York is %)', p_start, v_today
            USING ERRCODE = '22023';
    END IF;
    IF p_end > v_today THEN
        RAISE EXCEPTION 'end date % is in the future (today in New York is %)', p_end, v_today
            USING ERRCODE = '22023';
    END IF;
    IF p_start > p_end THEN
        RAISE EXCEPTION 'start date % is after end date %', p_start, p_end
            USING ERRCODE = '22023';
    END IF;

    window_end := least(coalesce(p_end, v_last_completed), v_last_completed);
    window_start := coalesce(
        p_start,
        (window_end - make_interval(years => coalesce(p_years, 2)))::date + 1
    );
    IF window_start < v_calendar_start THEN
        IF p_start IS NULL THEN
            -- the start was computed, not given: say from what
            RAISE EXCEPTION 'start date % (% years before %) is before the trading calendar, which begins %',
                window_start, coalesce(p_years, 2), window_end, v_calendar_start
                USING ERRCODE = '22023',
                HINT = 'Ask for fewer years, or give a start date.';
        END IF;
        RAISE EXCEPTION 'start date % is before the trading calendar, which begins %',
            window_start, v_calendar_start
            USING ERRCODE = '22023';
    END IF;
    IF window_start > window_end THEN
        RAISE EXCEPTION 'no completed session between % and %', window_start, coalesce(p_end, v_today)
            USING ERRCODE = '22023',
            HINT = 'Today''s session becomes history after its after-hours close.';
    END IF;
    -- A window of weekends and holidays only would make a job with nothing to
    -- fetch, shown as done.
    IF NOT EXISTS (
        SELECT FROM pgbars.market_sessions AS s
        WHERE s.session_date BETWEEN window_start AND window_end
    ) THEN
        RAISE EXCEPTION 'no trading session between % and %', window_start, window_end
            USING ERRCODE = '22023',
            HINT = 'Weekends and exchange holidays have no session.';
    END IF;
    RETURN NEXT;
END;
$$;

COMMENT ON FUNCTION pgbars._resolve_backfill_window(date, date, integer) IS
'Validates a backfill window and returns it as session dates (default: the last p_years years of completed sessions).';
