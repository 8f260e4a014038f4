-- Statement-level trigger function: the references of new or updated bars.
CREATE OR REPLACE FUNCTION pgbars._check_bar_references()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
What the foreign keys of ohlc_bars_v2 checked once per row, once per
statement (AFTER INSERT and AFTER UPDATE, transition table new_bars; MERGE,
COPY and ON CONFLICT fire them too): every distinct symbol_id, timeframe
and provider of the statement's new rows must exist. A chunk's rows share
one of each, so this is one pass over the transition table and one probe
of each referenced table, where the foreign keys ran three lookups per row.
As the foreign keys did, the referenced rows are locked FOR KEY SHARE until
the transaction ends, so a concurrent DELETE (or key change) of a symbol,
timeframe or provider waits for the bars' commit and then sees them (the
triggers of _delete_symbol_bars and _refuse_orphaning_bars). Raises 23503
naming the first missing key. SECURITY DEFINER, as foreign-key checks run
as the referenced tables' owner: the writer needs no privilege on them.
*/
DECLARE
    v_symbol_id uuid;
    v_timeframe text;
    v_provider text;
    v_mixed boolean;
    v_symbol_ids uuid[];
    v_timeframes text[];
    v_providers text[];
    v_found integer;
    v_missing text;
    v_column text;
    v_table text;
BEGIN
    -- The first row's keys, and whether any row has others.
    SELECT
        f.symbol_id,
        f.timeframe,
        f.provider,
        EXISTS (
            SELECT FROM new_bars AS n
            WHERE n.symbol_id <> f.symbol_id OR n.timeframe <> f.timeframe OR n.provider <> f.provider
        )
    INTO v_symbol_id, v_timeframe, v_provider, v_mixed
    FROM (SELECT n.symbol_id, n.timeframe, n.provider FROM new_bars AS n LIMIT 1) AS f;
    IF NOT FOUND THEN
        RETURN NULL;  -- no rows (an UPDATE or MERGE that changed nothing)
    END IF;

    IF NOT v_mixed THEN
        -- One key (a chunk, a single row): one probe of each table.
        PERFORM
        FROM pgbars.symbols AS s, pgbars.timeframes AS t, pgbars.providers AS p
        WHERE s.id = v_symbol_id AND t.name = v_timeframe AND p.name = v_provider
        FOR KEY SHARE;
        IF FOUND THEN
            RETURN NULL;
        END IF;
        v_symbol_ids := ARRAY[v_symbol_id];
        v_timeframes := ARRAY[v_timeframe];
        v_providers := ARRAY[v_provider];
    ELSE
        SELECT
            array_agg(DISTINCT k.symbol_id ORDER BY k.symbol_id),
            array_agg(DISTINCT k.timeframe ORDER BY k.timeframe),
            array_agg(DISTINCT k.provider ORDER BY k.provider)
        INTO v_symbol_ids, v_timeframes, v_providers
        FROM (SELECT DISTINCT n.symbol_id, n.timeframe, n.provider FROM new_bars AS n) AS k;
    END IF;

    -- Several keys, or one missing: each table's keys locked in order, and the
    -- first missing one named.
    SELECT count(*) INTO v_found
    FROM (
        SELECT 1 FROM pgbars.symbols AS s
        WHERE s.id = ANY(v_symbol_ids)
        ORDER BY s.id
        FOR KEY SHARE
    ) AS locked;
    IF v_found < cardinality(v_symbol_ids) THEN
        SELECT x::text INTO v_missing FROM unnest(v_symbol_ids) AS x
        WHERE NOT EXISTS (SELECT 1 FROM pgbars.symbols AS s WHERE s.id = x)
        ORDER BY x LIMIT 1;
        v_column := 'symbol_id';
        v_table := 'symbols';
    END IF;

    IF v_missing IS NULL THEN
        SELECT count(*) INTO v_found
        FROM (
            SELECT 1 FROM pgbars.timeframes AS t
            WHERE t.name = ANY(v_timeframes)
            ORDER BY t.name
            FOR KEY SHARE
        ) AS locked;
        IF v_found < cardinality(v_timeframes) THEN
            SELECT x INTO v_missing FROM unnest(v_timeframes) AS x
            WHERE NOT EXISTS (SELECT 1 FROM pgbars.timeframes AS t WHERE t.name = x)
            ORDER BY x LIMIT 1;
            v_column := 'timeframe';
            v_table := 'timeframes';
        END IF;
    END IF;

    IF v_missing IS NULL THEN
        SELECT count(*) INTO v_found
        FROM (
            SELECT 1 FROM pgbars.providers AS p
            WHERE p.name = ANY(v_providers)
            ORDER BY p.name
            FOR KEY SHARE
        ) AS locked;
        IF v_found < cardinality(v_providers) THEN
            SELECT x INTO v_missing FROM unnest(v_providers) AS x
            WHERE NOT EXISTS (SELECT 1 FROM pgbars.providers AS p WHERE p.name = x)
            ORDER BY x LIMIT 1;
            v_column := 'provider';
            v_table := 'providers';
        END IF;
    END IF;

    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'insert or update on table "ohlc_bars_v2": % % is not present in table "%"',
            v_column, v_missing, v_table
            USING ERRCODE = 'foreign_key_violation',
            DETAIL = format('Key (%s)=(%s) is not present in table "%s".', v_column, v_missing, v_table),
            SCHEMA = 'pgbars',
            TABLE = 'ohlc_bars_v2',
            COLUMN = v_column;
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION pgbars._check_bar_references() IS
'Trigger function (AFTER INSERT/UPDATE FOR EACH STATEMENT on ohlc_bars_v2, transition table new_bars): '
'the new rows'' symbols, timeframes and providers must exist (23503), and are locked FOR KEY SHARE.';
