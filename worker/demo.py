"""`pgbars demo`: the whole pipeline offline, against local provider servers.

Everything on the path is the real one (trigger, seeding, claims, the
rate-limit ledger, HTTP, pagination, validation, COPY, progress); only the
market is synthetic: the provider servers of worker.emulator serve
deterministic bars on real XNYS sessions, on 127.0.0.1.

The demo only writes to a database of its own: the embedded server's, a
DATABASE_URL without a pgbars schema (or with an earlier demo), or with --yes
a database `<name>_demo` beside one in use. It marks that database in
pgbars.demo_runs, and `pgbars work` refuses a marked database: synthetic bars
never sit beside real ones, and the demo's rate limit changes no setting a
real worker obeys. `pgbars demo --remove` deletes it all.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from psycopg.conninfo import make_conninfo

from . import db, work
from .emulator import PolygonServer, TradierServer, YahooServer
from .errors import PgbarsError

NEW_YORK = ZoneInfo("America/New_York")
DEMO_WATCHLIST = "demo"
DEMO_TICKERS = ("AAPL", "NVDA", "TSLA", "SPY", "QQQ", "AMD", "AMZN", "CRWD", "MU", "PLTR")
# Credentials of the local servers only: nothing real.
DEMO_POLYGON_KEY = "demo-polygon-key"
DEMO_TRADIER_TOKEN = "demo-tradier-token"  # noqa: S105
# The free plan's 5 calls a minute, scaled to 5 a second so the demo takes seconds.
DEMO_CALLS = 5
DEMO_WINDOW = dt.timedelta(seconds=1)
DEMO_MARGIN = dt.timedelta(milliseconds=50)
# NVDA's 10-for-1 split: with NVDA among the tickers, the demo also fetches 3 years of
# its d1 and shows the sessions around the split as traded and split-adjusted.
SPLIT_TICKER = "NVDA"
SPLIT_DATE = dt.date(2024, 6, 10)
SPLIT_YEARS = 3


@dataclass(slots=True)
class DemoResult:
    summary: work.WorkSummary | None
    progress: list[dict[str, Any]] = field(default_factory=list)
    coverage: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    database: str = ""
    split: list[dict[str, Any]] = field(default_factory=list)  # NVDA's d1 around its split, raw and adjusted


@dataclass(frozen=True, slots=True)
class DemoRemoval:
    database: str
    symbols: int
    bars: int
    chunks: int
    dropped_database: bool


def demo_database_name(dbname: str) -> str:
    """The database of its own that `pgbars demo --yes` uses beside a database in use."""
    return f"{dbname[:58]}_demo"


async def _demo_target(dsn: str, say: Callable[[str], None], allow_other_data: bool) -> str:
    """The DSN the demo may write to: `dsn` when its database holds no pgbars schema or
    an earlier demo; with `allow_other_data`, a database of its own beside it; else an error."""
    conn = await db.connect(dsn)
    try:
        kind = await db.database_kind(conn)
        if kind != "in use":
            return dsn
        name = conn.info.dbname
        if not allow_other_data:
            raise PgbarsError(
                f"database {name} holds pgbars data that is not the demo's: the demo never writes"
                " beside it. Unset DATABASE_URL (the demo then runs on its embedded Postgres), point"
                f" it at an empty database, or pass --yes to run the demo in a database of its own,"
                f" {demo_database_name(name)}, on the same server"
            )
        own = demo_database_name(name)
        if not await db.database_exists(conn, own):
            await db.create_database(conn, own)
            say(f"created database {own} for the demo: {name} is in use and stays untouched")
        else:
            say(f"the demo runs in its database {own}: {name} is in use and stays untouched")
    finally:
        await conn.close()
    own_dsn = make_conninfo(dsn, dbname=own)
    conn = await db.connect(own_dsn)
    try:
        if await db.database_kind(conn) == "in use":
            raise PgbarsError(f"database {own} holds pgbars data that is not the demo's: the demo stops")
    finally:
        await conn.close()
    return own_dsn


async def run_demo(
    dsn: str,
    say: Callable[[str], None],
    *,
    tickers: Sequence[str] = DEMO_TICKERS,
    live: bool = False,
    max_seconds: float = 120.0,
    allow_other_data: bool = False,
) -> DemoResult:
    """Install, add the tickers to the demo watchlist, fetch them from the local servers.

    The demo writes only to a database of its own (see _demo_target), marked in
    pgbars.demo_runs, where `pgbars work` refuses to run: so the demo's rate limit
    (5 calls a second) can be that database's setting, and synthetic bars never sit
    beside real ones.
    """
    started = time.perf_counter()
    dsn = await _demo_target(dsn, say, allow_other_data)
    conn = await db.connect(dsn)
    try:
        report = await db.upgrade(conn)
        say(f"schema: {'installed' if report.fresh_install else 'up to date'} ({report.seconds:.2f} s)")
        await db.record_demo_run(conn, tickers)
        with (
            PolygonServer(DEMO_POLYGON_KEY) as polygon,
            YahooServer() as yahoo,
            TradierServer(DEMO_TRADIER_TOKEN) as tradier,
        ):
            say(
                "provider servers on 127.0.0.1 (Polygon, Yahoo, Tradier APIs) serve SYNTHETIC bars:"
                " deterministic prices on real XNYS sessions, not market data"
            )
            saved = await db.provider_limits(conn)
            await db.set_provider_limits(
                conn,
                [
                    {
                        "name": limit["name"],
                        "calls_per_window": DEMO_CALLS,
                        "window_length": DEMO_WINDOW,
                        "window_margin": DEMO_MARGIN,
                    }
                    for limit in saved
                ],
            )
            say(
                f"demo rate limit: {DEMO_CALLS} calls per second per provider"
                f" (the free plan's {DEMO_CALLS} per minute, scaled 60x; in the demo's database only)"
            )
            added = await db.add_to_watchlist(conn, tickers, DEMO_WATCHLIST)
            new = [r["ticker"] for r in added if r["added"]]
            say(
                f"watchlist {DEMO_WATCHLIST}: {', '.join(tickers)}"
                + (
                    f"; the trigger seeded 2 years of h1 for {len(new)} of them"
                    if new
                    else "; already there (nothing new to seed)"
                )
            )
            if SPLIT_TICKER in tickers:
                await db.request_backfill(conn, [SPLIT_TICKER], ["d1"], None, None, SPLIT_YEARS)
                say(
                    f"{SPLIT_TICKER}: {SPLIT_YEARS} years of d1 too, across its 10-for-1 split of"
                    f" {SPLIT_DATE} (splits and dividends from Polygon's reference API and Yahoo's events)"
                )
            env = {
                "POLYGON_API_KEY": DEMO_POLYGON_KEY,
                "POLYGON_BASE_URL": polygon.base_url,
                "YAHOO_BASE_URL": yahoo.base_url,
                "TRADIER_TOKEN": DEMO_TRADIER_TOKEN,
                "TRADIER_BASE_URL": tradier.base_url,
            }
            config = work.WorkConfig(
                max_seconds=max_seconds, concurrency=8, tickers=tuple(tickers), allow_demo_database=True
            )
            summary = await _work(dsn, env, config, tickers, live)
        progress = await db.backfill_progress(conn, tickers=tickers)
        coverage = await db.bar_coverage(conn, tickers)
        split = await _split_rows(conn) if SPLIT_TICKER in tickers else []
        database = conn.info.dbname
    finally:
        await conn.close()
    return DemoResult(summary, progress, coverage, time.perf_counter() - started, database, split)


async def _split_rows(conn: Any) -> list[dict[str, Any]]:
    """NVDA's d1 bars of the week before its split to the week after: as traded and split-adjusted."""
    start = dt.datetime.combine(SPLIT_DATE - dt.timedelta(days=5), dt.time(), NEW_YORK)
    end = dt.datetime.combine(SPLIT_DATE + dt.timedelta(days=5), dt.time(), NEW_YORK)
    raw = await db.read_bars(conn, SPLIT_TICKER, "d1", start, end, "none")
    adjusted = {b["ts"]: b for b in await db.read_bars(conn, SPLIT_TICKER, "d1", start, end, "splits")}
    return [
        {
            "session": b["ts"].astimezone(NEW_YORK).date(),
            "close (none)": f"{b['close']:,.2f}",
            "close (splits)": f"{adjusted[b['ts']]['close']:,.2f}",
            "volume (none)": f"{b['volume']:,}",
            "volume (splits)": f"{adjusted[b['ts']]['volume']:,}",
            "provider": b["provider"],
        }
        for b in raw
    ]


