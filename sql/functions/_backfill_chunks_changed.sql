-- The trigger function: the lanes of every job whose chunks a statement inserted, changed or deleted.
CREATE OR REPLACE FUNCTION pgbars._backfill_chunks_changed()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
Once per statement (transition tables): a claim of ten chunks, a seed of a
thousand, a cascade from a deleted symbol each refresh the lanes (job,
provider) of the chunks they touched, once.
*/
DECLARE
    v_jobs bigint[];
    v_providers text[];
BEGIN
    IF tg_op = 'INSERT' THEN
        SELECT array_agg(p.job_id), array_agg(p.provider) INTO v_jobs, v_providers
        FROM (SELECT DISTINCT n.job_id, n.provider FROM new_chunks AS n) AS p;
    ELSIF tg_op = 'DELETE' THEN
        SELECT array_agg(p.job_id), array_agg(p.provider) INTO v_jobs, v_providers
        FROM (SELECT DISTINCT o.job_id, o.provider FROM old_chunks AS o) AS p;
    ELSE
        SELECT array_agg(p.job_id), array_agg(p.provider) INTO v_jobs, v_providers
        FROM (
            SELECT n.job_id, n.provider FROM new_chunks AS n
            UNION
            SELECT o.job_id, o.provider FROM old_chunks AS o
        ) AS p;
    END IF;
    IF v_jobs IS NOT NULL THEN
        PERFORM pgbars._refresh_backfill_lanes(v_jobs, v_providers);
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION pgbars._backfill_chunks_changed() IS
'Trigger function: refreshes the backfill_lanes of the jobs whose chunks a statement inserted, updated or deleted.';
