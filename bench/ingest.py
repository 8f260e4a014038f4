"""Bars per second through pgbars' write path, next to two baselines, in one run.

    .venv/bin/python -m bench.ingest                  # 1,000,000 bars on a private embedded server
    .venv/bin/python -m bench.ingest --bars 100000    # a quick run
    .venv/bin/python -m bench.ingest --dsn postgresql://postgres@/postgres?host=/run/postgresql

Every method writes the same m1 bars (Polygon-shaped rows for every minute of
04:00-20:00 New York, 4 tickers), chunk by chunk as the planner cut them (52
sessions, up to 49,920 bars), one transaction per chunk:

real path    what `pgbars work` does with a page that has arrived: PolygonProvider's
             page reader and BarSieve turn the raw rows into Bars, then
             worker.db.store binary-COPYs them into the staging table and
             pgbars.store_chunk_bars merges them into ohlc_bars_v2 and completes the
             chunk. As `pgbars work` runs several chunks at once, `--in-flight N`
             (2) chunks run as concurrent asyncio tasks, each storing on a connection
             of a worker pool of N: validation is Python in the event loop, one chunk
             after another, while the server's COPY and merge of one chunk overlap
             the Python work and the server's work on the others. Pass 1 writes into
             an empty table; pass 2 offers the same rows again (a re-fetch: every
             row unchanged, none rewritten).
executemany  psycopg 3 `executemany` of INSERT ... ON CONFLICT DO UPDATE (the SET and
             WHERE of store_chunk_bars) into ohlc_bars_v2 of a second database, of
             the bars the real path validated; psycopg pipelines it. New rows in
             pass 1, the same rows unchanged in pass 2.
raw COPY     a binary COPY of the same rows, every column but fetched_at, into an
             empty logged table LIKE ohlc_bars_v2 INCLUDING ALL (same checks, same
             primary key, no triggers) in a third database: the practical ceiling.

The baselines run one chunk at a time over one connection each. The methods
take turns batch by batch (N chunks through the real path at once, then the
same chunks by executemany, then by raw COPY), so a slow spell of a shared
machine hits them alike and the ratios stay fair; the real path's pipeline
drains at the end of every batch, where `pgbars work` would start its next
chunk. Not timed: making the raw
rows (HTTP and JSON decoding are the provider's part), claiming the chunks
(reported apart), and shaping the baselines' parameters. Before each pass the
tables are vacuumed and analysed and a CHECKPOINT is taken.

Why over 400 lines: a benchmark that builds its own data, runs three write
methods side by side and prints their table; each part is only meaningful
next to the others.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool

from worker import db
from worker.calendar import SessionHours
from worker.errors import PgbarsError
from worker.providers import Bar, FetchRequest, FetchResult
from worker.providers.grid import sessions_between
from worker.providers.polygon import PolygonProvider
from worker.providers.sieve import BarSieve

PROVIDER = "polygon"
TIMEFRAME = "m1"
WORKER_NAME = "bench-ingest"
LEASE_SECONDS = 6 * 3600.0
TICKER_PREFIX = "BENCH"
DB_PREFIX = "pgbars_bench"
TARGET_VS_EXECUTEMANY = 2.0
TARGET_VS_COPY = 0.5
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# The statement of pgbars.store_chunk_bars, as one row per execution.
UPSERT = """
INSERT INTO pgbars.ohlc_bars_v2 AS b (
    symbol_id, timeframe, ts, provider, is_forecast, open, high, low, close,
    volume, vwap, trade_count, is_provisional, fetched_at
)
VALUES (%s, 'm1', %s, 'polygon', FALSE, %s, %s, %s, %s, %s, %s, %s, FALSE, now())
ON CONFLICT (symbol_id, timeframe, ts, provider, is_forecast) DO UPDATE
    SET
        open = excluded.open,
        high = excluded.high,
        low = excluded.low,
        close = excluded.close,
        volume = excluded.volume,
        vwap = excluded.vwap,
        trade_count = excluded.trade_count,
        is_provisional = excluded.is_provisional,
        fetched_at = excluded.fetched_at
    WHERE
        (b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trade_count, b.is_provisional)
        IS DISTINCT FROM
        (
            excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume,
            excluded.vwap, excluded.trade_count, excluded.is_provisional
        )
