-- A live refresh that failed waits before it is due again: 5 s after the
-- first failure in a row, doubling, never longer than live_settings.refresh_every
-- (release_live_refresh). Before, a failed refresh was due again at once, and a
-- long-running worker had to keep itself from asking again in a loop.
ALTER TABLE pgbars.live_refreshes
ADD COLUMN failures integer NOT NULL DEFAULT 0,
ADD COLUMN retry_at timestamptz;
