-- The time pgbars plans against: now(), unless the schema's owner sets pgbars.now.
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

    Any session may set a custom setting, and the planning functions run
    with the owner's rights, so the override is honoured only in sessions
    whose login role (session_user) has the rights of the pgbars schema's
    owner (the owner and superusers: tests, replays), or where the owner
    turned on planning_clock.allow_override (a test database). Otherwise,
    for the worker and reader roles and any other login, pgbars.now is
    ignored.
    */
    SELECT CASE
        WHEN
            coalesce(current_setting('pgbars.now', true), '') <> ''
            AND (
                pg_has_role(
                    session_user,
                    (SELECT n.nspowner FROM pg_catalog.pg_namespace AS n WHERE n.nspname = 'pgbars'),
                    'USAGE'
                )
                OR (SELECT c.allow_override FROM pgbars.planning_clock AS c)
            )
            THEN current_setting('pgbars.now')::timestamptz
        ELSE now()
    END;
$$;

COMMENT ON FUNCTION pgbars._now() IS
'The planning clock: now(), or the setting pgbars.now in a session of the schema owner, or of any role '
'where planning_clock.allow_override is on (tests, replays).';
