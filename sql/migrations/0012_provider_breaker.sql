-- A circuit breaker per provider, shared by every worker through its row, and
-- the owner's retry backoff (docs/database.md, "Outcomes").
-- unreachable_streak counts the provider's consecutive calls that got no HTTP
-- answer at all (settle_lease, kind unreachable); any answered call resets it
-- (complete_provider_call). From the third, the provider is paused.
-- retry_backoff is the first wait after a transient failure, doubling per
-- attempt (_retry_backoff); a test suite sets it to seconds.
ALTER TABLE pgbars.providers
ADD COLUMN unreachable_streak integer NOT NULL DEFAULT 0 CHECK (unreachable_streak >= 0),
ADD COLUMN retry_backoff interval NOT NULL DEFAULT '1 minute' CHECK (retry_backoff > interval '0');

-- The backoff takes the provider's base now (its new signature is installed
-- with the routines).
DROP FUNCTION IF EXISTS pgbars._retry_backoff(integer);
