-- The id of a symbol, created on first use.
CREATE OR REPLACE FUNCTION pgbars._ensure_symbol(p_ticker text)
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pgbars
AS $$
/* Normalises the ticker first, so ' aapl' and 'AAPL' are one symbol. */
DECLARE
    v_ticker pgbars.ticker := pgbars.normalize_ticker(p_ticker);
    v_id uuid;
BEGIN
    INSERT INTO pgbars.symbols (ticker)
    VALUES (v_ticker)
    ON CONFLICT (ticker) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        SELECT s.id INTO v_id FROM pgbars.symbols AS s WHERE s.ticker = v_ticker;
    END IF;
    RETURN v_id;
END;
$$;

COMMENT ON FUNCTION pgbars._ensure_symbol(text) IS
'Returns the id of the symbol for p_ticker, creating it if it is new.';
