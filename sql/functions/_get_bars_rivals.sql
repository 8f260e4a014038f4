-- The bars of providers other than the best one that get_bars returns: those no better-ranked bar shares a ts with.
CREATE OR REPLACE FUNCTION pgbars._get_bars_rivals(
    p_symbol_id uuid,
    p_timeframe text,
    p_from timestamptz,
    p_to timestamptz,
    p_ranking text[],
    p_best text
)
RETURNS TABLE (ts timestamptz, provider text)
LANGUAGE plpgsql
STABLE
ROWS 100
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
get_bars' second step, taken only when its range scan meets a bar whose
provider is not p_best (the best-ranked provider with a bar in the window,
from _get_bars_request): get_bars puts these rows in a hash table and
returns such a bar when its (ts, provider) is one of them. In order, p_ranking
is every provider, best first.

Usually there are none (one provider served the window), or a few: today's
provisional bars, say. Up to 256 of them are read by range scans of the
primary key with `provider < p_best` and `provider > p_best` in the index
condition, each kept unless a better-ranked bar has its ts (one index probe
each). Past 256 (a fallback provider served part of the window), the winner
of every ts is taken by DISTINCT ON over the index range: in index order when
the ranking is in name order, else sorted by rank.

A provider outside p_ranking (every bar's provider is in pgbars.providers, so
none should be) ranks after all of it, by name, as in get_bars' rule.
SECURITY INVOKER: it reads ohlc_bars_v2 only, as get_bars' caller does.
*/
DECLARE
    -- above this many bars of other providers, one DISTINCT ON beats a probe per bar
    c_few constant integer := 256;
    v_last constant integer := cardinality(p_ranking) + 1;
    v_ts timestamptz[] := '{}';
    v_provider text[] := '{}';
BEGIN
    IF p_best IS NOT NULL THEN
        IF p_best > (SELECT min(p) FROM unnest(p_ranking) AS p) THEN
            SELECT
                coalesce(array_agg(o.ts), '{}'),
                coalesce(array_agg(o.provider), '{}')
            INTO v_ts, v_provider
            FROM (
                SELECT
                    b.ts,
                    b.provider
                FROM pgbars.ohlc_bars_v2 AS b
                WHERE
                    b.symbol_id = p_symbol_id
                    AND b.timeframe = p_timeframe
                    AND b.ts >= p_from
                    AND b.ts < p_to
                    AND b.provider < p_best
                    AND b.is_forecast IS NOT TRUE
                LIMIT c_few
            ) AS o;
        END IF;
        IF cardinality(v_ts) < c_few AND p_best < (SELECT max(p) FROM unnest(p_ranking) AS p) THEN
            SELECT
                v_ts || coalesce(array_agg(o.ts), '{}'),
                v_provider || coalesce(array_agg(o.provider), '{}')
            INTO v_ts, v_provider
            FROM (
                SELECT
                    b.ts,
                    b.provider
                FROM pgbars.ohlc_bars_v2 AS b
                WHERE
                    b.symbol_id = p_symbol_id
                    AND b.timeframe = p_timeframe
                    AND b.ts >= p_from
                    AND b.ts < p_to
                    AND b.provider > p_best
                    AND b.is_forecast IS NOT TRUE
                LIMIT c_few - cardinality(v_ts)
            ) AS o;
        END IF;
        IF cardinality(v_ts) < c_few THEN
            RETURN QUERY
            SELECT
                rival.ts,
                rival.provider
            FROM unnest(v_ts, v_provider) AS rival (ts, provider)
            WHERE NOT EXISTS (
                SELECT
                FROM pgbars.ohlc_bars_v2 AS b
                WHERE
                    b.symbol_id = p_symbol_id
                    AND b.timeframe = p_timeframe
                    AND b.ts = rival.ts
                    AND b.is_forecast IS NOT TRUE
                    AND (coalesce(array_position(p_ranking, b.provider), v_last), b.provider)
                    < (coalesce(array_position(p_ranking, rival.provider), v_last), rival.provider)
            );
            RETURN;
        END IF;
    END IF;

    IF p_ranking = ARRAY(SELECT p FROM unnest(p_ranking) AS p ORDER BY p) THEN
        RETURN QUERY
        SELECT
            w.ts,
            w.provider
        FROM (
            SELECT DISTINCT ON (b.ts)
                b.ts,
                b.provider
            FROM pgbars.ohlc_bars_v2 AS b
            WHERE
                b.symbol_id = p_symbol_id
                AND b.timeframe = p_timeframe
                AND b.ts >= p_from
                AND b.ts < p_to
                AND b.is_forecast IS NOT TRUE
            ORDER BY b.ts, b.provider
        ) AS w
        WHERE w.provider IS DISTINCT FROM p_best;
    ELSE
        RETURN QUERY
        SELECT
            w.ts,
            w.provider
        FROM (
            SELECT DISTINCT ON (b.ts)
                b.ts,
                b.provider
            FROM pgbars.ohlc_bars_v2 AS b
            WHERE
                b.symbol_id = p_symbol_id
                AND b.timeframe = p_timeframe
                AND b.ts >= p_from
                AND b.ts < p_to
                AND b.is_forecast IS NOT TRUE
            ORDER BY b.ts, coalesce(array_position(p_ranking, b.provider), v_last), b.provider
        ) AS w
        WHERE w.provider IS DISTINCT FROM p_best;
    END IF;
END;
$$;

COMMENT ON FUNCTION pgbars._get_bars_rivals(uuid, text, timestamptz, timestamptz, text[], text) IS
'get_bars'' second step, run when its scan meets a bar not of p_best: the (ts, provider) of every bar of another '
'provider in the window that no better-ranked bar shares a ts with (few: probed one by one; many: DISTINCT ON).';
