"""backfill_lanes: the chunk queue kept from the chunks, and the claim's fairness at 5,000 jobs."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.rows import dict_row

from tests.sql.helpers import scalar, seed, set_clock

# The lanes as the chunks say they are: the aggregation of migration 0015, compared with the
# table the trigger keeps.
FROM_CHUNKS = """
SELECT
    c.job_id,
    c.provider,
    count(*)::integer AS chunks,
    (count(*) FILTER (WHERE c.status = 'done'))::integer AS done,
    (count(*) FILTER (WHERE c.status = 'failed'))::integer AS failed,
    (count(*) FILTER (WHERE c.status = 'running'))::integer AS running,
    sum(c.session_count) AS sessions_total,
    coalesce(sum(c.session_count) FILTER (WHERE c.status = 'done'), 0) AS sessions_done,
    coalesce(sum(c.bars_written), 0) AS bars_written,
    coalesce(sum(c.bars_rejected), 0) AS bars_rejected,
    (count(*) FILTER (WHERE c.status = 'done' AND c.bars_written = 0))::integer AS empty_chunks,
    coalesce(sum(c.requests_used) FILTER (WHERE c.status = 'done'), 0) AS requests_done,
    (count(c.requests_used) FILTER (WHERE c.status = 'done'))::integer AS done_with_requests,
    min(c.first_session) AS first_session,
    max(c.last_session) AS last_session,
    min(c.next_attempt_at) FILTER (WHERE c.status = 'pending') AS next_attempt_at,
    max(c.next_attempt_at) FILTER (WHERE c.status = 'pending') AS last_due_at,
    min(c.lease_expires_at) FILTER (WHERE c.status = 'running') AS lease_expires_at,
    max(c.claimed_at) AS last_claimed_at,
    max(c.completed_at) AS last_completed_at,
    least(
        min(c.next_attempt_at) FILTER (WHERE c.status = 'pending'),
        min(c.lease_expires_at) FILTER (WHERE c.status = 'running')
    ) AS due_at
