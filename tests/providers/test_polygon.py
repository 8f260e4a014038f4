"""PolygonProvider against the emulated Polygon aggregates API."""

from __future__ import annotations

import datetime as dt
import email.utils
import re
import time
from collections import Counter

import httpx
import pytest

from tests.providers.helpers import (
    NO_PACE,
    NOW,
    POLYGON_KEY,
    TICKER,
    PaceRecorder,
    all_text,
    chunk,
    new_york,
    served,
    utc,
)
from worker.emulator import EmulatorServer, Fault, PolygonServer, RecordedRequest, Reply, synthetic
from worker.providers import (
    AuthError,
    NotCovered,
    PolygonProvider,
    ProviderError,
    RateLimited,
    TransientError,
    Unreachable,
)

D = dt.date


def _ms(ts: dt.datetime) -> int:
    return int(ts.timestamp() * 1000)


def _provider(
    client: httpx.AsyncClient, server: EmulatorServer, timeout: float | None = None
) -> PolygonProvider:
    return PolygonProvider(client, server.base_url, POLYGON_KEY, timeout=timeout)


async def test_minute_bars_cover_extended_hours_past_midnight_utc(
    polygon_server: PolygonServer, client: httpx.AsyncClient
) -> None:
    # 2024-03-08 is a winter Friday: after-hours 19:00-20:00 New York is Saturday 00:00-01:00 UTC.
    pace = PaceRecorder(polygon_server)
    result = await _provider(client, polygon_server).fetch(chunk("m1", D(2024, 3, 8)), pace)

    assert result.bars == served("m1", D(2024, 3, 8))
    assert result.rejected == []
    assert (result.provider, result.requests, pace.calls) == ("polygon", 1, 1)
    assert utc(2024, 3, 8, 9) <= result.bars[0].ts < utc(2024, 3, 8, 9, 30)  # 04:00 New York
    saturday_utc = [bar for bar in result.bars if bar.ts >= utc(2024, 3, 9)]
    assert saturday_utc, "after-hours bars after 00:00 UTC belong to Friday's session"
    assert max(bar.ts for bar in saturday_utc) < utc(2024, 3, 9, 1)

    (request,) = polygon_server.requests
    start, end = utc(2024, 3, 8, 9), utc(2024, 3, 9, 1)
    assert request.path == f"/v2/aggs/ticker/{TICKER}/range/1/minute/{_ms(start)}/{_ms(end) - 1}"
    assert request.query == {"adjusted": ["false"], "sort": ["asc"], "limit": ["50000"]}
    assert request.header("authorization") == f"Bearer {POLYGON_KEY}"


@pytest.mark.parametrize(("timeframe", "limit"), [("m1", 2_000), ("m15", 700), ("h1", 1_000), ("h4", 500)])
async def test_pagination_follows_next_url_within_base_minute_limit(
    client: httpx.AsyncClient, timeframe: str, limit: int
) -> None:
    first, last = D(2024, 3, 4), D(2024, 3, 8)
    with PolygonServer(POLYGON_KEY, max_limit=limit) as server:
        pace = PaceRecorder(server)
        result = await _provider(client, server).fetch(chunk(timeframe, first, last), pace)
        requests = server.requests

    # Equal to the synthetic bars: no bar lost or repeated at page boundaries, and
    # every multi-minute bar complete (the server never splits one across pages).
    assert result.bars == served(timeframe, first, last)
    minutes = sum(bar.minutes for bar in synthetic.bars(TICKER, timeframe, first, last))
    assert len(requests) >= minutes / limit
    assert result.requests == len(requests) == pace.calls
    assert pace.paced_every_request()
    assert pace.answers == [200] * len(requests)
    for request in requests:
        assert request.header("authorization") == f"Bearer {POLYGON_KEY}"
        assert "apiKey" not in request.query
    # Follow-up pages use next_url as given: its cursor, no parameters of our own.
    assert all(set(request.query) == {"cursor"} for request in requests[1:])


async def test_next_url_on_another_host_is_fetched_from_the_configured_base_url(
    client: httpx.AsyncClient,
) -> None:
    with PolygonServer(POLYGON_KEY, max_limit=1_000, public_base_url="https://api.polygon.io") as s:
        result = await _provider(client, s).fetch(chunk("h1", D(2024, 3, 4), D(2024, 3, 5)), NO_PACE)
        assert len(s.requests) == result.requests > 1  # every page reached the emulator

    assert result.bars == served("h1", D(2024, 3, 4), D(2024, 3, 5))


