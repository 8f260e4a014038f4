"""pgbars.get_bars: one bar per timestamp, the best provider's, read by a primary-key range scan."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.sql.helpers import as_role, bar_reads, reads_primary_key, scalar

SIGNATURE = "pgbars.get_bars(text, text, timestamptz, timestamptz, text)"
COLUMNS = [
    "ts",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "vwap",
    "trade_count",
    "provider",
    "is_provisional",
    "fetched_at",
]
T0 = dt.datetime(2024, 12, 2, 14, 30, tzinfo=dt.UTC)  # 09:30 New York
FIVE = dt.timedelta(minutes=5)
ALL_TIME = (dt.datetime(2000, 1, 1, tzinfo=dt.UTC), dt.datetime(2100, 1, 1, tzinfo=dt.UTC))


def add_symbol(conn: psycopg.Connection[Any], ticker: str) -> uuid.UUID:
    symbol_id = scalar(conn, "INSERT INTO pgbars.symbols (ticker) VALUES (%s) RETURNING id", (ticker,))
    assert isinstance(symbol_id, uuid.UUID)
    return symbol_id


def add_bar(
    conn: psycopg.Connection[Any],
    symbol_id: uuid.UUID,
    timeframe: str,
    ts: dt.datetime,
    provider: str,
    close: float = 10.0,
    *,
    is_forecast: bool = False,
    is_provisional: bool = False,
) -> None:
    conn.execute(
        "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, is_forecast, open, high, low,"
        " close, volume, vwap, trade_count, is_provisional)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 1000, %s, 7, %s)",
        (
            symbol_id,
            timeframe,
            ts,
            provider,
            is_forecast,
            close,
            close + 1,
            close / 2,
            close,
            close,
            is_provisional,
        ),
    )


def bars(
    conn: psycopg.Connection[Any],
    ticker: str,
    timeframe: str,
    start: dt.datetime = ALL_TIME[0],
    end: dt.datetime = ALL_TIME[1],
) -> list[tuple[dt.datetime, str, float]]:
    """(ts, provider, close) of get_bars, in the order it returns them."""
    rows = conn.execute(
        "SELECT ts, provider, close FROM pgbars.get_bars(%s, %s, %s, %s)", (ticker, timeframe, start, end)
    ).fetchall()
    return [(ts, provider, close) for ts, provider, close in rows]


def winners(conn: psycopg.Connection[Any], ticker: str, timeframe: str) -> list[str]:
    return [provider for _, provider, _ in bars(conn, ticker, timeframe)]


def set_route(
    conn: psycopg.Connection[Any], timeframe: str, provider: str, purpose: str, **values: Any
) -> None:
    for column, value in values.items():
        assert column in ("enabled", "priority")
        cur = conn.execute(
            f"UPDATE pgbars.provider_routes SET {column} = %s"
            " WHERE timeframe = %s AND provider = %s AND purpose = %s",
            (value, timeframe, provider, purpose),
        )
        assert cur.rowcount == 1


# --- which provider wins -----------------------------------------------------------------


def test_history_route_priority_picks_one_bar_per_ts(conn: psycopg.Connection[Any]) -> None:
    aapl = add_symbol(conn, "AAPL")
    add_bar(conn, aapl, "m5", T0, "polygon", 1.0)
    add_bar(conn, aapl, "m5", T0, "yahoo", 2.0)
    add_bar(conn, aapl, "m5", T0 + FIVE, "yahoo", 3.0)
    add_bar(conn, aapl, "m5", T0 + 2 * FIVE, "polygon", 4.0)
    # m5: polygon history priority 1, yahoo history priority 2 (the fallback)
    assert bars(conn, "AAPL", "m5") == [
        (T0, "polygon", 1.0),
        (T0 + FIVE, "yahoo", 3.0),
        (T0 + 2 * FIVE, "polygon", 4.0),
    ]


def test_disabling_a_route_changes_the_winner(conn: psycopg.Connection[Any]) -> None:
    aapl = add_symbol(conn, "AAPL")
    add_bar(conn, aapl, "m5", T0, "polygon")
    add_bar(conn, aapl, "m5", T0, "yahoo")
    set_route(conn, "m5", "polygon", "history", enabled=False)
    # polygon now has no enabled route for m5: it ranks after yahoo's history route
    assert winners(conn, "AAPL", "m5") == ["yahoo"]
    set_route(conn, "m5", "polygon", "history", enabled=True)
    assert winners(conn, "AAPL", "m5") == ["polygon"]


def test_changing_priorities_changes_the_winner(conn: psycopg.Connection[Any]) -> None:
    aapl = add_symbol(conn, "AAPL")
    add_bar(conn, aapl, "m5", T0, "polygon")
    add_bar(conn, aapl, "m5", T0, "yahoo")
    # (timeframe, purpose, priority) is unique: swap through a free number
    set_route(conn, "m5", "polygon", "history", priority=3)
    set_route(conn, "m5", "yahoo", "history", priority=1)
    set_route(conn, "m5", "polygon", "history", priority=2)
    assert winners(conn, "AAPL", "m5") == ["yahoo"]


def test_daily_prefers_yahoo_then_polygon(conn: psycopg.Connection[Any]) -> None:
    aapl = add_symbol(conn, "AAPL")
    day = dt.datetime(2024, 12, 2, 5, tzinfo=dt.UTC)  # 00:00 New York
    add_bar(conn, aapl, "d1", day, "polygon")
    add_bar(conn, aapl, "d1", day, "yahoo")
    add_bar(conn, aapl, "d1", day + dt.timedelta(days=1), "polygon")
    assert winners(conn, "AAPL", "d1") == ["yahoo", "polygon"]


def test_live_provider_only_where_no_history_bar(conn: psycopg.Connection[Any]) -> None:
    aapl = add_symbol(conn, "AAPL")
    add_bar(conn, aapl, "m5", T0, "tradier", is_provisional=True)
    add_bar(conn, aapl, "m5", T0, "polygon")
    add_bar(conn, aapl, "m5", T0 + FIVE, "tradier", is_provisional=True)
    add_bar(conn, aapl, "m5", T0 + FIVE, "yahoo")
    add_bar(conn, aapl, "m5", T0 + 2 * FIVE, "tradier", is_provisional=True)
    assert winners(conn, "AAPL", "m5") == ["polygon", "yahoo", "tradier"]
    flags = conn.execute("SELECT is_provisional FROM pgbars.get_bars('AAPL', 'm5', '-infinity', 'infinity')")
    assert [flag for (flag,) in flags.fetchall()] == [False, False, True]


def test_providers_without_a_route_come_last_by_name(conn: psycopg.Connection[Any]) -> None:
    aapl = add_symbol(conn, "AAPL")
    hour = dt.timedelta(hours=1)
    # h1: only polygon has a route; yahoo and tradier have none
    add_bar(conn, aapl, "h1", T0, "yahoo")
    add_bar(conn, aapl, "h1", T0, "polygon")
    add_bar(conn, aapl, "h1", T0 + hour, "yahoo")
    add_bar(conn, aapl, "h1", T0 + hour, "tradier")
    add_bar(conn, aapl, "h1", T0 + 2 * hour, "yahoo")
    assert winners(conn, "AAPL", "h1") == ["polygon", "tradier", "yahoo"]


def test_a_new_route_reorders_providers_that_had_none(conn: psycopg.Connection[Any]) -> None:
    aapl = add_symbol(conn, "AAPL")
    hour = dt.timedelta(hours=1)
    add_bar(conn, aapl, "h1", T0, "tradier")
    add_bar(conn, aapl, "h1", T0, "yahoo")
    add_bar(conn, aapl, "h1", T0 + hour, "polygon")
    add_bar(conn, aapl, "h1", T0 + hour, "yahoo")
    # h1 ranks polygon, then tradier and yahoo by name (alphabetical: no sort needed)
    assert winners(conn, "AAPL", "h1") == ["tradier", "polygon"]
    conn.execute(
        "INSERT INTO pgbars.provider_routes (timeframe, provider, purpose, priority)"
        " VALUES ('h1', 'yahoo', 'history', 2)"
    )
    # now polygon, yahoo, tradier (sorted by rank)
    assert winners(conn, "AAPL", "h1") == ["yahoo", "polygon"]
    set_route(conn, "h1", "polygon", "history", enabled=False)
    assert winners(conn, "AAPL", "h1") == ["yahoo", "yahoo"]


# --- which bars ---------------------------------------------------------------------------


def test_time_order_and_half_open_bounds(conn: psycopg.Connection[Any]) -> None:
    aapl = add_symbol(conn, "AAPL")
    for k in (3, 0, 4, 1, 2):
        add_bar(conn, aapl, "m5", T0 + k * FIVE, "polygon", float(k + 1))
    assert [ts for ts, _, _ in bars(conn, "AAPL", "m5")] == [T0 + k * FIVE for k in range(5)]
    # p_from is included, p_to is not
    assert [close for _, _, close in bars(conn, "AAPL", "m5", T0 + FIVE, T0 + 3 * FIVE)] == [2.0, 3.0]
    assert bars(conn, "AAPL", "m5", T0 + FIVE, T0 + FIVE) == []
    assert len(bars(conn, "AAPL", "m5", T0 + FIVE, T0 + FIVE + dt.timedelta(microseconds=1))) == 1


def test_forecasts_are_excluded(conn: psycopg.Connection[Any]) -> None:
    aapl = add_symbol(conn, "AAPL")
    add_bar(conn, aapl, "m5", T0, "yahoo", 1.0)
    add_bar(conn, aapl, "m5", T0, "polygon", 2.0, is_forecast=True)  # would win, were it a bar
    add_bar(conn, aapl, "m5", T0 + FIVE, "polygon", 3.0, is_forecast=True)
    assert bars(conn, "AAPL", "m5") == [(T0, "yahoo", 1.0)]


def test_other_symbols_and_timeframes_are_excluded(conn: psycopg.Connection[Any]) -> None:
    aapl = add_symbol(conn, "AAPL")
    msft = add_symbol(conn, "MSFT")
    add_bar(conn, aapl, "m5", T0, "polygon", 1.0)
    add_bar(conn, aapl, "m15", T0, "polygon", 2.0)
    add_bar(conn, msft, "m5", T0, "polygon", 3.0)
    add_bar(conn, msft, "m5", T0 + FIVE, "polygon", 4.0)
    assert bars(conn, "AAPL", "m5") == [(T0, "polygon", 1.0)]
    assert bars(conn, "AAPL", "m15") == [(T0, "polygon", 2.0)]
    assert [close for _, _, close in bars(conn, "MSFT", "m5")] == [3.0, 4.0]
    assert bars(conn, "MSFT", "h1") == []


def test_returns_every_column_of_the_bar(conn: psycopg.Connection[Any]) -> None:
    aapl = add_symbol(conn, "AAPL")
    add_bar(conn, aapl, "m5", T0, "polygon", 187.15)
    cur = conn.execute("SELECT * FROM pgbars.get_bars('AAPL', 'm5', '-infinity', 'infinity')")
    assert [column.name for column in cur.description or []] == COLUMNS
    row = cur.fetchone()
    assert row is not None
    assert row[:10] == (T0, 187.15, 188.15, 93.575, 187.15, 1000, 187.15, 7, "polygon", False)
    assert isinstance(row[10], dt.datetime)


def test_ticker_and_timeframe_are_normalised(conn: psycopg.Connection[Any]) -> None:
    aapl = add_symbol(conn, "AAPL")
    add_bar(conn, aapl, "m5", T0, "polygon")
    assert winners(conn, " aapl\n", " M5 ") == ["polygon"]


def test_unknown_symbol_has_no_bars(conn: psycopg.Connection[Any]) -> None:
    assert bars(conn, "ZZZZ", "h1") == []


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ticker", "timeframe", "start", "end", "message"),
    [
        ("1AB", "h1", ALL_TIME[0], ALL_TIME[1], "invalid ticker '1AB'"),
        ("", "h1", ALL_TIME[0], ALL_TIME[1], "ticker is missing"),
        (None, "h1", ALL_TIME[0], ALL_TIME[1], "ticker is missing"),
        ("AAPL", "m7", ALL_TIME[0], ALL_TIME[1], "unknown timeframe 'm7'"),
        ("ZZZZ", "m7", ALL_TIME[0], ALL_TIME[1], "unknown timeframe 'm7'"),  # checked before the symbol
        ("AAPL", None, ALL_TIME[0], ALL_TIME[1], "timeframe is missing"),
        ("AAPL", " ", ALL_TIME[0], ALL_TIME[1], "timeframe is missing"),
        ("AAPL", "h1", None, ALL_TIME[1], "p_from and p_to are both required"),
        ("AAPL", "h1", ALL_TIME[0], None, "p_from and p_to are both required"),
        ("AAPL", "h1", ALL_TIME[1], ALL_TIME[0], "p_from .* is after p_to"),
    ],
)
def test_bad_input_raises_22023(
    conn: psycopg.Connection[Any],
    ticker: str | None,
    timeframe: str | None,
    start: dt.datetime | None,
    end: dt.datetime | None,
    message: str,
) -> None:
    add_symbol(conn, "AAPL")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
        conn.execute(
            "SELECT * FROM pgbars.get_bars(%s, %s, %s::timestamptz, %s::timestamptz)",
            (ticker, timeframe, start, end),
        )


def test_unknown_timeframe_hint_lists_the_timeframes(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue) as raised:
        conn.execute("SELECT * FROM pgbars.get_bars('AAPL', 'hour', now() - interval '1 day', now())")
    assert raised.value.diag.message_hint == "Timeframes are: m1 m5 m15 m30 h1 h4 d1 w1"


# --- privileges and catalog ---------------------------------------------------------------


@pytest.mark.parametrize("role", ["pgbars_reader", "pgbars_worker"])
def test_reader_and_worker_can_call_it(conn: psycopg.Connection[Any], role: str) -> None:
    aapl = add_symbol(conn, "AAPL")
    add_bar(conn, aapl, "m5", T0, "polygon")
    add_bar(conn, aapl, "m5", T0, "yahoo")
    with as_role(conn, role):
        assert winners(conn, "AAPL", "m5") == ["polygon"]
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            conn.execute("SELECT * FROM pgbars.get_bars('AAPL', 'm7', '-infinity', 'infinity')")


# get_bars and the two functions it calls:
# (language, volatility, SECURITY DEFINER, SET, STRICT, PUBLIC may execute)
DECLARED = {
    SIGNATURE: ("sql", "s", False, None, False, False),
    "pgbars._get_bars_request(text, text, timestamptz, timestamptz, text)": (
        "plpgsql",
        "s",
        True,
        ["search_path=pg_catalog, pgbars, pg_temp"],
        False,
        False,
    ),
    "pgbars._get_bars_rivals(uuid, text, timestamptz, timestamptz, text[], text)": (
        "plpgsql",
        "s",
        False,
        ["search_path=pg_catalog, pgbars, pg_temp"],
        False,
        False,
    ),
}


@pytest.mark.parametrize("signature", DECLARED)
def test_declared_inlinable_stable_not_public(conn: psycopg.Connection[Any], signature: str) -> None:
    # get_bars: plain SQL without SECURITY DEFINER or SET, so PostgreSQL inlines it;
    # the lookups it needs run as the owner in _get_bars_request only
    row = conn.execute(
        "SELECT l.lanname, p.provolatile, p.prosecdef, p.proconfig, p.proisstrict,"
        " EXISTS (SELECT 1 FROM aclexplode(p.proacl) AS a WHERE a.grantee = 0)"
        " FROM pg_proc AS p INNER JOIN pg_language AS l ON p.prolang = l.oid"
        f" WHERE p.oid = '{signature}'::regprocedure"
    ).fetchone()
    assert row == DECLARED[signature]


def test_the_callers_search_path_does_not_matter(conn: psycopg.Connection[Any]) -> None:
    aapl = add_symbol(conn, "AAPL")
    add_bar(conn, aapl, "m5", T0, "polygon", 1.0)
    add_bar(conn, aapl, "m5", T0, "yahoo", 2.0)
    add_bar(conn, aapl, "m5", T0 + FIVE, "yahoo", 3.0)
    expected = bars(conn, "AAPL", "m5")
    conn.execute("SET search_path = ''")
    assert bars(conn, "AAPL", "m5") == expected == [(T0, "polygon", 1.0), (T0 + FIVE, "yahoo", 3.0)]


def test_a_call_that_is_not_inlined_returns_the_same_rows(conn: psycopg.Connection[Any]) -> None:
    # WITH ORDINALITY keeps PostgreSQL from inlining the function: it then runs as a set-returning call
    aapl = add_symbol(conn, "AAPL")
    for k in range(6):
        add_bar(conn, aapl, "m5", T0 + k * FIVE, "polygon" if k % 2 else "yahoo", float(k + 1))
    add_bar(conn, aapl, "m5", T0, "polygon", 10.0)
    inlined = conn.execute("SELECT * FROM pgbars.get_bars('AAPL', 'm5', '-infinity', 'infinity')").fetchall()
    called = conn.execute(
        "SELECT * FROM pgbars.get_bars('AAPL', 'm5', '-infinity', 'infinity') WITH ORDINALITY"
    ).fetchall()
    assert [row[:-1] for row in called] == inlined
    assert [row[-1] for row in called] == list(range(1, 7))
    # polygon's bar at T0, then each ts' only bar
    assert [row[8] for row in inlined] == ["polygon", "polygon", "yahoo", "polygon", "yahoo", "polygon"]


# --- many bars, several providers -----------------------------------------------------------


def expected_bars(
    conn: psycopg.Connection[Any], ticker: str, timeframe: str
) -> list[tuple[dt.datetime, str, float]]:
    """(ts, provider, close) of the best-ranked provider's bar at every ts, computed here."""
    ranked = ranking(conn, timeframe)
    rows = conn.execute(
        "SELECT b.ts, b.provider, b.close FROM pgbars.ohlc_bars_v2 AS b"
        " INNER JOIN pgbars.symbols AS s ON b.symbol_id = s.id"
        " WHERE s.ticker = %s AND b.timeframe = %s AND NOT b.is_forecast",
        (ticker, timeframe),
    ).fetchall()
    best: dict[dt.datetime, tuple[dt.datetime, str, float]] = {}
    for ts, provider, close in rows:
        if ts not in best or ranked.index(provider) < ranked.index(best[ts][1]):
            best[ts] = (ts, provider, close)
    return [best[ts] for ts in sorted(best)]


