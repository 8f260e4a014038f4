-- Settle a lease that ended without bars: what a failure of this kind means for its work.
CREATE OR REPLACE FUNCTION pgbars.settle_lease(
    p_lease_id uuid,
    p_kind text,
    p_error text DEFAULT NULL,
    p_retry_after interval DEFAULT NULL
)
RETURNS TABLE (outcome text, paused_until timestamptz, moved_to text)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
The one home of the failure policy. The worker reduces a failed fetch to a
kind and names the lease (a history chunk's or a live refresh's: lease ids
are unique across both); this function decides.

kind          history chunk                         live refresh
------------  ------------------------------------  ----------------------------------
rate_limited  provider paused for every worker      provider paused; released without
              (p_retry_after, else one window);      an error, due again when the claim
              released until the pause ends, no     finds the provider running
              attempt spent
refused       released, no attempt spent (a         released with the error
              refused credential, or a base URL
              that is not http(s): the worker
              stops using the provider this run)
not_covered   moved to the next route that reaches  failed: released with the error,
              its sessions, else failed             due again at retry_at (a wrong
                                                    base URL answers 404 too)
transient     retried after a growing backoff       failed: released with the error,
              (the provider's retry_backoff),       due again at retry_at (5 s, then
                                                    doubling, at most refresh_every)
              failed after the last attempt
unreachable   no HTTP answer at all (connection     released with the error; the
              refused or reset, no status line in   provider's breaker counts it
              time): released, no attempt spent;    as for a chunk
              the provider's circuit breaker counts
              it (_note_unreachable): from the 3rd
              in a row the provider is paused for
              every worker, 30 s doubling, at most
              15 min; the pause alone holds the
              chunk back (clearing paused_until
              frees it at once)
permanent     failed                                failed, as transient
unfinished    released, no attempt spent (budget    released with p_error
              spent, the worker stopping)