async def test_early_close_session_ends_at_17_new_york(
    polygon_server: PolygonServer, client: httpx.AsyncClient
) -> None:
    result = await _provider(client, polygon_server).fetch(chunk("m30", D(2024, 11, 29)), NO_PACE)

    assert result.bars == served("m30", D(2024, 11, 29))
    assert new_york(result.bars[0].ts) == "2024-11-29 04:00"
    assert new_york(result.bars[-1].ts) == "2024-11-29 16:30"  # after-hours end 17:00 on early close
    assert result.bars[-1].ts == utc(2024, 11, 29, 21, 30)


@pytest.mark.parametrize(
    ("first", "last", "first_bars_utc"),
    [
        # Friday in EST, Monday in EDT: the same 04:00 New York moves from 09:00 to 08:00 UTC.
        (D(2024, 3, 8), D(2024, 3, 11), [utc(2024, 3, 8, 9), utc(2024, 3, 11, 8)]),
        # Friday in EDT, Monday in EST.
        (D(2024, 11, 1), D(2024, 11, 4), [utc(2024, 11, 1, 8), utc(2024, 11, 4, 9)]),
    ],
)
async def test_h4_bars_stay_on_new_york_clock_across_dst(
    polygon_server: PolygonServer,
    client: httpx.AsyncClient,
    first: dt.date,
    last: dt.date,
    first_bars_utc: list[dt.datetime],
) -> None:
    result = await _provider(client, polygon_server).fetch(chunk("h4", first, last), NO_PACE)

    assert result.bars == served("h4", first, last)
    assert {new_york(bar.ts)[11:] for bar in result.bars} == {"04:00", "08:00", "12:00", "16:00"}
    by_day: dict[str, list[dt.datetime]] = {}
    for bar in result.bars:
        by_day.setdefault(new_york(bar.ts)[:10], []).append(bar.ts)
    assert [stamps[0] for stamps in by_day.values()] == first_bars_utc


async def test_m15_bars_across_autumn_dst(polygon_server: PolygonServer, client: httpx.AsyncClient) -> None:
    result = await _provider(client, polygon_server).fetch(
        chunk("m15", D(2024, 11, 1), D(2024, 11, 4)), NO_PACE
    )

    assert result.bars == served("m15", D(2024, 11, 1), D(2024, 11, 4))
    assert all(new_york(bar.ts)[14:] in ("00", "15", "30", "45") for bar in result.bars)


async def test_daily_bars_start_at_new_york_midnight_and_are_requested_by_date(
    polygon_server: PolygonServer, client: httpx.AsyncClient
) -> None:
    result = await _provider(client, polygon_server).fetch(
        chunk("d1", D(2024, 3, 4), D(2024, 3, 15)), NO_PACE
    )

    assert result.bars == served("d1", D(2024, 3, 4), D(2024, 3, 15))
    assert len(result.bars) == 10
    assert result.bars[4].ts == utc(2024, 3, 8, 5)  # 00:00 EST
    assert result.bars[5].ts == utc(2024, 3, 11, 4)  # 00:00 EDT
    (request,) = polygon_server.requests
    assert request.path.endswith("/range/1/day/2024-03-04/2024-03-15")


async def test_weekly_bars_move_from_sunday_to_monday(
    polygon_server: PolygonServer, client: httpx.AsyncClient
) -> None:
    first, last = D(2024, 3, 6), D(2024, 3, 13)
    result = await _provider(client, polygon_server).fetch(chunk("w1", first, last), NO_PACE)

    assert result.bars == served("w1", first, last)
    assert [bar.ts for bar in result.bars] == [utc(2024, 3, 4, 5), utc(2024, 3, 11, 4)]
    (request,) = polygon_server.requests
    assert request.path.endswith("/range/1/week/2024-03-03/2024-03-13")  # from the Sunday

    raw = await client.get(
        polygon_server.base_url + request.target,
        headers={"Authorization": f"Bearer {POLYGON_KEY}"},
    )
    stamps = [row["t"] for row in raw.json()["results"]]
    # What Polygon sent: Sunday 00:00 New York (2024-03-10 is still EST at midnight).
    assert stamps == [_ms(utc(2024, 3, 3, 5)), _ms(utc(2024, 3, 10, 5))]


async def test_volume_in_exponent_form_is_read_exactly(
    polygon_server: PolygonServer, client: httpx.AsyncClient
) -> None:
    result = await _provider(client, polygon_server).fetch(chunk("h4", D(2024, 5, 1)), NO_PACE)
    raw = await client.get(
        polygon_server.base_url + polygon_server.requests[0].target,
        headers={"Authorization": f"Bearer {POLYGON_KEY}"},
    )

    assert re.search(r'"v": \d\.\d+e\+0[67]', raw.text)
    assert result.bars == served("h4", D(2024, 5, 1))
    assert max(bar.volume for bar in result.bars) >= 1e6


