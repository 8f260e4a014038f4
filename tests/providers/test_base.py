"""The shared provider parts: error classification, the grid, the sieve, the factory."""

from __future__ import annotations

import datetime as dt
import random

import httpx
import pytest

from tests.providers.helpers import chunk, utc
from worker.providers import (
    AuthError,
    FetchRequest,
    Misconfigured,
    NotCovered,
    PolygonProvider,
    ProviderError,
    RateLimited,
    TradierProvider,
    TransientError,
    Unreachable,
    YahooProvider,
    build_providers,
    misconfigured_providers,
)
from worker.providers.classify import (
    Abandoned,
    AbandonReason,
    ErrorReply,
    classify_failure,
    parse_retry_after,
)
from worker.providers.grid import day_start, is_on_grid, trading_week_monday
from worker.providers.sieve import BarSieve

D = dt.date
_POLYGON_ERROR = {"status": "ERROR", "request_id": "x", "error": "boom"}


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (429, _POLYGON_ERROR, RateLimited),
        (401, {"status": "ERROR", "error": "Unknown API Key"}, AuthError),
        (403, {"status": "NOT_AUTHORIZED", "message": "Your plan doesn't include"}, NotCovered),
        (403, "Forbidden", AuthError),
        (404, {"status": "NOT_FOUND", "message": "Ticker not found"}, NotCovered),
        (
            404,
            {"chart": {"result": None, "error": {"code": "Not Found", "description": "No data"}}},
            NotCovered,
        ),
        (
            422,
            {"chart": {"error": {"code": "Unprocessable Entity", "description": "5m data not available"}}},
            NotCovered,
        ),
        (400, _POLYGON_ERROR, ProviderError),
        (408, "", TransientError),
        (500, _POLYGON_ERROR, TransientError),
        (503, "Service Unavailable", TransientError),
        (200, _POLYGON_ERROR, TransientError),
        (200, {"chart": {"result": None, "error": {"code": "x", "description": "y"}}}, TransientError),
        (200, {"status": "NOT_FOUND"}, NotCovered),
    ],
)
def test_classify_status_and_body(status: int, body: object, expected: type[ProviderError]) -> None:
    error = classify_failure("p", ErrorReply(status, body), credential_name="P_KEY")

    assert type(error) is expected
    assert str(error).startswith("p")


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (httpx.ReadTimeout("timed out"), Unreachable),
        (httpx.ConnectTimeout("timed out"), Unreachable),
        (httpx.ConnectError("refused"), Unreachable),
        (httpx.RemoteProtocolError("peer closed connection"), Unreachable),
        (httpx.ReadError("reset by peer"), Unreachable),
        (httpx.ProxyError("proxy down"), Unreachable),
        (httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'htp://'."), Misconfigured),
        (httpx.InvalidURL("Invalid port: 'x'"), Misconfigured),
        (httpx.TooManyRedirects("loop"), ProviderError),
        (ValueError("Expecting value"), TransientError),
    ],
)
def test_classify_failures_without_an_answer(
    failure: httpx.HTTPError | httpx.InvalidURL | ValueError, expected: type
) -> None:
    """No status line at all: the provider was not reached (or the URL cannot be used)."""
    assert type(classify_failure("p", failure)) is expected


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (httpx.ReadTimeout("timed out"), TransientError),
        (httpx.RemoteProtocolError("peer closed connection without sending complete body"), TransientError),
        (httpx.ReadError("reset by peer"), TransientError),
        (httpx.DecodingError("bad gzip"), TransientError),
    ],
)
def test_classify_failures_after_the_status_line(failure: httpx.HTTPError, expected: type) -> None:
    """The provider answered and the body broke off: an attempt is spent, not the breaker."""
    assert type(classify_failure("p", failure, answered=True)) is expected


@pytest.mark.parametrize(
    ("reason", "expected", "kind"),
    [
        ("too_large", ProviderError, "permanent"),
        ("too_many_pages", ProviderError, "permanent"),
        ("too_slow", TransientError, "transient"),
        ("undecodable", TransientError, "transient"),
        ("no_answer", Unreachable, "unreachable"),
    ],
)
def test_classify_exchanges_cut_short(reason: AbandonReason, expected: type, kind: str) -> None:
    error = classify_failure("p", Abandoned(reason, "figures"), secret="s3cr3t")
    assert (type(error), error.kind, str(error)) == (expected, kind, "p: figures")


