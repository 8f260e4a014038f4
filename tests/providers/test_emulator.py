"""The emulators themselves: synthetic data, Polygon's limit semantics, faults, recording."""

from __future__ import annotations

import datetime as dt
import itertools
import time

import httpx
import pytest

from tests.providers.helpers import NOW, POLYGON_KEY, TICKER, TRADIER_TOKEN, new_york, utc
from worker.emulator import Fault, PolygonServer, TradierServer, YahooServer, synthetic
from worker.providers.grid import INTRADAY_MINUTES, is_on_grid, sessions_between

D = dt.date
_AUTH = {"Authorization": f"Bearer {POLYGON_KEY}"}


def test_synthetic_minutes_are_deterministic_valid_and_gappy() -> None:
    day = D(2024, 3, 8)
    (hours,) = synthetic.sessions(day, day)
    bars = synthetic.minute_bars(TICKER, day)

    assert bars == synthetic.minute_bars(TICKER, day)
    assert synthetic.minute_bars("OTHER", day) != bars
    for bar in bars:
        assert 0 < bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
        assert bar.low <= bar.vwap <= bar.high and bar.volume > 0 and bar.trade_count > 0
        assert hours.premarket_open <= bar.ts < hours.after_hours_close
    regular = [b for b in bars if hours.regular_open <= b.ts < hours.regular_close]
    extended = len(bars) - len(regular)
    assert 0.95 * 390 <= len(regular) < 390  # about 1% of regular minutes are missing
    assert 0.6 * 570 <= extended <= 0.92 * 570  # extended hours are gappier
    assert synthetic.minute_bars(TICKER, day, extended=False) == regular
    # Each minute opens at the path's price for that minute and closes at the next one's.
    minute = int(bars[0].ts.timestamp()) // 60
    assert (bars[0].open, bars[0].close) == (
        synthetic.price_at(TICKER, minute),
        synthetic.price_at(TICKER, minute + 1),
    )


@pytest.mark.parametrize("timeframe", list(INTRADAY_MINUTES))
def test_synthetic_aggregates_are_on_the_grid_and_inside_sessions(timeframe: str) -> None:
    first, last = D(2024, 11, 27), D(2024, 12, 2)  # Thanksgiving, an early close, a weekend
    bars = synthetic.bars(TICKER, timeframe, first, last)
    sessions = synthetic.sessions(first, last)

    assert all(is_on_grid(bar.ts, timeframe) for bar in bars)
    width = dt.timedelta(minutes=INTRADAY_MINUTES[timeframe])
    for bar in bars:
        (session,) = [s for s in sessions if s.premarket_open <= bar.ts < s.after_hours_close]
        inside = [
            m for m in synthetic.minute_bars(TICKER, session.session_date) if bar.ts <= m.ts < bar.ts + width
        ]
        assert bar.minutes == len(inside)  # made of its own session's minutes only
    minutes = sum(len(synthetic.minute_bars(TICKER, s.session_date)) for s in sessions)
    assert sum(bar.minutes for bar in bars) == minutes


def test_synthetic_daily_and_weekly() -> None:
    daily = synthetic.bars(TICKER, "d1", D(2024, 11, 25), D(2024, 12, 6))
    weekly = synthetic.bars(TICKER, "w1", D(2024, 11, 27), D(2024, 12, 3))

    assert [new_york(bar.ts) for bar in daily][:4] == [
        "2024-11-25 00:00",
        "2024-11-26 00:00",
        "2024-11-27 00:00",
        "2024-11-29 00:00",
    ]
    assert len(daily) == len(sessions_between(D(2024, 11, 25), D(2024, 12, 6))) == 9
    assert daily[3].minutes < 220  # early close: 09:30-13:00
    assert [new_york(bar.ts) for bar in weekly] == ["2024-11-25 00:00", "2024-12-02 00:00"]
    assert [bar.sessions for bar in weekly] == [4, 5]
    assert weekly[0].volume == sum(bar.volume for bar in daily[:4])
    assert weekly[0].open == daily[0].open and weekly[0].close == daily[3].close