async def test_empty_answer_without_results_is_no_bars(
    polygon_server: PolygonServer, client: httpx.AsyncClient
) -> None:
    polygon_server.inject(Fault.empty())
    result = await _provider(client, polygon_server).fetch(chunk("h1", D(2024, 5, 1)), NO_PACE)

    assert (result.bars, result.rejected, result.requests) == ([], [], 1)


async def test_invalid_bars_are_rejected_with_reasons(
    polygon_server: PolygonServer, client: httpx.AsyncClient
) -> None:
    polygon_server.inject(
        Fault.invalid_bars("high_below_low", "off_grid", "duplicate", "outside_range", "null_field")
    )
    result = await _provider(client, polygon_server).fetch(chunk("m5", D(2024, 5, 1)), NO_PACE)

    expected = served("m5", D(2024, 5, 1))
    assert Counter(row.reason for row in result.rejected) == Counter(
        ["high below low", "off grid", "duplicate timestamp", "outside chunk", "null open"]
    )
    # Three good bars were spoiled in place; the duplicate and the extra bar were additions.
    assert len(result.bars) == len(expected) - 3
    assert set(result.bars) <= set(expected)
    duplicate = next(row for row in result.rejected if row.reason == "duplicate timestamp")
    kept = next(bar for bar in result.bars if _ms(bar.ts) == duplicate.raw["t"])
    assert kept == expected[0]  # the first of two rows with one timestamp wins


async def test_rate_limited_carries_retry_after_seconds(
    polygon_server: PolygonServer, client: httpx.AsyncClient
) -> None:
    polygon_server.inject(Fault.rate_limited("7"))

    with pytest.raises(RateLimited) as caught:
        await _provider(client, polygon_server).fetch(chunk("h1", D(2024, 5, 1)), NO_PACE)
    assert caught.value.retry_after == 7.0


async def test_rate_limited_with_http_date(polygon_server: PolygonServer, client: httpx.AsyncClient) -> None:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    polygon_server.inject(Fault.rate_limited(email.utils.format_datetime(when, usegmt=True)))

    with pytest.raises(RateLimited) as caught:
        await _provider(client, polygon_server).fetch(chunk("h1", D(2024, 5, 1)), NO_PACE)
    assert caught.value.retry_after is not None
    assert 25 <= caught.value.retry_after <= 31


async def test_emulated_rate_limit_answers_429(client: httpx.AsyncClient) -> None:
    with PolygonServer(POLYGON_KEY, rate_limit=(2, 60.0)) as server:
        provider = _provider(client, server)
        for _ in range(2):
            await provider.fetch(chunk("d1", D(2024, 5, 1)), NO_PACE)
        with pytest.raises(RateLimited) as caught:
            await provider.fetch(chunk("d1", D(2024, 5, 1)), NO_PACE)

    assert caught.value.retry_after is not None
    assert 55 <= caught.value.retry_after <= 60


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_transient(
    polygon_server: PolygonServer, client: httpx.AsyncClient, status: int
) -> None:
    polygon_server.inject(Fault.server_error(status))

    with pytest.raises(TransientError, match=f"HTTP {status}"):
        await _provider(client, polygon_server).fetch(chunk("h1", D(2024, 5, 1)), NO_PACE)


async def test_failure_on_a_later_page_is_transient_after_pacing_both(
    client: httpx.AsyncClient,
) -> None:
    with PolygonServer(POLYGON_KEY, max_limit=1_000) as server:
        server.inject(Fault.server_error(503), skip=1)
        pace = PaceRecorder(server)
        with pytest.raises(TransientError):
            await _provider(client, server).fetch(chunk("h1", D(2024, 5, 1), D(2024, 5, 3)), pace)
        assert len(server.requests) == pace.calls == 2


async def test_slow_answer_times_out_as_transient(
    polygon_server: PolygonServer, client: httpx.AsyncClient
) -> None:
    polygon_server.inject(Fault.slow(3.0))
    started = time.monotonic()

    with pytest.raises(TransientError, match="timed out"):
        await _provider(client, polygon_server, timeout=0.2).fetch(chunk("h1", D(2024, 5, 1)), NO_PACE)
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault.truncated(), "connection failed"),
        (Fault.reset(), "connection failed"),
        (Fault.malformed_json(), "malformed JSON"),
        (Fault.null_results(), "results missing"),
        (Fault.provider_error(), "Internal error"),
    ],
    ids=["truncated", "reset", "malformed", "null-results", "status-error"],
)
async def test_broken_answers_are_transient(
    polygon_server: PolygonServer, client: httpx.AsyncClient, fault: Fault, message: str
) -> None:
    polygon_server.inject(fault)

    with pytest.raises(TransientError, match=message):
        await _provider(client, polygon_server).fetch(chunk("h1", D(2024, 5, 1)), NO_PACE)


