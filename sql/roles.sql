-- Roles and grants. Applied last on every upgrade.
-- pgbars_worker: runs the pipeline through the worker functions. It reads
--   every table but writes none itself, except adding rows to the staging
--   tables: bars, the quarantine and the queue change only through the
--   SECURITY DEFINER functions granted below (store_lease writes a lease's
--   staged bars within its sessions), so it cannot rewrite or delete history.
-- pgbars_reader: progress and monitoring views, status functions and the bars
--   charts read.
-- Both are NOLOGIN: grant them to the login role you put in DATABASE_URL.
DO $$
BEGIN
    CREATE ROLE pgbars_worker NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END;
$$;

DO $$
BEGIN
    CREATE ROLE pgbars_reader NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END;
$$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgbars FROM public;
REVOKE ALL ON ALL TABLES IN SCHEMA pgbars FROM pgbars_worker, pgbars_reader;
GRANT USAGE ON SCHEMA pgbars TO pgbars_worker, pgbars_reader;

GRANT SELECT ON ALL TABLES IN SCHEMA pgbars TO pgbars_worker;
-- a lease's bars and refused rows, COPYed in before store_lease; the worker
-- cannot read back or change what it or another worker staged
REVOKE SELECT ON pgbars.staged_bars, pgbars.staged_rejects, pgbars.staged_actions FROM pgbars_worker;
GRANT INSERT ON pgbars.staged_bars, pgbars.staged_rejects, pgbars.staged_actions TO pgbars_worker;
-- The worker's one path for leased work (docs/worker.md): claim_leases,
-- store_lease, settle_lease. The functions they call (claim_backfill_chunks,
-- complete_backfill_chunk, store_live_bars, ...) are not granted: a lease
-- changes state only down that path.
GRANT EXECUTE ON FUNCTION
pgbars.claim_leases(text, text[], integer, interval, text[], text[]),
pgbars.store_lease(uuid, integer),
pgbars.settle_lease(uuid, text, text, interval),
pgbars._session_windows(date, date),
pgbars._provider_ranking(text),
pgbars.next_claimable_at(text[], text[]),
pgbars.seconds_until_live_refresh(text[]),
-- pgbars serve's drain tick wakes every replica (NOTIFY pgbars_wake)
pgbars._wake_workers(text),
pgbars.reserve_provider_call(text, text, bigint, timestamptz),
pgbars.complete_provider_call(bigint, integer, integer, integer, text),
pgbars.cancel_provider_call(bigint),
pgbars.prune_provider_calls(interval),
pgbars.prune_rejected_bars(interval),
pgbars.seed_backfill_for_symbol(uuid, text[], date, date, integer),
pgbars.request_backfill(text, text[], date, date, integer),
pgbars.request_backfills(text[], text[], date, date, integer),
pgbars.roll_forward_backfills(),
pgbars.roll_forward_bar_partitions(),
-- today's bars (docs/database.md, "Today's bars")
pgbars.cleanup_provisional_bars(),
pgbars._live_session(timestamptz),
pgbars._now()
TO pgbars_worker;

GRANT SELECT ON pgbars.backfill_progress, pgbars.ohlc_bars_v2 TO pgbars_reader;
-- the monitoring views (docs/monitoring.md); pgbars_worker reads them
-- through SELECT ON ALL TABLES above, which includes views
GRANT SELECT ON
pgbars.provider_usage,
pgbars.expired_leases,
pgbars.failed_chunks,
pgbars.bar_coverage
TO pgbars_reader;
GRANT EXECUTE ON FUNCTION
pgbars.backfill_status(text),
pgbars.backfill_eta(text[]),
pgbars.has_backfill_data(text, text),
pgbars.get_bars(text, text, timestamptz, timestamptz, text),
-- get_bars runs with the caller's rights and calls these (docs/reading.md)
pgbars._get_bars_request(text, text, timestamptz, timestamptz, text),
pgbars._get_bars_rivals(uuid, text, timestamptz, timestamptz, text[], text),
pgbars.normalize_ticker(text),
-- read_bars (docs/reading.md) refuses unknown tickers
pgbars.unknown_tickers(text[])
TO pgbars_worker, pgbars_reader;
-- gaps (docs/monitoring.md, docs/database.md): the coverage views for readers,
-- repair_gaps (`pgbars repair`) for the worker role
GRANT SELECT ON pgbars.coverage, pgbars.session_coverage TO pgbars_reader;
-- today's bars (docs/monitoring.md)
GRANT SELECT ON pgbars.live_plan, pgbars.live_status TO pgbars_reader;
GRANT EXECUTE ON FUNCTION pgbars.repair_gaps(text) TO pgbars_worker;
-- corporate actions and the price basis (docs/database.md, docs/monitoring.md)
GRANT SELECT ON
pgbars.corporate_actions,
pgbars.corporate_action_conflicts,
pgbars.price_basis_issues,
pgbars.action_status
TO pgbars_reader;
-- price_basis_issues calls it with the reader's rights (it is SECURITY DEFINER)
GRANT EXECUTE ON FUNCTION pgbars._dividend_factor(uuid, date, numeric) TO pgbars_worker, pgbars_reader;
-- ticker-keyed, split-adjusted bars for BI tools (docs/grafana/README.md); the view
-- calls _get_bars_request with the reader's rights, granted with get_bars above
GRANT SELECT ON pgbars.bars TO pgbars_reader;