FROM pgbars.backfill_chunks AS c
GROUP BY c.job_id, c.provider
ORDER BY c.job_id, c.provider
"""


def assert_lanes_match_chunks(conn: psycopg.Connection[Any]) -> None:
    cur = conn.cursor(row_factory=dict_row)
    expected = cur.execute(FROM_CHUNKS).fetchall()
    kept = cur.execute("SELECT * FROM pgbars.backfill_lanes ORDER BY job_id, provider").fetchall()
    assert kept == expected


def claim(conn: psycopg.Connection[Any], limit: int, worker: str = "w1") -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        "SELECT * FROM pgbars.claim_backfill_chunks(%s, '{polygon,yahoo}', %s, '5 minutes')", (worker, limit)
    ).fetchall()


def test_lanes_follow_every_change_of_the_chunks(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1", "d1"])
    seed(conn, "MSFT", ["h1"], years=1)
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_lanes") == 3
    assert_lanes_match_chunks(conn)

    first, second, third, fourth = claim(conn, 4)
    assert_lanes_match_chunks(conn)
    conn.execute(
        "SELECT pgbars.complete_backfill_chunk(%s, %s, 120, 3, 2)", (first["chunk_id"], first["lease_id"])
    )
    conn.execute(
        "SELECT pgbars.complete_backfill_chunk(%s, %s, 0, 0, 1)", (second["chunk_id"], second["lease_id"])
    )
    conn.execute(
        "SELECT pgbars.fail_backfill_chunk(%s, %s, 'boom', true)", (third["chunk_id"], third["lease_id"])
    )
    conn.execute(
        "SELECT pgbars.release_backfill_chunk(%s, %s, NULL, 'shutting down')",
        (fourth["chunk_id"], fourth["lease_id"]),
    )
    assert_lanes_match_chunks(conn)

    # a chunk moved to another provider (d1: yahoo's history route first, polygon's next)
    seed(conn, "GOOG", ["d1"])
    moved = next(row for row in claim(conn, 20) if row["ticker"] == "GOOG")
    conn.execute(
        "SELECT pgbars.reroute_backfill_chunk(%s, %s, 'not on this plan')",
        (moved["chunk_id"], moved["lease_id"]),
    )
    now_at = scalar(conn, "SELECT provider FROM pgbars.backfill_chunks WHERE id = %s", (moved["chunk_id"],))
    assert now_at != moved["provider"]
    lanes = conn.execute("SELECT provider FROM pgbars.backfill_lanes WHERE job_id = %s", (moved["job_id"],))
    assert [row[0] for row in lanes.fetchall()] == [now_at]  # its only chunk left the old lane
    assert_lanes_match_chunks(conn)

    # an expired lease: still running in the lane, due again
    (held,) = claim(conn, 1)
    conn.execute(
        "UPDATE pgbars.backfill_chunks SET lease_expires_at = now() - interval '1 second' WHERE id = %s",
        (held["chunk_id"],),
    )
    assert_lanes_match_chunks(conn)

    # a symbol deleted: its jobs, chunks and lanes go
    conn.execute("DELETE FROM pgbars.symbols WHERE ticker = 'MSFT'")
    assert_lanes_match_chunks(conn)
    assert scalar(conn, "SELECT count(DISTINCT job_id) FROM pgbars.backfill_lanes") == 3  # AAPL's 2, GOOG's


def test_claims_are_fair_across_5000_jobs(conn: psycopg.Connection[Any]) -> None:
    """5,000 jobs of 3 chunks each, claimed 10 at a time: every job gets its newest chunk before
    any job gets a second, the older job first; then the second round, in the same order."""
    jobs = 5000
    sessions = [
        row[0]
        for row in conn.execute(
            "SELECT session_date FROM pgbars.market_sessions"
            " WHERE session_date BETWEEN '2024-12-02' AND '2024-12-31' ORDER BY session_date LIMIT 3"
        ).fetchall()
    ]
    conn.execute(
        "INSERT INTO pgbars.symbols (ticker)"
        " SELECT 'F' || lpad(n::text, 4, '0') FROM generate_series(1, %s) AS n",
        (jobs,),
    )
    conn.execute(
        "INSERT INTO pgbars.backfill_jobs (symbol_id, timeframe)"
        " SELECT id, 'h1' FROM pgbars.symbols WHERE ticker LIKE 'F%%' ORDER BY ticker"
    )
    conn.execute(
        "INSERT INTO pgbars.backfill_chunks (job_id, provider, first_session, last_session, session_count)"
        " SELECT j.id, 'polygon', d, d, 1 FROM pgbars.backfill_jobs AS j CROSS JOIN unnest(%s::date[]) AS d",
        (sessions,),
    )
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_lanes WHERE due_at IS NOT NULL") == jobs
    job_ids = [row[0] for row in conn.execute("SELECT id FROM pgbars.backfill_jobs ORDER BY id").fetchall()]

    # each claim takes the next ten jobs: each job once, the older first
    first_claims = [claim(conn, 10) for _ in range(jobs // 10)]
    assert [sorted(r["job_id"] for r in rows) for rows in first_claims] == [
        job_ids[at : at + 10] for at in range(0, jobs, 10)
    ]
    first_round = [row for rows in first_claims for row in rows]
    assert {r["last_session"] for r in first_round} == {sessions[-1]}  # each job's newest chunk

    second_claims = [claim(conn, 10, "w2") for _ in range(jobs // 10)]
    assert [sorted(r["job_id"] for r in rows) for rows in second_claims] == [
        job_ids[at : at + 10] for at in range(0, jobs, 10)
    ]
    second_round = [row for rows in second_claims for row in rows]
    assert {r["last_session"] for r in second_round} == {sessions[-2]}

    taken = Counter(r["job_id"] for r in first_round + second_round)
    assert set(taken.values()) == {2}
    assert_lanes_match_chunks(conn)


def test_a_claim_takes_the_lanes_in_rotation_when_jobs_are_fewer_than_the_limit(
    conn: psycopg.Connection[Any],
) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1"])  # 10 chunks
    seed(conn, "MSFT", ["h1"], start=dt.date(2024, 11, 1), end=dt.date(2024, 12, 31))  # 1-2 chunks
    rows = claim(conn, 4)
    tickers = [r["ticker"] for r in sorted(rows, key=lambda r: r["chunk_id"])]
    counts = Counter(tickers)
    msft_chunks = scalar(
        conn,
        "SELECT count(*) FROM pgbars.backfill_chunks c JOIN pgbars.backfill_jobs j ON j.id = c.job_id"
        " JOIN pgbars.symbols s ON s.id = j.symbol_id WHERE s.ticker = 'MSFT'",
    )
    assert counts["MSFT"] == min(2, msft_chunks)
    assert counts["AAPL"] == 4 - counts["MSFT"]


def test_two_transactions_changing_one_lane_lose_nothing(
    conn: psycopg.Connection[Any], connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    """The second writer of a lane waits for the first (the job's lock) and counts after it
    committed: a count taken before would overwrite the first's change."""
    set_clock(conn)
    seed(conn, "AAPL", ["h1"])
    first, second = claim(conn, 2)
    assert first["job_id"] == second["job_id"]
    one, two = connect(), connect()
    pid = scalar(two, "SELECT pg_backend_pid()")
    one.execute("BEGIN")
    one.execute(
        "SELECT pgbars.complete_backfill_chunk(%s, %s, 10, 0, 1)", (first["chunk_id"], first["lease_id"])
    )
    done = threading.Event()

    def complete_second() -> None:
        with two.transaction():
            two.execute(
                "SELECT pgbars.fail_backfill_chunk(%s, %s, 'boom', true)",
                (second["chunk_id"], second["lease_id"]),
            )
        done.set()

    worker = threading.Thread(target=complete_second)
    worker.start()
    deadline = time.monotonic() + 10
    while scalar(conn, "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)) != "Lock":
        assert time.monotonic() < deadline, "the second writer never waited for the first"
        time.sleep(0.02)
    assert not done.is_set()
    one.execute("COMMIT")
    worker.join(10)
    assert done.is_set()
    assert_lanes_match_chunks(conn)
    lane = conn.cursor(row_factory=dict_row).execute("SELECT * FROM pgbars.backfill_lanes").fetchone()
    assert lane is not None and (lane["done"], lane["running"]) == (1, 0)


def test_a_truncate_of_the_chunks_empties_the_lanes(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1"])
    conn.execute("TRUNCATE pgbars.backfill_chunks CASCADE")  # rejected_bars refers to chunks
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_lanes") == 0
    assert_lanes_match_chunks(conn)


def test_a_lease_that_expired_is_claimed_before_new_work(conn: psycopg.Connection[Any]) -> None:
    """Its lane still counts the expired lease as running; the claim takes expired leases first,
    so a stopped worker's chunk does not wait behind every other lane."""
    set_clock(conn)
    for ticker in ("AAPL", "MSFT", "GOOG"):
        seed(conn, ticker, ["h1"])
    (held,) = claim(conn, 1)
    conn.execute(
        "UPDATE pgbars.backfill_chunks SET lease_expires_at = now() - interval '1 second' WHERE id = %s",
        (held["chunk_id"],),
    )
    (again,) = claim(conn, 1, "w2")
    assert again["chunk_id"] == held["chunk_id"] and again["attempt"] == 2
