"""`pgbars serve` measured: watchlist INSERT to first bars, today's bars' age, an idle service.

    .venv/bin/python -m bench.serve                       # private embedded server, about 6 minutes
    .venv/bin/python -m bench.serve --trials 10 --refresh-every 10 --live-seconds 40   # a quick run
    .venv/bin/python -m bench.serve --dsn postgresql://postgres@/postgres?host=/run/postgresql

A fresh database `pgbars_bench_serve` gets pgbars (`db.upgrade`), the demo's
rate limit (5 calls per rolling second per provider, worker.demo) and a
planning clock in a session (2025-01-02 12:00 New York, PGBARS_NOW, as the
integration tests use), so the figures do not depend on the hour the bench
runs. Local provider servers (worker.emulator) answer. One real `pgbars
serve` process (the CLI, default options) runs throughout; this process
LISTENs on pgbars_bars like a chart.

1. Latency: `INSERT INTO pgbars.watchlist_items` of a new ticker (its
   symbol row made beforehand; the trigger seeds 2 years of h1, 10 chunks),
   committed; the figure is the time until the first pgbars_bars message
   for that ticker arrives, i.e. its first bars are committed. "idle": each
   trial waits until the previous ticker's backfill is done; "busy": one
   ticker every second, the previous still backfilling under the rate limit.
   Side by side, the same INSERT handled by a `pgbars work --ticker T`
   started right after it: the best case of the cron path (the process
   start, its checks, its claim), before any wait for the schedule.
2. Today's bars: live_settings.refresh_every set to --refresh-every, every
   watchlist ticker's live refresh watched for --live-seconds: each 0.25 s
   the oldest refreshed_at among them; the figure is the largest age seen,
   next to refresh_every + 5 s.
3. Idle: the watchlist emptied (no live refreshes, no chunk due), then
   --idle-seconds of nothing: the serve process's CPU time (/proc) and the
   statements its sessions sent (application_name 'pgbars serve'), counted
   in the private server's log with log_statement = all for that while (not
   measured on a --dsn server), per minute.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bench.server import postgres
from worker import db
from worker.demo import DEMO_CALLS, DEMO_MARGIN, DEMO_WINDOW
from worker.emulator import PolygonServer, TradierServer, YahooServer

DATABASE = "pgbars_bench_serve"
CLOCK = "2025-01-02 12:00 America/New_York"
SERVER_NOW = dt.datetime(2025, 1, 2, 17, 0, tzinfo=dt.UTC)
POLYGON_KEY = "pk-bench-serve-0001"
TRADIER_TOKEN = "tt-bench-serve-0001"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def say(text: str) -> None:
    print(text, flush=True)


def tickers(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(count)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float]) -> str:
    return (
        f"p50 {statistics.median(values):.3f} s, p90 {percentile(values, 0.9):.3f} s,"
        f" max {max(values):.3f} s (n={len(values)})"
    )


@contextlib.contextmanager
def database(server: str) -> Iterator[str]:
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    params = conninfo_to_dict(server)
    params["dbname"] = DATABASE
    dsn = make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})
    try:
        yield dsn
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE)))


def install(dsn: str) -> None:
    import asyncio

    async def run() -> None:
        conn = await db.connect(dsn)
        try:
            await db.upgrade(conn)
        finally:
            await conn.close()

    asyncio.run(run())
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET pgbars.now = {}").format(
                sql.Identifier(DATABASE), sql.Literal(CLOCK)
            )
        )
        conn.execute(
            "UPDATE pgbars.providers SET calls_per_window = %s, window_length = %s, window_margin = %s",
            (DEMO_CALLS, DEMO_WINDOW, DEMO_MARGIN),
        )


class Chart:
    """A LISTEN pgbars_bars connection: the first message per ticker, with when it arrived."""

    def __init__(self, dsn: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.conn.execute("LISTEN pgbars_bars")
        self.first: dict[str, float] = {}

    def poll(self, seconds: float) -> None:
        for note in self.conn.notifies(timeout=seconds, stop_after=200):
            ticker = json.loads(note.payload)["ticker"]
            self.first.setdefault(ticker, time.monotonic())

    def wait_for(self, ticker: str, seconds: float = 120.0) -> float:
        deadline = time.monotonic() + seconds
        while ticker not in self.first:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no bars for {ticker} within {seconds:.0f} s")
            self.poll(0.05)
        return self.first[ticker]


def add(conn: psycopg.Connection[Any], ticker: str) -> float:
    """The timed INSERT into watchlist_items (the symbol and the watchlist exist); its commit time."""
    conn.execute("INSERT INTO pgbars.watchlists (name) VALUES ('default') ON CONFLICT DO NOTHING")
    watchlist = conn.execute("SELECT id FROM pgbars.watchlists WHERE name = 'default'").fetchone()
    symbol = conn.execute("SELECT pgbars._ensure_symbol(%s)", (ticker,)).fetchone()
    assert watchlist and symbol
    started = time.monotonic()
    conn.execute(
        "INSERT INTO pgbars.watchlist_items (watchlist_id, symbol_id) VALUES (%s, %s)",
        (watchlist[0], symbol[0]),
    )
    return started


def backfilled(conn: psycopg.Connection[Any], ticker: str) -> bool:
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE c.status <> 'done'), count(*) FROM pgbars.backfill_chunks AS c"
        " JOIN pgbars.backfill_jobs AS j ON j.id = c.job_id JOIN pgbars.symbols AS s ON s.id = j.symbol_id"
        " WHERE s.ticker = %s",
        (ticker,),
    ).fetchone()
    return bool(row and row[1] > 0 and row[0] == 0)


def wait_until(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


class StatementLog:
    """The statements serve's sessions send (application_name 'pgbars serve'), counted in the
    private server's log (log_statement = all while counting); None on a --dsn server."""

    def __init__(self, server: str, private: bool) -> None:
        self.server, self.file, self.offset = server, None if not private else Path(), 0
        if private:
            with psycopg.connect(server, autocommit=True) as conn:
                row = conn.execute("SHOW data_directory").fetchone()
                assert row is not None
                self.file = Path(row[0]) / "log"  # where the embedded server writes its log

    def _set(self, statement: str, prefix: str) -> None:
        with psycopg.connect(self.server, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER SYSTEM SET log_statement = {}").format(sql.Literal(statement)))
            conn.execute(sql.SQL("ALTER SYSTEM SET log_line_prefix = {}").format(sql.Literal(prefix)))
            conn.execute("SELECT pg_reload_conf()")

    def start(self) -> None:
        if self.file is not None:
            self._set("all", "%a|")
            time.sleep(1)
            self.offset = self.file.stat().st_size

    def count(self) -> int | None:
        if self.file is None:
            return None
        with self.file.open("rb") as log:
            log.seek(self.offset)
            text = log.read().decode(errors="replace")
        self._set("none", "%m [%p] ")
        return sum(
            1
            for line in text.splitlines()
            if line.startswith("pgbars serve|") and ("LOG:  statement: " in line or "LOG:  execute " in line)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dsn", help="an existing server (any database on it); default: a private embedded one"
    )
    parser.add_argument("--trials", type=int, default=20, help="tickers added, idle and busy each (20)")
    parser.add_argument("--cron-trials", type=int, default=5, help="the same by a `pgbars work` each (5)")
    parser.add_argument(
        "--refresh-every", type=float, default=60.0, help="live_settings.refresh_every, s (60)"
    )
    parser.add_argument(
        "--live-seconds", type=float, default=180.0, help="how long to watch today's bars (180)"
    )
    parser.add_argument("--idle-seconds", type=float, default=120.0, help="how long to measure idle (120)")
    args = parser.parse_args()

    with (
        postgres(args.dsn, "serve") as server,
        database(server) as dsn,
        PolygonServer(POLYGON_KEY, now=SERVER_NOW) as polygon,
        YahooServer(now=SERVER_NOW) as yahoo,
        TradierServer(TRADIER_TOKEN, now=SERVER_NOW) as tradier,
    ):
        say(f"installing pgbars into {DATABASE} ...")
        install(dsn)
        env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_TOKEN", "_BASE_URL"))} | {
            "DATABASE_URL": dsn,
            "PGBARS_NOW": CLOCK,
            "POLYGON_API_KEY": POLYGON_KEY,
            "POLYGON_BASE_URL": polygon.base_url,
            "YAHOO_BASE_URL": yahoo.base_url,
            "TRADIER_TOKEN": TRADIER_TOKEN,
            "TRADIER_BASE_URL": tradier.base_url,
        }
        log = Path(tempfile.mkdtemp(prefix="pgbars-bench-serve-")) / "serve.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "worker", "serve"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        try:
            wait_until(lambda: " serve worker=" in log.read_text(), 60, "serve to start")
            run(args, dsn, server, env, process)
        finally:
            process.terminate()
            process.wait(timeout=20)
            say(f"serve's log: {log}")


