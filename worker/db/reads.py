"""What the CLI asks and shows: watchlists, backfill requests, progress, coverage, repair."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

# -- watchlists and requests ---------------------------------------------------


async def normalize_ticker(conn: psycopg.AsyncConnection[Any], ticker: str) -> str:
    """The ticker as pgbars stores it (" brk-b" -> BRK.B); raises 22023 for an invalid one."""
    cur = await conn.execute("SELECT pgbars.normalize_ticker(%s)::text", (ticker,))
    row = await cur.fetchone()
    assert row is not None
    return str(row[0])


async def add_to_watchlist(
    conn: psycopg.AsyncConnection[Any], tickers: Sequence[str], watchlist: str
) -> list[dict[str, Any]]:
    """Add tickers in one statement (add_tickers_to_watchlist): one bad ticker adds none of them."""
    cur = await conn.execute(
        "SELECT r FROM pgbars.add_tickers_to_watchlist(%s, %s) AS r", (list(tickers), watchlist)
    )
    return [row[0] for row in await cur.fetchall()]


async def remove_from_watchlist(
    conn: psycopg.AsyncConnection[Any], tickers: Sequence[str], watchlist: str
) -> dict[str, bool]:
    removed = {}
    async with conn.transaction():
        for ticker in tickers:
            cur = await conn.execute(
                "SELECT pgbars.normalize_ticker(%s), pgbars.remove_from_watchlist(%s, %s)",
                (ticker, ticker, watchlist),
            )
            row = await cur.fetchone()
            assert row is not None
            removed[row[0]] = row[1]
    return removed


async def list_watchlists(conn: psycopg.AsyncConnection[Any], watchlist: str | None) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT w.name AS watchlist, s.ticker::text AS ticker, i.added_at"
        " FROM pgbars.watchlist_items AS i"
        " JOIN pgbars.watchlists AS w ON w.id = i.watchlist_id"
        " JOIN pgbars.symbols AS s ON s.id = i.symbol_id"
        " WHERE %(watchlist)s::text IS NULL OR w.name = %(watchlist)s"
        " ORDER BY w.name, s.ticker",
        {"watchlist": watchlist},
    )
    return await cur.fetchall()


async def request_backfill(
    conn: psycopg.AsyncConnection[Any],
    tickers: Sequence[str],
    timeframes: Sequence[str],
    start: dt.date | None,
    end: dt.date | None,
    years: int | None,
) -> list[dict[str, Any]]:
    """Seed every ticker in one statement (request_backfills): one bad ticker requests none of them."""
    cur = await conn.execute(
        "SELECT r FROM pgbars.request_backfills(%s, %s, %s, %s, %s) AS r",
        (list(tickers), list(timeframes), start, end, years),
    )
    return [row[0] for row in await cur.fetchall()]


async def backfill_progress(
    conn: psycopg.AsyncConnection[Any], ticker: str | None = None, *, tickers: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """backfill_progress rows, of one ticker or several (None: all); derived timeframes
    (derived_from set) repeat their source job's chunk counts."""
    if tickers is not None:
        rows = []
        for one in tickers:
            rows += await backfill_progress(conn, one)
        return rows
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT bp.symbol, bp.timeframe, bp.status, bp.progress, bp.done, bp.pending,"
        " bp.running, bp.failed, bp.total, bp.sessions_done, bp.sessions_total,"
        " bp.bars_written, bp.first_session, bp.last_session, bp.derived_from"
        " FROM pgbars.backfill_progress AS bp"
        " JOIN pgbars.timeframes AS tf ON tf.name = bp.timeframe"
        " WHERE %(ticker)s::text IS NULL OR bp.symbol = pgbars.normalize_ticker(%(ticker)s)"
        " ORDER BY bp.symbol, tf.sort_order",
        {"ticker": ticker},
    )
    return await cur.fetchall()


