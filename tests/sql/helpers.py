"""Small helpers shared by the SQL tests."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

# 2025-01-02 12:00 New York: the last completed session is 2024-12-31, so a
# default 2-year window is 2023-01-01 .. 2024-12-31 (502 XNYS sessions).
CLOCK = "2025-01-02 12:00 America/New_York"

# ohlc_bars_v2's partitions (migration 0016): one per year, and the two open ends
BAR_PARTITION = re.compile(r"ohlc_bars_v2_(y[0-9]{4}|earlier|later)")


def bar_reads(nodes: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The nodes of an EXPLAIN (FORMAT JSON) plan that read a partition of ohlc_bars_v2."""
    return [n for n in nodes if BAR_PARTITION.fullmatch(n.get("Relation Name") or "")]


def reads_primary_key(scan: dict[str, Any]) -> bool:
    """The scan reads its partition by that partition's primary key."""
    return bool(scan.get("Index Name") == f"{scan['Relation Name']}_pkey")


def set_clock(conn: psycopg.Connection[Any], at: str = CLOCK) -> None:
    """Make pgbars plan as if it were `at` (the planning clock, pgbars._now())."""
    conn.execute("SELECT set_config('pgbars.now', %s, false)", (at,))


def scalar(conn: psycopg.Connection[Any], query: str, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def seed(
    conn: psycopg.Connection[Any], ticker: str, timeframes: list[str] | None = None, **window: Any
) -> dict[str, Any]:
    """request_backfill(ticker, timeframes, start, end, years) -> its jsonb."""
    result = scalar(
        conn,
        "SELECT pgbars.request_backfill(%s, %s, %s, %s, %s)",
        (
            ticker,
            ["h1"] if timeframes is None else timeframes,
            window.get("start"),
            window.get("end"),
            window.get("years", 2),
        ),
    )
    assert isinstance(result, dict)
    return result


def chunks(conn: psycopg.Connection[Any], ticker: str, timeframe: str = "h1") -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return cur.execute(
        "SELECT c.* FROM pgbars.backfill_chunks c JOIN pgbars.backfill_jobs j ON j.id = c.job_id"
        " JOIN pgbars.symbols s ON s.id = j.symbol_id WHERE s.ticker = %s AND j.timeframe = %s"
        " ORDER BY c.first_session",
        (ticker, timeframe),
    ).fetchall()


def chunk(conn: psycopg.Connection[Any], chunk_id: int) -> dict[str, Any]:
    """One backfill_chunks row by id."""
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    row = cur.execute("SELECT * FROM pgbars.backfill_chunks WHERE id = %s", (chunk_id,)).fetchone()
    assert row is not None
    return row


def stage(
    conn: psycopg.Connection[Any],
    lease_id: Any,
    bars: Iterable[Sequence[Any]] = (),
    rejects: Iterable[tuple[Any, dict[str, object], str]] = (),
) -> None:
    """What the worker COPYs before store_lease: a lease's bars (ts, open, high, low, close,
    volume[, vwap[, trade_count]]) and refused rows (ts, raw, reason), under its id."""
    cur = conn.cursor()
    rows = [(lease_id, *bar, *[None] * (8 - len(bar))) for bar in bars]
    if rows:
        cur.executemany(
            "INSERT INTO pgbars.staged_bars (lease_id, ts, open, high, low, close, volume, vwap, trade_count)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            rows,
        )
    refused = [(lease_id, ts, Jsonb(raw), reason) for ts, raw, reason in rejects]
    if refused:
        cur.executemany(
            "INSERT INTO pgbars.staged_rejects (lease_id, ts, raw, reason) VALUES (%s, %s, %s, %s)", refused
        )


@contextlib.contextmanager
def as_role(conn: psycopg.Connection[Any], role: str) -> Iterator[None]:
    """Run the block as `role` (SET ROLE), then back."""
    conn.execute(f"SET ROLE {role}")
    try:
        yield
    finally:
        conn.execute("RESET ROLE")