def run(
    args: argparse.Namespace, dsn: str, server: str, env: dict[str, str], process: subprocess.Popen[bytes]
) -> None:
    chart = Chart(dsn)
    conn = psycopg.connect(dsn, autocommit=True)

    say(f"latency, idle: {args.trials} tickers, one at a time, each after the last one's backfill ...")
    idle: list[float] = []
    for ticker in tickers("I", args.trials):
        started = add(conn, ticker)
        idle.append(chart.wait_for(ticker) - started)
        wait_until(lambda t=ticker: backfilled(conn, t), 120, f"{ticker}'s backfill")

    say(f"latency, busy: {args.trials} tickers, one a second ...")
    busy_started: dict[str, float] = {}
    for ticker in tickers("B", args.trials):
        busy_started[ticker] = add(conn, ticker)
        chart.poll(max(0.0, busy_started[ticker] + 1.0 - time.monotonic()))
    busy = [chart.wait_for(t) - started for t, started in busy_started.items()]
    wait_until(lambda: all(backfilled(conn, t) for t in busy_started), 300, "the busy backfills")

    say(f"latency, cron path: {args.cron_trials} tickers, each by a `pgbars work` started after its INSERT")
    # serve must not take these: it stops first; its leases are all settled (nothing is due)
    process.terminate()
    process.wait(timeout=20)
    cron: list[float] = []
    for ticker in tickers("C", args.cron_trials):
        started = add(conn, ticker)
        work = subprocess.Popen(
            [sys.executable, "-m", "worker", "work", "--ticker", ticker, "--max-seconds", "60"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        cron.append(chart.wait_for(ticker) - started)
        work.wait(timeout=120)

    say(f"today's bars: refresh_every {args.refresh_every:.0f} s, watched {args.live_seconds:.0f} s ...")
    conn.execute(
        "UPDATE pgbars.live_settings SET refresh_every = make_interval(secs => %s)", (args.refresh_every,)
    )
    restarted = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    log = Path(tempfile.mkdtemp(prefix="pgbars-bench-serve-")) / "serve-2.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker", "serve"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    try:
        wait_until(lambda: " serve worker=" in log.read_text(), 60, "serve to start again")
        live_tickers = int(
            conn.execute("SELECT count(DISTINCT symbol_id) FROM pgbars.live_plan").fetchone()[0]  # type: ignore[index]
        )
        # the first pass of this serve: every watchlist ticker refreshed once
        wait_until(
            lambda: (
                conn.execute(
                    "SELECT count(*) FROM pgbars.live_plan AS p JOIN pgbars.live_refreshes AS r"
                    " USING (symbol_id, timeframe) WHERE r.refreshed_at > %s",
                    (restarted,),
                ).fetchone()[0]  # type: ignore[index]
                == live_tickers
            ),
            120,
            "the first pass of today's bars",
        )
        ages: list[float] = []
        until = time.monotonic() + args.live_seconds
        while time.monotonic() < until:
            row = conn.execute(
                "SELECT extract(EPOCH FROM now() - min(r.refreshed_at)) FROM pgbars.live_plan AS p"
                " JOIN pgbars.live_refreshes AS r USING (symbol_id, timeframe)"
            ).fetchone()
            assert row is not None and row[0] is not None
            ages.append(float(row[0]))
            time.sleep(0.25)

        say(f"idle: watchlist emptied, {args.idle_seconds:.0f} s of nothing ...")
        conn.execute("DELETE FROM pgbars.watchlist_items")
        time.sleep(5)  # the live pass in flight ends
        statements = StatementLog(server, private=args.dsn is None)
        statements.start()
        cpu_before, at = cpu_seconds(process.pid), time.monotonic()
        time.sleep(args.idle_seconds)
        cpu_after, elapsed = cpu_seconds(process.pid), time.monotonic() - at
        sent = statements.count()
    finally:
        process.terminate()
        process.wait(timeout=20)

    minutes = elapsed / 60
    met = "MET" if statistics.median(idle) <= 2 else "MISSED"
    worst, target = max(ages), args.refresh_every + 5
    fresh = "MET" if worst <= target else "MISSED"
    cpu = cpu_after - cpu_before
    say("")
    say("INSERT INTO watchlist_items -> first bars committed (pgbars_bars heard), demo rate limit 5 calls/s:")
    say(f"  serve, idle:                 {summary(idle)}; target p50 <= 2 s: {met}")
    say(f"  serve, busy (1 ticker/s):    {summary(busy)}")
    say(f"  pgbars work started at once: {summary(cron)}")
    say("  (under cron add the wait for the schedule: 0-5 min, plus GitHub's delays)")
    say(f"today's bars: {live_tickers} tickers, the oldest refresh, {len(ages)} samples:")
    say(f"  median {statistics.median(ages):.1f} s, max {worst:.1f} s; target <= {target:.0f} s: {fresh}")
    say(f"idle serve over {elapsed:.0f} s:")
    say(f"  CPU {100 * cpu / elapsed:.3f} % of one core ({cpu:.2f} s)")
    say(
        f"  {sent / minutes:.1f} statements/min sent by serve's sessions"
        if sent is not None
        else "  statements/min: counted only on the private server (its log), not with --dsn"
    )


if __name__ == "__main__":
    main()