def add_series(
    conn: psycopg.Connection[Any], symbol_id: uuid.UUID, timeframe: str, provider: str, first: int, last: int
) -> None:
    """Bars number first..last of an hourly series from T0, all of `provider` (close tells whose)."""
    conn.execute(
        "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, open, high, low, close, volume)"
        " SELECT %s, %s, %s + g * interval '1 hour', %s, 10, 10000, 1, 10 + g + ascii(%s) / 1000.0, 100"
        " FROM generate_series(%s::integer, %s::integer) AS g",
        (symbol_id, timeframe, T0, provider, provider, first, last),
    )


@pytest.mark.parametrize(
    "layout",
    [
        "one provider",
        "a few provisional bars",  # probed one by one
        "fallback served the older half",  # more than 256 bars of another provider: DISTINCT ON
        "two providers everywhere",
        "three providers overlapping",
    ],
)
@pytest.mark.parametrize("timeframe", ["h1", "m15", "d1"])  # h1 ranks in name order; m15 and d1 do not
def test_many_bars_of_several_providers(conn: psycopg.Connection[Any], layout: str, timeframe: str) -> None:
    aapl = add_symbol(conn, "AAPL")
    history, fallback = ("yahoo", "polygon") if timeframe == "d1" else ("polygon", "yahoo")
    add_series(conn, aapl, timeframe, history, 0 if layout != "fallback served the older half" else 600, 1199)
    if layout == "a few provisional bars":
        add_series(conn, aapl, timeframe, "tradier", 1190, 1209)
    elif layout == "fallback served the older half":
        add_series(conn, aapl, timeframe, fallback, 0, 599)
    elif layout == "two providers everywhere":
        add_series(conn, aapl, timeframe, fallback, 0, 1199)
    elif layout == "three providers overlapping":
        add_series(conn, aapl, timeframe, fallback, 300, 1299)
        add_series(conn, aapl, timeframe, "tradier", 0, 1399)
    conn.execute("ANALYZE pgbars.ohlc_bars_v2")
    expected = expected_bars(conn, "AAPL", timeframe)
    assert bars(conn, "AAPL", timeframe) == expected
    # and in a window that cuts through them
    window = (T0 + dt.timedelta(hours=250), T0 + dt.timedelta(hours=1250))
    assert bars(conn, "AAPL", timeframe, *window) == [b for b in expected if window[0] <= b[0] < window[1]]


