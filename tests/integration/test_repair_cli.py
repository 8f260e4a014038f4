"""`pgbars repair` with the worker and the local Polygon server: an empty answer is fetched
again once, and a session empty twice is confirmed empty."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import psycopg
from click.testing import CliRunner, Result
from psycopg.rows import dict_row

from tests.integration.helpers import chunk_rows, config, request, served, stored
from worker import work
from worker.emulator import Fault, PolygonServer
from worker.main import cli

WEEK = (dt.date(2024, 12, 2), dt.date(2024, 12, 6))  # one h1 chunk of five sessions
SESSIONS = [WEEK[0] + dt.timedelta(days=n) for n in range(5)]


def pgbars(dsn: str, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"DATABASE_URL": dsn})


def run_worker(dsn: str, env: dict[str, str]) -> work.WorkSummary:
    return asyncio.run(work.run(dsn, env, config()))


def coverage(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    (row,) = (
        conn.cursor(row_factory=dict_row)
        .execute("SELECT * FROM pgbars.coverage WHERE symbol = 'AAPL' AND timeframe = 'h1'")
        .fetchall()
    )
    return row


def chunk(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    (row,) = chunk_rows(conn, "AAPL")
    return row


def empty_week(dsn: str, db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer) -> None:
    """The week fetched once, answered with no bars."""
    request(db, "AAPL", "h1", *WEEK)
    polygon.inject(Fault.empty())
    run_worker(dsn, env)
    assert (chunk(db)["status"], chunk(db)["bars_written"]) == ("done", 0)
    row = coverage(db)
    assert (row["sessions_missing"], row["missing_fetched_empty"]) == (5, 5)
    assert row["missing_sessions"] == SESSIONS


def test_repair_refetches_an_empty_answer(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer
) -> None:
    empty_week(dsn, db, env, polygon)

    result = pgbars(dsn, "repair", "AAPL")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "AAPL h1: re-queued chunk 2024-12-02 .. 2024-12-06 for 5 sessions answered without bars:"
        " 2024-12-02, 2024-12-03, 2024-12-04, 2024-12-05, 2024-12-06",
        "re-queued 1 chunk: run `pgbars work` to fetch them",
    ]
    assert (chunk(db)["status"], chunk(db)["attempts"]) == ("pending", 0)
    assert coverage(db)["missing_requeued"] == 5
    # again before a worker ran: nothing new
    again = pgbars(dsn, "repair")
    assert again.exit_code == 0, again.output
    assert again.output.startswith("nothing to repair")

    summary = run_worker(dsn, env)

    assert [r.outcome for r in summary.reports] == ["done"]
    assert stored(db, "AAPL", "h1") == served("AAPL", "h1", *WEEK)
    row = coverage(db)
    assert (row["sessions_expected"], row["sessions_with_bars"], row["sessions_missing"]) == (5, 5, 0)
    assert (row["confirmed_empty"], row["missing_sessions"]) == (0, [])
    assert pgbars(dsn, "repair", "AAPL").output.startswith("nothing to repair")


def test_a_session_empty_twice_is_confirmed_empty(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer
) -> None:
    empty_week(dsn, db, env, polygon)
    assert pgbars(dsn, "repair", "aapl").exit_code == 0
    polygon.inject(Fault.empty())

    run_worker(dsn, env)

    row = coverage(db)
    assert (row["sessions_missing"], row["confirmed_empty"], row["missing_sessions"]) == (0, 5, [])
    result = pgbars(dsn, "repair", "AAPL")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "AAPL h1: 5 sessions empty again after the re-fetch, now confirmed empty (never fetched again):"
        " 2024-12-02, 2024-12-03, 2024-12-04, 2024-12-05, 2024-12-06",
    ]
    assert chunk(db)["status"] == "done"
    reasons = db.execute("SELECT DISTINCT reason FROM pgbars.gap_repairs").fetchall()
    assert reasons == [("empty twice, and no bars at all: does the provider know this ticker?",)]
    assert pgbars(dsn, "repair", "AAPL").output.startswith("nothing to repair")
    requests = len(polygon.requests)
    assert run_worker(dsn, env).reports == []
    assert len(polygon.requests) == requests


def test_repair_help_explains_with_an_example() -> None:
    result = CliRunner().invoke(cli, ["repair", "--help"])
    assert result.exit_code == 0
    assert "without bars" in result.output
    assert "confirmed empty" in result.output
    assert "Example: pgbars repair AAPL" in result.output


def test_bad_and_unknown_tickers_are_one_error_line(dsn: str, db: psycopg.Connection[Any]) -> None:
    request(db, "AAPL", "h1", *WEEK)
    for ticker, message in (
        ("'; DROP", "pgbars: error: invalid ticker"),
        ("zzzz", "pgbars: error: no backfill for ZZZZ (request one with `pgbars request ZZZZ`)"),
    ):
        result = pgbars(dsn, "repair", ticker)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        (line,) = result.output.splitlines()
        assert line.startswith(message)
    assert chunk(db)["status"] == "pending"
