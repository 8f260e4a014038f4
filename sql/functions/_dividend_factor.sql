-- A cash dividend's CRSP factor: 1 - amount / the raw close of the session before the ex-date.
CREATE OR REPLACE FUNCTION pgbars._dividend_factor(
    p_symbol_id uuid,
    p_ex_date date,
    p_cash_amount numeric
)
RETURNS double precision
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
    /*
    The previous session's raw close: its d1 bar (any provider, the best-ranked
    first), else the last h1 bar inside its regular session (the 15:00 bar on a
    full day: its close is the last regular trade). NULL when pgbars holds
    neither, or when the amount is not below the close: the dividend then
    adjusts nothing and price_basis_issues says why. SECURITY DEFINER: the
    price_basis_issues view calls it with its reader's rights, and it reads
    market_sessions and the routes, which pgbars_reader may not SELECT.
    */
    SELECT CASE WHEN c.close > p_cash_amount THEN 1 - p_cash_amount::double precision / c.close END
    FROM (
        SELECT coalesce(
            (
                SELECT b.close
                FROM pgbars.ohlc_bars_v2 AS b
                WHERE
                    b.symbol_id = p_symbol_id
                    AND b.timeframe = 'd1'
                    AND b.ts = ms.session_date::timestamp AT TIME ZONE 'America/New_York'
                    AND NOT b.is_forecast
                ORDER BY array_position(pgbars._provider_ranking('d1'), b.provider)
                LIMIT 1
            ),
            (
                SELECT b.close
                FROM pgbars.ohlc_bars_v2 AS b
                WHERE
                    b.symbol_id = p_symbol_id
                    AND b.timeframe = 'h1'
                    AND b.ts >= ms.regular_open
                    AND b.ts < ms.regular_close
                    AND NOT b.is_forecast
                ORDER BY b.ts DESC, array_position(pgbars._provider_ranking('h1'), b.provider)
                LIMIT 1
            )
        ) AS close
        FROM pgbars.market_sessions AS ms
        WHERE ms.session_date = (
            SELECT max(s.session_date) FROM pgbars.market_sessions AS s WHERE s.session_date < p_ex_date
        )
    ) AS c;
$$;

COMMENT ON FUNCTION pgbars._dividend_factor(uuid, date, numeric) IS
'A cash dividend''s adjustment factor, 1 - amount / previous session''s raw close (d1 bar, else the last h1 '
'bar of the regular session); NULL when neither is stored or the amount is not below it.';
