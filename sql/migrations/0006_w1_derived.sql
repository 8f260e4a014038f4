-- w1 is derived from d1 by default (issue 5: "defaults: h4 from h1 ..., w1
-- from d1 by ISO week"), as h4 is from h1: requesting w1 plans d1, whose
-- stored chunks derive the weeks, and costs no request of its own. A
-- database that already fetches weekly bars keeps doing so (switching is
-- the operator's choice, docs/database.md "Switching"): its weekly jobs
-- would otherwise stop growing while new weeks arrive through d1.
UPDATE pgbars.derived_routes
SET enabled = TRUE
WHERE
    timeframe = 'w1'
    AND NOT EXISTS (
        SELECT FROM pgbars.backfill_jobs AS j
        WHERE j.timeframe = 'w1'
    );
