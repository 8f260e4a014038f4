-- What keeps a symbol's adjusted reads from being trustworthy, one row per
-- issue: unreconciled corporate actions, sources that could not be read (or
-- not yet, once a split-adjusted provider's bars are stored: they are kept as
-- served until the splits are known), dividends that cannot be applied.
-- `pgbars status` shows them.
CREATE OR REPLACE VIEW pgbars.price_basis_issues AS
SELECT
    c.symbol,
    'action_conflict'::text AS issue,
    c.kind || ' ' || c.ex_date || ': ' || c.issue || ' (' || c.reports::text || ')' AS detail,
    c.symbol_id
FROM pgbars.corporate_action_conflicts AS c
UNION ALL
SELECT
    s.ticker::text AS symbol,
    CASE WHEN r.refreshed_at IS NULL THEN 'actions_not_fetched' ELSE 'actions_refresh_failed' END AS issue,
    r.provider || ': '
    || CASE
        WHEN r.refreshed_at IS NULL AND r.last_error IS NULL
            THEN 'splits and dividends not fetched yet (due ' || to_char(r.due_at, 'YYYY-MM-DD HH24:MI TZ') || ')'
        WHEN r.refreshed_at IS NULL THEN 'splits and dividends could not be fetched: ' || r.last_error
        ELSE
            'the last refresh failed (' || r.last_error || '); actions as of '
            || to_char(r.refreshed_at, 'YYYY-MM-DD HH24:MI TZ')
    END AS detail,
    r.symbol_id
FROM pgbars.action_refreshes AS r
INNER JOIN pgbars.symbols AS s ON r.symbol_id = s.id
INNER JOIN pgbars.corporate_action_sources AS src ON r.provider = src.provider
WHERE
    src.enabled
    AND (
        r.last_error IS NOT NULL
        -- not fetched yet: an issue once bars of a split-adjusted provider are stored
        OR (
            r.refreshed_at IS NULL
            AND EXISTS (
                SELECT
                FROM pgbars.ohlc_bars_v2 AS b
                INNER JOIN pgbars.providers AS p ON b.provider = p.name
                WHERE b.symbol_id = r.symbol_id AND p.price_basis = 'split_adjusted'
            )
        )
    )
UNION ALL
SELECT
    s.ticker::text AS symbol,
    'dividend_not_applied' AS issue,
    'dividend ' || a.ex_date || ' of ' || a.cash_amount || ' ' || a.currency || ': '
    || CASE
        WHEN a.currency <> 'USD' THEN 'not in USD, not applied'
        ELSE 'no close stored for the session before, not applied'
    END AS detail,
    a.symbol_id
FROM pgbars.corporate_actions AS a
INNER JOIN pgbars.symbols AS s ON a.symbol_id = s.id
WHERE
    a.kind = 'dividend'
    AND (a.currency <> 'USD' OR pgbars._dividend_factor(a.symbol_id, a.ex_date, a.cash_amount) IS NULL)
    -- only where pgbars holds bars before the dividend: otherwise it adjusts nothing
    AND EXISTS (
        SELECT
        FROM pgbars.ohlc_bars_v2 AS b
        WHERE
            b.symbol_id = a.symbol_id
            AND b.timeframe IN ('d1', 'h1')
            AND b.ts < a.ex_date::timestamp AT TIME ZONE 'America/New_York'
    );

COMMENT ON VIEW pgbars.price_basis_issues IS
'Why a symbol''s adjusted reads may be off, one row per issue: action_conflict, actions_not_fetched, '
'actions_refresh_failed, dividend_not_applied; with a detail text.';
