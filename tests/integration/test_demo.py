"""`pgbars demo` in a reduced form: two tickers instead of ten, on the test server.

The demo writes only to a database of its own: an empty one (no pgbars schema),
one an earlier demo marked, or with --yes `<name>_demo` beside a database in use.
These tests mean "whatever time it is" unless they pin PGBARS_NOW: during a
trading session the demo also refreshes today's bars, which its history line
does not count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from tests.integration.helpers import chunk_rows, scalar, served, stored
from worker import clock
from worker.main import cli

DEMO = ["demo", "--ticker", "AAPL", "--ticker", "CRWD"]


def demo(dsn: str, *args: str) -> Any:
    return CliRunner().invoke(cli, [*DEMO, *args], env={"DATABASE_URL": dsn})


def test_demo_fetches_its_tickers_through_the_real_path_and_is_idempotent(
    new_database: Callable[[], str],
) -> None:
    dsn = new_database()

    first = demo(dsn)

    assert first.exit_code == 0, first.output
    out = first.output
    assert "SYNTHETIC bars" in out and "5 calls per second" in out
    assert "the trigger seeded 2 years of h1 for 2 of them" in out
    # History only: live refreshes during a session are reported on a line of their own.
    assert "20 chunks fetched with 20 requests" in out
    with psycopg.connect(dsn, autocommit=True) as conn:
        # What the worker stored is exactly what the local Polygon served.
        for ticker in ("AAPL", "CRWD"):
            chunks = chunk_rows(conn, ticker)
            assert [c["status"] for c in chunks] == ["done"] * 10
            first_session, last_session = chunks[0]["first_session"], chunks[-1]["last_session"]
            assert stored(conn, ticker, "h1", "polygon") == served(ticker, "h1", first_session, last_session)
        assert scalar(conn, "SELECT count(*) FROM pgbars.watchlist_items") == 2
        assert scalar(conn, "SELECT count(*) FROM pgbars.demo_runs") == 1
    # The progress table and the coverage summary end the output.
    assert any(line.split()[:4] == ["AAPL", "h1", "done", "100.0"] for line in out.splitlines())
    coverage = [
        line.split() for line in out.splitlines() if line.startswith(("AAPL ", "CRWD ")) and "+00:00" in line
    ]
    assert len(coverage) == 2 and all(row[-1] == "100.0" and row[-2] == "0" for row in coverage)
    assert "pgbars demo --remove" in out

    again = demo(dsn)

    assert again.exit_code == 0, again.output
    assert "already there (nothing new to seed)" in again.output
    assert "0 chunks fetched with 0 requests" in again.output
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_chunks") == 20


def test_demo_window_ends_at_the_last_completed_session(new_database: Callable[[], str]) -> None:
    dsn = new_database()
    result = CliRunner().invoke(cli, ["demo", "--ticker", "MU"], env={"DATABASE_URL": dsn})
    assert result.exit_code == 0, result.output
    with psycopg.connect(dsn) as conn:
        last = scalar(conn, "SELECT max(last_session) FROM pgbars.backfill_chunks")
    assert last < clock.today_new_york()


def test_demo_during_a_session_also_shows_todays_bars(
    new_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Wednesday 2026-12-02 10:30 New York: the regular session trades.
    monkeypatch.setenv(clock.ENV, "2026-12-02 10:30 America/New_York")
    dsn = new_database()

    result = demo(dsn)

    assert result.exit_code == 0, result.output
    assert "20 chunks fetched with 20 requests" in result.output
    assert "today's bars: 2 live refreshes with 2 requests" in result.output, result.output
    with psycopg.connect(dsn) as conn:
        assert (
            scalar(conn, "SELECT max(last_session) FROM pgbars.backfill_chunks").isoformat() == "2026-12-01"
        )
        provisional = scalar(conn, "SELECT count(*) FROM pgbars.ohlc_bars_v2 WHERE is_provisional")
        assert provisional > 0


def _snapshot(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """What a real worker obeys and what a real database holds."""
    return {
        "providers": conn.execute("SELECT * FROM pgbars.providers ORDER BY name").fetchall(),
        "routes": conn.execute("SELECT * FROM pgbars.provider_routes ORDER BY 1, 2, 3").fetchall(),
        "live": conn.execute("SELECT * FROM pgbars.live_settings").fetchall(),
        "chunks": conn.execute("SELECT * FROM pgbars.backfill_chunks ORDER BY id").fetchall(),
        "symbols": conn.execute("SELECT ticker FROM pgbars.symbols ORDER BY ticker").fetchall(),
        "bars": scalar(conn, "SELECT count(*) FROM pgbars.ohlc_bars_v2"),
        "watchlists": conn.execute("SELECT name FROM pgbars.watchlists ORDER BY name").fetchall(),
        "calls": scalar(conn, "SELECT count(*) FROM pgbars.provider_calls"),
        "demo_runs": scalar(conn, "SELECT count(*) FROM pgbars.demo_runs"),
    }


def test_demo_refuses_a_database_in_use_and_changes_nothing(dsn: str, conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT pgbars.add_to_watchlist('AAPL', 'real')")
    before = _snapshot(conn)

    result = demo(dsn)

    assert result.exit_code == 1
    assert "holds pgbars data that is not the demo's" in result.output
    assert "--yes" in result.output
    assert _snapshot(conn) == before


def test_demo_with_yes_runs_in_a_database_of_its_own_and_is_removed_in_one_command(
    dsn: str, conn: psycopg.Connection[Any], server_dsn: Callable[[str], str]
) -> None:
    conn.execute("SELECT pgbars.add_to_watchlist('AAPL', 'real')")
    before = _snapshot(conn)
    own = f"{conn.info.dbname}_demo"
    try:
        result = demo(dsn, "--yes")

        assert result.exit_code == 0, result.output
        assert f"created database {own} for the demo" in result.output
        assert "20 chunks fetched with 20 requests" in result.output
        # Nothing a real worker obeys or reads changed: the real AAPL's chunks are unclaimed.
        assert _snapshot(conn) == before
        with psycopg.connect(server_dsn(own), autocommit=True) as demo_conn:
            assert scalar(demo_conn, "SELECT count(*) FROM pgbars.ohlc_bars_v2") > 0
            assert scalar(demo_conn, "SELECT count(*) FROM pgbars.demo_runs") == 1
        # A real worker refuses the demo's database: synthetic bars never meet real ones.
        work = CliRunner().invoke(
            cli, ["work", "--max-seconds", "5"], env={"DATABASE_URL": server_dsn(own), "POLYGON_API_KEY": "k"}
        )
        assert work.exit_code == 1
        assert "synthetic bars of `pgbars demo`" in work.output

        removed = CliRunner().invoke(cli, ["demo", "--remove"], env={"DATABASE_URL": dsn})

        assert removed.exit_code == 0, removed.output
        assert "removed the demo: 2 symbols" in removed.output
        assert scalar(conn, "SELECT count(*) FROM pg_database WHERE datname = %s", (own,)) == 0
        assert _snapshot(conn) == before
    finally:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(own)))


def test_demo_remove_drops_the_schema_of_a_demo_database(new_database: Callable[[], str]) -> None:
    dsn = new_database()
    assert demo(dsn).exit_code == 0

    removed = CliRunner().invoke(cli, ["demo", "--remove"], env={"DATABASE_URL": dsn})

    assert removed.exit_code == 0, removed.output
    with psycopg.connect(dsn) as conn:
        assert scalar(conn, "SELECT to_regnamespace('pgbars') IS NULL") is True
    nothing = CliRunner().invoke(cli, ["demo", "--remove"], env={"DATABASE_URL": dsn})
    assert nothing.exit_code == 1 and "no demo to remove" in nothing.output


def test_demo_shows_nvda_across_its_split_without_a_jump(new_database: Callable[[], str]) -> None:
    dsn = new_database()
    result = CliRunner().invoke(cli, ["demo", "--ticker", "NVDA"], env={"DATABASE_URL": dsn})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "NVDA: 3 years of d1 too, across its 10-for-1 split of 2024-06-10" in out
    assert "corporate actions: 2 refreshes with 3 requests" in out
    head = "NVDA d1 across its 10-for-1 split of 2024-06-10"
    table = out[out.index(head) :].splitlines()[3:11]
    rows = {line.split()[0]: [float(v.replace(",", "")) for v in line.split()[1:5]] for line in table}
    assert list(rows) == [
        "2024-06-05", "2024-06-06", "2024-06-07", "2024-06-10",
        "2024-06-11", "2024-06-12", "2024-06-13", "2024-06-14",
    ]  # fmt: skip
    before, split_day = rows["2024-06-07"], rows["2024-06-10"]
    # as traded: a tenfold drop; split-adjusted: none, and the volumes match
    assert 7 < before[0] / split_day[0] < 14
    assert 0.7 < before[1] / split_day[1] < 1.4
    assert before[3] == before[2] * 10 and split_day[3] == split_day[2]
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert scalar(conn, "SELECT count(*) FROM pgbars.corporate_actions WHERE kind = 'split'") == 1
        assert scalar(conn, "SELECT count(*) FROM pgbars.price_basis_issues") == 0
