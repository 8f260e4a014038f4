-- Add a ticker to a watchlist (both created on first use); the trigger seeds it.
CREATE OR REPLACE FUNCTION pgbars.add_to_watchlist(
    p_ticker text,
    p_watchlist text DEFAULT 'default'
)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/* Returns {ticker, watchlist, added}; added is false when it was already there. */
DECLARE
    v_symbol_id uuid := pgbars._ensure_symbol(p_ticker);
    v_watchlist_name text := btrim(coalesce(p_watchlist, ''));
    v_watchlist_id uuid;
    v_added integer;
BEGIN
    -- Control characters (terminal escapes among them) would reach every screen that
    -- lists watchlists; the error shows them as '?', never raw. The last test is the
    -- table's CHECK (no white space, Unicode's too, at either end), refused here with
    -- this message rather than as a check_violation naming the constraint.
    IF v_watchlist_name = '' OR length(v_watchlist_name) > 64 OR v_watchlist_name ~ '[[:cntrl:]]'
        OR v_watchlist_name !~ '^\S(.{0,62}\S)?$' THEN
        RAISE EXCEPTION 'invalid watchlist name %',
            quote_literal(regexp_replace(left(p_watchlist, 80), '[[:cntrl:]]', '?', 'g'))
            USING ERRCODE = '22023',
            HINT = 'A watchlist name has 1 to 64 characters, none of them a control character, '
            || 'and neither starts nor ends with a space.';
    END IF;
    INSERT INTO pgbars.watchlists (name)
    VALUES (v_watchlist_name)
    ON CONFLICT (name) DO NOTHING;
    SELECT w.id INTO v_watchlist_id FROM pgbars.watchlists AS w WHERE w.name = v_watchlist_name;

    INSERT INTO pgbars.watchlist_items (watchlist_id, symbol_id)
    VALUES (v_watchlist_id, v_symbol_id)
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS v_added = ROW_COUNT;

    RETURN jsonb_build_object(
        'ticker', (SELECT s.ticker FROM pgbars.symbols AS s WHERE s.id = v_symbol_id),
        'watchlist', v_watchlist_name,
        'added', v_added > 0
    );
END;
$$;

COMMENT ON FUNCTION pgbars.add_to_watchlist(text, text) IS
'Adds a ticker to a watchlist (default "default"), creating either if new; '
'the watchlist trigger seeds its h1 backfill.';
