"""pgbars.reroute_backfill_chunk: a refused chunk moves to the next history route, or fails."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.sql.helpers import chunk, chunks, scalar, seed, set_clock

REFUSED = "HTTP 403 NOT_AUTHORIZED: your plan does not include this data timeframe"


def claim(conn: psycopg.Connection[Any], provider: str, worker: str = "worker-a") -> dict[str, Any]:
    cur = conn.cursor(row_factory=dict_row)
    rows = cur.execute(
        "SELECT * FROM pgbars.claim_backfill_chunks(%s, %s, 1)", (worker, [provider])
    ).fetchall()
    assert len(rows) == 1
    return rows[0]


def reroute(
    conn: psycopg.Connection[Any], chunk_id: int, lease_id: uuid.UUID, error: str | None = REFUSED
) -> Any:
    return scalar(conn, "SELECT pgbars.reroute_backfill_chunk(%s, %s, %s)", (chunk_id, lease_id, error))


def add_route(
    conn: psycopg.Connection[Any], timeframe: str, provider: str, purpose: str, priority: int
) -> None:
    conn.execute(
        "INSERT INTO pgbars.provider_routes (timeframe, provider, purpose, priority) VALUES (%s, %s, %s, %s)",
        (timeframe, provider, purpose, priority),
    )


def seed_chunk(conn: psycopg.Connection[Any], timeframe: str, start: dt.date, end: dt.date) -> int:
    """The id of the single AAPL chunk planned for start..end (planning clock: helpers.CLOCK)."""
    set_clock(conn)
    seed(conn, "AAPL", [timeframe], start=start, end=end)
    (planned,) = chunks(conn, "AAPL", timeframe)
    chunk_id = planned["id"]
    assert isinstance(chunk_id, int)
    return chunk_id


def recent_m5(conn: psycopg.Connection[Any]) -> int:
    """An m5 chunk (December 2024) inside Yahoo's 60-day lookback, planned on Polygon."""
    chunk_id = seed_chunk(conn, "m5", dt.date(2024, 12, 2), dt.date(2024, 12, 31))
    assert chunk(conn, chunk_id)["provider"] == "polygon"
    return chunk_id


def old_m5(conn: psycopg.Connection[Any]) -> int:
    """An m5 chunk (June 2024) beyond Yahoo's 60-day lookback, planned on Polygon."""
    chunk_id = seed_chunk(conn, "m5", dt.date(2024, 6, 3), dt.date(2024, 6, 28))
    assert chunk(conn, chunk_id)["provider"] == "polygon"
    return chunk_id


def assert_failed_for_good(
    conn: psycopg.Connection[Any], chunk_id: int, provider: str, attempts: int
) -> None:
    stored = chunk(conn, chunk_id)
    assert stored["status"] == "failed"
    assert stored["provider"] == provider
    assert stored["attempts"] == attempts
    assert stored["lease_id"] is None
    assert stored["lease_expires_at"] is None
    assert stored["completed_at"] is not None
    assert stored["last_error"].startswith(REFUSED)
    assert "no other route" in stored["last_error"]
    # nobody gets it again, on any provider
    cur = conn.cursor()
    assert (
        cur.execute(
            "SELECT * FROM pgbars.claim_backfill_chunks('w', '{polygon,yahoo,tradier}', 50)"
        ).fetchall()
        == []
    )


def test_refused_m5_chunk_inside_the_lookback_moves_to_yahoo_without_the_attempt(
    conn: psycopg.Connection[Any],
) -> None:
    chunk_id = recent_m5(conn)
    row = claim(conn, "polygon")
    assert row["attempt"] == 1

    assert reroute(conn, chunk_id, row["lease_id"]) == "yahoo"

    stored = chunk(conn, chunk_id)
    assert stored["provider"] == "yahoo"
    assert stored["status"] == "pending"
    assert stored["attempts"] == 0
    assert stored["next_attempt_at"] <= scalar(conn, "SELECT now()")
    assert stored["lease_id"] is None
    assert stored["lease_expires_at"] is None
    assert stored["completed_at"] is None
    assert stored["last_error"].startswith(REFUSED)
    assert "polygon" in stored["last_error"]
    assert "yahoo" in stored["last_error"]

    # Polygon workers no longer see it; a Yahoo worker claims it at once, as a first attempt
    cur = conn.cursor()
    assert cur.execute("SELECT * FROM pgbars.claim_backfill_chunks('w', '{polygon}', 50)").fetchall() == []
    again = claim(conn, "yahoo", "worker-b")
    assert (again["chunk_id"], again["provider"], again["attempt"]) == (chunk_id, "yahoo", 1)


