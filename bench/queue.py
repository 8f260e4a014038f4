"""The chunk queue at depth, next to pgqueuer, in one run.

    .venv/bin/python -m bench.queue                          # 1k to 500k chunks; embedded server
    .venv/bin/python -m bench.queue --depths 1000,10000 --drain 2000 --tickers 500    # a quick run
    .venv/bin/python -m bench.queue --dsn postgresql://postgres@/postgres?host=/run/postgresql

pgqueuer is a dependency of pgbars (`pgbars serve`). For each queue depth a fresh
database `pgbars_bench_queue` gets pgbars (`db.upgrade`) and depth/10 tickers
with one h1 job of 10 chunks each, inserted set-based (the seeding path is
measured apart), then VACUUM ANALYZE. Measured there, on one connection:

claim+complete  `claim_backfill_chunks(limit 1)` then `complete_backfill_chunk` of the
                chunk: --cycles times, p50 and p99 of the pair's wall time.
progress        `SELECT * FROM pgbars.backfill_progress` (every job): the server's
                execution (EXPLAIN ANALYZE) and the client's wall time, p50 of 5.
eta             `SELECT * FROM pgbars.backfill_eta()` (every job): the same.

Drain, at --drain chunks, --drain-runs times (the median is the figure): 4
worker processes, each on its own connection, claim 10 chunks and complete
each (one pipelined round trip) until the queue is empty; then, in the same
database, pgqueuer (psycopg driver) with the same number of jobs (a no-op
entrypoint) and 4 QueueManager processes with batch_size 10 in drain mode.
Each figure is items over the wall time from releasing the processes,
started and connected, until the last one exits.

Seeding, in a fresh database: --tickers tickers by `pgbars request` (one
command, as a user runs it; request_backfills in one statement) and by
`pgbars watch add` (add_tickers_to_watchlist; the watchlist trigger seeds
each), next to request_backfill called once per round trip for 500 tickers
(before bulk seeding, the CLI did that). Then `pgbars status` over those
jobs, its output thrown away.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.server import postgres
from worker import db

DATABASE = "pgbars_bench_queue"
CHUNKS_PER_JOB = 10
WORKERS = 4
BATCH = 10
CLAIM = "SELECT chunk_id, lease_id FROM pgbars.claim_backfill_chunks(%s, '{polygon}', %s, '5 minutes')"
COMPLETE = "SELECT pgbars.complete_backfill_chunk(%s, %s, 100, 0, 1)"


def say(text: str) -> None:
    print(text, flush=True)


def _admin(server_dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(server_dsn, autocommit=True)


@contextmanager
def fresh_database(server_dsn: str) -> Iterator[str]:
    """A new pgbars database on the server (dropped afterwards), and its DSN."""
    with _admin(server_dsn) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    dsn = psycopg.conninfo.make_conninfo(server_dsn, dbname=DATABASE)

    async def install() -> None:
        conn = await db.connect(dsn)
        try:
            await db.upgrade(conn)
        finally:
            await conn.close()

    asyncio.run(install())
    try:
        yield dsn
    finally:
        with _admin(server_dsn) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE)))


def fill(dsn: str, chunks: int) -> float:
    """chunks/10 tickers of one h1 job of 10 one-session chunks; seconds taken."""
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        sessions = [
            row[0]
            for row in conn.execute(
                "SELECT session_date FROM pgbars.market_sessions WHERE session_date <= current_date"
                " ORDER BY session_date DESC LIMIT %s",
                (CHUNKS_PER_JOB,),
            ).fetchall()
        ]
        jobs = chunks // CHUNKS_PER_JOB
        conn.execute(
            "INSERT INTO pgbars.symbols (ticker)"
            " SELECT 'Q' || lpad(n::text, 6, '0') FROM generate_series(1, %s) AS n",
            (jobs,),
        )
        conn.execute(
            "INSERT INTO pgbars.backfill_jobs (symbol_id, timeframe)"
            " SELECT id, 'h1' FROM pgbars.symbols ORDER BY ticker"
        )
        conn.execute(
            "INSERT INTO pgbars.backfill_chunks"
            " (job_id, provider, first_session, last_session, session_count)"
            " SELECT j.id, 'polygon', d, d, 1"
            " FROM pgbars.backfill_jobs AS j CROSS JOIN unnest(%s::date[]) AS d",
            (sessions,),
        )
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


def cycles(dsn: str, count: int) -> list[float]:
    """Milliseconds of each claim(limit 1) + complete."""
    out = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(count):
            started = time.perf_counter()
            row = conn.execute(CLAIM, ("bench", 1)).fetchone()
            assert row is not None, "the queue ran dry"
            conn.execute(COMPLETE, row)
            out.append((time.perf_counter() - started) * 1000.0)
    return out


def read_times(dsn: str, query: str, runs: int = 5) -> tuple[float, float]:
    """(server execution ms, client wall ms), p50 of `runs`."""
    server, client = [], []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(runs):
            plan = conn.execute("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + query).fetchone()
            assert plan is not None
            server.append(float(plan[0][0]["Execution Time"]))
            started = time.perf_counter()
            conn.execute(query).fetchall()
            client.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(server), statistics.median(client)


def _drain_pgbars(start: Any, dsn: str, worker: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        start.wait()
        while True:
            rows = conn.execute(CLAIM, (worker, BATCH)).fetchall()
            if not rows:
                return
            with conn.pipeline():
                for row in rows:
                    conn.execute(COMPLETE, row)


def _drain_pgqueuer(start: Any, dsn: str) -> None:
    from pgqueuer.qm import QueueManager
    from pgqueuer.queries import Queries
    from pgqueuer.types import QueueExecutionMode

    async def run() -> None:
        conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        manager = QueueManager(Queries.from_psycopg_connection(conn))

        @manager.entrypoint("noop")
        async def noop(job: Any) -> None:
            return None

        start.wait()
        await manager.run(mode=QueueExecutionMode.drain, batch_size=BATCH)
        await conn.close()

    asyncio.run(run())


def _processes(target: Any, args: Sequence[tuple[Any, ...]]) -> float:
    """Seconds from releasing one process per args (each connected and ready: Python's start is
    not timed) until the last exits."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(len(args) + 1)
    procs = [context.Process(target=target, args=(start, *a)) for a in args]
    for p in procs:
        p.start()
    start.wait()
    started = time.perf_counter()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"a drain process exited with {p.exitcode}")
    return time.perf_counter() - started


