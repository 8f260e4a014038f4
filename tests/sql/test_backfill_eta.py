"""pgbars.backfill_eta: remaining requests, the queue ahead, and the ETA at each provider's rate.

Polygon allows 5 calls per 60 s: 12 s per request; Yahoo 30 per 60 s: 2 s.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.sql.helpers import chunks, scalar, seed, set_clock

POLYGON = 12.0  # seconds per request
YAHOO = 2.0


def eta(conn: psycopg.Connection[Any], tickers: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """backfill_eta rows by 'TICKER timeframe'."""
    cur = conn.cursor(row_factory=dict_row)
    rows = cur.execute("SELECT * FROM pgbars.backfill_eta(%s)", (tickers,)).fetchall()
    return {f"{r['symbol']} {r['timeframe']}": r for r in rows}


def seed_two_jobs(conn: psycopg.Connection[Any]) -> None:
    """AAPL h1: 2 years, 10 chunks; MSFT h1: July to December 2024, 3 chunks."""
    set_clock(conn)
    seed(conn, "AAPL")
    seed(conn, "MSFT", start=dt.date(2024, 7, 1), end=dt.date(2024, 12, 31))
    assert (len(chunks(conn, "AAPL")), len(chunks(conn, "MSFT"))) == (10, 3)


def claim(conn: psycopg.Connection[Any], ticker: str, limit: int) -> list[Any]:
    return conn.execute(
        "SELECT chunk_id, lease_id FROM pgbars.claim_backfill_chunks('w', '{polygon,yahoo}', %s,"
        " p_tickers => %s)",
        (limit, [ticker]),
    ).fetchall()


def complete(conn: psycopg.Connection[Any], claimed: list[Any], requests: int = 1) -> None:
    for chunk_id, lease_id in claimed:
        conn.execute(
            "SELECT pgbars.complete_backfill_chunk(%s, %s, 100, 0, %s)", (chunk_id, lease_id, requests)
        )


def test_a_job_waits_for_its_share_of_every_other_job(conn: psycopg.Connection[Any]) -> None:
    seed_two_jobs(conn)
    rows = eta(conn)
    assert list(rows) == ["AAPL h1", "MSFT h1"]
    aapl, msft = rows["AAPL h1"], rows["MSFT h1"]
    # MSFT: its 3 requests and 3 of AAPL's (round-robin); AAPL: its 10 and MSFT's 3
    assert (msft["remaining_chunks"], msft["remaining_requests"], msft["requests_ahead"]) == (3, 3, 3)
    assert (aapl["remaining_chunks"], aapl["remaining_requests"], aapl["requests_ahead"]) == (10, 10, 3)
    assert msft["eta_seconds"] == (3 + 3) * POLYGON
    assert aapl["eta_seconds"] == (10 + 3) * POLYGON
    assert (aapl["provider"], aapl["paused_until"]) == ("polygon", None)
    now = scalar(conn, "SELECT now()")
    assert now < aapl["eta_at"] <= now + dt.timedelta(seconds=13 * POLYGON)


def test_ticker_filter_keeps_the_queue_of_every_job(conn: psycopg.Connection[Any]) -> None:
    seed_two_jobs(conn)
    rows = eta(conn, [" aapl"])
    assert list(rows) == ["AAPL h1"]
    assert (rows["AAPL h1"]["requests_ahead"], rows["AAPL h1"]["eta_seconds"]) == (3, 13 * POLYGON)
    assert eta(conn, ["NVDA"]) == {}
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="invalid ticker"):
        eta(conn, ["'; DROP"])


@pytest.mark.parametrize("tickers", [["'; DROP"], [None], ["AAPL", "A B"]])
def test_an_invalid_ticker_is_refused_where_no_job_exists(
    conn: psycopg.Connection[Any], tickers: list[str | None]
) -> None:
    # found by tests/faults: with no job the filter never looked at the tickers: no rows, no error
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=r"invalid ticker|ticker is missing"):
        conn.execute("SELECT * FROM pgbars.backfill_eta(%s::text[])", (tickers,))


def test_paused_provider_adds_the_pause(conn: psycopg.Connection[Any]) -> None:
    seed_two_jobs(conn)
    until = scalar(conn, "SELECT pgbars.pause_provider('polygon', now() + interval '10 minutes')")
    rows = eta(conn)
    for key, requests in (("MSFT h1", 6), ("AAPL h1", 13)):
        assert rows[key]["paused_until"] == until
        assert rows[key]["eta_at"] == until + dt.timedelta(seconds=requests * POLYGON)
        assert rows[key]["eta_seconds"] == pytest.approx(600 + requests * POLYGON, abs=5)
    conn.execute("UPDATE pgbars.providers SET paused_until = now() - interval '1 second'")
    assert eta(conn)["MSFT h1"]["paused_until"] is None
    assert eta(conn)["MSFT h1"]["eta_seconds"] == 6 * POLYGON


def test_running_chunks_remain_and_done_ones_leave_the_queue(conn: psycopg.Connection[Any]) -> None:
    seed_two_jobs(conn)
    complete(conn, claim(conn, "MSFT", 2))
    claim(conn, "MSFT", 1)  # leased: still to do
    rows = eta(conn)
    assert (rows["MSFT h1"]["remaining_chunks"], rows["MSFT h1"]["requests_ahead"]) == (1, 1)
    assert rows["MSFT h1"]["eta_seconds"] == 2 * POLYGON
    assert rows["AAPL h1"]["eta_seconds"] == (10 + 1) * POLYGON


def test_a_done_job_has_no_eta(conn: psycopg.Connection[Any]) -> None:
    seed_two_jobs(conn)
    complete(conn, claim(conn, "MSFT", 3))
    rows = eta(conn)
    assert {k: rows["MSFT h1"][k] for k in ("provider", "remaining_chunks", "remaining_requests")} == {
        "provider": None,
        "remaining_chunks": 0,
        "remaining_requests": 0,
    }
    assert (rows["MSFT h1"]["requests_ahead"], rows["MSFT h1"]["eta_seconds"], rows["MSFT h1"]["eta_at"]) == (
        0,
        None,
        None,
    )
    assert (rows["AAPL h1"]["requests_ahead"], rows["AAPL h1"]["eta_seconds"]) == (0, 10 * POLYGON)


def test_failed_chunks_are_not_remaining(conn: psycopg.Connection[Any]) -> None:
    seed_two_jobs(conn)
    for chunk_id, lease_id in claim(conn, "MSFT", 2):
        conn.execute("SELECT pgbars.fail_backfill_chunk(%s, %s, 'HTTP 403', false)", (chunk_id, lease_id))
    rows = eta(conn)
    assert (rows["MSFT h1"]["remaining_requests"], rows["MSFT h1"]["eta_seconds"]) == (1, 2 * POLYGON)
    assert rows["AAPL h1"]["eta_seconds"] == (10 + 1) * POLYGON
    complete(conn, claim(conn, "MSFT", 1))
    assert eta(conn)["MSFT h1"]["eta_at"] is None  # done_with_errors: nothing left to wait for


def test_paginated_jobs_cost_their_average_requests_per_chunk(conn: psycopg.Connection[Any]) -> None:
    seed_two_jobs(conn)
    complete(conn, claim(conn, "AAPL", 1), requests=2)
    complete(conn, claim(conn, "AAPL", 1), requests=3)
    rows = eta(conn)
    # 8 chunks at 2.5 requests each; MSFT has 3 requests, all served before AAPL's last
    assert (rows["AAPL h1"]["remaining_chunks"], rows["AAPL h1"]["remaining_requests"]) == (8, 20)
    assert rows["AAPL h1"]["eta_seconds"] == (20 + 3) * POLYGON
    assert rows["MSFT h1"]["eta_seconds"] == (3 + 3) * POLYGON


def test_a_job_on_two_providers_takes_the_later_one(conn: psycopg.Connection[Any]) -> None:
    seed_two_jobs(conn)
    newest_two = [c["id"] for c in chunks(conn, "AAPL")[-2:]]
    conn.execute("UPDATE pgbars.backfill_chunks SET provider = 'yahoo' WHERE id = ANY(%s)", (newest_two,))
    row = eta(conn)["AAPL h1"]
    # polygon: 8 + MSFT's 3 requests at 12 s; yahoo: 2 requests at 2 s
    assert (row["provider"], row["remaining_chunks"], row["remaining_requests"]) == ("polygon", 10, 10)
    assert (row["requests_ahead"], row["eta_seconds"]) == (3, (8 + 3) * POLYGON)

    until = scalar(conn, "SELECT pgbars.pause_provider('yahoo', now() + interval '5 minutes')")
    row = eta(conn)["AAPL h1"]
    assert (row["provider"], row["requests_ahead"], row["paused_until"]) == ("yahoo", 0, until)
    assert row["eta_at"] == until + dt.timedelta(seconds=2 * YAHOO)

    conn.execute("UPDATE pgbars.providers SET enabled = false WHERE name = 'yahoo'")
    row = eta(conn)["AAPL h1"]
    assert (row["provider"], row["remaining_requests"], row["eta_at"]) == ("yahoo", 10, None)
    assert eta(conn)["MSFT h1"]["eta_seconds"] == 6 * POLYGON


def test_retry_backoff_is_a_floor(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 31))
    ((chunk_id, lease_id),) = claim(conn, "AAPL", 1)
    conn.execute("SELECT pgbars.fail_backfill_chunk(%s, %s, 'HTTP 502')", (chunk_id, lease_id))
    due = scalar(conn, "SELECT next_attempt_at FROM pgbars.backfill_chunks WHERE id = %s", (chunk_id,))
    row = eta(conn)["AAPL h1"]
    assert row["remaining_requests"] == 1
    assert row["eta_at"] == due + dt.timedelta(seconds=POLYGON)


def test_reader_and_worker_may_ask(conn: psycopg.Connection[Any]) -> None:
    seed_two_jobs(conn)
    for role in ("pgbars_reader", "pgbars_worker"):
        conn.execute(f"SET ROLE {role}")
        try:
            assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_eta()") == 2
        finally:
            conn.execute("RESET ROLE")


def test_stays_fast_with_a_long_queue(conn: psycopg.Connection[Any]) -> None:
    """500 jobs of 10 chunks (5,000 remaining): one ticker's ETA reads the whole queue, in ms."""
    set_clock(conn)
    seed(conn, "AAPL")
    conn.execute(
        "WITH s AS (INSERT INTO pgbars.symbols (ticker) SELECT 'T' || i FROM generate_series(1, 499) AS i"
        " RETURNING id), j AS (INSERT INTO pgbars.backfill_jobs (symbol_id, timeframe)"
        " SELECT id, 'h1' FROM s RETURNING id)"
        " INSERT INTO pgbars.backfill_chunks (job_id, provider, first_session, last_session, session_count)"
        " SELECT j.id, c.provider, c.first_session, c.last_session, c.session_count"
        " FROM j CROSS JOIN pgbars.backfill_chunks AS c"
    )
    conn.execute("VACUUM ANALYZE pgbars.backfill_chunks")
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_chunks") == 5000
    started = time.perf_counter()
    rows = eta(conn, ["AAPL"])
    elapsed = time.perf_counter() - started
    assert (rows["AAPL h1"]["requests_ahead"], rows["AAPL h1"]["eta_seconds"]) == (4990, 5000 * POLYGON)
    assert elapsed < 0.25, elapsed  # about 10 ms here
