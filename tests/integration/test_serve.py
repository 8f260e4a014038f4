"""`pgbars serve`: wake-ups, NOTIFY after each store, replicas, signals, kill -9, a database restart.

Real `pgbars serve` processes (the spawn fixture, command="serve") against the
test database and the emulated providers, or Service objects in this process
where a test needs to change what the CLI does not expose (the schedules'
cadence). The planning clock is mid-session (CLOCK), so serve also refreshes
today's bars from the Tradier emulator while it backfills.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import logging
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

from tests.integration.helpers import (
    capture_worker_logs,
    chunk_rows,
    request,
    scalar,
    served,
    stored,
    watch,
    work_log,
)
from tests.integration.test_work_end_to_end import _busiest_window
from tests.sql.test_monitoring import doc_blocks
from worker import db as pgdb
from worker import serve
from worker.emulator import Fault, PolygonServer, TradierServer
from worker.errors import SchemaError

D = dt.date
WEEK = (D(2024, 12, 2), D(2024, 12, 6))


def _wait_for(condition: Callable[[], bool], seconds: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _serving(log: Path) -> bool:
    """The replica is connected and listening (its `serve` line is written after LISTEN)."""
    return " serve worker=" in log.read_text()


def _start_serving(spawn: Any, env: dict[str, str], *args: str, name: str = "serve") -> Any:
    process, log = spawn(env, *args, name=name, command="serve")
    _wait_for(lambda: _serving(log) or process.poll() is not None, what="serve to start")
    assert process.poll() is None, log.read_text()
    return process, log


def _stop(process: subprocess.Popen[bytes], log: Path, signum: int = signal.SIGTERM) -> float:
    sent = time.monotonic()
    process.send_signal(signum)
    code = process.wait(timeout=20)
    took = time.monotonic() - sent
    assert code == 0, log.read_text()
    return took


def _all_done(conn: psycopg.Connection[Any], ticker: str, timeframe: str = "h1") -> bool:
    rows = chunk_rows(conn, ticker, timeframe)
    return bool(rows) and all(r["status"] == "done" for r in rows)


class Listener:
    """A chart's connection: LISTEN pgbars_bars, and what arrived, with when."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]]) -> None:
        self.conn = connect()
        self.conn.execute("LISTEN pgbars_bars")
        self.messages: list[tuple[float, dict[str, Any]]] = []

    def poll(self, seconds: float = 0.05) -> list[dict[str, Any]]:
        for note in self.conn.notifies(timeout=seconds, stop_after=100):
            assert note.channel == "pgbars_bars"
            self.messages.append((time.monotonic(), json.loads(note.payload)))
        return [m for _, m in self.messages]

    def wait_for(self, condition: Callable[[list[dict[str, Any]]], bool], seconds: float = 30.0) -> None:
        deadline = time.monotonic() + seconds
        while not condition(self.poll()):
            assert time.monotonic() < deadline, f"timed out; heard {self.poll()}"


def test_a_watchlist_add_is_fetched_within_seconds_and_every_store_is_announced(
    db: psycopg.Connection[Any],
    env: dict[str, str],
    polygon: PolygonServer,
    spawn: Any,
    connect: Callable[[], psycopg.Connection[Any]],
) -> None:
    process, log = _start_serving(spawn, env)
    chart = Listener(connect)
    time.sleep(1.5)  # idle: nothing to fetch, no request made
    assert polygon.requests == []

    added = time.monotonic()
    watch(db, "AAPL")  # the trigger seeds 2 years of h1 (10 chunks); its NOTIFY wakes serve
    chart.wait_for(lambda heard: any(m["ticker"] == "AAPL" and m["timeframe"] == "h1" for m in heard))
    first = next(at for at, m in chart.messages if m["timeframe"] == "h1")
    assert first - added < 5.0, f"first bars after {first - added:.2f} s"
    assert polygon.requests[0].monotonic - added < 1.0  # claimed and fetched within a second

    _wait_for(lambda: _all_done(db, "AAPL"), what="the backfill")
    planned = chunk_rows(db, "AAPL")
    first_session, last_session = planned[0]["first_session"], planned[-1]["last_session"]
    assert stored(db, "AAPL", "h1", "polygon") == served("AAPL", "h1", first_session, last_session)
    assert [c["attempts"] for c in planned] == [1] * len(planned)

    # One message per stored chunk, each bounding that chunk's bars.
    chart.wait_for(lambda heard: sum(1 for m in heard if not m["provisional"]) == len(planned))
    history = sorted((m for m in chart.poll() if not m["provisional"]), key=lambda m: str(m["from"]))
    bars = served("AAPL", "h1", first_session, last_session)
    assert history[0]["from"] == bars[0][0].isoformat()
    assert history[-1]["to"] == bars[-1][0].isoformat()
    assert sum(m["bars_changed"] for m in history) == len(bars)
    assert {(m["ticker"], m["timeframe"]) for m in history} == {("AAPL", "h1")}

    took = _stop(process, log)
    assert took < 10.0
    text = log.read_text()
    assert "serve_stopped reason=SIGTERM" in text
    assert "database_unavailable" not in text


