import datetime as dt
from typing import Any

import psycopg
import pytest

from tests.sql.helpers import scalar, seed, set_clock


def test_creates_the_symbol_once(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    first = seed(conn, "nvda")
    second = seed(conn, " NVDA")
    assert first["ticker"] == second["ticker"] == "NVDA"
    assert first["symbol_id"] == second["symbol_id"]
    assert scalar(conn, "SELECT count(*) FROM pgbars.symbols") == 1


def test_several_timeframes_make_one_job_each(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    result = seed(conn, "NVDA", ["H1", " d1", "h1"])
    assert [j["timeframe"] for j in result["jobs"]] == ["h1", "d1"]


@pytest.mark.parametrize(
    ("ticker", "timeframes", "window", "message"),
    [
        ("'; DROP", ["h1"], {}, "invalid ticker"),
        ("A" * 40, ["h1"], {}, "invalid ticker"),
        ("AAPL", ["h2"], {}, "unknown timeframe 'h2'"),
        ("AAPL", [], {}, "no timeframe"),
        (
            "AAPL",
            ["h1"],
            {"start": dt.date(2024, 6, 1), "end": dt.date(2024, 1, 1)},
            "after end date",
        ),
        ("AAPL", ["h1"], {"end": dt.date(2025, 6, 1)}, "in the future"),
        ("AAPL", ["h1"], {"start": dt.date(2025, 6, 1)}, "in the future"),
        ("AAPL", ["h1"], {"start": dt.date(1999, 1, 4)}, "before the trading calendar"),
        ("AAPL", ["h1"], {"years": 0}, "years must be"),
        (
            "AAPL",
            ["h1"],
            {"start": dt.date(2025, 1, 2), "end": dt.date(2025, 1, 2)},
            "no completed session",
        ),
        # found by tests/faults: these made a job with nothing to fetch, shown as done
        (
            "AAPL",
            ["h1"],
            {"start": dt.date(2024, 12, 28), "end": dt.date(2024, 12, 29)},
            "no trading session between 2024-12-28 and 2024-12-29",
        ),
        (
            "AAPL",
            ["h1"],
            {"start": dt.date(2024, 12, 25), "end": dt.date(2024, 12, 25)},
            "no trading session",
        ),
        # the start was computed from --end and the years: the message says so
        (
            "AAPL",
            ["h1"],
            {"end": dt.date(2001, 6, 1)},
            r"start date 1999-06-02 \(2 years before 2001-06-01\) is before the trading calendar",
        ),
    ],
)
def test_bad_requests_raise_clear_errors_and_store_nothing(
    conn: psycopg.Connection[Any],
    ticker: str,
    timeframes: list[str],
    window: dict[str, Any],
    message: str,
) -> None:
    set_clock(conn)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
        seed(conn, ticker, timeframes, **window)
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_jobs") == 0
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_chunks") == 0


@pytest.mark.parametrize("timeframes", [[None], ["h1", None]])
def test_a_null_timeframe_is_refused(conn: psycopg.Connection[Any], timeframes: list[str | None]) -> None:
    # found by tests/faults: [NULL] raised 'FOREACH expression must not be null' (22004, from
    # PL/pgSQL), and ['h1', NULL] was read as ['h1']
    set_clock(conn)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="timeframe is missing"):
        conn.execute("SELECT pgbars.request_backfill('AAPL', %s::text[])", (timeframes,))
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_jobs") == 0


def test_an_unknown_timeframe_is_named_on_one_short_line(conn: psycopg.Connection[Any]) -> None:
    # found by tests/faults: the whole input was quoted, 10,000 characters or a terminal escape
    set_clock(conn)
    with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
        seed(conn, "AAPL", ["h1", "\x1b[2J" + "x" * 10_000])
    assert refused.value.diag.message_primary == "unknown timeframe '?[2J" + "x" * 36 + "'"


def test_end_today_is_clamped_to_the_last_completed_session(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    result = seed(conn, "AAPL", start=dt.date(2024, 12, 2), end=dt.date(2025, 1, 2))
    assert result["window_end"] == "2024-12-31"


def test_a_bad_request_keeps_what_was_stored(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        seed(conn, "AAPL", ["h1", "x9"])
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_chunks") == 10
