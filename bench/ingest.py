"""Bars per second through pgbars' write path, next to two baselines, in one run.

    .venv/bin/python -m bench.ingest                  # 1,000,000 bars on a private embedded server
    .venv/bin/python -m bench.ingest --bars 100000    # a quick run
    .venv/bin/python -m bench.ingest --dsn postgresql://postgres@/postgres?host=/run/postgresql

Every method writes the same m1 bars (Polygon-shaped rows for every minute of
04:00-20:00 New York, several tickers), chunk by chunk as the planner cut them
(52 sessions, up to 49,920 bars), one transaction per chunk, over one connection:

real path    what `pgbars work` does with a page that has arrived: PolygonProvider's
             page reader and BarSieve turn the raw rows into Bars, then
             worker.db.store_chunk binary-COPYs them into the staging table and
             pgbars.store_chunk_bars upserts them into ohlc_bars_v2 and completes the
             chunk. Pass 1 writes into an empty table; pass 2 offers the same rows
             again (a re-fetch: every row unchanged, none rewritten).
executemany  psycopg 3 `executemany` of INSERT ... ON CONFLICT DO UPDATE (the SET and
             WHERE of store_chunk_bars) into ohlc_bars_v2 of a second database, from
             bars validated beforehand; psycopg pipelines it. Fresh, then unchanged.
raw COPY     a binary COPY of the same rows, all columns but fetched_at, into an empty
             logged table LIKE ohlc_bars_v2 INCLUDING ALL (same checks, same primary
             key) in a third database: the practical ceiling.

Not timed: making the raw rows (HTTP and JSON decoding are the provider's part),
claiming the chunks (reported apart), and for the baselines validating the rows
and shaping their parameters. Before each measured method the tables are
vacuumed and analysed and a CHECKPOINT is taken, so no method pays for another's
dirty pages.
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

from worker import db
from worker.calendar import SessionHours
from worker.providers.base import Bar, BarSieve, FetchRequest, FetchResult
from worker.providers.grid import sessions_between
from worker.providers.polygon import PolygonProvider

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
    volume, vwap, trade_count, is_intraday, adjustment, fetched_at
)
VALUES (%s, 'm1', %s, 'polygon', FALSE, %s, %s, %s, %s, %s, %s, %s, TRUE, 'raw', now())
ON CONFLICT (symbol_id, timeframe, ts, provider, is_forecast) DO UPDATE
    SET
        open = excluded.open,
        high = excluded.high,
        low = excluded.low,
        close = excluded.close,
        volume = excluded.volume,
        vwap = excluded.vwap,
        trade_count = excluded.trade_count,
        is_intraday = excluded.is_intraday,
        adjustment = excluded.adjustment,
        fetched_at = excluded.fetched_at
    WHERE
        (b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trade_count, b.is_intraday, b.adjustment)
        IS DISTINCT FROM
        (
            excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume,
            excluded.vwap, excluded.trade_count, excluded.is_intraday, excluded.adjustment
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
    "is_intraday",
    "adjustment",
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
    "text",
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
    bars: int
    seconds: float
    parts: dict[str, float] = field(default_factory=dict)
    note: str = ""

    @property
    def rate(self) -> float:
        return self.bars / self.seconds if self.seconds > 0 else float("inf")


async def settle(conn: psycopg.AsyncConnection[Any], tables: Sequence[str]) -> None:
    """Vacuum and analyse `tables`, then CHECKPOINT (skipped without the privilege)."""
    for table in tables:
        await conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.SQL(table)))
    with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
        await conn.execute("CHECKPOINT")


async def count_bars(conn: psycopg.AsyncConnection[Any], table: str) -> int:
    cur = await conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(table)))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def real_pass(
    pool_dsn: str, workload: Workload, reader: PolygonProvider, label: str, *, fresh: bool
) -> tuple[Timing, list[ChunkPlan]]:
    """Claim every chunk, then validate and store_chunk each; returns the timing and the chunks' order."""
    pool = await db.open_worker_pool(pool_dsn, 1)
    try:
        async with pool.connection() as conn:
            started = time.perf_counter()
            chunks = await db.claim_chunks(conn, WORKER_NAME, [PROVIDER], 1_000_000, LEASE_SECONDS, None)
            claim_seconds = time.perf_counter() - started
            validating = storing = 0.0
            written = changed = 0
            plan: list[ChunkPlan] = []
            for chunk in chunks:
                plan.append(ChunkPlan(chunk.ticker, chunk.first_session, chunk.last_session))
                page = workload.page(chunk.ticker, chunk.first_session, chunk.last_session)
                t0 = time.perf_counter()
                # as worker.work.Worker._fetch_and_store and _store do
                request = FetchRequest(
                    ticker=chunk.ticker,
                    timeframe=chunk.timeframe,
                    start=chunk.range_start,
                    end=chunk.range_end,
                    first_session=chunk.first_session,
                    last_session=chunk.last_session,
                )
                result = validate(reader, request, page)
                rejected = [(row.ts, row.raw, row.reason) for row in result.rejected]
                t1 = time.perf_counter()
                stored = await db.store_chunk(conn, chunk, result.bars, rejected, result.requests)
                t2 = time.perf_counter()
                validating += t1 - t0
                storing += t2 - t1
                if stored.bars_rejected:
                    raise BenchError(f"chunk {chunk.chunk_id}: {stored.bars_rejected} rows rejected")
                written += stored.bars_written
                changed += stored.bars_changed
    finally:
        await pool.close()
    expected_changed = workload.bars if fresh else 0
    if written != workload.bars or changed != expected_changed:
        raise BenchError(
            f"{label}: wrote {written:,} bars and changed {changed:,};"
            f" expected {workload.bars:,} and {expected_changed:,}"
        )
    timing = Timing(
        label,
        written,
        validating + storing,
        {"validate": validating, "store_chunk": storing, "claim": claim_seconds},
        f"{len(chunks)} chunks, {changed:,} rows changed",
    )
    return timing, plan


