"""ohlc_bars_v2 at 50 M bars, partitioned by year (migration 0016) next to the table before it, in one run.

    .venv/bin/python -m bench.scale                       # 10,000 symbols, ~50 M bars; embedded server
    .venv/bin/python -m bench.scale --symbols 500 --reads 100 --ingest-bars 50000    # a quick run
    .venv/bin/python -m bench.scale --dsn postgresql://postgres@/postgres?host=/run/postgresql

Three databases, one per layout of ohlc_bars_v2: `pgbars_bench_scale_partitioned`
(pgbars as `db upgrade` installs it: by year), `pgbars_bench_scale_plain` (the
migration chain through 0015: the same table, columns, primary key, checks and
triggers, not partitioned; today's routines) and `pgbars_bench_scale_hash` (that
table rebuilt PARTITION BY HASH (symbol_id) into 16, the alternative that was
measured and not chosen). Each gets --symbols tickers with d1 bars for the last --d1-years
years of completed XNYS sessions and h1 bars (04:00-20:00 New York) for the
last --h1-sessions sessions: 10,000 x (2,514 + 2,560) = 50.7 M bars by
default. The rows are made by the server (INSERT ... SELECT over
market_sessions, the reference triggers skipped: `session_replication_role =
replica`, superuser only; the rows are valid by construction) over --jobs
connections, in the order the worker stores them: 52-session windows, newest
first, every symbol's bars of one window before the next window (so one
symbol's bars lie in many runs, not in one block). Then VACUUM ANALYZE.

Measured, the three layouts side by side:

fill            the server-side load above: seconds and bars/s (not the worker's path)
sizes           heap (with TOAST) and index bytes, summed over the partitions
ingest          bars/s through the real write path (bench.ingest's: Polygon pages of
                m1 bars validated by PolygonProvider's page reader and BarSieve, then
                worker.db.store: binary COPY into staging and pgbars.store_lease), for
                --ingest-bars new m1 bars of --ingest-tickers new tickers over recent
                sessions, written into the full table; 2 chunks at a time on a worker
                pool, the layouts taking turns chunk pair by chunk pair
get_bars        wall time of SELECT * FROM pgbars.get_bars(...) from Python (psycopg 3,
                prepared from the 6th call as psycopg does), for --reads random symbols:
                h1 over the last year, d1 over --d1-years years, h1 of the last session;
                the layouts in turn per read; p50 and p99; after an untimed pass of the
                same reads, so every layout reads from memory (which layout is cached
                before that depends on the order they were filled in)
vacuum          the seconds of VACUUM (ANALYZE) after the fill, then of what autovacuum
                would have to process after the ingest (every table the ingest wrote:
                the whole table, or the partitions of the ingest's years), the rows in
                those tables and the dead rows at which autovacuum would start on them
                (autovacuum_vacuum_threshold + scale factor x rows), and the autovacuum
                and autoanalyze runs the statistics recorded during the bench
delete          DELETE FROM pgbars.symbols of --deletes random filled symbols (the bars go
                by the statement trigger _delete_symbol_bars), each symbol's bars read once
                first: median ms
migration       last, unless --no-migrate: `db upgrade` of the plain database, which
                applies 0016 (the table rebuilt partitioned, in place): seconds, and the
                bar count before and after

Why over 400 lines: three layouts built, filled and measured in turn by seven
measurements, with their checks (bar counts, no rejected rows, plans prune).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any
from unittest import mock

import httpx
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from bench.ingest import Workload, real_batch
from bench.server import postgres
from worker import db
from worker.db import installer
from worker.errors import PgbarsError
from worker.providers.polygon import PolygonProvider

LAYOUTS = ("plain", "hash", "partitioned")
TITLES = {
    "plain": "plain (before 0016)",
    "hash": "hash of symbol_id, 16",
    "partitioned": "by year (0016)",
}
HASH_PARTITIONS = 16
DB_PREFIX = "pgbars_bench_scale"
WINDOW_SESSIONS = 52  # the planner's chunk size for d1 and h1
SYMBOLS_PER_STATEMENT = 500
WORKER_NAME = "bench-scale"
LEASE_SECONDS = 6 * 3600.0


class BenchError(PgbarsError):
    """The benchmark could not run as asked."""


def say(text: str) -> None:
    print(text, flush=True)


def database_dsn(server_dsn: str, layout: str) -> str:
    return make_conninfo(server_dsn, dbname=f"{DB_PREFIX}_{layout}")


@contextmanager
def databases(server_dsn: str, keep: bool) -> Iterator[dict[str, str]]:
    names = {layout: f"{DB_PREFIX}_{layout}" for layout in LAYOUTS}
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        for name in names.values():
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield {layout: database_dsn(server_dsn, layout) for layout in LAYOUTS}
    finally:
        if not keep:
            with psycopg.connect(server_dsn, autocommit=True) as admin:
                for name in names.values():
                    admin.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                    )


async def _no_partitions(conn: Any, today: Any) -> int:
    return 0


async def install(dsn: str, layout: str) -> None:
    """pgbars as installed today (partitioned); the migration chain but 0016 with today's
    routines (plain); or that, rebuilt partitioned by hash of symbol_id (hash), the alternative."""
    conn = await db.connect(dsn)
    try:
        if layout == "partitioned":
            await db.upgrade(conn)
            return
        # every migration but 0016 (later ones add only what today's routines read)
        before = [m for m in installer.migration_files() if not m.name.startswith("0016")]
        with (
            mock.patch.object(installer, "migration_files", lambda: before),
            mock.patch.object(installer, "_extend_bar_partitions", _no_partitions),
        ):
            await db.upgrade(conn, baseline="migrations")
        if layout == "hash":
            async with conn.transaction():
                await conn.execute(HASH_LAYOUT.encode())
                for n in range(HASH_PARTITIONS):
                    await conn.execute(
                        sql.SQL(
                            "CREATE TABLE pgbars.{} PARTITION OF pgbars.ohlc_bars_v2"
                            " FOR VALUES WITH (MODULUS {}, REMAINDER {})"
                        ).format(sql.Identifier(f"ohlc_bars_v2_h{n}"), HASH_PARTITIONS, n)
                    )
                # the views went with the old table: the routines bring them back
                await conn.execute("SET LOCAL check_function_bodies = off")
                for routine in installer.routine_files():
                    await conn.execute(routine.text.encode())
    finally:
        await conn.close()


# The empty table of a fresh install, rebuilt partitioned by hash of symbol_id: the same
# columns, defaults, checks, primary key and index (LIKE ... INCLUDING ALL).
HASH_LAYOUT = """
ALTER TABLE pgbars.ohlc_bars_v2 RENAME TO ohlc_bars_v2_plain;
ALTER INDEX pgbars.ohlc_bars_v2_pkey RENAME TO ohlc_bars_v2_plain_pkey;
ALTER INDEX pgbars.ohlc_bars_v2_provisional_idx RENAME TO ohlc_bars_v2_plain_provisional_idx;
CREATE TABLE pgbars.ohlc_bars_v2 (LIKE pgbars.ohlc_bars_v2_plain INCLUDING ALL) PARTITION BY HASH (symbol_id);
DROP TABLE pgbars.ohlc_bars_v2_plain CASCADE;
"""


# --- fill -------------------------------------------------------------------------------

D1_INSERT = """
INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, open, high, low, close, volume, vwap,
    trade_count)
