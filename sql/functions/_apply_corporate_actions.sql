-- Bring a symbol's actions in force up to its providers' reports, and reconcile the stored bars with them.
CREATE OR REPLACE FUNCTION pgbars._apply_corporate_actions(
    p_symbol_id uuid,
    OUT actions_changed integer,
    OUT bars_reconciled integer
)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
corporate_actions holds one row per (symbol, kind, ex-date): the report of
the source with the lowest corporate_action_sources.priority (a provider not
listed there after them, by name). corporate_action_conflicts shows where
the reports differ.

Splits. When the split in force on an ex-date appears or its ratio changes
(from r_old, 1 when there was none, to r_new), the bars stored on a
split-adjusted basis without it are reconciled: bars of a provider whose
price_basis is 'split_adjusted', of a timeframe that is fetched (derived
ones are re-derived below), before the ex-date (w1: before its week), and
fetched on or after the ex-date's 00:00 New York (the provider's answer
already held the split) get prices multiplied and volume divided by
r_new / r_old. Those fetched before the ex-date were as traded and stay.
Their fetched_at is kept: it says when the provider's values were read.
Then derive_bars recomputes, once for all the splits that changed, the
derived bars of the reconciled sessions and of the splits' weeks (w1 on the
basis of its last session).

Dividends. The amount in force is raw: a report from a split-adjusted
source (Yahoo) is multiplied by the ratio of every split in force with an
ex-date after the dividend's and on or before the day it was fetched.

Under the symbol's actions lock, which _merge_staged_bars takes before it
converts a split-adjusted provider's bars: either that store sees the new
split, or this function sees its bars. Callers: store_actions.
*/
DECLARE
    v_split record;
    v_ratio double precision;
    v_boundary timestamptz;
    v_count integer;
    v_first date;
    v_last date;
    v_reconciled_from date;
    v_source record;