async def rearm_chunks(conn: psycopg.AsyncConnection[Any]) -> int:
    """Put the done chunks back to pending, as if their sessions were due for a re-fetch."""
    cur = await conn.execute(
        "UPDATE pgbars.backfill_chunks SET status = 'pending', attempts = 0, next_attempt_at = now(),"
        " completed_at = NULL, bars_written = NULL, bars_rejected = NULL, requests_used = NULL"
        " WHERE status = 'done'"
    )
    return cur.rowcount


def validated_bars(reader: PolygonProvider, workload: Workload, chunk: ChunkPlan) -> list[Bar]:
    request = FetchRequest.for_sessions(chunk.ticker, TIMEFRAME, chunk.first_session, chunk.last_session)
    result = validate(reader, request, workload.page(*chunk))
    if result.rejected:
        raise BenchError(f"{chunk}: {len(result.rejected)} rows rejected")
    return result.bars


async def add_symbols(conn: psycopg.AsyncConnection[Any], tickers: Sequence[str]) -> dict[str, Any]:
    ids: dict[str, Any] = {}
    for ticker in tickers:
        cur = await conn.execute("INSERT INTO pgbars.symbols (ticker) VALUES (%s) RETURNING id", (ticker,))
        row = await cur.fetchone()
        assert row is not None
        ids[ticker] = row[0]
    return ids


async def executemany_pass(
    conn: psycopg.AsyncConnection[Any],
    workload: Workload,
    reader: PolygonProvider,
    plan: Sequence[ChunkPlan],
    symbol_ids: dict[str, Any],
    label: str,
) -> Timing:
    seconds = 0.0
    bars = 0
    for chunk in plan:
        sid = symbol_ids[chunk.ticker]
        params = [
            (sid, b.ts, b.open, b.high, b.low, b.close, int(b.volume), b.vwap, b.trade_count)
            for b in validated_bars(reader, workload, chunk)
        ]
        started = time.perf_counter()
        async with conn.transaction():
            cur = conn.cursor()
            await cur.executemany(UPSERT, params)
        seconds += time.perf_counter() - started
        bars += len(params)
    return Timing(label, bars, seconds, note="one executemany per chunk")


async def raw_copy_pass(
    conn: psycopg.AsyncConnection[Any],
    workload: Workload,
    reader: PolygonProvider,
    plan: Sequence[ChunkPlan],
    symbol_ids: dict[str, Any],
) -> Timing:
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(RAW_TABLE), sql.SQL(", ").join(map(sql.Identifier, RAW_COLUMNS))
    )
    seconds = 0.0
    bars = 0
    for chunk in plan:
        sid = symbol_ids[chunk.ticker]
        rows = [
            (sid, TIMEFRAME, b.ts, PROVIDER, False, *b[1:5], int(b.volume), *b[6:], True, "raw")
            for b in validated_bars(reader, workload, chunk)
        ]
        started = time.perf_counter()
        async with conn.transaction():
            cur = conn.cursor()
            async with cur.copy(statement) as copy:
                copy.set_types(RAW_TYPES)
                for row in rows:
                    await copy.write_row(row)
        seconds += time.perf_counter() - started
        bars += len(rows)
    return Timing("raw COPY, empty table", bars, seconds, note="binary COPY, one per chunk")