"""
RAW_TABLE = "bench_raw_copy"
RAW_COLUMNS = (
    "symbol_id",
    "timeframe",
    "ts",
    "provider",
    "is_forecast",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "vwap",
    "trade_count",
    "is_provisional",
)
RAW_TYPES = (
    "uuid",
    "text",
    "timestamptz",
    "text",
    "bool",
    "float8",
    "float8",
    "float8",
    "float8",
    "int8",
    "float8",
    "int8",
    "bool",
)


class BenchError(Exception):
    """The benchmark could not run, or a method did not write what it should have."""


# --- the workload -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Span:
    """One session's share of a ticker's bars: `minutes` bars from pre-market, numbered from `first`."""

    session: SessionHours
    first: int
    minutes: int


@dataclass(frozen=True, slots=True)
class TickerLoad:
    ticker: str
    number: int
    spans: tuple[Span, ...]

    @property
    def first_session(self) -> dt.date:
        return self.spans[0].session.session_date

    @property
    def last_session(self) -> dt.date:
        return self.spans[-1].session.session_date


class ChunkPlan(NamedTuple):
    ticker: str
    first_session: dt.date
    last_session: dt.date


def _epoch_ms(ts: dt.datetime) -> int:
    return (ts - _EPOCH) // dt.timedelta(milliseconds=1)


def _session_minutes(session: SessionHours) -> int:
    return (session.after_hours_close - session.premarket_open) // dt.timedelta(minutes=1)


class Workload:
    """`bars` m1 bars split evenly over `tickers` tickers, each from the first session on or after `start`.

    Rows are made on demand, deterministically, so a chunk's page costs memory
    only while it is written (as in the worker) and every method sees the same values.
    """

    def __init__(self, bars: int, tickers: int, start: dt.date) -> None:
        if bars < 1 or tickers < 1:
            raise BenchError("--bars and --tickers must be at least 1")
        now = dt.datetime.now(dt.UTC)
        self.bars = bars
        self.loads: dict[str, TickerLoad] = {}
        for number in range(tickers):
            quota = bars // tickers + (1 if number < bars % tickers else 0)
            if quota == 0:
                continue
            spans: list[Span] = []
            taken = 0
            year = start.year
            while taken < quota:
                if year > now.year:
                    raise BenchError(
                        f"not enough completed sessions after {start} for {quota:,} bars per ticker:"
                        " use an earlier --start or more --tickers"
                    )
                for session in sessions_between(max(start, dt.date(year, 1, 1)), dt.date(year, 12, 31)):
                    if taken == quota:
                        break
                    if session.after_hours_close > now:
                        raise BenchError(
                            f"not enough completed sessions after {start} for {quota:,} bars per ticker:"
                            " use an earlier --start or more --tickers"
                        )
                    minutes = min(_session_minutes(session), quota - taken)
                    spans.append(Span(session, taken, minutes))
                    taken += minutes
                year += 1
            ticker = f"{TICKER_PREFIX}{number}"
            self.loads[ticker] = TickerLoad(ticker, number, tuple(spans))

    def rows(self, ticker: str, first: dt.date, last: dt.date) -> list[dict[str, object]]:
        """Polygon aggregate rows (`t` in epoch ms) of `ticker` for the sessions first..last."""
        load = self.loads[ticker]
        base = 20.0 + 7.0 * load.number
        rows: list[dict[str, object]] = []
        for span in load.spans:
            if not first <= span.session.session_date <= last:
                continue
            start_ms = _epoch_ms(span.session.premarket_open)
            for minute in range(span.minutes):
                k = span.first + minute
                mid = base + (k * 7919 % 2000) / 100
                open_ = round(mid, 2)
                close = round(mid + (k % 9 - 4) / 100, 2)
                high = round(max(open_, close) + 0.03, 2)
                low = round(min(open_, close) - 0.03, 2)
                rows.append(
                    {
                        "v": 100 + k % 997,
                        "vw": round((high + low) / 2, 4),
                        "o": open_,
                        "c": close,
                        "h": high,
                        "l": low,
                        "t": start_ms + 60_000 * minute,
                        "n": 1 + k % 61,
                    }
                )
        return rows

    def page(self, ticker: str, first: dt.date, last: dt.date) -> dict[str, object]:
        """The rows as one Polygon answer body."""
        rows = self.rows(ticker, first, last)
        return {"status": "OK", "resultsCount": len(rows), "results": rows}


def validate(reader: PolygonProvider, request: FetchRequest, page: dict[str, object]) -> FetchResult:
    """What PolygonProvider.fetch does with an answer: its page reader, BarSieve, the sorted result."""
    sieve = BarSieve(request)
    if reader._read_page(page, sieve) is not None:
        raise BenchError("the bench page has a next_url")
    return sieve.result(reader.name, 1)


# --- measurements -----------------------------------------------------------------------


@dataclass(slots=True)
class Timing:
    method: str
    bars: int = 0
    seconds: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)
    changed: int = 0
    claim: float = 0.0  # seconds claiming the chunks, not in `seconds`

    @property
    def rate(self) -> float:
        return self.bars / self.seconds if self.seconds > 0 else float("inf")

    def add(self, bars: int, seconds: float, **parts: float) -> None:
        self.bars += bars
        self.seconds += seconds
        for name, value in parts.items():
            self.parts[name] = self.parts.get(name, 0.0) + value


async def settle(conn: psycopg.AsyncConnection[Any], tables: Sequence[str]) -> None:
    """Vacuum and analyse `tables`, then CHECKPOINT (skipped without the privilege)."""
    for table in tables:
        await conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.SQL(table)))
    with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
        await conn.execute("CHECKPOINT")


async def count_rows(conn: psycopg.AsyncConnection[Any], table: str) -> int:
    cur = await conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(table)))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def rearm_chunks(conn: psycopg.AsyncConnection[Any]) -> int:
    """Put the done chunks back to pending, as if their sessions were due for a re-fetch."""
    cur = await conn.execute(
        "UPDATE pgbars.backfill_chunks SET status = 'pending', attempts = 0, next_attempt_at = now(),"
        " completed_at = NULL, bars_written = NULL, bars_rejected = NULL, requests_used = NULL"
        " WHERE status = 'done'"
    )
    return cur.rowcount


async def add_symbols(conn: psycopg.AsyncConnection[Any], tickers: Sequence[str]) -> dict[str, Any]:
    ids: dict[str, Any] = {}
    for ticker in tickers:
        cur = await conn.execute("INSERT INTO pgbars.symbols (ticker) VALUES (%s) RETURNING id", (ticker,))
        row = await cur.fetchone()
        assert row is not None
        ids[ticker] = row[0]
    return ids


class RealChunk(NamedTuple):
    bars: list[Bar]
    stored: db.StoredChunk
    validating: float  # seconds
    storing: float  # seconds, waits for the event loop included (another task may be validating)


async def real_chunk(
    pool: AsyncConnectionPool,
    reader: PolygonProvider,
    chunk: db.Lease,
    page: dict[str, object],
) -> RealChunk:
    """One chunk through the real path, as one task of `pgbars work` handles it."""
    started = time.perf_counter()
    # as worker.work.Worker._fetch (in the provider) and _store do
    request = chunk.fetch_request()
    result = validate(reader, request, page)
    rejected = [(row.ts, row.raw, row.reason) for row in result.rejected]
    validated = time.perf_counter()
    async with pool.connection() as conn:
        stored = await db.store(conn, chunk, result.bars, rejected, result.requests)
    done = time.perf_counter()
    if stored.bars_rejected:
        raise BenchError(f"chunk {chunk.chunk_id}: {stored.bars_rejected} rows rejected")
    return RealChunk(result.bars, stored, validated - started, done - validated)


async def real_batch(
    pool: AsyncConnectionPool,
    reader: PolygonProvider,
    chunks: Sequence[db.Lease],
    pages: Sequence[dict[str, object]],
) -> tuple[list[RealChunk], float]:
    """The chunks through the real path as concurrent tasks; returns them and the wall seconds."""
    started = time.perf_counter()
    done = await asyncio.gather(
        *(real_chunk(pool, reader, chunk, page) for chunk, page in zip(chunks, pages, strict=True))
    )
    return list(done), time.perf_counter() - started


async def executemany_chunk(conn: psycopg.AsyncConnection[Any], symbol_id: Any, bars: Sequence[Bar]) -> float:
    """One chunk as executemany of the upsert, in one transaction; returns its seconds."""
    params = [(symbol_id, b.ts, *b[1:5], int(b.volume), b.vwap, b.trade_count) for b in bars]
    started = time.perf_counter()
    async with conn.transaction():
        await conn.cursor().executemany(UPSERT, params)
    return time.perf_counter() - started


RAW_COPY = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
    sql.Identifier(RAW_TABLE), sql.SQL(", ").join(map(sql.Identifier, RAW_COLUMNS))
)


async def raw_copy_chunk(conn: psycopg.AsyncConnection[Any], symbol_id: Any, bars: Sequence[Bar]) -> float:
    """One chunk as a binary COPY into the empty table, in one transaction; returns its seconds."""
    rows = [
        (symbol_id, TIMEFRAME, b.ts, PROVIDER, False, *b[1:5], int(b.volume), *b[6:], False) for b in bars
    ]
    started = time.perf_counter()
    async with conn.transaction(), conn.cursor().copy(RAW_COPY) as copy:
        copy.set_types(RAW_TYPES)
        for row in rows:
            await copy.write_row(row)
    return time.perf_counter() - started


# --- the run ----------------------------------------------------------------------------


@dataclass(slots=True)
class Results:
    real: Timing
    real_again: Timing
    executemany: Timing
    executemany_again: Timing
    raw_copy: Timing
    chunks: int

    def rows(self) -> list[Timing]:
        return [self.real, self.real_again, self.executemany, self.executemany_again, self.raw_copy]

    @property
    def vs_executemany(self) -> float:
        return self.real.rate / self.executemany.rate

    @property
    def vs_copy(self) -> float:
        return self.real.rate / self.raw_copy.rate


def database_dsn(server_dsn: str, name: str) -> str:
    return make_conninfo(server_dsn, dbname=name)


def _drop(name: str) -> sql.Composed:
    return sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))


async def create_databases(server_dsn: str, names: Sequence[str]) -> None:
    """Drop and create `names`, each a copy of a template with the pgbars schema installed."""
    template = f"{DB_PREFIX}_template"
    admin = await db.connect(server_dsn)
    try:
        for name in (*names, template):
            await admin.execute(_drop(name))
        await admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(template)))
        conn = await db.connect(database_dsn(server_dsn, template))
        try:
            await db.upgrade(conn)
        finally:
            await conn.close()
        for name in names:
            create = sql.SQL("CREATE DATABASE {} TEMPLATE {}")
            await admin.execute(create.format(sql.Identifier(name), sql.Identifier(template)))
        await admin.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(template)))
    finally:
        await admin.close()


async def drop_databases(server_dsn: str, names: Sequence[str]) -> None:
    admin = await db.connect(server_dsn)
    try:
        for name in names:
            await admin.execute(_drop(name))
    finally:
        await admin.close()


async def describe_server(conn: psycopg.AsyncConnection[Any]) -> str:
    settings = []
    for name in ("server_version", "shared_buffers", "synchronous_commit", "max_wal_size"):
        cur = await conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name)))
        row = await cur.fetchone()
        settings.append(f"{name}={row[0] if row else '?'}")
    return " ".join(settings)


def say(text: str) -> None:
    print(text, flush=True)


async def run(server_dsn: str, workload: Workload, keep: bool, in_flight: int) -> Results:
    names = [f"{DB_PREFIX}_{method}" for method in ("real", "executemany", "copy")]
    say(f"creating databases {', '.join(names)} ...")
    await create_databases(server_dsn, names)
    try:
        async with httpx.AsyncClient() as client:
            reader = PolygonProvider(client, "http://127.0.0.1:9", None)  # its page reader only
            real_dsn, executemany_dsn, copy_dsn = (database_dsn(server_dsn, name) for name in names)
            pool = await db.open_worker_pool(real_dsn, in_flight)
            try:
                async with (
                    await db.connect(real_dsn) as control,
                    await db.connect(executemany_dsn) as upserts,
                    await db.connect(copy_dsn) as copies,
                ):
                    bench = _Bench(workload, reader, pool, in_flight, control, upserts, copies)
                    return await bench.measure()
            finally:
                await pool.close()
    finally:
        if not keep:
            await drop_databases(server_dsn, names)


class _Bench:
    """The three methods batch by batch in turn, so a slow spell of the machine hits them all alike."""

    def __init__(
        self,
        workload: Workload,
        reader: PolygonProvider,
        pool: AsyncConnectionPool,
        in_flight: int,
        control: psycopg.AsyncConnection[Any],
        upserts: psycopg.AsyncConnection[Any],
        copies: psycopg.AsyncConnection[Any],
    ) -> None:
        self.workload = workload
        self.reader = reader
        self.pool = pool  # a worker pool (staging tables): the real path
        self.in_flight = in_flight
        self.control = control  # seeding, checks and maintenance of the real path's database
        self.upserts = upserts
        self.copies = copies

    async def measure(self) -> Results:
        say(await describe_server(self.control))
        tickers = list(self.workload.loads)
        for load in self.workload.loads.values():
            await self.control.execute(
                "SELECT pgbars.request_backfill(%s, '{m1}', %s, %s, NULL)",
                (load.ticker, load.first_session, load.last_session),
            )
        upsert_ids = await add_symbols(self.upserts, tickers)
        copy_ids = await add_symbols(self.copies, tickers)
        await self.copies.execute(
            sql.SQL("CREATE TABLE {} (LIKE pgbars.ohlc_bars_v2 INCLUDING ALL)").format(
                sql.Identifier(RAW_TABLE)
            )
        )
        await self._settle()

        real = Timing(f"real path, pass 1 (new rows), {self.in_flight} in flight")
        executemany = Timing("executemany upsert, new rows")
        raw_copy = Timing("raw COPY, empty table")
        say(f"pass 1: real path ({self.in_flight} in flight), executemany and raw COPY, batch by batch ...")
        chunks = await self._claim(real)
        for batch in self._batches(chunks):
            validated = await self._real(real, batch)
            for chunk, bars in zip(batch, validated, strict=True):
                executemany.add(
                    len(bars), await executemany_chunk(self.upserts, upsert_ids[chunk.ticker], bars)
                )
            for chunk, bars in zip(batch, validated, strict=True):
                raw_copy.add(len(bars), await raw_copy_chunk(self.copies, copy_ids[chunk.ticker], bars))
        for timing in (real, executemany, raw_copy):
            say(_line(timing))
        await self._check(real, changed=self.workload.bars)
        await rearm_chunks(self.control)
        await self._settle()

        real_again = Timing(f"real path, pass 2 (unchanged), {self.in_flight} in flight")
        executemany_again = Timing("executemany upsert, unchanged")
        say("pass 2: the same rows again through the real path and executemany ...")
        for batch in self._batches(await self._claim(real_again)):
            for chunk, bars in zip(batch, await self._real(real_again, batch), strict=True):
                executemany_again.add(
                    len(bars), await executemany_chunk(self.upserts, upsert_ids[chunk.ticker], bars)
                )
        for timing in (real_again, executemany_again):
            say(_line(timing))
        await self._check(real_again, changed=0)
        return Results(real, real_again, executemany, executemany_again, raw_copy, len(chunks))

    def _batches(self, chunks: Sequence[db.Lease]) -> list[Sequence[db.Lease]]:
        return [chunks[i : i + self.in_flight] for i in range(0, len(chunks), self.in_flight)]

    async def _real(self, timing: Timing, batch: Sequence[db.Lease]) -> list[list[Bar]]:
        """The batch through the real path at once; adds its wall time to `timing`, returns the bars."""
        pages = [self.workload.page(c.ticker, c.first_session, c.last_session) for c in batch]
        done, seconds = await real_batch(self.pool, self.reader, batch, pages)
        del pages
        timing.add(
            sum(one.stored.bars_written for one in done),
            seconds,
            validate=sum(one.validating for one in done),
            store_chunk=sum(one.storing for one in done),
        )
        timing.changed += sum(one.stored.bars_changed for one in done)
        return [one.bars for one in done]

    async def _claim(self, timing: Timing) -> list[db.Lease]:
        """Every chunk, in one claim; its seconds are kept apart from the total."""
        started = time.perf_counter()
        async with self.pool.connection() as conn:
            chunks = await db.claim(
                conn, WORKER_NAME, [PROVIDER], 1_000_000, LEASE_SECONDS, None, kinds=("history",)
            )
        timing.claim = time.perf_counter() - started
        return chunks

    async def _settle(self) -> None:
        await settle(self.control, ["pgbars.ohlc_bars_v2", "pgbars.backfill_chunks"])
        await settle(self.upserts, ["pgbars.ohlc_bars_v2"])
        await settle(self.copies, [RAW_TABLE])

    async def _check(self, real: Timing, *, changed: int) -> None:
        """Every method wrote every bar; the real path changed what it should have."""
        bars = self.workload.bars
        if real.bars != bars or real.changed != changed:
            raise BenchError(
                f"{real.method}: wrote {real.bars:,} bars and changed {real.changed:,};"
                f" expected {bars:,} and {changed:,}"
            )
        for conn, table in (
            (self.control, "pgbars.ohlc_bars_v2"),
            (self.upserts, "pgbars.ohlc_bars_v2"),
            (self.copies, RAW_TABLE),
        ):
            if await count_rows(conn, table) != bars:
                raise BenchError(f"{table} of {conn.info.dbname} does not hold {bars:,} bars")


def _parts(timing: Timing) -> str:
    parts = [f"{name} {seconds:.2f} s" for name, seconds in timing.parts.items()]
    if timing.claim:
        parts.append(f"claims {timing.claim:.2f} s apart")
    return ", ".join(parts)


def _line(timing: Timing) -> str:
    parts = _parts(timing)
    extra = f" ({parts})" if parts else ""
    return (
        f"  {timing.method}: {timing.bars:,} bars in {timing.seconds:.2f} s, {timing.rate:,.0f} bars/s{extra}"
    )


def report(results: Results) -> str:
    header = ("method", "bars", "seconds", "bars/s", "vs executemany", "vs raw COPY")
    table = [header]
    for timing in results.rows():
        table.append(
            (
                timing.method,
                f"{timing.bars:,}",
                f"{timing.seconds:.2f}",
                f"{timing.rate:,.0f}",
                f"{timing.rate / results.executemany.rate:.2f}x",
                f"{timing.rate / results.raw_copy.rate:.2f}x",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = []
    for n, row in enumerate(table):
        cells = [
            row[0].ljust(widths[0]),
            *(cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)),
        ]
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * width for width in widths))
    for timing in (results.real, results.real_again):
        lines.append(
            f"{timing.method}: {_parts(timing)}; {results.chunks} chunks, {timing.changed:,} rows changed"
        )
    lines.append(
        "(validate and store_chunk are sums over the chunks; with several in flight they overlap,"
        " so they add up to more than the wall seconds)"
    )

    def verdict(ratio: float, target: float) -> str:
        return f"{'MET' if ratio >= target else 'MISSED'} ({ratio:.2f}x, target {target:g}x)"

    lines.append(
        f"target real path >= {TARGET_VS_EXECUTEMANY:g}x executemany: "
        + verdict(results.vs_executemany, TARGET_VS_EXECUTEMANY)
    )
    lines.append(
        f"target real path >= {TARGET_VS_COPY:g}x raw COPY:    " + verdict(results.vs_copy, TARGET_VS_COPY)
    )
    return "\n".join(lines)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest",
        description="Bars per second through pgbars' write path, next to executemany and raw COPY.",
    )
    parser.add_argument("--bars", type=int, default=1_000_000, help="bars each method writes (1,000,000)")
    parser.add_argument("--tickers", type=int, default=4, help="tickers the bars are spread over (4)")
    parser.add_argument(
        "--start",
        type=dt.date.fromisoformat,
        default=dt.date(2021, 1, 4),
        help="first session of every ticker (2021-01-04)",
    )
    parser.add_argument(
        "--dsn",
        help="a database on an existing server whose user may create databases; the bench creates"
        f" and drops its own {DB_PREFIX}_* databases there (default: a private embedded server)",
    )
    parser.add_argument("--keep", action="store_true", help=f"keep the {DB_PREFIX}_* databases")
    parser.add_argument(
        "--in-flight",
        type=int,
        default=2,
        help="chunks the real path runs at once, each on a worker-pool connection, as `pgbars work"
        " --concurrency` does (2)",
    )
    args = parser.parse_args(argv)
    if args.in_flight < 1:
        parser.error("--in-flight must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        workload = Workload(args.bars, args.tickers, args.start)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    loads = workload.loads.values()
    say(
        f"{workload.bars:,} m1 bars: {len(loads)} tickers, sessions"
        f" {min(x.first_session for x in loads)}..{max(x.last_session for x in loads)};"
        f" {os.cpu_count()} CPUs, Python {platform.python_version()}, psycopg {psycopg.__version__},"
        f" load average {_load()}"
    )
    server = None
    if args.dsn:
        server_dsn = args.dsn
    else:
        from worker.embedded import EmbeddedPostgres

        server = EmbeddedPostgres(
            Path(tempfile.mkdtemp(prefix="pgbars-bench-")) / "postgres", delete_on_stop=True
        )
        server_dsn = server.dsn("postgres")
    try:
        results = asyncio.run(run(server_dsn, workload, args.keep, args.in_flight))
    except (BenchError, PgbarsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.stop()
    say("")
    say(report(results))
    say(f"load average at the end: {_load()} (other work on the machine slows every method)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