# --- the plan -------------------------------------------------------------------------------


def load_many_bars(conn: psycopg.Connection[Any], symbols: int = 30, bars_each: int = 1500) -> None:
    """`symbols` tickers x h1, m15, d1 x `bars_each` polygon bars, analysed.

    Odd-numbered tickers (T1, T3, ...) have a yahoo twin of every 50th bar; the others none.
    """
    conn.execute(
        "INSERT INTO pgbars.symbols (ticker) SELECT 'T' || n FROM generate_series(1, %s) AS n", (symbols,)
    )
    conn.execute(
        "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, open, high, low, close, volume)"
        " SELECT s.id, tf.name, timestamptz '2023-01-03 09:00+00' + tf.step * g, p.name, 10, 11, 9, 10, 100"
        " FROM pgbars.symbols AS s"
        " CROSS JOIN (VALUES ('h1', interval '1 hour'), ('m15', interval '15 minutes'),"
        " ('d1', interval '1 day')) AS tf (name, step)"
        " CROSS JOIN generate_series(0, %s - 1) AS g"
        " CROSS JOIN (VALUES ('polygon'), ('yahoo')) AS p (name)"
        " WHERE p.name = 'polygon' OR (g %% 50 = 0 AND substr(s.ticker, 2)::integer %% 2 = 1)",
        (bars_each,),
    )
    conn.execute("VACUUM ANALYZE pgbars.ohlc_bars_v2")
    conn.execute("ANALYZE pgbars.symbols")


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


