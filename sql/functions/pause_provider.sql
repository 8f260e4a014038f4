-- Pause a provider for every worker, e.g. after an HTTP 429.
CREATE OR REPLACE FUNCTION pgbars.pause_provider(p_provider text, p_until timestamptz)
RETURNS timestamptz
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
Pauses only ever lengthen (two workers hit by the same 429 agree), and are
capped at one day so a bogus Retry-After cannot silence a provider for good.
Without p_until (a 429 with no Retry-After) the pause is one rate-limit
window. Claims skip paused providers and reservations start after the pause.
*/
DECLARE
    v_until timestamptz;
BEGIN
    UPDATE pgbars.providers AS p
    SET paused_until = greatest(
        p.paused_until,
        least(coalesce(p_until, now() + p.window_length), now() + interval '1 day')
    )
    WHERE p.name = p_provider
    RETURNING p.paused_until INTO v_until;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown provider %', quote_literal(p_provider) USING ERRCODE = '22023';
    END IF;
    RETURN v_until;
END;
$$;

COMMENT ON FUNCTION pgbars.pause_provider(text, timestamptz) IS
'Pauses a provider for all workers until p_until (default: one rate-limit window), never shortening '
'an existing pause and at most one day ahead.';
