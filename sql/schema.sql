-- pgbars: the whole current schema (tables, types, indexes, seed rows).
-- Functions, views, triggers and grants live in their own files and are
-- re-applied on every `pgbars db upgrade`. Changes to anything in this file
-- after 0001 also go in sql/migrations/NNNN_*.sql; a test checks that this
-- file and the chain of migrations build the same schema.

CREATE SCHEMA IF NOT EXISTS pgbars;

-- Tickers as pgbars stores them: AAPL, BRK.B. Upper case only, a share class
-- after a dot (migration 0013); functions normalise user input, BRK-B or BRK/B
-- included, with pgbars.normalize_ticker().
CREATE DOMAIN pgbars.ticker AS text
CHECK (value ~ '^[A-Z][A-Z0-9]{0,9}(\.[A-Z0-9]{1,4})?$');

-- Applied migrations, and the checksum of the routine files (functions,
-- views, triggers, grants) the database was last upgraded with.
CREATE TABLE pgbars.schema_migrations (
    name text PRIMARY KEY,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Timeframes, with what the chunk planner needs to know about them.
CREATE TABLE pgbars.timeframes (
    name text PRIMARY KEY,
    bar_length interval NOT NULL,
    is_intraday boolean NOT NULL,
    sort_order smallint NOT NULL UNIQUE
);

INSERT INTO pgbars.timeframes (name, bar_length, is_intraday, sort_order) VALUES
('m1', '1 minute', TRUE, 1),
('m5', '5 minutes', TRUE, 2),
('m15', '15 minutes', TRUE, 3),
('m30', '30 minutes', TRUE, 4),
('h1', '1 hour', TRUE, 5),
('h4', '4 hours', TRUE, 6),
('d1', '1 day', FALSE, 7),
('w1', '7 days', FALSE, 8);

-- XNYS sessions with extended hours, loaded from exchange_calendars by the
-- installer. base_minutes is what one session costs a provider whose request
-- capacity counts minute bars (Polygon's `limit`).
CREATE TABLE pgbars.market_sessions (
    session_date date PRIMARY KEY,
    premarket_open timestamptz NOT NULL,
    regular_open timestamptz NOT NULL,
    regular_close timestamptz NOT NULL,
    after_hours_close timestamptz NOT NULL,
    is_early_close boolean NOT NULL,
    base_minutes integer GENERATED ALWAYS AS (
        (extract(EPOCH FROM after_hours_close - premarket_open) / 60)::integer
    ) STORED,
    CHECK (premarket_open <= regular_open),
    CHECK (regular_open < regular_close),
    CHECK (regular_close <= after_hours_close)
);

CREATE TABLE pgbars.symbols (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ticker pgbars.ticker NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pgbars.watchlists (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL UNIQUE CHECK (name ~ '^\S(.{0,62}\S)?$'),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pgbars.watchlist_items (
    watchlist_id uuid NOT NULL REFERENCES pgbars.watchlists (id) ON DELETE CASCADE,
    symbol_id uuid NOT NULL REFERENCES pgbars.symbols (id) ON DELETE CASCADE,
    added_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (watchlist_id, symbol_id)
);

CREATE INDEX watchlist_items_symbol_idx ON pgbars.watchlist_items (symbol_id);

-- Providers and their shared rate limit. Changing a limit is one UPDATE that
-- every worker obeys, because every call is reserved through this row.
-- request_capacity counts what one request can serve, in base units:
-- minutes of session for intraday timeframes, sessions for d1 and w1
-- (Polygon's `limit` counts base minute bars, at most 50,000).
-- window_margin is added to window_length when spacing calls, so that
-- network latency cannot squeeze one call too many into the provider's
-- own view of the window.
-- unreachable_streak: the provider's consecutive calls without any HTTP
-- answer (its circuit breaker: paused from the third, see settle_lease);
-- an answered call resets it. retry_backoff: the first wait after a
-- transient failure, doubling per attempt (_retry_backoff).
CREATE TABLE pgbars.providers (
    name text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]*$'),
    calls_per_window integer NOT NULL CHECK (calls_per_window > 0),
    window_length interval NOT NULL CHECK (window_length > interval '0'),
    window_margin interval NOT NULL DEFAULT '1 second' CHECK (window_margin >= interval '0'),
    request_capacity integer NOT NULL CHECK (request_capacity > 0),
    paused_until timestamptz,
    enabled boolean NOT NULL DEFAULT TRUE,
    unreachable_streak integer NOT NULL DEFAULT 0 CHECK (unreachable_streak >= 0),
    retry_backoff interval NOT NULL DEFAULT '1 minute' CHECK (retry_backoff > interval '0'),
    price_basis text NOT NULL DEFAULT 'raw' CHECK (price_basis IN ('raw', 'split_adjusted'))
);

INSERT INTO pgbars.providers (name, calls_per_window, window_length, request_capacity, price_basis) VALUES
('polygon', 5, '60 seconds', 50000, 'raw'),
('yahoo', 30, '60 seconds', 50000, 'split_adjusted'),
('tradier', 120, '60 seconds', 50000, 'split_adjusted');

-- Which provider serves which timeframe, in which order, and how far back.
-- purpose 'history' plans backfill chunks; 'live' serves today's session.
CREATE TABLE pgbars.provider_routes (
    timeframe text NOT NULL REFERENCES pgbars.timeframes (name),
    provider text NOT NULL REFERENCES pgbars.providers (name),
    purpose text NOT NULL DEFAULT 'history' CHECK (purpose IN ('history', 'live')),
    priority smallint NOT NULL CHECK (priority > 0),
    max_lookback interval CHECK (max_lookback > interval '0'),
    enabled boolean NOT NULL DEFAULT TRUE,
    PRIMARY KEY (timeframe, provider, purpose),
    UNIQUE (timeframe, purpose, priority)
);

-- Polygon serves intraday history on the clock-aligned grid. Yahoo is a
-- fallback only for m5..m30 within its 60-day lookback: its hourly bars start
-- at 09:30, off the grid, so it is no route for h1/h4. Daily and weekly come
-- from Yahoo first (decades per request), then Polygon. Tradier serves today.
INSERT INTO pgbars.provider_routes (timeframe, provider, purpose, priority, max_lookback) VALUES
('m1', 'polygon', 'history', 1, NULL),
('m5', 'polygon', 'history', 1, NULL),
('m5', 'yahoo', 'history', 2, '60 days'),
('m15', 'polygon', 'history', 1, NULL),
('m15', 'yahoo', 'history', 2, '60 days'),
('m30', 'polygon', 'history', 1, NULL),
('m30', 'yahoo', 'history', 2, '60 days'),
('h1', 'polygon', 'history', 1, NULL),
('h4', 'polygon', 'history', 1, NULL),
('d1', 'yahoo', 'history', 1, NULL),
('d1', 'polygon', 'history', 2, NULL),
('w1', 'yahoo', 'history', 1, NULL),
('w1', 'polygon', 'history', 2, NULL),
('m1', 'tradier', 'live', 1, '1 day'),
('m5', 'tradier', 'live', 1, '1 day'),
('m15', 'tradier', 'live', 1, '1 day');

-- Timeframes pgbars computes from another timeframe's stored bars instead of
-- fetching them (no provider request): h4 from h1, in 4-hour buckets from
-- 04:00 New York inside one session; w1 from d1, by ISO week (Monday). The
-- CHECK lists the rules pgbars.derive_bars implements. An enabled row
-- replaces the timeframe's provider_routes for planning: requesting h4 plans
-- h1 (requesting w1 plans d1, from the Monday of the window's first week).
CREATE TABLE pgbars.derived_routes (
    timeframe text PRIMARY KEY REFERENCES pgbars.timeframes (name),
    source_timeframe text NOT NULL REFERENCES pgbars.timeframes (name),
    enabled boolean NOT NULL DEFAULT TRUE,
    CONSTRAINT derived_routes_known_rule CHECK (
        (timeframe = 'h4' AND source_timeframe = 'h1')
        OR (timeframe = 'w1' AND source_timeframe = 'd1')
    )
);

INSERT INTO pgbars.derived_routes (timeframe, source_timeframe, enabled) VALUES
('h4', 'h1', TRUE),
('w1', 'd1', TRUE);

-- The bars. Prices are double precision: providers send IEEE doubles in
-- JSON, so float8 stores exactly what was served (and prints it back in its
-- shortest form, 187.15 not 187.1499...), in 8 fixed bytes that compare and
-- aggregate far faster than numeric. Volumes and trade counts are counts:
-- bigint. Prices and volumes as traded (raw), whatever the provider served:
-- adjusted series are computed on read (get_bars, corporate_actions).
-- symbol_id, timeframe and provider refer to symbols, timeframes and
-- providers, checked once per statement by triggers (sql/triggers.sql), not
-- by foreign keys once per row; see migration 0004.
CREATE TABLE pgbars.ohlc_bars_v2 (
    symbol_id uuid NOT NULL,
    timeframe text NOT NULL,
    ts timestamptz NOT NULL,
    provider text NOT NULL,
    is_forecast boolean NOT NULL DEFAULT FALSE,
    open double precision NOT NULL,
    high double precision NOT NULL,
    low double precision NOT NULL,
    close double precision NOT NULL,
    volume bigint NOT NULL,
    vwap double precision,
    trade_count bigint,
    is_provisional boolean NOT NULL DEFAULT FALSE,
    fetched_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol_id, timeframe, ts, provider, is_forecast),
    CONSTRAINT ohlc_bars_v2_prices_positive CHECK (open > 0 AND high > 0 AND low > 0 AND close > 0),
    CONSTRAINT ohlc_bars_v2_low_bound CHECK (low <= least(open, close)),
    CONSTRAINT ohlc_bars_v2_high_bound CHECK (high >= greatest(open, close)),
    CONSTRAINT ohlc_bars_v2_volume_nonnegative CHECK (volume >= 0),
    CONSTRAINT ohlc_bars_v2_vwap_positive CHECK (vwap IS NULL OR vwap > 0),
    CONSTRAINT ohlc_bars_v2_trade_count_nonnegative CHECK (trade_count IS NULL OR trade_count >= 0)
) PARTITION BY RANGE (ts);

-- One partition per calendar year (UTC), ohlc_bars_v2_yYYYY, created ahead
-- through the calendar's end by pgbars.extend_bar_partitions (the installer,
-- and every `pgbars work` run); ohlc_bars_v2_earlier and ohlc_bars_v2_later
-- take any timestamp before 2000 or after the last year, so that no write
-- ever finds no partition. Migration 0016; docs/scale.md.
CREATE TABLE pgbars.ohlc_bars_v2_earlier PARTITION OF pgbars.ohlc_bars_v2
FOR VALUES FROM (MINVALUE) TO ('2000-01-01 00:00:00+00');

CREATE TABLE pgbars.ohlc_bars_v2_later PARTITION OF pgbars.ohlc_bars_v2
FOR VALUES FROM ('2000-01-01 00:00:00+00') TO (MAXVALUE);

-- PostgreSQL 18 can declare a foreign key without enforcing it: catalog
-- tools still see symbol_id as a reference to symbols (and its cascade,
-- which _delete_symbol_bars performs). Older servers go without.
DO $$
BEGIN
    IF current_setting('server_version_num')::integer >= 180000 THEN
        EXECUTE 'ALTER TABLE pgbars.ohlc_bars_v2 ADD CONSTRAINT ohlc_bars_v2_symbol_id_fkey'
        || ' FOREIGN KEY (symbol_id) REFERENCES pgbars.symbols (id) ON DELETE CASCADE NOT ENFORCED';
    END IF;
END;
$$;

-- One backfill job per (symbol, timeframe), ever.
CREATE TABLE pgbars.backfill_jobs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    symbol_id uuid NOT NULL REFERENCES pgbars.symbols (id) ON DELETE CASCADE,
    timeframe text NOT NULL REFERENCES pgbars.timeframes (name),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (symbol_id, timeframe)
);

-- A derived timeframe requested for a symbol. It has no chunks of its own:
-- its bars are derived from the source job's bars each time one of that
-- job's chunks is stored, so its progress is the source job's.
CREATE TABLE pgbars.derived_jobs (
    source_job_id bigint NOT NULL REFERENCES pgbars.backfill_jobs (id) ON DELETE CASCADE,
    timeframe text NOT NULL REFERENCES pgbars.derived_routes (timeframe),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_job_id, timeframe)
);

-- A chunk: consecutive XNYS sessions that one provider request can serve.
-- A claim takes a lease (lease_id, claimed_by, lease_expires_at) and counts
-- an attempt; complete/fail/release must present the lease they were given.
CREATE TABLE pgbars.backfill_chunks (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id bigint NOT NULL REFERENCES pgbars.backfill_jobs (id) ON DELETE CASCADE,
    provider text NOT NULL REFERENCES pgbars.providers (name),
    first_session date NOT NULL REFERENCES pgbars.market_sessions (session_date),
    last_session date NOT NULL REFERENCES pgbars.market_sessions (session_date),
    session_count integer NOT NULL CHECK (session_count > 0),
    status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'running', 'done', 'failed')),
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts integer NOT NULL DEFAULT 3 CHECK (max_attempts > 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_id uuid,
    claimed_by text,
    claimed_at timestamptz,
    lease_expires_at timestamptz,
    last_error text,
    bars_written integer,
    bars_rejected integer,
    requests_used integer,
    completed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (first_session <= last_session),
    CHECK ((status = 'running') = (lease_id IS NOT NULL)),
    CHECK (bars_written >= 0 AND bars_rejected >= 0 AND requests_used >= 0),
    UNIQUE (job_id, first_session),
    UNIQUE (job_id, last_session)
);