def test_reroute_gives_back_only_the_current_attempt(conn: psycopg.Connection[Any]) -> None:
    chunk_id = recent_m5(conn)
    claim(conn, "polygon")
    conn.execute(
        "UPDATE pgbars.backfill_chunks SET lease_expires_at = now() - interval '1 second' WHERE id = %s",
        (chunk_id,),
    )
    second = claim(conn, "polygon", "worker-b")
    assert second["attempt"] == 2

    assert reroute(conn, chunk_id, second["lease_id"]) == "yahoo"
    assert chunk(conn, chunk_id)["attempts"] == 1


@pytest.mark.parametrize(
    ("start", "end", "moved_to"),
    [
        # the planning clock's today is 2025-01-02: Yahoo reaches back to 2024-11-03
        (dt.date(2024, 11, 4), dt.date(2024, 11, 29), "yahoo"),
        (dt.date(2024, 11, 1), dt.date(2024, 11, 29), None),
    ],
)
def test_yahoo_lookback_is_measured_from_the_chunks_first_session_on_the_planning_clock(
    conn: psycopg.Connection[Any], start: dt.date, end: dt.date, moved_to: str | None
) -> None:
    chunk_id = seed_chunk(conn, "m5", start, end)
    row = claim(conn, "polygon")
    assert reroute(conn, chunk_id, row["lease_id"]) == moved_to
    assert chunk(conn, chunk_id)["status"] == ("pending" if moved_to else "failed")


def test_m5_chunk_older_than_yahoos_lookback_fails_for_good(conn: psycopg.Connection[Any]) -> None:
    chunk_id = old_m5(conn)
    row = claim(conn, "polygon")
    before = scalar(conn, "SELECT clock_timestamp()")

    assert reroute(conn, chunk_id, row["lease_id"]) is None

    assert_failed_for_good(conn, chunk_id, "polygon", attempts=1)
    assert chunk(conn, chunk_id)["completed_at"] >= before