SELECT s.id, 'd1', b.ts, 'polygon', b.o, greatest(b.o, b.c) + 0.05, least(b.o, b.c) - 0.05, b.c,
    100000 + s.n * 7 %% 9973, b.o, 1000 + s.n %% 97
FROM (
    SELECT id, substr(ticker, 2)::integer AS n FROM pgbars.symbols
    WHERE ticker BETWEEN %(lo)s AND %(hi)s
) AS s
CROSS JOIN LATERAL (
    SELECT
        (m.session_date::timestamp AT TIME ZONE 'America/New_York') AS ts,
        20 + (s.n * 31 + (m.session_date - date '2000-01-01') * 7) %% 500 / 10.0 AS o,
        20 + (s.n * 31 + (m.session_date - date '2000-01-01') * 7 + 13) %% 500 / 10.0 AS c
    FROM pgbars.market_sessions AS m
    WHERE m.session_date BETWEEN %(first)s AND %(last)s
) AS b
"""

H1_INSERT = """
INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, open, high, low, close, volume, vwap,
    trade_count)
SELECT s.id, 'h1', b.ts, 'polygon', b.o, greatest(b.o, b.c) + 0.02, least(b.o, b.c) - 0.02, b.c,
    1000 + s.n * 7 %% 997, b.o, 10 + s.n %% 61
