"""pgbars.fail_backfill_chunk: jittered, growing backoff; terminal failure; masked errors."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.sql.helpers import chunk, chunks, scalar, seed, set_clock


def claim_all(conn: psycopg.Connection[Any], worker: str = "worker-a") -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        "SELECT * FROM pgbars.claim_backfill_chunks(%s, '{polygon}', 100)", (worker,)
    ).fetchall()


def fail(
    conn: psycopg.Connection[Any],
    chunk_id: int,
    lease_id: uuid.UUID,
    error: str | None = "HTTP 502",
    retryable: bool = True,
) -> str:
    status = scalar(
        conn,
        "SELECT pgbars.fail_backfill_chunk(%s, %s, %s, %s)",
        (chunk_id, lease_id, error, retryable),
    )
    assert isinstance(status, str)
    return status


def fail_timed(conn: psycopg.Connection[Any], chunk_id: int, lease_id: uuid.UUID) -> tuple[str, dt.timedelta]:
    """Fail a chunk; its status and how far after the failure its next attempt is."""
    with conn.transaction():
        failed_at = scalar(conn, "SELECT now()")
        status = fail(conn, chunk_id, lease_id)
    return status, chunk(conn, chunk_id)["next_attempt_at"] - failed_at


def make_due(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "UPDATE pgbars.backfill_chunks SET next_attempt_at = now() - interval '1 second'"
        " WHERE status = 'pending'"
    )


def test_retryable_failures_back_off_with_growing_jittered_delays(
    conn: psycopg.Connection[Any],
) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1"])
    assert len(chunks(conn, "AAPL")) == 10

    # first attempt: 60 s +/- 25%
    first = [fail_timed(conn, r["chunk_id"], r["lease_id"]) for r in claim_all(conn)]
    assert len(first) == 10
    assert {status for status, _ in first} == {"pending"}
    delays = [delay for _, delay in first]
    assert all(dt.timedelta(seconds=45) <= d <= dt.timedelta(seconds=75) for d in delays), delays
    assert len(set(delays)) > 1, "every chunk got the same backoff: no jitter"

    # not claimable while backing off
    assert claim_all(conn) == []

    # second attempt: 120 s +/- 25%
    make_due(conn)
    second_claims = claim_all(conn)
    assert {r["attempt"] for r in second_claims} == {2}
    second = [fail_timed(conn, r["chunk_id"], r["lease_id"]) for r in second_claims]
    assert {status for status, _ in second} == {"pending"}
    delays = [delay for _, delay in second]
    assert all(dt.timedelta(seconds=90) <= d <= dt.timedelta(seconds=150) for d in delays), delays
    assert len(set(delays)) > 1, "every chunk got the same backoff: no jitter"

    # third attempt: failed for good
    make_due(conn)
    third_claims = claim_all(conn)
    assert {r["attempt"] for r in third_claims} == {3}
    for r in third_claims:
        assert fail(conn, r["chunk_id"], r["lease_id"], "HTTP 502 again") == "failed"
    rows = conn.execute(
        "SELECT status, attempts, last_error, completed_at IS NOT NULL, lease_id FROM pgbars.backfill_chunks"
    ).fetchall()
    assert set(rows) == {("failed", 3, "HTTP 502 again", True, None)}
    make_due(conn)
    assert claim_all(conn) == []


def test_the_backoff_starts_from_the_providers_retry_backoff(conn: psycopg.Connection[Any]) -> None:
    """An owner's setting per provider (a test suite runs its retries in seconds)."""
    set_clock(conn)
    seed(conn, "AAPL", ["h1"])
    conn.execute("UPDATE pgbars.providers SET retry_backoff = '2 seconds' WHERE name = 'polygon'")
    conn.execute("UPDATE pgbars.providers SET retry_backoff = '1 hour' WHERE name <> 'polygon'")

    first = [fail_timed(conn, r["chunk_id"], r["lease_id"])[1] for r in claim_all(conn)]
    assert all(dt.timedelta(seconds=1.5) <= d <= dt.timedelta(seconds=2.5) for d in first), first
    make_due(conn)
    second = [fail_timed(conn, r["chunk_id"], r["lease_id"])[1] for r in claim_all(conn)]
    assert all(dt.timedelta(seconds=3) <= d <= dt.timedelta(seconds=5) for d in second), second


