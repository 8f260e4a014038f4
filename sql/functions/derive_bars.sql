-- Recompute a symbol's derived bars (h4 from h1, w1 from d1) over some sessions of the source timeframe.
CREATE OR REPLACE FUNCTION pgbars.derive_bars(
    p_symbol_id uuid,
    p_source_timeframe text,
    p_first_session date,
    p_last_session date
)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
Derives the timeframes the symbol's p_source_timeframe job has derived jobs
for (derived_jobs), where the derived route is enabled; store_chunk_bars
calls it for every stored chunk, seed_backfill_for_symbol when a derived job
is created. No provider request: the bars come from ohlc_bars_v2.

Buckets (derived_routes' CHECK admits only these two rules):
  - intraday targets (h4): the bar_length grid counted from 00:00 New York,
    per New York date. 4-hour buckets from midnight are the buckets anchored
    at 04:00 (04:00, 08:00, 12:00, 16:00), and a session (04:00-20:00, or
    17:00 on early closes) lies inside one date, so a bucket never crosses
    a session and every bar is on the pgbars grid.
  - w1: the ISO week, at 00:00 New York of its Monday.
Only buckets touched by the sessions are recomputed: their dates for h4,
their whole weeks for w1, using every source bar of the week (bars of
neighbouring chunks included).

The roll-up itself is _roll_up_bars, shared with today's live bars: per
source ts the bar of the best provider, in get_bars' order (enabled history
routes of the source timeframe by priority, then any other by name);
forecasts and provisional bars (is_provisional: today's live bars, which
store_live_bars rolls up itself) are skipped, so derived bars are history
and cleanup_provisional_bars never touches them. Source bars are raw; a
week that holds a split (corporate_actions) is rolled up on the basis of its
last session, its days before the split multiplied by split_from / split_to
(volume divided), so that its open and close are comparable; get_bars
adjusts a w1 bar only for the splits after its week (_adjustment_steps).
_apply_corporate_actions re-derives the weeks a newly learned split touches.
Each bucket is stored under every provider with source bars in it: normally
the one provider that served them, so get_bars' provider order applies to
derived bars too. Should two providers have served a bucket (a chunk
rerouted mid-week), each gets the same bar, so whichever get_bars prefers
is whole and none is left stale (pgbars never deletes source bars).

Unchanged bars are not rewritten, so a second call returns 0. Returns the bars inserted or updated. Calls for one
(symbol, source timeframe) are serialised by an advisory lock: a week whose
days two chunks store at once is recomputed by the second after the first
commits, so it sees both. SECURITY INVOKER: the worker role needs only
what store_chunk_bars already needs.
*/
DECLARE
    v_target record;
    v_ranked text[];
    v_locked boolean := FALSE;
    v_from timestamptz;
    v_to timestamptz;
    v_changed integer;
    v_total integer := 0;
BEGIN
    IF p_symbol_id IS NULL OR p_source_timeframe IS NULL OR p_first_session IS NULL
        OR p_last_session IS NULL OR p_first_session > p_last_session THEN
        RAISE EXCEPTION 'derive_bars needs a symbol, a source timeframe and first_session <= last_session'
            USING ERRCODE = '22023';
    END IF;

    FOR v_target IN
        SELECT
            r.timeframe,
            tf.is_intraday,
            tf.bar_length
        FROM pgbars.backfill_jobs AS j
        INNER JOIN pgbars.derived_jobs AS d ON j.id = d.source_job_id
        INNER JOIN pgbars.derived_routes AS r ON d.timeframe = r.timeframe
        INNER JOIN pgbars.timeframes AS tf ON r.timeframe = tf.name
        WHERE
            j.symbol_id = p_symbol_id
            AND j.timeframe = p_source_timeframe
            AND r.source_timeframe = p_source_timeframe
            AND r.enabled
        ORDER BY tf.sort_order
    LOOP
        IF NOT v_locked THEN
            PERFORM pg_advisory_xact_lock(
                hashtextextended('pgbars.derive_bars/' || p_symbol_id || '/' || p_source_timeframe, 0)
            );
            v_locked := TRUE;
            v_ranked := pgbars._provider_ranking(p_source_timeframe);
        END IF;

        IF v_target.is_intraday THEN
            v_from := p_first_session::timestamp AT TIME ZONE 'America/New_York';
            v_to := (p_last_session + 1)::timestamp AT TIME ZONE 'America/New_York';
        ELSE
            v_from := date_trunc('week', p_first_session::timestamp) AT TIME ZONE 'America/New_York';
            v_to := (date_trunc('week', p_last_session::timestamp) + interval '7 days')
            AT TIME ZONE 'America/New_York';
        END IF;

        v_changed := pgbars._roll_up_bars(
            p_symbol_id,
            v_target.timeframe,
            ARRAY(
                SELECT
                    ROW(
                        s.ts, s.provider, s.open * w.factor, s.high * w.factor, s.low * w.factor,
                        s.close * w.factor, s.volume / w.factor, s.vwap * w.factor, s.trade_count
                    )::pgbars.source_bar
                FROM pgbars.ohlc_bars_v2 AS s
                CROSS JOIN LATERAL (
                    -- w1: a day before a split of its own week, on the basis of the week's last session
                    SELECT coalesce(exp(sum(ln((a.split_from / a.split_to)::double precision))), 1) AS factor
                    FROM pgbars.corporate_actions AS a
                    WHERE
                        NOT v_target.is_intraday
                        AND a.symbol_id = p_symbol_id
                        AND a.kind = 'split'
                        AND a.ex_date::timestamp AT TIME ZONE 'America/New_York' > s.ts
                        AND a.ex_date::timestamp AT TIME ZONE 'America/New_York' <= pgbars._now()
                        AND date_trunc('week', a.ex_date::timestamp)
                        = date_trunc('week', s.ts AT TIME ZONE 'America/New_York')
                ) AS w
                WHERE
                    s.symbol_id = p_symbol_id
                    AND s.timeframe = p_source_timeframe
                    AND s.ts >= v_from
                    AND s.ts < v_to
                    AND NOT s.is_forecast
                    AND NOT s.is_provisional
            ),
            v_ranked,
            FALSE
        );
        v_total := v_total + v_changed;
    END LOOP;
    RETURN v_total;
END;
$$;

COMMENT ON FUNCTION pgbars.derive_bars(uuid, text, date, date) IS
'Recomputes the symbol''s derived bars (derived_jobs with an enabled derived_routes row: h4 from h1 in '
'4-hour buckets from 04:00 New York, w1 from d1 by ISO week) for the buckets the sessions touch, from the '
'stored source bars; unchanged bars are not rewritten. Returns the bars inserted or updated.';
