-- The latest session whose after-hours trading has closed at p_at.
CREATE OR REPLACE FUNCTION pgbars._last_completed_session(p_at timestamptz)
RETURNS date
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pgbars
AS $$
    /*
    Providers serve extended hours until 20:00 New York (17:00 on early
    closes), so a session is history only once that has passed: the
    current session is never part of a backfill.
    */
    SELECT max(s.session_date)
    FROM pgbars.market_sessions AS s
    -- sessions close in date order: the primary key, backwards from the newest session that
    -- could have closed, reaches it at once instead of scanning the whole calendar
    WHERE s.session_date <= (p_at AT TIME ZONE 'America/New_York')::date AND s.after_hours_close <= p_at;
$$;

COMMENT ON FUNCTION pgbars._last_completed_session(timestamptz) IS
'The latest XNYS session whose after-hours close is at or before p_at.';
