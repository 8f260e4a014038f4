-- Create the year partitions of ohlc_bars_v2 through p_through's year (default: the end of next year).
CREATE OR REPLACE FUNCTION pgbars.extend_bar_partitions(p_through date DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
ohlc_bars_v2 is partitioned by RANGE (ts) (migration 0016, docs/scale.md):
ohlc_bars_v2_earlier before 2000, one partition ohlc_bars_v2_yYYYY per
calendar year (UTC) from 2000, and ohlc_bars_v2_later from the year after
the last one to MAXVALUE. This adds the years after the last one through
p_through's year (NULL: the year after the planning clock's, so the year
ahead always exists) and returns how many it created: 0, after one catalog
read, when they exist, which is every call but the first of a year.

To add years, ohlc_bars_v2_later is detached, the years are created, the
rows of the detached table that now have a year (normally none: a bar more
than a year ahead) are moved into them through ohlc_bars_v2, and it is
attached again from the new end. All in the caller's transaction, under an
ACCESS EXCLUSIVE lock of ohlc_bars_v2 held until the caller's transaction
ends: call it in a short one. A second caller waits for it, then finds the
years there. The installer calls it through the calendar's end (`pgbars db
upgrade`), and every `pgbars work` run through roll_forward_bar_partitions
(a statement of its own, at most 5 s waiting for the lock), so the
partitions roll forward with the clock. Past years are never created here
(the migration and the installer made them from 2000).
*/
DECLARE
    v_through integer := coalesce(
        extract(YEAR FROM p_through)::integer,
        extract(YEAR FROM pgbars._now() AT TIME ZONE 'UTC')::integer + 1
    );
    v_last integer;
    v_bound timestamptz;
    v_created integer := 0;
BEGIN
    IF v_through > 9998 THEN
        RAISE EXCEPTION 'partitions through year % are too far ahead', v_through USING ERRCODE = '22023';
    END IF;
    FOR v_attempt IN 1..2 LOOP
        SELECT coalesce(max(substr(c.relname, 15)::integer), 1999) INTO v_last
        FROM pg_catalog.pg_inherits AS i
        INNER JOIN pg_catalog.pg_class AS c ON i.inhrelid = c.oid
        WHERE i.inhparent = 'pgbars.ohlc_bars_v2'::regclass AND c.relname ~ '^ohlc_bars_v2_y[0-9]{4}$';
        IF v_last >= v_through THEN
            RETURN v_created;
        END IF;
        EXIT WHEN v_attempt = 2;
        -- then read the last year again: another caller may have added it meanwhile
        LOCK TABLE pgbars.ohlc_bars_v2 IN ACCESS EXCLUSIVE MODE;
    END LOOP;

    ALTER TABLE pgbars.ohlc_bars_v2 DETACH PARTITION pgbars.ohlc_bars_v2_later;
    FOR v_year IN v_last + 1..v_through LOOP
        EXECUTE format(
            'CREATE TABLE pgbars.%I PARTITION OF pgbars.ohlc_bars_v2 FOR VALUES FROM (%L) TO (%L)',
            'ohlc_bars_v2_y' || v_year,
            make_timestamptz(v_year, 1, 1, 0, 0, 0, 'UTC'),
            make_timestamptz(v_year + 1, 1, 1, 0, 0, 0, 'UTC')
        );
        v_created := v_created + 1;
    END LOOP;
    v_bound := make_timestamptz(v_through + 1, 1, 1, 0, 0, 0, 'UTC');
    WITH moved AS (
        DELETE FROM pgbars.ohlc_bars_v2_later AS l
        WHERE l.ts < v_bound
        RETURNING l.*
    )

    INSERT INTO pgbars.ohlc_bars_v2
    SELECT * FROM moved;
    EXECUTE format(
        'ALTER TABLE pgbars.ohlc_bars_v2 ATTACH PARTITION pgbars.ohlc_bars_v2_later FOR VALUES FROM (%L) TO (MAXVALUE)',
        v_bound
    );
    RETURN v_created;
END;
$$;

COMMENT ON FUNCTION pgbars.extend_bar_partitions(date) IS
'Creates the year partitions of ohlc_bars_v2 after the last one through p_through''s year '
'(default: next year), moving any rows of ohlc_bars_v2_later into them; returns how many it created.';