def ranking(conn: psycopg.Connection[Any], timeframe: str) -> list[str]:
    """Every provider, best first, by the documented rule (computed here independently of get_bars)."""
    routes = conn.execute(
        "SELECT provider, purpose, priority FROM pgbars.provider_routes WHERE timeframe = %s AND enabled",
        (timeframe,),
    ).fetchall()
    providers = [name for (name,) in conn.execute("SELECT name FROM pgbars.providers").fetchall()]
    last = 10**6

    def key(provider: str) -> tuple[int, int, str]:
        history = [n for p, purpose, n in routes if p == provider and purpose == "history"]
        live = [n for p, purpose, n in routes if p == provider and purpose == "live"]
        return (history[0] if history else last, live[0] if live else last, provider)

    return sorted(providers, key=key)


@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
@pytest.mark.parametrize("ticker", ["T7", "T8"])  # T7: yahoo twins; T8: polygon only
# yahoo ranks first for d1, last for h1; each adjustment once
@pytest.mark.parametrize(("timeframe", "adjust"), [("h1", "splits"), ("m15", "none"), ("d1", "all")])
def test_plan_is_one_primary_key_range_scan(
    conn: psycopg.Connection[Any], plan_cache_mode: str, ticker: str, timeframe: str, adjust: str
) -> None:
    load_many_bars(conn)
    # a 2-for-1 split and a dividend inside the window, so the adjusted reads compute
    conn.execute(
        "INSERT INTO pgbars.corporate_actions (symbol_id, kind, ex_date, split_from, split_to, cash_amount,"
        " currency, provider, fetched_at) SELECT id, k, d, sf, st, a, c, 'polygon', now()"
        " FROM pgbars.symbols CROSS JOIN (VALUES ('split', date '2024-01-02', 1, 2, NULL, NULL),"
        " ('dividend', date '2024-03-01', NULL, NULL, 0.5, 'USD')) AS x (k, d, sf, st, a, c)"
        " WHERE ticker = %s",
        (ticker,),
    )
    conn.execute(
        "PREPARE get_bars_call (text, text, timestamptz, timestamptz)"
        f" AS SELECT * FROM pgbars.get_bars($1, $2, $3, $4, '{adjust}')"
    )
    conn.execute(f"SET plan_cache_mode = {plan_cache_mode}")
    # two years; get_bars prunes to the years from p_from through p_to inclusive (an end at New Year
    # would plan the next year as well)
    window = (dt.datetime(2023, 1, 1, tzinfo=dt.UTC), dt.datetime(2024, 12, 31, tzinfo=dt.UTC))
    # client-side binding: EXPLAIN and EXECUTE take no protocol-level parameters
    cur = psycopg.ClientCursor(conn)
    explained = cur.execute(
        "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE get_bars_call (%s, %s, %s, %s)", (ticker, timeframe, *window)
    ).fetchone()
    assert explained is not None
    top = explained[0][0]["Plan"]
    nodes = list(plan_nodes(top))
    shape = [(n["Node Type"], n.get("Relation Name") or n.get("Function Name")) for n in nodes]
    # inlined: no call of get_bars; the bars stream from one range scan of the primary key of each
    # year of the window (ohlc_bars_v2 is partitioned by year), in index order, (ts, provider),
    # under get_bars' LIMIT (of NULL: every row): no Unique, no sort, no Merge Append
    assert not any(n.get("Function Name") == "get_bars" for n in nodes), shape
    assert not any(
        n["Node Type"] in ("Seq Scan", "Bitmap Heap Scan", "Sort", "Unique", "Merge Append") for n in nodes
    ), shape
    # the adjustment's subquery (its two factors computed once per bar) over get_bars' LIMIT
    assert top["Node Type"] == "Subquery Scan", shape
    (limit,) = [n for n in top["Plans"] if n["Parent Relationship"] == "Subquery"]
    assert limit["Node Type"] == "Limit", shape
    (below,) = [n for n in limit["Plans"] if n["Parent Relationship"] == "Outer"]
    scans = below["Plans"] if below["Node Type"] == "Append" else [below]
    # only the window's two years are read: pruned when planned (custom) or before it starts (generic)
    assert [s["Relation Name"] for s in scans] == ["ohlc_bars_v2_y2023", "ohlc_bars_v2_y2024"], shape
    assert bar_reads(nodes) == scans, shape
    for scan in scans:
        assert scan["Node Type"] == "Index Scan" and reads_primary_key(scan), shape
        for column in ("symbol_id =", "timeframe =", "ts >=", "ts <"):
            assert column in scan["Index Cond"], scan["Index Cond"]
        # is_forecast is filtered, not an index condition (see the comment in get_bars)
        assert "is_forecast" not in scan["Index Cond"]
        # another provider's bars are checked against one hashed set, computed once, and only when
        # there are some
        assert "hashed SubPlan" in scan["Filter"]
    # (once per year read: each partition's scan hashes the set itself)
    (rivals,) = [n for n in nodes if n.get("Function Name") == "_get_bars_rivals"]
    assert (1 <= rivals["Actual Loops"] <= len(scans)) if ticker == "T7" else rivals["Actual Loops"] == 0

    # the plan returns what the documented rule picks
    conn.execute("RESET plan_cache_mode")
    rows = cur.execute("EXECUTE get_bars_call (%s, %s, %s, %s)", (ticker, timeframe, *window)).fetchall()
    returned = [(row[0], row[8], row[4]) for row in rows]
    expected = [b for b in expected_bars(conn, ticker, timeframe) if window[0] <= b[0] < window[1]]
    split = dt.datetime(2024, 1, 2, 5, tzinfo=dt.UTC)  # 00:00 New York
    if adjust == "none":
        assert returned == expected
    else:  # the same bars; before the split, at half the price (and less a dividend's factor for all)
        assert [r[:2] for r in returned] == [e[:2] for e in expected]
        assert all(
            r[2] == e[2]
            for r, e in zip(returned, expected, strict=True)
            if r[0] >= split + dt.timedelta(days=60)
        )
        before = [(r[2], e[2]) for r, e in zip(returned, expected, strict=True) if r[0] < split]
        assert before and all(0.45 * e < r <= 0.5 * e * (1 + 1e-12) for r, e in before)
    assert len(returned) > 700
    # where yahoo has a twin, it wins for d1 (its history route is priority 1), polygon elsewhere
    assert any(provider == "yahoo" for _, provider, _ in returned) == (ticker == "T7" and timeframe == "d1")


