"""pgbars._roll_up_bars: the one roll-up, and pgbars._merge_staged_bars: the one write of fetched bars.

Derived history bars (derive_bars, from store_chunk_bars) and today's live roll-ups
(store_live_bars) go through the same roll-up; history and live fetched bars through
the same merge. Tested here through both real paths on the same input.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

from tests.sql import helpers
from tests.sql.helpers import scalar, seed, set_clock

NEW_YORK = ZoneInfo("America/New_York")
SESSION = dt.date(2025, 1, 2)
Row = tuple[dt.datetime, float, float, float, float, float, float | None, int | None]


def at(hour: int) -> dt.datetime:
    return dt.datetime(2025, 1, 2, hour, tzinfo=NEW_YORK).astimezone(dt.UTC)


# One session of h1 bars with the cases the roll-up must agree on: a bar without
# a vwap, one with no volume but a vwap, a bucket of a single bar (16:00-20:00 has
# only 16:00 here), trade counts missing on some bars.
H1: list[Row] = [
    (at(4), 10.0, 10.5, 9.8, 10.2, 1000, 10.1, 20),
    (at(5), 10.2, 10.9, 10.0, 10.8, 0, 10.4, None),
    (at(6), 10.8, 11.0, 10.6, 10.7, 2500, None, 31),
    (at(7), 10.7, 10.7, 10.1, 10.3, 1500, 10.35, 12),
    (at(9), 10.3, 10.6, 10.2, 10.5, 4000, 10.45, 90),
    (at(10), 10.5, 10.5, 9.9, 10.0, 3000, 10.2, 70),
    (at(16), 10.0, 10.1, 9.9, 10.05, 0, 10.02, 1),
]


LEASE = uuid.uuid4()  # staged rows of a lease this test merges itself
MERGE = "SELECT pgbars._merge_staged_bars(%s, %s, %s, %s, 'h1', %s, %s)"


def stage(conn: psycopg.Connection[Any], rows: list[Row], lease: Any = LEASE) -> None:
    helpers.stage(conn, lease, rows)


def merge(conn: psycopg.Connection[Any], symbol: Any, provider: str, provisional: bool) -> Any:
    """The one write of fetched bars, over the rows staged under LEASE (whose session is SESSION);
    then the staged rows go, as store_lease deletes them."""
    changed = scalar(conn, MERGE, (LEASE, SESSION, SESSION, symbol, provider, provisional))
    conn.execute("DELETE FROM pgbars.staged_bars WHERE lease_id = %s", (LEASE,))
    return changed


def h4(conn: psycopg.Connection[Any], provider: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT ts, open, high, low, close, volume, vwap, trade_count, is_provisional"
        " FROM pgbars.ohlc_bars_v2 WHERE timeframe = 'h4' AND provider = %s ORDER BY ts",
        (provider,),
    ).fetchall()


def test_derived_and_live_roll_ups_agree_on_the_same_bars(conn: psycopg.Connection[Any]) -> None:
    # History: the session's h1 as a chunk of a job with a derived h4 (store_chunk_bars -> derive_bars).
    set_clock(conn, "2025-01-03 21:00 America/New_York")
    seed(conn, "AAPL", ["h4"], start=SESSION, end=SESSION)
    chunk = (
        conn.cursor(row_factory=dict_row)
        .execute("SELECT * FROM pgbars.claim_backfill_chunks('test', '{polygon}', 1)")
        .fetchone()
    )
    assert chunk is not None and chunk["timeframe"] == "h1"
    with conn.transaction():
        stage(conn, H1, chunk["lease_id"])
        conn.execute("SELECT pgbars.store_chunk_bars(%s, %s)", (chunk["chunk_id"], chunk["lease_id"]))

    # Live: the same h1 bars as today's answer of a live route serving h1 (store_live_bars).
    set_clock(conn, "2025-01-02 17:00 America/New_York")
    conn.execute(
        "INSERT INTO pgbars.provider_routes (timeframe, provider, purpose, priority, max_lookback)"
        " VALUES ('h1', 'tradier', 'live', 1, '1 day')"
    )
    conn.execute("SELECT pgbars.add_to_watchlist('AAPL')")
    refresh = (
        conn.cursor(row_factory=dict_row)
        .execute("SELECT * FROM pgbars.claim_live_refreshes('test', '{tradier}', 10)")
        .fetchone()
    )
    assert refresh is not None and refresh["timeframe"] == "h1" and "h4" in refresh["targets"]
    with conn.transaction():
        stage(conn, H1, refresh["lease_id"])
        conn.execute(
            "SELECT pgbars.store_live_bars(%s, %s, %s)",
            (refresh["symbol_id"], refresh["timeframe"], refresh["lease_id"]),
        )

    history, live = h4(conn, "polygon"), h4(conn, "tradier")
    assert [row[:-1] for row in history] == [row[:-1] for row in live]
    assert [row[-1] for row in history] == [False, False, False]
    assert [row[-1] for row in live] == [True, True, True]
    # and what they agree on is the rule: first open, last close, extremes, sums,
    # vwap over the bars with a vwap and a volume (None when there is none)
    assert history[0][:8] == (at(4), 10.0, 11.0, 9.8, 10.3, 5000, (10.1 * 1000 + 10.35 * 1500) / 2500, 63)
    assert history[1][:8] == (at(8), 10.3, 10.6, 9.9, 10.0, 7000, (10.45 * 4000 + 10.2 * 3000) / 7000, 160)
    assert history[2][:8] == (at(16), 10.0, 10.1, 9.9, 10.05, 0, None, 1)


def test_history_and_live_bars_are_merged_by_the_one_write(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn, "2025-01-03 21:00 America/New_York")
    symbol = scalar(conn, "INSERT INTO pgbars.symbols (ticker) VALUES ('AAPL') RETURNING id")
    with conn.transaction():
        stage(conn, H1[:2])
        assert merge(conn, symbol, "polygon", False) == 2
    with conn.transaction():
        stage(conn, H1[:2])  # unchanged: nothing rewritten
        assert merge(conn, symbol, "polygon", False) == 0
    with conn.transaction():
        stage(conn, [(H1[0][0], 10.0, 10.5, 9.8, 10.25, 1000, 10.1, 20)])  # one bar corrected
        assert merge(conn, symbol, "polygon", False) == 1
    with conn.transaction():
        stage(conn, H1[:1])
        assert merge(conn, symbol, "tradier", True) == 1
    rows = conn.execute(
        "SELECT provider, close, is_provisional FROM pgbars.ohlc_bars_v2 WHERE ts = %s ORDER BY provider",
        (H1[0][0],),
    ).fetchall()
    assert rows == [("polygon", 10.25, False), ("tradier", 10.2, True)]
