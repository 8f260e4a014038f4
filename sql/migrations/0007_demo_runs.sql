-- The runs of `pgbars demo` in this database. A database with a row here
-- holds the demo's synthetic bars: `pgbars work` refuses it, so real and
-- synthetic bars never meet, and `pgbars demo --remove` drops it all.
CREATE TABLE pgbars.demo_runs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now(),
    tickers text[] NOT NULL
);