# --- the run ----------------------------------------------------------------------------


@dataclass(slots=True)
class Results:
    real: Timing
    real_again: Timing
    executemany: Timing
    executemany_again: Timing
    raw_copy: Timing

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


async def run(server_dsn: str, workload: Workload, keep: bool) -> Results:
    names = {method: f"{DB_PREFIX}_{method}" for method in ("real", "executemany", "copy")}
    say(f"creating databases {', '.join(names.values())} ...")
    await create_databases(server_dsn, list(names.values()))
    try:
        async with httpx.AsyncClient() as client:
            reader = PolygonProvider(client, "http://127.0.0.1:9", None)  # its page reader only
            return await _measure(server_dsn, names, workload, reader)
    finally:
        if not keep:
            await drop_databases(server_dsn, list(names.values()))


async def _measure(
    server_dsn: str, names: dict[str, str], workload: Workload, reader: PolygonProvider
) -> Results:
    real_dsn = database_dsn(server_dsn, names["real"])
    conn = await db.connect(real_dsn)
    try:
        say(await describe_server(conn))
        for load in workload.loads.values():
            await conn.execute(
                "SELECT pgbars.request_backfill(%s, '{m1}', %s, %s, NULL)",
                (load.ticker, load.first_session, load.last_session),
            )
        await settle(conn, ["pgbars.backfill_chunks"])
        say("real path, pass 1 ...")
        real, plan = await real_pass(real_dsn, workload, reader, "real path, pass 1 (new rows)", fresh=True)
        say(_line(real))
        if await count_bars(conn, "pgbars.ohlc_bars_v2") != workload.bars:
            raise BenchError("real path: ohlc_bars_v2 does not hold every bar")
        await rearm_chunks(conn)
        await settle(conn, ["pgbars.ohlc_bars_v2", "pgbars.backfill_chunks"])
        say("real path, pass 2 ...")
        real_again, _ = await real_pass(
            real_dsn, workload, reader, "real path, pass 2 (unchanged)", fresh=False
        )
        say(_line(real_again))
    finally:
        await conn.close()

    conn = await db.connect(database_dsn(server_dsn, names["executemany"]))
    try:
        symbol_ids = await add_symbols(conn, list(workload.loads))
        await settle(conn, ["pgbars.ohlc_bars_v2"])
        say("executemany upsert, new rows ...")
        executemany = await executemany_pass(
            conn, workload, reader, plan, symbol_ids, "executemany upsert, new rows"
        )
        say(_line(executemany))
        if await count_bars(conn, "pgbars.ohlc_bars_v2") != workload.bars:
            raise BenchError("executemany: ohlc_bars_v2 does not hold every bar")
        await settle(conn, ["pgbars.ohlc_bars_v2"])
        say("executemany upsert, unchanged ...")
        executemany_again = await executemany_pass(
            conn, workload, reader, plan, symbol_ids, "executemany upsert, unchanged"
        )
        say(_line(executemany_again))
    finally:
        await conn.close()

    conn = await db.connect(database_dsn(server_dsn, names["copy"]))
    try:
        symbol_ids = await add_symbols(conn, list(workload.loads))
        await conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE pgbars.ohlc_bars_v2 INCLUDING ALL)").format(
                sql.Identifier(RAW_TABLE)
            )
        )
        await settle(conn, [RAW_TABLE])
        say("raw COPY ...")
        raw_copy = await raw_copy_pass(conn, workload, reader, plan, symbol_ids)
        say(_line(raw_copy))
        if await count_bars(conn, RAW_TABLE) != workload.bars:
            raise BenchError("raw COPY: the table does not hold every bar")
    finally:
        await conn.close()
    return Results(real, real_again, executemany, executemany_again, raw_copy)


def _line(timing: Timing) -> str:
    parts = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in timing.parts.items())
    extra = f" ({parts})" if parts else ""
    return f"  {timing.bars:,} bars in {timing.seconds:.2f} s: {timing.rate:,.0f} bars/s{extra}"


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
        parts = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in timing.parts.items())
        lines.append(f"{timing.method}: {parts} (claims not in the total); {timing.note}")

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
    return parser.parse_args(argv)


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
        results = asyncio.run(run(server_dsn, workload, args.keep))
    except (BenchError, db.PgbarsError) as exc:
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
