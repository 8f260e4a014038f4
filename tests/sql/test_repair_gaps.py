"""pgbars.repair_gaps: re-queue empty answers once, confirm twice-empty sessions, retry failed chunks.

Chunks are claimed and completed through the SQL functions with bars for some sessions only, under
the planning clock helpers.CLOCK; pgbars.coverage tells the outcome.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.sql.helpers import chunks, scalar, seed, set_clock
from tests.sql.test_coverage import (
    COUNTS,
    DECEMBER,
    D,
    add_bars,
    claim,
    counts,
    coverage,
    fetch,
    ny,
    rows,
    sessions,
    states,
)

RESULT = ("symbol", "timeframe", "first_session", "last_session", "action", "sessions")


def repair(conn: psycopg.Connection[Any], ticker: str | None = None) -> list[tuple[Any, ...]]:
    """repair_gaps(ticker) as (symbol, timeframe, first_session, last_session, action, sessions)."""
    result = rows(conn, "SELECT * FROM pgbars.repair_gaps(%s)", (ticker,))
    return [tuple(r[c] for c in RESULT) for r in result]


def december_with_gaps(conn: psycopg.Connection[Any], ticker: str = "AAPL") -> list[dt.date]:
    """AAPL's December h1 chunk done with bars on every session but Dec 4 and Dec 24 (an early close)."""
    set_clock(conn)
    seed(conn, ticker, ["h1"], **DECEMBER)
    december = sessions(conn, D(2024, 12, 2), D(2024, 12, 31))
    fetch(conn, ticker, [ny(day, 10) for day in december if day not in (D(2024, 12, 4), D(2024, 12, 24))])
    return december