An action refresh (a symbol's corporate actions from one source): released
without spending its attempt like a chunk for rate_limited, refused,
unreachable and unfinished; transient is retried after the provider's
backoff up to 3 attempts; anything else, or the third transient failure,
records the error and waits for the next daily refresh (its source's
refresh_every). Bars never wait for actions: price_basis_issues shows a
symbol whose actions could not be fetched.

outcome: released, retry, failed or rerouted for a chunk; released or
failed (released with an error) for a live refresh; released, retry or
failed for an action refresh. paused_until: the pause
a 429 or the breaker set. p_error is stored with secrets redacted. A lease
no longer held raises PB001.
*/
DECLARE
    v_chunk_id bigint;
    v_provider text;
    v_moved_to text;
    v_symbol_id uuid;
    v_timeframe text;
    v_until timestamptz;
    v_status text;
BEGIN
    IF p_kind IS NULL OR p_kind NOT IN (
        'rate_limited', 'refused', 'not_covered', 'transient', 'unreachable', 'permanent', 'unfinished'
    ) THEN
        RAISE EXCEPTION 'unknown failure kind %', coalesce(quote_literal(p_kind), 'NULL')
            USING ERRCODE = '22023',
            HINT = 'rate_limited, refused, not_covered, transient, unreachable, permanent or unfinished';
    END IF;

    SELECT c.id, c.provider INTO v_chunk_id, v_provider
    FROM pgbars.backfill_chunks AS c
    WHERE c.lease_id = p_lease_id AND c.status = 'running';
    IF FOUND THEN
        IF p_kind = 'rate_limited' THEN
            v_until := pgbars.pause_provider(v_provider, now() + p_retry_after);
            PERFORM pgbars.release_backfill_chunk(v_chunk_id, p_lease_id, v_until, p_error);
            RETURN QUERY SELECT 'released'::text, v_until, NULL::text;
        ELSIF p_kind IN ('refused', 'unfinished') THEN
            PERFORM pgbars.release_backfill_chunk(v_chunk_id, p_lease_id, NULL, p_error);
            RETURN QUERY SELECT 'released'::text, NULL::timestamptz, NULL::text;
        ELSIF p_kind = 'unreachable' THEN
            v_until := pgbars._note_unreachable(v_provider);
            PERFORM pgbars.release_backfill_chunk(v_chunk_id, p_lease_id, NULL, p_error);
            RETURN QUERY SELECT 'released'::text, v_until, NULL::text;
        ELSIF p_kind = 'not_covered' THEN
            v_moved_to := pgbars.reroute_backfill_chunk(v_chunk_id, p_lease_id, p_error);
            RETURN QUERY SELECT
                CASE WHEN v_moved_to IS NULL THEN 'failed' ELSE 'rerouted' END,
                NULL::timestamptz,
                v_moved_to;
        ELSE
            v_status := pgbars.fail_backfill_chunk(v_chunk_id, p_lease_id, p_error, p_kind = 'transient');
            RETURN QUERY SELECT
                CASE WHEN v_status = 'pending' THEN 'retry' ELSE 'failed' END,
                NULL::timestamptz,
                NULL::text;
        END IF;
        RETURN;
    END IF;

    SELECT r.symbol_id, r.timeframe, r.provider INTO v_symbol_id, v_timeframe, v_provider
    FROM pgbars.live_refreshes AS r
    WHERE r.lease_id = p_lease_id;
    IF FOUND THEN
        IF p_kind = 'rate_limited' THEN
            v_until := pgbars.pause_provider(v_provider, now() + p_retry_after);
            PERFORM pgbars.release_live_refresh(v_symbol_id, v_timeframe, p_lease_id, NULL, FALSE);
        ELSE
            IF p_kind = 'unreachable' THEN
                v_until := pgbars._note_unreachable(v_provider);
            END IF;
            -- released (a stop, a refused credential, an unreachable provider): due again
            -- at once, the provider's pause aside; failed: backs off (release_live_refresh)
            PERFORM pgbars.release_live_refresh(
                v_symbol_id, v_timeframe, p_lease_id, p_error,
                p_kind NOT IN ('refused', 'unfinished', 'unreachable')
            );
        END IF;
        RETURN QUERY SELECT
            CASE
                WHEN p_kind IN ('rate_limited', 'refused', 'unreachable', 'unfinished') THEN 'released'
                ELSE 'failed'
            END,
            v_until,
            NULL::text;
        RETURN;
    END IF;

    SELECT r.symbol_id, r.provider INTO v_symbol_id, v_provider
    FROM pgbars.action_refreshes AS r
    WHERE r.lease_id = p_lease_id
    FOR UPDATE;
    IF FOUND THEN
        IF p_kind = 'rate_limited' THEN
            v_until := pgbars.pause_provider(v_provider, now() + p_retry_after);
        ELSIF p_kind = 'unreachable' THEN
            v_until := pgbars._note_unreachable(v_provider);
        END IF;
        UPDATE pgbars.action_refreshes AS r
        SET
            lease_id = NULL,
            claimed_by = NULL,
            lease_expires_at = NULL,
            attempts = CASE
                WHEN p_kind IN ('rate_limited', 'refused', 'unreachable', 'unfinished') THEN greatest(r.attempts - 1, 0)
                WHEN p_kind = 'transient' AND r.attempts < 3 THEN r.attempts
                ELSE 0
            END,
            due_at = CASE
                WHEN p_kind IN ('rate_limited', 'refused', 'unreachable', 'unfinished')
                    THEN greatest(r.due_at, coalesce(v_until, now()))
                WHEN p_kind = 'transient' AND r.attempts < 3
                    THEN now() + pgbars._retry_backoff(r.attempts, p.retry_backoff)
                ELSE now() + coalesce(src.refresh_every, interval '1 day')
            END,
            last_error = pgbars._redact_secrets(p_error),
            last_error_at = now()
        FROM pgbars.providers AS p, pgbars.corporate_action_sources AS src
        WHERE r.lease_id = p_lease_id AND p.name = r.provider AND src.provider = r.provider
        RETURNING
            CASE
                WHEN p_kind IN ('rate_limited', 'refused', 'unreachable', 'unfinished') THEN 'released'
                WHEN p_kind = 'transient' AND r.attempts > 0 THEN 'retry'
                ELSE 'failed'
            END
        INTO v_status;
        RETURN QUERY SELECT v_status, v_until, NULL::text;
        RETURN;
    END IF;

    RAISE EXCEPTION 'lease % is no longer held: outcome not recorded', p_lease_id
        USING ERRCODE = 'PB001',
        HINT = 'The lease expired and the work was claimed again, or it was already finished.';
END;
$$;

COMMENT ON FUNCTION pgbars.settle_lease(uuid, text, text, interval) IS
'Settles a lease (history chunk, live or action refresh) that ended without a result, by the kind of failure: '
'pause and release, release (an unreachable provider: counted by its circuit breaker, paused from '
'the third in a row), reroute, retry with backoff or fail. Returns the outcome; raises PB001 '
'when the lease is no longer held.';
