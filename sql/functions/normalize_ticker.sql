-- Normalise a ticker typed by a person, or raise saying what is wrong.
CREATE OR REPLACE FUNCTION pgbars.normalize_ticker(p_ticker text)
RETURNS pgbars.ticker
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pgbars
AS $$
/*
Upper-cases and trims the input, then lets the pgbars.ticker domain decide:
the rule for a valid ticker lives in one place, the domain's CHECK.
*/
DECLARE
    v_ticker text := upper(btrim(p_ticker, E' \t\r\n'));
BEGIN
    IF v_ticker IS NULL OR v_ticker = '' THEN
        RAISE EXCEPTION 'ticker is missing'
            USING ERRCODE = '22023';
    END IF;
    BEGIN
        RETURN v_ticker::pgbars.ticker;
    EXCEPTION WHEN check_violation THEN
        RAISE EXCEPTION 'invalid ticker %', quote_literal(left(p_ticker, 40))
            USING ERRCODE = '22023',
            HINT = 'A ticker is 1-10 letters or digits starting with a letter, '
            || 'optionally with a class suffix such as BRK.B or BF-B.';
    END;
END;
$$;

COMMENT ON FUNCTION pgbars.normalize_ticker(text) IS
'Returns the ticker upper-cased and trimmed (" aapl" -> AAPL), or raises 22023 if it is not a valid ticker.';
