-- The worker's roll-forward of the bars' year partitions: extend_bar_partitions() in its own short transaction.
CREATE OR REPLACE FUNCTION pgbars.roll_forward_bar_partitions()
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
SET lock_timeout = '5s'
AS $$
/*
Called by `pgbars work` at the start of a run, as a statement of its own
(autocommit), before roll_forward_backfills: the ACCESS EXCLUSIVE lock that
extend_bar_partitions takes on ohlc_bars_v2 when a year is missing (once a
year) is then held only for its catalog changes, not through a transaction
that also plans chunks and could wait on a store. It waits at most 5 s for
the lock (a long reader may hold the table): then it gives up and returns 0,
and the next run tries again; the year ahead exists a year before it is
needed. Returns how many partitions it created. Granted to pgbars_worker,
which may not choose the horizon (extend_bar_partitions is the owner's).
*/
BEGIN
    RETURN pgbars.extend_bar_partitions();
EXCEPTION WHEN lock_not_available THEN
    RETURN 0;
END;
$$;

COMMENT ON FUNCTION pgbars.roll_forward_bar_partitions() IS
'extend_bar_partitions() with the default horizon, waiting at most 5 s for its lock (then 0): '
'the worker calls it, in a transaction of its own, at the start of every run.';
