-- The arguments every claim takes, checked once: a worker name, a limit of at least 1, a positive lease.
CREATE OR REPLACE FUNCTION pgbars._check_claim_arguments(
    p_worker text,
    p_limit integer,
    p_lease interval
)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
claim_backfill_chunks, claim_live_refreshes and claim_action_refreshes call
it first: bad arguments raise 22023 before anything is locked or leased.
*/
BEGIN
    IF p_worker IS NULL OR btrim(p_worker) = '' THEN
        RAISE EXCEPTION 'worker name is missing' USING ERRCODE = '22023';
    END IF;
    IF p_limit IS NULL OR p_limit < 1 THEN
        RAISE EXCEPTION 'limit must be at least 1, not %', p_limit USING ERRCODE = '22023';
    END IF;
    IF p_lease IS NULL OR p_lease <= interval '0' THEN
        RAISE EXCEPTION 'lease must be positive, not %', p_lease USING ERRCODE = '22023';
    END IF;
END;
$$;

COMMENT ON FUNCTION pgbars._check_claim_arguments(text, integer, interval) IS
'Raises 22023 for a missing worker name, a limit under 1 or a lease that is not positive: every claim''s '
'first step.';