def test_a_chunk_given_back_by_one_replica_is_taken_by_another_at_once(
    db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer, spawn: Any
) -> None:
    request(db, "AAPL", "h1", *WEEK)
    polygon.inject(Fault.slow(60.0))  # the first request hangs
    first, first_log = _start_serving(spawn, env, name="first")
    _wait_for(lambda: len(polygon.requests) == 1, what="the hanging request")
    second, second_log = _start_serving(spawn, env, name="second")

    took = _stop(first, first_log)  # gives the chunk back: its release wakes the other replica

    assert took < 10.0, first_log.read_text()
    _wait_for(lambda: _all_done(db, "AAPL"), seconds=10.0, what="the other replica")
    (row,) = chunk_rows(db, "AAPL")
    assert row["claimed_by"] != scalar(db, "SELECT worker FROM pgbars.provider_calls ORDER BY id LIMIT 1")
    assert stored(db, "AAPL", "h1") == served("AAPL", "h1", *WEEK)
    assert "outcome=released" in first_log.read_text()
    _stop(second, second_log)


def test_two_replicas_share_the_backfill_and_the_rate_limit(
    db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer, spawn: Any
) -> None:
    calls, window = 3, 2.0
    db.execute(
        "UPDATE pgbars.providers SET calls_per_window = %s, window_length = make_interval(secs => %s),"
        " window_margin = '0.5 seconds' WHERE name = 'polygon'",
        (calls, window),
    )
    replicas = [_start_serving(spawn, env, "--concurrency", "2", name=f"r{i}") for i in range(2)]
    for ticker in ("AAPL", "MSFT"):
        watch(db, ticker)

    _wait_for(lambda: _all_done(db, "AAPL") and _all_done(db, "MSFT"), seconds=90.0, what="both backfills")

    chunks = chunk_rows(db, "AAPL") + chunk_rows(db, "MSFT")
    assert len(chunks) == 20
    assert [c["attempts"] for c in chunks] == [1] * 20  # no chunk twice
    assert len(polygon.requests) == 20
    assert len({c["claimed_by"] for c in chunks}) == 2  # both replicas worked
    arrivals = [round(r.monotonic, 3) for r in polygon.requests]
    assert _busiest_window(arrivals, window) <= calls, sorted(arrivals)
    for ticker in ("AAPL", "MSFT"):
        rows = chunk_rows(db, ticker)
        assert stored(db, ticker, "h1", "polygon") == served(
            ticker, "h1", rows[0]["first_session"], rows[-1]["last_session"]
        )
    for process, log in replicas:
        assert _stop(process, log) < 10.0


def test_kill_9_of_one_replica_loses_nothing(
    db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer, spawn: Any
) -> None:
    request(db, "AAPL", "h1", *WEEK)
    polygon.inject(Fault.slow(60.0))
    doomed, _ = _start_serving(spawn, env, "--lease-seconds", "3", name="doomed")
    _wait_for(lambda: len(polygon.requests) == 1, what="the request")
    survivor, survivor_log = _start_serving(spawn, env, "--lease-seconds", "3", name="survivor")

    doomed.kill()
    doomed.wait(timeout=10)
    (row,) = chunk_rows(db, "AAPL")
    assert row["status"] == "running"  # the lease outlives the process

    # The survivor sleeps until the lease expires (next_claimable_at), then takes the chunk.
    _wait_for(lambda: _all_done(db, "AAPL"), seconds=20.0, what="the survivor")
    (row,) = chunk_rows(db, "AAPL")
    assert row["attempts"] == 2
    assert stored(db, "AAPL", "h1") == served("AAPL", "h1", *WEEK)
    _stop(survivor, survivor_log)