BEGIN
    actions_changed := 0;
    bars_reconciled := 0;
    PERFORM pg_advisory_xact_lock(hashtextextended('pgbars.actions/' || p_symbol_id, 0));

    FOR v_split IN
        WITH wanted AS (
            SELECT DISTINCT ON (r.ex_date)
                r.ex_date,
                r.split_from,
                r.split_to,
                r.provider,
                r.fetched_at
            FROM pgbars.corporate_action_reports AS r
            LEFT JOIN pgbars.corporate_action_sources AS src ON r.provider = src.provider
            WHERE r.symbol_id = p_symbol_id AND r.kind = 'split'
            ORDER BY r.ex_date, src.priority NULLS LAST, r.provider
        ),

        held AS (
            SELECT
                a.ex_date,
                a.split_from,
                a.split_to,
                a.provider
            FROM pgbars.corporate_actions AS a
            WHERE a.symbol_id = p_symbol_id AND a.kind = 'split'
        )

        SELECT
            coalesce(w.ex_date, h.ex_date) AS ex_date,
            w.split_from,
            w.split_to,
            w.provider,
            w.fetched_at,
            coalesce((h.split_to / h.split_from)::double precision, 1) AS old_ratio,
            coalesce((w.split_to / w.split_from)::double precision, 1) AS new_ratio
        FROM wanted AS w
        FULL JOIN held AS h ON w.ex_date = h.ex_date
        WHERE (w.split_from, w.split_to, w.provider) IS DISTINCT FROM (h.split_from, h.split_to, h.provider)
        ORDER BY 1
    LOOP
        actions_changed := actions_changed + 1;
        IF v_split.provider IS NULL THEN
            DELETE FROM pgbars.corporate_actions AS a
            WHERE a.symbol_id = p_symbol_id AND a.kind = 'split' AND a.ex_date = v_split.ex_date;
        ELSE
            INSERT INTO pgbars.corporate_actions AS a (
                symbol_id, kind, ex_date, split_from, split_to, provider, fetched_at
            )
            VALUES (
                p_symbol_id, 'split', v_split.ex_date, v_split.split_from, v_split.split_to,
                v_split.provider, v_split.fetched_at
            )
            ON CONFLICT (symbol_id, kind, ex_date) DO UPDATE
                SET
                    split_from = excluded.split_from,
                    split_to = excluded.split_to,
                    provider = excluded.provider,
                    fetched_at = excluded.fetched_at;
        END IF;

        v_ratio := v_split.new_ratio / v_split.old_ratio;
        v_reconciled_from := NULL;
        v_boundary := v_split.ex_date::timestamp AT TIME ZONE 'America/New_York';
        IF v_ratio <> 1 THEN
            WITH reconciled AS (
                UPDATE pgbars.ohlc_bars_v2 AS b
                SET
                    open = b.open * v_ratio,
                    high = b.high * v_ratio,
                    low = b.low * v_ratio,
                    close = b.close * v_ratio,
                    volume = round(b.volume / v_ratio)::bigint,
                    vwap = b.vwap * v_ratio
                FROM pgbars.providers AS p
                WHERE
                    b.symbol_id = p_symbol_id
                    AND b.provider = p.name
                    AND p.price_basis = 'split_adjusted'
                    AND b.timeframe NOT IN (SELECT d.timeframe FROM pgbars.derived_routes AS d WHERE d.enabled)
                    AND b.ts < CASE
                        WHEN b.timeframe = 'w1'
                            THEN date_trunc('week', v_split.ex_date::timestamp) AT TIME ZONE 'America/New_York'
                        ELSE v_boundary
                    END
                    AND b.fetched_at >= v_boundary
                    AND NOT b.is_forecast
                RETURNING b.ts
            )

            SELECT count(*), min((r.ts AT TIME ZONE 'America/New_York')::date)
            INTO v_count, v_reconciled_from
            FROM reconciled AS r;
            bars_reconciled := bars_reconciled + v_count;
        END IF;
        -- what the derived bars must cover: the reconciled sessions and the split's week
        v_first := least(v_first, v_reconciled_from, v_split.ex_date);
        v_last := greatest(v_last, v_split.ex_date);
    END LOOP;
    -- Derived once for every split that changed (least/greatest skip NULLs).
    IF v_last IS NOT NULL THEN
        FOR v_source IN
            SELECT DISTINCT d.source_timeframe
            FROM pgbars.derived_routes AS d
            WHERE d.enabled
        LOOP
            PERFORM pgbars.derive_bars(p_symbol_id, v_source.source_timeframe, v_first, v_last);
        END LOOP;
    END IF;

    -- Dividends in force: the preferred report, its amount made raw.
    WITH wanted AS (
        SELECT DISTINCT ON (r.ex_date)
            r.ex_date,
            r.provider,
            r.fetched_at,
            r.currency,
            r.cash_amount * CASE
                WHEN p.price_basis = 'split_adjusted' THEN coalesce((
                    SELECT exp(sum(ln((s.split_to / s.split_from)::double precision)))
                    FROM pgbars.corporate_actions AS s
                    WHERE
                        s.symbol_id = p_symbol_id
                        AND s.kind = 'split'
                        AND s.ex_date > r.ex_date
                        AND s.ex_date::timestamp AT TIME ZONE 'America/New_York' <= r.fetched_at
                ), 1)::numeric
                ELSE 1
            END AS cash_amount
        FROM pgbars.corporate_action_reports AS r
        INNER JOIN pgbars.providers AS p ON r.provider = p.name
        LEFT JOIN pgbars.corporate_action_sources AS src ON r.provider = src.provider
        WHERE r.symbol_id = p_symbol_id AND r.kind = 'dividend'
        ORDER BY r.ex_date, src.priority NULLS LAST, r.provider
    ),

    upserted AS (
        INSERT INTO pgbars.corporate_actions AS a (
            symbol_id, kind, ex_date, cash_amount, currency, provider, fetched_at
        )
        SELECT
            p_symbol_id,
            'dividend',
            w.ex_date,
            round(w.cash_amount, 10),
            w.currency,
            w.provider,
            w.fetched_at
        FROM wanted AS w
        ON CONFLICT (symbol_id, kind, ex_date) DO UPDATE
            SET
                cash_amount = excluded.cash_amount,
                currency = excluded.currency,
                provider = excluded.provider,
                fetched_at = excluded.fetched_at
            WHERE
                (a.cash_amount, a.currency, a.provider, a.fetched_at)
                IS DISTINCT FROM (excluded.cash_amount, excluded.currency, excluded.provider, excluded.fetched_at)
        RETURNING 1
    )

    SELECT actions_changed + count(*) INTO actions_changed FROM upserted;
END;
$$;

COMMENT ON FUNCTION pgbars._apply_corporate_actions(uuid) IS
'Updates a symbol''s corporate_actions from the preferred reports (dividend amounts made raw) and reconciles '
'bars stored on a split-adjusted basis without a newly learned or changed split; re-derives what it touched.';