def test_a_url_that_cannot_be_used_names_the_setting_not_the_value() -> None:
    error = classify_failure(
        "polygon",
        httpx.InvalidURL("Invalid URL 'htp://user:pw@x'"),
        base_url_name="POLYGON_BASE_URL",
    )
    assert error.kind == "refused"
    assert "POLYGON_BASE_URL" in str(error)
    assert "pw" not in str(error) and "user" not in str(error)


def test_auth_error_names_the_credential_and_scrubs_its_value() -> None:
    reply = ErrorReply(401, {"status": "ERROR", "error": "key s3cr3t-value is unknown"})
    error = classify_failure("polygon", reply, credential_name="POLYGON_API_KEY", secret="s3cr3t-value")

    assert isinstance(error, AuthError)
    assert "POLYGON_API_KEY" in str(error)
    assert "s3cr3t-value" not in str(error) + repr(error)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("-3", None),
        ("soon", None),
        (None, None),
        ("Mon, 02 Dec 2024 15:00:30 GMT", 30.0),
        ("Mon, 02 Dec 2024 14:59:00 GMT", 0.0),  # already past
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=utc(2024, 12, 2, 15)) == seconds


def test_rate_limited_from_a_reply_keeps_retry_after() -> None:
    error = classify_failure("p", ErrorReply(429, "Too Many Requests", retry_after="42"))

    assert isinstance(error, RateLimited) and error.retry_after == 42.0


@pytest.mark.parametrize(
    ("ts", "timeframe", "on_grid"),
    [
        (utc(2024, 3, 8, 9), "h4", True),  # 04:00 EST
        (utc(2024, 3, 11, 8), "h4", True),  # 04:00 EDT
        (utc(2024, 3, 11, 9), "h4", False),  # 05:00 EDT
        (utc(2024, 3, 11, 13, 30), "h1", False),  # 09:30 EDT: Yahoo's hour
        (utc(2024, 3, 11, 13, 30), "m30", True),
        (utc(2024, 3, 11, 13, 35), "m5", True),
        (utc(2024, 3, 11, 13, 35), "m15", False),
        (utc(2024, 3, 11, 13, 35) + dt.timedelta(seconds=30), "m1", False),
        (utc(2024, 3, 11, 4), "d1", True),
        (utc(2024, 3, 11, 5), "d1", False),  # 00:00 UTC-5, but New York is on EDT
        (utc(2024, 3, 11, 4), "w1", True),
        (utc(2024, 3, 12, 4), "w1", False),  # a Tuesday
    ],
)
def test_grid(ts: dt.datetime, timeframe: str, on_grid: bool) -> None:
    assert is_on_grid(ts, timeframe) is on_grid


def test_week_monday_takes_weekends_forward() -> None:
    assert trading_week_monday(D(2024, 3, 10)) == D(2024, 3, 11)  # Sunday -> next Monday
    assert trading_week_monday(D(2024, 3, 9)) == D(2024, 3, 11)  # Saturday -> next Monday
    assert trading_week_monday(D(2024, 3, 15)) == D(2024, 3, 11)  # Friday -> its Monday
    assert day_start(D(2024, 3, 11)) == utc(2024, 3, 11, 4)


def test_request_for_sessions_spans_extended_hours() -> None:
    request = chunk("m1", D(2024, 11, 27), D(2024, 11, 29))

    assert (request.start, request.end) == (utc(2024, 11, 27, 9), utc(2024, 11, 29, 22))
    with pytest.raises(ValueError, match="no XNYS session"):
        FetchRequest.for_sessions("X", "d1", D(2024, 12, 25), D(2024, 12, 25))


