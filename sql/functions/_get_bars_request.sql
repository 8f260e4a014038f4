-- get_bars' first step: its checked inputs, the symbol, the provider ranking and the best provider with bars.
CREATE OR REPLACE FUNCTION pgbars._get_bars_request(
    p_ticker text,
    p_timeframe text,
    p_from timestamptz,
    p_to timestamptz,
    p_adjust text,
    OUT symbol_id uuid,
    OUT timeframe text,
    OUT from_ts timestamptz,
    OUT to_ts timestamptz,
    OUT ranking text[],
    OUT best_provider text,
    OUT adjust text,
    OUT thresholds timestamptz[],
    OUT price_factors double precision[],
    OUT volume_factors double precision[],
    OUT adjust_mode integer,
    OUT t1 timestamptz,
    OUT t2 timestamptz,
    OUT t3 timestamptz,
    OUT f0 double precision,
    OUT f1 double precision,
    OUT f2 double precision,
    OUT f3 double precision,
    OUT v0 double precision,
    OUT v1 double precision,
    OUT v2 double precision,
    OUT v3 double precision
)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
The first step of pgbars.get_bars (docs/reading.md), which calls it once per
query. It checks the inputs before anything is read, so a bad ticker,
timeframe or bound raises 22023 whether or not the symbol exists, and
returns one row:

  symbol_id, timeframe  the symbol and the normalised timeframe; symbol_id is
                        NULL for an unknown symbol (get_bars returns no rows)
  from_ts, to_ts        the bounds, as given
  ranking               every provider, best first (_provider_ranking)
  best_provider         the best-ranked provider with a bar in the window
                        (NULL: none). No better-ranked provider has a bar
                        there, so each of its bars is the one get_bars
                        returns for its ts.
  adjust                p_adjust, normalised: none, splits or all
  thresholds,           the adjustment as steps (_adjustment_steps, as of
  price_factors,        the planning clock): get_bars multiplies a bar's
  volume_factors        prices by price_factors[width_bucket(ts, thresholds)
                        + 1] and divides its volume by volume_factors[...].
                        No actions: no thresholds, factors {1}.
  adjust_mode,          how get_bars applies them to the bars in the window:
  t1..t3, f0..f3,       0: not at all (no factor but 1 there); 1: at most
  v0..v3                three thresholds fall inside the window, t1 < t2 <
                        t3 (unused ones NULL): a bar before t1 takes f0
                        (prices) and v0 (volume), before t2 f1 and v1,
                        before t3 f2 and v2, any later one f3 and v3: a few
                        scalar comparisons per bar; 2: more thresholds, the
                        arrays and width_bucket.

Finding best_provider takes one primary-key probe per provider tried, in rank
order: usually one.

STABLE: it runs in the calling query's snapshot, so best_provider holds for
the bars that query reads. SECURITY DEFINER: it reads symbols, providers,
provider_routes and corporate_actions, which pgbars_reader cannot SELECT; it
returns no bar.
*/
DECLARE
    v_ticker pgbars.ticker := pgbars.normalize_ticker(p_ticker);
    v_provider text;
    v_before integer;
    v_inside integer;
BEGIN
    IF p_timeframe IS NULL OR btrim(p_timeframe) = '' THEN
        RAISE EXCEPTION 'timeframe is missing'
            USING ERRCODE = '22023';
    END IF;
    SELECT tf.name INTO timeframe
    FROM pgbars.timeframes AS tf
    WHERE tf.name = lower(btrim(p_timeframe));
    IF NOT FOUND THEN
        -- raises 22023 naming the timeframe, with the list of known ones
        PERFORM pgbars._validate_timeframes(ARRAY[p_timeframe]);
    END IF;
    IF p_from IS NULL OR p_to IS NULL THEN
        RAISE EXCEPTION 'p_from and p_to are both required'
            USING ERRCODE = '22023',
            HINT = 'Use ''-infinity'' or ''infinity'' for an open end.';
    END IF;
    adjust := lower(btrim(p_adjust));
    IF adjust IS NULL OR adjust NOT IN ('none', 'splits', 'all') THEN
        RAISE EXCEPTION 'unknown adjustment %', coalesce(quote_literal(p_adjust), 'NULL')
            USING ERRCODE = '22023',
            HINT = 'p_adjust is none (as traded), splits (the default) or all (splits and cash dividends).';
    END IF;
    IF p_from > p_to THEN
        RAISE EXCEPTION 'p_from % is after p_to %', p_from, p_to
            USING ERRCODE = '22023';
    END IF;
    from_ts := p_from;
    to_ts := p_to;

    SELECT s.id INTO symbol_id
    FROM pgbars.symbols AS s
    WHERE s.ticker = v_ticker;
    IF NOT FOUND THEN
        RETURN;
    END IF;

    SELECT st.thresholds, st.price_factors, st.volume_factors
    INTO thresholds, price_factors, volume_factors
    FROM pgbars._adjustment_steps(symbol_id, timeframe, adjust, pgbars._now()) AS st;
    -- The thresholds inside the window: those after p_from (v_before counts the others)
    -- and before p_to. A bar in the window takes the factors from v_before + 1 on.
    v_before := width_bucket(p_from, thresholds);
    v_inside := cardinality(ARRAY(SELECT t FROM unnest(thresholds) AS t WHERE t > p_from AND t < p_to));
    f3 := price_factors[v_before + v_inside + 1];
    v3 := volume_factors[v_before + v_inside + 1];
    IF v_inside = 0 AND f3 = 1 AND v3 = 1 THEN
        adjust_mode := 0;
    ELSIF v_inside <= 3 THEN
        adjust_mode := 1;
        t1 := thresholds[v_before + 1];
        f0 := price_factors[v_before + 1];
        v0 := volume_factors[v_before + 1];
        IF v_inside >= 2 THEN
            t2 := thresholds[v_before + 2];
            f1 := price_factors[v_before + 2];
            v1 := volume_factors[v_before + 2];
        END IF;
        IF v_inside = 3 THEN
            t3 := thresholds[v_before + 3];
            f2 := price_factors[v_before + 3];
            v2 := volume_factors[v_before + 3];
        END IF;
        IF v_inside = 0 THEN
            t1 := NULL;
        END IF;
    ELSE
        adjust_mode := 2;
    END IF;

    ranking := pgbars._provider_ranking(timeframe);
    FOREACH v_provider IN ARRAY ranking LOOP
        IF EXISTS (
            SELECT
            FROM pgbars.ohlc_bars_v2 AS b
            WHERE
                b.symbol_id = _get_bars_request.symbol_id
                AND b.timeframe = _get_bars_request.timeframe
                AND b.ts >= p_from
                AND b.ts < p_to
                AND b.provider = v_provider
                AND b.is_forecast IS NOT TRUE
        ) THEN
            best_provider := v_provider;
            EXIT;
        END IF;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION pgbars._get_bars_request(text, text, timestamptz, timestamptz, text) IS
'get_bars'' first step: checks its inputs (22023); returns the symbol, the normalised timeframe, the provider '
'ranking, the best-ranked provider with a bar in [p_from, p_to), whose bars get_bars returns, and the '
'adjustment steps for p_adjust (none, splits, all).';
