"""A worker stopped by a signal, or killed outright, loses nothing and leaves nothing stuck."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import psycopg

from tests.integration.helpers import chunk_rows, config, request, scalar, served, stored
from worker import work
from worker.emulator import Fault, PolygonServer, TradierServer

D = dt.date
WEEK = (D(2024, 12, 2), D(2024, 12, 6))


def _wait_for(condition: Callable[[], bool], seconds: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _stop_within(process: subprocess.Popen[bytes], signum: int, seconds: float) -> float:
    sent = time.monotonic()
    process.send_signal(signum)
    code = process.wait(timeout=seconds + 5)
    took = time.monotonic() - sent
    assert code == 0
    return took


def _nothing_leased(conn: psycopg.Connection[Any]) -> bool:
    return bool(scalar(conn, "SELECT count(*) FROM pgbars.backfill_chunks WHERE status = 'running'") == 0)


def test_sigterm_during_a_fetch_releases_the_chunk_and_exits_quickly(
    db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer, spawn: Any
) -> None:
    request(db, "AAPL", "h1", *WEEK)
    polygon.inject(Fault.slow(60.0))
    process, log = spawn(env, "--max-seconds", "120")
    _wait_for(lambda: len(polygon.requests) == 1, what="the request")

    took = _stop_within(process, signal.SIGTERM, 10.0)

    assert took < 10.0, log.read_text()
    assert _nothing_leased(db)
    (row,) = chunk_rows(db, "AAPL")
    assert (row["status"], row["attempts"]) == ("pending", 0)
    assert "stopped" in row["last_error"]
    call = db.execute("SELECT status, error FROM pgbars.provider_calls").fetchone()
    assert call == ("completed", "abandoned: the worker stopped")
    text = log.read_text()
    assert "stopping reason=SIGTERM" in text and "outcome=released" in text and " summary " in text


def test_sigint_while_waiting_for_a_slot_gives_the_slot_back(
    db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer, spawn: Any
) -> None:
    request(db, "AAPL", "h1", *WEEK)
    request(db, "MSFT", "h1", *WEEK)
    db.execute("UPDATE pgbars.providers SET calls_per_window = 1, window_length = '1 minute'")
    process, log = spawn(env, "--max-seconds", "120")
    _wait_for(
        lambda: (
            scalar(db, "SELECT count(*) FROM pgbars.provider_calls WHERE status = 'reserved'") == 1
            and len(polygon.requests) == 1
        ),
        what="one call done and one waiting",
    )

    took = _stop_within(process, signal.SIGINT, 10.0)

    assert took < 10.0, log.read_text()
    assert _nothing_leased(db)
    statuses = sorted(r["status"] for t in ("AAPL", "MSFT") for r in chunk_rows(db, t))
    assert statuses == ["done", "pending"]
    assert db.execute("SELECT status FROM pgbars.provider_calls ORDER BY id").fetchall() == [
        ("completed",),
        ("cancelled",),
    ]
    assert len(polygon.requests) == 1


async def test_kill_9_during_a_fetch_then_another_run_finishes_the_chunk(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer, spawn: Any
) -> None:
    request(db, "AAPL", "h1", *WEEK)
    polygon.inject(Fault.slow(60.0))
    process, _ = spawn(env, "--lease-seconds", "2")
    _wait_for(lambda: len(polygon.requests) == 1, what="the request")

    process.kill()
    process.wait(timeout=10)
    (row,) = chunk_rows(db, "AAPL")
    assert (row["status"], row["attempts"]) == ("running", 1)  # the lease outlives the process

    _wait_for(lambda: _lease_expired(db), what="the lease to expire")
    summary = await work.run(dsn, env, config())

    assert [r.outcome for r in summary.reports] == ["done"]
    (row,) = chunk_rows(db, "AAPL")
    assert (row["status"], row["attempts"]) == ("done", 2)
    assert stored(db, "AAPL", "h1") == served("AAPL", "h1", *WEEK)


async def test_kill_9_during_the_write_then_another_run_finishes_the_chunk(
    dsn: str,
    db: psycopg.Connection[Any],
    connect: Callable[[], psycopg.Connection[Any]],
    env: dict[str, str],
    polygon: PolygonServer,
    spawn: Any,
) -> None:
    request(db, "AAPL", "h1", *WEEK)
    blocker = connect()
    blocker.autocommit = False
    # Holds the bars table: the worker's write gets as far as the upsert and waits there.
    blocker.execute("LOCK TABLE pgbars.ohlc_bars_v2 IN SHARE MODE")
    process, _ = spawn(env, "--lease-seconds", "2")
    _wait_for(
        lambda: (
            scalar(
                db,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbars work'"
                " AND wait_event_type = 'Lock' AND query LIKE '%store_lease%'",
            )
            == 1
        ),
        what="the write to block",
    )

    process.kill()
    process.wait(timeout=10)
    blocker.rollback()  # the orphaned write continues, finds its client gone, and rolls back
    _wait_for(
        lambda: (
            scalar(db, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbars work'") == 0
        ),
        what="the dead worker's sessions to end",
    )
    assert scalar(db, "SELECT count(*) FROM pgbars.ohlc_bars_v2") == 0
    (row,) = chunk_rows(db, "AAPL")
    assert row["status"] == "running"

    _wait_for(lambda: _lease_expired(db), what="the lease to expire")
    summary = await work.run(dsn, env, config())

    assert [r.outcome for r in summary.reports] == ["done"]
    (row,) = chunk_rows(db, "AAPL")
    assert (row["status"], row["attempts"]) == ("done", 2)
    assert stored(db, "AAPL", "h1") == served("AAPL", "h1", *WEEK)
    assert len(polygon.requests) == 2


def _lease_expired(conn: psycopg.Connection[Any]) -> bool:
    return bool(scalar(conn, "SELECT bool_and(lease_expires_at <= now()) FROM pgbars.backfill_chunks"))


def test_sigterm_during_a_live_refresh_gives_it_back_and_exits_quickly(
    db: psycopg.Connection[Any], env: dict[str, str], tradier: TradierServer, spawn: Any
) -> None:
    # the clock is 2025-01-02 12:00 New York: today's bars are due for the watchlist
    db.execute("SELECT pgbars.add_to_watchlist('AAPL')")
    tradier.inject(Fault.slow(60.0))
    no_polygon = {k: v for k, v in env.items() if k != "POLYGON_API_KEY"}
    process, log = spawn(no_polygon, "--max-seconds", "120")
    _wait_for(lambda: len(tradier.requests) == 1, what="the live request")

    took = _stop_within(process, signal.SIGTERM, 10.0)

    assert took < 10.0, log.read_text()
    state = db.execute("SELECT lease_id, refreshed_at, last_error FROM pgbars.live_refreshes").fetchone()
    assert state is not None
    assert state[:2] == (None, None)  # released, not stored: due again on the next run
    assert "stopped" in state[2]
    assert scalar(db, "SELECT count(*) FROM pgbars.ohlc_bars_v2") == 0
    call = db.execute("SELECT status, error FROM pgbars.provider_calls").fetchone()
    assert call == ("completed", "abandoned: the worker stopped")
    assert "live ticker=AAPL" in log.read_text() and "outcome=released" in log.read_text()
