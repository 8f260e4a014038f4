"""pgbars.complete_backfill_chunk: outcomes recorded under the lease, refused without it."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.sql.helpers import chunk, scalar


def claim(conn: psycopg.Connection[Any], worker: str = "worker-a") -> dict[str, Any]:
    cur = conn.cursor(row_factory=dict_row)
    rows = cur.execute("SELECT * FROM pgbars.claim_backfill_chunks(%s, '{polygon}', 1)", (worker,)).fetchall()
    assert len(rows) == 1
    return rows[0]


def complete(
    conn: psycopg.Connection[Any],
    chunk_id: int,
    lease_id: uuid.UUID,
    bars: int,
    rejected: int = 0,
    requests: int = 1,
) -> None:
    conn.execute(
        "SELECT pgbars.complete_backfill_chunk(%s, %s, %s, %s, %s)",
        (chunk_id, lease_id, bars, rejected, requests),
    )


def insert_bar(conn: psycopg.Connection[Any], symbol_id: uuid.UUID) -> None:
    conn.execute(
        "INSERT INTO pgbars.ohlc_bars_v2"
        " (symbol_id, timeframe, ts, provider, open, high, low, close, volume, is_provisional)"
        " VALUES (%s, 'h1', '2024-12-31 14:00+00', 'polygon', 10, 11, 9, 10.5, 1000, true)",
        (symbol_id,),
    )


def bar_count(conn: psycopg.Connection[Any]) -> int:
    count = scalar(conn, "SELECT count(*) FROM pgbars.ohlc_bars_v2")
    assert isinstance(count, int)
    return count


def take_over(conn: psycopg.Connection[Any], chunk_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Worker A claims, its lease expires, worker B claims the chunk again."""
    a = claim(conn, "worker-a")
    conn.execute(
        "UPDATE pgbars.backfill_chunks SET lease_expires_at = now() - interval '1 second' WHERE id = %s",
        (chunk_id,),
    )
    b = claim(conn, "worker-b")
    assert a["chunk_id"] == b["chunk_id"] == chunk_id
    return a, b


def test_done_with_counts_recorded(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    row = claim(conn)
    before = scalar(conn, "SELECT clock_timestamp()")
    complete(conn, one_chunk, row["lease_id"], bars=340, rejected=2, requests=3)

    stored = chunk(conn, one_chunk)
    assert stored["status"] == "done"
    assert (stored["bars_written"], stored["bars_rejected"], stored["requests_used"]) == (
        340,
        2,
        3,
    )
    assert stored["completed_at"] >= before
    assert stored["lease_id"] is None
    assert stored["lease_expires_at"] is None
    assert stored["last_error"] is None
    assert stored["attempts"] == 1

    progress = conn.execute(
        "SELECT done, pending, running, bars_written, bars_rejected, empty_chunks"
        " FROM pgbars.backfill_progress WHERE symbol = 'AAPL'"
    ).fetchone()
    assert progress == (1, 0, 0, 340, 2, 0)


def test_zero_bars_is_recorded_and_visible_as_an_empty_chunk(
    conn: psycopg.Connection[Any], one_chunk: int
) -> None:
    row = claim(conn)
    complete(conn, one_chunk, row["lease_id"], bars=0)

    stored = chunk(conn, one_chunk)
    assert stored["status"] == "done"
    assert stored["bars_written"] == 0
    progress = conn.execute(
        "SELECT done, bars_written, empty_chunks FROM pgbars.backfill_progress WHERE symbol = 'AAPL'"
    ).fetchone()
    assert progress == (1, 0, 1)


def test_completing_clears_an_earlier_error(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    row = claim(conn)
    conn.execute(
        "SELECT pgbars.fail_backfill_chunk(%s, %s, 'HTTP 502 from upstream')",
        (one_chunk, row["lease_id"]),
    )
    conn.execute(
        "UPDATE pgbars.backfill_chunks SET next_attempt_at = now() - interval '1 second' WHERE id = %s",
        (one_chunk,),
    )
    again = claim(conn)
    complete(conn, one_chunk, again["lease_id"], bars=12)
    stored = chunk(conn, one_chunk)
    assert (stored["status"], stored["last_error"], stored["attempts"]) == ("done", None, 2)


def test_late_complete_from_a_lost_lease_raises_pb001_and_keeps_the_new_lease(
    conn: psycopg.Connection[Any], one_chunk: int
) -> None:
    a, b = take_over(conn, one_chunk)
    with pytest.raises(psycopg.Error) as raised:
        complete(conn, one_chunk, a["lease_id"], bars=100)
    assert raised.value.sqlstate == "PB001"

    stored = chunk(conn, one_chunk)
    assert stored["status"] == "running"
    assert stored["lease_id"] == b["lease_id"]
    assert stored["claimed_by"] == "worker-b"
    assert stored["lease_expires_at"] == b["lease_expires_at"]
    assert stored["bars_written"] is None
    assert stored["completed_at"] is None

    # B's own outcome still goes through
    complete(conn, one_chunk, b["lease_id"], bars=7)
    assert chunk(conn, one_chunk)["bars_written"] == 7


def test_lost_lease_rolls_back_the_callers_bar_writes(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    a, b = take_over(conn, one_chunk)
    symbol_id = scalar(conn, "SELECT id FROM pgbars.symbols WHERE ticker = 'AAPL'")

    with pytest.raises(psycopg.Error) as raised, conn.transaction():
        insert_bar(conn, symbol_id)
        complete(conn, one_chunk, a["lease_id"], bars=1)
    assert raised.value.sqlstate == "PB001"
    assert bar_count(conn) == 0
    assert chunk(conn, one_chunk)["lease_id"] == b["lease_id"]

    # the same transaction under the current lease keeps both
    with conn.transaction():
        insert_bar(conn, symbol_id)
        complete(conn, one_chunk, b["lease_id"], bars=1)
    assert bar_count(conn) == 1
    assert chunk(conn, one_chunk)["status"] == "done"


def test_completing_twice_raises_pb001(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    row = claim(conn)
    complete(conn, one_chunk, row["lease_id"], bars=5)
    with pytest.raises(psycopg.Error) as raised:
        complete(conn, one_chunk, row["lease_id"], bars=99)
    assert raised.value.sqlstate == "PB001"
    assert chunk(conn, one_chunk)["bars_written"] == 5


def test_wrong_lease_id_raises_pb001(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    claim(conn)
    with pytest.raises(psycopg.Error) as raised:
        complete(conn, one_chunk, uuid.uuid4(), bars=5)
    assert raised.value.sqlstate == "PB001"
    assert chunk(conn, one_chunk)["status"] == "running"


def test_unknown_chunk_raises_pb001(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.Error) as raised:
        complete(conn, 987654, uuid.uuid4(), bars=5)
    assert raised.value.sqlstate == "PB001"
    assert "987654" in str(raised.value)