async def backfill_progress_with_eta(
    conn: psycopg.AsyncConnection[Any], ticker: str | None = None
) -> list[dict[str, Any]]:
    """What `pgbars status` shows: backfill_progress rows of one ticker (None: all) with the
    bars stored and the ETA of pgbars.backfill_eta, ordered by symbol and timeframe.

    A derived timeframe (derived_from: its source) shows its source job's chunks and ETA.
    Keys: those of backfill_progress(), plus job_id, derived_from, bars (rows in ohlc_bars_v2 for the
    job's symbol and timeframe, forecasts left out), provider, remaining_chunks,
    remaining_requests, requests_ahead, paused_until, eta_seconds and eta_at.
    Raises 22023 for an invalid ticker; an unknown one has no rows. Needs only pgbars_reader.
    """
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT bp.symbol, bp.timeframe, bp.status, bp.progress, bp.done, bp.pending,"
        " bp.running, bp.failed, bp.total, bp.sessions_done, bp.sessions_total,"
        " bp.bars_written, bp.first_session, bp.last_session, bp.job_id, bp.derived_from,"
        # one index-only count over the bars' primary key (symbol_id, timeframe, ...)
        " (SELECT count(*) FROM pgbars.ohlc_bars_v2 AS b"
        "  WHERE b.symbol_id = bp.symbol_id AND b.timeframe = bp.timeframe AND NOT b.is_forecast) AS bars,"
        " e.provider, e.remaining_chunks, e.remaining_requests, e.requests_ahead, e.paused_until,"
        " e.eta_seconds, e.eta_at"
        " FROM pgbars.backfill_eta(%(tickers)s) WITH ORDINALITY AS e"
        " JOIN pgbars.backfill_progress AS bp ON bp.job_id = e.job_id"
        " WHERE %(ticker)s::text IS NULL OR bp.symbol = pgbars.normalize_ticker(%(ticker)s)"
        " ORDER BY e.ordinality, bp.derived_from IS NOT NULL",
        {"ticker": ticker, "tickers": None if ticker is None else [ticker]},
    )
    return await cur.fetchall()


async def bar_coverage(conn: psycopg.AsyncConnection[Any], tickers: Sequence[str]) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT c.symbol, c.timeframe, c.unit, c.bars, c.first_bar, c.last_bar, c.units_planned,"
        " c.units_with_bars, c.units_missing, c.coverage"
        " FROM pgbars.bar_coverage AS c"
        " JOIN pgbars.timeframes AS tf ON tf.name = c.timeframe"
        " WHERE c.symbol IN (SELECT pgbars.normalize_ticker(t) FROM unnest(%s::text[]) AS t)"
        " ORDER BY c.symbol, tf.sort_order",
        (list(tickers),),
    )
    return await cur.fetchall()


# -- gaps ----------------------------------------------------------------------------


async def repair_gaps(conn: psycopg.AsyncConnection[Any], ticker: str | None = None) -> list[dict[str, Any]]:
    """pgbars.repair_gaps for one ticker (None: every job), in one transaction.

    One dict per chunk and action (`requeued_empty`, `requeued_failed`, `confirmed_empty`) with
    symbol, timeframe, chunk_id, first_session, last_session and sessions (dates), ordered by
    symbol, timeframe and session. Raises 22023 for an invalid ticker, P0002 for one without a
    backfill job. Needs pgbars_worker.
    """
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT symbol, timeframe, chunk_id, first_session, last_session, action, sessions"
        " FROM pgbars.repair_gaps(%s)",
        (ticker,),
    )
    return await cur.fetchall()


async def price_basis_issues(
    conn: psycopg.AsyncConnection[Any], ticker: str | None = None
) -> list[dict[str, Any]]:
    """What keeps adjusted reads from being trustworthy (pgbars.price_basis_issues), by symbol."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT symbol, issue, detail FROM pgbars.price_basis_issues"
        " WHERE %s::text IS NULL OR symbol = pgbars.normalize_ticker(%s)"
        " ORDER BY symbol, issue, detail",
        (ticker, ticker),
    )
    return await cur.fetchall()


async def read_bars(
    conn: psycopg.AsyncConnection[Any],
    ticker: str,
    timeframe: str,
    start: dt.datetime,
    end: dt.datetime,
    adjust: str = "splits",
) -> list[dict[str, Any]]:
    """pgbars.get_bars: one bar per ts in [start, end), adjusted on read (none, splits or all)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT ts, open, high, low, close, volume, provider FROM pgbars.get_bars(%s, %s, %s, %s, %s)",
        (ticker, timeframe, start, end, adjust),
    )
    return await cur.fetchall()
