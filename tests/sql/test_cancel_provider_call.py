"""pgbars.cancel_provider_call: an unused reservation stops counting against the limit."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
from psycopg.rows import dict_row

from tests.sql.helpers import scalar


def reserve(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    cur = conn.cursor(row_factory=dict_row)
    row = cur.execute("SELECT * FROM pgbars.reserve_provider_call('polygon', 'worker-a')").fetchone()
    assert row is not None
    assert row["call_id"] is not None
    return row


def cancel(conn: psycopg.Connection[Any], call_id: int) -> Any:
    return scalar(conn, "SELECT pgbars.cancel_provider_call(%s)", (call_id,))


def status(conn: psycopg.Connection[Any], call_id: int) -> Any:
    return scalar(conn, "SELECT status FROM pgbars.provider_calls WHERE id = %s", (call_id,))


def one_call_per_ten_seconds(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "UPDATE pgbars.providers SET calls_per_window = 1, window_length = '10 seconds',"
        " window_margin = '0' WHERE name = 'polygon'"
    )


def test_cancel_marks_the_reservation_cancelled(conn: psycopg.Connection[Any]) -> None:
    row = reserve(conn)
    before = scalar(conn, "SELECT clock_timestamp()")
    assert cancel(conn, row["call_id"]) is True
    stored = conn.execute(
        "SELECT status, finished_at FROM pgbars.provider_calls WHERE id = %s", (row["call_id"],)
    ).fetchone()
    assert stored is not None
    assert stored[0] == "cancelled"
    assert stored[1] >= before


def test_cancelled_reservation_frees_its_slot(conn: psycopg.Connection[Any]) -> None:
    one_call_per_ten_seconds(conn)
    first = reserve(conn)
    waiting = reserve(conn)
    assert waiting["starts_at"] == first["starts_at"] + dt.timedelta(seconds=10)

    assert cancel(conn, first["call_id"]) is True
    assert cancel(conn, waiting["call_id"]) is True
    assert reserve(conn)["wait_seconds"] < 0.05


def test_cancelling_a_completed_call_changes_nothing_and_keeps_it_counted(
    conn: psycopg.Connection[Any],
) -> None:
    one_call_per_ten_seconds(conn)
    row = reserve(conn)
    conn.execute("SELECT pgbars.complete_provider_call(%s, 200)", (row["call_id"],))
    assert not cancel(conn, row["call_id"])
    assert status(conn, row["call_id"]) == "completed"
    assert reserve(conn)["starts_at"] == row["starts_at"] + dt.timedelta(seconds=10)


def test_cancel_reports_false_when_there_is_no_open_reservation(
    conn: psycopg.Connection[Any],
) -> None:
    """The function returns boolean, "true if it was open": otherwise false, not NULL."""
    cancelled = reserve(conn)["call_id"]
    assert cancel(conn, cancelled) is True
    completed = reserve(conn)["call_id"]
    conn.execute("SELECT pgbars.complete_provider_call(%s, 200)", (completed,))

    assert {
        "cancelled twice": cancel(conn, cancelled),
        "completed": cancel(conn, completed),
        "unknown": cancel(conn, 987654),
    } == {"cancelled twice": False, "completed": False, "unknown": False}
    assert status(conn, cancelled) == "cancelled"
