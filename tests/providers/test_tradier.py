"""TradierProvider against the emulated Tradier market data API."""

from __future__ import annotations

import datetime as dt
import email.utils
from collections import Counter

import httpx
import pytest

from tests.providers.helpers import (
    NO_PACE,
    NOW,
    TICKER,
    TRADIER_TOKEN,
    PaceRecorder,
    all_text,
    chunk,
    new_york,
    served,
    utc,
)
from worker.emulator import Fault, TradierServer
from worker.emulator.tradier import EmptyStyle
from worker.providers import (
    AuthError,
    Bar,
    FetchRequest,
    NotCovered,
    ProviderError,
    RateLimited,
    TradierProvider,
    TransientError,
)

D = dt.date


def _provider(
    client: httpx.AsyncClient, server: TradierServer, timeout: float | None = None
) -> TradierProvider:
    return TradierProvider(client, server.base_url, TRADIER_TOKEN, timeout=timeout)


def _served(timeframe: str, first: dt.date, last: dt.date | None = None) -> list[Bar]:
    # Tradier sends vwap on time & sales only, and never a trade count.
    intraday = timeframe.startswith("m")
    return served(timeframe, first, last, with_vwap=intraday, with_trade_count=False)


async def test_minute_bars_of_an_early_close_session(
    tradier_server: TradierServer, client: httpx.AsyncClient
) -> None:
    pace = PaceRecorder(tradier_server)
    result = await _provider(client, tradier_server).fetch(chunk("m1", D(2024, 11, 29)), pace)

    assert result.bars == _served("m1", D(2024, 11, 29))
    assert (result.provider, result.requests, result.rejected) == ("tradier", 1, [])
    assert pace.paced_every_request()
    assert new_york(result.bars[-1].ts) <= "2024-11-29 16:59"  # after-hours end 17:00
    (sent,) = tradier_server.requests
    assert sent.path == "/v1/markets/timesales"
    assert sent.query == {
        "symbol": [TICKER],
        "interval": ["1min"],
        "start": ["2024-11-29 04:00"],
        "end": ["2024-11-29 16:59"],
        "session_filter": ["all"],
    }
    assert sent.header("accept") == "application/json"
    assert sent.header("authorization") == f"Bearer {TRADIER_TOKEN}"


async def test_bars_are_timed_by_timestamp_not_by_wall_clock_time(
    tradier_server: TradierServer, client: httpx.AsyncClient
) -> None:
    result = await _provider(client, tradier_server).fetch(chunk("m15", D(2024, 11, 22)), NO_PACE)
    raw = await client.get(
        tradier_server.base_url + tradier_server.requests[0].target,
        headers={"Authorization": f"Bearer {TRADIER_TOKEN}", "Accept": "application/json"},
    )
    first = raw.json()["series"]["data"][0]

    assert first["time"] == "2024-11-22T04:00:00"  # New York wall-clock, no offset
    assert result.bars[0].ts == utc(2024, 11, 22, 9) == dt.datetime.fromtimestamp(first["timestamp"], dt.UTC)
    assert result.bars == _served("m15", D(2024, 11, 22))
    # A winter Friday: after-hours bars run past 00:00 UTC Saturday.
    assert result.bars[-1].ts == utc(2024, 11, 23, 0, 45)


async def test_m5_across_autumn_dst(client: httpx.AsyncClient) -> None:
    with TradierServer(TRADIER_TOKEN, now=dt.datetime(2024, 11, 10, tzinfo=dt.UTC)) as server:
        result = await _provider(client, server).fetch(chunk("m5", D(2024, 11, 1), D(2024, 11, 4)), NO_PACE)
        (sent,) = server.requests

    assert result.bars == _served("m5", D(2024, 11, 1), D(2024, 11, 4))
    assert (sent.param("start"), sent.param("end")) == ("2024-11-01 04:00", "2024-11-04 19:59")
    by_day = {new_york(bar.ts)[:10] for bar in result.bars}
    assert by_day == {"2024-11-01", "2024-11-04"}


async def test_single_day_arrives_as_an_object(
    tradier_server: TradierServer, client: httpx.AsyncClient
) -> None:
    result = await _provider(client, tradier_server).fetch(chunk("d1", D(2024, 11, 29)), NO_PACE)
    raw = await client.get(
        tradier_server.base_url + tradier_server.requests[0].target,
        headers={"Authorization": f"Bearer {TRADIER_TOKEN}", "Accept": "application/json"},
    )

    assert isinstance(raw.json()["history"]["day"], dict)
    assert result.bars == _served("d1", D(2024, 11, 29))
    assert [bar.ts for bar in result.bars] == [utc(2024, 11, 29, 5)]


