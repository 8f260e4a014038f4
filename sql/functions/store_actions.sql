-- Write the corporate actions a worker staged for an action refresh, and end its lease.
CREATE OR REPLACE FUNCTION pgbars.store_actions(
    p_lease_id uuid,
    p_requests integer DEFAULT 1
)
RETURNS TABLE (actions_reported integer, actions_changed integer, actions_rejected integer)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
The store of an action refresh (store_lease calls it), inside the worker's
transaction. The worker COPYed the provider's actions into
pgbars.staged_actions and the rows it refused into pgbars.staged_rejects
under the lease's id. Each action becomes this provider's report in
corporate_action_reports (values and fetched_at change only when the values
do); two staged rows of one kind and ex-date are refused (22023). The
refused rows go to rejected_actions, the refresh is due again after its
source's refresh_every, and _apply_corporate_actions brings
corporate_actions and the stored bars up to date. A report the provider no
longer makes is kept (never deleted): corporate_action_conflicts shows it
beside the others. Returns the actions reported, the actions in force that
changed and the rows rejected; raises PB001 when the lease is no longer held.
*/
DECLARE
    v_refresh record;
    v_reported integer;
    v_rejected integer;
    v_applied record;
BEGIN
    SELECT r.symbol_id, r.provider, src.refresh_every
    INTO v_refresh
    FROM pgbars.action_refreshes AS r
    LEFT JOIN pgbars.corporate_action_sources AS src ON r.provider = src.provider
    WHERE r.lease_id = p_lease_id
    FOR UPDATE OF r;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lease % is no longer held: actions not stored', p_lease_id
            USING ERRCODE = 'PB001',
            HINT = 'The lease expired and the work was claimed again, or it was already finished.';
    END IF;

    IF EXISTS (
        SELECT
        FROM pgbars.staged_actions AS s
        WHERE s.lease_id = p_lease_id
        GROUP BY s.kind, s.ex_date
        HAVING count(*) > 1
    ) THEN
        RAISE EXCEPTION 'two staged actions of one kind share an ex-date: nothing stored'
            USING ERRCODE = '22023';
    END IF;

    INSERT INTO pgbars.corporate_action_reports AS r (
        symbol_id, kind, ex_date, provider, split_from, split_to, cash_amount, currency, reference, fetched_at
    )
    SELECT
        v_refresh.symbol_id,
        s.kind,
        s.ex_date,
        v_refresh.provider,
        s.split_from::numeric,
        s.split_to::numeric,
        s.cash_amount::numeric,
        s.currency,
        s.reference,
        now()
    FROM pgbars.staged_actions AS s
    WHERE s.lease_id = p_lease_id
    ON CONFLICT (symbol_id, kind, ex_date, provider) DO UPDATE
        SET
            split_from = excluded.split_from,
            split_to = excluded.split_to,
            cash_amount = excluded.cash_amount,
            currency = excluded.currency,
            reference = excluded.reference,
            fetched_at = excluded.fetched_at
        WHERE
            (r.split_from, r.split_to, r.cash_amount, r.currency)
            IS DISTINCT FROM (excluded.split_from, excluded.split_to, excluded.cash_amount, excluded.currency);
    SELECT count(*) INTO v_reported FROM pgbars.staged_actions AS s WHERE s.lease_id = p_lease_id;

    INSERT INTO pgbars.rejected_actions (symbol_id, provider, raw, reason)
    SELECT v_refresh.symbol_id, v_refresh.provider, pgbars._redact_json(s.raw), s.reason
    FROM pgbars.staged_rejects AS s
    WHERE s.lease_id = p_lease_id;
    GET DIAGNOSTICS v_rejected = ROW_COUNT;
    DELETE FROM pgbars.staged_actions AS s WHERE s.lease_id = p_lease_id;
    DELETE FROM pgbars.staged_rejects AS s WHERE s.lease_id = p_lease_id;

    v_applied := pgbars._apply_corporate_actions(v_refresh.symbol_id);

    UPDATE pgbars.action_refreshes AS r
    SET
        lease_id = NULL,
        claimed_by = NULL,
        lease_expires_at = NULL,
        attempts = 0,
        due_at = now() + coalesce(v_refresh.refresh_every, interval '1 day'),
        refreshed_at = now(),
        covered_from = r.asked_from,
        covered_to = r.asked_to,
        actions_reported = v_reported,
        actions_rejected = v_rejected,
        requests_used = p_requests,
        last_error = NULL,
        last_error_at = NULL
    WHERE r.lease_id = p_lease_id;

    RETURN QUERY SELECT v_reported, v_applied.actions_changed, v_rejected;
END;
$$;

COMMENT ON FUNCTION pgbars.store_actions(uuid, integer) IS
'Stores the actions the worker staged for an action refresh as the provider''s reports, quarantines its '
'refused rows in rejected_actions, applies them (_apply_corporate_actions) and ends the lease. Returns the '
'actions reported, the actions in force changed and the rows rejected; PB001 without the lease.';