async def test_not_authorized_plan_is_not_covered(
    polygon_server: PolygonServer, client: httpx.AsyncClient
) -> None:
    polygon_server.inject(Fault.not_authorized())

    with pytest.raises(NotCovered, match="plan"):
        await _provider(client, polygon_server).fetch(chunk("h1", D(2024, 5, 1)), NO_PACE)


async def test_range_older_than_the_plan_is_not_covered(client: httpx.AsyncClient) -> None:
    with PolygonServer(POLYGON_KEY, now=NOW, history_days=730) as server:
        provider = _provider(client, server)
        await provider.fetch(chunk("d1", D(2023, 1, 3)), NO_PACE)  # inside two years
        with pytest.raises(NotCovered):
            await provider.fetch(chunk("d1", D(2022, 11, 1)), NO_PACE)


async def test_unknown_ticker_is_not_covered(
    polygon_server: PolygonServer, client: httpx.AsyncClient
) -> None:
    polygon_server.inject(Fault.unknown_ticker())

    with pytest.raises(NotCovered):
        await _provider(client, polygon_server).fetch(chunk("h1", D(2024, 5, 1)), NO_PACE)


async def test_wrong_key_is_an_auth_error_naming_the_variable_not_the_value(
    polygon_server: PolygonServer, client: httpx.AsyncClient
) -> None:
    wrong = "pk-wrong-Yt6uI8oP0aS2"
    provider = PolygonProvider(client, polygon_server.base_url, wrong)

    with pytest.raises(AuthError, match="POLYGON_API_KEY") as caught:
        await provider.fetch(chunk("h1", D(2024, 5, 1)), NO_PACE)
    assert wrong not in all_text(caught.value)
    assert polygon_server.requests[0].header("authorization") == f"Bearer {wrong}"


async def test_missing_key_fails_before_any_request(
    polygon_server: PolygonServer, client: httpx.AsyncClient
) -> None:
    pace = PaceRecorder(polygon_server)

    with pytest.raises(AuthError, match="POLYGON_API_KEY is not set"):
        await PolygonProvider(client, polygon_server.base_url, None).fetch(chunk("h1", D(2024, 5, 1)), pace)
    assert (pace.calls, polygon_server.requests) == (0, [])


class _EchoingProxy(EmulatorServer):
    """A badly behaved proxy that repeats the request's Authorization header in its error."""

    def route(self, request: RecordedRequest, fault: Fault | None) -> Reply:
        echo = f"upstream refused {request.target} with {request.header('authorization')}"
        return Reply.json({"status": "ERROR", "error": echo}, 502)


async def test_key_never_appears_in_any_error(
    polygon_server: PolygonServer, client: httpx.AsyncClient
) -> None:
    faults = [
        Fault.rate_limited("3"),
        Fault.server_error(500),
        Fault.slow(2.0),
        Fault.truncated(),
        Fault.malformed_json(),
        Fault.null_results(),
        Fault.provider_error(),
        Fault.not_authorized(),
        Fault.unknown_ticker(),
    ]
    provider = _provider(client, polygon_server, timeout=0.2)
    errors: list[ProviderError] = []
    for fault in faults:
        polygon_server.inject(fault)
        with pytest.raises(ProviderError) as caught:
            await provider.fetch(chunk("h1", D(2024, 5, 1)), NO_PACE)
        errors.append(caught.value)
    polygon_server.api_key = "rotated-elsewhere"  # our key is now refused
    with pytest.raises(AuthError) as caught:
        await provider.fetch(chunk("h1", D(2024, 5, 1)), NO_PACE)
    errors.append(caught.value)
    with _EchoingProxy() as proxy:
        with pytest.raises(TransientError) as caught:
            await _provider(client, proxy).fetch(chunk("h1", D(2024, 5, 1)), NO_PACE)
        errors.append(caught.value)

    assert {type(error) for error in errors} == {
        RateLimited,
        TransientError,
        Unreachable,  # the slow answer: no status line within the read timeout
        NotCovered,
        AuthError,
    }
    assert "***" in str(errors[-1])  # the echoed key was scrubbed, the rest kept
    for error in errors:
        assert POLYGON_KEY not in all_text(error)
    assert POLYGON_KEY not in repr(provider)
    assert all(POLYGON_KEY not in request.target for request in polygon_server.requests)
