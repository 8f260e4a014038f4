-- Give back a reservation that will not be used.
CREATE OR REPLACE FUNCTION pgbars.cancel_provider_call(p_call_id bigint)
RETURNS boolean
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
    /* A cancelled reservation no longer counts against the rate limit. */
    WITH cancelled AS (
        UPDATE pgbars.provider_calls AS c
        SET status = 'cancelled', finished_at = clock_timestamp()
        WHERE c.id = p_call_id AND c.status = 'reserved'
        RETURNING 1
    )

    SELECT EXISTS (SELECT 1 FROM cancelled);
$$;

COMMENT ON FUNCTION pgbars.cancel_provider_call(bigint) IS
'Cancels an unused reservation so it stops counting against the rate limit; '
'true if it was open, false otherwise.';