-- The claim's second step: a lane's (job and provider's) queued chunks, newest first.
CREATE INDEX backfill_chunks_queue_idx ON pgbars.backfill_chunks (job_id, provider, last_session)
WHERE status IN ('pending', 'running');

-- Bars a provider served that broke a rule: kept with their raw values and
-- the reason, never silently dropped and never stored as bars.
CREATE TABLE pgbars.rejected_bars (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chunk_id bigint REFERENCES pgbars.backfill_chunks (id) ON DELETE SET NULL,
    symbol_id uuid NOT NULL REFERENCES pgbars.symbols (id) ON DELETE CASCADE,
    timeframe text NOT NULL REFERENCES pgbars.timeframes (name),
    provider text NOT NULL REFERENCES pgbars.providers (name),
    ts timestamptz,
    raw jsonb NOT NULL,
    reason text NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX rejected_bars_chunk_idx ON pgbars.rejected_bars (chunk_id);

-- The rate-limit ledger: every provider call, reserved before it starts and
-- completed (or cancelled) after. It doubles as the audit log of calls.
CREATE TABLE pgbars.provider_calls (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider text NOT NULL REFERENCES pgbars.providers (name),
    worker text NOT NULL,
    chunk_id bigint REFERENCES pgbars.backfill_chunks (id) ON DELETE SET NULL,
    reserved_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    starts_at timestamptz NOT NULL,
    status text NOT NULL DEFAULT 'reserved'
    CHECK (status IN ('reserved', 'completed', 'cancelled')),
    finished_at timestamptz,
    http_status integer,
    bars integer,
    duration_ms integer,
    error text
);

-- Reservations look at the latest starts per provider.
CREATE INDEX provider_calls_provider_starts_idx ON pgbars.provider_calls (provider, starts_at DESC)
WHERE status <> 'cancelled';

CREATE INDEX provider_calls_starts_idx ON pgbars.provider_calls (starts_at);

-- One row per job and session that repair_gaps re-queued because its chunk
-- was done without a bar for it: a session is re-fetched once. When the
-- re-fetch is empty as well, the session is confirmed empty (confirmed_at,
-- reason: a halt, a day before the listing...): coverage reports it as
-- explained, not missing, and nothing fetches it again.
CREATE TABLE pgbars.gap_repairs (
    job_id bigint NOT NULL REFERENCES pgbars.backfill_jobs (id) ON DELETE CASCADE,
    session_date date NOT NULL REFERENCES pgbars.market_sessions (session_date),
    requeued_at timestamptz NOT NULL DEFAULT now(),
    confirmed_at timestamptz,
    reason text,
    PRIMARY KEY (job_id, session_date),
    CHECK ((confirmed_at IS NULL) = (reason IS NULL))
);

-- Today's bars (provisional): how often a live refresh may repeat, how old a
-- provisional bar must be before cleanup may delete it (once history has
-- replaced its session), and how long into the regular session an empty
-- answer is still normal. One row; change it with one UPDATE.
CREATE TABLE pgbars.live_settings (
    id boolean PRIMARY KEY DEFAULT TRUE CHECK (id),
    refresh_every interval NOT NULL DEFAULT '60 seconds' CHECK (refresh_every >= interval '0'),
    keep_provisional interval NOT NULL DEFAULT '1 day' CHECK (keep_provisional >= interval '0'),
    empty_grace interval NOT NULL DEFAULT '30 minutes' CHECK (empty_grace >= interval '0')
);

INSERT INTO pgbars.live_settings DEFAULT VALUES;

-- One row per watchlist symbol and fetched live timeframe (m1, m5, m15 from
-- the live provider_routes): its lease while a worker refreshes it, the
-- timeframes stored from the answer (targets: the fetched one and those
-- rolled up from it, e.g. h1 and h4 from m15), and the last outcome.
-- no_data marks a symbol the provider does not serve this session (no bar
-- at all well into the regular session: an unknown symbol): it is not asked
-- again until the next session.
CREATE TABLE pgbars.live_refreshes (
    symbol_id uuid NOT NULL REFERENCES pgbars.symbols (id) ON DELETE CASCADE,
    timeframe text NOT NULL REFERENCES pgbars.timeframes (name),
    provider text NOT NULL REFERENCES pgbars.providers (name),
    session_date date NOT NULL REFERENCES pgbars.market_sessions (session_date),
    targets text[] NOT NULL,
    lease_id uuid,
    claimed_by text,
    lease_expires_at timestamptz,
    refreshed_at timestamptz,
    bars_written integer,
    bars_rejected integer,
    requests_used integer,
    no_data text,
    last_error text,
    -- failed refreshes in a row, and when a failed one is due again (migration 0017)
    failures integer NOT NULL DEFAULT 0,
    retry_at timestamptz,
    PRIMARY KEY (symbol_id, timeframe)
);

-- Provisional bars are few; cleanup finds them without reading history.
CREATE INDEX ohlc_bars_v2_provisional_idx ON pgbars.ohlc_bars_v2 (ts) WHERE is_provisional;

-- The runs of `pgbars demo` in this database. A database with a row here
-- holds the demo's synthetic bars: `pgbars work` refuses it, so real and
-- synthetic bars never meet, and `pgbars demo --remove` drops it all.
CREATE TABLE pgbars.demo_runs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now(),
    tickers text[] NOT NULL
);

-- A lease is named by its id alone, whatever it leases (settle_lease): both
-- kinds of leased work find their row by lease id through these indexes,
-- which hold only the rows leased right now.
CREATE UNIQUE INDEX backfill_chunks_lease_idx ON pgbars.backfill_chunks (lease_id)
WHERE lease_id IS NOT NULL;

CREATE UNIQUE INDEX live_refreshes_lease_idx ON pgbars.live_refreshes (lease_id)
WHERE lease_id IS NOT NULL;

-- A bar as the one roll-up (_roll_up_bars) takes it: derived bars pass stored
-- rows, today's live bars the rows a worker staged, both as an array of these.
CREATE TYPE pgbars.source_bar AS (
    ts timestamptz,
    provider text,
    open double precision,
    high double precision,
    low double precision,
    close double precision,
    volume double precision,
    vwap double precision,
    trade_count bigint
);

-- Staging, shared and keyed by lease: the worker COPYs a lease's bars and
-- refused rows here inside the transaction that stores them (store_lease,
-- SECURITY DEFINER, reads and deletes them), so the worker role needs no
-- write privilege on the bars, and nothing lives in a session between
-- transactions (a transaction-mode connection pooler hands each transaction
-- any server connection). UNLOGGED: rows never outlive their transaction.
CREATE UNLOGGED TABLE pgbars.staged_bars (
    lease_id uuid NOT NULL,
    ts timestamptz NOT NULL,
    open double precision NOT NULL,
    high double precision NOT NULL,
    low double precision NOT NULL,
    close double precision NOT NULL,
    volume double precision NOT NULL,
    vwap double precision,
    trade_count bigint
);

CREATE INDEX staged_bars_lease_idx ON pgbars.staged_bars (lease_id);

CREATE UNLOGGED TABLE pgbars.staged_rejects (
    lease_id uuid NOT NULL,
    ts timestamptz,
    raw jsonb NOT NULL,
    reason text NOT NULL
);

CREATE INDEX staged_rejects_lease_idx ON pgbars.staged_rejects (lease_id);

-- Whether pgbars.now (the planning clock's override, pgbars._now) is honoured
-- in sessions of logins without the schema owner's rights: the worker and
-- reader roles. Off, so only the owner (and superusers) may plan at another
-- instant; a test database turns it on. One row; only the owner may change it.
CREATE TABLE pgbars.planning_clock (
    id boolean PRIMARY KEY DEFAULT TRUE CHECK (id),
    allow_override boolean NOT NULL DEFAULT FALSE
);

INSERT INTO pgbars.planning_clock DEFAULT VALUES;

-- The providers that report corporate actions, in the order their reports
-- are preferred when they disagree, and how often each symbol's are fetched.
CREATE TABLE pgbars.corporate_action_sources (
    provider text PRIMARY KEY REFERENCES pgbars.providers (name),
    priority integer NOT NULL UNIQUE CHECK (priority > 0),
    enabled boolean NOT NULL DEFAULT TRUE,
    refresh_every interval NOT NULL DEFAULT '1 day' CHECK (refresh_every > interval '0')
);

INSERT INTO pgbars.corporate_action_sources (provider, priority) VALUES
('polygon', 1),
('yahoo', 2);

-- Every action as each provider reported it, in the provider's own basis
-- (Yahoo's dividend amounts are split-adjusted as of fetched_at). fetched_at
-- changes only when the reported values do.
CREATE TABLE pgbars.corporate_action_reports (
    symbol_id uuid NOT NULL REFERENCES pgbars.symbols (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('split', 'dividend')),
    ex_date date NOT NULL,
    provider text NOT NULL REFERENCES pgbars.providers (name),
    split_from numeric,
    split_to numeric,
    cash_amount numeric,
    currency text,
    reference text,
    fetched_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol_id, kind, ex_date, provider),
    CONSTRAINT corporate_action_reports_values CHECK (
        (
            kind = 'split' AND split_from > 0 AND split_to > 0 AND split_from <> split_to
            AND cash_amount IS NULL AND currency IS NULL
        )
        OR (
            kind = 'dividend' AND cash_amount > 0 AND currency ~ '^[A-Z]{3}$'
            AND split_from IS NULL AND split_to IS NULL
        )
    )
);

-- The actions in force: one row per (symbol, kind, ex-date) whoever reported
-- it, from the preferred source's report; cash_amount is raw (per share held
-- on the ex-date). Reads adjust with these rows (get_bars).
CREATE TABLE pgbars.corporate_actions (
    symbol_id uuid NOT NULL REFERENCES pgbars.symbols (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('split', 'dividend')),
    ex_date date NOT NULL,
    split_from numeric,
    split_to numeric,
    cash_amount numeric,
    currency text,
    provider text NOT NULL REFERENCES pgbars.providers (name),
    fetched_at timestamptz NOT NULL,
    PRIMARY KEY (symbol_id, kind, ex_date),
    CONSTRAINT corporate_actions_values CHECK (
        (
            kind = 'split' AND split_from > 0 AND split_to > 0 AND split_from <> split_to
            AND cash_amount IS NULL AND currency IS NULL
        )
        OR (
            kind = 'dividend' AND cash_amount > 0 AND currency ~ '^[A-Z]{3}$'
            AND split_from IS NULL AND split_to IS NULL
        )
    )
);

-- One row per symbol with a backfill job and action source: its lease while
-- a worker fetches the symbol's actions, when it is due again, and the last
-- outcome. asked_from/asked_to: the ex-dates the lease asks for;
-- covered_from/covered_to: those the last success asked for.
CREATE TABLE pgbars.action_refreshes (
    symbol_id uuid NOT NULL REFERENCES pgbars.symbols (id) ON DELETE CASCADE,
    provider text NOT NULL REFERENCES pgbars.providers (name),
    due_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    lease_id uuid,
    claimed_by text,
    lease_expires_at timestamptz,
    asked_from date,
    asked_to date,
    refreshed_at timestamptz,
    covered_from date,
    covered_to date,
    actions_reported integer,
    actions_rejected integer,
    requests_used integer,
    last_error text,
    last_error_at timestamptz,
    PRIMARY KEY (symbol_id, provider)
);

CREATE UNIQUE INDEX action_refreshes_lease_idx ON pgbars.action_refreshes (lease_id)
WHERE lease_id IS NOT NULL;

CREATE INDEX action_refreshes_due_idx ON pgbars.action_refreshes (provider, due_at, symbol_id);

-- Action rows a provider reported that pgbars does not apply: malformed, or
-- not a split or a cash dividend. Kept with the reason, never silently dropped.
CREATE TABLE pgbars.rejected_actions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    symbol_id uuid NOT NULL REFERENCES pgbars.symbols (id) ON DELETE CASCADE,
    provider text NOT NULL REFERENCES pgbars.providers (name),
    raw jsonb NOT NULL,
    reason text NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX rejected_actions_symbol_idx ON pgbars.rejected_actions (symbol_id);

-- Staging for a lease's actions, like staged_bars (rejected rows go to staged_rejects).
CREATE UNLOGGED TABLE pgbars.staged_actions (
    lease_id uuid NOT NULL,
    kind text NOT NULL,
    ex_date date NOT NULL,
    split_from double precision,
    split_to double precision,
    cash_amount double precision,
    currency text,
    reference text
);

CREATE INDEX staged_actions_lease_idx ON pgbars.staged_actions (lease_id);

-- The queue of backfill chunks, one row per (job, provider): counters and
-- times kept from the lane's chunks by a statement trigger on backfill_chunks
-- (_refresh_backfill_lanes), so that a claim reaches the next job by an index
-- instead of ranking every due chunk, and progress and ETA read one row per
-- lane instead of every chunk (docs/database.md, "Claiming").
CREATE TABLE pgbars.backfill_lanes (
    job_id bigint NOT NULL REFERENCES pgbars.backfill_jobs (id) ON DELETE CASCADE,
    provider text NOT NULL REFERENCES pgbars.providers (name),
    chunks integer NOT NULL,
    done integer NOT NULL,
    failed integer NOT NULL,
    running integer NOT NULL,
    sessions_total bigint NOT NULL,
    sessions_done bigint NOT NULL,
    bars_written bigint NOT NULL,
    bars_rejected bigint NOT NULL,
    empty_chunks integer NOT NULL,
    requests_done bigint NOT NULL,
    done_with_requests integer NOT NULL,
    first_session date NOT NULL,
    last_session date NOT NULL,
    next_attempt_at timestamptz,
    last_due_at timestamptz,
    lease_expires_at timestamptz,
    last_claimed_at timestamptz,
    last_completed_at timestamptz,
    due_at timestamptz,
    PRIMARY KEY (job_id, provider)
);

-- The claim: per provider, the lanes with queued chunks in round-robin order.
CREATE INDEX backfill_lanes_claim_idx ON pgbars.backfill_lanes (
    provider, running, last_claimed_at NULLS FIRST, job_id
) WHERE due_at IS NOT NULL;

-- next_claimable_at: per provider, the earliest lane to come due.
CREATE INDEX backfill_lanes_due_idx ON pgbars.backfill_lanes (provider, due_at)
WHERE due_at IS NOT NULL;

-- The claim's first step: leases that expired on their last allowed attempt.
CREATE INDEX backfill_chunks_lease_expiry_idx ON pgbars.backfill_chunks (lease_expires_at)
WHERE status = 'running';