def test_h1_chunk_has_no_other_route_and_fails(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    row = claim(conn, "polygon")
    assert reroute(conn, one_chunk, row["lease_id"]) is None
    assert_failed_for_good(conn, one_chunk, "polygon", attempts=1)


def test_m5_chunk_refused_by_yahoo_too_fails(conn: psycopg.Connection[Any]) -> None:
    chunk_id = recent_m5(conn)
    assert reroute(conn, chunk_id, claim(conn, "polygon")["lease_id"]) == "yahoo"
    assert reroute(conn, chunk_id, claim(conn, "yahoo")["lease_id"]) is None
    assert_failed_for_good(conn, chunk_id, "yahoo", attempts=1)


def test_d1_chunk_goes_from_yahoo_to_polygon_and_never_back(conn: psycopg.Connection[Any]) -> None:
    chunk_id = seed_chunk(conn, "d1", dt.date(2024, 12, 2), dt.date(2024, 12, 31))
    assert chunk(conn, chunk_id)["provider"] == "yahoo"

    assert reroute(conn, chunk_id, claim(conn, "yahoo")["lease_id"]) == "polygon"
    assert chunk(conn, chunk_id)["provider"] == "polygon"
    # polygon is d1's last route: the earlier (higher-priority) yahoo is not tried again
    assert reroute(conn, chunk_id, claim(conn, "polygon")["lease_id"]) is None
    assert_failed_for_good(conn, chunk_id, "polygon", attempts=1)


@pytest.mark.parametrize(
    "disable",
    [
        "UPDATE pgbars.provider_routes SET enabled = false"
        " WHERE timeframe = 'm5' AND provider = 'yahoo' AND purpose = 'history'",
        "UPDATE pgbars.providers SET enabled = false WHERE name = 'yahoo'",
    ],
    ids=["route-disabled", "provider-disabled"],
)
def test_disabled_route_or_provider_is_skipped(conn: psycopg.Connection[Any], disable: str) -> None:
    chunk_id = recent_m5(conn)
    add_route(conn, "m5", "tradier", "history", 3)
    row = claim(conn, "polygon")
    conn.execute(disable)

    assert reroute(conn, chunk_id, row["lease_id"]) == "tradier"
    stored = chunk(conn, chunk_id)
    assert (stored["provider"], stored["status"]) == ("tradier", "pending")


def test_disabled_last_route_leaves_no_route(conn: psycopg.Connection[Any]) -> None:
    chunk_id = recent_m5(conn)
    row = claim(conn, "polygon")
    conn.execute("UPDATE pgbars.providers SET enabled = false WHERE name = 'yahoo'")
    assert reroute(conn, chunk_id, row["lease_id"]) is None
    assert_failed_for_good(conn, chunk_id, "polygon", attempts=1)


def test_route_whose_lookback_falls_short_is_skipped_for_a_later_one(conn: psycopg.Connection[Any]) -> None:
    chunk_id = old_m5(conn)
    add_route(conn, "m5", "tradier", "history", 3)
    row = claim(conn, "polygon")
    assert reroute(conn, chunk_id, row["lease_id"]) == "tradier"


def test_live_routes_are_not_history_routes(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    add_route(conn, "h1", "tradier", "live", 2)
    row = claim(conn, "polygon")
    assert reroute(conn, one_chunk, row["lease_id"]) is None


def test_secrets_in_the_error_are_masked(conn: psycopg.Connection[Any]) -> None:
    chunk_id = recent_m5(conn)
    row = claim(conn, "polygon")
    error = (
        "HTTP 403 for GET https://api.polygon.io/v2/aggs/ticker/AAPL?adjusted=false&apiKey=SECRET123&limit=50000"
        " (Authorization: Bearer tok.EN-456)"
    )
    assert reroute(conn, chunk_id, row["lease_id"], error) == "yahoo"

    kept = chunk(conn, chunk_id)["last_error"]
    assert "SECRET123" not in kept
    assert "tok.EN-456" not in kept
    assert "apiKey=***&limit=50000" in kept
    assert "Bearer ***" in kept
    assert kept.endswith("(moved from polygon to yahoo)")

    # the same when the chunk fails for good
    assert reroute(conn, chunk_id, claim(conn, "yahoo")["lease_id"], error) is None
    failed = chunk(conn, chunk_id)["last_error"]
    assert "SECRET123" not in failed
    assert "tok.EN-456" not in failed
    assert "no other route" in failed


def test_missing_error_is_recorded_as_unknown(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    row = claim(conn, "polygon")
    assert reroute(conn, one_chunk, row["lease_id"], None) is None
    assert chunk(conn, one_chunk)["last_error"].startswith("unknown error")


def test_wrong_lease_raises_pb001_and_changes_nothing(conn: psycopg.Connection[Any]) -> None:
    chunk_id = recent_m5(conn)
    row = claim(conn, "polygon")
    before = chunk(conn, chunk_id)

    with pytest.raises(psycopg.Error) as raised:
        reroute(conn, chunk_id, uuid.uuid4())
    assert raised.value.sqlstate == "PB001"
    assert chunk(conn, chunk_id) == before
    assert before["lease_id"] == row["lease_id"]


def test_lost_lease_raises_pb001_and_keeps_the_new_lease(conn: psycopg.Connection[Any]) -> None:
    chunk_id = recent_m5(conn)
    a = claim(conn, "polygon", "worker-a")
    conn.execute(
        "UPDATE pgbars.backfill_chunks SET lease_expires_at = now() - interval '1 second' WHERE id = %s",
        (chunk_id,),
    )
    b = claim(conn, "polygon", "worker-b")

    with pytest.raises(psycopg.Error) as raised:
        reroute(conn, chunk_id, a["lease_id"])
    assert raised.value.sqlstate == "PB001"
    stored = chunk(conn, chunk_id)
    assert (stored["status"], stored["provider"], stored["lease_id"], stored["attempts"]) == (
        "running",
        "polygon",
        b["lease_id"],
        2,
    )


def test_rerouting_a_finished_chunk_raises_pb001(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    row = claim(conn, "polygon")
    conn.execute("SELECT pgbars.complete_backfill_chunk(%s, %s, 10)", (one_chunk, row["lease_id"]))
    with pytest.raises(psycopg.Error) as raised:
        reroute(conn, one_chunk, row["lease_id"])
    assert raised.value.sqlstate == "PB001"
    stored = chunk(conn, one_chunk)
    assert (stored["status"], stored["bars_written"], stored["last_error"]) == ("done", 10, None)
