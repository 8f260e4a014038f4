-- The XNYS session trading at p_at, pre-market through after-hours, if any.
CREATE OR REPLACE FUNCTION pgbars._live_session(p_at timestamptz)
RETURNS date
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pgbars
AS $$
    /*
    Live bars are fetched from the pre-market open (04:00 New York) until
    the after-hours close (20:00, or 17:00 on early closes): the hours the
    providers serve bars for. NULL on weekends, holidays and overnight.
    */
    SELECT s.session_date
    FROM pgbars.market_sessions AS s
    WHERE s.premarket_open <= p_at AND p_at < s.after_hours_close;
$$;

COMMENT ON FUNCTION pgbars._live_session(timestamptz) IS
'The session whose extended hours (pre-market open to after-hours close) contain p_at, or NULL.';
