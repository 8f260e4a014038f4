-- Roles and grants. Applied last on every upgrade.
-- pgbars_worker: runs the pipeline through the worker functions and writes
--   bars (INSERT/UPDATE; DELETE only on the quarantine; no TRUNCATE or DDL).
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
GRANT INSERT, UPDATE ON pgbars.ohlc_bars_v2, pgbars.rejected_bars TO pgbars_worker;
-- store_chunk_bars replaces a chunk's quarantine with its latest fetch's
GRANT DELETE ON pgbars.rejected_bars TO pgbars_worker;
GRANT EXECUTE ON FUNCTION
pgbars.claim_backfill_chunks(text, text[], integer, interval, text[]),
pgbars.complete_backfill_chunk(bigint, uuid, integer, integer, integer),
pgbars.fail_backfill_chunk(bigint, uuid, text, boolean),
pgbars.release_backfill_chunk(bigint, uuid, timestamptz, text),
pgbars.reroute_backfill_chunk(bigint, uuid, text),
pgbars.settle_lease(uuid, text, text, interval),
pgbars.claim_leases(text, text[], integer, interval, text[], text[]),
pgbars.store_lease(uuid, integer),
pgbars._session_windows(date, date),
pgbars.store_chunk_bars(bigint, uuid, integer),
pgbars.derive_bars(uuid, text, date, date),
-- the one write of fetched bars and the one roll-up, called by the store functions
pgbars._merge_staged_bars(uuid, text, text, boolean),
pgbars._roll_up_bars(uuid, text, pgbars.source_bar[], text[], boolean),
pgbars._raise_lease_lost(bigint),
pgbars._provider_ranking(text),
pgbars.next_claimable_at(text[], text[]),
pgbars.reserve_provider_call(text, text, bigint, timestamptz),
pgbars.complete_provider_call(bigint, integer, integer, integer, text),
pgbars.cancel_provider_call(bigint),
pgbars.pause_provider(text, timestamptz),
pgbars.prune_provider_calls(interval),
pgbars.seed_backfill_for_symbol(uuid, text[], date, date, integer),
pgbars.request_backfill(text, text[], date, date, integer),
pgbars.roll_forward_backfills()
TO pgbars_worker;
-- today's bars (docs/database.md, "Today's bars"): store_live_bars runs as the
-- worker (its staging tables); the refresh's state changes only through the
-- SECURITY DEFINER helpers it calls
GRANT EXECUTE ON FUNCTION
pgbars.claim_live_refreshes(text, text[], integer, interval, text[]),
pgbars.store_live_bars(uuid, text, uuid, integer),
pgbars._lock_live_refresh(uuid, text, uuid),
pgbars._complete_live_refresh(uuid, text, uuid, integer, integer, integer, text),
pgbars.release_live_refresh(uuid, text, uuid, text),
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
pgbars.get_bars(text, text, timestamptz, timestamptz),
-- get_bars runs with the caller's rights and calls these (docs/reading.md)
pgbars._get_bars_request(text, text, timestamptz, timestamptz),
pgbars._get_bars_rivals(uuid, text, timestamptz, timestamptz, text[], text),
pgbars.normalize_ticker(text)
TO pgbars_worker, pgbars_reader;
-- gaps (docs/monitoring.md, docs/database.md): the coverage views for readers,
-- repair_gaps (`pgbars repair`) for the worker role
GRANT SELECT ON pgbars.coverage, pgbars.session_coverage TO pgbars_reader;
-- today's bars (docs/monitoring.md)
GRANT SELECT ON pgbars.live_plan, pgbars.live_status TO pgbars_reader;
GRANT EXECUTE ON FUNCTION pgbars.repair_gaps(text) TO pgbars_worker;
