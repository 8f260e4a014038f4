"""The `pgbars` command line against the test database."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from worker.demo import DEMO_TICKERS
from worker.main import cli


def pgbars(dsn: str | None, *args: str) -> Result:
    env = {"DATABASE_URL": dsn or ""}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_db_upgrade_on_an_installed_database_is_a_no_op(dsn: str) -> None:
    result = pgbars(dsn, "db", "upgrade")
    assert result.exit_code == 0
    assert result.output.startswith("schema is up to date")


def test_watch_add_list_remove(dsn: str, conn: psycopg.Connection[Any]) -> None:
    added = pgbars(dsn, "watch", "add", "aapl", "MSFT", "--watchlist", "tech")
    assert added.exit_code == 0, added.output
    assert added.output.splitlines() == [
        "AAPL added to watchlist tech",
        "MSFT added to watchlist tech",
    ]
    assert conn.execute("SELECT count(*) FROM pgbars.backfill_jobs").fetchone() == (2,)

    listed = pgbars(dsn, "watch", "list")
    assert [line.split()[:2] for line in listed.output.splitlines()[2:]] == [
        ["tech", "AAPL"],
        ["tech", "MSFT"],
    ]

    removed = pgbars(dsn, "watch", "remove", "msft", "--watchlist", "tech")
    assert removed.output.strip() == "MSFT removed from watchlist tech"
    assert pgbars(dsn, "watch", "remove", "MSFT", "--watchlist", "tech").output.strip() == (
        "MSFT was not in watchlist tech"
    )


def test_bad_ticker_prints_one_line_and_adds_nothing(dsn: str, conn: psycopg.Connection[Any]) -> None:
    result = CliRunner().invoke(cli, ["watch", "add", "AAPL", "'; DROP"], env={"DATABASE_URL": dsn})
    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert result.output.startswith("pgbars: error: invalid ticker")
    assert "Traceback" not in result.output
    assert conn.execute("SELECT count(*) FROM pgbars.watchlist_items").fetchone() == (0,)


def test_request_and_status_json(dsn: str) -> None:
    result = pgbars(dsn, "request", "NVDA", "--timeframe", "h1", "--timeframe", "d1", "--years", "2")
    assert result.exit_code == 0, result.output
    assert "NVDA h1: 10 new chunks" in result.output
    assert "NVDA d1: 1 new chunks" in result.output
    again = pgbars(dsn, "request", "NVDA")
    assert "NVDA h1: 0 new chunks" in again.output

    status = pgbars(dsn, "status", "nvda", "--json")
    rows = json.loads(status.output)
    assert [(r["symbol"], r["timeframe"], r["status"], r["total"]) for r in rows] == [
        ("NVDA", "h1", "pending", 10),
        ("NVDA", "d1", "pending", 1),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["request", "AAPL", "--timeframe", "h7"], "unknown timeframe 'h7'"),
        (["request", "AAPL", "--start", "2024-06-01", "--end", "2024-01-01"], "is after end date"),
        (["request", "AAPL", "--end", "2999-01-01"], "in the future"),
    ],
)
def test_bad_requests_print_one_line(dsn: str, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, args, env={"DATABASE_URL": dsn})
    assert result.exit_code == 1
    assert message in result.output
    assert len(result.output.splitlines()) == 1


def test_unreachable_database_and_missing_url(tmp_path: Any) -> None:
    missing = CliRunner().invoke(cli, ["status"], env={"DATABASE_URL": ""})
    assert missing.exit_code == 1
    assert "DATABASE_URL is not set" in missing.output
    unreachable = CliRunner().invoke(
        cli, ["status"], env={"DATABASE_URL": f"postgresql://nobody:secret-pw@/x?host={tmp_path}"}
    )
    assert unreachable.exit_code == 1
    assert unreachable.output.startswith("pgbars: error: cannot connect to the database")
    assert "secret-pw" not in unreachable.output


def test_schema_missing_is_one_line(server_dsn: Any) -> None:
    result = CliRunner().invoke(cli, ["status"], env={"DATABASE_URL": server_dsn("postgres")})
    assert result.exit_code == 1
    assert len(result.output.splitlines()) == 1
    assert "pgbars.backfill_progress" in result.output or "schema" in result.output


def test_demo_on_a_given_database(dsn: str, conn: psycopg.Connection[Any]) -> None:
    result = pgbars(dsn, "demo")
    assert result.exit_code == 0, result.output
    assert "10 new (the trigger seeded their h1 backfill)" in result.output
    table = result.output.splitlines()[-len(DEMO_TICKERS) :]
    assert sorted(line.split()[0] for line in table) == sorted(DEMO_TICKERS)
    assert conn.execute("SELECT count(*) FROM pgbars.backfill_chunks").fetchone() == (100,)
    again = pgbars(dsn, "demo")
    assert "schema is up to date" in again.output and "new (" not in again.output


def test_help_explains_each_command_with_an_example() -> None:
    for command in (
        ["db", "upgrade"],
        ["watch", "add"],
        ["watch", "remove"],
        ["watch", "list"],
        ["request"],
        ["status"],
        ["demo"],
    ):
        result = CliRunner().invoke(cli, [*command, "--help"])
        assert result.exit_code == 0
        assert "Example:" in result.output and "pgbars " in result.output, command
