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

-- The merge reads the lease's staged rows now (its new signature is installed
-- with the routines).
DROP FUNCTION IF EXISTS pgbars._merge_staged_bars(uuid, text, text, boolean);

-- Whether pgbars.now (the planning clock's override, pgbars._now) is honoured
-- in sessions of logins without the schema owner's rights: the worker and
-- reader roles. Off, so only the owner (and superusers) may plan at another
-- instant; a test database turns it on. One row; only the owner may change it.
CREATE TABLE pgbars.planning_clock (
    id boolean PRIMARY KEY DEFAULT TRUE CHECK (id),
    allow_override boolean NOT NULL DEFAULT FALSE
);

INSERT INTO pgbars.planning_clock DEFAULT VALUES;
