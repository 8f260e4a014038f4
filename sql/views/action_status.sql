-- Each symbol's corporate-action refreshes: one row per symbol and source.
CREATE OR REPLACE VIEW pgbars.action_status AS
SELECT
    s.ticker::text AS symbol,
    r.provider,
    r.refreshed_at,
    r.due_at,
    r.attempts,
    r.lease_id IS NOT NULL AND r.lease_expires_at > now() AS running,
    r.covered_from,
    r.covered_to,
    r.actions_reported,
    r.actions_rejected,
    r.last_error,
    r.last_error_at,
    (
        SELECT count(*)
        FROM pgbars.corporate_actions AS a
        WHERE a.symbol_id = r.symbol_id AND a.kind = 'split'
    ) AS splits_in_force,
    (
        SELECT count(*)
        FROM pgbars.corporate_actions AS a
        WHERE a.symbol_id = r.symbol_id AND a.kind = 'dividend'
    ) AS dividends_in_force,
    r.symbol_id
FROM pgbars.action_refreshes AS r
INNER JOIN pgbars.symbols AS s ON r.symbol_id = s.id;

COMMENT ON VIEW pgbars.action_status IS
'Per symbol and action source: the last successful refresh, when the next is due, attempts, the ex-dates '
'covered, actions reported and rejected, the last error (secrets masked), and the actions in force.';