def test_the_backoff_stays_capped_at_an_hour(conn: psycopg.Connection[Any]) -> None:
    waits = conn.execute(
        "SELECT pgbars._retry_backoff(a, '1 minute') FROM generate_series(1, 100) AS a"
    ).fetchall()
    assert max(wait for (wait,) in waits) <= dt.timedelta(hours=1.25)
    assert min(wait for (wait,) in waits[10:]) >= dt.timedelta(minutes=45)


def test_retryable_failure_returns_to_pending_and_clears_the_lease(
    conn: psycopg.Connection[Any], one_chunk: int
) -> None:
    (row,) = claim_all(conn)
    assert fail(conn, one_chunk, row["lease_id"], "connection reset") == "pending"
    stored = chunk(conn, one_chunk)
    assert stored["status"] == "pending"
    assert stored["attempts"] == 1
    assert stored["lease_id"] is None
    assert stored["lease_expires_at"] is None
    assert stored["completed_at"] is None
    assert stored["last_error"] == "connection reset"


def test_non_retryable_failure_fails_at_once(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    (row,) = claim_all(conn)
    assert fail(conn, one_chunk, row["lease_id"], "HTTP 403: not entitled", False) == "failed"
    stored = chunk(conn, one_chunk)
    assert stored["status"] == "failed"
    assert stored["attempts"] == 1
    assert stored["last_error"] == "HTTP 403: not entitled"
    assert stored["completed_at"] is not None
    assert stored["lease_id"] is None
    conn.execute("UPDATE pgbars.backfill_chunks SET next_attempt_at = now() - interval '1 second'")
    assert claim_all(conn) == []


def test_error_is_kept_with_secrets_masked(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    (row,) = claim_all(conn)
    error = (
        "HTTP 500 for https://api.polygon.io/v2/aggs/ticker/AAPL/range/1/hour/2024-12-02/2024-12-31"
        "?adjusted=false&apiKey=SECRET123&limit=50000; sent Authorization: Bearer abc.def"
    )
    fail(conn, one_chunk, row["lease_id"], error, False)
    kept = chunk(conn, one_chunk)["last_error"]
    assert "SECRET123" not in kept
    assert "abc.def" not in kept
    # the rest of the error is still useful
    assert kept.startswith("HTTP 500 for https://api.polygon.io/v2/aggs/ticker/AAPL")
    assert "limit=50000" in kept


def test_missing_error_text_is_recorded_as_unknown(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    (row,) = claim_all(conn)
    fail(conn, one_chunk, row["lease_id"], None, False)
    assert chunk(conn, one_chunk)["last_error"]


def test_lost_lease_raises_pb001(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    (a,) = claim_all(conn, "worker-a")
    conn.execute("UPDATE pgbars.backfill_chunks SET lease_expires_at = now() - interval '1 second'")
    (b,) = claim_all(conn, "worker-b")
    with pytest.raises(psycopg.Error) as raised:
        fail(conn, one_chunk, a["lease_id"], "timed out")
    assert raised.value.sqlstate == "PB001"
    stored = chunk(conn, one_chunk)
    assert (stored["status"], stored["lease_id"], stored["last_error"]) == (
        "running",
        b["lease_id"],
        None,
    )


def test_failing_a_finished_chunk_raises_pb001(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    (row,) = claim_all(conn)
    conn.execute("SELECT pgbars.complete_backfill_chunk(%s, %s, 10)", (one_chunk, row["lease_id"]))
    with pytest.raises(psycopg.Error) as raised:
        fail(conn, one_chunk, row["lease_id"], "late error")
    assert raised.value.sqlstate == "PB001"
    assert chunk(conn, one_chunk)["status"] == "done"
