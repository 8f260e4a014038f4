-- A lease is named by its id alone, whatever it leases (settle_lease): both
-- kinds of leased work find their row by lease id through these indexes,
-- which hold only the rows leased right now.
CREATE UNIQUE INDEX backfill_chunks_lease_idx ON pgbars.backfill_chunks (lease_id)
WHERE lease_id IS NOT NULL;

CREATE UNIQUE INDEX live_refreshes_lease_idx ON pgbars.live_refreshes (lease_id)
WHERE lease_id IS NOT NULL;
