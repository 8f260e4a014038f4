-- Normalise and check a list of timeframes; raise on unknown ones.
CREATE OR REPLACE FUNCTION pgbars._validate_timeframes(p_timeframes text[])
RETURNS text[]
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pgbars
AS $$
/*
Lower-cases and trims, drops duplicates, orders m1 .. w1. The error names the
unknown ones as typed, each cut to 40 characters and with control characters
(terminal escapes among them) shown as '?', so the message stays one short line.
*/
DECLARE
    v_unknown text;
    v_result text[];
BEGIN
    IF p_timeframes IS NULL OR cardinality(p_timeframes) = 0 THEN
        RAISE EXCEPTION 'no timeframe given'
            USING ERRCODE = '22023';
    END IF;
    IF array_position(p_timeframes, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'timeframe is missing'
            USING ERRCODE = '22023';
    END IF;

    SELECT string_agg(
        DISTINCT quote_literal(regexp_replace(left(t.requested, 40), '[[:cntrl:]]', '?', 'g')), ', '
    )
    INTO v_unknown
    FROM unnest(p_timeframes) AS t (requested)
    WHERE NOT EXISTS (
        SELECT 1
        FROM pgbars.timeframes AS tf
        WHERE tf.name = lower(btrim(t.requested))
    );
    IF v_unknown IS NOT NULL THEN
        RAISE EXCEPTION 'unknown timeframe %', v_unknown
            USING ERRCODE = '22023',
            HINT = 'Timeframes are: ' || (
                SELECT string_agg(tf.name, ' ' ORDER BY tf.sort_order)
                FROM pgbars.timeframes AS tf
            );
    END IF;

    SELECT array_agg(tf.name ORDER BY tf.sort_order)
    INTO v_result
    FROM pgbars.timeframes AS tf
    WHERE tf.name IN (SELECT lower(btrim(t.requested)) FROM unnest(p_timeframes) AS t (requested));
    RETURN v_result;
END;
$$;

COMMENT ON FUNCTION pgbars._validate_timeframes(text[]) IS
'Returns the timeframes normalised, deduplicated and ordered, or raises 22023 naming the unknown ones '
'(or saying one is missing: a NULL).';
