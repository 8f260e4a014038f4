"""pgbars.claim_backfill_chunks: leases, attempts, fairness, and races between claimers."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.sql.helpers import chunk, chunks, scalar, seed, set_clock

Connect = Callable[[], psycopg.Connection[Any]]

TICKERS = ["AAPL", "MSFT", "GOOG", "AMZN", "META", "NVDA", "TSLA", "NFLX", "AMD", "INTC"]


def claim(
    conn: psycopg.Connection[Any],
    worker: str = "w1",
    providers: list[str] | None = None,
    limit: int = 1,
    lease: str = "5 minutes",
) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        "SELECT * FROM pgbars.claim_backfill_chunks(%s, %s, %s, %s::interval)",
        (worker, ["polygon", "yahoo"] if providers is None else providers, limit, lease),
    ).fetchall()


def expire_lease(conn: psycopg.Connection[Any], chunk_id: int) -> None:
    conn.execute(
        "UPDATE pgbars.backfill_chunks SET lease_expires_at = now() - interval '1 second' WHERE id = %s",
        (chunk_id,),
    )


def seed_one_chunk(conn: psycopg.Connection[Any], ticker: str = "AAPL") -> int:
    """One h1 chunk (December 2024) and its id."""
    set_clock(conn)
    seed(conn, ticker, ["h1"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 31))
    planned = chunks(conn, ticker)
    assert len(planned) == 1
    chunk_id = planned[0]["id"]
    assert isinstance(chunk_id, int)
    return chunk_id


def test_concurrent_claimers_each_get_distinct_chunks_and_all_are_claimed_once(
    conn: psycopg.Connection[Any], connect: Connect
) -> None:
    set_clock(conn)
    for ticker in TICKERS:
        seed(conn, ticker, ["h1"])
    all_ids = {r[0] for r in conn.execute("SELECT id FROM pgbars.backfill_chunks").fetchall()}
    assert len(all_ids) == 100

    claimers = 20
    connections = [connect() for _ in range(claimers)]
    barrier = threading.Barrier(claimers)
    claimed: list[list[int]] = [[] for _ in range(claimers)]
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            while True:
                rows = claim(connections[index], f"worker-{index}", ["polygon"], limit=3)
                if not rows:
                    return
                claimed[index].extend(r["chunk_id"] for r in rows)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(claimers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []

    every_claim = [chunk_id for ids in claimed for chunk_id in ids]
    assert Counter(every_claim).most_common(1)[0][1] == 1, "a chunk was handed out twice"
    assert set(every_claim) == all_ids
    # the work was actually shared, not done by one claimer
    assert sum(1 for ids in claimed if ids) > 1

    by_worker = {chunk_id: f"worker-{index}" for index, ids in enumerate(claimed) for chunk_id in ids}
    rows = conn.execute("SELECT id, status, attempts, claimed_by FROM pgbars.backfill_chunks").fetchall()
    assert {(r[0], r[1], r[2], r[3]) for r in rows} == {
        (chunk_id, "running", 1, worker) for chunk_id, worker in by_worker.items()
    }


def test_claim_takes_a_lease_and_counts_an_attempt(conn: psycopg.Connection[Any]) -> None:
    chunk_id = seed_one_chunk(conn)
    before = scalar(conn, "SELECT clock_timestamp()")
    (row,) = claim(conn, "worker-a", ["polygon"], lease="2 minutes")
    after = scalar(conn, "SELECT clock_timestamp()")

    assert row["chunk_id"] == chunk_id
    assert row["attempt"] == 1
    assert row["ticker"] == "AAPL"
    assert row["timeframe"] == "h1"
    assert row["provider"] == "polygon"
    assert row["first_session"] == dt.date(2024, 12, 2)
    assert row["last_session"] == dt.date(2024, 12, 31)
    assert row["range_start"] < row["range_end"]

    stored = chunk(conn, chunk_id)
    assert stored["status"] == "running"
    assert stored["attempts"] == 1
    assert stored["claimed_by"] == "worker-a"
    assert stored["lease_id"] is not None
    assert stored["lease_id"] == row["lease_id"]
    assert stored["lease_expires_at"] == row["lease_expires_at"]
    lease = dt.timedelta(minutes=2)
    assert before + lease <= stored["lease_expires_at"] <= after + lease
    assert before <= stored["claimed_at"] <= after

    # a running chunk with a live lease is nobody else's to claim
    assert claim(conn, "worker-b", ["polygon"]) == []


def test_only_chunks_of_the_given_providers_are_claimed(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1", "d1"])  # h1 from polygon, d1 from yahoo

    yahoo = claim(conn, providers=["yahoo"], limit=50)
    assert [(r["timeframe"], r["provider"]) for r in yahoo] == [("d1", "yahoo")]

    polygon = claim(conn, providers=["polygon"], limit=50)
    assert len(polygon) == 10
    assert {(r["timeframe"], r["provider"]) for r in polygon} == {("h1", "polygon")}

    conn.execute(
        "UPDATE pgbars.backfill_chunks SET status = 'pending', lease_id = NULL, lease_expires_at = NULL"
    )
    assert claim(conn, providers=["tradier"], limit=50) == []
    assert claim(conn, providers=[], limit=50) == []


def test_paused_provider_is_skipped_until_the_pause_ends(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1", "d1"])
    conn.execute(
        "UPDATE pgbars.providers SET paused_until = clock_timestamp() + interval '300 milliseconds'"
        " WHERE name = 'polygon'"
    )
    paused_until = scalar(conn, "SELECT paused_until FROM pgbars.providers WHERE name = 'polygon'")

    rows = claim(conn, providers=["polygon", "yahoo"], limit=50)
    assert [r["provider"] for r in rows] == ["yahoo"]
    assert claim(conn, providers=["polygon"], limit=50) == []

    while scalar(conn, "SELECT clock_timestamp()") <= paused_until:
        time.sleep(0.05)
    assert len(claim(conn, providers=["polygon"], limit=50)) == 10


def test_disabled_provider_is_skipped(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1"])
    conn.execute("UPDATE pgbars.providers SET enabled = false WHERE name = 'polygon'")
    assert claim(conn, providers=["polygon"], limit=50) == []


def test_chunks_not_yet_due_are_not_claimed(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1"])
    planned = chunks(conn, "AAPL")
    later = [c["id"] for c in planned[:7]]
    conn.execute(
        "UPDATE pgbars.backfill_chunks SET next_attempt_at = now() + interval '1 hour' WHERE id = ANY(%s)",
        (later,),
    )

    rows = claim(conn, providers=["polygon"], limit=50)
    assert {r["chunk_id"] for r in rows} == {c["id"] for c in planned[7:]}
    assert claim(conn, providers=["polygon"], limit=50) == []

    conn.execute(
        "UPDATE pgbars.backfill_chunks SET next_attempt_at = now() - interval '1 second' WHERE id = ANY(%s)",
        (later,),
    )
    assert {r["chunk_id"] for r in claim(conn, providers=["polygon"], limit=50)} == set(later)


def test_claims_round_robin_across_jobs(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1"])  # job A: 10 chunks
    seed(conn, "MSFT", ["h1"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 31))  # 1 chunk
    seed(conn, "GOOG", ["h1"], years=1)  # job C: a few chunks
    many, few_b, few_c = (chunks(conn, t) for t in ("AAPL", "MSFT", "GOOG"))
    assert len(many) == 10
    assert len(few_b) == 1
    assert 1 < len(few_c) < len(many)

    rows = claim(conn, providers=["polygon"], limit=3)
    assert sorted(r["ticker"] for r in rows) == ["AAPL", "GOOG", "MSFT"]
    # each job's newest chunk first
    newest = {"AAPL": many[-1]["id"], "MSFT": few_b[-1]["id"], "GOOG": few_c[-1]["id"]}
    assert {r["ticker"]: r["chunk_id"] for r in rows} == newest


def test_older_job_goes_first_when_ranks_tie(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "MSFT", ["h1"], years=1)
    seed(conn, "AAPL", ["h1"], years=1)
    (row,) = claim(conn, providers=["polygon"], limit=1)
    assert row["ticker"] == "MSFT"


def test_successive_single_claims_round_robin_across_jobs(conn: psycopg.Connection[Any]) -> None:
    """Workers claim one chunk at a time (the default limit): a big, older job must not
    take every claim until it is drained while the other jobs wait."""
    set_clock(conn)
    seed(conn, "AAPL", ["h1"])  # job A: 10 chunks, the oldest job
    seed(conn, "MSFT", ["h1"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 31))
    seed(conn, "GOOG", ["h1"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 31))

    tickers = [claim(conn, f"worker-{i}", ["polygon"], limit=1)[0]["ticker"] for i in range(3)]
    assert sorted(tickers) == ["AAPL", "GOOG", "MSFT"]


def test_newest_sessions_first_within_a_job(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1"])
    planned = chunks(conn, "AAPL")
    by_newest = [c["id"] for c in sorted(planned, key=lambda c: c["last_session"], reverse=True)]

    first = claim(conn, providers=["polygon"], limit=3)
    assert [r["chunk_id"] for r in first] == by_newest[:3]
    second = claim(conn, providers=["polygon"], limit=1)
    assert [r["chunk_id"] for r in second] == by_newest[3:4]


def test_expired_lease_is_claimable_again_and_counts_an_attempt(
    conn: psycopg.Connection[Any],
) -> None:
    chunk_id = seed_one_chunk(conn)
    (first,) = claim(conn, "worker-a", ["polygon"], lease="1 millisecond")
    time.sleep(0.01)

    (second,) = claim(conn, "worker-b", ["polygon"])
    assert second["chunk_id"] == chunk_id
    assert second["attempt"] == 2
    assert second["lease_id"] != first["lease_id"]

    stored = chunk(conn, chunk_id)
    assert stored["attempts"] == 2
    assert stored["claimed_by"] == "worker-b"
    assert stored["lease_id"] == second["lease_id"]
    assert stored["status"] == "running"


def test_chunk_whose_last_allowed_lease_expired_fails_and_is_not_handed_out(
    conn: psycopg.Connection[Any],
) -> None:
    chunk_id = seed_one_chunk(conn)
    for attempt in (1, 2, 3):
        (row,) = claim(conn, f"worker-{attempt}", ["polygon"])
        assert row["chunk_id"] == chunk_id
        assert row["attempt"] == attempt
        expire_lease(conn, chunk_id)

    assert claim(conn, "worker-4", ["polygon"]) == []
    stored = chunk(conn, chunk_id)
    assert stored["status"] == "failed"
    assert stored["attempts"] == 3
    assert stored["lease_id"] is None
    assert stored["completed_at"] is not None
    assert "lease" in stored["last_error"]
    assert "worker-3" in stored["last_error"]
    assert claim(conn, "worker-5", ["polygon"]) == []


def test_live_lease_on_the_last_attempt_is_left_alone(conn: psycopg.Connection[Any]) -> None:
    chunk_id = seed_one_chunk(conn)
    for _ in range(2):
        claim(conn, providers=["polygon"])
        expire_lease(conn, chunk_id)
    (third,) = claim(conn, providers=["polygon"])
    assert third["attempt"] == 3

    assert claim(conn, "other", ["polygon"]) == []
    stored = chunk(conn, chunk_id)
    assert stored["status"] == "running"
    assert stored["lease_id"] == third["lease_id"]


@pytest.mark.parametrize(
    ("worker", "limit", "lease"),
    [
        ("", 1, "5 minutes"),
        ("   ", 1, "5 minutes"),
        (None, 1, "5 minutes"),
        ("w1", 0, "5 minutes"),
        ("w1", -1, "5 minutes"),
        ("w1", 1, "0 seconds"),
        ("w1", 1, "-1 second"),
    ],
)
def test_bad_arguments_raise_22023(
    conn: psycopg.Connection[Any], worker: str | None, limit: int, lease: str
) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1"])
    with pytest.raises(psycopg.Error) as raised:
        conn.execute(
            "SELECT * FROM pgbars.claim_backfill_chunks(%s, '{polygon}', %s, %s::interval)",
            (worker, limit, lease),
        )
    assert raised.value.sqlstate == "22023"
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_chunks WHERE attempts > 0") == 0


def claim_tickers(
    conn: psycopg.Connection[Any], tickers: list[str] | None, limit: int = 50
) -> list[dict[str, Any]]:
    """claim_backfill_chunks with p_tickers (the fifth argument)."""
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        "SELECT * FROM pgbars.claim_backfill_chunks('w1', '{polygon,yahoo}', %s, '5 minutes', %s)",
        (limit, tickers),
    ).fetchall()


def seed_two_tickers(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """One h1 chunk each for AAPL and MSFT; their ids by ticker."""
    return {ticker: seed_one_chunk(conn, ticker) for ticker in ("AAPL", "MSFT")}


def test_tickers_limit_the_claim_to_those_symbols(conn: psycopg.Connection[Any]) -> None:
    ids = seed_two_tickers(conn)

    rows = claim_tickers(conn, ["aapl"])
    assert [(r["ticker"], r["chunk_id"]) for r in rows] == [("AAPL", ids["AAPL"])]
    assert claim_tickers(conn, ["aapl"]) == []
    assert chunk(conn, ids["MSFT"])["status"] == "pending"
    assert chunk(conn, ids["MSFT"])["attempts"] == 0

    rows = claim_tickers(conn, [" Msft\n"])
    assert [(r["ticker"], r["chunk_id"]) for r in rows] == [("MSFT", ids["MSFT"])]


def test_null_tickers_claim_any_symbol(conn: psycopg.Connection[Any]) -> None:
    ids = seed_two_tickers(conn)
    rows = claim_tickers(conn, None)
    assert {r["chunk_id"] for r in rows} == set(ids.values())
    # the four-argument call (what callers before p_tickers send) is the same
    conn.execute(
        "UPDATE pgbars.backfill_chunks SET status = 'pending', lease_id = NULL, lease_expires_at = NULL"
    )
    assert {r["chunk_id"] for r in claim(conn, limit=50)} == set(ids.values())


def test_several_tickers_and_unknown_ones(conn: psycopg.Connection[Any]) -> None:
    ids = seed_two_tickers(conn)
    assert claim_tickers(conn, ["GOOG"]) == []
    assert claim_tickers(conn, []) == []
    rows = claim_tickers(conn, ["goog", "msft", "aapl"])
    assert {r["chunk_id"] for r in rows} == set(ids.values())


def test_ticker_filter_keeps_the_other_filters(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1", "d1"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 31))
    seed(conn, "MSFT", ["h1", "d1"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 31))
    cur = conn.cursor(row_factory=dict_row)
    rows = cur.execute(
        "SELECT * FROM pgbars.claim_backfill_chunks('w1', '{yahoo}', 50, '5 minutes', '{aapl}')"
    ).fetchall()
    assert [(r["ticker"], r["timeframe"], r["provider"]) for r in rows] == [("AAPL", "d1", "yahoo")]
    # a paused provider stays paused for a ticker run too
    conn.execute(
        "UPDATE pgbars.providers SET paused_until = now() + interval '1 hour' WHERE name = 'polygon'"
    )
    assert claim_tickers(conn, ["aapl"]) == []


def test_invalid_ticker_raises_22023_and_claims_nothing(conn: psycopg.Connection[Any]) -> None:
    seed_two_tickers(conn)
    with pytest.raises(psycopg.Error) as raised:
        claim_tickers(conn, ["aapl", "not a ticker"])
    assert raised.value.sqlstate == "22023"
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_chunks WHERE attempts > 0") == 0