async def test_polygon_limit_counts_base_minutes_and_next_url_carries_no_key() -> None:
    day = D(2024, 3, 8)
    (hours,) = synthetic.sessions(day, day)
    frm, to = (
        int(hours.premarket_open.timestamp() * 1000),
        int(hours.after_hours_close.timestamp() * 1000) - 1,
    )
    with PolygonServer(POLYGON_KEY) as server:
        async with httpx.AsyncClient() as client:
            first = await client.get(
                f"{server.base_url}/v2/aggs/ticker/{TICKER}/range/1/hour/{frm}/{to}",
                params={"limit": "120"},
                headers=_AUTH,
            )
            page = first.json()
            next_url = page["next_url"]
            without_key = await client.get(next_url)
            second = await client.get(next_url, headers=_AUTH)
            by_param = await client.get(next_url + f"&apiKey={POLYGON_KEY}")

    hours_served = synthetic.bars(TICKER, "h1", day, day)
    served_minutes = [bar.minutes for bar in hours_served]
    fitting = 0
    while sum(served_minutes[: fitting + 1]) <= 120:
        fitting += 1
    assert page["resultsCount"] == fitting  # only whole hours that fit in 120 minute bars
    assert page["queryCount"] == sum(served_minutes[:fitting]) <= 120
    assert POLYGON_KEY not in next_url and "cursor=" in next_url
    assert without_key.status_code == 401
    assert without_key.json()["status"] == "ERROR"
    assert second.status_code == by_param.status_code == 200
    assert second.json()["results"][0]["t"] == int(hours_served[fitting].ts.timestamp() * 1000)


async def test_polygon_default_limit_is_5000_base_minutes() -> None:
    first, last = D(2024, 5, 1), D(2024, 5, 10)
    start = synthetic.sessions(first, first)[0].premarket_open
    end = synthetic.sessions(last, last)[0].after_hours_close
    with PolygonServer(POLYGON_KEY) as server:
        async with httpx.AsyncClient() as client:
            answer = await client.get(
                f"{server.base_url}/v2/aggs/ticker/{TICKER}/range/1/minute/"
                f"{int(start.timestamp() * 1000)}/{int(end.timestamp() * 1000)}",
                headers=_AUTH,
            )

    assert answer.json()["resultsCount"] == 5000
    assert "next_url" in answer.json()


async def test_faults_by_path_prefix_times_and_skip_and_recording() -> None:
    with TradierServer(TRADIER_TOKEN, now=NOW) as server:
        server.inject(Fault.server_error(503), path_prefix="/v1/markets/history", times=2, skip=1)
        assert server.pending_faults == 2
        headers = {"Authorization": f"Bearer {TRADIER_TOKEN}", "Accept": "application/json", "X-Probe": "1"}
        params = {"symbol": TICKER, "interval": "daily", "start": "2024-11-27", "end": "2024-11-27"}
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as client:
            statuses = [
                (await client.get("/v1/markets/timesales", params={"symbol": TICKER})).status_code,
                (await client.get("/v1/markets/history", params=params)).status_code,
                (await client.get("/v1/markets/history", params=params)).status_code,
                (await client.get("/v1/markets/history", params=params)).status_code,
                (await client.get("/v1/markets/history", params=params)).status_code,
            ]
        requests = server.requests
        server.clear()
        cleared = server.requests

    # timesales without start/end is a 400; history: skipped once, failed twice, then fine.
    assert statuses == [400, 200, 503, 503, 200]
    assert server.pending_faults == 0
    assert [r.path for r in requests[1:]] == ["/v1/markets/history"] * 4
    assert requests[1].query["start"] == ["2024-11-27"]
    assert requests[1].header("x-probe") == "1"
    assert requests[1].header("accept") == "application/json"
    assert all(a.monotonic <= b.monotonic for a, b in itertools.pairwise(requests))
    assert all(r.wall.tzinfo is dt.UTC for r in requests)
    assert cleared == []