async def remove_demo(dsn: str) -> DemoRemoval:
    """Delete what the demo wrote: the pgbars schema of a demo database (the one `dsn`
    names, or the database of its own beside it that --yes created, which is dropped)."""
    conn = await db.connect(dsn)
    try:
        name = conn.info.dbname
        if await db.database_kind(conn) == "demo":
            held = await db.demo_contents(conn)
            await db.drop_pgbars_schema(conn)
            return DemoRemoval(name, held["symbols"], held["bars"], held["chunks"], dropped_database=False)
        own = demo_database_name(name)
        if not await db.database_exists(conn, own):
            raise PgbarsError(f"no demo to remove: database {name} is not a demo's and {own} does not exist")
        own_conn = await db.connect(make_conninfo(dsn, dbname=own))
        try:
            kind = await db.database_kind(own_conn)
            held = (
                await db.demo_contents(own_conn) if kind == "demo" else {"symbols": 0, "bars": 0, "chunks": 0}
            )
        finally:
            await own_conn.close()
        if kind == "in use":
            raise PgbarsError(f"database {own} holds pgbars data that is not the demo's: not removed")
        await db.drop_database(conn, own)
        return DemoRemoval(own, held["symbols"], held["bars"], held["chunks"], dropped_database=True)
    finally:
        await conn.close()


async def _work(
    dsn: str, env: dict[str, str], config: work.WorkConfig, tickers: Sequence[str], live: bool
) -> work.WorkSummary:
    # The demo shows bars and a summary, not a hundred chunk lines.
    chunk_log = logging.getLogger("pgbars.work")
    level = chunk_log.level
    chunk_log.setLevel(logging.WARNING)
    try:
        if live:
            from .live import LiveProgress

            async with LiveProgress(dsn, tickers):
                return await work.run(dsn, env, config)
        return await work.run(dsn, env, config)
    finally:
        chunk_log.setLevel(level)
