"""NVDA across its 10-for-1 split of 2024-06-10, through `pgbars work` and the emulated providers.

Polygon serves raw bars (adjusted=false) and its reference splits and
dividends; Yahoo serves split-adjusted quotes and its chart events. pgbars
stores one basis, as traded, and adjusts on read.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from tests.integration.helpers import SERVER_NOW, config, request, scalar
from worker import work
from worker.emulator import Fault, PolygonServer, YahooServer, synthetic

NEW_YORK = ZoneInfo("America/New_York")
SPLIT = dt.date(2024, 6, 10)
FIRST, LAST = dt.date(2024, 5, 28), dt.date(2024, 6, 21)


@pytest.fixture
def actions_on(db: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    db.execute("UPDATE pgbars.corporate_action_sources SET enabled = true")
    return db


def run(dsn: str, env: dict[str, str]) -> work.WorkSummary:
    return asyncio.run(work.run(dsn, env, config()))


def bars(
    conn: psycopg.Connection[Any], timeframe: str, adjust: str
) -> list[tuple[dt.datetime, float, float, float, float, int]]:
    rows = conn.execute(
        "SELECT ts, open, high, low, close, volume FROM pgbars.get_bars('NVDA', %s, %s, %s, %s)",
        (
            timeframe,
            dt.datetime.combine(FIRST, dt.time(), NEW_YORK),
            dt.datetime.combine(LAST + dt.timedelta(days=1), dt.time(), NEW_YORK),
            adjust,
        ),
    ).fetchall()
    return [tuple(row) for row in rows]


def session(ts: dt.datetime) -> dt.date:
    return ts.astimezone(NEW_YORK).date()


def bar_requests(server: PolygonServer | YahooServer) -> int:
    """Requests for bars: Polygon's aggregates, Yahoo's charts without events."""
    return sum(
        1
        for r in server.requests
        if r.path.startswith("/v2/aggs") or (r.path.startswith("/v8/") and r.param("events") is None)
    )


def test_raw_and_adjusted_nvda_across_its_split(
    actions_on: psycopg.Connection[Any], dsn: str, env: dict[str, str]
) -> None:
    db = actions_on
    for timeframe in ("h1", "m30", "d1", "h4"):  # h4: derived from h1
        request(db, "NVDA", timeframe, FIRST, LAST)
    summary = run(dsn, env)
    assert {(r.lease.provider, r.outcome) for r in summary.actions} == {
        ("polygon", "done"),
        ("yahoo", "done"),
    }
    assert {r.outcome for r in summary.reports} == {"done"}
    split = db.execute(
        "SELECT split_from, split_to, provider FROM pgbars.corporate_actions WHERE kind = 'split'"
    ).fetchall()
    assert split == [(1, 10, "polygon")]
    assert db.execute("SELECT count(*) FROM pgbars.corporate_action_conflicts").fetchone() == (0,)
    # NVDA's later dividends (up to the clock) follow sessions pgbars holds no close of:
    # `all` cannot apply them, and says so
    assert db.execute("SELECT issue, left(detail, 19) FROM pgbars.price_basis_issues").fetchall() == [
        ("dividend_not_applied", "dividend 2024-09-12"),
        ("dividend_not_applied", "dividend 2024-12-05"),
    ]

    # Raw d1 (from Yahoo, which serves split-adjusted quotes) equals Polygon's raw intraday
    # bars of the regular session, on both sides of the split: the close is the 15:00 h1
    # bar's; high, low and volume are the m30 bars' from 09:30 (h1's 09:00 bar holds
    # pre-market minutes, which the daily bar does not).
    daily = {session(b[0]): b for b in bars(db, "d1", "none")}
    hourly = bars(db, "h1", "none")
    halves = bars(db, "m30", "none")
    assert {d.isoformat() for d in daily} >= {"2024-06-07", "2024-06-10"}
    for day, (_, _, high, low, close, volume) in daily.items():
        regular = [
            b for b in halves if session(b[0]) == day and b[0].astimezone(NEW_YORK).time() >= dt.time(9, 30)
        ]
        regular = [b for b in regular if b[0].astimezone(NEW_YORK).time() < dt.time(16)]
        last_hour = next(b for b in hourly if b[0] == dt.datetime.combine(day, dt.time(15), NEW_YORK))
        assert close == pytest.approx(last_hour[4], rel=1e-12)
        assert high == pytest.approx(max(b[2] for b in regular), rel=1e-12)
        assert low == pytest.approx(min(b[3] for b in regular), rel=1e-12)
        assert volume == sum(b[5] for b in regular)
    # as traded, the price jumps tenfold at the split
    before, after = daily[dt.date(2024, 6, 7)], daily[SPLIT]
    assert 7 < before[4] / after[1] < 14

    # Split-adjusted: no jump, and exactly Polygon's own adjusted=true bars (h4 derived from raw h1).
    for timeframe in ("h1", "h4", "d1"):
        served = synthetic.adjusted_bars("NVDA", timeframe, FIRST, LAST, as_of=SERVER_NOW.date())
        got = bars(db, timeframe, "splits")
        assert [b[0] for b in got] == [b.ts for b in served]
        for mine, theirs in zip(got, served, strict=True):
            assert mine[1:5] == pytest.approx((theirs.open, theirs.high, theirs.low, theirs.close), rel=1e-9)
            assert abs(mine[5] - theirs.volume) <= 1
    adjusted = {session(b[0]): b for b in bars(db, "d1", "splits")}
    assert 0.7 < adjusted[dt.date(2024, 6, 7)][4] / adjusted[SPLIT][1] < 1.4
    # the split day itself is on the new basis: as traded
    assert adjusted[SPLIT] == daily[SPLIT]
    # a dividend moves `all`, not `splits`: NVDA's of 2024-06-11 ($0.01)
    every = {session(b[0]): b for b in bars(db, "d1", "all")}
    factor = 1 - 0.01 / daily[SPLIT][4]
    assert every[dt.date(2024, 6, 7)][4] == pytest.approx(
        adjusted[dt.date(2024, 6, 7)][4] * factor, rel=1e-12
    )
    assert every[SPLIT][4] == pytest.approx(adjusted[SPLIT][4] * factor, rel=1e-12)
    assert every[dt.date(2024, 6, 11)] == adjusted[dt.date(2024, 6, 11)]


def test_an_action_learned_after_the_backfill_changes_reads_without_bar_requests(
    actions_on: psycopg.Connection[Any],
    dsn: str,
    env: dict[str, str],
    polygon: PolygonServer,
    yahoo: YahooServer,
) -> None:
    db = actions_on
    polygon.withheld_actions.add("NVDA")
    yahoo.withheld_actions.add("NVDA")
    request(db, "NVDA", "d1", FIRST, LAST)
    run(dsn, env)
    assert db.execute("SELECT count(*) FROM pgbars.corporate_actions WHERE kind = 'split'").fetchone() == (0,)
    unreconciled = {session(b[0]): b[4] for b in bars(db, "d1", "none")}
    # Yahoo's quotes before the split are a tenth of the traded price, and nobody told pgbars
    assert 0.7 < unreconciled[dt.date(2024, 6, 7)] / unreconciled[SPLIT] < 1.4

    # The providers report the split the next day.
    polygon.withheld_actions.clear()
    yahoo.withheld_actions.clear()
    db.execute("UPDATE pgbars.action_refreshes SET due_at = now()")
    polygon.clear()
    yahoo.clear()
    summary = run(dsn, env)
    assert len(summary.actions) == 2 and summary.reports == []
    assert bar_requests(polygon) == bar_requests(yahoo) == 0
    raw = {session(b[0]): b for b in bars(db, "d1", "none")}
    served = {session(b.ts): b for b in synthetic.bars("NVDA", "d1", FIRST, LAST)}
    for day, bar in raw.items():
        assert bar[4] == pytest.approx(served[day].close, rel=1e-12)
        assert bar[5] == served[day].volume
    assert 7 < raw[dt.date(2024, 6, 7)][4] / raw[SPLIT][1] < 14


def test_a_failing_reference_endpoint_still_stores_bars_and_the_gap_is_reported(
    actions_on: psycopg.Connection[Any], dsn: str, env: dict[str, str], polygon: PolygonServer
) -> None:
    db = actions_on
    db.execute("UPDATE pgbars.corporate_action_sources SET enabled = false WHERE provider = 'yahoo'")
    polygon.inject(Fault.not_authorized(), path_prefix="/v3/reference", times=5)
    request(db, "NVDA", "h1", FIRST, LAST)
    summary = run(dsn, env)
    assert [r.outcome for r in summary.actions] == ["failed"]
    assert {r.outcome for r in summary.reports} == {"done"}
    assert scalar(db, "SELECT count(*) FROM pgbars.ohlc_bars_v2") > 0
    (issue, detail) = db.execute("SELECT issue, detail FROM pgbars.price_basis_issues").fetchone() or ("", "")
    assert issue == "actions_not_fetched"
    assert detail.startswith("polygon: splits and dividends could not be fetched: polygon: HTTP 403")
    # not retried before its next daily refresh
    assert scalar(db, "SELECT due_at > now() + interval '23 hours' FROM pgbars.action_refreshes") is True
