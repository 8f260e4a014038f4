"""pgbars.store_lease announces committed bars on channel pgbars_bars (_notify_bars_stored)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from tests.sql.helpers import as_role, chunks, seed, set_clock, stage
from tests.sql.test_live_bars import IN_SESSION, SESSION
from tests.sql.test_live_bars import claim as claim_live
from tests.sql.test_live_bars import watch as watch_live
from tests.sql.test_store_chunk_bars import BARS, claim_one
from worker.emulator import synthetic


def listening(connect: Callable[[], psycopg.Connection[Any]]) -> psycopg.Connection[Any]:
    chart = connect()
    chart.execute("LISTEN pgbars_bars")
    return chart


def heard(chart: psycopg.Connection[Any], seconds: float = 0.5) -> list[dict[str, Any]]:
    """Every message waiting on the chart's connection (none arrive before a commit)."""
    return [json.loads(n.payload) for n in chart.notifies(timeout=seconds, stop_after=50)]


def store_lease(conn: psycopg.Connection[Any], lease_id: Any, bars: Any) -> tuple[int, int, int]:
    with conn.transaction():
        stage(conn, lease_id, bars)
        row = conn.execute("SELECT * FROM pgbars.store_lease(%s, 1)", (lease_id,)).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def test_a_stored_chunk_is_announced_at_commit_with_its_range(
    conn: psycopg.Connection[Any], one_chunk: int, connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    chart = listening(connect)
    lease = claim_one(conn)
    with conn.transaction():
        stage(conn, lease["lease_id"], BARS)
        conn.execute("SELECT * FROM pgbars.store_lease(%s, 1)", (lease["lease_id"],))
        assert heard(chart, 0.2) == []  # not before the commit
    (message,) = heard(chart)
    assert message == {
        "ticker": "AAPL",
        "timeframe": "h1",
        "from": BARS[0][0].isoformat(),
        "to": BARS[-1][0].isoformat(),
        "bars_changed": len(BARS),
        "provisional": False,
    }


def test_a_store_that_rolls_back_or_changes_nothing_is_not_announced(
    conn: psycopg.Connection[Any], one_chunk: int, connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    chart = listening(connect)
    lease = claim_one(conn)
    with pytest.raises(psycopg.errors.DivisionByZero), conn.transaction():
        stage(conn, lease["lease_id"], BARS)
        conn.execute("SELECT * FROM pgbars.store_lease(%s, 1)", (lease["lease_id"],))
        conn.execute("SELECT 1 / 0")
    assert heard(chart) == []

    assert store_lease(conn, lease["lease_id"], BARS) == (3, 3, 0)
    assert len(heard(chart)) == 1
    conn.execute(
        "UPDATE pgbars.backfill_chunks SET status = 'pending', completed_at = NULL WHERE id = %s",
        (one_chunk,),
    )
    again = claim_one(conn)
    assert store_lease(conn, again["lease_id"], BARS) == (3, 0, 0)  # the same bars again
    assert heard(chart) == []


def test_derived_timeframes_are_announced_beside_their_source(
    conn: psycopg.Connection[Any], connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1", "h4"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 31))
    assert len(chunks(conn, "AAPL")) == 1
    chart = listening(connect)
    lease = claim_one(conn)
    store_lease(conn, lease["lease_id"], BARS)
    messages = heard(chart)
    assert sorted(m["timeframe"] for m in messages) == ["h1", "h4"]
    assert {(m["from"], m["to"]) for m in messages} == {(BARS[0][0].isoformat(), BARS[-1][0].isoformat())}


def test_todays_bars_are_announced_as_provisional_for_each_target(
    conn: psycopg.Connection[Any], connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    set_clock(conn, IN_SESSION)
    watch_live(conn)
    conn.execute("SELECT pgbars.request_backfill('AAPL', '{h4}')")
    (refresh,) = claim_live(conn)
    assert refresh["timeframe"] == "m15" and sorted(refresh["targets"]) == ["h1", "h4"]
    bars = synthetic.bars("AAPL", "m15", SESSION, SESSION)[:8]
    chart = listening(connect)
    store_lease(
        conn, refresh["lease_id"], [(b.ts, b.open, b.high, b.low, b.close, b.volume, b.vwap) for b in bars]
    )
    messages = heard(chart)
    # m15 is fetched only to roll up h1 and h4: it is not stored, so not announced
    assert sorted(m["timeframe"] for m in messages) == ["h1", "h4"]
    assert all(m["provisional"] and m["ticker"] == "AAPL" for m in messages)
    assert {m["from"] for m in messages} == {bars[0].ts.isoformat()}


def test_the_worker_role_announces_through_store_lease(
    conn: psycopg.Connection[Any], one_chunk: int, connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    chart = listening(connect)
    lease = claim_one(conn)
    with as_role(conn, "pgbars_worker"):
        store_lease(conn, lease["lease_id"], BARS)
    assert [m["ticker"] for m in heard(chart)] == ["AAPL"]
