"""pgbars.bars: get_bars(..., 'splits') as a view keyed by ticker, for BI tools."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from tests.sql.helpers import as_role, bar_reads, reads_primary_key, set_clock
from tests.sql.test_get_bars import add_bar, add_symbol, load_many_bars, plan_nodes

NEW_YORK = ZoneInfo("America/New_York")
COLUMNS = "ts, open, high, low, close, volume, vwap, trade_count, provider, is_provisional"
VIEW_COLUMNS = ["ticker", "timeframe", *COLUMNS.split(", ")]
SPLIT = dt.date(2024, 6, 10)  # a Monday: 10-for-1 from this session on
DIVIDEND = dt.date(2024, 8, 12)


def ny(day: dt.date, hour: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=NEW_YORK)


def add_action(conn: psycopg.Connection[Any], symbol_id: uuid.UUID, kind: str, ex_date: dt.date) -> None:
    conn.execute(
        "INSERT INTO pgbars.corporate_actions (symbol_id, kind, ex_date, split_from, split_to, cash_amount,"
        " currency, provider, fetched_at) VALUES (%s, %s, %s, %s, %s, %s, %s, 'polygon', now())",
        (
            symbol_id,
            kind,
            ex_date,
            *((1, 10, None, None) if kind == "split" else (None, None, 0.25, "USD")),
        ),
    )


@pytest.fixture
def aapl(conn: psycopg.Connection[Any]) -> uuid.UUID:
    """AAPL with a 10-for-1 split and a dividend, h1, d1 and w1 bars of two providers around both."""
    set_clock(conn)
    symbol_id = add_symbol(conn, "AAPL")
    add_action(conn, symbol_id, "split", SPLIT)
    add_action(conn, symbol_id, "dividend", DIVIDEND)
    days = [
        SPLIT - dt.timedelta(days=4),  # the Thursday before
        SPLIT - dt.timedelta(days=3),
        SPLIT,
        SPLIT + dt.timedelta(days=1),
        DIVIDEND - dt.timedelta(days=3),  # the Friday before: the dividend's previous close
        DIVIDEND,
    ]
    for n, day in enumerate(days):
        price = 200.0 + n if day < SPLIT else 20.0 + n
        for hour in (10, 11):
            # h1 ranks polygon first (its only route), then tradier and yahoo by name
            add_bar(conn, symbol_id, "h1", ny(day, hour), "polygon", price)
            add_bar(conn, symbol_id, "h1", ny(day, hour), "yahoo", price + 0.5)
        add_bar(conn, symbol_id, "h1", ny(day, 12), "yahoo", price + 0.25)  # no rival: yahoo's
        add_bar(conn, symbol_id, "h1", ny(day, 13), "polygon", price * 3, is_forecast=True)
        # d1 ranks yahoo (history 1) before polygon (history 2)
        add_bar(conn, symbol_id, "d1", ny(day), "polygon", price + 0.5)
        add_bar(conn, symbol_id, "d1", ny(day), "yahoo", price)
    # w1: the week before the split, the split's week (stored on its last session's basis), the week after
    for monday in (SPLIT - dt.timedelta(days=7), SPLIT, SPLIT + dt.timedelta(days=7)):
        add_bar(conn, symbol_id, "w1", ny(monday), "yahoo", 210.0 if monday < SPLIT else 21.0)
        add_bar(conn, symbol_id, "w1", ny(monday), "polygon", 215.0 if monday < SPLIT else 21.5)
    add_bar(conn, symbol_id, "h1", ny(SPLIT + dt.timedelta(days=1), 15), "tradier", 22.0, is_provisional=True)
    return symbol_id


def view_rows(
    conn: psycopg.Connection[Any],
    ticker: str,
    timeframe: str,
    start: dt.datetime | str = "-infinity",
    end: dt.datetime | str = "infinity",
) -> list[tuple[Any, ...]]:
    return conn.execute(
        f"SELECT {COLUMNS} FROM pgbars.bars"
        " WHERE ticker = %s AND timeframe = %s AND ts >= %s AND ts < %s ORDER BY ts",
        (ticker, timeframe, start, end),
    ).fetchall()


def get_bars_rows(
    conn: psycopg.Connection[Any],
    ticker: str,
    timeframe: str,
    start: dt.datetime | str = "-infinity",
    end: dt.datetime | str = "infinity",
    adjust: str = "splits",
) -> list[tuple[Any, ...]]:
    return conn.execute(
        f"SELECT {COLUMNS} FROM pgbars.get_bars(%s, %s, %s, %s, %s)", (ticker, timeframe, start, end, adjust)
    ).fetchall()


@pytest.mark.parametrize("timeframe", ["h1", "d1", "w1"])
def test_rows_are_get_bars_split_adjusted(
    conn: psycopg.Connection[Any], aapl: uuid.UUID, timeframe: str
) -> None:
    expected = get_bars_rows(conn, "AAPL", timeframe)
    assert expected and view_rows(conn, "AAPL", timeframe) == expected
    # and through a window that cuts the series
    window = (ny(SPLIT - dt.timedelta(days=3), 11), ny(SPLIT, 12))
    assert view_rows(conn, "AAPL", timeframe, *window) == get_bars_rows(conn, "AAPL", timeframe, *window)


def test_the_split_adjusts_and_the_dividend_does_not(conn: psycopg.Connection[Any], aapl: uuid.UUID) -> None:
    rows = {row[0]: row for row in view_rows(conn, "AAPL", "d1")}
    raw = {row[0]: row for row in get_bars_rows(conn, "AAPL", "d1", adjust="none")}
    with_dividends = {row[0]: row for row in get_bars_rows(conn, "AAPL", "d1", adjust="all")}
    before_split = ny(SPLIT - dt.timedelta(days=3))
    # before the split: a tenth of the price, ten times the volume
    assert rows[before_split][4] == pytest.approx(raw[before_split][4] / 10)
    assert rows[before_split][5] == raw[before_split][5] * 10
    # the ex-date's own bar as traded
    assert rows[ny(SPLIT)][1:] == raw[ny(SPLIT)][1:]
    # the dividend does not move it ('all' would)
    before_dividend = ny(DIVIDEND - dt.timedelta(days=3))
    assert rows[before_dividend] == raw[before_dividend]
    assert with_dividends[before_dividend][4] < raw[before_dividend][4]
    # w1: the split's week is stored on the new basis, so only the week before is adjusted
    weeks = view_rows(conn, "AAPL", "w1")
    assert [(ts, close, provider) for ts, _, _, _, close, *_, provider, _ in weeks] == [
        (ny(SPLIT - dt.timedelta(days=7)), pytest.approx(21.0), "yahoo"),
        (ny(SPLIT), 21.0, "yahoo"),
        (ny(SPLIT + dt.timedelta(days=7)), 21.0, "yahoo"),
    ]


def test_one_bar_per_ts_of_the_best_provider(conn: psycopg.Connection[Any], aapl: uuid.UUID) -> None:
    day = SPLIT + dt.timedelta(days=1)
    rows = view_rows(conn, "AAPL", "h1", ny(day), ny(day + dt.timedelta(days=1)))
    # polygon over yahoo where both have a bar, yahoo alone at 12:00, no forecast, tradier's provisional bar
    assert [(ts, provider, provisional) for ts, *_, provider, provisional in rows] == [
        (ny(day, 10), "polygon", False),
        (ny(day, 11), "polygon", False),
        (ny(day, 12), "yahoo", False),
        (ny(day, 15), "tradier", True),
    ]


def test_columns_and_every_ticker(conn: psycopg.Connection[Any], aapl: uuid.UUID) -> None:
    msft = add_symbol(conn, "MSFT")
    add_bar(conn, msft, "h1", ny(SPLIT, 10), "polygon", 400.0)
    cur = conn.execute("SELECT * FROM pgbars.bars ORDER BY ticker, timeframe, ts")
    assert [column.name for column in cur.description or []] == VIEW_COLUMNS
    rows = cur.fetchall()
    assert {(ticker, timeframe) for ticker, timeframe, *_ in rows} == {
        ("AAPL", "d1"),
        ("AAPL", "h1"),
        ("AAPL", "w1"),
        ("MSFT", "h1"),
    }
    assert len(rows) == len({row[:3] for row in rows})  # one per (ticker, timeframe, ts)
    assert [row[2:] for row in rows if row[0] == "MSFT"] == [
        (ny(SPLIT, 10), 400.0, 401.0, 200.0, 400.0, 1000, 400.0, 7, "polygon", False)
    ]


def test_unknown_ticker_has_no_rows(conn: psycopg.Connection[Any], aapl: uuid.UUID) -> None:
    assert view_rows(conn, "ZZZZ", "h1") == []
    assert view_rows(conn, "AAPL", "m7") == []  # not a timeframe: no rows, no error


@pytest.mark.parametrize("role", ["pgbars_reader", "pgbars_worker"])
def test_reader_and_worker_can_select_it(conn: psycopg.Connection[Any], aapl: uuid.UUID, role: str) -> None:
    expected = view_rows(conn, "AAPL", "h1")
    with as_role(conn, role):
        assert view_rows(conn, "AAPL", "h1") == expected
        assert conn.execute("SELECT count(*) FROM pgbars.bars").fetchone() == (len(expected) + 6 + 3,)


def test_the_view_is_commented(conn: psycopg.Connection[Any]) -> None:
    comment = conn.execute("SELECT obj_description('pgbars.bars'::regclass, 'pg_class')").fetchone()
    assert comment is not None and "get_bars" in comment[0]


def subplan_nodes(node: dict[str, Any], inside: bool = False) -> Iterator[dict[str, Any]]:
    """The nodes of a plan that run inside a SubPlan."""
    inside = inside or node.get("Parent Relationship") == "SubPlan"
    if inside:
        yield node
    for child in node.get("Plans", ()):
        yield from subplan_nodes(child, inside)


@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
@pytest.mark.parametrize("ticker", ["T7", "T8"])  # T7: yahoo twins; T8: polygon only
@pytest.mark.parametrize("timeframe", ["h1", "d1"])  # yahoo ranks last for h1, first for d1
def test_plan_reads_the_primary_key_range(
    conn: psycopg.Connection[Any], plan_cache_mode: str, ticker: str, timeframe: str
) -> None:
    load_many_bars(conn)
    symbol_id = conn.execute("SELECT id FROM pgbars.symbols WHERE ticker = %s", (ticker,)).fetchone()
    assert symbol_id is not None
    add_action(conn, symbol_id[0], "split", dt.date(2023, 2, 1))
    add_action(conn, symbol_id[0], "dividend", dt.date(2023, 2, 15))
    conn.execute(
        "PREPARE bars_read (text, text, timestamptz, timestamptz) AS"
        f" SELECT {COLUMNS} FROM pgbars.bars WHERE ticker = $1 AND timeframe = $2 AND ts >= $3 AND ts < $4"
    )
    conn.execute(f"SET plan_cache_mode = {plan_cache_mode}")
    window = (dt.datetime(2023, 1, 10, tzinfo=dt.UTC), dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    cur = psycopg.ClientCursor(conn)
    explained = cur.execute(
        "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE bars_read (%s, %s, %s, %s)", (ticker, timeframe, *window)
    ).fetchone()
    assert explained is not None
    nodes = list(plan_nodes(explained[0][0]["Plan"]))
    shape = [(n["Node Type"], n.get("Relation Name") or n.get("Index Name")) for n in nodes]
    in_subplans = [id(n) for n in subplan_nodes(explained[0][0]["Plan"])]
    reads = [n for n in bar_reads(nodes) if id(n) not in in_subplans]
    # one range read of the primary key of the window's one year (ohlc_bars_v2 is partitioned by
    # year; the others pruned), the symbol, timeframe and ts bounds in its index condition: an Index
    # Scan, or (the planner's usual choice for thousands of bars, see sql/views/bars.sql) a Bitmap
    # Heap Scan over a Bitmap Index Scan of the primary key
    (scan,) = reads
    assert scan["Relation Name"] == "ohlc_bars_v2_y2023", shape
    if scan["Node Type"] == "Bitmap Heap Scan":
        (scan,) = [n for n in scan["Plans"] if n["Parent Relationship"] == "Outer"]
        assert scan["Node Type"] == "Bitmap Index Scan", shape
        assert scan["Index Name"] == "ohlc_bars_v2_y2023_pkey", shape
    else:
        assert scan["Node Type"] == "Index Scan" and reads_primary_key(scan), shape
    for column in ("symbol_id =", "timeframe =", "ts >=", "ts <"):
        assert column in scan["Index Cond"], scan["Index Cond"]
    # any other read probes a primary key for a better-ranked bar at one ts: of the one year of
    # that ts, the others pruned as it runs (never executed, whatever their plan)
    probes = [n for n in bar_reads(nodes) if id(n) in in_subplans and n.get("Actual Loops")]
    for probe in probes:
        assert probe["Node Type"] in ("Index Scan", "Index Only Scan"), shape
        assert reads_primary_key(probe) and "ts = " in probe["Index Cond"], shape
    # nothing sorted, and _get_bars_request called once
    assert not any(n["Node Type"] == "Sort" for n in nodes), shape
    (request,) = [n for n in nodes if n.get("Function Name") == "_get_bars_request"]
    assert request["Actual Loops"] == 1, shape
    conn.execute("RESET plan_cache_mode")
    rows = cur.execute("EXECUTE bars_read (%s, %s, %s, %s)", (ticker, timeframe, *window)).fetchall()
    assert len(rows) > 300
    assert sorted(rows) == get_bars_rows(conn, ticker, timeframe, *window)
