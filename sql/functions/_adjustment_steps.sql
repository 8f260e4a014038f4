-- The factors that adjust a symbol's raw bars on read, as steps over time: one lookup per bar.
CREATE OR REPLACE FUNCTION pgbars._adjustment_steps(
    p_symbol_id uuid,
    p_timeframe text,
    p_adjust text,
    p_as_of timestamptz,
    OUT thresholds timestamptz[],
    OUT price_factors double precision[],
    OUT volume_factors double precision[],
    OUT raw_factors double precision[]
)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
The adjustment of a symbol's bars of p_timeframe, from corporate_actions, as
of p_as_of (actions whose ex-date starts after it do not count yet). For a
bar at ts:

    i := width_bucket(ts, thresholds) + 1      -- thresholds at or before ts, plus one
    adjusted price  = raw price  * price_factors[i]
    adjusted volume = raw volume / volume_factors[i]

thresholds ascend: per action, the start of the grid bar that holds its
ex-date's 00:00 New York (the ex-date's midnight for every timeframe but w1,
the Monday of its week for w1). A bar before it is before the action; the
bar of the ex-date itself (the first session on the new basis) is not.
price_factors[1] is the product of every action's factor, the last element
1: the factor of an action is split_from / split_to for a split (1/10 for
NVDA's 10-for-1) and, with p_adjust 'all', 1 - cash_amount / the previous
session's raw close for a cash dividend (CRSP's; the close is the d1 bar's,
else the last h1 bar of that regular session; without either the dividend
counts 1 and price_basis_issues lists it). volume_factors: splits only.
raw_factors: the inverse of volume_factors (split_to / split_from), exact for
whole ratios: what turns a split-adjusted price back into a raw one.

p_adjust 'none' gives no thresholds and factors {1}; 'splits' the splits;
'all' splits and cash dividends. The w1 threshold matches the w1 bars
derive_bars stores: a week that holds a split is stored on the basis of its
last session, so only the splits after it adjust it.
Callers: _get_bars_request (reads) and _merge_staged_bars (its inverse turns
a split-adjusted provider's bars into raw ones).
*/
DECLARE
    v_step record;
    v_last timestamptz;
    v_split numeric := 1;
    v_dividend double precision := 1;
BEGIN
    thresholds := '{}';
    price_factors := '{1}';
    volume_factors := '{1}';
    raw_factors := '{1}';
    IF p_adjust = 'none' THEN
        RETURN;
    END IF;
    -- Newest first, each action multiplying into the factors of every earlier step;
    -- actions whose thresholds coincide (w1: one week) make one step. Split ratios are
    -- multiplied as numeric, so 1/10 and 10 are exact doubles.
    FOR v_step IN
        SELECT
            (
                CASE
                    WHEN p_timeframe = 'w1' THEN date_trunc('week', c.ex_date::timestamp)
                    ELSE c.ex_date::timestamp
                END
            ) AT TIME ZONE 'America/New_York' AS threshold,
            CASE WHEN c.kind = 'split' THEN c.split_from / c.split_to ELSE 1 END AS split_factor,
            CASE
                WHEN c.kind = 'dividend'
                    THEN coalesce(pgbars._dividend_factor(c.symbol_id, c.ex_date, c.cash_amount), 1)
                ELSE 1
            END AS dividend_factor
        FROM pgbars.corporate_actions AS c
        WHERE
            c.symbol_id = p_symbol_id
            AND (c.kind = 'split' OR (p_adjust = 'all' AND c.currency = 'USD'))
            AND c.ex_date::timestamp AT TIME ZONE 'America/New_York' <= p_as_of
        ORDER BY 1 DESC
    LOOP
        v_split := v_split * v_step.split_factor;
        v_dividend := v_dividend * v_step.dividend_factor;
        IF v_step.threshold IS DISTINCT FROM v_last THEN
            thresholds := v_step.threshold || thresholds;
            price_factors := NULL::double precision || price_factors;
            volume_factors := NULL::double precision || volume_factors;
            raw_factors := NULL::double precision || raw_factors;
            v_last := v_step.threshold;
        END IF;
        price_factors[1] := v_split::double precision * v_dividend;
        volume_factors[1] := v_split::double precision;
        raw_factors[1] := (1 / v_split)::double precision;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION pgbars._adjustment_steps(uuid, text, text, timestamptz) IS
'The adjustment of a symbol''s raw bars of a timeframe as of p_as_of (p_adjust none, splits or all): '
'thresholds ascending, and per bar i = width_bucket(ts, thresholds) + 1, price * price_factors[i], '
'volume / volume_factors[i]; raw_factors[i] undoes the splits of a split-adjusted price.';
