"""`pgbars work` end to end: a watchlist ticker backfilled by three workers at once."""

from __future__ import annotations

import datetime as dt
import os
import re
from typing import Any

import psycopg
import pytest

from tests.integration.helpers import (
    POLYGON_KEY,
    capture_worker_logs,
    chunk_rows,
    config,
    request,
    scalar,
    served,
    stored,
    watch,
    work_log,
)
from worker import clock, work
from worker.calendar import NEW_YORK
from worker.emulator import PolygonServer, RecordedRequest

_RANGE = re.compile(r"/range/1/hour/(\d+)/(\d+)$")
WINDOW_SECONDS = 2.0
CALLS_PER_WINDOW = 3


def _request_dates(request: RecordedRequest) -> tuple[dt.date, dt.date]:
    match = _RANGE.search(request.path)
    assert match is not None, request.path
    low, high = (dt.datetime.fromtimestamp(int(ms) / 1000, dt.UTC) for ms in match.groups())
    return low.astimezone(NEW_YORK).date(), high.astimezone(NEW_YORK).date()


def _busiest_window(arrivals: list[float], window: float) -> int:
    """The most requests that arrived within any rolling `window` seconds."""
    arrivals = sorted(arrivals)
    return max(sum(1 for t in arrivals[i:] if t < start + window) for i, start in enumerate(arrivals))


def test_three_workers_backfill_two_years_of_aapl(
    db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer, spawn: Any
) -> None:
    watch(db, "AAPL")  # the trigger seeds 2 years of h1
    planned = chunk_rows(db, "AAPL")
    assert len(planned) == 10
    # The margin absorbs the time between a slot and its request reaching the server:
    # three worker processes (each also refreshing today's bars: the clock is mid-session)
    # share two cores with Postgres and the test's servers; 0.25 s proved too tight there.
    db.execute(
        "UPDATE pgbars.providers SET calls_per_window = %s, window_length = make_interval(secs => %s),"
        " window_margin = '0.5 seconds' WHERE name = 'polygon'",
        (CALLS_PER_WINDOW, WINDOW_SECONDS),
    )

    workers = [spawn(env, "--max-seconds", "90", "--concurrency", "2", name=f"w{i}") for i in range(3)]
    for process, log in workers:
        assert process.wait(timeout=120) == 0, log.read_text()

    first, last = planned[0]["first_session"], planned[-1]["last_session"]
    assert (first, last) == (dt.date(2023, 1, 3), dt.date(2024, 12, 31))
    # Every bar the server served is stored, exactly, and nothing else.
    assert stored(db, "AAPL", "h1", "polygon") == served("AAPL", "h1", first, last)
    assert scalar(db, "SELECT count(*) FROM pgbars.rejected_bars") == 0

    progress = db.execute(
        "SELECT status, progress, done, total FROM pgbars.backfill_progress WHERE symbol = 'AAPL'"
    ).fetchone()
    assert progress == ("done", 100, 10, 10)

    # One request per chunk, each starting and ending on a trading session.
    requests = polygon.requests
    finished = chunk_rows(db, "AAPL")
    assert len(requests) == sum(c["requests_used"] for c in finished) == len(finished) == 10
    sessions = {row[0] for row in db.execute("SELECT session_date FROM pgbars.market_sessions").fetchall()}
    for r in requests:
        low, high = _request_dates(r)
        assert low in sessions and high in sessions, r.path
    assert sorted(_request_dates(r) for r in requests) == [
        (c["first_session"], c["last_session"]) for c in finished
    ]

    # The shared rate limit held, as the provider itself saw it.
    arrivals = [round(r.monotonic, 3) for r in requests]
    assert _busiest_window(arrivals, WINDOW_SECONDS) <= CALLS_PER_WINDOW, sorted(arrivals)
    assert len({c["claimed_by"] for c in finished}) >= 2  # the work really was shared
    ledger = db.execute(
        "SELECT count(*), count(*) FILTER (WHERE status = 'completed' AND http_status = 200)"
        " FROM pgbars.provider_calls WHERE provider = 'polygon'"
    ).fetchone()
    assert ledger == (10, 10)

    logs = "\n".join(log.read_text() for _, log in workers)
    assert len(re.findall(r" chunk ticker=AAPL timeframe=h1 .* outcome=done", logs)) == 10
    assert logs.count(" summary ") == 3


async def test_fetching_a_chunk_again_rewrites_nothing(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer, caplog: Any
) -> None:
    capture_worker_logs(caplog)
    # Thanksgiving week: a holiday (Thursday) and an early close (Friday).
    (chunk_id,) = request(db, "MSFT", "m30", dt.date(2024, 11, 25), dt.date(2024, 11, 29))
    await work.run(dsn, env, config())
    before = db.execute("SELECT ts, xmin::text, fetched_at FROM pgbars.ohlc_bars_v2 ORDER BY ts").fetchall()
    assert stored(db, "MSFT", "m30") == served("MSFT", "m30", dt.date(2024, 11, 25), dt.date(2024, 11, 29))

    db.execute(
        "UPDATE pgbars.backfill_chunks SET status = 'pending', completed_at = NULL WHERE id = %s", (chunk_id,)
    )
    again = await work.run(dsn, env, config())

    (report,) = again.reports
    assert (report.outcome, report.bars_written, report.bars_changed) == ("done", len(before), 0)
    after = db.execute("SELECT ts, xmin::text, fetched_at FROM pgbars.ohlc_bars_v2 ORDER BY ts").fetchall()
    assert after == before  # not one row rewritten
    assert f"bars_written={len(before)} bars_changed=0" in work_log(caplog)


