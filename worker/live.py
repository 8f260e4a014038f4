"""Live progress bars for a terminal, redrawn from `backfill_progress` while a run goes on.

The bars read the database (the one truth, shared by every worker), not the
worker's own counters, so they also show chunks other workers finish. Only
for terminals: in CI or a pipe the worker logs plain lines instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from . import db

POLL_SECONDS = 0.5
MAX_JOB_BARS = 15  # more jobs than this: the overall bar and the first ones


def use_live_display(stream: Any = None) -> bool:
    """True on an interactive terminal outside CI."""
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)()) and not os.environ.get("CI")


class _ConsoleHandler(logging.Handler):
    """Log lines printed above the bars instead of through them."""

    def __init__(self, console: Console, formatter: logging.Formatter | None) -> None:
        super().__init__()
        self._console = console
        if formatter is not None:
            self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        self._console.print(self.format(record), markup=False, highlight=False, soft_wrap=True)


class LiveProgress:
    """`async with LiveProgress(dsn, tickers):` shows a bar per job with work left, and one overall."""

    def __init__(
        self, dsn: str, tickers: Sequence[str] | None = None, console: Console | None = None
    ) -> None:
        self._dsn = dsn
        self._tickers = list(tickers) if tickers else None
        self.console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description:<14}"),
            BarColumn(bar_width=30),
            TextColumn("{task.percentage:>5.1f}%"),
            MofNCompleteColumn(),
            TextColumn("chunks  {task.fields[bars]:>9,} bars  {task.fields[status]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._tasks: dict[tuple[str, str], TaskID] = {}
        self._overall: TaskID | None = None
        self._watched: set[tuple[str, str]] | None = None
        self._poller: asyncio.Task[None] | None = None
        self._saved_handlers: list[logging.Handler] = []

    async def __aenter__(self) -> Self:
        self._conn = await db.connect(self._dsn)
        try:
            await db.ensure_schema_current(self._conn)
        except BaseException:
            await self._conn.close()
            raise
        logger = logging.getLogger("pgbars")
        self._saved_handlers = logger.handlers[:]
        formatter = self._saved_handlers[0].formatter if self._saved_handlers else None
        logger.handlers[:] = [_ConsoleHandler(self.console, formatter)]
        self._progress.start()
        await self.refresh()
        self._poller = asyncio.create_task(self._poll())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        try:
            await self.refresh()
        finally:
            self._progress.stop()
            logging.getLogger("pgbars").handlers[:] = self._saved_handlers
            await self._conn.close()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            await self.refresh()

    async def refresh(self) -> None:
        rows = await db.backfill_progress(self._conn, tickers=self._tickers)
        if self._watched is None:
            # Jobs with work left when the run started; all of them if none has.
            open_jobs = [(r["symbol"], r["timeframe"]) for r in rows if r["status"] not in ("done",)]
            self._watched = set(open_jobs or [(r["symbol"], r["timeframe"]) for r in rows])
        watched = [r for r in rows if (r["symbol"], r["timeframe"]) in self._watched]
        # A derived timeframe's row repeats its source job's chunks: counted once.
        fetched = [r for r in watched if not r.get("derived_from")]
        total = sum(int(r["total"]) for r in fetched)
        done = sum(int(r["done"]) + int(r["failed"]) for r in fetched)
        bars = sum(int(r["bars_written"] or 0) for r in fetched)
        if self._overall is None:
            self._overall = self._progress.add_task("all jobs", total=total, bars=0, status="")
        failed = sum(int(r["failed"]) for r in fetched)
        self._progress.update(
            self._overall,
            total=total,
            completed=done,
            bars=bars,
            status=f"{failed} failed" if failed else "",
        )
        for row in watched[:MAX_JOB_BARS]:
            key = (row["symbol"], row["timeframe"])
            if key not in self._tasks:
                self._tasks[key] = self._progress.add_task(
                    f"{row['symbol']} {row['timeframe']}", total=row["total"], bars=0, status=""
                )
            self._progress.update(
                self._tasks[key],
                total=row["total"],
                completed=int(row["done"]) + int(row["failed"]),
                bars=int(row["bars_written"] or 0),
                status=row["status"],
            )
