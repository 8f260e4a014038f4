"""pgbars.store_chunk_bars: staged bars upserted, refused rows quarantined, chunk done, under the lease."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.sql.helpers import as_role, chunk, chunks, scalar, seed, set_clock, stage
from tests.sql.test_roles import refused

# ts, open, high, low, close, volume, vwap, trade_count
Bar = tuple[dt.datetime, float, float, float, float, float, float | None, int | None]
# ts, raw, reason
Reject = tuple[dt.datetime | None, dict[str, Any], str]

UTC = dt.UTC
BARS: list[Bar] = [
    (dt.datetime(2024, 12, 30, 14, 0, tzinfo=UTC), 252.23, 253.5, 250.75, 252.2, 1_204_311.0, 252.1, 18_230),
    (dt.datetime(2024, 12, 30, 15, 0, tzinfo=UTC), 252.2, 252.9, 251.1, 251.95, 904_112.0, None, None),
    (dt.datetime(2024, 12, 31, 14, 0, tzinfo=UTC), 251.0, 251.4, 249.8, 250.42, 1_001_000.0, 250.6, 15_002),
]
REJECTS: list[Reject] = [
    (
        dt.datetime(2024, 12, 30, 16, 0, tzinfo=UTC),
        {"t": 1735574400000, "o": 252, "h": 250, "l": 251},
        "high < low",
    ),
    (None, {"o": 252, "h": 253}, "missing timestamp"),
]


def claim(conn: psycopg.Connection[Any], worker: str = "worker-a", limit: int = 1) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        "SELECT * FROM pgbars.claim_backfill_chunks(%s, '{polygon,yahoo}', %s)", (worker, limit)
    ).fetchall()


def claim_one(conn: psycopg.Connection[Any], worker: str = "worker-a") -> dict[str, Any]:
    (row,) = claim(conn, worker)
    return row


def store(
    conn: psycopg.Connection[Any],
    chunk_id: int,
    lease_id: uuid.UUID,
    bars: Sequence[Bar] = (),
    rejects: Sequence[Reject] = (),
    requests: int = 1,
) -> tuple[int, int, int]:
    """Stage and store in one transaction, as the worker does; returns (written, changed, rejected)."""
    with conn.transaction():
        stage(conn, lease_id, bars, rejects)
        row = conn.execute(
            "SELECT bars_written, bars_changed, bars_rejected FROM pgbars.store_chunk_bars(%s, %s, %s)",
            (chunk_id, lease_id, requests),
        ).fetchone()
    assert row is not None
    written, changed, rejected = row
    return written, changed, rejected


def reopen(conn: psycopg.Connection[Any], chunk_id: int) -> None:
    """Put a finished chunk back to pending, as if its range had to be fetched again."""
    conn.execute(
        "UPDATE pgbars.backfill_chunks SET status = 'pending', completed_at = NULL, next_attempt_at = now()"
        " WHERE id = %s",
        (chunk_id,),
    )


def stored_bars(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute("SELECT xmin::text AS xmin, b.* FROM pgbars.ohlc_bars_v2 AS b ORDER BY ts").fetchall()


def rejected_rows(conn: psycopg.Connection[Any], chunk_id: int | None = None) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        "SELECT * FROM pgbars.rejected_bars WHERE %(chunk)s::bigint IS NULL OR chunk_id = %(chunk)s"
        " ORDER BY ts NULLS LAST, id",
        {"chunk": chunk_id},
    ).fetchall()


def symbol_id(conn: psycopg.Connection[Any], ticker: str = "AAPL") -> uuid.UUID:
    found = scalar(conn, "SELECT id FROM pgbars.symbols WHERE ticker = %s", (ticker,))
    assert isinstance(found, uuid.UUID)
    return found


@pytest.mark.parametrize(
    ("timeframe", "provider", "is_provisional"),
    [("h1", "polygon", False), ("d1", "yahoo", False)],  # history, not today's provisional bars
)
def test_bars_are_stored_for_the_chunks_symbol_timeframe_and_provider_and_the_chunk_is_done(
    conn: psycopg.Connection[Any], timeframe: str, provider: str, is_provisional: bool
) -> None:
    set_clock(conn)
    seed(conn, "AAPL", [timeframe], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 31))
    (planned,) = chunks(conn, "AAPL", timeframe)
    row = claim_one(conn)
    assert (row["chunk_id"], row["provider"]) == (planned["id"], provider)
    before = scalar(conn, "SELECT clock_timestamp()")

    assert store(conn, row["chunk_id"], row["lease_id"], BARS, requests=2) == (3, 3, 0)

    bars = stored_bars(conn)
    assert [
        (b["ts"], b["open"], b["high"], b["low"], b["close"], b["volume"], b["vwap"], b["trade_count"])
        for b in bars
    ] == [(ts, o, h, lo, c, int(v), vwap, n) for ts, o, h, lo, c, v, vwap, n in BARS]
    for b in bars:
        assert b["symbol_id"] == symbol_id(conn)
        assert b["timeframe"] == timeframe
        assert b["provider"] == provider
        assert b["is_forecast"] is False
        assert b["is_provisional"] is is_provisional
        assert b["fetched_at"] >= before

    stored = chunk(conn, row["chunk_id"])
    assert stored["status"] == "done"
    assert (stored["bars_written"], stored["bars_rejected"], stored["requests_used"]) == (3, 0, 2)
    assert stored["completed_at"] >= before
    assert stored["lease_id"] is None
    assert stored["lease_expires_at"] is None
    assert stored["last_error"] is None
    assert stored["attempts"] == 1


def test_requests_default_to_one(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    row = claim_one(conn)
    with conn.transaction():
        conn.execute("SELECT * FROM pgbars.store_chunk_bars(%s, %s)", (one_chunk, row["lease_id"]))
    assert chunk(conn, one_chunk)["requests_used"] == 1


def test_storing_identical_bars_again_rewrites_nothing(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    assert store(conn, one_chunk, claim_one(conn)["lease_id"], BARS) == (3, 3, 0)
    first = stored_bars(conn)

    reopen(conn, one_chunk)
    # all valid bars of the answer count as written; none changed
    assert store(conn, one_chunk, claim_one(conn)["lease_id"], BARS) == (3, 0, 0)

    again = stored_bars(conn)
    # same row versions: no update ran (no dead tuples), fetched_at kept
    assert [(b["xmin"], b["fetched_at"]) for b in again] == [(b["xmin"], b["fetched_at"]) for b in first]
    assert chunk(conn, one_chunk)["bars_written"] == 3


def test_a_changed_bar_is_updated_and_only_that_one(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    assert store(conn, one_chunk, claim_one(conn)["lease_id"], BARS) == (3, 3, 0)
    first = stored_bars(conn)

    corrected = list(BARS)
    ts, o, h, lo, _, v, vwap, n = corrected[0]
    corrected[0] = (ts, o, h, lo, 252.25, v, vwap, n)  # close corrected
    ts, o, h, lo, c, v, _, _ = corrected[1]
    corrected[1] = (ts, o, h, lo, c, v, 251.9, 12_000)  # vwap and trade count were NULL
    reopen(conn, one_chunk)
    assert store(conn, one_chunk, claim_one(conn)["lease_id"], corrected) == (3, 2, 0)

    again = stored_bars(conn)
    assert again[0]["close"] == 252.25
    assert (again[1]["vwap"], again[1]["trade_count"]) == (251.9, 12_000)
    for old, new in zip(first[:2], again[:2], strict=True):
        assert new["xmin"] != old["xmin"]
        assert new["fetched_at"] > old["fetched_at"]
    assert (again[2]["xmin"], again[2]["fetched_at"]) == (first[2]["xmin"], first[2]["fetched_at"])


def test_a_value_that_became_null_counts_as_a_change(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    assert store(conn, one_chunk, claim_one(conn)["lease_id"], BARS[:1]) == (1, 1, 0)
    ts, o, h, lo, c, v, _, _ = BARS[0]
    reopen(conn, one_chunk)
    assert store(conn, one_chunk, claim_one(conn)["lease_id"], [(ts, o, h, lo, c, v, None, None)]) == (
        1,
        1,
        0,
    )
    (bar,) = stored_bars(conn)
    assert (bar["vwap"], bar["trade_count"]) == (None, None)


def test_rejected_rows_are_quarantined_with_their_raw_values_and_reason(
    conn: psycopg.Connection[Any], one_chunk: int
) -> None:
    row = claim_one(conn)
    assert store(conn, one_chunk, row["lease_id"], BARS, REJECTS) == (3, 3, 2)

    quarantined = rejected_rows(conn)
    assert [(r["ts"], r["raw"], r["reason"]) for r in quarantined] == REJECTS
    for r in quarantined:
        assert r["chunk_id"] == one_chunk
        assert r["symbol_id"] == symbol_id(conn)
        assert (r["timeframe"], r["provider"]) == ("h1", "polygon")
        assert r["rejected_at"] is not None
    # refused rows are never bars
    assert len(stored_bars(conn)) == 3

    stored = chunk(conn, one_chunk)
    assert (stored["status"], stored["bars_written"], stored["bars_rejected"]) == ("done", 3, 2)


def test_storing_a_chunk_again_replaces_its_rejected_rows_and_only_its_own(
    conn: psycopg.Connection[Any],
) -> None:
    set_clock(conn)
    for ticker in ("AAPL", "MSFT"):
        seed(conn, ticker, ["h1"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 31))
    leases = {r["ticker"]: (r["chunk_id"], r["lease_id"]) for r in claim(conn, limit=2)}
    aapl, msft = leases["AAPL"][0], leases["MSFT"][0]
    assert store(conn, *leases["AAPL"], BARS, REJECTS) == (3, 3, 2)
    assert store(conn, *leases["MSFT"], BARS, REJECTS[:1]) == (3, 3, 1)
    msft_rejects = rejected_rows(conn, msft)

    reopen(conn, aapl)
    (again,) = claim(conn, "worker-b")
    assert again["chunk_id"] == aapl
    newer: list[Reject] = [(dt.datetime(2024, 12, 31, 15, 0, tzinfo=UTC), {"v": -5}, "negative volume")]
    assert store(conn, aapl, again["lease_id"], BARS, newer) == (3, 0, 1)

    assert [(r["ts"], r["raw"], r["reason"]) for r in rejected_rows(conn, aapl)] == newer
    assert chunk(conn, aapl)["bars_rejected"] == 1
    assert rejected_rows(conn, msft) == msft_rejects

    # a clean answer empties the chunk's quarantine
    reopen(conn, aapl)
    assert store(conn, aapl, claim_one(conn)["lease_id"], BARS) == (3, 0, 0)
    assert rejected_rows(conn, aapl) == []
    assert chunk(conn, aapl)["bars_rejected"] == 0
    assert rejected_rows(conn, msft) == msft_rejects


def test_zero_staged_bars_is_done_with_zero_written(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    row = claim_one(conn)
    assert store(conn, one_chunk, row["lease_id"]) == (0, 0, 0)
    stored = chunk(conn, one_chunk)
    assert (stored["status"], stored["bars_written"], stored["bars_rejected"]) == ("done", 0, 0)
    assert stored_bars(conn) == []
    progress = conn.execute(
        "SELECT done, bars_written, empty_chunks FROM pgbars.backfill_progress WHERE symbol = 'AAPL'"
    ).fetchone()
    assert progress == (1, 0, 1)


def test_only_rejected_rows_is_done_with_zero_written(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    row = claim_one(conn)
    assert store(conn, one_chunk, row["lease_id"], (), REJECTS) == (0, 0, 2)
    stored = chunk(conn, one_chunk)
    assert (stored["status"], stored["bars_written"], stored["bars_rejected"]) == ("done", 0, 2)


def test_lost_lease_raises_pb001_and_writes_nothing(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    # a bar already stored by an earlier fetch
    assert store(conn, one_chunk, claim_one(conn)["lease_id"], BARS[:1]) == (1, 1, 0)
    first = stored_bars(conn)
    reopen(conn, one_chunk)

    a = claim_one(conn, "worker-a")
    conn.execute(
        "UPDATE pgbars.backfill_chunks SET lease_expires_at = now() - interval '1 second' WHERE id = %s",
        (one_chunk,),
    )
    b = claim_one(conn, "worker-b")
    assert a["chunk_id"] == b["chunk_id"] == one_chunk

    ts, o, h, lo, _, v, vwap, n = BARS[0]
    changed: list[Bar] = [(ts, o, h, lo, 252.9, v, vwap, n), *BARS[1:]]
    with pytest.raises(psycopg.Error) as raised:
        store(conn, one_chunk, a["lease_id"], changed, REJECTS)
    assert raised.value.sqlstate == "PB001"

    assert stored_bars(conn) == first
    assert rejected_rows(conn) == []
    stored = chunk(conn, one_chunk)
    assert (stored["status"], stored["lease_id"], stored["claimed_by"]) == (
        "running",
        b["lease_id"],
        "worker-b",
    )
    assert stored["bars_written"] == 1  # the earlier fetch's outcome, untouched

    # the staged rows went with the aborted transaction; B's own store goes through
    assert store(conn, one_chunk, b["lease_id"], changed) == (3, 3, 0)
    assert chunk(conn, one_chunk)["status"] == "done"


def test_wrong_lease_raises_pb001_and_writes_nothing(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    claim_one(conn)
    with pytest.raises(psycopg.Error) as raised:
        store(conn, one_chunk, uuid.uuid4(), BARS, REJECTS)
    assert raised.value.sqlstate == "PB001"
    assert stored_bars(conn) == []
    assert rejected_rows(conn) == []
    stored = chunk(conn, one_chunk)
    assert (stored["status"], stored["bars_written"]) == ("running", None)


def test_storing_a_finished_chunk_again_raises_pb001(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    row = claim_one(conn)
    assert store(conn, one_chunk, row["lease_id"], BARS[:1]) == (1, 1, 0)
    with pytest.raises(psycopg.Error) as raised:
        store(conn, one_chunk, row["lease_id"], BARS)
    assert raised.value.sqlstate == "PB001"
    assert len(stored_bars(conn)) == 1
    assert chunk(conn, one_chunk)["bars_written"] == 1


def store_as_worker(conn: psycopg.Connection[Any], lease_id: uuid.UUID) -> tuple[int, int, int]:
    """The worker role's one path: stage under the lease, then store_lease, one transaction."""
    with conn.transaction():
        stage(conn, lease_id, BARS, REJECTS)
        row = conn.execute("SELECT * FROM pgbars.store_lease(%s)", (lease_id,)).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


