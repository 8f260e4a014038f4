-- w1 is derived from d1 by default (issue 5: "defaults: h4 from h1 ..., w1
-- from d1 by ISO week"), as h4 is from h1: requesting w1 plans d1, whose
-- stored chunks derive the weeks, and costs no request of its own. Weekly
-- jobs planned before keep their chunks; see docs/database.md.
UPDATE pgbars.derived_routes
SET enabled = TRUE
WHERE timeframe = 'w1';
