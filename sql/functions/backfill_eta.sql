-- When each backfill job should be done, from the work left in the shared queue.
CREATE OR REPLACE FUNCTION pgbars.backfill_eta(p_tickers text[] DEFAULT NULL)
RETURNS TABLE (
    job_id bigint,
    symbol text,
    timeframe text,
    provider text,
    remaining_chunks bigint,
    remaining_requests bigint,
    requests_ahead bigint,
    paused_until timestamptz,
    eta_seconds double precision,
    eta_at timestamptz
)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
    /*
    The model (docs/database.md, "ETA"), per provider, since each has its own
    rate limit and claims of one provider do not wait for another's:
    - A remaining chunk (pending or running; failed ones need a person) costs
      the job's average requests_used of its done chunks of that provider
      (pagination), or 1 before any is done.
    - The provider serves window_length / calls_per_window seconds per
      request, from now or from the end of its pause.
    - Claims go round-robin across jobs, so a job with R requests left is
      done once every job of the provider has had min(R_J, R) of its
      requests served: its own R plus requests_ahead.
    - Retry backoff only as a floor: the job is not done before its last
      backed-off chunk is due plus one request.
    A job on several providers takes its latest provider (the one returned).
    eta_at is NULL when nothing is left, or when a provider it needs is
    disabled. Every job is in the queue, so the ETA of one ticker reads every
    lane with queued chunks (backfill_lanes: one row per job and provider,
    its counters kept from the chunks, so no chunk is read); p_tickers only
    filters the rows.

    The first statement checks p_tickers (22023 for a ticker that is not
    valid), so a bad ticker is refused even where no job exists, whose filter
    below would then never look at it.
    */
    SELECT pgbars.normalize_ticker(t.ticker) FROM unnest(p_tickers) AS t (ticker);

    WITH
    -- the work left per job and provider
    -- each lane's queued chunks (pending or running) and their expected requests
    demand AS (
        SELECT
            l.job_id,
            l.provider,
            (l.chunks - l.done - l.failed)::bigint AS chunks,
            l.last_due_at,
            ceil(
                (l.chunks - l.done - l.failed)
                * greatest(coalesce(l.requests_done::numeric / nullif(l.done_with_requests, 0), 1), 1)
            )::bigint AS requests
        FROM pgbars.backfill_lanes AS l
        WHERE l.due_at IS NOT NULL
    ),

    queue AS (
        SELECT
            d.*,
            (
                sum(d.requests) OVER by_size
                + d.requests * (count(*) OVER (PARTITION BY d.provider) - count(*) OVER by_size)
            )::bigint AS served
        FROM demand AS d
        WINDOW by_size AS (PARTITION BY d.provider ORDER BY d.requests)
    ),

    per_provider AS (
        SELECT
            q.job_id,
            q.provider,
            q.chunks,
            q.requests,
            q.served - q.requests AS ahead,
            p.enabled,
            CASE WHEN p.paused_until > now() THEN p.paused_until END AS paused_until,
            CASE WHEN p.enabled THEN
                greatest(
                    greatest(now(), p.paused_until) + q.served * (p.window_length / p.calls_per_window),
                    q.last_due_at + p.window_length / p.calls_per_window
                )
            END AS eta_at
        FROM queue AS q
        INNER JOIN pgbars.providers AS p ON q.provider = p.name
    ),

    -- per job: totals over its providers, and the provider it waits for longest
    -- (a disabled one first: then the job has no ETA)
    per_job AS (
        SELECT DISTINCT ON (pp.job_id)
            pp.job_id,
            pp.provider,
            pp.ahead,
            pp.paused_until,
            pp.eta_at,
            sum(pp.chunks) OVER (PARTITION BY pp.job_id)::bigint AS chunks,
            sum(pp.requests) OVER (PARTITION BY pp.job_id)::bigint AS requests
        FROM per_provider AS pp
        ORDER BY pp.job_id ASC, pp.enabled ASC, pp.eta_at DESC
    )

    SELECT
        j.id,
        s.ticker::text,
        j.timeframe,
        pj.provider,
        coalesce(pj.chunks, 0),
        coalesce(pj.requests, 0),
        coalesce(pj.ahead, 0),
        pj.paused_until,
        extract(EPOCH FROM pj.eta_at - now())::double precision,
        pj.eta_at
    FROM pgbars.backfill_jobs AS j
    INNER JOIN pgbars.symbols AS s ON j.symbol_id = s.id
    INNER JOIN pgbars.timeframes AS tf ON j.timeframe = tf.name
    LEFT JOIN per_job AS pj ON j.id = pj.job_id
    WHERE
        p_tickers IS NULL
        OR j.id IN (SELECT pgbars._ticker_jobs(p_tickers))
    ORDER BY s.ticker, tf.sort_order;
$$;

COMMENT ON FUNCTION pgbars.backfill_eta(text[]) IS
'Per backfill job (of p_tickers, NULL: all): remaining chunks and expected requests (failed chunks '
'excluded), requests of other jobs served before its last one (round-robin claims), the provider it '
'waits for longest and its pause, and the ETA at each provider''s sustained rate '
'(calls_per_window per window_length). ETA NULL when nothing is left or a provider is disabled. '
'An invalid ticker raises 22023.';
