"""`pgbars demo` in a reduced form: two tickers instead of ten, on the test database."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
from click.testing import CliRunner

from tests.integration.helpers import chunk_rows, scalar, served, stored
from worker.main import cli


def test_demo_fetches_its_tickers_through_the_real_path_and_is_idempotent(
    dsn: str, conn: psycopg.Connection[Any]
) -> None:
    limits_before = conn.execute("SELECT * FROM pgbars.providers ORDER BY name").fetchall()

    first = CliRunner().invoke(
        cli, ["demo", "--ticker", "AAPL", "--ticker", "CRWD"], env={"DATABASE_URL": dsn}
    )

    assert first.exit_code == 0, first.output
    out = first.output
    assert "SYNTHETIC bars" in out and "5 calls per second" in out
    assert "the trigger seeded 2 years of h1 for 2 of them" in out
    assert "20 chunks fetched with 20 requests" in out
    # What the worker stored is exactly what the local Polygon served.
    for ticker in ("AAPL", "CRWD"):
        chunks = chunk_rows(conn, ticker)
        assert [c["status"] for c in chunks] == ["done"] * 10
        first_session, last_session = chunks[0]["first_session"], chunks[-1]["last_session"]
        assert stored(conn, ticker, "h1", "polygon") == served(ticker, "h1", first_session, last_session)
    assert scalar(conn, "SELECT count(*) FROM pgbars.watchlist_items") == 2
    # The progress table and the coverage summary end the output.
    assert any(line.split()[:4] == ["AAPL", "h1", "done", "100.0"] for line in out.splitlines())
    coverage = [
        line.split() for line in out.splitlines() if line.startswith(("AAPL ", "CRWD ")) and "+00:00" in line
    ]
    assert len(coverage) == 2 and all(row[-1] == "100.0" and row[-2] == "0" for row in coverage)
    # The demo's rate limit is its own: the providers' settings are restored.
    assert conn.execute("SELECT * FROM pgbars.providers ORDER BY name").fetchall() == limits_before

    again = CliRunner().invoke(
        cli, ["demo", "--ticker", "AAPL", "--ticker", "CRWD"], env={"DATABASE_URL": dsn}
    )

    assert again.exit_code == 0, again.output
    assert "already there (nothing new to seed)" in again.output
    assert "0 chunks fetched with 0 requests" in again.output
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_chunks") == 20


def test_demo_window_ends_at_the_last_completed_session(dsn: str, conn: psycopg.Connection[Any]) -> None:
    result = CliRunner().invoke(cli, ["demo", "--ticker", "MU"], env={"DATABASE_URL": dsn})
    assert result.exit_code == 0, result.output
    last = scalar(conn, "SELECT max(last_session) FROM pgbars.backfill_chunks")
    assert last < dt.datetime.now(dt.UTC).date()
