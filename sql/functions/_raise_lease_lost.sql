-- Raise PB001: a chunk outcome was reported without the current lease.
CREATE OR REPLACE FUNCTION pgbars._raise_lease_lost(p_chunk_id bigint)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pgbars
AS $$
/*
Raising (not returning false) aborts the caller's transaction, so bars a
worker wrote under a lease it lost are rolled back with its outcome: the
worker that holds the lease now decides.
*/
DECLARE
    v_status text;
BEGIN
    SELECT c.status INTO v_status FROM pgbars.backfill_chunks AS c WHERE c.id = p_chunk_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'chunk % does not exist', p_chunk_id
            USING ERRCODE = 'PB001';
    END IF;
    RAISE EXCEPTION 'chunk % is no longer leased to this worker (it is %): outcome not recorded',
        p_chunk_id, v_status
        USING ERRCODE = 'PB001',
        HINT = 'The lease expired and the chunk was claimed again, or it was already finished.';
END;
$$;

COMMENT ON FUNCTION pgbars._raise_lease_lost(bigint) IS
'Raises SQLSTATE PB001 explaining why an outcome for the chunk was refused.';
