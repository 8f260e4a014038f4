"""`pgbars demo`: the whole pipeline offline, against local provider servers.

Everything on the path is the real one (trigger, seeding, claims, the
rate-limit ledger, HTTP, pagination, validation, COPY, progress); only the
market is synthetic: the provider servers of worker.emulator serve
deterministic bars on real XNYS sessions, on 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from worker import db, work
from worker.emulator import PolygonServer, TradierServer, YahooServer

DEMO_WATCHLIST = "demo"
DEMO_TICKERS = ("AAPL", "NVDA", "TSLA", "SPY", "QQQ", "AMD", "AMZN", "CRWD", "MU", "PLTR")
# Credentials of the local servers only: nothing real.
DEMO_POLYGON_KEY = "demo-polygon-key"
DEMO_TRADIER_TOKEN = "demo-tradier-token"  # noqa: S105
# The free plan's 5 calls a minute, scaled to 5 a second so the demo takes seconds.
DEMO_CALLS = 5
DEMO_WINDOW = dt.timedelta(seconds=1)
DEMO_MARGIN = dt.timedelta(milliseconds=50)


@dataclass(slots=True)
class DemoResult:
    summary: work.WorkSummary | None
    progress: list[dict[str, Any]] = field(default_factory=list)
    coverage: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


async def run_demo(
    dsn: str,
    say: Callable[[str], None],
    *,
    tickers: Sequence[str] = DEMO_TICKERS,
    live: bool = False,
    max_seconds: float = 120.0,
) -> DemoResult:
    """Install, add the tickers to the demo watchlist, fetch them from the local servers."""
    started = time.perf_counter()
    conn = await db.connect(dsn)
    try:
        report = await db.upgrade(conn)
        say(f"schema: {'installed' if report.fresh_install else 'up to date'} ({report.seconds:.2f} s)")
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
                f" (the free plan's {DEMO_CALLS} per minute, scaled 60x; restored afterwards)"
            )
            try:
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
                env = {
                    "POLYGON_API_KEY": DEMO_POLYGON_KEY,
                    "POLYGON_BASE_URL": polygon.base_url,
                    "YAHOO_BASE_URL": yahoo.base_url,
                    "TRADIER_TOKEN": DEMO_TRADIER_TOKEN,
                    "TRADIER_BASE_URL": tradier.base_url,
                }
                config = work.WorkConfig(max_seconds=max_seconds, concurrency=8, tickers=tuple(tickers))
                summary = await _work(dsn, env, config, tickers, live)
            finally:
                await db.set_provider_limits(conn, saved)
        progress = await db.backfill_progress(conn, tickers=tickers)
        coverage = await db.bar_coverage(conn, tickers)
    finally:
        await conn.close()
    return DemoResult(summary, progress, coverage, time.perf_counter() - started)


async def _work(
    dsn: str, env: dict[str, str], config: work.WorkConfig, tickers: Sequence[str], live: bool
) -> work.WorkSummary:
    # The demo shows bars and a summary, not a hundred chunk lines.
    chunk_log = logging.getLogger("pgbars.work")
    level = chunk_log.level
    chunk_log.setLevel(logging.WARNING)
    try:
        if live:
            from worker.live import LiveProgress

            async with LiveProgress(dsn, tickers):
                return await work.run(dsn, env, config)
        return await work.run(dsn, env, config)
    finally:
        chunk_log.setLevel(level)
