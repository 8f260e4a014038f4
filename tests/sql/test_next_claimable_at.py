"""pgbars.next_claimable_at: when a worker with nothing to claim should look again."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.sql.helpers import chunk, chunks, scalar, seed, set_clock

DECEMBER = {"start": dt.date(2024, 12, 2), "end": dt.date(2024, 12, 31)}


def next_claimable(
    conn: psycopg.Connection[Any], providers: list[str], tickers: list[str] | None = None
) -> dt.datetime | None:
    at = scalar(conn, "SELECT pgbars.next_claimable_at(%s, %s)", (providers, tickers))
    assert at is None or isinstance(at, dt.datetime)
    return at


def claim(
    conn: psycopg.Connection[Any], providers: list[str], limit: int = 1, lease: str = "5 minutes"
) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        "SELECT * FROM pgbars.claim_backfill_chunks('w', %s, %s, %s::interval)", (providers, limit, lease)
    ).fetchall()


def postpone(conn: psycopg.Connection[Any], chunk_id: int, by: str) -> dt.datetime:
    """Set the chunk's next attempt `by` from now; returns it."""
    at = scalar(
        conn,
        "UPDATE pgbars.backfill_chunks SET next_attempt_at = now() + %s::interval WHERE id = %s"
        " RETURNING next_attempt_at",
        (by, chunk_id),
    )
    assert isinstance(at, dt.datetime)
    return at


def now(conn: psycopg.Connection[Any]) -> dt.datetime:
    at = scalar(conn, "SELECT now()")
    assert isinstance(at, dt.datetime)
    return at


def test_null_without_any_chunks(conn: psycopg.Connection[Any]) -> None:
    assert next_claimable(conn, ["polygon", "yahoo"]) is None


def test_null_when_every_chunk_is_done_or_failed(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1"], start=dt.date(2024, 10, 1), end=dt.date(2024, 12, 31))
    first, second = chunks(conn, "AAPL")
    rows = claim(conn, ["polygon"], limit=2)
    leases = {r["chunk_id"]: r["lease_id"] for r in rows}
    conn.execute("SELECT pgbars.complete_backfill_chunk(%s, %s, 10)", (first["id"], leases[first["id"]]))
    assert next_claimable(conn, ["polygon"]) is not None  # the other one is still leased
    conn.execute(
        "SELECT pgbars.fail_backfill_chunk(%s, %s, 'gone', false)", (second["id"], leases[second["id"]])
    )
    assert next_claimable(conn, ["polygon"]) is None


def test_pending_due_chunk_is_claimable_now(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    at = next_claimable(conn, ["polygon"])
    assert at is not None
    assert at == chunk(conn, one_chunk)["next_attempt_at"]
    assert at <= now(conn)
    assert len(claim(conn, ["polygon"])) == 1


def test_chunk_in_retry_backoff_is_claimable_when_the_backoff_ends(
    conn: psycopg.Connection[Any], one_chunk: int
) -> None:
    (row,) = claim(conn, ["polygon"])
    status = scalar(
        conn, "SELECT pgbars.fail_backfill_chunk(%s, %s, 'HTTP 502')", (one_chunk, row["lease_id"])
    )
    assert status == "pending"
    retry_at = chunk(conn, one_chunk)["next_attempt_at"]
    assert retry_at > now(conn)

    assert next_claimable(conn, ["polygon"]) == retry_at
    assert claim(conn, ["polygon"]) == []


def test_earliest_chunk_wins(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1"], start=dt.date(2024, 10, 1), end=dt.date(2024, 12, 31))
    first, second = chunks(conn, "AAPL")
    postpone(conn, first["id"], "2 hours")
    sooner = postpone(conn, second["id"], "10 minutes")
    assert next_claimable(conn, ["polygon"]) == sooner


@pytest.mark.parametrize("pause", ["30 minutes", "1 second"])
def test_paused_provider_counts_its_pause_when_it_ends_later(
    conn: psycopg.Connection[Any], one_chunk: int, pause: str
) -> None:
    retry_at = postpone(conn, one_chunk, "10 minutes")
    paused_until = scalar(conn, "SELECT pgbars.pause_provider('polygon', now() + %s::interval)", (pause,))
    assert next_claimable(conn, ["polygon"]) == max(retry_at, paused_until)


def test_pause_delays_a_due_chunk(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    paused_until = scalar(conn, "SELECT pgbars.pause_provider('polygon', now() + interval '5 minutes')")
    assert next_claimable(conn, ["polygon"]) == paused_until
    assert claim(conn, ["polygon"]) == []


def test_past_pause_is_ignored(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    conn.execute(
        "UPDATE pgbars.providers SET paused_until = now() - interval '1 hour' WHERE name = 'polygon'"
    )
    assert next_claimable(conn, ["polygon"]) == chunk(conn, one_chunk)["next_attempt_at"]


def test_running_chunk_is_claimable_when_its_lease_expires(
    conn: psycopg.Connection[Any], one_chunk: int
) -> None:
    (row,) = claim(conn, ["polygon"], lease="2 minutes")
    assert next_claimable(conn, ["polygon"]) == row["lease_expires_at"]
    assert row["lease_expires_at"] > now(conn)


def test_only_the_given_providers_count(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1", "d1"], **DECEMBER)  # h1 from polygon, d1 from yahoo
    (h1,) = chunks(conn, "AAPL", "h1")
    (d1,) = chunks(conn, "AAPL", "d1")
    polygon_at = postpone(conn, h1["id"], "1 hour")
    yahoo_at = postpone(conn, d1["id"], "2 hours")

    assert next_claimable(conn, ["polygon"]) == polygon_at
    assert next_claimable(conn, ["yahoo"]) == yahoo_at
    assert next_claimable(conn, ["yahoo", "polygon"]) == polygon_at
    assert next_claimable(conn, ["tradier"]) is None
    assert next_claimable(conn, []) is None


def test_disabled_provider_does_not_count(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    conn.execute("UPDATE pgbars.providers SET enabled = false WHERE name = 'polygon'")
    assert next_claimable(conn, ["polygon"]) is None


def test_only_the_given_tickers_count_normalised(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1"], **DECEMBER)
    seed(conn, "MSFT", ["h1"], **DECEMBER)
    (aapl,) = chunks(conn, "AAPL")
    (msft,) = chunks(conn, "MSFT")
    aapl_at = postpone(conn, aapl["id"], "2 hours")
    msft_at = postpone(conn, msft["id"], "1 hour")

    assert next_claimable(conn, ["polygon"], [" aapl"]) == aapl_at
    assert next_claimable(conn, ["polygon"], ["msft\t"]) == msft_at
    assert next_claimable(conn, ["polygon"], ["AAPL", "MSFT"]) == msft_at
    assert next_claimable(conn, ["polygon"], None) == msft_at
    assert next_claimable(conn, ["polygon"], ["GOOG"]) is None
    assert next_claimable(conn, ["polygon"], []) is None


def test_invalid_ticker_raises_22023(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    with pytest.raises(psycopg.Error) as raised:
        next_claimable(conn, ["polygon"], ["not a ticker"])
    assert raised.value.sqlstate == "22023"