FROM (
    SELECT id, substr(ticker, 2)::integer AS n FROM pgbars.symbols
    WHERE ticker BETWEEN %(lo)s AND %(hi)s
) AS s
CROSS JOIN LATERAL (
    SELECT
        h.ts,
        20 + (s.n * 31 + extract(EPOCH FROM h.ts)::bigint / 3600 * 7) %% 500 / 10.0 AS o,
        20 + (s.n * 31 + extract(EPOCH FROM h.ts)::bigint / 3600 * 7 + 13) %% 500 / 10.0 AS c
    FROM pgbars.market_sessions AS m
    CROSS JOIN LATERAL
        generate_series(m.premarket_open, m.after_hours_close - interval '1 hour', '1 hour') AS h (ts)
    WHERE m.session_date BETWEEN %(first)s AND %(last)s
) AS b
"""


def ticker(n: int) -> str:
    return f"S{n:05d}"


def sessions(dsn: str, count: int, before: dt.date) -> list[dt.date]:
    """The last `count` completed sessions before `before`, oldest first."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT session_date FROM pgbars.market_sessions WHERE session_date < %s"
            " ORDER BY session_date DESC LIMIT %s",
            (before, count),
        ).fetchall()
    return sorted(r[0] for r in rows)


def h1_bars(dsn: str, days: Sequence[dt.date]) -> int:
    """h1 bars of one symbol over `days` (16 a session, fewer on early-close days)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT sum(extract(EPOCH FROM after_hours_close - premarket_open)::integer / 3600)"
            " FROM pgbars.market_sessions WHERE session_date = ANY(%s)",
            (list(days),),
        ).fetchone()
    assert row is not None
    return int(row[0])


def windows(days: Sequence[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """52-session windows, newest first, as the worker stores its chunks."""
    spans = [days[i : i + WINDOW_SESSIONS] for i in range(0, len(days), WINDOW_SESSIONS)]
    return [(span[0], span[-1]) for span in reversed(spans)]


def fill(dsn: str, symbols: int, d1_days: Sequence[dt.date], h1_days: Sequence[dt.date], jobs: int) -> float:
    """Every symbol's bars, window by window; returns the seconds (VACUUM ANALYZE not included)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pgbars.symbols (ticker)"
            " SELECT 'S' || lpad(n::text, 5, '0') FROM generate_series(1, %s) AS n",
            (symbols,),
        )
    batches = [
        (ticker(lo), ticker(min(lo + SYMBOLS_PER_STATEMENT - 1, symbols)))
        for lo in range(1, symbols + 1, SYMBOLS_PER_STATEMENT)
    ]
    statements: list[tuple[str, dict[str, Any]]] = []
    for query, days in ((H1_INSERT, h1_days), (D1_INSERT, d1_days)):
        for first, last in windows(days):
            statements.extend(
                (query, {"lo": lo, "hi": hi, "first": first, "last": last}) for lo, hi in batches
            )

    def run(share: Sequence[tuple[str, dict[str, Any]]]) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SET session_replication_role = replica")
            for query, params in share:
                conn.execute(query, params)

    started = time.perf_counter()
    # window by window: the connections split each window's statements
    with ThreadPoolExecutor(jobs) as pool:
        for i in range(0, len(statements), len(batches)):
            window = statements[i : i + len(batches)]
            list(pool.map(run, [window[j::jobs] for j in range(jobs)]))
    return time.perf_counter() - started


def vacuum(dsn: str, tables: Sequence[str]) -> float:
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in tables:
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.SQL(table)))
    return time.perf_counter() - started