def repairs(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return conn.cursor(row_factory=dict_row).execute("SELECT * FROM pgbars.gap_repairs ORDER BY 2").fetchall()


GAPS = [D(2024, 12, 4), D(2024, 12, 24)]
CHUNK = (D(2024, 12, 2), D(2024, 12, 31))


def test_requeues_the_chunk_of_empty_sessions_once(conn: psycopg.Connection[Any]) -> None:
    december_with_gaps(conn)
    (before,) = chunks(conn, "AAPL")
    assert (before["status"], before["attempts"]) == ("done", 1)

    assert repair(conn, "aapl") == [("AAPL", "h1", *CHUNK, "requeued_empty", GAPS)]

    (after,) = chunks(conn, "AAPL")
    assert (after["status"], after["attempts"], after["lease_id"]) == ("pending", 0, None)
    assert after["next_attempt_at"] <= scalar(conn, "SELECT now()")
    assert [(r["session_date"], r["confirmed_at"], r["reason"]) for r in repairs(conn)] == [
        (GAPS[0], None, None),
        (GAPS[1], None, None),
    ]
    row = coverage(conn, "AAPL")
    assert counts(row) == (21, 19, 0, 2, 0, 2, 0, 0)
    assert row["missing_sessions"] == GAPS
    assert states(conn, "AAPL")[GAPS[0]] == "requeued"
    assert scalar(conn, "SELECT status FROM pgbars.backfill_progress") == "pending"


def test_a_second_call_before_a_worker_ran_requeues_nothing(conn: psycopg.Connection[Any]) -> None:
    december_with_gaps(conn)
    repair(conn)
    versions = conn.execute("SELECT xmin::text FROM pgbars.backfill_chunks").fetchall()
    repaired = conn.execute("SELECT xmin::text FROM pgbars.gap_repairs ORDER BY session_date").fetchall()

    assert repair(conn) == []
    assert repair(conn, "AAPL") == []
    assert conn.execute("SELECT xmin::text FROM pgbars.backfill_chunks").fetchall() == versions
    assert (
        conn.execute("SELECT xmin::text FROM pgbars.gap_repairs ORDER BY session_date").fetchall() == repaired
    )


def test_a_refetch_with_bars_fills_the_gap(conn: psycopg.Connection[Any]) -> None:
    december_with_gaps(conn)
    repair(conn)
    (claimed,) = claim(conn, "AAPL")
    assert claimed["first_session"] == CHUNK[0]
    add_bars(conn, claimed, [ny(day, 10) for day in GAPS])
    conn.execute(
        "SELECT pgbars.complete_backfill_chunk(%s, %s, 21)", (claimed["chunk_id"], claimed["lease_id"])
    )

    row = coverage(conn, "AAPL")
    assert counts(row) == (21, 21, 0, 0, 0, 0, 0, 0)
    assert row["missing_sessions"] == []
    assert repair(conn) == []


def test_a_second_empty_answer_confirms_the_session_empty(conn: psycopg.Connection[Any]) -> None:
    december_with_gaps(conn)
    repair(conn)
    fetch(conn, "AAPL", [ny(GAPS[0], 10)])  # the re-fetch brings Dec 4; Dec 24 stays empty

    # coverage explains it as soon as the re-fetch is done
    row = coverage(conn, "AAPL")
    assert counts(row) == (21, 20, 1, 0, 0, 0, 0, 0)
    assert row["missing_sessions"] == []
    (confirmed,) = rows(conn, "SELECT * FROM pgbars.session_coverage WHERE state = 'confirmed_empty'")
    assert confirmed["session_date"] == GAPS[1]
    assert confirmed["reason"] == "empty twice, between bars: a trading halt?"
    (chunk_row,) = chunks(conn, "AAPL")
    assert confirmed["confirmed_at"] == chunk_row["completed_at"]

    # repair records it, re-queues nothing, and never again
    assert repair(conn) == [("AAPL", "h1", *CHUNK, "confirmed_empty", [GAPS[1]])]
    (chunk_after,) = chunks(conn, "AAPL")
    assert chunk_after["status"] == "done"
    recorded = {r["session_date"]: r for r in repairs(conn)}
    assert recorded[GAPS[1]]["confirmed_at"] == chunk_row["completed_at"]
    assert recorded[GAPS[1]]["reason"] == "empty twice, between bars: a trading halt?"
    assert recorded[GAPS[0]]["confirmed_at"] is None  # repaired: it has bars now
    assert repair(conn) == []
    assert counts(coverage(conn, "AAPL")) == (21, 20, 1, 0, 0, 0, 0, 0)


def test_a_recorded_confirmation_holds_when_the_chunk_is_fetched_again(conn: psycopg.Connection[Any]) -> None:
    december_with_gaps(conn)
    repair(conn)
    fetch(conn, "AAPL", [ny(GAPS[0], 10)])
    repair(conn)
    # A bar of Dec 10 is lost (deleted by hand): its empty chunk goes back to the provider, and
    # Dec 24, confirmed, is neither re-queued nor reported missing meanwhile.
    conn.execute(
        "DELETE FROM pgbars.ohlc_bars_v2 WHERE ts = %s",
        (ny(D(2024, 12, 10), 10),),
    )
    assert repair(conn) == [("AAPL", "h1", *CHUNK, "requeued_empty", [D(2024, 12, 10)])]
    row = coverage(conn, "AAPL")
    assert counts(row) == (21, 19, 1, 1, 0, 1, 0, 0)
    assert states(conn, "AAPL")[GAPS[1]] == "confirmed_empty"


def test_reasons_tell_sessions_before_the_first_and_after_the_last_bar(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "ARM", ["h1"], **DECEMBER)
    middle = sessions(conn, D(2024, 12, 9), D(2024, 12, 20))
    for _ in range(2):
        fetch(conn, "ARM", [ny(day, 10) for day in middle])
        repair(conn)
    reasons = {
        r["session_date"]: r["reason"]
        for r in rows(
            conn, "SELECT session_date, reason FROM pgbars.gap_repairs WHERE confirmed_at IS NOT NULL"
        )
    }
    assert (
        reasons[D(2024, 12, 2)]
        == reasons[D(2024, 12, 6)]
        == "empty twice, before the first bar: not listed yet?"
    )
    assert (
        reasons[D(2024, 12, 23)] == reasons[D(2024, 12, 31)] == "empty twice, after the last bar: delisted?"
    )
    assert len(reasons) == 21 - len(middle)
    assert coverage(conn, "ARM")["sessions_missing"] == 0


def test_a_ticker_with_no_bars_at_all(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "ZZZZ", ["h1"], **DECEMBER)
    fetch(conn, "ZZZZ", [])
    assert [r[4] for r in repair(conn)] == ["requeued_empty"]
    fetch(conn, "ZZZZ", [])
    ((*_, action, confirmed),) = repair(conn)
    assert (action, len(confirmed)) == ("confirmed_empty", 21)
    assert scalar(conn, "SELECT DISTINCT reason FROM pgbars.gap_repairs") == (
        "empty twice, and no bars at all: does the provider know this ticker?"
    )


def test_rejected_bars_are_named_in_the_reason(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1"], start=D(2024, 12, 2), end=D(2024, 12, 3))
    for _ in range(2):
        (claimed,) = claim(conn, "AAPL")
        add_bars(conn, claimed, [ny(D(2024, 12, 2), 10)])
        conn.execute(
            "INSERT INTO pgbars.rejected_bars (chunk_id, symbol_id, timeframe, provider, ts, raw, reason)"
            " VALUES (%s, %s, 'h1', 'polygon', %s, '{}', 'high < low')",
            (claimed["chunk_id"], claimed["symbol_id"], ny(D(2024, 12, 3), 10)),
        )
        conn.execute(
            "SELECT pgbars.complete_backfill_chunk(%s, %s, 1, 1)", (claimed["chunk_id"], claimed["lease_id"])
        )
        repair(conn)
    assert scalar(conn, "SELECT reason FROM pgbars.gap_repairs WHERE session_date = '2024-12-03'") == (
        "no valid bar twice: the provider's bars were rejected (see rejected_bars)"
    )


def test_failed_chunks_are_retried_with_fresh_attempts(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "MSFT", ["h1"], start=D(2024, 10, 1), end=D(2024, 12, 31))  # 52 + 12 sessions
    newest, _ = claim(conn, "MSFT", limit=2)
    conn.execute(
        "SELECT pgbars.fail_backfill_chunk(%s, %s, 'HTTP 400: bad request', false)",
        (newest["chunk_id"], newest["lease_id"]),
    )
    failed = sessions(conn, D(2024, 12, 13), D(2024, 12, 31))

    assert repair(conn, "MSFT") == [
        ("MSFT", "h1", D(2024, 12, 13), D(2024, 12, 31), "requeued_failed", failed)
    ]
    row = next(c for c in chunks(conn, "MSFT") if c["id"] == newest["chunk_id"])
    assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 0, "HTTP 400: bad request")
    assert repairs(conn) == []  # never answered: nothing to count against an empty answer
    assert counts(coverage(conn, "MSFT")) == (64, 0, 0, 64, 0, 0, 64, 0)
    assert repair(conn, "MSFT") == []  # the running chunk and the re-queued one are left alone


def test_a_refetch_that_fails_is_retried_and_confirmed_when_empty_again(
    conn: psycopg.Connection[Any],
) -> None:
    december_with_gaps(conn)
    repair(conn)
    (claimed,) = claim(conn, "AAPL")
    conn.execute(
        "SELECT pgbars.fail_backfill_chunk(%s, %s, 'HTTP 400', false)",
        (claimed["chunk_id"], claimed["lease_id"]),
    )
    assert counts(coverage(conn, "AAPL")) == (21, 19, 0, 2, 0, 0, 0, 2)
    assert repair(conn) == [("AAPL", "h1", *CHUNK, "requeued_failed", GAPS)]
    assert states(conn, "AAPL")[GAPS[0]] == "requeued"
    fetch(conn, "AAPL", [])
    assert repair(conn) == [("AAPL", "h1", *CHUNK, "confirmed_empty", GAPS)]


def test_the_ticker_limits_the_repair(conn: psycopg.Connection[Any]) -> None:
    december_with_gaps(conn, "AAPL")
    december_with_gaps(conn, "MSFT")
    assert [r[0] for r in repair(conn, " msft ")] == ["MSFT"]
    assert [r[0] for r in repair(conn)] == ["AAPL"]
    assert repair(conn) == []


def test_every_job_of_the_ticker_in_timeframe_order(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["d1", "h1"], **DECEMBER)
    fetch(conn, "AAPL", [], "yahoo")
    fetch(conn, "AAPL", [])
    assert [(r[1], r[4], len(r[5])) for r in repair(conn, "AAPL")] == [
        ("h1", "requeued_empty", 21),
        ("d1", "requeued_empty", 21),
    ]


def test_sessions_across_dst_and_early_closes(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1"], start=D(2024, 11, 1), end=D(2024, 11, 4))
    seed(conn, "AAPL", ["h1"], start=D(2024, 11, 29), end=D(2024, 11, 29))
    seed(conn, "AAPL", ["h1"], start=D(2024, 3, 8), end=D(2024, 3, 11))
    # Nov 4 19:00 (00:00 UTC Tuesday) is Monday's; Mar 8 19:00 (00:00 UTC Saturday) is Friday's
    fetch(conn, "AAPL", [ny(D(2024, 11, 29), 16)])
    fetch(conn, "AAPL", [ny(D(2024, 11, 4), 19)])
    fetch(conn, "AAPL", [ny(D(2024, 3, 8), 19)])
    assert repair(conn) == [
        ("AAPL", "h1", D(2024, 3, 8), D(2024, 3, 11), "requeued_empty", [D(2024, 3, 11)]),
        ("AAPL", "h1", D(2024, 11, 1), D(2024, 11, 4), "requeued_empty", [D(2024, 11, 1)]),
    ]


def test_bad_and_unknown_tickers_are_errors(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="invalid ticker"):
        repair(conn, "'; DROP")
    set_clock(conn)
    seed(conn, "AAPL", ["h1"], **DECEMBER)
    with pytest.raises(psycopg.errors.NoDataFound, match="no backfill for ZZZZ") as raised:
        repair(conn, "zzzz")
    assert raised.value.diag.message_hint == "request one with `pgbars request ZZZZ`"


def test_no_jobs_nothing_to_do(conn: psycopg.Connection[Any]) -> None:
    assert repair(conn) == []


def test_the_worker_role_may_repair_and_the_reader_may_not(conn: psycopg.Connection[Any]) -> None:
    december_with_gaps(conn)
    with conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL ROLE pgbars_reader")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            repair(conn)
    with conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL ROLE pgbars_worker")
        assert len(repair(conn)) == 1
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE pgbars.gap_repairs SET reason = 'x'")


def test_concurrent_repairs_requeue_once(conn: psycopg.Connection[Any], connect: Any) -> None:
    december_with_gaps(conn)
    first, second = connect(), connect()
    first.autocommit = False
    results: list[list[tuple[Any, ...]]] = []
    assert len(repair(first)) == 1  # holds the job's lock until commit

    waiter = threading.Thread(target=lambda: results.append(repair(second)))
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive(), "the second repair waits for the first"
    first.commit()
    waiter.join(10)
    assert results == [[]]
    assert len(repairs(conn)) == 2


def test_coverage_counts_always_add_up(conn: psycopg.Connection[Any]) -> None:
    december_with_gaps(conn)
    repair(conn)
    fetch(conn, "AAPL", [])
    for row in rows(conn, "SELECT * FROM pgbars.coverage"):
        expected, with_bars, confirmed, missing, *parts = (row[c] for c in COUNTS)
        assert expected == with_bars + confirmed + missing
        assert missing == sum(parts) == len(row["missing_sessions"])