async def test_tradier_answers_xml_without_accept_and_counts_calls() -> None:
    with TradierServer(TRADIER_TOKEN, now=NOW) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            params = {"symbol": TICKER, "interval": "daily", "start": "2024-11-26", "end": "2024-11-27"}
            auth = {"Authorization": f"Bearer {TRADIER_TOKEN}"}
            xml = await client.get("/v1/markets/history", params=params, headers=auth)
            json_ = await client.get(
                "/v1/markets/history", params=params, headers={**auth, "Accept": "application/json"}
            )

    assert xml.headers["content-type"].startswith("application/xml")
    assert xml.text.startswith("<?xml") and "<day><date>2024-11-26</date>" in xml.text
    assert [day["date"] for day in json_.json()["history"]["day"]] == ["2024-11-26", "2024-11-27"]
    assert json_.headers["x-ratelimit-allowed"] == "120"
    assert int(json_.headers["x-ratelimit-used"]) == 2


async def test_yahoo_lookback_limits() -> None:
    def window(days_back: int, span_days: int) -> dict[str, str]:
        start = NOW - dt.timedelta(days=days_back)
        return {
            "period1": str(int(start.timestamp())),
            "period2": str(int((start + dt.timedelta(days=span_days)).timestamp())),
        }

    with YahooServer(now=NOW) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            path = f"/v8/finance/chart/{TICKER}"
            ok_5m = await client.get(path, params={"interval": "5m", **window(59, 2)})
            old_5m = await client.get(path, params={"interval": "5m", **window(61, 2)})
            wide_1m = await client.get(path, params={"interval": "1m", **window(20, 9)})
            old_1h = await client.get(path, params={"interval": "1h", **window(731, 2)})
            old_1d = await client.get(path, params={"interval": "1d", **window(3000, 5)})

    assert ok_5m.status_code == 200 and ok_5m.json()["chart"]["result"][0]["timestamp"]
    assert old_5m.status_code == 422
    assert "within the last 60 days" in old_5m.json()["chart"]["error"]["description"]
    assert wide_1m.status_code == old_1h.status_code == 422
    assert old_1d.status_code == 200


async def test_rate_limit_enforcement_and_slow_answers_do_not_block_stop() -> None:
    server = YahooServer(now=NOW, rate_limit=(1, 30.0)).start()
    try:
        server.inject(Fault.slow(30.0), skip=1)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=0.2) as client:
            params = {"interval": "1d", "period1": "1732000000", "period2": "1732600000"}
            first = await client.get(f"/v8/finance/chart/{TICKER}", params=params)
            limited = await client.get(f"/v8/finance/chart/{TICKER}", params=params)
            server.rate_limit = None
            with pytest.raises(httpx.ReadTimeout):
                await client.get(f"/v8/finance/chart/{TICKER}", params=params)
    finally:
        started = time.monotonic()
        server.stop()
        stop_took = time.monotonic() - started

    assert first.status_code == 200
    assert limited.status_code == 429 and 29 <= int(limited.headers["retry-after"]) <= 30
    assert stop_took < 5.0  # the handler sleeping in the slow fault was woken up
    assert server.errors == []


def test_daily_stamps_of_the_yahoo_emulator() -> None:
    # A quick look at what the provider tests rely on: quirky stamps only after a DST change.
    from worker.emulator.yahoo import daily_stamp

    (before,) = synthetic.sessions(D(2024, 3, 8), D(2024, 3, 8))
    (after,) = synthetic.sessions(D(2024, 3, 11), D(2024, 3, 11))
    assert daily_stamp(before, dst_quirk=True) == utc(2024, 3, 8, 14, 30)
    assert daily_stamp(after, dst_quirk=True) == utc(2024, 3, 10, 22)
    assert daily_stamp(after, dst_quirk=False) == utc(2024, 3, 11, 13, 30)
