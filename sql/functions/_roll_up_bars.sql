-- Roll bars up into a coarser timeframe's buckets and store them: derived and live bars alike.
CREATE OR REPLACE FUNCTION pgbars._roll_up_bars(
    p_symbol_id uuid,
    p_target_timeframe text,
    p_bars pgbars.source_bar[],
    p_providers text[],
    p_provisional boolean
)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
The one roll-up of pgbars: derive_bars (history h4 from h1, w1 from d1) and
store_live_bars (today's h1 and h4 from the fetched m15) both call it, so a
bucket is computed the same way whichever path wrote it.

Source: p_bars, the bars of the buckets to compute (derive_bars passes the
stored history bars of the source timeframe; store_live_bars the bars the
worker staged). Per ts the bar of the first provider in p_providers is used
(get_bars' order for derived bars; the live provider alone for live ones).

Buckets: an intraday target's bar_length grid counted from 00:00 New York
(h4: 04:00, 08:00, 12:00, 16:00, so none crosses a session); w1: the ISO
week, at 00:00 New York of its Monday. A bucket is: open of its first bar,
close of its last, high/low extremes, volume and trade_count summed
(trade_count NULL when every one is), vwap = sum(vwap * volume) / sum(volume)
over the bars with a vwap and volume > 0 (NULL when there is none).

It is stored under every provider with source bars in the bucket (normally
one), with is_provisional = p_provisional; unchanged bars are not rewritten,
and a provisional bar never replaces a history bar. Returns the bars
inserted or updated. SECURITY INVOKER: called by derive_bars and the
SECURITY DEFINER store functions, never by the worker role itself.
*/
DECLARE
    v_target record;
    v_changed integer;
BEGIN
    SELECT tf.name, tf.is_intraday, tf.bar_length INTO v_target
    FROM pgbars.timeframes AS tf
    WHERE tf.name = p_target_timeframe;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown timeframe %', quote_literal(p_target_timeframe) USING ERRCODE = '22023';
    END IF;

    WITH source_bars AS (
        SELECT
            s.ts,
            s.provider,
            s.open,
            s.high,
            s.low,
            s.close,
            s.volume,
            s.vwap,
            s.trade_count,
            (
                CASE
                    WHEN v_target.is_intraday
                        THEN date_bin(
                            v_target.bar_length, s.ts AT TIME ZONE 'America/New_York',
                            TIMESTAMP '2000-01-01 00:00'
                        )
                    ELSE date_trunc('week', s.ts AT TIME ZONE 'America/New_York')
                END
            ) AT TIME ZONE 'America/New_York' AS bucket,
            row_number() OVER (
                PARTITION BY s.ts
                ORDER BY array_position(p_providers, s.provider)
            ) AS pick
        FROM unnest(p_bars) AS s
    ),

    rolled AS (
        SELECT
            sb.bucket,
            (array_agg(sb.open ORDER BY sb.ts))[1] AS open,
            max(sb.high) AS high,
            min(sb.low) AS low,
            (array_agg(sb.close ORDER BY sb.ts DESC))[1] AS close,
            sum(sb.volume)::bigint AS volume,
            sum(sb.vwap * sb.volume) FILTER (WHERE sb.vwap IS NOT NULL AND sb.volume > 0)
            / (sum(sb.volume) FILTER (WHERE sb.vwap IS NOT NULL AND sb.volume > 0))::double precision
            AS vwap,
            sum(sb.trade_count)::bigint AS trade_count
        FROM source_bars AS sb
        WHERE sb.pick = 1
        GROUP BY sb.bucket
    ),

    served AS (
        SELECT DISTINCT
            sb.bucket,
            sb.provider
        FROM source_bars AS sb
    )

    INSERT INTO pgbars.ohlc_bars_v2 AS b (
        symbol_id, timeframe, ts, provider, is_forecast, open, high, low, close,
        volume, vwap, trade_count, is_provisional, fetched_at
    )
    SELECT
        p_symbol_id,
        v_target.name,
        r.bucket,
        sv.provider,
        FALSE,
        r.open,
        r.high,
        r.low,
        r.close,
        r.volume,
        r.vwap,
        r.trade_count,
        p_provisional,
        now()
    FROM rolled AS r
    INNER JOIN served AS sv ON r.bucket = sv.bucket
    ON CONFLICT (symbol_id, timeframe, ts, provider, is_forecast) DO UPDATE
        SET
            open = excluded.open,
            high = excluded.high,
            low = excluded.low,
            close = excluded.close,
            volume = excluded.volume,
            vwap = excluded.vwap,
            trade_count = excluded.trade_count,
            is_provisional = excluded.is_provisional,
            fetched_at = excluded.fetched_at
        WHERE
            -- a provisional bar never replaces a history bar
            (b.is_provisional OR NOT excluded.is_provisional)
            AND (b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trade_count, b.is_provisional)
            IS DISTINCT FROM
            (
                excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume,
                excluded.vwap, excluded.trade_count, excluded.is_provisional
            );
    GET DIAGNOSTICS v_changed = ROW_COUNT;
    RETURN v_changed;
END;
$$;

COMMENT ON FUNCTION pgbars._roll_up_bars(uuid, text, pgbars.source_bar[], text[], boolean) IS
'Rolls bars up into a coarser timeframe''s buckets and stores them (derived history bars and today''s '
'live roll-ups alike); unchanged bars are not rewritten. Returns the bars inserted or updated.';
