-- Write a live refresh's staged bars as provisional bars, with their roll-ups.
CREATE OR REPLACE FUNCTION pgbars.store_live_bars(
    p_symbol_id uuid,
    p_timeframe text,
    p_lease_id uuid,
    p_requests integer DEFAULT 1
)
RETURNS TABLE (bars_written integer, bars_changed integer, bars_rejected integer)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
The write half of a live refresh, inside the worker's transaction, like
store_chunk_bars: the worker has COPYed today's bars of p_timeframe into
pgbars.staged_bars and refused rows into pgbars.staged_rejects under the
lease's id; they are deleted before this returns. SECURITY DEFINER, like
store_chunk_bars: the worker role cannot write bars itself.
Every timeframe in the refresh's targets is stored under the live provider
with is_provisional = TRUE (provisional): the fetched timeframe as it came
(_merge_staged_bars, the one write of fetched bars), the others rolled up
from this answer by _roll_up_bars, the roll-up derived history bars use too (buckets of their bar length
counted from 00:00 New York: h4 buckets start 04:00, 08:00, 12:00, 16:00, so
none crosses a session). The bucket still trading is partial until the
next refresh rewrites it. Unchanged bars are not rewritten. The refresh's quarantine for the session
is replaced by this answer's. An answer without a single row once the
regular session has been open live_settings.empty_grace, from a provider
that has given no bar for the symbol all day, marks it no_data for the
session: the provider does not know it or it does not trade, and it is not
asked again today. Raises PB001 without the lease.
Reads prefer history bars to these (pgbars._provider_ranking), and
cleanup_provisional_bars removes them once history covers their session.
*/
DECLARE
    v_refresh record;
    v_written integer;
    v_changed integer;
    v_rejected integer;
    v_no_data text;
    v_bars pgbars.source_bar[];
    v_target text;
BEGIN
    -- Locked until commit, so no claim can hand it to another worker meanwhile.
    SELECT * INTO v_refresh FROM pgbars._lock_live_refresh(p_symbol_id, p_timeframe, p_lease_id);

    SELECT count(*) INTO v_written FROM pgbars.staged_bars AS s WHERE s.lease_id = p_lease_id;

    -- The fetched timeframe as it came, the other targets rolled up from the same answer.
    v_changed := 0;
    IF p_timeframe = ANY(v_refresh.targets) THEN
        v_changed := pgbars._merge_staged_bars(
            p_lease_id, v_refresh.session_date, v_refresh.session_date,
            p_symbol_id, p_timeframe, v_refresh.provider, TRUE
        );
    END IF;
    IF v_refresh.targets <> ARRAY[p_timeframe] THEN
        v_bars := ARRAY(
            SELECT
                ROW(
                    s.ts, v_refresh.provider, s.open, s.high, s.low, s.close, s.volume, s.vwap, s.trade_count
                )::pgbars.source_bar
            FROM pgbars.staged_bars AS s
            WHERE s.lease_id = p_lease_id
        );
    END IF;
    FOREACH v_target IN ARRAY v_refresh.targets LOOP
        CONTINUE WHEN v_target = p_timeframe;
        v_changed := v_changed + pgbars._roll_up_bars(
            p_symbol_id, v_target, v_bars, ARRAY[v_refresh.provider], TRUE
        );
    END LOOP;

    DELETE FROM pgbars.rejected_bars AS rb
    WHERE
        rb.chunk_id IS NULL
        AND rb.symbol_id = p_symbol_id
        AND rb.timeframe = p_timeframe
        AND rb.provider = v_refresh.provider
        AND (
            rb.ts >= v_refresh.premarket_open AND rb.ts < v_refresh.after_hours_close
            OR rb.ts IS NULL AND rb.rejected_at >= v_refresh.premarket_open
        );
    INSERT INTO pgbars.rejected_bars (chunk_id, symbol_id, timeframe, provider, ts, raw, reason)
    SELECT NULL, p_symbol_id, p_timeframe, v_refresh.provider, s.ts, pgbars._redact_json(s.raw), s.reason
    FROM pgbars.staged_rejects AS s
    WHERE s.lease_id = p_lease_id;
    GET DIAGNOSTICS v_rejected = ROW_COUNT;
    DELETE FROM pgbars.staged_bars AS s WHERE s.lease_id = p_lease_id;
    DELETE FROM pgbars.staged_rejects AS s WHERE s.lease_id = p_lease_id;

    -- No row at all, well into the regular session, and no bar from this provider
    -- earlier today: it does not serve the symbol (one empty answer after bars is
    -- a hiccup, retried by the next run).
    IF v_written = 0 AND v_rejected = 0
        AND pgbars._now() >= v_refresh.regular_open + (SELECT cfg.empty_grace FROM pgbars.live_settings AS cfg)
        AND NOT EXISTS (
            SELECT
            FROM pgbars.ohlc_bars_v2 AS b
            WHERE
                b.symbol_id = p_symbol_id
                AND b.timeframe = ANY(v_refresh.targets)
                AND b.provider = v_refresh.provider
                AND b.ts >= v_refresh.premarket_open
                AND b.ts < v_refresh.after_hours_close
        )
        THEN
        v_no_data := format(
            '%s answered no %s bars for %s, %s into the regular session: it does not know the symbol'
            ' or the symbol is not trading',
            v_refresh.provider, p_timeframe, v_refresh.session_date,
            date_trunc('minute', pgbars._now() - v_refresh.regular_open)
        );
    END IF;

    PERFORM pgbars._complete_live_refresh(
        p_symbol_id, p_timeframe, p_lease_id, v_written, v_rejected, p_requests, v_no_data
    );

    RETURN QUERY SELECT v_written, v_changed, v_rejected;
END;
$$;

COMMENT ON FUNCTION pgbars.store_live_bars(uuid, text, uuid, integer) IS
'Stores the live refresh''s staged bars as provisional bars (provider of the live route, is_provisional) '
'for each of its target timeframes (rolled up from the fetched one), quarantines refused rows and '
'ends the lease. Returns bars written, changed and rejected; raises PB001 without the lease.';
