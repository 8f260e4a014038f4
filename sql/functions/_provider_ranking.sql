-- The providers of a timeframe, best first: the one order reads and derivations use.
CREATE OR REPLACE FUNCTION pgbars._provider_ranking(p_timeframe text)
RETURNS text[]
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
    /*
    Enabled history routes by priority, then enabled live routes (provisional
    bars) by priority, then every other provider by name. A provider with both
    kinds of route ranks by its history route. Routes are read on every call,
    so disabling or reordering one changes the winner at once.
    */
    SELECT array_agg(p.name ORDER BY h.priority ASC NULLS LAST, l.priority ASC NULLS LAST, p.name)
    FROM pgbars.providers AS p
    LEFT JOIN pgbars.provider_routes AS h
        ON
            p.name = h.provider
            AND h.timeframe = p_timeframe
            AND h.purpose = 'history'
            AND h.enabled
    LEFT JOIN pgbars.provider_routes AS l
        ON
            p.name = l.provider
            AND l.timeframe = p_timeframe
            AND l.purpose = 'live'
            AND l.enabled;
$$;

COMMENT ON FUNCTION pgbars._provider_ranking(text) IS
'Every provider for p_timeframe, best first (history routes, then live routes, by priority; then by name): '
'which bar get_bars returns and derive_bars aggregates when providers share a timestamp.';
