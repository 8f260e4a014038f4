"""YahooProvider against the emulated Yahoo chart API."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import httpx
import pytest

from tests.providers.helpers import NO_PACE, NOW, TICKER, PaceRecorder, chunk, new_york, served, utc
from worker.emulator import Fault, YahooServer
from worker.providers import (
    AuthError,
    Bar,
    NotCovered,
    RateLimited,
    TransientError,
    YahooProvider,
)
from worker.providers.grid import is_on_grid, sessions_between
from worker.providers.yahoo import daily_session

D = dt.date


def _provider(client: httpx.AsyncClient, server: YahooServer, timeout: float | None = None) -> YahooProvider:
    return YahooProvider(client, server.base_url, None, timeout=timeout)


def _served(timeframe: str, first: dt.date, last: dt.date | None = None) -> list[Bar]:
    # Yahoo sends neither vwap nor trade counts.
    return served(timeframe, first, last, with_vwap=False, with_trade_count=False)


async def test_m5_bars_with_extended_hours_across_autumn_dst(
    yahoo_server: YahooServer, client: httpx.AsyncClient
) -> None:
    request = chunk("m5", D(2024, 11, 1), D(2024, 11, 4))
    pace = PaceRecorder(yahoo_server)
    result = await _provider(client, yahoo_server).fetch(request, pace)

    assert result.bars == _served("m5", D(2024, 11, 1), D(2024, 11, 4))
    assert (result.provider, result.requests, result.rejected) == ("yahoo", 1, [])
    assert pace.paced_every_request()
    firsts = {new_york(bar.ts)[:10]: bar.ts for bar in reversed(result.bars)}
    # Both sessions open at 04:00 New York: 08:00 UTC in EDT, 09:00 UTC in EST.
    assert {day: (new_york(ts)[11:13], ts.hour) for day, ts in firsts.items()} == {
        "2024-11-01": ("04", 8),
        "2024-11-04": ("04", 9),
    }
    (sent,) = yahoo_server.requests
    assert sent.path == f"/v8/finance/chart/{TICKER}"
    assert sent.query == {
        "interval": ["5m"],
        "period1": [str(int(request.start.timestamp()))],
        "period2": [str(int(request.end.timestamp()))],
        "includePrePost": ["true"],
    }
    user_agent = sent.header("user-agent") or ""
    assert user_agent and "python-httpx" not in user_agent


async def test_m30_early_close(yahoo_server: YahooServer, client: httpx.AsyncClient) -> None:
    result = await _provider(client, yahoo_server).fetch(chunk("m30", D(2024, 11, 29)), NO_PACE)

    assert result.bars == _served("m30", D(2024, 11, 29))
    assert new_york(result.bars[-1].ts) == "2024-11-29 16:30"


async def test_m15_friday_after_hours_past_midnight_utc(client: httpx.AsyncClient) -> None:
    with YahooServer(now=dt.datetime(2024, 4, 1, tzinfo=dt.UTC)) as server:
        result = await _provider(client, server).fetch(chunk("m15", D(2024, 3, 8)), NO_PACE)

    assert result.bars == _served("m15", D(2024, 3, 8))
    assert result.bars[-1].ts == utc(2024, 3, 9, 0, 45)  # 19:45 EST, Friday's session


@pytest.mark.parametrize(
    ("first", "last", "quirky_session", "quirky_stamp", "mapped"),
    [
        (D(2024, 3, 4), D(2024, 3, 15), D(2024, 3, 11), utc(2024, 3, 10, 22), utc(2024, 3, 11, 4)),
        (D(2024, 10, 28), D(2024, 11, 8), D(2024, 11, 4), utc(2024, 11, 3, 23), utc(2024, 11, 4, 5)),
    ],
    ids=["spring", "autumn"],
)
async def test_daily_stamps_around_dst_map_to_their_session(
    yahoo_server: YahooServer,
    client: httpx.AsyncClient,
    first: dt.date,
    last: dt.date,
    quirky_session: dt.date,
    quirky_stamp: dt.datetime,
    mapped: dt.datetime,
) -> None:
    result = await _provider(client, yahoo_server).fetch(chunk("d1", first, last), NO_PACE)
    raw = await client.get(yahoo_server.base_url + yahoo_server.requests[0].target)
    stamps = raw.json()["chart"]["result"][0]["timestamp"]

    assert result.bars == _served("d1", first, last)
    assert result.rejected == []
    assert len(stamps) == len(result.bars) == 10
    # Yahoo stamped the session with the previous day's evening (UTC), yet the
    # bar lands on 00:00 New York of the right session date.
    assert int(quirky_stamp.timestamp()) in stamps
    assert mapped in [bar.ts for bar in result.bars]
    assert new_york(mapped) == f"{quirky_session} 00:00"
    assert "adjclose" in raw.json()["chart"]["result"][0]["indicators"]


async def test_weekly_bars_land_on_monday(yahoo_server: YahooServer, client: httpx.AsyncClient) -> None:
    first, last = D(2024, 10, 30), D(2024, 11, 13)
    result = await _provider(client, yahoo_server).fetch(chunk("w1", first, last), NO_PACE)

    assert result.bars == _served("w1", first, last)
    assert [new_york(bar.ts) for bar in result.bars] == [
        "2024-10-28 00:00",
        "2024-11-04 00:00",
        "2024-11-11 00:00",
    ]
    sent_period1 = int(yahoo_server.requests[0].param("period1") or 0)
    assert sent_period1 == int(utc(2024, 10, 28, 4).timestamp())  # from that week's Monday


async def test_duplicate_timestamps_keep_the_first(client: httpx.AsyncClient) -> None:
    with YahooServer(now=NOW, duplicate_timestamps=True) as server:
        result = await _provider(client, server).fetch(chunk("m30", D(2024, 11, 1), D(2024, 11, 4)), NO_PACE)

    assert result.bars == _served("m30", D(2024, 11, 1), D(2024, 11, 4))
    assert [row.reason for row in result.rejected] == ["duplicate timestamp"] * 2
    for row in result.rejected:
        kept = next(b for b in result.bars if b.ts.timestamp() == row.raw["timestamp"])
        assert row.raw["volume"] == kept.volume + 1  # the later copy was the one refused


async def test_all_null_rows_are_skipped_not_rejected(client: httpx.AsyncClient) -> None:
    with YahooServer(now=NOW, null_rows=True) as server:
        result = await _provider(client, server).fetch(chunk("m5", D(2024, 11, 29)), NO_PACE)
        raw = await client.get(server.base_url + server.requests[0].target)

    closes = raw.json()["chart"]["result"][0]["indicators"]["quote"][0]["close"]
    assert closes.count(None) > 0
    assert result.bars == _served("m5", D(2024, 11, 29))
    assert len(result.bars) == len(closes) - closes.count(None)
    assert result.rejected == []


async def test_rows_with_some_nulls_are_rejected(
    yahoo_server: YahooServer, client: httpx.AsyncClient
) -> None:
    yahoo_server.inject(Fault.invalid_bars("null_field", "null_volume", "high_below_low"))
    result = await _provider(client, yahoo_server).fetch(chunk("m15", D(2024, 11, 27)), NO_PACE)

    expected = _served("m15", D(2024, 11, 27))
    assert Counter(row.reason for row in result.rejected) == Counter(
        ["null open", "null volume", "high below low"]
    )
    assert len(result.bars) == len(expected) - 3
    null_open = next(row for row in result.rejected if row.reason == "null open")
    assert null_open.raw["open"] is None and null_open.raw["close"] is not None


async def test_live_row_after_the_chunk_is_rejected_as_outside(client: httpx.AsyncClient) -> None:
    with YahooServer(now=NOW, live_row=True) as server:
        result = await _provider(client, server).fetch(chunk("d1", D(2024, 11, 25), D(2024, 11, 27)), NO_PACE)

    assert result.bars == _served("d1", D(2024, 11, 25), D(2024, 11, 27))
    (live,) = result.rejected
    assert live.reason == "outside chunk"
    assert live.raw["timestamp"] == int(utc(2024, 11, 29, 14, 30).timestamp())  # next session


async def test_hourly_bars_are_off_the_grid_so_h1_is_not_served(
    yahoo_server: YahooServer, client: httpx.AsyncClient
) -> None:
    provider = _provider(client, yahoo_server)
    assert not provider.supports("h1") and not provider.supports("h4")
    assert not provider.supports("m1")
    with pytest.raises(NotCovered):
        await provider.fetch(chunk("h1", D(2024, 11, 27)), NO_PACE)
    assert yahoo_server.requests == []

    # What Yahoo would have sent: regular-session hours start at 09:30, not 09:00/10:00.
    request = chunk("h1", D(2024, 11, 27))
    raw = await client.get(
        f"{yahoo_server.base_url}/v8/finance/chart/{TICKER}",
        params={
            "interval": "1h",
            "period1": str(int(request.start.timestamp())),
            "period2": str(int(request.end.timestamp())),
            "includePrePost": "false",
        },
    )
    stamps = [dt.datetime.fromtimestamp(s, dt.UTC) for s in raw.json()["chart"]["result"][0]["timestamp"]]
    assert [new_york(ts)[11:] for ts in stamps] == [
        "09:30",
        "10:30",
        "11:30",
        "12:30",
        "13:30",
        "14:30",
        "15:30",
    ]
    assert not any(is_on_grid(ts, "h1") for ts in stamps)


async def test_intraday_beyond_lookback_is_not_covered(
    yahoo_server: YahooServer, client: httpx.AsyncClient
) -> None:
    with pytest.raises(NotCovered, match="60 days"):
        await _provider(client, yahoo_server).fetch(chunk("m5", D(2024, 3, 8)), NO_PACE)


async def test_unknown_ticker_is_not_covered(yahoo_server: YahooServer, client: httpx.AsyncClient) -> None:
    yahoo_server.inject(Fault.unknown_ticker())

    with pytest.raises(NotCovered, match="Not Found"):
        await _provider(client, yahoo_server).fetch(chunk("d1", D(2024, 11, 27)), NO_PACE)


async def test_empty_range_is_no_bars(yahoo_server: YahooServer, client: httpx.AsyncClient) -> None:
    yahoo_server.inject(Fault.empty())
    result = await _provider(client, yahoo_server).fetch(chunk("d1", D(2024, 11, 27)), NO_PACE)

    assert (result.bars, result.rejected, result.requests) == ([], [], 1)


async def test_rate_limited(yahoo_server: YahooServer, client: httpx.AsyncClient) -> None:
    yahoo_server.inject(Fault.rate_limited("12"))

    with pytest.raises(RateLimited) as caught:
        await _provider(client, yahoo_server).fetch(chunk("d1", D(2024, 11, 27)), NO_PACE)
    assert caught.value.retry_after == 12.0


async def test_refused_crumb_is_an_auth_error(yahoo_server: YahooServer, client: httpx.AsyncClient) -> None:
    yahoo_server.inject(Fault.not_authorized())

    with pytest.raises(AuthError, match="yahoo refused the request"):
        await _provider(client, yahoo_server).fetch(chunk("d1", D(2024, 11, 27)), NO_PACE)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault.server_error(503), "HTTP 503"),
        (Fault.null_results(), "chart.result is empty"),
        (Fault.provider_error(), "Internal Server Error"),
        (Fault.malformed_json(), "malformed JSON"),
        (Fault.truncated(), "connection failed"),
        (Fault.slow(3.0), "timed out"),
    ],
    ids=["503", "null-result", "chart-error", "malformed", "truncated", "slow"],
)
async def test_broken_answers_are_transient(
    yahoo_server: YahooServer, client: httpx.AsyncClient, fault: Fault, message: str
) -> None:
    yahoo_server.inject(fault)

    with pytest.raises(TransientError, match=message):
        await _provider(client, yahoo_server, timeout=0.2).fetch(chunk("d1", D(2024, 11, 27)), NO_PACE)


@pytest.mark.parametrize(
    ("stamp", "session"),
    [
        (utc(2024, 3, 11, 13, 30), D(2024, 3, 11)),  # the 09:30 EDT open
        (utc(2024, 3, 11, 4), D(2024, 3, 11)),  # 00:00 EDT
        (utc(2024, 3, 10, 22), D(2024, 3, 11)),  # Sunday evening UTC before a DST Monday
        (utc(2024, 11, 4, 23), D(2024, 11, 5)),  # after Monday's close: Tuesday's stamp
        (utc(2024, 11, 29, 19), None),  # after an early close: Monday is 2.5 days away
        (utc(2024, 3, 9, 17), None),  # Saturday noon New York: no session near
    ],
)
def test_daily_session_rule(stamp: dt.datetime, session: dt.date | None) -> None:
    found = daily_session(stamp, sessions_between(D(2024, 1, 1), D(2024, 12, 31)))

    assert (found.session_date if found else None) == session
