"""Latency of pgbars.get_bars for a chart's read, next to a plain SELECT of the same rows.

    .venv/bin/python -m bench.read                     # 500 symbols x m15, h1, d1, w1 x 2 years (~20M bars)
    .venv/bin/python -m bench.read --symbols 50        # a quick run
    .venv/bin/python -m bench.read --dsn postgresql://postgres@/postgres?host=/run/postgresql

Build: a database `pgbars_bench_read` (pgbars installed with `db.upgrade`) gets
`--symbols` tickers and, for each, every bar of `--timeframes` on the pgbars grid
(intraday bars from 04:00 to 20:00 New York) for the last `--years` years of
completed XNYS sessions, from one provider (polygon). Rows are made with numpy
as binary COPY data and written over `--jobs` connections in the order the
worker writes them: 52-session chunks, newest chunk first, symbol after symbol
(so one symbol's h1 bars lie in ~10 runs of ~830 rows, not in one block).
The reference-check triggers of ohlc_bars_v2 are skipped while loading
(`session_replication_role = replica`, superuser only; the rows are valid by
construction); otherwise they run. Then VACUUM ANALYZE and a CHECKPOINT.
Every ticker also gets one split (2, 3, 4 or 10 for 1, or 1 for 8) and quarterly USD
cash dividends inside the window in corporate_actions (corporate_actions()), so that
get_bars' 'splits' and 'all' really compute; the build checks that every dividend
finds its previous close (the d1 bars).

Three more symbols get the first symbol's h1 bars in other provider layouts (LAYOUTS:
today's provisional bars on top of history, a fallback provider's newer half, two
providers everywhere); they are measured apart and are not in the main figures.

Measured: for `--iterations` random symbols, each of these on one connection,
in turn (the order rotates), so a slow spell of a shared machine hits them alike:

from Python (client wall time of execute + fetchall, psycopg 3, binary results):
get_bars          SELECT * FROM pgbars.get_bars(ticker, 'h1', now() - 2 years, now(), p_adjust),
                  as a chart client reads it: every column, Python tuples; for p_adjust
                  'none', 'splits' and 'all' (the others below read 'none').
yahoo route on    the same call with a yahoo h1 history route (priority 2) enabled just
                  before it (not timed): the ranking (polygon, yahoo, tradier) is no
                  longer in name order, as for m5; only polygon has bars.
6 columns         SELECT ts, open, high, low, close, volume FROM pgbars.get_bars(...).
plain SELECT      the same columns FROM ohlc_bars_v2 WHERE symbol_id = $1 AND timeframe = 'h1'
                  AND ts >= $2 AND ts < $3 ORDER BY ts (the client knows symbol_id): the baseline.
inside the server (EXPLAIN (ANALYZE, TIMING OFF) of the same statements, prepared on the
server): get_bars (for each p_adjust) and the plain SELECT, each as "execution" (SERIALIZE NONE: the rows
are made, not formatted) and "execution + serialization" (SERIALIZE BINARY: also turned
into the binary wire format, as for the client, but not sent). What the client waits
for beyond that is sending the rows and decoding them in Python.

get_bars, the yahoo-route call and the plain SELECT return the same rows, 'splits' and
'all' the same bars with the first one adjusted, and the server-timed statements as many
(checked every iteration). Before the loop, EXPLAIN of each p_adjust (custom and generic
plan) must read ohlc_bars_v2 by one Index Scan of the primary key of each year of the
window (it is partitioned by year), the others pruned. Statements are prepared
from psycopg's 6th run. The session's TimeZone is UTC: with a named zone (Etc/UTC,
America/New_York) psycopg builds each datetime through zoneinfo, 0.5-1 us more per
timestamp. Then EXPLAIN (ANALYZE, BUFFERS, SERIALIZE BINARY) of one get_bars call for
each p_adjust and one plain SELECT (each the 7th execution of its prepared statement).

Why over 400 lines: a benchmark that builds 500 symbols of bars, reads them
through every query compared and prints the side-by-side table; each part
is only meaningful next to the others.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from worker import db
from worker.errors import PgbarsError
from worker.providers.grid import (
    INTRADAY_MINUTES,
    TIMEFRAMES,
    day_start,
    sessions_between,
    trading_week_monday,
)
from worker.reading import read_bars

DATABASE = "pgbars_bench_read"
PROVIDER = "polygon"
READ_TIMEFRAME = "h1"
CHUNK_SESSIONS = 52  # Polygon's chunk: 50,000 minute bars / 960 minutes a session
TARGET_P50_MS = 5.0
_PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + np.array([0, 0], dtype=">i4").tobytes()
_TRAILER = np.array([-1], dtype=">i2").tobytes()
COPY_COLUMNS = (
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
    "fetched_at",
)
READ_COLUMNS = "ts, open, high, low, close, volume, vwap, trade_count, provider, is_provisional, fetched_at"
# 'none': the rows the plain SELECT returns; 'splits' (get_bars' default) and 'all' adjust them
ADJUSTS = ("none", "splits", "all")
GET_BARS_ADJUSTED = {
    "none": "SELECT * FROM pgbars.get_bars(%s, %s, %s, %s, 'none')",
    "splits": "SELECT * FROM pgbars.get_bars(%s, %s, %s, %s, 'splits')",
    "all": "SELECT * FROM pgbars.get_bars(%s, %s, %s, %s, 'all')",
}
GET_BARS = GET_BARS_ADJUSTED["none"]
TARGET_SPLITS_RATIO = 1.5  # get_bars 'splits' within 1.5x 'none', execution p50 in the server
# A disabled yahoo history route for h1 (priority 2), enabled around the "yahoo h1 route on" calls:
# the ranking is then polygon, yahoo, tradier, not in name order (as for m5), with no yahoo bars.
ADD_FALLBACK_ROUTE = (
    "INSERT INTO pgbars.provider_routes (timeframe, provider, purpose, priority, enabled)"
    f" VALUES ('{READ_TIMEFRAME}', 'yahoo', 'history', 2, FALSE)"
)
FALLBACK_ROUTE = (
    "UPDATE pgbars.provider_routes SET enabled = %s"
    f" WHERE timeframe = '{READ_TIMEFRAME}' AND provider = 'yahoo' AND purpose = 'history'"
)
GET_BARS_CHART = "SELECT ts, open, high, low, close, volume FROM pgbars.get_bars(%s, %s, %s, %s, 'none')"
PLAIN = (
    f"SELECT {READ_COLUMNS} FROM pgbars.ohlc_bars_v2"
    " WHERE symbol_id = %s AND timeframe = %s AND ts >= %s AND ts < %s ORDER BY ts"
)


class BenchError(Exception):
    """The benchmark could not run, or the data is not what it should be."""


def say(text: str) -> None:
    print(text, flush=True)


# --- the data -----------------------------------------------------------------------------


def _pg_micros(ts: dt.datetime) -> int:
    return (ts - _PG_EPOCH) // dt.timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Grid:
    """Every bar start of one timeframe in the window (µs since 2000-01-01 UTC), with its chunk number."""

    timeframe: str
    ts: npt.NDArray[np.int64]
    chunk: npt.NDArray[np.int64]
    is_provisional: bool


def build_grid(timeframe: str, years: int, today: dt.date) -> Grid:
    """The pgbars grid of `timeframe` over the last `years` years of completed sessions before `today`."""
    first = today.replace(year=today.year - years)
    sessions = sessions_between(first, today - dt.timedelta(days=1))
    if not sessions:
        raise BenchError("no completed sessions in the window")
    starts: list[int] = []
    chunks: list[int] = []
    if timeframe in INTRADAY_MINUTES:
        step = dt.timedelta(minutes=INTRADAY_MINUTES[timeframe])
        for number, session in enumerate(sessions):
            count = (session.after_hours_close - session.premarket_open) // step
            base = _pg_micros(session.premarket_open)
            micros = step // dt.timedelta(microseconds=1)
            starts.extend(base + k * micros for k in range(count))
            chunks.extend([number // CHUNK_SESSIONS] * count)
    elif timeframe == "d1":
        for number, session in enumerate(sessions):
            starts.append(_pg_micros(day_start(session.session_date)))
            chunks.append(number // CHUNK_SESSIONS)
    elif timeframe == "w1":
        seen: set[dt.date] = set()
        for number, session in enumerate(sessions):
            monday = trading_week_monday(session.session_date)
            if monday not in seen:
                seen.add(monday)
                starts.append(_pg_micros(day_start(monday)))
                chunks.append(number // CHUNK_SESSIONS)
    else:
        raise BenchError(f"unknown timeframe {timeframe!r}")
    return Grid(
        timeframe,
        np.array(starts, dtype=np.int64),
        np.array(chunks, dtype=np.int64),
        timeframe in INTRADAY_MINUTES,
    )


def _row_dtype(timeframe: str) -> np.dtype[Any]:
    """One binary COPY tuple of COPY_COLUMNS, every field preceded by its length, big-endian."""
    sizes: list[tuple[str, str]] = [
        ("symbol_id", "V16"),
        ("timeframe", f"S{len(timeframe)}"),
        ("ts", ">i8"),
        ("provider", f"S{len(PROVIDER)}"),
        ("is_forecast", "u1"),
        ("open", ">f8"),
        ("high", ">f8"),
        ("low", ">f8"),
        ("close", ">f8"),
        ("volume", ">i8"),
        ("vwap", ">f8"),
        ("trade_count", ">i8"),
        ("is_provisional", "u1"),
        ("fetched_at", ">i8"),
    ]
    assert tuple(name for name, _ in sizes) == COPY_COLUMNS
    fields: list[tuple[str, str]] = [("nfields", ">i2")]
    for name, kind in sizes:
        fields += [(f"{name}_len", ">i4"), (name, kind)]
    return np.dtype(fields)


def copy_block(
    grid: Grid, symbol_id: uuid.UUID, symbol_number: int, chunk: int, fetched_at: int
) -> tuple[bytes, int]:
    """Binary COPY tuples of one symbol's bars of one chunk, and how many there are.

    Prices are a random walk seeded by (symbol, timeframe, chunk), so every run writes the same values.
    """
    ts = grid.ts[grid.chunk == chunk]
    n = len(ts)
    if n == 0:
        return b"", 0
    rng = np.random.default_rng((symbol_number, TIMEFRAMES.index(grid.timeframe), chunk))
    base = 20.0 + (symbol_number % 400)
    close = base * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))
    open_ = np.empty(n)
    open_[0] = base
    open_[1:] = close[:-1]
    spread = np.abs(rng.normal(0.0, 0.001, (2, n)))
    high = np.maximum(open_, close) * (1.0 + spread[0])
    low = np.minimum(open_, close) * (1.0 - spread[1])
    rows = np.zeros(n, dtype=_row_dtype(grid.timeframe))
    rows["nfields"] = len(COPY_COLUMNS)
    for name, size in (
        ("symbol_id", 16),
        ("timeframe", len(grid.timeframe)),
        ("ts", 8),
        ("provider", len(PROVIDER)),
        ("is_forecast", 1),
        ("open", 8),
        ("high", 8),
        ("low", 8),
        ("close", 8),
        ("volume", 8),
        ("vwap", 8),
        ("trade_count", 8),
        ("is_provisional", 1),
        ("fetched_at", 8),
    ):
        rows[f"{name}_len"] = size
    rows["symbol_id"] = np.void(symbol_id.bytes)
    rows["timeframe"] = grid.timeframe.encode()
    rows["ts"] = ts
    rows["provider"] = PROVIDER.encode()
    rows["is_forecast"] = 0
    rows["open"] = open_
    rows["high"] = high
    rows["low"] = low
    rows["close"] = close
    rows["volume"] = rng.integers(100, 1_000_000, n)
    rows["vwap"] = (high + low + close) / 3.0
    rows["trade_count"] = rng.integers(1, 5_000, n)
    # history, as store_chunk_bars writes it: never provisional
    rows["is_provisional"] = 0
    rows["fetched_at"] = fetched_at
    return rows.tobytes(), n


@dataclass(slots=True)
class Build:
    rows: int = 0
    seconds: float = 0.0
    fk_checks: bool = True
    table_bytes: int = 0
    index_bytes: int = 0
    vacuum_seconds: float = 0.0
    per_timeframe: dict[str, int] = field(default_factory=dict)
    splits: int = 0
    reverse_splits: int = 0
    dividends: int = 0


INSERT_ACTION = (
    "INSERT INTO pgbars.corporate_actions (symbol_id, kind, ex_date, split_from, split_to, cash_amount,"
    " currency, provider, fetched_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now())"
)
SPLITS = ((1, 2), (1, 3), (1, 4), (1, 10))  # (split_from, split_to): 2-for-1 ... 10-for-1
REVERSE_SPLIT = (8, 1)  # 1-for-8


def corporate_actions(
    symbol_number: int, sessions: Sequence[dt.date], dividends: int
) -> list[tuple[str, dt.date, int | None, int | None, Decimal | None, str | None, str]]:
    """One symbol's split and `dividends` USD cash dividends at sessions of the window, the same every run.

    Rows (kind, ex_date, split_from, split_to, cash_amount, currency, provider) for corporate_actions,
    so that get_bars' 'splits' and 'all' really compute. The split is at a random session after the
    first two, 2, 3, 4 or 10 for 1 (1 for 8 for about one symbol in ten). The dividends are evenly
    spaced (quarterly: 8 in 2 years) from a random early session, each 0.2-1 % of the symbol's price
    (copy_block's base price, which its random walk stays within a few % of). Every ex-date has a
    previous session in the window, whose d1 bar (else its last regular h1 bar) gives the
    dividend's factor. The bars are not changed to match: copy_block's prices do not jump at the
    split or drop by the dividends, as a provider's raw bars would. The benchmark times the
    adjustment, not its meaning.
    """
    rng = random.Random(f"actions {symbol_number}")
    base = 20.0 + (symbol_number % 400)
    split_from, split_to = REVERSE_SPLIT if rng.random() < 0.1 else rng.choice(SPLITS)
    actions: list[tuple[str, dt.date, int | None, int | None, Decimal | None, str | None, str]] = [
        ("split", rng.choice(sessions[2:]), split_from, split_to, None, None, PROVIDER)
    ]
    spacing = len(sessions) // dividends
    first = rng.randrange(2, spacing)
    for n in range(dividends):
        amount = Decimal(f"{base * rng.uniform(0.002, 0.01):.4f}")
        actions.append(("dividend", sessions[first + n * spacing], None, None, amount, "USD", PROVIDER))
    return actions


COPY = sql.SQL("COPY pgbars.ohlc_bars_v2 ({}) FROM STDIN (FORMAT BINARY)").format(
    sql.SQL(", ").join(map(sql.Identifier, COPY_COLUMNS))
)


def load_part(
    dsn: str,
    grids: Sequence[Grid],
    symbols: Sequence[tuple[int, uuid.UUID]],
    chunks: Sequence[int],
    progress: Callable[[int], None],
) -> tuple[int, bool]:
    """COPY the bars of `symbols`, chunk by chunk (newest first), symbol by symbol.

    One transaction per chunk. Returns the bars written and whether references were checked.
    """
    fetched_at = _pg_micros(dt.datetime.now(dt.UTC))
    written = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        fk_checks = True
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("SET session_replication_role = replica")
            fk_checks = False
        for chunk in chunks:
            with conn.transaction(), conn.cursor().copy(COPY) as copy:
                copy.write(_SIGNATURE)
                for number, symbol_id in symbols:
                    for grid in grids:
                        data, n = copy_block(grid, symbol_id, number, chunk, fetched_at)
                        if n:
                            copy.write(data)
                            written += n
                copy.write(_TRAILER)
            progress(written)
    return written, fk_checks


def build(dsn: str, tickers: Sequence[str], timeframes: Sequence[str], years: int, jobs: int) -> Build:
    """Fill ohlc_bars_v2; VACUUM ANALYZE; CHECKPOINT."""
    result = Build()
    today = dt.datetime.now(dt.UTC).date()
    grids = [build_grid(tf, years, today) for tf in timeframes]
    for grid in grids:
        result.per_timeframe[grid.timeframe] = len(grid.ts) * len(tickers)
    expected = sum(result.per_timeframe.values())
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.cursor()
        cur.executemany("INSERT INTO pgbars.symbols (ticker) VALUES (%s)", [(t,) for t in tickers])
        ids: dict[str, uuid.UUID] = dict(conn.execute("SELECT ticker, id FROM pgbars.symbols").fetchall())
        first = today.replace(year=today.year - years)  # the grid's sessions (build_grid)
        sessions = [s.session_date for s in sessions_between(first, today - dt.timedelta(days=1))]
        actions = [
            (ids[ticker], *action)
            for number, ticker in enumerate(tickers)
            for action in corporate_actions(number, sessions, 4 * years)
        ]
        cur.executemany(INSERT_ACTION, actions)
        splits = [a[3:5] for a in actions if a[1] == "split"]
        result.splits, result.dividends = len(splits), len(actions) - len(splits)
        result.reverse_splits = splits.count(REVERSE_SPLIT)
    numbered = [(n, ids[t]) for n, t in enumerate(tickers)]
    parts = [numbered[k::jobs] for k in range(jobs)]
    chunks = sorted({int(c) for grid in grids for c in grid.chunk}, reverse=True)
    say(
        f"building {expected:,} bars ({', '.join(f'{tf} {n:,}' for tf, n in result.per_timeframe.items())})"
        f" in {len(chunks)} chunks over {jobs} connections ..."
    )
    done = [0] * jobs
    last_report = [time.perf_counter()]
    started = time.perf_counter()

    def reporter(part: int) -> Callable[[int], None]:
        def report(written: int) -> None:
            done[part] = written
            now = time.perf_counter()
            if now - last_report[0] > 15:
                last_report[0] = now
                total = sum(done)
                say(f"  {total:,} bars in {now - started:.0f} s ({total / (now - started):,.0f} bars/s)")

        return report

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [
            pool.submit(load_part, dsn, grids, part, chunks, reporter(k))
            for k, part in enumerate(parts)
            if part
        ]
        outcomes = [f.result() for f in futures]
    result.seconds = time.perf_counter() - started
    result.rows = sum(n for n, _ in outcomes)
    result.fk_checks = any(checked for _, checked in outcomes)
    if result.rows != expected:
        raise BenchError(f"wrote {result.rows:,} bars, expected {expected:,}")
    say(f"  {result.rows:,} bars in {result.seconds:.1f} s ({result.rows / result.seconds:,.0f} bars/s)")
    with psycopg.connect(dsn, autocommit=True) as conn:
        # every dividend finds its previous session's close, so 'all' applies all of them
        row = conn.execute(
            "SELECT count(*) FROM pgbars.corporate_actions WHERE kind = 'dividend'"
            " AND pgbars._dividend_factor(symbol_id, ex_date, cash_amount) IS NULL"
        ).fetchone()
        if row is None or row[0]:
            raise BenchError(f"{row[0] if row else '?'} dividends find no previous close")
        add_layouts(conn, tickers[0])
        started = time.perf_counter()
        conn.execute("VACUUM (ANALYZE) pgbars.ohlc_bars_v2")
        conn.execute("ANALYZE pgbars.symbols")
        conn.execute(ADD_FALLBACK_ROUTE)
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")
        result.vacuum_seconds = time.perf_counter() - started
        row = conn.execute(  # summed over the partitions (by year, migration 0016)
            "SELECT sum(pg_table_size(relid)), sum(pg_indexes_size(relid))"
            " FROM pg_partition_tree('pgbars.ohlc_bars_v2') WHERE isleaf"
        ).fetchone()
        assert row is not None
        result.table_bytes, result.index_bytes = int(row[0]), int(row[1])
    return result


# --- the measurements ---------------------------------------------------------------------


@dataclass(slots=True)
class Series:
    name: str
    server: bool = False  # timed inside the server (EXPLAIN ANALYZE), not from Python
    millis: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # the Python process's CPU ms (process_time)
    rows: list[int] = field(default_factory=list)

    def add(self, timing: tuple[float, float], rows: int) -> None:
        self.millis.append(timing[0])
        self.cpu.append(timing[1])
        self.rows.append(rows)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.millis)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.millis)


def timed(
    cur: psycopg.Cursor[Any], query: str, params: Sequence[Any]
) -> tuple[tuple[float, float], list[Any]]:
    """(wall ms, client CPU ms) to execute and fetch every row (binary results), and the rows."""
    started, cpu = time.perf_counter(), time.process_time()
    cur.execute(query, params, binary=True)
    rows = cur.fetchall()
    return ((time.perf_counter() - started) * 1000.0, (time.process_time() - cpu) * 1000.0), rows


def frame_timed(
    conn: psycopg.Connection[Any], ours: bool, pandas_sql: bool, params: Sequence[Any]
) -> tuple[tuple[float, float], int]:
    """(wall ms, client CPU ms) to read get_bars' rows into a DataFrame, and its length: with
    read_bars (binary arrays into numpy), pandas.read_sql or polars.read_database (the same query)."""
    ticker, timeframe, start, end = params
    started, cpu = time.perf_counter(), time.process_time()
    if ours:
        frame = read_bars(conn, ticker, timeframe, start, end, adjust="none")
    elif pandas_sql:
        import warnings

        import pandas as pd

        with warnings.catch_warnings():  # pandas prefers SQLAlchemy; a DBAPI connection works
            warnings.simplefilter("ignore", UserWarning)
            frame = pd.read_sql(GET_BARS, conn, params=tuple(params))
    else:
        import polars as pl

        frame = pl.read_database(GET_BARS, conn, execute_options={"params": tuple(params)})
    return ((time.perf_counter() - started) * 1000.0, (time.process_time() - cpu) * 1000.0), len(frame)


# How read_bars reads every symbol in bulk_read: (label, connections), side by side.
BULK_WAYS = (("1 connection", 1), ("2 connections", 2), ("4 connections (the default)", None))


def bulk_read(
    dsn: str, tickers: Sequence[str], years: int, runs: int = 3
) -> dict[str, list[tuple[int, float]]]:
    """(bars, seconds) of read_bars of every symbol's h1 over the window into one pandas frame,
    from a DSN over each of BULK_WAYS' connection counts, the ways taking turns."""
    end = dt.datetime.now(dt.UTC)
    start = end.replace(year=end.year - years)
    out: dict[str, list[tuple[int, float]]] = {label: [] for label, _ in BULK_WAYS}
    for _ in range(runs):
        for label, connections in BULK_WAYS:
            started = time.perf_counter()
            frame = read_bars(dsn, list(tickers), READ_TIMEFRAME, start, end, "none", connections=connections)
            out[label].append((len(frame), time.perf_counter() - started))
    return out


# Server-side statements for EXPLAIN EXECUTE: prepared on the server like psycopg's (which
# prepares a query from its 6th run), so the plan cache picks custom or generic plans alike.
PREPARE_SERVER = (
    "PREPARE server_get_bars (text, text, timestamptz, timestamptz)"
    " AS SELECT * FROM pgbars.get_bars($1, $2, $3, $4, 'none')",
    "PREPARE server_splits (text, text, timestamptz, timestamptz)"
    " AS SELECT * FROM pgbars.get_bars($1, $2, $3, $4, 'splits')",
    "PREPARE server_all (text, text, timestamptz, timestamptz)"
    " AS SELECT * FROM pgbars.get_bars($1, $2, $3, $4, 'all')",
    f"PREPARE server_plain (uuid, text, timestamptz, timestamptz) AS SELECT {READ_COLUMNS}"
    " FROM pgbars.ohlc_bars_v2 WHERE symbol_id = $1 AND timeframe = $2 AND ts >= $3 AND ts < $4 ORDER BY ts",
)
SERIALIZE = {False: "NONE", True: "BINARY"}


def server_timed(
    cur: psycopg.ClientCursor[Any], statement: str, params: Sequence[Any], serialize: bool
) -> tuple[float, int]:
    """(ms, rows) of one execution timed inside the server: EXPLAIN ANALYZE's Execution Time.

    TIMING OFF (no clock reads per row; rows are still counted per plan node). SERIALIZE BINARY
    adds turning every row into the binary wire format, as for the client, without sending it.
    """
    row = cur.execute(
        f"EXPLAIN (ANALYZE, TIMING OFF, SERIALIZE {SERIALIZE[serialize]}, FORMAT JSON)"
        f" EXECUTE {statement} (%s, %s, %s, %s)",
        params,
    ).fetchone()
    assert row is not None
    result = row[0][0]
    return float(result["Execution Time"]), int(result["Plan"]["Actual Rows"])


PYTHON_NAME = "get_bars from Python: SELECT *, p_adjust {}"
EXECUTION_NAME = "get_bars in the server: execution, p_adjust {}"
SERIALIZED_NAME = "get_bars in the server: execution + serialization, p_adjust {}"
SERVER_STATEMENT = {"none": "server_get_bars", "splits": "server_splits", "all": "server_all"}


def _check_adjusted(ticker: str, adjust: str, rows: Sequence[Any], reference: Sequence[Any]) -> None:
    """`rows` (get_bars with p_adjust `adjust`) are `reference`'s bars, with the first bar adjusted.

    The same ts, trade_count, provider, is_provisional and fetched_at, bar for bar; the first bar
    lies before the symbol's split and its dividends, so its close differs from the reference's.
    """
    if [(r[0], *r[7:]) for r in rows] != [(r[0], *r[7:]) for r in reference]:
        raise BenchError(f"{ticker}: get_bars with p_adjust {adjust} returned other bars")
    if not rows or rows[0][4] == reference[0][4]:
        raise BenchError(f"{ticker}: get_bars with p_adjust {adjust} adjusted nothing")


def measure(
    dsn: str, tickers: Sequence[str], iterations: int, years: int, seed: int
) -> tuple[list[Series], list[float]]:
    """Each query once per iteration, for the same random symbol, in an order that rotates.

    Returns the series and the 1-minute load averages seen during the run.
    """
    python = {adjust: Series(PYTHON_NAME.format(adjust)) for adjust in ADJUSTS}
    ranked = Series("get_bars from Python, yahoo h1 route on")
    chart = Series("get_bars from Python, 6 columns")
    plain = Series("plain SELECT from Python (baseline)")
    frame = Series("read_bars into pandas (binary arrays)")
    pandas_sql = Series("pandas.read_sql of get_bars")
    polars_db = Series("polars.read_database of get_bars")
    executed = {adjust: Series(EXECUTION_NAME.format(adjust), server=True) for adjust in ADJUSTS}
    serialized = {adjust: Series(SERIALIZED_NAME.format(adjust), server=True) for adjust in ADJUSTS}
    plain_exec = Series("plain SELECT in the server: execution", server=True)
    plain_serialized = Series("plain SELECT in the server: execution + serialization", server=True)
    order = [
        *python.values(),
        ranked,
        chart,
        plain,
        frame,
        pandas_sql,
        polars_db,
        *executed.values(),
        *serialized.values(),
        plain_exec,
        plain_serialized,
    ]
    # server-timed series: (prepared statement, reads by symbol_id, serialized)
    server_runs = {
        **{executed[a].name: (SERVER_STATEMENT[a], False, False) for a in ADJUSTS},
        **{serialized[a].name: (SERVER_STATEMENT[a], False, True) for a in ADJUSTS},
        plain_exec.name: ("server_plain", True, False),
        plain_serialized.name: ("server_plain", True, True),
    }
    queries = {
        **{python[a].name: GET_BARS_ADJUSTED[a] for a in ADJUSTS},
        chart.name: GET_BARS_CHART,
        plain.name: PLAIN,
    }
    rng = random.Random(seed)
    loads: list[float] = []
    with psycopg.connect(dsn, autocommit=True, options="-c TimeZone=UTC") as conn:
        ids: dict[str, uuid.UUID] = dict(conn.execute("SELECT ticker, id FROM pgbars.symbols").fetchall())
        cur = conn.cursor()
        server_cur = psycopg.ClientCursor(conn)  # EXPLAIN EXECUTE takes its parameters inline
        for statement in PREPARE_SERVER:
            conn.execute(statement)
        for n in range(iterations):
            if n % 25 == 0:
                loads.append(os.getloadavg()[0])
            ticker = rng.choice(tickers)
            end = dt.datetime.now(dt.UTC)
            params = (ticker, READ_TIMEFRAME, end.replace(year=end.year - years), end)
            plain_params = (ids[ticker], *params[1:])
            shift = n % len(order)  # rotate which goes first
            returned: dict[str, list[Any]] = {}
            for series in order[shift:] + order[:shift]:
                if series.server:
                    statement, by_id, serialize = server_runs[series.name]
                    millis, count = server_timed(
                        server_cur, statement, plain_params if by_id else params, serialize
                    )
                    series.add((millis, 0.0), count)
                    continue
                if series in (frame, pandas_sql, polars_db):
                    timing, count = frame_timed(conn, series is frame, series is pandas_sql, params)
                    series.add(timing, count)
                    continue
                if series is ranked:
                    conn.execute(FALLBACK_ROUTE, (True,))  # not timed
                    timing, rows = timed(cur, GET_BARS, params)
                    conn.execute(FALLBACK_ROUTE, (False,))
                else:
                    timing, rows = timed(
                        cur, queries[series.name], params if series is not plain else plain_params
                    )
                series.add(timing, len(rows))
                returned[series.name] = rows
            unadjusted = returned[python["none"].name]
            if not unadjusted == returned[ranked.name] == returned[plain.name]:
                raise BenchError(f"{ticker}: get_bars and the plain SELECT returned different rows")
            _check_adjusted(ticker, "splits", returned[python["splits"].name], unadjusted)
            _check_adjusted(ticker, "all", returned[python["all"].name], returned[python["splits"].name])
            counts = {s.rows[-1] for s in order if s.server} | {len(rows) for rows in returned.values()}
            if counts != {len(unadjusted)}:
                raise BenchError(f"{ticker}: the statements returned other row counts: {sorted(counts)}")
        loads.append(os.getloadavg()[0])
    return order, loads


# --- other layouts of a symbol's bars -----------------------------------------------------

# Three more symbols, each with the h1 bars of the first benchmark symbol laid out otherwise
# (written after the benchmark's bars; not part of the 500 symbols' figures):
LAYOUTS = {
    # polygon's history, and tradier's provisional bars for its last session and the next day
    "LIVE": (
        "SELECT ts, 'polygon', FALSE FROM source"
        " UNION ALL SELECT ts, 'tradier', TRUE FROM (SELECT ts FROM source ORDER BY ts DESC LIMIT 16) AS last"
        " UNION ALL SELECT ts + interval '1 day', 'tradier', TRUE"
        " FROM (SELECT ts FROM source ORDER BY ts DESC LIMIT 16) AS last"
    ),
    # a fallback provider served the newer half of the window (yahoo; polygon ranks first)
    "HALF": (
        "SELECT ts, CASE WHEN ts < (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY ts) FROM source)"
        " THEN 'polygon' ELSE 'yahoo' END, FALSE FROM source"
    ),
    # two providers hold every bar (polygon and yahoo)
    "BOTH": "SELECT ts, p, FALSE FROM source CROSS JOIN (VALUES ('polygon'), ('yahoo')) AS x (p)",
}


def add_layouts(conn: psycopg.Connection[Any], source_ticker: str) -> None:
    """The LAYOUTS symbols, from `source_ticker`'s h1 bars (prices copied, providers as laid out)."""
    for ticker, layout in LAYOUTS.items():
        conn.execute(
            "WITH source AS (SELECT b.* FROM pgbars.ohlc_bars_v2 AS b INNER JOIN pgbars.symbols AS s"
            f" ON b.symbol_id = s.id WHERE s.ticker = %s AND b.timeframe = '{READ_TIMEFRAME}'),"
            " symbol AS (INSERT INTO pgbars.symbols (ticker) VALUES (%s) RETURNING id)"
            " INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, open, high, low, close,"
            " volume, vwap, trade_count, is_provisional)"
            f" SELECT (SELECT id FROM symbol), '{READ_TIMEFRAME}', l.ts, l.provider, s.open, s.high, s.low,"
            " s.close, s.volume, s.vwap, s.trade_count, l.is_provisional"
            f" FROM ({layout}) AS l (ts, provider, is_provisional)"
            " INNER JOIN source AS s ON s.ts = l.ts - CASE WHEN l.ts > (SELECT max(ts) FROM source)"
            " THEN interval '1 day' ELSE interval '0' END",
            (source_ticker, ticker),
        )


def measure_layouts(dsn: str, iterations: int, years: int) -> list[Series]:
    """get_bars of each LAYOUTS symbol, from Python and inside the server, in turns."""
    series: list[Series] = []
    for ticker in LAYOUTS:
        series.append(Series(f"{ticker}: get_bars from Python"))
        series.append(Series(f"{ticker}: get_bars in the server: execution", server=True))
    with psycopg.connect(dsn, autocommit=True, options="-c TimeZone=UTC") as conn:
        cur = conn.cursor()
        server_cur = psycopg.ClientCursor(conn)
        conn.execute(PREPARE_SERVER[0])
        for n in range(iterations):
            end = dt.datetime.now(dt.UTC)
            # to two days ahead: LIVE has bars of the day after its last session
            window = (end.replace(year=end.year - years), end + dt.timedelta(days=2))
            shift = n % len(series)
            for s in series[shift:] + series[:shift]:
                params = (s.name.split(":")[0], READ_TIMEFRAME, *window)
                if s.server:
                    millis, count = server_timed(server_cur, "server_get_bars", params, serialize=False)
                    s.add((millis, 0.0), count)
                else:
                    timing, rows = timed(cur, GET_BARS, params)
                    s.add(timing, len(rows))
    return series


def _plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _plan_nodes(child)


def check_plan(cur: psycopg.ClientCursor[Any], statement: str, arguments: Sequence[Any]) -> None:
    """The statement's plan reads each year of the window (ohlc_bars_v2 is partitioned by year) by
    an Index Scan of that partition's primary key, the other years pruned (EXPLAIN ANALYZE shows
    only the years a generic plan kept), with a custom and with a generic plan: every p_adjust keeps
    get_bars on its range scans, with no sort."""
    start, end = arguments[2], arguments[3]
    years = [f"ohlc_bars_v2_y{year}" for year in range(start.year, end.year + 1)]
    for mode in ("force_custom_plan", "force_generic_plan"):
        cur.execute(f"SET plan_cache_mode = {mode}")
        row = cur.execute(
            f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {statement} (%s, %s, %s, %s)", arguments
        ).fetchone()
        assert row is not None
        nodes = list(_plan_nodes(row[0][0]["Plan"]))
        reads = [
            (n["Node Type"], n.get("Index Name"))
            for n in nodes
            if (n.get("Relation Name") or "").startswith("ohlc_bars_v2")
        ]
        others = [
            n["Node Type"]
            for n in nodes
            if n["Node Type"] in ("Seq Scan", "Bitmap Heap Scan", "Sort", "Merge Append")
        ]
        if reads != [("Index Scan", f"{year}_pkey") for year in years] or others:
            raise BenchError(f"{statement} ({mode}): reads ohlc_bars_v2 by {reads}, with {others}")
    cur.execute("RESET plan_cache_mode")


def check_plans(dsn: str, ticker: str, years: int) -> None:
    """check_plan of get_bars for each p_adjust, prepared as in the loop, before it runs."""
    end = dt.datetime.now(dt.UTC)
    params = (ticker, READ_TIMEFRAME, end.replace(year=end.year - years), end)
    with psycopg.connect(dsn, autocommit=True, options="-c TimeZone=UTC") as conn:
        for statement in PREPARE_SERVER:
            conn.execute(statement)
        cur = psycopg.ClientCursor(conn)
        for adjust in ADJUSTS:
            check_plan(cur, SERVER_STATEMENT[adjust], params)


def explain(dsn: str, ticker: str, years: int) -> list[tuple[str, str]]:
    """EXPLAIN (ANALYZE, BUFFERS) of get_bars for each p_adjust and of the plain SELECT, as prepared
    in the loop.

    Each is the 7th execution of its prepared statement on the connection (after 5 custom plans
    and one more), as in the measured loop.
    """
    end = dt.datetime.now(dt.UTC)
    params = (ticker, READ_TIMEFRAME, end.replace(year=end.year - years), end)
    plans = []
    with psycopg.connect(dsn, autocommit=True, options="-c TimeZone=UTC") as conn:
        for statement in PREPARE_SERVER:
            conn.execute(statement)
        symbol_id = conn.execute("SELECT id FROM pgbars.symbols WHERE ticker = %s", (ticker,)).fetchone()
        assert symbol_id is not None
        cur = psycopg.ClientCursor(conn)
        for label, statement, arguments in (
            *((f"get_bars(..., '{a}')", SERVER_STATEMENT[a], params) for a in ADJUSTS),
            ("the plain SELECT", "server_plain", (symbol_id[0], *params[1:])),
        ):
            for _ in range(6):
                cur.execute(f"EXECUTE {statement} (%s, %s, %s, %s)", arguments).fetchall()
            lines = cur.execute(
                f"EXPLAIN (ANALYZE, BUFFERS, SERIALIZE BINARY) EXECUTE {statement} (%s, %s, %s, %s)",
                arguments,
            ).fetchall()
            plans.append((f"{label}, 7th execution", "\n".join(str(r[0]) for r in lines)))
    return plans


# --- the run ------------------------------------------------------------------------------


def _drop(name: str) -> sql.Composed:
    return sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))


