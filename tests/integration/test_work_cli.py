"""`pgbars work` as a command: exit codes, one-line reasons, the log it prints."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from tests.integration.helpers import TRADIER_TOKEN, chunk_rows, request, served, stored
from worker.emulator import Fault, TradierServer, YahooServer
from worker.main import cli

NO_KEYS = {"POLYGON_API_KEY": "", "TRADIER_TOKEN": ""}


def pgbars_work(dsn: str, env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, ["work", *args], env={**NO_KEYS, **env, "DATABASE_URL": dsn})


def _one_error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("pgbars: error: ")
    return line


def test_runs_with_yahoo_alone_and_logs_each_chunk(
    dsn: str, db: psycopg.Connection[Any], yahoo: YahooServer
) -> None:
    days = (dt.date(2024, 11, 25), dt.date(2024, 11, 29))
    request(db, "SPY", "d1", *days)  # d1: Yahoo first, no credential needed

    result = pgbars_work(dsn, {"YAHOO_BASE_URL": yahoo.base_url}, "--max-seconds", "30")

    assert result.exit_code == 0, result.output
    assert [c["status"] for c in chunk_rows(db, "SPY", "d1")] == ["done"]
    assert [bar[:5] for bar in stored(db, "SPY", "d1", "yahoo")] == [
        bar[:5] for bar in served("SPY", "d1", *days)
    ]
    lines = result.output.splitlines()
    (chunk_line,) = [line for line in lines if " chunk " in line]
    for field in (
        "ticker=SPY",
        "timeframe=d1",
        "sessions=4",
        "provider=yahoo",
        "requests=1",
        "bars_written=4",
        "bars_rejected=0",
        "outcome=done",
        "seconds=",
    ):
        assert field in chunk_line
    assert any(" summary " in line and "done=1" in line for line in lines)
    assert any("provider name=yahoo requests=1" in line for line in lines)


def _spy_served_qqq_unknown(db: psycopg.Connection[Any], yahoo: YahooServer) -> None:
    """A week of SPY and of QQQ d1 from Yahoo alone; Yahoo does not know QQQ: its chunk fails."""
    request(db, "SPY", "d1", dt.date(2024, 11, 25), dt.date(2024, 11, 29))
    request(db, "QQQ", "d1", dt.date(2024, 11, 25), dt.date(2024, 11, 29))
    db.execute("DELETE FROM pgbars.provider_routes WHERE provider = 'polygon'")  # no route to fall back to
    yahoo.inject(Fault.unknown_ticker(), path_prefix="/v8/finance/chart/QQQ")


def test_chunk_failures_still_exit_zero(dsn: str, db: psycopg.Connection[Any], yahoo: YahooServer) -> None:
    request(db, "SPY", "d1", dt.date(2024, 11, 25), dt.date(2024, 11, 29))
    db.execute("DELETE FROM pgbars.provider_routes WHERE provider = 'polygon'")  # no route to fall back to
    yahoo.inject(Fault.unknown_ticker())

    result = pgbars_work(dsn, {"YAHOO_BASE_URL": yahoo.base_url})

    assert result.exit_code == 0, result.output
    assert [c["status"] for c in chunk_rows(db, "SPY", "d1")] == ["failed"]
    assert "outcome=failed" in result.output


def test_strict_exits_3_when_a_chunk_failed_and_the_summary_says_why(
    dsn: str, db: psycopg.Connection[Any], yahoo: YahooServer, tmp_path: Path
) -> None:
    _spy_served_qqq_unknown(db, yahoo)
    summary = tmp_path / "summary.md"

    result = pgbars_work(dsn, {"YAHOO_BASE_URL": yahoo.base_url}, "--strict", "--summary", str(summary))

    assert result.exit_code == 3, result.output
    assert "pgbars: --strict: 1 chunk ended failed" in result.output
    text = summary.read_text()
    assert "### Why this run failed (--strict)\n\n- 1 chunk ended failed\n" in text
    assert [c["status"] for c in chunk_rows(db, "SPY", "d1")] == ["done"]  # the rest of the run still ran


def test_strict_exits_3_when_a_credential_was_refused(
    dsn: str, db: psycopg.Connection[Any], polygon: Any, yahoo: YahooServer
) -> None:
    request(db, "AAPL", "h1", dt.date(2024, 12, 2), dt.date(2024, 12, 6))
    env = {
        "POLYGON_API_KEY": "wrong-key",
        "POLYGON_BASE_URL": polygon.base_url,
        "YAHOO_BASE_URL": yahoo.base_url,
    }

    result = pgbars_work(dsn, env, "--strict")

    assert result.exit_code == 3, result.output
    assert "pgbars: --strict: polygon: polygon refused POLYGON_API_KEY" in result.output
    assert "wrong-key" not in result.output
    assert [c["status"] for c in chunk_rows(db, "AAPL", "h1")] == ["pending"]  # given back unspent
    # Without --strict the same run is a success: failures are data, shown in status.
    assert pgbars_work(dsn, env).exit_code == 0


def test_strict_exits_0_when_every_chunk_is_done(
    dsn: str, db: psycopg.Connection[Any], yahoo: YahooServer
) -> None:
    request(db, "SPY", "d1", dt.date(2024, 11, 25), dt.date(2024, 11, 29))
    result = pgbars_work(dsn, {"YAHOO_BASE_URL": yahoo.base_url}, "--strict")
    assert result.exit_code == 0, result.output
    assert "--strict" not in result.output


def test_unreachable_database(dsn: str) -> None:
    line = _one_error_line(pgbars_work("postgresql://pgbars@127.0.0.1:1/nothing?connect_timeout=2", {}))
    assert "cannot connect to the database" in line


def test_schema_missing(server_dsn: Callable[[str], str]) -> None:
    line = _one_error_line(pgbars_work(server_dsn("postgres"), {}))
    assert "schema is not installed" in line and "pgbars db upgrade" in line


def test_schema_older_than_the_code(dsn: str, db: psycopg.Connection[Any]) -> None:
    db.execute("UPDATE pgbars.schema_migrations SET checksum = 'old' WHERE name = 'routines'")
    line = _one_error_line(pgbars_work(dsn, {}))
    assert "older or newer than this code" in line


def test_no_usable_provider(dsn: str, db: psycopg.Connection[Any]) -> None:
    db.execute("UPDATE pgbars.providers SET enabled = false WHERE name = 'yahoo'")
    line = _one_error_line(pgbars_work(dsn, {}))
    assert "no usable provider" in line and "POLYGON_API_KEY" in line


@pytest.mark.parametrize("args", [["--concurrency", "0"], ["--max-seconds", "0"]])
def test_bad_options_are_refused(dsn: str, args: list[str]) -> None:
    result = pgbars_work(dsn, {}, *args)
    assert result.exit_code == 2
    assert "Invalid value" in result.output


def test_summary_file_gets_a_markdown_report_appended(
    dsn: str, db: psycopg.Connection[Any], yahoo: YahooServer, tmp_path: Path
) -> None:
    _spy_served_qqq_unknown(db, yahoo)
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")

    result = pgbars_work(dsn, {"YAHOO_BASE_URL": yahoo.base_url}, "--summary", str(summary))

    assert result.exit_code == 0, result.output
    text = summary.read_text()
    assert text.startswith("earlier step\n## pgbars work\n")
    lines = text.splitlines()
    header = lines.index(
        "| chunks | done | retry | failed | rerouted | released | lost | bars written | bars rejected |"
    )
    assert lines[header + 2] == "| 2 | 1 | 0 | 1 | 0 | 0 | 0 | 4 | 0 |"
    assert "| yahoo | 2 | 0 |  |" in lines
    assert "### Chunks that need a look" in lines
    assert any(line.startswith("| QQQ | d1 | 2024-11-25 .. 2024-11-29 | yahoo | failed |") for line in lines)
    assert "| SPY | d1 | done | ████████████████████ 100% | 1 | 0 | 1 | 4 |" in lines
    assert "| QQQ | d1 | done_with_errors | ░░░░░░░░░░░░░░░░░░░░   0% | 0 | 1 | 1 | 0 |" in lines


def test_summary_reports_todays_bars_and_what_could_not_be_fetched(
    dsn: str, db: psycopg.Connection[Any], tradier: TradierServer, tmp_path: Path
) -> None:
    # the clock is 2025-01-02 12:00 New York: a session in progress
    tradier.unknown_symbols.add("ZZZZ")
    db.execute("SELECT pgbars.add_to_watchlist('AAPL')")
    db.execute("SELECT pgbars.add_to_watchlist('ZZZZ')")
    summary = tmp_path / "step-summary.md"
    env = {"TRADIER_TOKEN": TRADIER_TOKEN, "TRADIER_BASE_URL": tradier.base_url}

    result = pgbars_work(dsn, env, "--summary", str(summary))

    assert result.exit_code == 0, result.output
    lines = summary.read_text().splitlines()
    start = lines.index("### Today's bars")
    # AAPL: 33 m15 bars from 04:00 to 12:00, rolled up into 9 h1 bars; ZZZZ: nothing
    assert lines[start + 2] == (
        "2 live refreshes (2 requests): 33 bars fetched, 9 provisional bars new or changed."
    )
    assert lines[start + 4].startswith("- ZZZZ m15: tradier answered no m15 bars for 2025-01-02, 02:30:00")

    no_token = tmp_path / "no-token.md"
    assert pgbars_work(dsn, {}, "--summary", str(no_token)).exit_code == 0
    assert "- tradier was not asked for today's bars: TRADIER_TOKEN is not set." in no_token.read_text()


def test_an_invalid_ticker_is_refused_before_the_run_not_taken_for_an_empty_queue(
    dsn: str, db: psycopg.Connection[Any], yahoo: YahooServer
) -> None:
    result = pgbars_work(
        dsn, {"YAHOO_BASE_URL": yahoo.base_url}, "--ticker", "AAPL,bad!", "--max-seconds", "5"
    )
    line = _one_error_line(result)
    assert line.startswith("pgbars: error: --ticker: invalid ticker 'bad!'"), line
    assert yahoo.requests == []
