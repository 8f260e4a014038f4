"""`pgbars work` during a session: today's bars from Tradier, provisional, rolled up in SQL.

The planning clock (pgbars.now) and the emulators' clock are 2025-01-02 12:00 New York, a
session in progress. Polygon is left unconfigured so that these runs do only the live part
(the watchlist trigger's h1 history needs Polygon, so nothing else is claimable).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections import defaultdict
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.integration.helpers import (
    SERVER_NOW,
    Row,
    capture_worker_logs,
    config,
    scalar,
    served,
    stored,
    watch,
    work_log,
)
from worker import clock, work
from worker.calendar import NEW_YORK
from worker.emulator import PolygonServer, TradierServer

TODAY = dt.date(2025, 1, 2)


def without_polygon(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k != "POLYGON_API_KEY"}


def hourly_from_m15(ticker: str) -> list[Row]:
    """Today's h1 bars so far, aggregated here from the 15-minute bars Tradier serves."""
    groups: dict[dt.datetime, list[Row]] = defaultdict(list)
    for bar in served(ticker, "m15", TODAY, TODAY):
        if bar[0] <= SERVER_NOW:
            groups[bar[0].astimezone(NEW_YORK).replace(minute=0).astimezone(dt.UTC)].append(bar)
    hours: list[Row] = []
    for start, bars in sorted(groups.items()):
        volume = sum(b[5] for b in bars)
        vwap = bars[0][6] if len(bars) == 1 else sum((b[6] or 0) * b[5] for b in bars) / volume
        high, low = max(b[2] for b in bars), min(b[3] for b in bars)
        no_count: int | None = None  # Tradier's timesales have no trade count
        hours.append((start, bars[0][1], high, low, bars[-1][4], volume, vwap, no_count))
    return hours


def timesales(tradier: TradierServer, symbol: str | None = None) -> list[Any]:
    return [
        r
        for r in tradier.requests
        if r.path == "/v1/markets/timesales" and (symbol is None or r.param("symbol") == symbol)
    ]


async def test_todays_bars_appear_during_the_session_one_request_per_symbol(
    dsn: str,
    db: psycopg.Connection[Any],
    env: dict[str, str],
    tradier: TradierServer,
    polygon: PolygonServer,
    caplog: Any,
) -> None:
    capture_worker_logs(caplog)
    watch(db, "AAPL")
    watch(db, "MSFT")
    db.execute("SELECT pgbars.request_backfill('MSFT', '{h4}')")

    summary = await work.run(dsn, without_polygon(env), config())

    assert sorted((r.lease.ticker, r.outcome) for r in summary.live) == [("AAPL", "done"), ("MSFT", "done")]
    for ticker in ("AAPL", "MSFT"):
        (sent,) = timesales(tradier, ticker)
        assert sent.query == {
            "symbol": [ticker],
            "interval": ["15min"],
            "start": ["2025-01-02 04:00"],
            "end": ["2025-01-02 19:59"],
            "session_filter": ["all"],
        }
        rows = stored(db, ticker, "h1", "tradier")
        expected = hourly_from_m15(ticker)
        assert [r[:6] for r in rows] == [e[:6] for e in expected]  # 04:00 .. 12:00, the last one partial
        assert [r[6] for r in rows] == pytest.approx([e[6] for e in expected], rel=1e-12)
    assert [r[0].astimezone(NEW_YORK).hour for r in stored(db, "MSFT", "h4", "tradier")] == [4, 8, 12]
    assert stored(db, "AAPL", "m15") == []  # fetched to roll up, not wanted, not stored
    assert scalar(db, "SELECT bool_and(is_provisional) FROM pgbars.ohlc_bars_v2") is True
    assert polygon.requests == []
    # every request went through the ledger
    assert scalar(db, "SELECT count(*) FROM pgbars.provider_calls WHERE provider = 'tradier'") == 2

    # charts read today's bars through get_bars
    today = db.execute(
        "SELECT count(*), min(provider), max(provider) FROM pgbars.get_bars('AAPL', 'h1', %s, %s)",
        (dt.datetime(2025, 1, 2, 4, tzinfo=NEW_YORK), dt.datetime(2025, 1, 2, 20, tzinfo=NEW_YORK)),
    ).fetchone()
    assert today == (9, "tradier", "tradier")
    assert len(re.findall(r"^live ticker=\w+ timeframe=m15 .*outcome=done", work_log(caplog), re.M)) == 2

    # a run within live_settings.refresh_every asks nothing again
    again = await work.run(dsn, without_polygon(env), config())
    assert again.live == []
    assert len(timesales(tradier)) == 2


async def test_without_a_tradier_token_the_run_says_so_once(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str], tradier: TradierServer, caplog: Any
) -> None:
    capture_worker_logs(caplog)
    for ticker in ("AAPL", "MSFT", "NVDA"):
        watch(db, ticker)
    no_token = {k: v for k, v in without_polygon(env).items() if k != "TRADIER_TOKEN"}

    summary = await work.run(dsn, no_token, config())

    assert summary.live_skipped == {"tradier": "TRADIER_TOKEN is not set"}
    lines = [line for line in work_log(caplog).splitlines() if "TRADIER_TOKEN" in line]
    assert lines == ['live_skipped provider=tradier refreshes=3 reason="TRADIER_TOKEN is not set"']
    assert tradier.requests == []