def drain(server_dsn: str, chunks: int) -> tuple[float, float]:
    """(pgbars chunks/s, pgqueuer jobs/s), WORKERS processes x BATCH each."""
    from pgqueuer.queries import Queries

    with fresh_database(server_dsn) as dsn:
        fill(dsn, chunks)
        seconds = _processes(_drain_pgbars, [(dsn, f"w{n}") for n in range(WORKERS)])
        with psycopg.connect(dsn, autocommit=True) as conn:
            left = conn.execute(
                "SELECT count(*) FROM pgbars.backfill_chunks WHERE status <> 'done'"
            ).fetchone()
            assert left is not None and left[0] == 0, f"{left} chunks not drained"
        ours = chunks / seconds

        async def enqueue() -> None:
            conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
            queries = Queries.from_psycopg_connection(conn)
            await queries.install()
            for at in range(0, chunks, 5000):
                n = min(5000, chunks - at)
                await queries.enqueue(["noop"] * n, [None] * n, [0] * n)
            await conn.close()

        asyncio.run(enqueue())
        seconds = _processes(_drain_pgqueuer, [(dsn,)] * WORKERS)
        with psycopg.connect(dsn, autocommit=True) as conn:
            left = conn.execute("SELECT count(*) FROM pgqueuer").fetchone()
            assert left is not None and left[0] == 0, f"{left} pgqueuer jobs not drained"
        return ours, chunks / seconds


