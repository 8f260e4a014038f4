"""The whole run: `pgbars work` against the test database and the emulated providers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.integration.helpers import CLOCK, POLYGON_KEY, SERVER_NOW, TRADIER_TOKEN
from tests.providers.helpers import serving
from worker import clock
from worker.emulator import PolygonServer, TradierServer, YahooServer


@pytest.fixture
def polygon() -> Iterator[PolygonServer]:
    yield from serving(PolygonServer(POLYGON_KEY, now=SERVER_NOW))


@pytest.fixture
def yahoo() -> Iterator[YahooServer]:
    yield from serving(YahooServer(now=SERVER_NOW))


@pytest.fixture
def tradier() -> Iterator[TradierServer]:
    yield from serving(TradierServer(TRADIER_TOKEN, now=SERVER_NOW))


@pytest.fixture
def env(polygon: PolygonServer, yahoo: YahooServer, tradier: TradierServer) -> dict[str, str]:
    """The worker's environment: every provider configured and pointed at its emulator."""
    return {
        "POLYGON_API_KEY": POLYGON_KEY,
        "POLYGON_BASE_URL": polygon.base_url,
        "YAHOO_BASE_URL": yahoo.base_url,
        "TRADIER_TOKEN": TRADIER_TOKEN,
        "TRADIER_BASE_URL": tradier.base_url,
    }


@pytest.fixture
def db(conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch) -> psycopg.Connection[Any]:
    """The test database with the planning clock at CLOCK for every session (the
    worker's too, through PGBARS_NOW, so reroutes judge lookbacks as the seeding
    did; the database default covers sessions opened without it) and fast rate
    limits: 5 calls per rolling second per provider. Corporate-action refreshes
    are off (corporate_action_sources.enabled): these tests count, fault and
    pace the bar requests one by one; the tests of corporate actions
    (test_corporate_actions.py, the end-to-end run) turn them on."""
    monkeypatch.setenv(clock.ENV, CLOCK)
    conn.execute(
        sql.SQL("ALTER DATABASE {} SET pgbars.now = {}").format(
            sql.Identifier(conn.info.dbname), sql.Literal(CLOCK)
        )
    )
    conn.execute("SELECT set_config('pgbars.now', %s, false)", (CLOCK,))
    conn.execute(
        "UPDATE pgbars.providers SET calls_per_window = 5, window_length = '1 second',"
        " window_margin = '0.02 seconds'"
    )
    conn.execute("UPDATE pgbars.corporate_action_sources SET enabled = false")
    return conn


@pytest.fixture
def spawn(dsn: str, tmp_path: Path) -> Iterator[Any]:
    """Starts `pgbars work` (or `command`, e.g. serve) processes, logs to files; kills leftovers."""
    started: list[subprocess.Popen[bytes]] = []

    def start(
        env: dict[str, str], *args: str, name: str = "worker", command: str = "work"
    ) -> tuple[subprocess.Popen[bytes], Path]:
        log = tmp_path / f"{name}-{len(started)}.log"
        process_env = {
            k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_TOKEN", "_BASE_URL"))
        }
        process_env.update(env, DATABASE_URL=dsn)
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "worker", command, *args],
                env=process_env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        return process, log

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
