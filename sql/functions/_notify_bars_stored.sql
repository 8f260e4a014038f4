-- Tell charts that bars were committed: NOTIFY pgbars_bars, one message per timeframe written.
CREATE OR REPLACE FUNCTION pgbars._notify_bars_stored(
    p_symbol_id uuid,
    p_timeframes text[],
    p_from timestamptz,
    p_to timestamptz,
    p_changed integer,
    p_provisional boolean
)
RETURNS void
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
    /*
    The one sender on channel pgbars_bars (docs/reading.md, "New bars as
    they arrive"), called by store_lease when a store inserted or changed
    bars. Delivered when the worker's transaction commits, never before and
    never for a store that rolled back. The payload is JSON:
      {"ticker": "AAPL", "timeframe": "h1", "from": "2024-12-02T09:00:00+00:00",
       "to": "2024-12-06T00:00:00+00:00", "bars_changed": 64, "provisional": false}
    from and to bound the fetched bars (bar starts, both included, UTC); a
    timeframe derived from them (h4, w1 from h1; h1 from today's m15) gets
    its own message with the same bounds: its buckets that overlap them
    were recomputed. bars_changed counts the fetched timeframe's bars
    inserted or updated (derived ones included).
    */
    SELECT pg_notify(
        'pgbars_bars',
        json_build_object(
            'ticker', s.ticker,
            'timeframe', t.timeframe,
            'from', to_char(p_from AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'),
            'to', to_char(p_to AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'),
            'bars_changed', p_changed,
            'provisional', p_provisional
        )::text
    )
    FROM pgbars.symbols AS s
    CROSS JOIN LATERAL (SELECT DISTINCT u.timeframe FROM unnest(p_timeframes) AS u (timeframe)) AS t
    WHERE s.id = p_symbol_id;
$$;

COMMENT ON FUNCTION pgbars._notify_bars_stored(uuid, text[], timestamptz, timestamptz, integer, boolean) IS
'NOTIFY pgbars_bars (delivered at commit) for each timeframe a store wrote: ticker, timeframe, '
'the first and last bar start, bars changed, provisional.';