@pytest.mark.parametrize("ticker_arg", ["msft", " MSFT "])
async def test_ticker_filter_leaves_other_tickers_alone(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer, ticker_arg: str
) -> None:
    request(db, "AAPL", "h1", dt.date(2024, 12, 2), dt.date(2024, 12, 6))
    request(db, "MSFT", "h1", dt.date(2024, 12, 2), dt.date(2024, 12, 6))

    summary = await work.run(dsn, env, config(tickers=(ticker_arg,)))

    assert [r.lease.ticker for r in summary.reports] == ["MSFT"]
    assert [c["status"] for c in chunk_rows(db, "MSFT")] == ["done"]
    assert [c["status"] for c in chunk_rows(db, "AAPL")] == ["pending"]
    assert {r.path.split("/")[4] for r in polygon.requests} == {"MSFT"}


async def test_every_page_is_reserved_and_paced(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str]
) -> None:
    days = (dt.date(2024, 12, 2), dt.date(2024, 12, 6))
    request(db, "AAPL", "h1", *days)
    db.execute(
        "UPDATE pgbars.providers SET calls_per_window = 2, window_length = '1 second',"
        " window_margin = '0.1 seconds' WHERE name = 'polygon'"
    )
    # 1,000 base minutes per page: five 960-minute sessions take five pages.
    with PolygonServer(POLYGON_KEY, max_limit=1_000) as paging:
        summary = await work.run(dsn, {**env, "POLYGON_BASE_URL": paging.base_url}, config())
        pages = paging.requests

    (report,) = summary.reports
    assert (report.outcome, report.requests) == ("done", len(pages))
    assert len(pages) == 5
    assert stored(db, "AAPL", "h1") == served("AAPL", "h1", *days)
    (chunk,) = chunk_rows(db, "AAPL")
    assert chunk["requests_used"] == 5
    calls = db.execute(
        "SELECT count(*), count(*) FILTER (WHERE http_status = 200) FROM pgbars.provider_calls"
        " WHERE chunk_id = %s",
        (chunk["id"],),
    ).fetchone()
    assert calls == (5, 5)
    assert _busiest_window([p.monotonic for p in pages], 1.0) <= 2


async def test_each_run_first_rolls_finished_jobs_forward(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer, caplog: Any
) -> None:
    capture_worker_logs(caplog)
    # Open-ended: up to the last completed session at the clock (2024-12-31).
    db.execute("SELECT pgbars.request_backfill('AAPL', '{h1}', '2024-12-23', NULL, NULL)")
    await work.run(dsn, env, config())
    assert [c["last_session"] for c in chunk_rows(db, "AAPL")] == [dt.date(2024, 12, 31)]

    # Monday 2025-01-06 at noon: Thursday 2 and Friday 3 January have closed since.
    os.environ[clock.ENV] = "2025-01-06 12:00 America/New_York"  # restored by the db fixture
    summary = await work.run(dsn, env, config())

    assert summary.rolled["chunks_added"] == 1 and summary.rolled["sessions_added"] == 2
    new = chunk_rows(db, "AAPL")[-1]
    assert (new["first_session"], new["last_session"], new["status"]) == (
        dt.date(2025, 1, 2),
        dt.date(2025, 1, 3),
        "done",
    )
    assert [r.lease.first_session for r in summary.reports] == [dt.date(2025, 1, 2)]
    assert stored(db, "AAPL", "h1") == served("AAPL", "h1", dt.date(2024, 12, 23), dt.date(2025, 1, 3))
    assert "roll_forward last_completed_session=2025-01-03 jobs_extended=1 chunks_added=1" in work_log(caplog)


async def test_the_worker_checks_bars_against_market_sessions_not_a_calendar_of_its_own(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer
) -> None:
    """The database is the worker's only calendar: a session whose hours market_sessions holds
    otherwise than exchange_calendars (an operator's fix, a newer calendar) is checked as stored."""
    request(db, "AAPL", "h1", dt.date(2024, 12, 2), dt.date(2024, 12, 6))
    # Tuesday 3 December as an early close: after-hours end at 17:00 New York (22:00 UTC).
    db.execute(
        "UPDATE pgbars.market_sessions SET regular_close = '2024-12-03 18:00+00',"
        " after_hours_close = '2024-12-03 22:00+00', is_early_close = true WHERE session_date = '2024-12-03'"
    )

    summary = await work.run(dsn, env, config())

    assert [r.outcome for r in summary.reports] == ["done"]
    late = [
        row
        for row in served("AAPL", "h1", dt.date(2024, 12, 3), dt.date(2024, 12, 3))
        if row[0].hour in (22, 23, 0)
    ]
    assert len(late) == 3  # 17:00, 18:00 and 19:00 New York
    rejected = db.execute("SELECT ts, reason FROM pgbars.rejected_bars ORDER BY ts").fetchall()
    assert rejected == [(row[0], "outside session hours") for row in late]
    kept = set(stored(db, "AAPL", "h1", "polygon"))
    assert kept == set(served("AAPL", "h1", dt.date(2024, 12, 2), dt.date(2024, 12, 6))) - set(late)
