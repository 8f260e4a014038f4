-- The XNYS sessions around a range of session dates, as a lease carries them to the worker.
CREATE OR REPLACE FUNCTION pgbars._session_windows(p_first date, p_last date)
RETURNS jsonb
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pgbars
AS $$
    /*
    A week either side of [p_first, p_last]: a provider's daily timestamps may
    have to be mapped to a session just outside the range (and are then
    rejected as outside it, not as unmappable). Each session is
    [session_date, premarket_open, regular_open, regular_close,
    after_hours_close], instants as Unix seconds.
    */
    SELECT coalesce(
        jsonb_agg(
            jsonb_build_array(
                ms.session_date,
                extract(EPOCH FROM ms.premarket_open),
                extract(EPOCH FROM ms.regular_open),
                extract(EPOCH FROM ms.regular_close),
                extract(EPOCH FROM ms.after_hours_close)
            )
            ORDER BY ms.session_date
        ),
        '[]'::jsonb
    )
    FROM pgbars.market_sessions AS ms
    WHERE ms.session_date BETWEEN p_first - 7 AND p_last + 7;
$$;

COMMENT ON FUNCTION pgbars._session_windows(date, date) IS
'The XNYS sessions from a week before p_first to a week after p_last, as a jsonb array of '
'[date, premarket_open, regular_open, regular_close, after_hours_close] (Unix seconds).';
