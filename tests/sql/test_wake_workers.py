"""pgbars._wake_workers: NOTIFY pgbars_wake when chunks are queued or given back claimable."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from tests.sql.helpers import seed, set_clock
from tests.sql.test_store_chunk_bars import claim_one


def listening(connect: Callable[[], psycopg.Connection[Any]]) -> psycopg.Connection[Any]:
    replica = connect()
    replica.execute("LISTEN pgbars_wake")
    return replica


def heard(replica: psycopg.Connection[Any], seconds: float = 0.3) -> list[str]:
    return [n.payload for n in replica.notifies(timeout=seconds, stop_after=50)]


def test_a_watchlist_add_wakes_the_replicas_once_at_commit(
    conn: psycopg.Connection[Any], connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    set_clock(conn)
    replica = listening(connect)
    with conn.transaction():
        for ticker in ("AAPL", "MSFT", "NVDA"):
            conn.execute("SELECT pgbars.add_to_watchlist(%s)", (ticker,))
        assert heard(replica, 0.1) == []
    # 30 chunks in three statements, one transaction: Postgres folds the identical messages
    assert heard(replica) == ["chunks"]


def test_request_backfill_wakes_and_a_request_with_nothing_new_does_not(
    conn: psycopg.Connection[Any], connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    set_clock(conn)
    replica = listening(connect)
    seed(conn, "AAPL", ["h1"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 31))
    assert heard(replica) == ["chunks"]
    seed(conn, "AAPL", ["h1"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 31))
    assert heard(replica) == []


@pytest.mark.parametrize(("not_before", "wakes"), [(None, True), ("1 minute", False)])
def test_a_chunk_given_back_claimable_at_once_wakes_the_replicas(
    conn: psycopg.Connection[Any],
    one_chunk: int,
    connect: Callable[[], psycopg.Connection[Any]],
    not_before: str | None,
    wakes: bool,
) -> None:
    lease = claim_one(conn)
    replica = listening(connect)
    conn.execute(
        "SELECT pgbars.release_backfill_chunk(%s, %s, now() + %s::interval, 'stopping')",
        (one_chunk, lease["lease_id"], not_before),
    )
    assert heard(replica) == (["released"] if wakes else [])


def test_claims_and_completions_wake_nobody(
    conn: psycopg.Connection[Any], one_chunk: int, connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    replica = listening(connect)
    lease = claim_one(conn)
    conn.execute("SELECT pgbars.complete_backfill_chunk(%s, %s, 0, 0, 1)", (one_chunk, lease["lease_id"]))
    assert heard(replica) == []
