-- Provider calls of the last hour and the last day, from the rate-limit ledger.
-- One row per provider and period. A call counts when it has started
-- (starts_at in the period, not in the future) and was not cancelled; its
-- outcome is exactly one of ok, rate_limited, errors or unfinished:
--   ok            completed with a 2xx and no error text
--   rate_limited  completed with a 429
--   errors        completed otherwise: no complete answer (http_status NULL),
--                 any other status, or a 2xx whose body was refused (error set)
--   unfinished    no outcome recorded yet: in flight, or left by a worker that died
-- Latencies cover calls with a recorded duration. Only the last day of the
-- ledger is read (through its starts_at index), however long it is kept.
CREATE OR REPLACE VIEW pgbars.provider_usage AS
WITH
-- calls started in the last day, with their outcome
started AS (
    SELECT
        c.provider,
        c.starts_at,
        c.duration_ms,
        c.error,
        CASE
            WHEN c.status = 'reserved' THEN 'unfinished'
            WHEN c.http_status = 429 THEN 'rate_limited'
            WHEN c.http_status BETWEEN 200 AND 299 AND c.error IS NULL THEN 'ok'
            ELSE 'error'
        END AS outcome
    FROM pgbars.provider_calls AS c
    WHERE
        c.status <> 'cancelled'
        AND c.starts_at > now() - interval '1 day'
        AND c.starts_at <= now()
)

SELECT
    p.name AS provider,
    w.period,
    count(k.outcome) AS calls,
    count(*) FILTER (WHERE k.outcome = 'ok') AS ok,
    count(*) FILTER (WHERE k.outcome = 'rate_limited') AS rate_limited,
    count(*) FILTER (WHERE k.outcome = 'error') AS errors,
    count(*) FILTER (WHERE k.outcome = 'unfinished') AS unfinished,
    round(avg(k.duration_ms))::integer AS avg_ms,
    round(percentile_cont(0.95) WITHIN GROUP (ORDER BY k.duration_ms))::integer AS p95_ms,
    max(k.duration_ms) AS max_ms,
    max(k.starts_at) AS last_call_at,
    (array_agg(k.error ORDER BY k.starts_at DESC) FILTER (WHERE k.error IS NOT NULL))[1] AS last_error,
    p.calls_per_window,
    p.window_length,
    p.paused_until,
    p.enabled
FROM pgbars.providers AS p
CROSS JOIN (
    VALUES
    ('1 hour', interval '1 hour'),
    ('1 day', interval '1 day')
) AS w (period, span)
LEFT JOIN started AS k
    ON
        p.name = k.provider
        AND k.starts_at > now() - w.span
GROUP BY p.name, w.period, w.span;

COMMENT ON VIEW pgbars.provider_usage IS
'Provider calls started in the last hour and day (not cancelled): ok (2xx), rate_limited (429), '
'errors (no answer, other statuses, or a refused body), unfinished; latency avg/p95/max in ms; '
'the current limit and pause.';