async def test_single_timesale_arrives_as_an_object(
    tradier_server: TradierServer, client: httpx.AsyncClient
) -> None:
    whole = chunk("m15", D(2024, 11, 27))
    opening = utc(2024, 11, 27, 14, 30)
    request = FetchRequest(
        TICKER,
        "m15",
        opening,
        opening + dt.timedelta(minutes=15),
        whole.first_session,
        whole.last_session,
        whole.sessions,
    )
    result = await _provider(client, tradier_server).fetch(request, NO_PACE)
    raw = await client.get(
        tradier_server.base_url + tradier_server.requests[0].target,
        headers={"Authorization": f"Bearer {TRADIER_TOKEN}", "Accept": "application/json"},
    )

    assert isinstance(raw.json()["series"]["data"], dict)
    assert result.bars == [bar for bar in _served("m15", D(2024, 11, 27)) if bar.ts == opening]
    assert len(result.bars) == 1


@pytest.mark.parametrize("style", ["null", "string"])
@pytest.mark.parametrize("timeframe", ["m5", "d1"])
async def test_null_empties_are_no_bars(client: httpx.AsyncClient, style: EmptyStyle, timeframe: str) -> None:
    with TradierServer(TRADIER_TOKEN, now=NOW, empty_style=style) as server:
        server.inject(Fault.empty(), times=2)  # once for the provider, once for a look at the raw body
        result = await _provider(client, server).fetch(chunk(timeframe, D(2024, 11, 27)), NO_PACE)
        raw = await client.get(
            server.base_url + server.requests[0].target,
            headers={"Authorization": f"Bearer {TRADIER_TOKEN}", "Accept": "application/json"},
        )

    outer = "series" if timeframe == "m5" else "history"
    assert raw.json() == {outer: None if style == "null" else "null"}
    assert (result.bars, result.rejected, result.requests) == ([], [], 1)


async def test_intraday_older_than_lookback_is_silently_empty(
    tradier_server: TradierServer, client: httpx.AsyncClient
) -> None:
    # Tradier keeps ~10 days of 1-minute bars with session_filter=all: nothing comes back.
    result = await _provider(client, tradier_server).fetch(chunk("m1", D(2024, 11, 1)), NO_PACE)

    assert (result.bars, result.rejected) == ([], [])


async def test_weekly_dated_by_first_session_lands_on_monday(
    tradier_server: TradierServer, client: httpx.AsyncClient
) -> None:
    # Labor Day week: Tradier dates it Tuesday 2024-09-03; the grid wants Monday 00:00 New York.
    first, last = D(2024, 9, 3), D(2024, 9, 13)
    result = await _provider(client, tradier_server).fetch(chunk("w1", first, last), NO_PACE)
    sent = tradier_server.requests[0]
    raw = await client.get(
        tradier_server.base_url + sent.target,
        headers={"Authorization": f"Bearer {TRADIER_TOKEN}", "Accept": "application/json"},
    )

    assert (sent.param("interval"), sent.param("start"), sent.param("end")) == (
        "weekly",
        "2024-09-02",
        "2024-09-13",
    )
    assert [day["date"] for day in raw.json()["history"]["day"]] == ["2024-09-03", "2024-09-09"]
    assert result.bars == _served("w1", first, last)
    assert [bar.ts for bar in result.bars] == [utc(2024, 9, 2, 4), utc(2024, 9, 9, 4)]


async def test_invalid_bars_are_rejected(tradier_server: TradierServer, client: httpx.AsyncClient) -> None:
    tradier_server.inject(Fault.invalid_bars("high_below_low", "off_grid", "duplicate", "outside_range"))
    result = await _provider(client, tradier_server).fetch(chunk("m5", D(2024, 11, 27)), NO_PACE)

    assert Counter(row.reason for row in result.rejected) == Counter(
        ["high below low", "off grid", "duplicate timestamp", "outside chunk"]
    )
    assert len(result.bars) == len(_served("m5", D(2024, 11, 27))) - 2
    assert set(result.bars) <= set(_served("m5", D(2024, 11, 27)))


