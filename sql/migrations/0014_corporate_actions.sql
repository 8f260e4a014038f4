-- Corporate actions and one stored price basis (docs/database.md, "Corporate
-- actions and price basis").
--
-- price_basis: what a provider's bars are: 'raw' (as traded: Polygon with
-- adjusted=false) or 'split_adjusted' (as of the day they were fetched: Yahoo's
-- chart quotes, Tradier's history). Bars of a split-adjusted provider are
-- converted to raw when stored, with the splits known then, and reconciled
-- when a split is learned later (_apply_corporate_actions).
ALTER TABLE pgbars.providers
ADD COLUMN price_basis text NOT NULL DEFAULT 'raw' CHECK (price_basis IN ('raw', 'split_adjusted'));

UPDATE pgbars.providers SET price_basis = 'split_adjusted'
WHERE name IN ('yahoo', 'tradier');

-- Every stored bar is raw: the column that claimed a basis goes. get_bars
-- adjusts on read (p_adjust).
ALTER TABLE pgbars.ohlc_bars_v2 DROP COLUMN adjustment;

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

CREATE INDEX action_refreshes_due_idx ON pgbars.action_refreshes (provider, due_at);

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

-- Symbols that already have jobs get their actions fetched at the next run.
INSERT INTO pgbars.action_refreshes (symbol_id, provider)
SELECT DISTINCT
    j.symbol_id,
    s.provider
FROM pgbars.backfill_jobs AS j
CROSS JOIN pgbars.corporate_action_sources AS s;

-- get_bars gains p_adjust and loses the adjustment column: the old signature
-- goes (its new one is installed with the routines).
DROP FUNCTION IF EXISTS pgbars.get_bars(text, text, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS pgbars._get_bars_request(text, text, timestamptz, timestamptz);