CLAIM_AS_WORKER = (
    "SELECT lease_id FROM pgbars.claim_leases('w', '{polygon,yahoo}', 1, '5 minutes', NULL, '{history}')"
)


def test_the_worker_role_stores_through_the_shared_staging_tables(
    conn: psycopg.Connection[Any], one_chunk: int
) -> None:
    with as_role(conn, "pgbars_worker"):
        (lease,) = conn.execute(CLAIM_AS_WORKER).fetchall()
        assert store_as_worker(conn, lease[0]) == (3, 3, 2)
        # it cannot read back what it or another worker staged
        refused(conn, "SELECT * FROM pgbars.staged_bars")
    assert chunk(conn, one_chunk)["status"] == "done"
    assert len(rejected_rows(conn, one_chunk)) == 2
    # store_lease took the staged rows with it
    assert scalar(conn, "SELECT count(*) FROM pgbars.staged_bars") == 0
    assert scalar(conn, "SELECT count(*) FROM pgbars.staged_rejects") == 0


def test_the_worker_role_gets_lease_lost_not_permission_denied(
    conn: psycopg.Connection[Any], one_chunk: int
) -> None:
    with as_role(conn, "pgbars_worker"):
        conn.execute(CLAIM_AS_WORKER)
        with pytest.raises(psycopg.Error) as raised:
            store_as_worker(conn, uuid.uuid4())
    assert raised.value.sqlstate == "PB001"
    assert stored_bars(conn) == []


def test_a_refused_row_is_quarantined_with_its_secrets_masked(
    conn: psycopg.Connection[Any], one_chunk: int
) -> None:
    raw = {
        "t": 1735574400000,
        "o": 252,
        "echo": "https://api.example/v2/aggs?apiKey=Sup3rSecretKey&limit=5",
        "headers": {"Authorization": "Bearer tok.en-123", "apiKey": 'k"ey\\1'},
        "note": "sent with bearer abc.def and token=xyz",
    }
    store(conn, one_chunk, claim_one(conn)["lease_id"], rejects=[(None, raw, "missing timestamp")])
    (stored,) = [row["raw"] for row in rejected_rows(conn, one_chunk)]
    text = str(stored)
    for secret in ("Sup3rSecretKey", "tok.en-123", 'k"ey', "abc.def", "xyz"):
        assert secret not in text
    assert stored["echo"] == "https://api.example/v2/aggs?apiKey=***&limit=5"
    assert stored["headers"] == {"Authorization": "***", "apiKey": "***"}
    assert stored["note"] == "sent with bearer *** and token=***"
    assert (stored["t"], stored["o"]) == (1735574400000, 252)
