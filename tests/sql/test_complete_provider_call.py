"""pgbars.complete_provider_call: the ledger doubles as the audit log of calls."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.sql.helpers import scalar


def reserve(conn: psycopg.Connection[Any], provider: str = "polygon") -> int:
    call_id = scalar(conn, "SELECT call_id FROM pgbars.reserve_provider_call(%s, 'worker-a')", (provider,))
    assert isinstance(call_id, int)
    return call_id


def call(conn: psycopg.Connection[Any], call_id: int) -> dict[str, Any]:
    cur = conn.cursor(row_factory=dict_row)
    row = cur.execute("SELECT * FROM pgbars.provider_calls WHERE id = %s", (call_id,)).fetchone()
    assert row is not None
    return row


def complete(
    conn: psycopg.Connection[Any],
    call_id: int,
    http_status: int | None = 200,
    bars: int | None = None,
    duration_ms: int | None = None,
    error: str | None = None,
) -> None:
    conn.execute(
        "SELECT pgbars.complete_provider_call(%s, %s, %s, %s, %s)",
        (call_id, http_status, bars, duration_ms, error),
    )


def test_completion_records_the_outcome(conn: psycopg.Connection[Any]) -> None:
    call_id = reserve(conn)
    reserved = call(conn, call_id)
    before = scalar(conn, "SELECT clock_timestamp()")
    complete(conn, call_id, 200, bars=960, duration_ms=412)
    after = scalar(conn, "SELECT clock_timestamp()")

    stored = call(conn, call_id)
    assert stored["status"] == "completed"
    assert (stored["http_status"], stored["bars"], stored["duration_ms"], stored["error"]) == (
        200,
        960,
        412,
        None,
    )
    assert before <= stored["finished_at"] <= after
    # the reservation itself is kept as it was
    assert stored["starts_at"] == reserved["starts_at"]
    assert stored["worker"] == "worker-a"


def test_call_without_a_response_is_recorded_with_its_error_masked(
    conn: psycopg.Connection[Any],
) -> None:
    call_id = reserve(conn)
    complete(
        conn,
        call_id,
        None,
        duration_ms=30000,
        error="timeout GET https://api.polygon.io/v2/aggs?apiKey=SECRET123&limit=50000",
    )
    stored = call(conn, call_id)
    assert stored["status"] == "completed"
    assert stored["http_status"] is None
    assert "SECRET123" not in stored["error"]
    assert stored["error"].startswith("timeout GET https://api.polygon.io/v2/aggs?")


def test_completing_twice_raises_and_keeps_the_first_outcome(
    conn: psycopg.Connection[Any],
) -> None:
    call_id = reserve(conn)
    complete(conn, call_id, 200, bars=5)
    with pytest.raises(psycopg.Error) as raised:
        complete(conn, call_id, 500, bars=0)
    assert raised.value.sqlstate == "55000"
    stored = call(conn, call_id)
    assert (stored["http_status"], stored["bars"]) == (200, 5)


def test_completing_a_cancelled_call_raises(conn: psycopg.Connection[Any]) -> None:
    call_id = reserve(conn)
    conn.execute("SELECT pgbars.cancel_provider_call(%s)", (call_id,))
    with pytest.raises(psycopg.Error) as raised:
        complete(conn, call_id, 200)
    assert raised.value.sqlstate == "55000"
    assert call(conn, call_id)["status"] == "cancelled"


def test_completing_an_unknown_call_raises(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.Error) as raised:
        complete(conn, 987654, 200)
    assert raised.value.sqlstate == "55000"


def _streak(conn: psycopg.Connection[Any], provider: str = "polygon") -> int:
    streak = scalar(conn, "SELECT unreachable_streak FROM pgbars.providers WHERE name = %s", (provider,))
    assert isinstance(streak, int)
    return streak


@pytest.mark.parametrize("http_status", [200, 429, 503])
def test_an_answered_call_resets_the_providers_breaker(
    conn: psycopg.Connection[Any], http_status: int
) -> None:
    conn.execute("UPDATE pgbars.providers SET unreachable_streak = 2 WHERE name IN ('polygon', 'yahoo')")
    complete(conn, reserve(conn), http_status)
    assert (_streak(conn), _streak(conn, "yahoo")) == (0, 2)  # that provider's only


def test_a_call_without_an_answer_leaves_the_breaker_to_settle_lease(conn: psycopg.Connection[Any]) -> None:
    conn.execute("UPDATE pgbars.providers SET unreachable_streak = 2 WHERE name = 'polygon'")
    complete(conn, reserve(conn), None, error="polygon: unreachable, connection failed")
    assert _streak(conn) == 2
