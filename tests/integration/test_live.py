"""Live progress bars on a terminal: redrawn from backfill_progress while a run goes on."""

from __future__ import annotations

import datetime as dt
import io
import logging
from typing import Any

import psycopg
from rich.console import Console

from tests.integration.helpers import config, request
from worker import work
from worker.emulator import PolygonServer
from worker.live import LiveProgress, use_live_display


async def test_bars_per_job_and_log_lines_above_them(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer
) -> None:
    request(db, "AAPL", "h1", dt.date(2024, 12, 2), dt.date(2024, 12, 6))
    request(db, "MSFT", "h1", dt.date(2024, 12, 2), dt.date(2024, 12, 6))
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=140, color_system=None)
    logger = logging.getLogger("pgbars")
    plain = logging.StreamHandler(io.StringIO())
    logger.handlers[:] = [plain]
    logger.setLevel(logging.INFO)
    try:
        async with LiveProgress(dsn, ["AAPL", "MSFT"], console=console):
            await work.run(dsn, env, config())
        assert logger.handlers == [plain]  # the plain handler is back afterwards
    finally:
        logger.handlers[:] = []

    text = screen.getvalue()
    assert "all jobs" in text and "AAPL h1" in text and "MSFT h1" in text
    assert "100.0%" in text and "2/2" in text and "done" in text
    assert "chunk ticker=AAPL" in text  # log lines go through the same console


def test_live_display_only_on_a_terminal_outside_ci(monkeypatch: Any) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("CI", raising=False)
    assert use_live_display(Tty())
    assert not use_live_display(io.StringIO())
    monkeypatch.setenv("CI", "true")
    assert not use_live_display(Tty())