def count_bars(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM pgbars.ohlc_bars_v2").fetchone()
    assert row is not None
    return int(row[0])


# The tables that hold the bars: the partitions, or the table itself when it has none
# (pg_partition_tree lists nothing for a plain table).
LEAVES = """
SELECT relid FROM pg_partition_tree('pgbars.ohlc_bars_v2') WHERE isleaf
UNION ALL
SELECT oid FROM pg_class WHERE oid = 'pgbars.ohlc_bars_v2'::regclass AND relkind = 'r'
"""


def sizes(dsn: str) -> tuple[int, int, int]:
    """(heap bytes, index bytes, tables) of ohlc_bars_v2, over its partitions."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            f"SELECT sum(pg_table_size(relid)), sum(pg_indexes_size(relid)), count(*) FROM ({LEAVES}) AS t"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


# --- ingest -----------------------------------------------------------------------------


async def ingest(
    dsns: dict[str, str], bars: int, tickers: int, start: dt.date
) -> dict[str, tuple[int, float]]:
    """{layout: (bars written, seconds)} of the real write path, the layouts in turn by chunk pairs."""
    workload = Workload(bars, tickers, start)
    leases: dict[str, list[db.Lease]] = {}
    pools = {layout: await db.open_worker_pool(dsn, 2) for layout, dsn in dsns.items()}
    try:
        for layout, dsn in dsns.items():
            async with await db.connect(dsn) as conn:
                for load in workload.loads.values():
                    await conn.execute(
                        "SELECT pgbars.request_backfill(%s, '{m1}', %s, %s, NULL)",
                        (load.ticker, load.first_session, load.last_session),
                    )
                leases[layout] = await db.claim(
                    conn, WORKER_NAME, ["polygon"], 1_000_000, LEASE_SECONDS, None, kinds=("history",)
                )
        totals = {layout: [0, 0.0] for layout in dsns}
        async with httpx.AsyncClient() as client:
            reader = PolygonProvider(client, "http://127.0.0.1:9", None)  # its page reader only
            count = min(len(chunks) for chunks in leases.values())
            for i in range(0, count, 2):
                order = rotated(list(dsns), i // 2)
                for layout in order:
                    batch = leases[layout][i : i + 2]
                    pages = [workload.page(c.ticker, c.first_session, c.last_session) for c in batch]
                    done, seconds = await real_batch(pools[layout], reader, batch, pages)
                    totals[layout][0] += sum(one.stored.bars_written for one in done)
                    totals[layout][1] += seconds
    finally:
        for pool in pools.values():
            await pool.close()
    for layout, (written, _) in totals.items():
        if written != bars:
            raise BenchError(f"{layout}: the ingest wrote {written:,} bars, not {bars:,}")
    return {layout: (int(w), float(s)) for layout, (w, s) in totals.items()}


AUTOVACUUM = (
    """
SELECT s.relid::regclass::text, c.reltuples::bigint, s.n_dead_tup, s.n_mod_since_analyze,
    s.n_ins_since_vacuum,    s.autovacuum_count, s.autoanalyze_count
FROM pg_stat_user_tables AS s
INNER JOIN pg_class AS c ON c.oid = s.relid
WHERE s.relid IN ("""
    + LEAVES
    + ")"
)


def autovacuum_state(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT pg_stat_clear_snapshot()")
        return conn.execute(AUTOVACUUM).fetchall()


def thresholds(dsn: str) -> tuple[float, float]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT current_setting('autovacuum_vacuum_threshold')::float8,"
            " current_setting('autovacuum_vacuum_scale_factor')::float8"
        ).fetchone()
    assert row is not None
    return float(row[0]), float(row[1])


# --- reads and deletes ------------------------------------------------------------------


def rotated(layouts: list[str], turn: int) -> list[str]:
    """The layouts in turn, each first as often as the others."""
    k = turn % len(layouts)
    return layouts[k:] + layouts[:k]


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def quantiles(ms: Sequence[float]) -> str:
    return f"{statistics.median(ms):.2f} / {percentile(ms, 0.99):.2f} ms"


def quantiles_of(by_layout: dict[str, list[float]]) -> Callable[[str], str]:
    return lambda layout: quantiles(by_layout[layout])


READS = {
    "get_bars h1, 1 year": ("h1", dt.timedelta(days=365)),
    "get_bars d1, all years": ("d1", None),
    "get_bars h1, last session": ("h1", dt.timedelta(days=1)),
}


def reads(
    dsns: dict[str, str], symbols: int, count: int, d1_from: dt.datetime, last_session: dt.datetime, seed: int
) -> dict[str, dict[str, list[float]]]:
    """{read: {layout: [ms]}}: each read of each random symbol in every layout, the order rotating.

    A first pass over the same reads is not timed: it brings their pages into memory in every
    layout alike. (Which layout's pages are cached before it depends on the order the databases
    were filled in, not on the layout; cold reads are not compared.)"""
    rng = random.Random(seed)
    picks = [ticker(rng.randint(1, symbols)) for _ in range(count)]
    end = last_session + dt.timedelta(days=1)
    results: dict[str, dict[str, list[float]]] = {name: {layout: [] for layout in dsns} for name in READS}
    conns = {layout: psycopg.connect(dsn, autocommit=True) for layout, dsn in dsns.items()}
    try:
        for pick in picks:
            for timeframe, span in READS.values():
                start = d1_from if span is None else end - span
                for layout in dsns:
                    conns[layout].execute(
                        "SELECT count(*) FROM pgbars.get_bars(%s, %s, %s, %s)", (pick, timeframe, start, end)
                    )
        for i, pick in enumerate(picks):
            for name, (timeframe, span) in READS.items():
                start = d1_from if span is None else end - span
                for layout in rotated(list(dsns), i):
                    started = time.perf_counter()
                    rows = (
                        conns[layout]
                        .execute(
                            "SELECT * FROM pgbars.get_bars(%s, %s, %s, %s)", (pick, timeframe, start, end)
                        )
                        .fetchall()
                    )
                    results[name][layout].append((time.perf_counter() - started) * 1000)
                    if not rows:
                        raise BenchError(f"{layout}: get_bars({pick}, {timeframe}) returned no bars")
    finally:
        for conn in conns.values():
            conn.close()
    return results


def check_pruning(dsn: str, start: dt.datetime, end: dt.datetime) -> list[str]:
    """The partitions a custom plan of get_bars for [start, end) reads (it must prune the rest)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "EXPLAIN (FORMAT JSON) SELECT * FROM pgbars.get_bars('S00001', 'h1', %s, %s)", (start, end)
        ).fetchone()
    assert row is not None
    found: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        name = node.get("Relation Name") or ""
        if name.startswith("ohlc_bars_v2") and node.get("Parent Relationship") != "SubPlan":
            found.append(name)
        for child in node.get("Plans", ()):
            walk(child)

    walk(row[0][0]["Plan"])
    return found


def deletes(dsns: dict[str, str], symbols: int, count: int, seed: int) -> dict[str, list[float]]:
    rng = random.Random(seed + 1)
    picks = rng.sample(range(1, symbols + 1), min(count, symbols))
    times: dict[str, list[float]] = {layout: [] for layout in dsns}
    for i, n in enumerate(picks):
        for layout in rotated(list(dsns), i):
            with psycopg.connect(dsns[layout], autocommit=True) as conn:
                # the symbol's bars and index entries into memory first, in every layout alike
                conn.execute(
                    "SELECT count(*), sum(b.close) FROM pgbars.ohlc_bars_v2 AS b"
                    " INNER JOIN pgbars.symbols AS s ON s.id = b.symbol_id WHERE s.ticker = %s",
                    (ticker(n),),
                )
                started = time.perf_counter()
                cur = conn.execute("DELETE FROM pgbars.symbols WHERE ticker = %s", (ticker(n),))
                times[layout].append((time.perf_counter() - started) * 1000)
                if cur.rowcount != 1:
                    raise BenchError(f"{layout}: {ticker(n)} was not deleted")
    return times


async def migrate(dsn: str) -> float:
    conn = await db.connect(dsn)
    try:
        started = time.perf_counter()
        report = await db.upgrade(conn)
        seconds = time.perf_counter() - started
    finally:
        await conn.close()
    if report.migrations_applied != ["0016_partitioned_bars.sql"]:
        raise BenchError(f"the plain database's upgrade applied {report.migrations_applied}")
    return seconds


# --- the run ----------------------------------------------------------------------------


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def names(tables: Sequence[tuple[Any, ...]], of: int) -> str:
    if len(tables) <= 2:
        return ", ".join(r[0].removeprefix("pgbars.") for r in tables)
    return f"{len(tables)} of {of} partitions"


def spread(values: Sequence[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:,.0f}" if round(low) == round(high) else f"{low:,.0f}-{high:,.0f}"


def run(server_dsn: str, args: argparse.Namespace) -> list[tuple[str, ...]]:
    """The measurements as (what, plain, partitioned) rows."""
    rows: list[tuple[str, ...]] = []

    def row(what: str, value: Callable[[str], str]) -> None:
        rows.append((what, *(value(layout) for layout in LAYOUTS)))
        say(
            f"  {what}: "
            + ", ".join(f"{layout} {v}" for layout, v in zip(LAYOUTS, rows[-1][1:], strict=True))
        )

    with databases(server_dsn, args.keep) as dsns:
        for layout, dsn in dsns.items():
            asyncio.run(install(dsn, layout))
        today = dt.datetime.now(dt.UTC).date()
        any_dsn = dsns["partitioned"]
        d1_days = sessions(any_dsn, round(args.d1_years * 251.5), today)
        h1_days = sessions(any_dsn, args.h1_sessions, today)
        per_symbol = len(d1_days) + h1_bars(any_dsn, h1_days)
        expected = args.symbols * per_symbol
        say(
            f"filling {args.symbols:,} symbols x ({len(d1_days):,} d1 + {per_symbol - len(d1_days):,} h1)"
            f" = {expected:,} bars per layout ..."
        )
        filled: dict[str, float] = {}
        vacuumed: dict[str, float] = {}
        for layout, dsn in dsns.items():
            filled[layout] = fill(dsn, args.symbols, d1_days, h1_days, args.jobs)
            vacuumed[layout] = vacuum(dsn, ["pgbars.ohlc_bars_v2"])
            say(f"  {layout}: filled in {filled[layout]:.0f} s, VACUUM ANALYZE {vacuumed[layout]:.0f} s")
            bars = count_bars(dsn)
            if bars != expected:
                raise BenchError(f"{layout}: {bars:,} bars, not {expected:,}")
        row("bars", lambda _: f"{expected:,}")
        row(
            "fill (server-side INSERT ... SELECT)",
            lambda x: f"{filled[x]:.0f} s, {expected / filled[x]:,.0f} bars/s",
        )
        measured = {layout: sizes(dsn) for layout, dsn in dsns.items()}
        row("tables (partitions)", lambda x: f"{measured[x][2]}")
        row("heap size", lambda x: gib(measured[x][0]))
        row("index size", lambda x: gib(measured[x][1]))
        row("VACUUM ANALYZE after the fill", lambda x: f"{vacuumed[x]:.0f} s")

        last = dt.datetime.combine(h1_days[-1], dt.time(), tzinfo=dt.UTC)
        planned = check_pruning(
            dsns["partitioned"], last - dt.timedelta(days=365), last + dt.timedelta(days=1)
        )
        if len(planned) > 2 or not all(p.startswith("ohlc_bars_v2_y") for p in planned):
            raise BenchError(f"get_bars over one year planned partitions {planned}")
        say(f"get_bars over the last year plans {', '.join(planned)} only; reading ...")
        d1_from = dt.datetime.combine(d1_days[0], dt.time(), tzinfo=dt.UTC)
        read = reads(dsns, args.symbols, args.reads, d1_from, last, args.seed)
        for name, by_layout in read.items():
            row(f"{name}, p50 / p99", quantiles_of(by_layout))

        before = {layout: autovacuum_state(dsn) for layout, dsn in dsns.items()}
        start = h1_days[-min(len(h1_days), 60)]
        say(f"ingesting {args.ingest_bars:,} m1 bars of {args.ingest_tickers} new tickers from {start} ...")
        ingested = asyncio.run(ingest(dsns, args.ingest_bars, args.ingest_tickers, start))
        row("ingest, real write path", lambda x: f"{ingested[x][0] / ingested[x][1]:,.0f} bars/s")
        after = {layout: autovacuum_state(dsn) for layout, dsn in dsns.items()}
        base, scale = thresholds(any_dsn)
        written = {layout: [r for r in after[layout] if r[3] > 0 or r[4] > 0] for layout in dsns}
        row("tables the ingest wrote", lambda x: names(written[x], len(after[x])))
        row("rows in them", lambda x: f"{sum(r[1] for r in written[x]):,}")
        row(
            "dead rows before autovacuum starts on each",
            lambda x: spread([base + scale * r[1] for r in written[x]]),
        )
        autovacuums = {
            layout: (
                sum(r[5] for r in after[layout]) - sum(r[5] for r in before[layout]),
                sum(r[6] for r in after[layout]) - sum(r[6] for r in before[layout]),
            )
            for layout in dsns
        }
        row(
            "autovacuum / autoanalyze runs during the ingest",
            lambda x: f"{autovacuums[x][0]} / {autovacuums[x][1]}",
        )
        revacuumed = {layout: vacuum(dsns[layout], [r[0] for r in written[layout]]) for layout in dsns}
        row("VACUUM ANALYZE of the tables the ingest wrote", lambda x: f"{revacuumed[x]:.1f} s")

        deleted = deletes(dsns, args.symbols, args.deletes, args.seed)
        row(
            f"whole-symbol delete ({per_symbol:,} bars), median",
            lambda x: f"{statistics.median(deleted[x]):.0f} ms",
        )

        if not args.no_migrate:
            plain_bars = count_bars(dsns["plain"])
            say(f"migrating the plain database in place (0016, {plain_bars:,} bars) ...")
            seconds = asyncio.run(migrate(dsns["plain"]))
            if count_bars(dsns["plain"]) != plain_bars:
                raise BenchError("the migration lost bars")
            migrated = f"{seconds:.0f} s ({plain_bars / seconds:,.0f} bars/s)"
            rows.append(("migration 0016 in place", *(migrated if x == "plain" else "-" for x in LAYOUTS)))
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=10_000, help="tickers (10000)")
    parser.add_argument("--d1-years", type=float, default=10, help="years of d1 bars per ticker (10)")
    parser.add_argument("--h1-sessions", type=int, default=160, help="sessions of h1 bars per ticker (160)")
    parser.add_argument("--reads", type=int, default=300, help="random symbols read per layout (300)")
    parser.add_argument(
        "--ingest-bars", type=int, default=400_000, help="m1 bars through the write path (400000)"
    )
    parser.add_argument("--ingest-tickers", type=int, default=16, help="new tickers they belong to (16)")
    parser.add_argument("--deletes", type=int, default=7, help="symbols deleted per layout (7)")
    parser.add_argument("--jobs", type=int, default=2, help="connections filling in parallel (2)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the random picks (7)")
    parser.add_argument(
        "--no-migrate", action="store_true", help="skip the in-place migration of the plain table"
    )
    parser.add_argument("--keep", action="store_true", help="keep the three databases")
    parser.add_argument("--dsn", help="a server whose user may create databases (default: embedded)")
    args = parser.parse_args(argv)
    if args.symbols < 1 or args.reads < 1 or args.h1_sessions < 1 or args.d1_years <= 0:
        parser.error("--symbols, --reads, --h1-sessions and --d1-years must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    say(f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    try:
        with postgres(args.dsn, "scale") as server_dsn:
            with psycopg.connect(server_dsn) as conn:
                row = conn.execute("SELECT version(), current_setting('shared_buffers')").fetchone()
            assert row is not None
            say(f"{row[0].split(',')[0]}, shared_buffers {row[1]}")
            rows = run(server_dsn, args)
    except BenchError as error:
        say(f"error: {error}")
        return 1
    header = ("", *(TITLES[layout] for layout in LAYOUTS))
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header))]
    say("")
    for line in [header, *rows]:
        say("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