async def _install(dsn: str) -> None:
    conn = await db.connect(dsn)
    try:
        await db.upgrade(conn)
    finally:
        await conn.close()


@contextlib.contextmanager
def bench_database(server_dsn: str, keep: bool) -> Iterator[str]:
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(_drop(DATABASE))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    dsn = make_conninfo(server_dsn, dbname=DATABASE)
    try:
        asyncio.run(_install(dsn))
        yield dsn
    finally:
        if not keep:
            with psycopg.connect(server_dsn, autocommit=True) as admin:
                admin.execute(_drop(DATABASE))


def describe_server(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        settings = []
        for name in ("server_version", "shared_buffers", "work_mem", "random_page_cost", "jit"):
            row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
            settings.append(f"{name}={row[0] if row else '?'}")
    return " ".join(settings)


def _columns(table: Sequence[Sequence[str]]) -> list[str]:
    """The rows aligned in columns (the first left, the others right), a rule under the header."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = []
    for n, row in enumerate(table):
        cells = [row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))]
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def _table(series: Sequence[Series]) -> list[str]:
    header = (
        "query",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "mean ms",
        "min ms",
        "max ms",
        "client CPU p50 ms",
        "rows",
    )
    table = [header]
    for s in series:
        table.append(
            (
                s.name,
                f"{s.p50:.2f}",
                f"{s.quantile(0.9):.2f}",
                f"{s.quantile(0.99):.2f}",
                f"{statistics.fmean(s.millis):.2f}",
                f"{min(s.millis):.2f}",
                f"{max(s.millis):.2f}",
                "-" if s.server else f"{statistics.median(s.cpu):.2f}",
                f"{min(s.rows):,}" if min(s.rows) == max(s.rows) else f"{min(s.rows):,}-{max(s.rows):,}",
            )
        )
    return _columns(table)


def _adjust_table(by_name: dict[str, Series]) -> list[str]:
    """get_bars' p50, p90 and p99 for each p_adjust side by side, and the ratios to 'none'."""
    header = ("get_bars", "", *(f"{a} ms" for a in ADJUSTS), "splits/none", "all/none")
    table = [header]
    for label, name in (
        ("in the server: execution", EXECUTION_NAME),
        ("in the server: execution + serialization", SERIALIZED_NAME),
        ("from Python: SELECT *", PYTHON_NAME),
    ):
        for q in (0.5, 0.9, 0.99):
            none, splits, every = (
                by_name[name.format(a)].p50 if q == 0.5 else by_name[name.format(a)].quantile(q)
                for a in ADJUSTS
            )
            table.append(
                (
                    label if q == 0.5 else "",
                    f"p{round(q * 100)}",
                    f"{none:.2f}",
                    f"{splits:.2f}",
                    f"{every:.2f}",
                    f"{splits / none:.2f}x",
                    f"{every / none:.2f}x",
                )
            )
    return _columns(table)


def report(
    build_result: Build,
    series: Sequence[Series],
    loads: Sequence[float],
    layouts: Sequence[Series],
    iterations: int,
) -> str:
    b = build_result
    sizes = ", ".join(f"{tf} {n:,}" for tf, n in b.per_timeframe.items())
    lines = [
        f"data: {b.rows:,} bars ({sizes}); table {b.table_bytes / 2**30:.2f} GiB,"
        f" indexes {b.index_bytes / 2**30:.2f} GiB",
        f"built in {b.seconds:.1f} s (reference checks {'on' if b.fk_checks else 'off'}),"
        f" VACUUM ANALYZE + CHECKPOINT {b.vacuum_seconds:.1f} s",
        f"{iterations} iterations, random symbols, {READ_TIMEFRAME} over 2 years; 1-minute load average"
        f" {min(loads):.2f}-{max(loads):.2f} during the run",
        "from Python: client wall time of execute + fetchall (psycopg 3, binary results, TimeZone UTC);"
        " in the server: EXPLAIN (ANALYZE, TIMING OFF) Execution Time of the same prepared statement",
        "",
        *_table(series),
    ]
    by_name = {s.name: s for s in series}
    python = by_name[PYTHON_NAME.format("none")]
    server = by_name[EXECUTION_NAME.format("none")]
    splits = by_name[EXECUTION_NAME.format("splits")]
    serialized = by_name[SERIALIZED_NAME.format("none")]
    plain = by_name["plain SELECT from Python (baseline)"]
    lines += [
        "",
        f"get_bars p50: {python.p50:.2f} ms from Python; in the server {serialized.p50:.2f} ms"
        f" ({server.p50:.2f} executing, {serialized.p50 - server.p50:.2f} serializing), the rest"
        f" ({python.p50 - serialized.p50:.2f} ms) sending and decoding; plain SELECT {plain.p50:.2f} ms",
        f"target p50 < {TARGET_P50_MS:g} ms from Python: {'MET' if python.p50 < TARGET_P50_MS else 'MISSED'}"
        f" ({python.p50:.2f} ms)",
        f"target p50 < {TARGET_P50_MS:g} ms in the server (execution):"
        f" {'MET' if server.p50 < TARGET_P50_MS else 'MISSED'} ({server.p50:.2f} ms)",
        "",
        f"get_bars by p_adjust (the same symbols; {b.splits:,} splits, {b.reverse_splits:,} of them 1 for 8,"
        f" and {b.dividends:,} USD dividends in corporate_actions):",
        *_adjust_table(by_name),
        f"target splits <= {TARGET_SPLITS_RATIO:g}x none in the server (execution p50):"
        f" {'MET' if splits.p50 <= TARGET_SPLITS_RATIO * server.p50 else 'MISSED'}"
        f" ({splits.p50 / server.p50:.2f}x)",
    ]
    frame = by_name["read_bars into pandas (binary arrays)"]
    lines += [
        f"read_bars into pandas p50 {frame.p50:.2f} ms, psycopg fetch of the same get_bars rows"
        f" {python.p50:.2f} ms ({frame.p50 / python.p50:.2f}x); pandas.read_sql"
        f" {by_name['pandas.read_sql of get_bars'].p50:.2f} ms, polars.read_database"
        f" {by_name['polars.read_database of get_bars'].p50:.2f} ms;"
        f" target <= 0.5x the psycopg fetch: {'MET' if frame.p50 <= 0.5 * python.p50 else 'MISSED'}",
        f"the server alone (get_bars executed and serialized, not sent) takes {serialized.p50:.2f} ms p50,"
        f" {serialized.p50 / python.p50:.2f}x the psycopg fetch: what any client of get_bars' rows waits for",
    ]
    if layouts:
        lines += ["", "other layouts of one symbol's h1 bars (bench.read.LAYOUTS):", *_table(layouts)]
    return "\n".join(lines)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.read",
        description="Latency of pgbars.get_bars (h1, 2 years) next to a plain SELECT of the same rows.",
    )
    parser.add_argument("--symbols", type=int, default=500, help="tickers (500)")
    parser.add_argument(
        "--timeframes",
        default="m15,h1,d1,w1",
        help="timeframes stored for every ticker, comma-separated; must include h1 (m15,h1,d1,w1)",
    )
    parser.add_argument("--years", type=int, default=2, help="years of sessions per ticker (2)")
    parser.add_argument("--iterations", type=int, default=500, help="measured reads per query (500)")
    parser.add_argument("--jobs", type=int, default=2, help="connections loading in parallel (2)")
    parser.add_argument("--seed", type=int, default=5, help="seed of the symbol picks (5)")
    parser.add_argument(
        "--dsn",
        help=f"a database on an existing server whose user may create databases; the bench creates"
        f" and drops {DATABASE} there (default: a private embedded server)",
    )
    parser.add_argument("--keep", action="store_true", help=f"keep the {DATABASE} database")
    args = parser.parse_args(argv)
    args.timeframes = [t.strip() for t in args.timeframes.split(",") if t.strip()]
    if READ_TIMEFRAME not in args.timeframes:
        parser.error(f"--timeframes must include {READ_TIMEFRAME}")
    if args.symbols < 1 or args.iterations < 1 or args.jobs < 1 or args.years < 1:
        parser.error("--symbols, --iterations, --jobs and --years must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tickers = [f"BR{n:04d}" for n in range(args.symbols)]
    say(
        f"{args.symbols} symbols x {', '.join(args.timeframes)} x {args.years} years;"
        f" {os.cpu_count()} CPUs, Python {platform.python_version()}, psycopg {psycopg.__version__},"
        f" load average {_load()}"
    )
    server = None
    scratch = Path()
    if args.dsn:
        server_dsn = args.dsn
    else:
        from worker.embedded import EmbeddedPostgres

        scratch = Path(tempfile.mkdtemp(prefix="pgbars-bench-read-"))
        server = EmbeddedPostgres(scratch / "postgres", delete_on_stop=True)
        server_dsn = server.dsn("postgres")
    try:
        with bench_database(server_dsn, args.keep) as dsn:
            say(describe_server(dsn))
            built = build(dsn, tickers, args.timeframes, args.years, args.jobs)
            check_plans(dsn, tickers[0], args.years)
            say(
                "plans checked: get_bars with p_adjust none, splits and all reads ohlc_bars_v2 by one"
                " Index Scan of each year's primary key, the other years pruned (custom and generic plans)"
            )
            say(f"measuring {args.iterations} iterations ...")
            series, loads = measure(dsn, tickers, args.iterations, args.years, args.seed)
            layouts = measure_layouts(dsn, max(20, args.iterations // 5), args.years)
            say("reading every symbol's h1 into one frame ...")
            bulk = bulk_read(dsn, tickers, args.years)
            plans = explain(dsn, tickers[len(tickers) // 2], args.years)
    except (BenchError, PgbarsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(scratch, ignore_errors=True)
    say("")
    say(report(built, series, loads, layouts, args.iterations))
    for label, runs in bulk.items():
        bars, seconds = min(runs, key=lambda run: run[1])
        say(
            f"read_bars of {len(tickers)} symbols' h1 into one pandas frame, {label}: {bars:,} bars in"
            f" {seconds:.2f} s at best of {len(runs)} ({bars / seconds:,.0f} bars/s; all runs:"
            f" {', '.join(f'{s:.2f} s' for _, s in runs)}); target >= 2,000,000 bars/s:"
            f" {'MET' if bars / seconds >= 2_000_000 else 'MISSED'}"
        )
    say("")
    for label, plan in plans:
        say(f"EXPLAIN (ANALYZE, BUFFERS) of {label}:")
        say(plan)
        say("")
    say(f"load average at the end: {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
