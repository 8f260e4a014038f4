"""backfill_status(), has_backfill_data() and the backfill_progress view."""

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from tests.sql.helpers import chunks, scalar, seed, set_clock

NEW_YORK = ZoneInfo("America/New_York")


def status(conn: psycopg.Connection[Any], ticker: str) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return cur.execute("SELECT * FROM pgbars.backfill_status(%s)", (ticker,)).fetchall()


def claim(conn: psycopg.Connection[Any], limit: int) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT chunk_id, lease_id, session_count FROM pgbars.claim_backfill_chunks("
        "'w1', '{polygon,yahoo}', %s)",
        (limit,),
    ).fetchall()


def test_progress_moves_through_the_states(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1", "d1"])
    rows = status(conn, "aapl")
    assert [(r["timeframe"], r["status"], r["progress"], r["total"], r["pending"]) for r in rows] == [
        ("h1", "pending", 0, 10, 10),
        ("d1", "pending", 0, 1, 1),
    ]

    claimed = claim(conn, 3)  # round-robin: two h1 chunks and the d1 chunk
    assert len(claimed) == 3
    done_id, done_lease, _ = claimed[0]
    conn.execute("SELECT pgbars.complete_backfill_chunk(%s, %s, 500, 2, 1)", (done_id, done_lease))
    h1 = status(conn, "AAPL")[0]
    assert h1["status"] == "running"
    assert h1["done"] + h1["running"] + h1["pending"] + h1["failed"] == h1["total"] == 10
    assert h1["running"] >= 1 and h1["done"] <= 1

    for chunk_id, lease_id, _ in claimed[1:] + claim(conn, 20):
        conn.execute("SELECT pgbars.complete_backfill_chunk(%s, %s, 0, 0, 1)", (chunk_id, lease_id))
    rows = status(conn, "AAPL")
    assert {r["status"] for r in rows} == {"done"}
    assert {r["progress"] for r in rows} == {100}
    assert sum(r["bars_written"] for r in rows) == 500


def test_progress_counts_sessions_not_chunks(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", start=dt.date(2024, 10, 1), end=dt.date(2024, 12, 31))
    planned = chunks(conn, "AAPL")
    assert [c["session_count"] for c in planned] == [52, 12]
    chunk_id, lease_id, sessions = claim(conn, 1)[0]  # newest first: the 12-session chunk
    assert sessions == 12
    conn.execute("SELECT pgbars.complete_backfill_chunk(%s, %s, 100)", (chunk_id, lease_id))
    row = status(conn, "AAPL")[0]
    assert (row["done"], row["total"]) == (1, 2)
    assert float(row["progress"]) == pytest.approx(round(100 * 12 / 64, 1))


def test_failed_chunks_end_done_with_errors(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["d1"])
    chunk_id, lease_id, _ = claim(conn, 1)[0]
    conn.execute(
        "SELECT pgbars.fail_backfill_chunk(%s, %s, 'plan does not cover', false)",
        (chunk_id, lease_id),
    )
    row = status(conn, "AAPL")[0]
    assert (row["status"], row["failed"], row["progress"]) == ("done_with_errors", 1, 0)


def test_expired_lease_counts_as_pending(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["d1"])
    claim(conn, 1)
    conn.execute("UPDATE pgbars.backfill_chunks SET lease_expires_at = now() - interval '1 second'")
    row = status(conn, "AAPL")[0]
    assert (row["running"], row["pending"], row["status"]) == (0, 1, "pending")


def test_unknown_ticker_has_no_rows_and_bad_ticker_raises(conn: psycopg.Connection[Any]) -> None:
    assert status(conn, "ZZZZ") == []
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        status(conn, "no way")


def test_has_backfill_data_needs_bars_not_a_job(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL")
    assert scalar(conn, "SELECT pgbars.has_backfill_data('AAPL')") is False
    assert scalar(conn, "SELECT pgbars.has_backfill_data('NOPE', 'd1')") is False
    conn.execute(
        "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, open, high, low, close, volume)"
        " SELECT id, 'h1', '2024-12-31 14:00+00', 'polygon', 10, 11, 9, 10.5, 1000"
        " FROM pgbars.symbols WHERE ticker = 'AAPL'"
    )
    assert scalar(conn, "SELECT pgbars.has_backfill_data(' aapl ')") is True
    assert scalar(conn, "SELECT pgbars.has_backfill_data('AAPL', 'd1')") is False
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="unknown timeframe"):
        conn.execute("SELECT pgbars.has_backfill_data('AAPL', 'hourly')")


@pytest.mark.parametrize(("ticker", "timeframe"), [("NVDA", None), ("NVDA", "hourly"), ("'; DROP", "h1")])
def test_has_backfill_data_checks_its_inputs_where_no_bar_exists(
    conn: psycopg.Connection[Any], ticker: str, timeframe: str | None
) -> None:
    # found by tests/faults: once the session had called it a few times (PostgreSQL then plans
    # the function's query once for any input), a bad timeframe for a ticker without bars was
    # compared to no bar and answered false instead of raising
    set_clock(conn)
    seed(conn, "AAPL")
    for asked in ("AAPL", "MSFT", "AAPL", "X", "AAPL", "B", "AAPL"):
        assert scalar(conn, "SELECT pgbars.has_backfill_data(%s, 'h1')", (asked,)) is False
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute("SELECT pgbars.has_backfill_data(%s, %s)", (ticker, timeframe))


def test_view_has_the_documented_columns(conn: psycopg.Connection[Any]) -> None:
    cur = conn.execute("SELECT * FROM pgbars.backfill_progress LIMIT 0")
    names = [d.name for d in cur.description or []]
    for column in (
        "symbol",
        "timeframe",
        "status",
        "progress",
        "done",
        "pending",
        "running",
        "failed",
        "total",
    ):
        assert column in names


def test_a_derived_timeframe_has_a_row_with_its_sources_chunks_and_its_own_bars(
    conn: psycopg.Connection[Any],
) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h4"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 31))
    rows = status(conn, "AAPL")
    assert [(r["timeframe"], r["status"], r["total"], r["sessions_total"]) for r in rows] == [
        ("h1", "pending", 1, 21),
        ("h4", "pending", 1, 21),
    ]
    progress = conn.execute(
        "SELECT timeframe, derived_from, job_id FROM pgbars.backfill_progress ORDER BY timeframe"
    ).fetchall()
    assert [(tf, source) for tf, source, _ in progress] == [("h1", None), ("h4", "h1")]
    assert progress[0][2] == progress[1][2]  # the source job's id

    ((chunk_id, lease_id, _),) = claim(conn, 1)
    symbol_id = scalar(conn, "SELECT id FROM pgbars.symbols WHERE ticker = 'AAPL'")
    for hour in (9, 10, 13):  # two 4-hour buckets of Dec 2: 08:00 and 12:00 New York
        conn.execute(
            "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, open, high, low, close,"
            " volume) VALUES (%s, 'h1', %s, 'polygon', 1, 1, 1, 1, 1)",
            (symbol_id, dt.datetime(2024, 12, 2, hour, tzinfo=NEW_YORK)),
        )
    conn.execute("SELECT pgbars.derive_bars(%s, 'h1', '2024-12-02', '2024-12-02')", (symbol_id,))
    conn.execute("SELECT pgbars.complete_backfill_chunk(%s, %s, 3, 0, 1)", (chunk_id, lease_id))
    rows = status(conn, "AAPL")
    assert [(r["timeframe"], r["status"], r["progress"], r["bars_written"]) for r in rows] == [
        ("h1", "done", 100, 3),
        ("h4", "done", 100, 2),
    ]
