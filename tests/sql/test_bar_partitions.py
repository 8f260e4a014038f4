"""ohlc_bars_v2's year partitions: created ahead, rolled forward, rows moved out of the open end."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from tests.sql.helpers import as_role, scalar, set_clock
from worker import calendar


def partitions(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """{partition name: its bound} of ohlc_bars_v2."""
    rows = conn.execute(
        "SELECT c.relname::text, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits AS i"
        " INNER JOIN pg_class AS c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'pgbars.ohlc_bars_v2'::regclass"
    ).fetchall()
    return dict(rows)


def years(conn: psycopg.Connection[Any]) -> list[int]:
    return sorted(int(name[14:]) for name in partitions(conn) if name.startswith("ohlc_bars_v2_y"))


def add_bar(conn: psycopg.Connection[Any], ticker: str, ts: str) -> None:
    conn.execute(
        "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, open, high, low, close, volume)"
        " SELECT id, 'd1', %s, 'polygon', 10, 11, 9, 10, 5 FROM pgbars.symbols WHERE ticker = %s",
        (ts, ticker),
    )


def partition_of(conn: psycopg.Connection[Any], ts: str) -> str:
    return str(scalar(conn, "SELECT tableoid::regclass::text FROM pgbars.ohlc_bars_v2 WHERE ts = %s", (ts,)))


def test_installed_with_a_partition_per_year_through_the_calendar_and_two_open_ends(
    conn: psycopg.Connection[Any],
) -> None:
    last = scalar(conn, "SELECT max(session_date) FROM pgbars.market_sessions")
    assert years(conn) == list(range(2000, last.year + 1))
    bounds = partitions(conn)
    assert bounds["ohlc_bars_v2_earlier"] == "FOR VALUES FROM (MINVALUE) TO ('2000-01-01 00:00:00+00')"
    assert (
        bounds["ohlc_bars_v2_later"] == f"FOR VALUES FROM ('{last.year + 1}-01-01 00:00:00+00') TO (MAXVALUE)"
    )
    assert bounds["ohlc_bars_v2_y2024"] == (
        "FOR VALUES FROM ('2024-01-01 00:00:00+00') TO ('2025-01-01 00:00:00+00')"
    )
    # the calendar's end and the partitions' are the installer's one horizon
    assert last.year == calendar.calendar_end().year
    # each partition has the table's primary key and checks
    assert scalar(conn, "SELECT count(*) FROM pg_indexes WHERE indexname = 'ohlc_bars_v2_y2024_pkey'") == 1
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO pgbars.symbols (ticker) VALUES ('AAPL')")
        add_bar(conn, "AAPL", "2024-06-03 04:00+00")
        conn.execute("UPDATE pgbars.ohlc_bars_v2 SET low = 12")


def test_every_timestamp_has_a_partition(conn: psycopg.Connection[Any]) -> None:
    conn.execute("INSERT INTO pgbars.symbols (ticker) VALUES ('AAPL')")
    last_year = years(conn)[-1]
    stamps = {
        "1990-03-01 05:00+00": "pgbars.ohlc_bars_v2_earlier",
        "1999-12-31 23:59:59.999999+00": "pgbars.ohlc_bars_v2_earlier",
        "2000-01-01 00:00+00": "pgbars.ohlc_bars_v2_y2000",
        "2024-12-31 23:00+00": "pgbars.ohlc_bars_v2_y2024",
        "2025-01-01 00:00+00": "pgbars.ohlc_bars_v2_y2025",
        f"{last_year + 3}-06-01 04:00+00": "pgbars.ohlc_bars_v2_later",
    }
    for ts in stamps:
        add_bar(conn, "AAPL", ts)
    assert {ts: partition_of(conn, ts) for ts in stamps} == stamps
    # the references are still checked per statement on the partitioned table
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute(
            "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, open, high, low, close,"
            " volume) SELECT id, 'd7', '2024-06-03 04:00+00', 'polygon', 10, 11, 9, 10, 5"
            " FROM pgbars.symbols WHERE ticker = 'AAPL'"
        )


def test_extending_creates_the_years_and_moves_their_rows_out_of_the_open_end(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute("INSERT INTO pgbars.symbols (ticker) VALUES ('AAPL')")
    last_year = years(conn)[-1]
    ahead = f"{last_year + 2}-03-02 05:00+00"  # a forecast-like bar two years past the last partition
    far = f"{last_year + 6}-03-02 05:00+00"
    add_bar(conn, "AAPL", ahead)
    add_bar(conn, "AAPL", far)
    assert partition_of(conn, ahead) == "pgbars.ohlc_bars_v2_later"
    before = conn.execute("SELECT * FROM pgbars.ohlc_bars_v2 ORDER BY ts").fetchall()

    created = scalar(conn, "SELECT pgbars.extend_bar_partitions(%s)", (dt.date(last_year + 3, 1, 1),))
    assert created == 3
    assert years(conn)[-4:] == [last_year, last_year + 1, last_year + 2, last_year + 3]
    assert partition_of(conn, ahead) == f"pgbars.ohlc_bars_v2_y{last_year + 2}"
    assert partition_of(conn, far) == "pgbars.ohlc_bars_v2_later"
    assert partitions(conn)["ohlc_bars_v2_later"] == (
        f"FOR VALUES FROM ('{last_year + 4}-01-01 00:00:00+00') TO (MAXVALUE)"
    )
    # nothing lost or changed on the way
    assert conn.execute("SELECT * FROM pgbars.ohlc_bars_v2 ORDER BY ts").fetchall() == before
    # the bars are read as before
    rows = conn.execute("SELECT ts FROM pgbars.get_bars('AAPL', 'd1', '-infinity', 'infinity')").fetchall()
    assert len(rows) == 2

    # a second call finds the years there
    assert scalar(conn, "SELECT pgbars.extend_bar_partitions(%s)", (dt.date(last_year + 3, 12, 31),)) == 0
    # past years are never created, and a year too far is refused
    assert scalar(conn, "SELECT pgbars.extend_bar_partitions('1995-01-01')") == 0
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="too far ahead"):
        conn.execute("SELECT pgbars.extend_bar_partitions('9999-06-01')")


def test_roll_forward_creates_next_year_as_the_clock_moves(conn: psycopg.Connection[Any]) -> None:
    last_year = years(conn)[-1]
    set_clock(conn, f"{last_year - 1}-12-31 12:00 America/New_York")
    assert scalar(conn, "SELECT pgbars.roll_forward_bar_partitions()") == 0
    # the worker role rolls them forward (SECURITY DEFINER); it may not choose the horizon
    set_clock(conn, f"{last_year}-01-02 12:00 America/New_York")
    with as_role(conn, "pgbars_worker"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT pgbars.extend_bar_partitions()")
        assert scalar(conn, "SELECT pgbars.roll_forward_bar_partitions()") == 1
    assert years(conn)[-1] == last_year + 1


def test_roll_forward_gives_up_on_a_held_lock_and_tries_again(
    conn: psycopg.Connection[Any], connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    last_year = years(conn)[-1]
    reader = connect()
    with reader.transaction():
        reader.execute("SELECT count(*) FROM pgbars.ohlc_bars_v2")  # a long read holds its lock
        roller = connect()
        set_clock(roller, f"{last_year}-01-02 12:00 America/New_York")
        started = time.perf_counter()
        assert scalar(roller, "SELECT pgbars.roll_forward_bar_partitions()") == 0
        assert 4 < time.perf_counter() - started < 30  # its own lock_timeout, 5 s
    assert years(conn)[-1] == last_year
    assert scalar(roller, "SELECT pgbars.roll_forward_bar_partitions()") == 1


def test_two_callers_at_once_create_each_year_once(
    conn: psycopg.Connection[Any], connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    last_year = years(conn)[-1]
    through = dt.date(last_year + 2, 6, 1)
    first = connect()
    second = connect()
    results: list[int] = []
    with first.transaction():
        assert scalar(first, "SELECT pgbars.extend_bar_partitions(%s)", (through,)) == 2
        # the second caller waits for the first's lock, then finds the years there
        waiter = threading.Thread(
            target=lambda: results.append(
                scalar(second, "SELECT pgbars.extend_bar_partitions(%s)", (through,))
            )
        )
        waiter.start()
        waiter.join(timeout=1)
        assert waiter.is_alive()
    waiter.join(timeout=30)
    assert results == [0]
    assert years(conn)[-2:] == [last_year + 1, last_year + 2]
