"""pgbars.get_bars: one bar per timestamp, the best provider's, read by a primary-key range scan."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from tests.sql.helpers import scalar

SIGNATURE = "pgbars.get_bars(text, text, timestamptz, timestamptz)"
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
    "is_intraday",
    "adjustment",
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
    is_intraday: bool = False,
) -> None:
    conn.execute(
        "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, is_forecast, open, high, low,"
        " close, volume, vwap, trade_count, is_intraday)"
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
            is_intraday,
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


@contextmanager
def as_role(conn: psycopg.Connection[Any], role: str) -> Iterator[None]:
    conn.execute(f"SET ROLE {role}")
    try:
        yield
    finally:
        conn.execute("RESET ROLE")


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
    add_bar(conn, aapl, "m5", T0, "tradier", is_intraday=True)
    add_bar(conn, aapl, "m5", T0, "polygon")
    add_bar(conn, aapl, "m5", T0 + FIVE, "tradier", is_intraday=True)
    add_bar(conn, aapl, "m5", T0 + FIVE, "yahoo")
    add_bar(conn, aapl, "m5", T0 + 2 * FIVE, "tradier", is_intraday=True)
    assert winners(conn, "AAPL", "m5") == ["polygon", "yahoo", "tradier"]
    flags = conn.execute("SELECT is_intraday FROM pgbars.get_bars('AAPL', 'm5', '-infinity', 'infinity')")
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
    assert row[:11] == (T0, 187.15, 188.15, 93.575, 187.15, 1000, 187.15, 7, "polygon", False, "raw")
    assert isinstance(row[11], dt.datetime)


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


def test_declared_stable_security_definer_not_public(conn: psycopg.Connection[Any]) -> None:
    row = conn.execute(
        "SELECT p.provolatile, p.prosecdef, p.proconfig,"
        " EXISTS (SELECT 1 FROM aclexplode(p.proacl) AS a WHERE a.grantee = 0)"
        f" FROM pg_proc AS p WHERE p.oid = '{SIGNATURE}'::regprocedure"
    ).fetchone()
    assert row == ("s", True, ["search_path=pg_catalog, pgbars, pg_temp"], False)


# --- the plan -------------------------------------------------------------------------------

# The variables of the RETURN QUERY statement, as the parameters of a prepared statement.
QUERY_PARAMETERS = {
    "v_symbol_id": "uuid",
    "v_timeframe": "text",
    "p_from": "timestamptz",
    "p_to": "timestamptz",
    "v_ranked": "text[]",
}


EXECUTE = "EXECUTE get_bars_query ({})".format(", ".join(f"%s::{t}" for t in QUERY_PARAMETERS.values()))


def load_many_bars(conn: psycopg.Connection[Any], symbols: int = 30, bars_each: int = 1500) -> None:
    """`symbols` tickers x h1, m15, d1 x `bars_each` polygon bars (some with a yahoo twin), analysed."""
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
        " WHERE p.name = 'polygon' OR g %% 50 = 0",
        (bars_each,),
    )
    conn.execute("VACUUM ANALYZE pgbars.ohlc_bars_v2")
    conn.execute("ANALYZE pgbars.symbols")


def function_statements(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """get_bars' two RETURN QUERY statements, read from the installed function: by name, by rank."""
    source = scalar(conn, f"SELECT prosrc FROM pg_proc WHERE oid = '{SIGNATURE}'::regprocedure")
    found = re.findall(r"RETURN QUERY\s+(SELECT\b.*?);", source, re.S)
    assert len(found) == 2, "get_bars should have two RETURN QUERY SELECT ...; statements"
    by_name, by_rank = found
    assert by_name.rstrip().endswith("ORDER BY b.ts, b.provider")
    assert "array_position(v_ranked, b.provider)" in by_rank
    return {"name": by_name, "rank": by_rank}