async def test_a_refused_token_is_reported_once_and_nothing_is_lost(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str], tradier: TradierServer, caplog: Any
) -> None:
    capture_worker_logs(caplog)
    for ticker in ("AAPL", "MSFT", "NVDA"):
        watch(db, ticker)
    wrong = {**without_polygon(env), "TRADIER_TOKEN": "tt-wrong-0000"}

    summary = await work.run(dsn, wrong, config(concurrency=1))

    assert "tradier" in summary.refused
    assert len(re.findall(r"^provider_refused provider=tradier", work_log(caplog), re.M)) == 1
    assert len(timesales(tradier)) == 1  # the other two were given back without a request
    assert "tt-wrong-0000" not in work_log(caplog)
    state = db.execute(
        "SELECT count(*), count(*) FILTER (WHERE lease_id IS NULL) FROM pgbars.live_refreshes"
    ).fetchone()
    assert state == (3, 3)  # every refresh released: the next run with a good token does them


async def test_a_symbol_tradier_does_not_know_is_reported_once_per_run_and_not_asked_again(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str], tradier: TradierServer, caplog: Any
) -> None:
    capture_worker_logs(caplog)
    tradier.unknown_symbols.add("ZZZZ")
    watch(db, "AAPL")
    watch(db, "ZZZZ")
    db.execute("UPDATE pgbars.live_settings SET refresh_every = '0 seconds'")

    first = await work.run(dsn, without_polygon(env), config())
    caplog.clear()
    second = await work.run(dsn, without_polygon(env), config())

    for summary in (first, second):
        ((ticker, timeframe, provider, why),) = summary.live_no_data
        assert (ticker, timeframe, provider) == ("ZZZZ", "m15", "tradier")
        assert "answered no m15 bars" in why
    assert len(re.findall(r"^live_no_data ticker=ZZZZ", work_log(caplog), re.M)) == 1
    assert len(timesales(tradier, "ZZZZ")) == 1  # asked in the first run only
    assert len(timesales(tradier, "AAPL")) == 2  # refreshed by both runs
    assert [r.lease.ticker for r in second.live] == ["AAPL"]


def move_clock(db: psycopg.Connection[Any], at: str) -> None:
    """The planning clock of every new session (the worker's pool) and of this one.
    The db fixture's monkeypatch restores PGBARS_NOW after the test."""
    os.environ[clock.ENV] = at
    db.execute(
        sql.SQL("ALTER DATABASE {} SET pgbars.now = {}").format(
            sql.Identifier(db.info.dbname), sql.Literal(at)
        )
    )
    db.execute("SELECT set_config('pgbars.now', %s, false)", (at,))


async def test_a_watchlist_symbol_stays_current_day_after_day_without_a_manual_step(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer, tradier: TradierServer
) -> None:
    watch(db, "AAPL")
    day = (dt.datetime(2025, 1, 2, 4, tzinfo=NEW_YORK), dt.datetime(2025, 1, 2, 20, tzinfo=NEW_YORK))
    read_day = "SELECT ts, provider FROM pgbars.get_bars('AAPL', 'h1', %s, %s)"

    # 2025-01-02 12:00, the session trading: two years of history, and today so far from Tradier
    first = await work.run(dsn, env, config())
    assert [r.outcome for r in first.reports] == ["done"] * 10
    assert [r.outcome for r in first.live] == ["done"]
    assert {p for _, p in db.execute(read_day, day).fetchall()} == {"tradier"}

    # 21:00, the session closed: the roll-forward plans it, Polygon serves it, reads prefer it
    move_clock(db, "2025-01-02 21:00 America/New_York")
    closed = await work.run(dsn, env, config())
    assert closed.rolled["chunks_added"] == 1 and closed.live == []
    (report,) = closed.reports
    assert (report.lease.first_session, report.lease.last_session, report.outcome) == (TODAY, TODAY, "done")
    history = served("AAPL", "h1", TODAY, TODAY)
    assert [(ts, p) for ts, p in db.execute(read_day, day).fetchall()] == [(b[0], "polygon") for b in history]
    assert closed.provisional_deleted == 0  # kept for live_settings.keep_provisional (1 day)

    # Saturday: Friday's session arrives, and the provisional bars history replaced are gone
    move_clock(db, "2025-01-04 12:00 America/New_York")
    weekend = await work.run(dsn, env, config())
    friday = dt.date(2025, 1, 3)
    assert [(r.lease.first_session, r.lease.last_session, r.outcome) for r in weekend.reports] == [
        (friday, friday, "done")
    ]
    assert weekend.live == []  # no session trades on a Saturday
    assert weekend.provisional_deleted == 9
    assert scalar(db, "SELECT count(*) FROM pgbars.ohlc_bars_v2 WHERE provider = 'tradier'") == 0
    assert stored(db, "AAPL", "h1") == served("AAPL", "h1", dt.date(2023, 1, 3), friday)
    assert len(timesales(tradier)) == 1 and len(polygon.requests) == 12