async def test_unsupported_timeframe_is_not_covered(
    tradier_server: TradierServer, client: httpx.AsyncClient
) -> None:
    provider = _provider(client, tradier_server)
    assert [tf for tf in ("m1", "m5", "m15", "m30", "h1", "h4", "d1", "w1") if provider.supports(tf)] == [
        "m1",
        "m5",
        "m15",
        "d1",
        "w1",
    ]
    with pytest.raises(NotCovered):
        await provider.fetch(chunk("h1", D(2024, 11, 27)), NO_PACE)
    assert tradier_server.requests == []


async def test_wrong_token_is_an_auth_error_without_the_token(
    tradier_server: TradierServer, client: httpx.AsyncClient
) -> None:
    wrong = "tt-wrong-Qw1Er2Ty3"
    provider = TradierProvider(client, tradier_server.base_url, wrong)

    with pytest.raises(AuthError, match="TRADIER_TOKEN") as caught:
        await provider.fetch(chunk("d1", D(2024, 11, 27)), NO_PACE)
    assert wrong not in all_text(caught.value)


async def test_rate_limited_with_http_date(tradier_server: TradierServer, client: httpx.AsyncClient) -> None:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=45)
    tradier_server.inject(Fault.rate_limited(email.utils.format_datetime(when, usegmt=True)))

    with pytest.raises(RateLimited) as caught:
        await _provider(client, tradier_server).fetch(chunk("d1", D(2024, 11, 27)), NO_PACE)
    assert caught.value.retry_after is not None
    assert 40 <= caught.value.retry_after <= 46


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault.server_error(502), "HTTP 502"),
        (Fault.slow(3.0), "timed out"),
        (Fault.truncated(), "connection failed"),
        (Fault.malformed_json(), "malformed JSON"),
        (Fault.provider_error(), "emulated failure"),
    ],
    ids=["502", "slow", "truncated", "malformed", "errors-in-200"],
)
async def test_broken_answers_are_transient(
    tradier_server: TradierServer, client: httpx.AsyncClient, fault: Fault, message: str
) -> None:
    tradier_server.inject(fault)

    with pytest.raises(TransientError, match=message) as caught:
        await _provider(client, tradier_server, timeout=0.2).fetch(chunk("m5", D(2024, 11, 27)), NO_PACE)
    assert TRADIER_TOKEN not in all_text(caught.value)


async def test_token_never_appears_in_errors_or_repr(
    tradier_server: TradierServer, client: httpx.AsyncClient
) -> None:
    provider = _provider(client, tradier_server)
    errors: list[ProviderError] = []
    for fault in (Fault.not_authorized(), Fault.rate_limited(None), Fault.server_error(500)):
        tradier_server.inject(fault)
        with pytest.raises(ProviderError) as caught:
            await provider.fetch(chunk("d1", D(2024, 11, 27)), NO_PACE)
        errors.append(caught.value)

    assert [type(error) for error in errors] == [AuthError, RateLimited, TransientError]
    assert isinstance(errors[1], RateLimited) and errors[1].retry_after is None
    for error in errors:
        assert TRADIER_TOKEN not in all_text(error)
    assert TRADIER_TOKEN not in repr(provider)


async def test_todays_timesales_stop_at_the_servers_now(client: httpx.AsyncClient) -> None:
    # 2024-11-22 12:07 New York: a session in progress; the 12:00 bar is still trading.
    now = dt.datetime(2024, 11, 22, 17, 7, tzinfo=dt.UTC)
    with TradierServer(TRADIER_TOKEN, now=now) as server:
        result = await _provider(client, server).fetch(chunk("m15", D(2024, 11, 22)), NO_PACE)

    assert result.bars == [bar for bar in _served("m15", D(2024, 11, 22)) if bar.ts <= now]
    assert new_york(result.bars[0].ts) == "2024-11-22 04:00"
    assert new_york(result.bars[-1].ts) == "2024-11-22 12:00"


async def test_an_unknown_symbol_is_answered_with_nothing(client: httpx.AsyncClient) -> None:
    with TradierServer(TRADIER_TOKEN, now=NOW) as server:
        server.unknown_symbols.add(TICKER)
        result = await _provider(client, server).fetch(chunk("m15", D(2024, 11, 22)), NO_PACE)

    assert (result.bars, result.rejected, result.requests) == ([], [], 1)