def test_sieve_rejects_bad_values_and_foreign_dates() -> None:
    sieve = BarSieve(chunk("d1", D(2024, 11, 27), D(2024, 11, 29)))
    good: dict[str, object] = {"open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 100}
    cases: list[tuple[dt.datetime, dict[str, object], str | None]] = [
        (day_start(D(2024, 11, 27)), {**good, "volume": True}, "wrong type for volume"),
        (day_start(D(2024, 11, 27)), {**good, "close": "10.5"}, "wrong type for close"),
        (day_start(D(2024, 11, 27)), {**good, "open": float("nan")}, "non-finite open"),
        (day_start(D(2024, 11, 27)), {**good, "low": 0.0}, "non-positive price"),
        (day_start(D(2024, 11, 27)), {**good, "open": 11.5}, "open or close outside high..low"),
        (day_start(D(2024, 11, 27)), {**good, "volume": -1}, "negative volume"),
        (day_start(D(2024, 11, 27)), {**good, "volume": 10**30}, "volume out of range"),
        (day_start(D(2024, 11, 27)), {**good, "volume": 2**53 + 2}, "volume out of range"),
        (day_start(D(2024, 11, 27)), {**good, "volume": 100.5}, "fractional volume"),
        (day_start(D(2024, 11, 27)), {**good, "trade_count": 2**63}, "trade_count out of range"),
        (day_start(D(2024, 11, 28)), good, "not a session"),  # Thanksgiving
        (day_start(D(2024, 12, 2)), good, "outside chunk"),
        (day_start(D(2024, 11, 27)) + dt.timedelta(hours=1), good, "off grid"),
        (day_start(D(2024, 11, 27)), good, None),
        (day_start(D(2024, 11, 27)), good, "duplicate timestamp"),
    ]
    for ts, row, _ in cases:
        sieve.offer(row, ts, **row)

    expected = [reason for _, _, reason in cases if reason]
    assert [row.reason for row in sieve.rejected] == expected
    assert len(sieve.bars) == 1


async def test_the_page_path_bounds_volumes_and_counts_like_the_row_path() -> None:
    """A value that cannot be stored exactly (bigint through float8) is quarantined, never
    stored rounded nor left to fail the whole chunk in COPY or the merge."""
    request = chunk("m1", D(2024, 12, 2), D(2024, 12, 2))
    base: dict[str, object] = {"o": 10.0, "h": 11.0, "l": 9.0, "c": 10.5, "v": 5, "vw": 10.1, "n": 2}
    odd: list[dict[str, object]] = [{"v": 10**30}, {"v": 100.5}, {"n": 2**63}, {"v": 1.029145e06}, {}]
    rows = []
    for minute, change in enumerate(odd):
        stamp = (utc(2024, 12, 2, 15, minute) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(
            milliseconds=1
        )
        rows.append({**base, "t": stamp, **change})
    async with httpx.AsyncClient() as client:
        polygon = PolygonProvider(client, "http://127.0.0.1:9", "key")
        page, one_by_one = BarSieve(request), BarSieve(request)
        polygon._read_page({"status": "OK", "results": rows}, page)
        for row in rows:
            polygon._offer(row, one_by_one)
    for sieve in (page, one_by_one):
        assert [r.reason for r in sieve.rejected] == [
            "volume out of range",
            "fractional volume",
            "trade_count out of range",
        ]
        assert [bar.volume for bar in sieve.bars] == [1029145.0, 5.0]


@pytest.mark.parametrize("timeframe", ["m1", "m15", "h1", "h4"])
def test_sieve_keeps_intraday_bars_inside_session_hours(timeframe: str) -> None:
    # Wednesday 27 to Friday 29 November 2024: Thanksgiving between, an early close on Friday.
    sieve = BarSieve(chunk(timeframe, D(2024, 11, 27), D(2024, 11, 29)))
    good: dict[str, object] = {"open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 100}
    cases = [
        (utc(2024, 11, 27, 9, 0), None),  # 04:00 New York: pre-market opens
        (utc(2024, 11, 27, 16, 0), None),  # 11:00 New York
        (utc(2024, 11, 28, 0, 0), None),  # 19:00 New York, Wednesday's after-hours, Thursday in UTC
        (utc(2024, 11, 28, 4, 0), "outside session hours"),  # 23:00 Wednesday night
        (utc(2024, 11, 28, 16, 0), "outside session hours"),  # Thanksgiving
        (utc(2024, 11, 29, 20, 0), None),  # 15:00 New York on the early close
        (utc(2024, 11, 29, 22, 0), "outside chunk"),  # 17:00: the early close ended after-hours
        (utc(2024, 11, 30, 0, 0), "outside chunk"),
    ]
    for ts, _ in cases:
        if is_on_grid(ts, timeframe):
            sieve.offer(good, ts, **good)

    expected = [(ts, reason) for ts, reason in cases if is_on_grid(ts, timeframe) and reason]
    assert [(row.ts, row.reason) for row in sieve.rejected] == expected
    assert [bar.ts for bar in sieve.bars] == [ts for ts, r in cases if is_on_grid(ts, timeframe) and not r]


async def test_build_providers_from_environment() -> None:
    async with httpx.AsyncClient() as client:
        only_yahoo = build_providers(client, {"POLYGON_API_KEY": "  ", "TRADIER_TOKEN": ""})
        everything = build_providers(
            client,
            {
                "POLYGON_API_KEY": "pk",
                "TRADIER_TOKEN": "tt",
                "POLYGON_BASE_URL": "http://127.0.0.1:9/polygon/",
                "YAHOO_BASE_URL": "http://127.0.0.1:9/yahoo",
            },
        )

    assert list(only_yahoo) == ["yahoo"]
    assert sorted(everything) == ["polygon", "tradier", "yahoo"]
    polygon, yahoo, tradier = everything["polygon"], everything["yahoo"], everything["tradier"]
    assert isinstance(polygon, PolygonProvider) and polygon.base_url == "http://127.0.0.1:9/polygon"
    assert isinstance(yahoo, YahooProvider) and yahoo.base_url == "http://127.0.0.1:9/yahoo"
    assert isinstance(tradier, TradierProvider) and tradier.base_url == "https://api.tradier.com"
    default_yahoo = only_yahoo["yahoo"]
    assert isinstance(default_yahoo, YahooProvider)
    assert default_yahoo.base_url == "https://query1.finance.yahoo.com"
    assert all(provider.name == name for name, provider in everything.items())


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("htp://api.polygon.io", "POLYGON_BASE_URL has scheme 'htp', not http or https"),
        ("localhost:9", "POLYGON_BASE_URL has scheme 'localhost', not http or https"),
        ("api.polygon.io", "POLYGON_BASE_URL has scheme none, not http or https"),
        ("https://", "POLYGON_BASE_URL has no host"),
        ("http://[::1", "POLYGON_BASE_URL is not a URL"),
        ("ftp://user:Pa55word@host", "POLYGON_BASE_URL has scheme 'ftp', not http or https"),
    ],
)
async def test_a_base_url_that_cannot_work_leaves_its_provider_out(value: str, why: str) -> None:
    env = {"POLYGON_API_KEY": "pk", "POLYGON_BASE_URL": value}
    async with httpx.AsyncClient() as client:
        built = build_providers(client, env)

    assert sorted(built) == ["yahoo"]
    (reason,) = misconfigured_providers(env).values()
    assert reason.startswith(why) and "polygon is not used in this run" in reason
    assert "Pa55word" not in reason and "user" not in reason and "api.polygon.io" not in reason


async def test_only_base_urls_in_use_are_checked_and_empty_means_the_default() -> None:
    env = {"POLYGON_BASE_URL": "htp://x", "YAHOO_BASE_URL": " ", "TRADIER_BASE_URL": "https://t.example"}
    async with httpx.AsyncClient() as client:
        built = build_providers(client, env)
    assert misconfigured_providers(env) == {}  # no POLYGON_API_KEY: polygon is not asked for anyway
    yahoo = built["yahoo"]
    assert isinstance(yahoo, YahooProvider) and yahoo.base_url == "https://query1.finance.yahoo.com"
    assert misconfigured_providers({"YAHOO_BASE_URL": "localhost:9"}) == {
        "yahoo": "YAHOO_BASE_URL has scheme 'localhost', not http or https (an http(s) URL with a host"
        " is needed); yahoo is not used in this run"
    }


async def test_a_client_without_timeouts_still_gets_one() -> None:
    async with httpx.AsyncClient(timeout=None) as client:
        provider = YahooProvider(client, "http://127.0.0.1:9", None)
        assert provider._timeout.read is not None


def _odd_rows(timeframe: str, request: FetchRequest, seed: int) -> list[object]:
    """Polygon-shaped rows around `request`, mostly good, many broken in one way or another."""
    rng = random.Random(seed)
    minutes = {"m1": 1, "m5": 5, "h1": 60, "h4": 240, "d1": 1440, "w1": 1440}[timeframe]
    step = 60_000 * minutes
    # on the timeframe's grid: from 00:00 New York of the first session (4 hours before
    # pre-market) for intraday timeframes, of three days before it for d1 and w1
    start = day_start(request.first_session - dt.timedelta(days=0 if minutes < 1440 else 3))
    first = (start - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1)
    stamps = [first + step * i for i in range(400 if minutes < 1440 else 20)]
    odd_values: dict[str, list[object]] = {
        "t": [None, True, 1.7e12, "1", stamps[0] + 1, stamps[0] + 30_000, stamps[0] - step],
        "o": [10, None, True, float("nan"), float("inf"), 0.0, -1.0, 12.5, "10", 1e308],
        "h": [11, None, 9.5, float("-inf"), 8.0],
        "l": [9, 0.0, -2.0, 10.6, float("nan")],
        "c": [10, 11.5, 8.5, None, "x"],
        "v": [100.5, -1, -0.5, True, None, float("nan"), "7", 10**30],
        "vw": [None, 10, 0.0, -1.0, float("nan"), "10", True],
        "n": [None, 3.0, 3.5, -1, True, 2**60, 2**53, "3"],
    }
    rows: list[object] = []
    for i, stamp in enumerate(stamps):
        row: dict[str, object] = {"v": 100, "vw": 10.2, "o": 10.0, "c": 10.5, "h": 11.0, "l": 9.0, "t": stamp}
        row["n"] = 7
        roll = rng.random()
        if roll < 0.35:
            key = rng.choice(list(odd_values))
            row[key] = rng.choice(odd_values[key])
        elif roll < 0.40:
            del row[rng.choice(list(row))]
        elif roll < 0.45 and rows:
            row["t"] = stamps[rng.randrange(max(1, i))]  # a duplicate, or out of order
        elif roll < 0.47:
            rows.append(rng.choice([None, [1, 2], "row", 5]))
        rows.append(row)
    return rows


@pytest.mark.parametrize("timeframe", ["m1", "m5", "h1", "h4", "d1", "w1"])
@pytest.mark.parametrize("seed", range(4))
async def test_the_page_fast_path_takes_and_rejects_exactly_what_each_row_would(
    timeframe: str, seed: int
) -> None:
    """BarSieve.offer_epoch_rows (Polygon's page reader) against Polygon's row-by-row path."""
    request = chunk(timeframe, D(2024, 11, 26), D(2024, 12, 3))  # Thanksgiving, an early close
    rows = _odd_rows(timeframe, request, seed)
    async with httpx.AsyncClient() as client:
        polygon = PolygonProvider(client, "http://127.0.0.1:9", "key")
        page = BarSieve(request)
        polygon._read_page({"status": "OK", "resultsCount": len(rows), "results": rows}, page)
        one_by_one = BarSieve(request)
        for row in rows:
            polygon._offer(row, one_by_one)

    fast, slow = page.result("polygon", 1), one_by_one.result("polygon", 1)
    assert fast.bars == slow.bars
    assert [(r.raw, r.reason, r.ts) for r in fast.rejected] == [
        (r.raw, r.reason, r.ts) for r in slow.rejected
    ]
    assert [type(x) for bar in fast.bars for x in bar] == [type(x) for bar in slow.bars for x in bar]
    assert fast.bars == sorted(fast.bars, key=lambda bar: bar.ts)
    assert fast.bars and fast.rejected


async def test_a_page_out_of_time_order_is_sorted_and_keeps_the_first_of_a_timestamp() -> None:
    request = chunk("m1", D(2024, 12, 2), D(2024, 12, 2))
    at = [utc(2024, 12, 2, 15, minute) for minute in range(4)]

    def row(ts: dt.datetime, close: float) -> dict[str, object]:
        stamp = (ts - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1)
        return {"t": stamp, "o": 10.0, "h": 11.0, "l": 9.0, "c": close, "v": 5, "vw": 10.1, "n": 2}

    rows = [row(at[2], 10.2), row(at[0], 10.0), row(at[2], 10.9), row(at[1], 10.1), row(at[3], 10.3)]
    async with httpx.AsyncClient() as client:
        sieve = BarSieve(request)
        PolygonProvider(client, "http://127.0.0.1:9", "key")._read_page(
            {"status": "OK", "results": rows}, sieve
        )

    result = sieve.result("polygon", 1)
    assert [(bar.ts, bar.close) for bar in result.bars] == [
        (at[0], 10.0),
        (at[1], 10.1),
        (at[2], 10.2),
        (at[3], 10.3),
    ]
    assert [(r.ts, r.reason, r.raw["c"]) for r in result.rejected] == [(at[2], "duplicate timestamp", 10.9)]