def prepare(conn: psycopg.Connection[Any], statement: str) -> None:
    """PREPARE get_bars_query as `statement`, its plpgsql variables as parameters."""
    for number, name in enumerate(QUERY_PARAMETERS, start=1):
        statement = re.sub(rf"\b{name}\b", f"${number}", statement)
    assert not re.search(r"\b[pv]_\w+", statement), statement
    types = ", ".join(QUERY_PARAMETERS.values())
    conn.execute(f"PREPARE get_bars_query ({types}) AS {statement}".encode())


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
@pytest.mark.parametrize(
    ("timeframe", "path"),
    [("h1", "name"), ("m15", "rank"), ("d1", "rank")],  # h1: polygon, tradier, yahoo is alphabetical
)
def test_plan_is_a_primary_key_range_scan(
    conn: psycopg.Connection[Any], plan_cache_mode: str, timeframe: str, path: str
) -> None:
    load_many_bars(conn)
    ranked = ranking(conn, timeframe)
    assert (ranked == sorted(ranked)) == (path == "name")
    prepare(conn, function_statements(conn)[path])
    symbol_id = scalar(conn, "SELECT id FROM pgbars.symbols WHERE ticker = 'T7'")
    window = (dt.datetime(2023, 1, 1, tzinfo=dt.UTC), dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    arguments = (symbol_id, timeframe, *window, ranked)
    conn.execute(f"SET plan_cache_mode = {plan_cache_mode}")
    # client-side binding: EXPLAIN and EXECUTE take no protocol-level parameters
    cur = psycopg.ClientCursor(conn)
    explained = cur.execute("EXPLAIN (FORMAT JSON) " + EXECUTE, arguments).fetchone()
    assert explained is not None
    nodes = list(plan_nodes(explained[0][0]["Plan"]))
    shape = [(n["Node Type"], n.get("Relation Name") or n.get("Index Name")) for n in nodes]
    assert not any(n["Node Type"] == "Seq Scan" for n in nodes), shape
    # one range scan of the primary key: rows in (ts, provider) order (Index Scan), or
    # by heap page and then sorted (Bitmap Heap Scan), whichever the planner costs lower
    index_scans = [n for n in nodes if n.get("Index Name")]
    assert [n["Index Name"] for n in index_scans] == ["ohlc_bars_v2_pkey"], shape
    (scan,) = index_scans
    assert scan["Node Type"] in ("Index Scan", "Bitmap Index Scan"), shape
    for column in ("symbol_id", "timeframe", "ts >=", "ts <"):
        assert column in scan["Index Cond"], scan["Index Cond"]
    # is_forecast is filtered, not an index condition (see the comment in get_bars)
    assert "is_forecast" not in scan["Index Cond"]
    assert nodes[0]["Node Type"] == "Unique", shape  # DISTINCT ON (ts)
    if scan["Node Type"] == "Index Scan" and path == "name":
        assert [n["Node Type"] for n in nodes] == ["Unique", "Index Scan"], shape  # no sort at all

    # the statement returns what the function returns
    conn.execute("RESET plan_cache_mode")
    via_statement = cur.execute(EXECUTE, arguments).fetchall()
    via_function = conn.execute(
        "SELECT * FROM pgbars.get_bars('T7', %s, %s, %s)", (timeframe, *window)
    ).fetchall()
    assert via_statement == via_function
    stored = scalar(
        conn,
        "SELECT count(DISTINCT ts) FROM pgbars.ohlc_bars_v2 WHERE symbol_id = %s AND timeframe = %s"
        " AND ts >= %s AND ts < %s",
        arguments[:4],
    )
    assert len(via_function) == stored > 700
    # where yahoo has a twin, it wins for d1 (its history route is priority 1), polygon elsewhere
    twins = scalar(
        conn,
        "SELECT count(*) FROM pgbars.ohlc_bars_v2 WHERE symbol_id = %s AND timeframe = %s"
        " AND ts >= %s AND ts < %s AND provider = 'yahoo'",
        arguments[:4],
    )
    assert twins > 10
    assert sum(row[8] == "yahoo" for row in via_function) == (twins if timeframe == "d1" else 0)


def scan_counts(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """(sequential scans of ohlc_bars_v2, scans of its primary key) from the statistics system."""
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute(
        "SELECT t.seq_scan, i.idx_scan FROM pg_stat_user_tables AS t"
        " INNER JOIN pg_stat_user_indexes AS i ON t.relid = i.relid"
        " WHERE t.relid = 'pgbars.ohlc_bars_v2'::regclass AND i.indexrelname = 'ohlc_bars_v2_pkey'"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_function_scans_the_primary_key_not_the_table(conn: psycopg.Connection[Any]) -> None:
    load_many_bars(conn)
    conn.execute("SELECT pg_stat_force_next_flush()")
    before = scan_counts(conn)
    # more calls than plancache's 5 custom plans, so the generic plan runs too
    for n in range(1, 9):
        row = conn.execute(
            "SELECT count(*), pg_stat_force_next_flush() FROM pgbars.get_bars(%s, 'h1', %s, %s)",
            (f"T{n}", *ALL_TIME),
        ).fetchone()
        assert row is not None and row[0] == 1500
    seq_scans, index_scans = scan_counts(conn)
    assert seq_scans == before[0]
    assert index_scans == before[1] + 8
