-- The time pgbars plans against: now(), unless a session sets pgbars.now.
CREATE OR REPLACE FUNCTION pgbars._now()
RETURNS timestamptz
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pgbars
AS $$
    /*
    Session planning (which sessions are complete, what "today" is) reads
    the clock through this function, so that tests and replays can set
    `SET pgbars.now = '2024-11-29 12:00 America/New_York'` and see the
    system as it was then. Leases and the rate limit use the real clock.
    */
    SELECT coalesce(nullif(current_setting('pgbars.now', true), '')::timestamptz, now());
$$;

COMMENT ON FUNCTION pgbars._now() IS
'The planning clock: now(), or the session setting pgbars.now when set (tests, replays).';