def _pgbars(dsn: str, *args: str) -> float:
    """Seconds of one `pgbars` command (its output thrown away); raises if it fails."""
    env = {**os.environ, "DATABASE_URL": dsn}
    started = time.perf_counter()
    command = Path(sys.executable).with_name("pgbars")  # the venv's console script
    subprocess.run([str(command), *args], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def seeding(server_dsn: str, tickers: int) -> dict[str, float]:
    names = [f"S{n:05d}" for n in range(tickers)]
    out: dict[str, float] = {}
    with fresh_database(server_dsn) as dsn:
        out["pgbars request"] = _pgbars(dsn, "request", *names)
        out["pgbars status"] = _pgbars(dsn, "status")
        with psycopg.connect(dsn, autocommit=True) as conn:
            jobs = conn.execute("SELECT count(*) FROM pgbars.backfill_jobs").fetchone()
            assert jobs is not None and jobs[0] == tickers
    with fresh_database(server_dsn) as dsn:
        out["pgbars watch add"] = _pgbars(dsn, "watch", "add", *names)
    with fresh_database(server_dsn) as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        few = names[:500]
        started = time.perf_counter()
        for name in few:
            conn.execute("SELECT pgbars.request_backfill(%s)", (name,))
        out["one at a time"] = (time.perf_counter() - started) * tickers / len(few)
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.queue", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--depths", default="1000,10000,50000,100000,500000", help="queued chunks, comma-separated"
    )
    parser.add_argument("--cycles", type=int, default=300, help="claim+complete cycles per depth (300)")
    parser.add_argument("--drain", type=int, default=10000, help="chunks (and pgqueuer jobs) drained (10000)")
    parser.add_argument("--drain-runs", type=int, default=3, help="drains of each, median reported (3)")
    parser.add_argument("--tickers", type=int, default=5000, help="tickers seeded in one command (5000)")
    parser.add_argument("--dsn", help="a server whose user may create databases (default: embedded)")
    args = parser.parse_args(argv)
    args.depths = [int(d) for d in args.depths.split(",") if d.strip()]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    say(f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows = []
    with postgres(args.dsn, "queue") as server_dsn:
        for depth in args.depths:
            with fresh_database(server_dsn) as dsn:
                built = fill(dsn, depth)
                say(f"{depth:,} chunks queued in {built:.1f} s; measuring ...")
                times = sorted(cycles(dsn, args.cycles))
                progress = read_times(dsn, "SELECT * FROM pgbars.backfill_progress")
                eta = read_times(dsn, "SELECT * FROM pgbars.backfill_eta()")
            p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
            rows.append((depth, statistics.median(times), p99, *progress, *eta))
        say(f"draining {args.drain:,} chunks, then as many pgqueuer jobs, {args.drain_runs} times ...")
        drains = [drain(server_dsn, args.drain) for _ in range(args.drain_runs)]
        say(f"seeding {args.tickers:,} tickers ...")
        seeded = seeding(server_dsn, args.tickers)

    say("")
    say(
        "queued chunks  claim+complete p50 ms  p99 ms  progress server ms  client ms"
        "  eta server ms  client ms"
    )
    for depth, p50, p99, ps, pc, es, ec in rows:
        say(f"{depth:>13,}  {p50:>20.2f}  {p99:>6.2f}  {ps:>18.1f}  {pc:>9.1f}  {es:>13.1f}  {ec:>9.1f}")
    deepest = rows[-1]
    say(
        f"target claim+complete <= 5 ms p50 at the deepest queue ({deepest[0]:,}):"
        f" {'MET' if deepest[1] <= 5 else 'MISSED'} ({deepest[1]:.2f} ms)"
    )
    at_50k = [r for r in rows if r[0] == 50000] or [min(rows, key=lambda r: abs(r[0] - 50000))]
    r = at_50k[0]
    say(
        f"target progress and eta <= 20 ms at {r[0]:,} chunks (server): progress {r[3]:.1f} ms,"
        f" eta {r[5]:.1f} ms: {'MET' if max(r[3], r[5]) <= 20 else 'MISSED'}"
    )
    say("")
    ours = statistics.median(d[0] for d in drains)
    theirs = statistics.median(d[1] for d in drains)
    say(
        f"drain of {args.drain:,} items, {WORKERS} processes x batch {BATCH}, median of {len(drains)} runs"
        f" (each run: pgbars, then pgqueuer): pgbars {ours:,.0f} chunks/s, pgqueuer {theirs:,.0f} jobs/s"
        f" ({ours / theirs:.2f}x); target >= pgqueuer: {'MET' if ours >= theirs else 'MISSED'}"
    )
    say("runs: " + ", ".join(f"{a:,.0f} vs {b:,.0f} ({a / b:.2f}x)" for a, b in drains))
    say("")
    n = args.tickers
    say(
        f"seeding {n:,} tickers (h1, 2 years): `pgbars request` {seeded['pgbars request']:.1f} s"
        f" ({n / seeded['pgbars request']:,.0f} tickers/s), `pgbars watch add`"
        f" {seeded['pgbars watch add']:.1f} s ({n / seeded['pgbars watch add']:,.0f}/s);"
        f" one request_backfill per round trip:"
        f" {n / seeded['one at a time']:,.0f} tickers/s (500 timed); target <= 10 s:"
        f" {'MET' if max(seeded['pgbars request'], seeded['pgbars watch add']) <= 10 else 'MISSED'}"
    )
    say(
        f"`pgbars status` over {n:,} jobs: {seeded['pgbars status']:.2f} s (a whole command: Python start"
        f" included); target < 1 s: {'MET' if seeded['pgbars status'] < 1 else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
