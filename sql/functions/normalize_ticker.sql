-- Normalise a ticker typed by a person, or raise saying what is wrong.
CREATE OR REPLACE FUNCTION pgbars.normalize_ticker(p_ticker text)
RETURNS pgbars.ticker
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pgbars
AS $$
/*
Upper-cases and trims the input and writes a share class the one way pgbars
stores it, with a dot (docs/database.md#tickers): BRK-B (Yahoo's spelling),
BRK/B (Tradier's), brk.b and 'BRK - B' are all BRK.B, one symbol. Only one
separator standing between two runs of letters and digits is rewritten; none
is added or dropped, so BRKB stays BRKB and BRK.A stays apart from BRK.B. A
bare space is no separator: 'AA PL' is refused, not read as AA.PL. Then the
pgbars.ticker domain decides: the rule for a valid ticker lives in one place,
the domain's CHECK. Each provider writes the class its own way in its request.
Input with a character outside ASCII is refused before upper-casing, which
would otherwise turn look-alikes into real tickers ('ıbm' into IBM). The
error names the input with control characters shown as '?'.
*/
DECLARE
    v_ticker text := upper(btrim(p_ticker, E' \t\r\n'));
BEGIN
    IF v_ticker IS NULL OR v_ticker = '' THEN
        RAISE EXCEPTION 'ticker is missing'
            USING ERRCODE = '22023';
    END IF;
    v_ticker := regexp_replace(v_ticker, '^([A-Z0-9]+)[ \t]*[-./][ \t]*([A-Z0-9]+)$', '\1.\2');
    BEGIN
        IF p_ticker ~ '[^\x01-\x7e]' THEN
            RAISE check_violation;
        END IF;
        RETURN v_ticker::pgbars.ticker;
    EXCEPTION WHEN check_violation THEN
        RAISE EXCEPTION 'invalid ticker %', quote_literal(regexp_replace(left(p_ticker, 40), '[[:cntrl:]]', '?', 'g'))
            USING ERRCODE = '22023',
            HINT = 'A ticker is 1-10 letters or digits starting with a letter, optionally with a '
            || 'share class of 1-4 letters or digits: BRK.B (also written BRK-B or BRK/B).';
    END;
END;
$$;

COMMENT ON FUNCTION pgbars.normalize_ticker(text) IS
'Returns the ticker upper-cased and trimmed, a share class written with a dot '
'(" aapl" -> AAPL, "brk-b" and "BRK/B" -> BRK.B), or raises 22023 if it is not a valid ticker.';
