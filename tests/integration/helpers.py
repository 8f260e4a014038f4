"""Shared by the integration tests: the clock, credentials, seeding and reading back."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

import psycopg
from psycopg.rows import dict_row

from worker import work
from worker.emulator import synthetic

POLYGON_KEY = "pk-int-Vb7Qm2Xc9Lp4"
TRADIER_TOKEN = "tt-int-Hn3Rj8Wd5Ks1"
# Planning clock of every database session: the last completed session is
# 2024-12-31, so a 2-year h1 window is 2023-01-01 .. 2024-12-31.
CLOCK = "2025-01-02 12:00 America/New_York"
# The emulators' "now" (Yahoo's and Tradier's lookbacks count from it).
SERVER_NOW = dt.datetime(2025, 1, 2, 17, 0, tzinfo=dt.UTC)

Row = tuple[dt.datetime, float, float, float, float, int, float | None, int | None]


def watch(conn: psycopg.Connection[Any], ticker: str) -> None:
    """Add `ticker` to the default watchlist: the trigger seeds 2 years of h1."""
    conn.execute("SELECT pgbars.add_to_watchlist(%s)", (ticker,))


def request(
    conn: psycopg.Connection[Any], ticker: str, timeframe: str, first: dt.date, last: dt.date
) -> list[int]:
    """Seed one window; returns the ids of its chunks, oldest first."""
    conn.execute("SELECT pgbars.request_backfill(%s, %s, %s, %s, NULL)", (ticker, [timeframe], first, last))
    return chunk_ids(conn, ticker, timeframe)


def chunk_ids(conn: psycopg.Connection[Any], ticker: str, timeframe: str) -> list[int]:
    return [row["id"] for row in chunk_rows(conn, ticker, timeframe)]


def chunk_rows(conn: psycopg.Connection[Any], ticker: str, timeframe: str = "h1") -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        "SELECT c.* FROM pgbars.backfill_chunks AS c"
        " JOIN pgbars.backfill_jobs AS j ON j.id = c.job_id"
        " JOIN pgbars.symbols AS s ON s.id = j.symbol_id"
        " WHERE s.ticker = %s AND j.timeframe = %s ORDER BY c.first_session",
        (ticker, timeframe),
    ).fetchall()


def stored(
    conn: psycopg.Connection[Any], ticker: str, timeframe: str, provider: str | None = None
) -> list[Row]:
    """The stored bars, in time order, as the tuples `served` returns."""
    rows = conn.execute(
        "SELECT b.ts, b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trade_count"
        " FROM pgbars.ohlc_bars_v2 AS b JOIN pgbars.symbols AS s ON s.id = b.symbol_id"
        " WHERE s.ticker = %s AND b.timeframe = %s AND (%s::text IS NULL OR b.provider = %s)"
        " ORDER BY b.ts",
        (ticker, timeframe, provider, provider),
    ).fetchall()
    return [tuple(row) for row in rows]


def served(ticker: str, timeframe: str, first: dt.date, last: dt.date) -> list[Row]:
    """What the emulators serve for those sessions (their one source of bars)."""
    return [
        (b.ts, b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trade_count)
        for b in synthetic.bars(ticker, timeframe, first, last)
    ]


def scalar(conn: psycopg.Connection[Any], query: str, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def config(**overrides: Any) -> work.WorkConfig:
    """A short-budget run with a unique worker name."""
    values: dict[str, Any] = {"max_seconds": 20.0, "worker_name": f"test-{uuid.uuid4().hex[:6]}"}
    values.update(overrides)
    return work.WorkConfig(**values)


def work_log(caplog: Any) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("pgbars"))


def capture_worker_logs(caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="pgbars")
