"""pgbars.reserve_provider_call: the shared rolling-window rate limit."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.sql.helpers import scalar, seed, set_clock

Connect = Callable[[], psycopg.Connection[Any]]


def reserve(
    conn: psycopg.Connection[Any],
    provider: str = "polygon",
    worker: str = "worker-a",
    not_after: dt.datetime | None = None,
) -> dict[str, Any]:
    cur = conn.cursor(row_factory=dict_row)
    row = cur.execute(
        "SELECT * FROM pgbars.reserve_provider_call(%s, %s, NULL, %s)",
        (provider, worker, not_after),
    ).fetchone()
    assert row is not None
    return row


def set_limit(
    conn: psycopg.Connection[Any],
    calls: int,
    window: str,
    margin: str = "0",
    provider: str = "polygon",
) -> None:
    conn.execute(
        "UPDATE pgbars.providers SET calls_per_window = %s, window_length = %s::interval,"
        " window_margin = %s::interval WHERE name = %s",
        (calls, window, margin, provider),
    )


def clock(conn: psycopg.Connection[Any]) -> dt.datetime:
    now = scalar(conn, "SELECT clock_timestamp()")
    assert isinstance(now, dt.datetime)
    return now


def ledger(conn: psycopg.Connection[Any], provider: str = "polygon") -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT id, starts_at FROM pgbars.provider_calls WHERE provider = %s ORDER BY starts_at, id",
        (provider,),
    ).fetchall()


def test_first_call_starts_now(conn: psycopg.Connection[Any]) -> None:
    before = clock(conn)
    row = reserve(conn)
    after = clock(conn)
    assert row["call_id"] is not None
    assert before <= row["starts_at"] <= after
    assert 0 <= row["wait_seconds"] < 0.05

    stored = conn.execute(
        "SELECT provider, worker, starts_at, status FROM pgbars.provider_calls WHERE id = %s",
        (row["call_id"],),
    ).fetchone()
    assert stored == ("polygon", "worker-a", row["starts_at"], "reserved")


def test_reservation_records_its_chunk(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 31))
    chunk_id = scalar(conn, "SELECT id FROM pgbars.backfill_chunks")
    call_id = scalar(
        conn, "SELECT call_id FROM pgbars.reserve_provider_call('polygon', 'w', %s)", (chunk_id,)
    )
    assert scalar(conn, "SELECT chunk_id FROM pgbars.provider_calls WHERE id = %s", (call_id,)) == (chunk_id)


def test_calls_beyond_the_limit_wait_for_the_window(conn: psycopg.Connection[Any]) -> None:
    set_limit(conn, 2, "10 seconds", "1 second")
    first = reserve(conn)
    second = reserve(conn)
    assert second["wait_seconds"] < 0.05
    before = clock(conn)
    third = reserve(conn)
    assert third["starts_at"] == first["starts_at"] + dt.timedelta(seconds=11)
    expected_wait = (third["starts_at"] - before).total_seconds()
    assert expected_wait - 0.05 <= third["wait_seconds"] <= expected_wait


def test_concurrent_reservations_never_put_more_than_the_limit_in_a_rolling_window(
    conn: psycopg.Connection[Any], connect: Connect
) -> None:
    set_limit(conn, 5, "1 second")
    threads_count, per_thread = 6, 5
    connections = [connect() for _ in range(threads_count)]
    barrier = threading.Barrier(threads_count)
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            for _ in range(per_thread):
                row = reserve(connections[index], worker=f"worker-{index}")
                with lock:
                    results.append(row)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(threads_count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert len(results) == 30
    assert all(r["call_id"] is not None for r in results)

    starts = sorted(r["starts_at"] for r in results)
    window = dt.timedelta(seconds=1)
    for i in range(len(starts) - 5):
        assert starts[i + 5] - starts[i] >= window, f"6 starts within 1 s from index {i}"
    # and the limiter hands out the earliest slots, not needlessly late ones
    assert starts[-1] - starts[0] < dt.timedelta(seconds=6)

    assert ledger(conn) == sorted(
        ((r["call_id"], r["starts_at"]) for r in results), key=lambda r: (r[1], r[0])
    )


def test_paused_provider_starts_after_the_pause(conn: psycopg.Connection[Any]) -> None:
    paused_until = scalar(
        conn,
        "UPDATE pgbars.providers SET paused_until = clock_timestamp() + interval '30 seconds'"
        " WHERE name = 'polygon' RETURNING paused_until",
    )
    row = reserve(conn)
    assert row["call_id"] is not None
    assert row["starts_at"] >= paused_until
    assert 29 < row["wait_seconds"] <= 30

    # other providers are not affected
    assert reserve(conn, "yahoo")["wait_seconds"] < 0.05


def test_slot_after_not_after_reserves_nothing(conn: psycopg.Connection[Any]) -> None:
    set_limit(conn, 1, "10 seconds")
    first = reserve(conn)
    rows_before = ledger(conn)

    row = reserve(conn, not_after=clock(conn) + dt.timedelta(seconds=2))
    assert row["call_id"] is None
    assert row["starts_at"] == first["starts_at"] + dt.timedelta(seconds=10)
    assert ledger(conn) == rows_before

    # a budget that reaches the slot gets it
    row = reserve(conn, not_after=clock(conn) + dt.timedelta(seconds=20))
    assert row["call_id"] is not None
    assert row["starts_at"] == first["starts_at"] + dt.timedelta(seconds=10)


def test_paused_provider_beyond_the_budget_reserves_nothing(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute(
        "UPDATE pgbars.providers SET paused_until = clock_timestamp() + interval '1 minute'"
        " WHERE name = 'polygon'"
    )
    row = reserve(conn, not_after=clock(conn) + dt.timedelta(seconds=5))
    assert row["call_id"] is None
    assert ledger(conn) == []


def test_cancelled_reservations_do_not_count(conn: psycopg.Connection[Any]) -> None:
    set_limit(conn, 2, "10 seconds")
    first = reserve(conn)
    second = reserve(conn)
    assert scalar(conn, "SELECT pgbars.cancel_provider_call(%s)", (second["call_id"],)) is True

    # only one live reservation in the window: the next call starts at once
    third = reserve(conn)
    assert third["wait_seconds"] < 0.05
    assert third["starts_at"] - first["starts_at"] < dt.timedelta(seconds=1)

    # two live ones again: the next waits for the first to leave the window
    fourth = reserve(conn)
    assert fourth["starts_at"] == first["starts_at"] + dt.timedelta(seconds=10)


def test_completed_calls_still_count(conn: psycopg.Connection[Any]) -> None:
    set_limit(conn, 1, "10 seconds")
    first = reserve(conn)
    conn.execute("SELECT pgbars.complete_provider_call(%s, 200, 10, 5)", (first["call_id"],))
    second = reserve(conn)
    assert second["starts_at"] == first["starts_at"] + dt.timedelta(seconds=10)


def test_limits_are_per_provider(conn: psycopg.Connection[Any]) -> None:
    set_limit(conn, 1, "10 seconds")
    reserve(conn, "polygon")
    assert reserve(conn, "yahoo")["wait_seconds"] < 0.05
    assert reserve(conn, "polygon")["wait_seconds"] > 9


def test_unknown_provider_raises_22023(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.Error) as raised:
        reserve(conn, "nosuch")
    assert raised.value.sqlstate == "22023"
    assert scalar(conn, "SELECT count(*) FROM pgbars.provider_calls") == 0


def test_disabled_provider_raises(conn: psycopg.Connection[Any]) -> None:
    conn.execute("UPDATE pgbars.providers SET enabled = false WHERE name = 'polygon'")
    with pytest.raises(psycopg.Error) as raised:
        reserve(conn)
    assert raised.value.sqlstate == "55000"
    assert scalar(conn, "SELECT count(*) FROM pgbars.provider_calls") == 0


def test_reservation_does_not_wait_for_an_open_bar_write(
    conn: psycopg.Connection[Any], connect: Connect
) -> None:
    """A worker's chunk transaction holds FOR KEY SHARE on the providers row (the bars' FK)
    for as long as it writes; reservations by every other worker must not queue behind it."""
    symbol_id = scalar(conn, "SELECT pgbars._ensure_symbol('AAPL')")
    writer = connect()
    reserver = connect()
    reserver.execute("SET statement_timeout = '2s'")

    with writer.transaction():
        writer.execute(
            "INSERT INTO pgbars.ohlc_bars_v2"
            " (symbol_id, timeframe, ts, provider, open, high, low, close, volume)"
            " VALUES (%s, 'h1', '2024-12-31 14:00+00', 'polygon', 10, 11, 9, 10.5, 1000)",
            (symbol_id,),
        )
        started = time.monotonic()
        row = reserve(reserver)
        elapsed = time.monotonic() - started
        assert row["call_id"] is not None
        assert elapsed < 1
        # and the writer's transaction is still open and usable
        assert scalar(writer, "SELECT count(*) FROM pgbars.ohlc_bars_v2") == 1

    assert scalar(conn, "SELECT count(*) FROM pgbars.ohlc_bars_v2") == 1
