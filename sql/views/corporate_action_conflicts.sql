-- Where the providers' reports of a corporate action disagree, or a source that
-- asked for the ex-date did not report it: visible, never silently mixed.
-- in_force is the report corporate_actions holds (the preferred source's,
-- corporate_action_sources.priority); reports lists every provider's, dividend
-- amounts made raw as _apply_corporate_actions makes them.
CREATE OR REPLACE VIEW pgbars.corporate_action_conflicts AS
WITH reports AS (
    SELECT
        r.symbol_id,
        r.kind,
        r.ex_date,
        r.provider,
        CASE WHEN r.kind = 'split' THEN r.split_to / r.split_from END AS ratio,
        r.cash_amount * CASE
            WHEN p.price_basis = 'split_adjusted'
                THEN
                    coalesce((
                        SELECT exp(sum(ln((s.split_to / s.split_from)::double precision)))
                        FROM pgbars.corporate_actions AS s
                        WHERE
                            s.symbol_id = r.symbol_id
                            AND s.kind = 'split'
                            AND s.ex_date > r.ex_date
                            AND s.ex_date::timestamp AT TIME ZONE 'America/New_York' <= r.fetched_at
                    ), 1)::numeric
            ELSE 1
        END AS raw_amount,
        CASE
            WHEN r.kind = 'split' THEN r.split_to::text || '-for-' || r.split_from::text
            ELSE r.cash_amount::text || ' ' || r.currency
        END AS reported
    FROM pgbars.corporate_action_reports AS r
    INNER JOIN pgbars.providers AS p ON r.provider = p.name
),

actions AS (
    SELECT DISTINCT
        r.symbol_id,
        r.kind,
        r.ex_date
    FROM reports AS r
),

judged AS (
    SELECT
        a.symbol_id,
        a.kind,
        a.ex_date,
        (
            SELECT jsonb_object_agg(r.provider, r.reported ORDER BY r.provider)
            FROM reports AS r
            WHERE r.symbol_id = a.symbol_id AND r.kind = a.kind AND r.ex_date = a.ex_date
        ) AS reports,
        (
            SELECT
                (max(r.ratio) <> min(r.ratio))
                OR (max(r.raw_amount) - min(r.raw_amount) > greatest(0.0001, 0.01 * max(r.raw_amount)))
            FROM reports AS r
            WHERE r.symbol_id = a.symbol_id AND r.kind = a.kind AND r.ex_date = a.ex_date
        ) AS values_differ,
        array(
            SELECT f.provider
            FROM pgbars.action_refreshes AS f
            INNER JOIN pgbars.corporate_action_sources AS src ON f.provider = src.provider
            WHERE
                f.symbol_id = a.symbol_id
                AND src.enabled
                AND f.refreshed_at IS NOT NULL
                AND a.ex_date BETWEEN f.covered_from AND f.covered_to
                AND NOT EXISTS (
                    SELECT
                    FROM reports AS r
                    WHERE
                        r.symbol_id = a.symbol_id AND r.kind = a.kind
                        AND r.ex_date = a.ex_date AND r.provider = f.provider
                )
            ORDER BY f.provider
        ) AS missing_from
    FROM actions AS a
)

SELECT
    s.ticker::text AS symbol,
    j.kind,
    j.ex_date,
    CASE
        WHEN j.values_differ AND j.kind = 'split' THEN 'the providers report different ratios'
        WHEN j.values_differ THEN 'the providers report different amounts'
        ELSE 'not reported by ' || array_to_string(j.missing_from, ', ') || ', which asked for this date'
    END AS issue,
    c.provider AS in_force_from,
    j.reports,
    j.missing_from,
    j.symbol_id
FROM judged AS j
INNER JOIN pgbars.symbols AS s ON j.symbol_id = s.id
LEFT JOIN pgbars.corporate_actions AS c
    ON j.symbol_id = c.symbol_id AND j.kind = c.kind AND j.ex_date = c.ex_date
WHERE j.values_differ OR cardinality(j.missing_from) > 0;

COMMENT ON VIEW pgbars.corporate_action_conflicts IS
'Corporate actions the providers disagree on (ratio, raw amount) or that a source which asked for the date '
'did not report: symbol, kind, ex_date, issue, the provider in force, every report, the sources missing it.';
