-- Delete ledger rows older than p_keep.
CREATE OR REPLACE FUNCTION pgbars.prune_provider_calls(p_keep interval DEFAULT '7 days')
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/* Never prunes inside any provider's rate-limit window, whatever p_keep says. */
DECLARE
    v_keep interval := greatest(
        p_keep,
        (SELECT max(p.window_length + p.window_margin) FROM pgbars.providers AS p)
    );
    v_deleted bigint;
BEGIN
    DELETE FROM pgbars.provider_calls AS c
    WHERE c.starts_at < now() - v_keep;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END;
$$;

COMMENT ON FUNCTION pgbars.prune_provider_calls(interval) IS
'Deletes provider_calls rows that started more than p_keep (default 7 days) ago; returns how many.';
