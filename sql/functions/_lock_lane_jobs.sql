-- Lock the jobs whose lanes a statement is about to write, in id order (the lanes' writers take turns per job).
CREATE OR REPLACE FUNCTION pgbars._lock_lane_jobs(p_jobs bigint[])
RETURNS bigint
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
    /*
    FOR NO KEY UPDATE of each job row, in id order so that two writers of
    several jobs lock them in the same order. It conflicts with the
    seeders' FOR UPDATE of the job they plan and with another lane
    writer's lock, not with the foreign-key checks of new chunks. A job
    already gone (a cascade deleting it) is skipped.
    */
    SELECT count(*)
    FROM (
        SELECT j.id
        FROM pgbars.backfill_jobs AS j
        WHERE j.id = ANY(p_jobs)
        ORDER BY j.id
        FOR NO KEY UPDATE
    ) AS locked;
$$;

COMMENT ON FUNCTION pgbars._lock_lane_jobs(bigint[]) IS
'Locks the backfill_jobs rows of p_jobs (FOR NO KEY UPDATE, in id order) before their lanes are written.';
