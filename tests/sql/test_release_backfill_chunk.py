"""pgbars.release_backfill_chunk: give a chunk back without spending an attempt."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.sql.helpers import chunk, scalar


def claim(conn: psycopg.Connection[Any], worker: str = "worker-a") -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute("SELECT * FROM pgbars.claim_backfill_chunks(%s, '{polygon}', 1)", (worker,)).fetchall()


def release(
    conn: psycopg.Connection[Any],
    chunk_id: int,
    lease_id: uuid.UUID,
    not_before: dt.datetime | None = None,
    reason: str | None = None,
) -> None:
    conn.execute(
        "SELECT pgbars.release_backfill_chunk(%s, %s, %s, %s)",
        (chunk_id, lease_id, not_before, reason),
    )


def test_release_after_429_gives_back_the_attempt_and_waits_for_retry_after(
    conn: psycopg.Connection[Any], one_chunk: int
) -> None:
    (row,) = claim(conn)
    assert row["attempt"] == 1
    not_before = scalar(conn, "SELECT clock_timestamp() + interval '400 milliseconds'")
    release(conn, one_chunk, row["lease_id"], not_before, "HTTP 429")

    stored = chunk(conn, one_chunk)
    assert stored["status"] == "pending"
    assert stored["attempts"] == 0
    assert stored["next_attempt_at"] == not_before
    assert stored["lease_id"] is None
    assert stored["lease_expires_at"] is None
    assert stored["last_error"] == "HTTP 429"

    assert claim(conn, "worker-b") == []
    while scalar(conn, "SELECT clock_timestamp()") <= not_before:
        time.sleep(0.05)
    (again,) = claim(conn, "worker-b")
    assert again["chunk_id"] == one_chunk
    # the released claim did not count: this is still the first attempt
    assert again["attempt"] == 1


def test_release_takes_back_only_its_own_attempt(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    (first,) = claim(conn)
    assert first["attempt"] == 1
    conn.execute("UPDATE pgbars.backfill_chunks SET lease_expires_at = now() - interval '1 second'")
    (second,) = claim(conn, "worker-b")
    assert second["attempt"] == 2
    release(conn, one_chunk, second["lease_id"])
    assert chunk(conn, one_chunk)["attempts"] == 1


def test_release_without_not_before_is_claimable_at_once(
    conn: psycopg.Connection[Any], one_chunk: int
) -> None:
    (row,) = claim(conn)
    release(conn, one_chunk, row["lease_id"])
    stored = chunk(conn, one_chunk)
    assert (stored["status"], stored["attempts"]) == ("pending", 0)
    (again,) = claim(conn, "worker-b")
    assert again["chunk_id"] == one_chunk
    assert again["attempt"] == 1


def test_not_before_in_the_past_is_claimable_at_once(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    (row,) = claim(conn)
    past = scalar(conn, "SELECT now() - interval '1 hour'")
    release(conn, one_chunk, row["lease_id"], past)
    assert chunk(conn, one_chunk)["next_attempt_at"] > past
    assert len(claim(conn, "worker-b")) == 1


def test_release_reason_is_masked_and_an_earlier_error_kept_without_one(
    conn: psycopg.Connection[Any], one_chunk: int
) -> None:
    (row,) = claim(conn)
    release(conn, one_chunk, row["lease_id"], reason="refused: GET /v1?apiKey=SECRET123")
    kept = chunk(conn, one_chunk)["last_error"]
    assert "SECRET123" not in kept
    assert kept.startswith("refused: GET /v1?")

    (row,) = claim(conn)
    release(conn, one_chunk, row["lease_id"])
    assert chunk(conn, one_chunk)["last_error"] == kept


def test_lost_lease_raises_pb001(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    (a,) = claim(conn, "worker-a")
    conn.execute("UPDATE pgbars.backfill_chunks SET lease_expires_at = now() - interval '1 second'")
    (b,) = claim(conn, "worker-b")
    with pytest.raises(psycopg.Error) as raised:
        release(conn, one_chunk, a["lease_id"])
    assert raised.value.sqlstate == "PB001"
    stored = chunk(conn, one_chunk)
    assert (stored["status"], stored["lease_id"], stored["attempts"]) == (
        "running",
        b["lease_id"],
        2,
    )


def test_releasing_a_finished_chunk_raises_pb001(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    (row,) = claim(conn)
    conn.execute("SELECT pgbars.complete_backfill_chunk(%s, %s, 10)", (one_chunk, row["lease_id"]))
    with pytest.raises(psycopg.Error) as raised:
        release(conn, one_chunk, row["lease_id"])
    assert raised.value.sqlstate == "PB001"
    stored = chunk(conn, one_chunk)
    assert (stored["status"], stored["attempts"]) == ("done", 1)