def scan_counts(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """(sequential scans of ohlc_bars_v2's partitions that hold bars, scans of their primary keys)
    from the statistics system. An empty year's partition may be scanned either way: it costs
    nothing."""
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute(
        "SELECT sum(t.seq_scan), sum(i.idx_scan) FROM pg_stat_user_tables AS t"
        " INNER JOIN pg_stat_user_indexes AS i ON t.relid = i.relid"
        " INNER JOIN pg_inherits AS h ON h.inhrelid = t.relid"
        " INNER JOIN pg_class AS c ON c.oid = t.relid"
        " WHERE h.inhparent = 'pgbars.ohlc_bars_v2'::regclass AND i.indexrelname = t.relname || '_pkey'"
        " AND c.reltuples > 0"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_function_scans_the_primary_key_not_the_table(conn: psycopg.Connection[Any]) -> None:
    load_many_bars(conn)
    conn.execute("SELECT pg_stat_force_next_flush()")
    before = scan_counts(conn)
    # more calls than plancache's 5 custom plans, so generic plans run too; with and without
    # another provider's bars (T1, T3, ...: yahoo twins), in name and in rank order (h1, d1)
    calls = 0
    for n in range(1, 9):
        for timeframe in ("h1", "d1"):
            row = conn.execute(
                "SELECT count(*), pg_stat_force_next_flush() FROM pgbars.get_bars(%s, %s, %s, %s)",
                (f"T{n}", timeframe, *ALL_TIME),
            ).fetchone()
            assert row is not None and row[0] == 1500
            calls += 1
    seq_scans, index_scans = scan_counts(conn)
    assert seq_scans == before[0]
    assert index_scans >= before[1] + calls