def test_sigterm_while_live_refreshes_wait_for_their_slot_exits_within_ten_seconds(
    db: psycopg.Connection[Any], env: dict[str, str], tradier: TradierServer, spawn: Any
) -> None:
    for ticker in ("AAPL", "MSFT", "NVDA"):
        watch(db, ticker)
    db.execute("UPDATE pgbars.providers SET calls_per_window = 1, window_length = '1 minute'")
    process, log = _start_serving(spawn, env)
    _wait_for(
        lambda: scalar(db, "SELECT count(*) FROM pgbars.provider_calls WHERE status = 'reserved'") >= 2,
        what="calls waiting for their slots",
    )

    took = _stop(process, log, signal.SIGINT)

    assert took < 10.0, log.read_text()
    assert scalar(db, "SELECT count(*) FROM pgbars.backfill_chunks WHERE status = 'running'") == 0
    assert scalar(db, "SELECT count(*) FROM pgbars.live_refreshes WHERE lease_id IS NOT NULL") == 0
    assert scalar(db, "SELECT count(*) FROM pgbars.provider_calls WHERE status = 'reserved'") == 0


def test_todays_bars_are_refreshed_every_refresh_every_and_announced(
    db: psycopg.Connection[Any],
    env: dict[str, str],
    tradier: TradierServer,
    spawn: Any,
    connect: Callable[[], psycopg.Connection[Any]],
) -> None:
    db.execute("UPDATE pgbars.live_settings SET refresh_every = '2 seconds'")
    watch(db, "AAPL")
    chart = Listener(connect)
    process, log = _start_serving(spawn, env)

    _wait_for(lambda: len(tradier.requests) >= 4, seconds=30.0, what="four refreshes")

    times = [r.monotonic for r in tradier.requests[:4]]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(1.9 <= gap < 2.0 + 5.0 for gap in gaps), gaps  # refresh_every, never more than 5 s late
    live = [m for m in chart.poll() if m["provisional"]]
    assert live and {m["ticker"] for m in live} == {"AAPL"}
    assert {"h1"} <= {m["timeframe"] for m in live}
    _stop(process, log)


def _serve_schedules(db: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    """docs/monitoring.md's "Is pgbars serve running" query, run as pgbars_reader."""
    (query,) = [block for heading, block in doc_blocks() if heading == "Is `pgbars serve` running"]
    with db.transaction(force_rollback=True):
        db.execute("SET LOCAL ROLE pgbars_reader")
        rows = db.cursor(row_factory=dict_row).execute(query.encode()).fetchall()
    return {r["schedule"]: r for r in rows}


async def test_each_schedule_tick_runs_on_one_replica_only(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str], caplog: Any
) -> None:
    """Both replicas log in as a role holding only pgbars_worker, as docs/deploy.md says."""
    capture_worker_logs(caplog)
    caplog.set_level(logging.DEBUG, logger="pgbars.serve")
    role = f"pgbars_serve_{uuid.uuid4().hex[:8]}"
    db.execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'serve-pw' IN ROLE pgbars_worker").format(sql.Identifier(role))
    )
    db.execute("UPDATE pgbars.planning_clock SET allow_override = true")  # it plans at CLOCK too
    worker_dsn = make_conninfo(dsn, user=role, password="serve-pw")
    every_2s = {name: "* * * * * */2" for name in serve.SCHEDULES}
    services = [
        serve.Service(worker_dsn, env, serve.ServeConfig(worker_name=f"replica-{i}", schedules=every_2s))
        for i in range(2)
    ]
    runs = [asyncio.create_task(s.run()) for s in services]
    for s in services:
        await asyncio.wait_for(s.ready.wait(), timeout=30)
    await asyncio.sleep(9)
    running = _serve_schedules(db)
    for s in services:
        s.stop("test")
    await asyncio.wait_for(asyncio.gather(*runs), timeout=15)

    # docs/monitoring.md's query, as pgbars_reader: every schedule ran, none overdue...
    assert sorted(running) == sorted(serve.SCHEDULES)
    assert all(r["last_run"] is not None and r["overdue"] is False for r in running.values()), running
    # ... and with no replica left, the drain falls behind and says so.
    db.execute("UPDATE pgbars_queue.pgqueuer_schedules SET next_run = now() - interval '2 minutes'")
    assert all(r["overdue"] for r in _serve_schedules(db).values())

    ticks = re.findall(r"schedule_tick schedule=(\S+) worker=(\S+) due=(\S+)", work_log(caplog))
    drains = [(due, worker) for name, worker, due in ticks if name == "pgbars.drain"]
    assert len(drains) >= 3, ticks
    dues = [due for due, _ in drains]
    assert len(dues) == len(set(dues)), drains  # no tick ran twice
    assert {name for name, _, _ in ticks} == set(serve.SCHEDULES)
    assert "schedule_error" not in work_log(caplog)
    assert "prune provider_calls=" in work_log(caplog)
    db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


async def test_a_database_restart_is_survived_with_reconnects(
    dsn: str,
    db: psycopg.Connection[Any],
    env: dict[str, str],
    polygon: PolygonServer,
    server_dsn: Callable[[str], str],
    caplog: Any,
) -> None:
    capture_worker_logs(caplog)
    service = serve.Service(dsn, env, serve.ServeConfig(worker_name="restarted"))
    running = asyncio.create_task(service.run())
    await asyncio.wait_for(service.ready.wait(), timeout=30)

    # What a restart looks like from the client: every session of serve ends at once,
    # and connecting is refused for a while.
    admin = psycopg.connect(server_dsn("postgres"), autocommit=True)
    allow = "ALTER DATABASE " + db.info.dbname + " ALLOW_CONNECTIONS {}"
    admin.execute(allow.format("false"))
    killed = scalar(
        db,
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = 'pgbars serve') AS t",
    )
    assert killed >= 3  # the pool, the listener, the schedules
    await asyncio.sleep(2.5)
    admin.execute(allow.format("true"))
    admin.close()
    await asyncio.wait_for(service.ready.wait(), timeout=40)

    request(db, "AAPL", "h1", *WEEK)  # the NOTIFY reaches the new listener
    deadline = time.monotonic() + 10
    while not _all_done(db, "AAPL"):
        assert time.monotonic() < deadline, work_log(caplog)
        await asyncio.sleep(0.05)
    service.stop("test")
    await asyncio.wait_for(running, timeout=15)

    text = work_log(caplog)
    assert service.runs >= 2
    assert text.count("database_unavailable") >= 1
    assert "retry_in_s=" in text
    assert stored(db, "AAPL", "h1") == served("AAPL", "h1", *WEEK)


@pytest.mark.parametrize("missing", ["schema", "queue"])
async def test_serve_refuses_to_start_without_its_tables(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str], missing: str
) -> None:
    if missing == "schema":
        db.execute("DROP SCHEMA pgbars CASCADE")
    else:
        db.execute(f"DROP SCHEMA {pgdb.QUEUE_SCHEMA} CASCADE")
    with pytest.raises(SchemaError, match="pgbars db upgrade"):
        await serve.run(dsn, env, serve.ServeConfig())


def _docs_listener() -> str:
    """The 10-line listener of docs/reading.md ("New bars as they arrive"), as written there."""
    doc = (Path(__file__).parents[2] / "docs" / "reading.md").read_text()
    blocks = re.findall(r"```text\n(.*?)```", doc, re.DOTALL)
    (listener,) = [str(b) for b in blocks if "LISTEN pgbars_bars" in b and "read_bars" in b]
    return listener


def test_the_listener_in_the_docs_redraws_while_serve_backfills(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer, spawn: Any
) -> None:
    listener = _docs_listener()
    assert len(listener.strip().splitlines()) <= 11  # ten lines and a blank one
    chart = subprocess.Popen(
        [sys.executable, "-u", "-c", f"DSN = {dsn!r}\n{listener}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(2.0)  # connected and listening
        process, log = _start_serving(spawn, env)
        request(db, "AAPL", "h1", D(2024, 7, 1), D(2024, 12, 6))  # 5 months: several chunks
        _wait_for(lambda: _all_done(db, "AAPL"), what="the backfill")
        _stop(process, log)
    finally:
        chart.terminate()
        out, _ = chart.communicate(timeout=10)
    chunks = chunk_rows(db, "AAPL")
    redraws = [line.split(" bars from ") for line in out.splitlines() if " bars from " in line]
    assert len(redraws) == len(chunks) > 1, out  # one message per stored chunk, each heard
    firsts = {served("AAPL", "h1", c["first_session"], c["last_session"])[0][0].isoformat() for c in chunks}
    assert {start for _, start in redraws} == firsts
    total = len(stored(db, "AAPL", "h1"))
    assert all(0 < int(count) <= total for count, _ in redraws), out
