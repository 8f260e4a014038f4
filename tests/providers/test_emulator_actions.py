"""The emulated market's corporate actions: raw bars, adjusted views, the reports of actions."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import httpx
import pytest

from tests.providers.helpers import NOW, POLYGON_KEY, TRADIER_TOKEN
from worker.emulator import Fault, PolygonServer, TradierServer, YahooServer, actions, synthetic
from worker.emulator.synthetic import NEW_YORK, AdjustedBar, SyntheticBar

D = dt.date
_AUTH = {"Authorization": f"Bearer {POLYGON_KEY}"}
TODAY = NOW.astimezone(NEW_YORK).date()  # what the servers at NOW adjust to: 2024-12-02
SPLIT = D(2024, 6, 10)  # NVDA's 10-for-1
AROUND_SPLIT = (D(2024, 6, 5), D(2024, 6, 12))


def _ms(ts: dt.datetime) -> int:
    return int(ts.timestamp() * 1000)


def _open(day: dt.date) -> int:
    """The session's 09:30 New York open in epoch seconds: where Yahoo dates an event."""
    hours = synthetic.session(day)
    assert hours is not None
    return int(hours.regular_open.timestamp())


def _polygon_view(bar: SyntheticBar | AdjustedBar) -> tuple[Any, ...]:
    return (_ms(bar.ts), bar.open, bar.high, bar.low, bar.close, float(bar.volume), bar.vwap, bar.trade_count)


def _served(results: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["t"], r["o"], r["h"], r["l"], r["c"], float(r["v"]), r["vw"], r["n"]) for r in results]


async def _aggs(
    client: httpx.AsyncClient,
    server: PolygonServer,
    ticker: str,
    span: str,
    first: dt.date,
    last: dt.date,
    **params: str,
) -> list[dict[str, Any]]:
    answer = await client.get(
        f"{server.base_url}/v2/aggs/ticker/{ticker}/range/1/{span}/{first}/{last}",
        params=params,
        headers=_AUTH,
    )
    assert answer.status_code == 200, answer.text
    results: list[dict[str, Any]] = answer.json().get("results", [])
    return results


async def _chart(
    client: httpx.AsyncClient, server: YahooServer, symbol: str, **params: str
) -> dict[str, Any]:
    answer = await client.get(f"{server.base_url}/v8/finance/chart/{symbol}", params=params)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()["chart"]["result"][0]
    return result


def _period(first: dt.date, last: dt.date) -> dict[str, str]:
    start = synthetic.new_york_midnight(first)
    end = synthetic.new_york_midnight(last + dt.timedelta(days=1))
    return {"period1": str(int(start.timestamp())), "period2": str(int(end.timestamp()))}


# --- the actions and their factors ------------------------------------------------------------


def test_every_action_falls_on_a_session_and_the_factors_follow_the_convention() -> None:
    ex_dates = [s.ex_date for s in actions.SPLITS] + [d.ex_date for d in actions.DIVIDENDS]
    assert [day for day in ex_dates if synthetic.session(day) is None] == []
    assert [s.ticker for s in actions.SPLITS] == ["AVGO", "GE", "NVDA", "ORLY"]
    assert [d.dividend_type for d in actions.dividends("COST")] == ["SC"]
    assert (actions.splits("MSFT"), actions.dividends("MSFT")) == ((), ())

    assert actions.raw_factor("NVDA", D(2024, 6, 7)) == 10.0
    assert actions.raw_factor("NVDA", SPLIT) == 1.0
    assert actions.raw_factor("GE", D(2021, 7, 30)) == 1 / 8
    assert actions.raw_factor("MSFT", D(2020, 1, 2)) == 1.0
    assert actions.split_adjustment("NVDA", D(2024, 6, 7), as_of=TODAY) == 0.1
    assert actions.split_adjustment("NVDA", D(2024, 6, 7), as_of=D(2024, 6, 9)) == 1.0  # not yet split
    assert actions.split_adjustment("GE", D(2021, 7, 30), as_of=TODAY) == 8.0
    # ORLY's 15-for-1 of 2025-06-10 is in its raw 2024 prices, not yet in an adjustment at TODAY.
    assert actions.raw_factor("ORLY", TODAY) == 15.0
    assert actions.split_adjustment("ORLY", TODAY, as_of=TODAY) == 1.0

    # CRSP: 1 - amount / the raw close of the session before the ex-date.
    (ex,) = [d for d in actions.dividends("AAPL") if d.ex_date == D(2024, 8, 12)]
    before = synthetic.daily_bar("AAPL", D(2024, 8, 9))
    assert before is not None
    assert actions.dividend_adjustment("AAPL", D(2024, 8, 9), D(2024, 8, 12)) == 1 - 0.25 / before.close
    assert actions.dividend_adjustment("AAPL", D(2024, 8, 12), TODAY) == pytest.approx(
        actions.dividend_factor(actions.dividends("AAPL")[3])
    )
    assert actions.dividend_adjustment("AAPL", D(2024, 1, 2), D(2024, 1, 31)) == 1.0
    assert ex.record_date == ex.ex_date and ex.declaration_date < ex.ex_date < ex.pay_date


# --- the synthetic market trades as traded --------------------------------------------------


def test_nvda_raw_bars_jump_tenfold_at_the_split() -> None:
    daily = {bar.ts.astimezone(NEW_YORK).date(): bar for bar in synthetic.bars("NVDA", "d1", *AROUND_SPLIT)}
    before, after = daily[D(2024, 6, 7)], daily[SPLIT]
    assert 8 < before.close / after.open < 12
    assert 8 < after.volume / before.volume < 12

    hourly = synthetic.bars("NVDA", "h1", D(2024, 6, 7), SPLIT)
    midnight = synthetic.new_york_midnight(SPLIT)
    last_before = [b for b in hourly if b.ts < midnight][-1]
    first_after = next(b for b in hourly if b.ts >= midnight)
    assert 8 < last_before.close / first_after.open < 12

    # As traded = the continuous path times 10 before the split, the path itself after it.
    for day, factor in ((D(2024, 6, 7), 10), (SPLIT, 1)):
        for bar in synthetic.minute_bars("NVDA", day)[:50]:
            minute = int(bar.ts.timestamp()) // 60
            assert bar.open == round(synthetic.price_at("NVDA", minute) * factor, 2)
            assert bar.close == round(synthetic.price_at("NVDA", minute + 1) * factor, 2)
            assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high


def test_ge_reverse_split_trades_eight_times_lower_before() -> None:
    daily = synthetic.bars("GE", "d1", D(2021, 7, 29), D(2021, 8, 3))
    assert [bar.ts.astimezone(NEW_YORK).date() for bar in daily] == [
        D(2021, 7, 29),
        D(2021, 7, 30),
        D(2021, 8, 2),
        D(2021, 8, 3),
    ]
    assert 6 < daily[2].open / daily[1].close < 10
    assert 6 < daily[1].volume / daily[2].volume < 10
    adjusted = synthetic.adjusted_bars("GE", "d1", D(2021, 7, 29), D(2021, 8, 3), as_of=TODAY)
    assert adjusted[1].close == round(daily[1].close * 8, 4) and adjusted[1].volume == daily[1].volume / 8
    assert (adjusted[2].close, adjusted[2].volume) == (daily[2].close, daily[2].volume)


@pytest.mark.parametrize("ticker", ["MSFT", "AAPL", "ACME"])
def test_tickers_without_splits_trade_on_the_continuous_series(ticker: str) -> None:
    day = D(2024, 3, 8)
    for bar in synthetic.minute_bars(ticker, day):
        minute = int(bar.ts.timestamp()) // 60
        assert (bar.open, bar.close) == (
            synthetic.price_at(ticker, minute),
            synthetic.price_at(ticker, minute + 1),
        )
    for timeframe in ("h1", "d1", "w1"):
        raw = synthetic.bars(ticker, timeframe, day, day)
        adjusted = synthetic.adjusted_bars(ticker, timeframe, day, day, as_of=TODAY)
        assert [_polygon_view(bar) for bar in adjusted] == [_polygon_view(bar) for bar in raw]


def test_msft_bars_are_what_they_were_before_the_market_had_actions() -> None:
    # Computed by the synthetic market before actions existed (same seed, same path).
    daily = synthetic.bars("MSFT", "d1", D(2024, 3, 4), D(2024, 3, 5))
    hourly = synthetic.bars("MSFT", "h1", D(2024, 3, 8), D(2024, 3, 8))[5:7]
    assert [_polygon_view(bar)[1:] for bar in daily] == [
        (81.72, 82.29, 80.84, 80.86, 768438.0, 81.609, 12617),
        (82.73, 83.5, 82.1, 83.45, 741322.0, 82.7457, 12176),
    ]
    assert [(bar.ts.astimezone(NEW_YORK).strftime("%H:%M"), *_polygon_view(bar)[1:]) for bar in hourly] == [
        ("09:00", 83.0, 83.05, 82.27, 82.48, 54566.0, 82.4383, 883),
        ("10:00", 82.48, 82.58, 82.26, 82.33, 126351.0, 82.4217, 2075),
    ]


def test_adjusted_weekly_bars_combine_the_adjusted_days_across_a_split() -> None:
    # ORLY's 15-for-1 executed on Tuesday 2025-06-10: one week of mixed bases when raw.
    as_of, monday = D(2025, 7, 1), D(2025, 6, 9)
    (raw_week,) = synthetic.bars("ORLY", "w1", monday, monday)
    (week,) = synthetic.adjusted_bars("ORLY", "w1", monday, monday, as_of=as_of)
    days = synthetic.adjusted_bars("ORLY", "d1", monday, monday + dt.timedelta(days=4), as_of=as_of)

    assert raw_week.high > 10 * raw_week.low  # Monday traded 15x higher
    assert week.open == days[0].open == round(synthetic.bars("ORLY", "d1", monday, monday)[0].open / 15, 4)
    assert (week.close, week.volume, week.sessions) == (days[-1].close, sum(d.volume for d in days), 5)
    assert week.high == max(d.high for d in days) < 2 * week.low


# --- Polygon ---------------------------------------------------------------------------------


async def test_polygon_adjusted_bars_are_raw_times_the_split_factor(
    polygon_server: PolygonServer, client: httpx.AsyncClient
) -> None:
    first, last = AROUND_SPLIT
    raw = await _aggs(client, polygon_server, "NVDA", "day", first, last, adjusted="false")
    default = await _aggs(client, polygon_server, "NVDA", "day", first, last)
    explicit = await _aggs(client, polygon_server, "NVDA", "day", first, last, adjusted="true")
    hourly_raw = await _aggs(
        client, polygon_server, "NVDA", "hour", D(2024, 6, 7), D(2024, 6, 7), adjusted="false"
    )
    hourly = await _aggs(client, polygon_server, "NVDA", "hour", D(2024, 6, 7), D(2024, 6, 7))

    assert _served(raw) == [_polygon_view(bar) for bar in synthetic.bars("NVDA", "d1", first, last)]
    expected = synthetic.adjusted_bars("NVDA", "d1", first, last, as_of=TODAY)
    assert _served(default) == _served(explicit) == [_polygon_view(bar) for bar in expected]
    split_ms = _ms(synthetic.new_york_midnight(SPLIT))
    for raw_bar, bar in zip(raw, default, strict=True):
        factor = 0.1 if bar["t"] < split_ms else 1.0
        assert bar["c"] == round(raw_bar["c"] * factor, 4)
        assert bar["v"] == raw_bar["v"] / factor
    assert [b["c"] for b in hourly] == [round(b["c"] / 10, 4) for b in hourly_raw]
    assert len(hourly) == len(hourly_raw) > 10


async def test_polygon_serves_a_fractional_adjusted_volume_as_a_float(
    polygon_server: PolygonServer, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No real split here leaves fractional shares; a made-up 3-for-2 does (its own ticker,
    # so the bars it leaves in the market's caches are nobody else's).
    made_up = (actions.Split("ZZFRAC", SPLIT, 2, 3),)
    real = actions.splits
    monkeypatch.setattr(actions, "splits", lambda ticker: made_up if ticker == "ZZFRAC" else real(ticker))
    day = D(2024, 6, 7)
    answer = await client.get(
        f"{polygon_server.base_url}/v2/aggs/ticker/ZZFRAC/range/1/hour/{day}/{day}", headers=_AUTH
    )
    raw = synthetic.bars("ZZFRAC", "h1", day, day)

    volumes = [bar["v"] for bar in answer.json()["results"]]
    assert volumes == [round(bar.volume * 1.5, 4) for bar in raw]
    assert any(isinstance(v, float) and not v.is_integer() for v in volumes)


async def test_polygon_adjusts_as_of_its_own_clock(client: httpx.AsyncClient) -> None:
    # On 2024-06-07 the split had not happened: adjusted=true is the raw series.
    with PolygonServer(POLYGON_KEY, now=dt.datetime(2024, 6, 7, 20, tzinfo=dt.UTC)) as server:
        before = await _aggs(client, server, "NVDA", "day", D(2024, 6, 3), D(2024, 6, 7))
        splits = (
            await client.get(f"{server.base_url}/v3/reference/splits?ticker=NVDA", headers=_AUTH)
        ).json()
    assert _served(before) == [
        _polygon_view(b) for b in synthetic.bars("NVDA", "d1", D(2024, 6, 3), D(2024, 6, 7))
    ]
    assert splits["results"] == []


async def _all_pages(
    client: httpx.AsyncClient, url: str, params: dict[str, str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every row of a paginated reference listing, and the next_urls followed."""
    answer = await client.get(url, params=params, headers=_AUTH)
    rows: list[dict[str, Any]] = []
    followed: list[str] = []
    while True:
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert page["status"] == "OK"
        rows.extend(page["results"])
        if "next_url" not in page:
            return rows, followed
        followed.append(page["next_url"])
        answer = await client.get(page["next_url"], headers=_AUTH)


async def test_polygon_splits_and_dividends_paginate_with_limit_1(
    polygon_server: PolygonServer, client: httpx.AsyncClient
) -> None:
    base = polygon_server.base_url
    dividends, dividend_urls = await _all_pages(
        client, f"{base}/v3/reference/dividends", {"ticker": "NVDA", "limit": "1", "order": "asc"}
    )
    splits, split_urls = await _all_pages(
        client, f"{base}/v3/reference/splits", {"limit": "1", "apiKey": POLYGON_KEY}
    )
    without_key = await client.get(dividend_urls[0])

    expected = [d for d in actions.dividends("NVDA") if d.ex_date <= TODAY]
    assert [r["ex_dividend_date"] for r in dividends] == [d.ex_date.isoformat() for d in expected]
    assert len(dividends) == len(dividend_urls) + 1 == 6
    assert len({r["id"] for r in dividends}) == 6
    assert dividends[0] == {
        "cash_amount": 0.04,  # raw, as paid before the split
        "currency": "USD",
        "declaration_date": expected[0].declaration_date.isoformat(),
        "dividend_type": "CD",
        "ex_dividend_date": "2023-06-07",
        "frequency": 4,
        "id": dividends[0]["id"],
        "pay_date": expected[0].pay_date.isoformat(),
        "record_date": expected[0].record_date.isoformat(),
        "ticker": "NVDA",
    }
    assert dividends[-1]["cash_amount"] == 0.01
    # Every ticker, newest first by default; none after the server's date (ORLY's is 2025).
    assert [(r["ticker"], r["execution_date"], r["split_from"], r["split_to"]) for r in splits] == [
        ("AVGO", "2024-07-15", 1, 10),
        ("NVDA", "2024-06-10", 1, 10),
        ("GE", "2021-08-02", 8, 1),
    ]
    for url in dividend_urls + split_urls:
        assert url.startswith(f"{base}/v3/reference/") and "cursor=" in url
        assert POLYGON_KEY not in url and "apiKey" not in url
    assert without_key.status_code == 401
    # The cursor carries the query: extra parameters on a next_url change nothing.
    again = await client.get(dividend_urls[2] + "&ticker=AAPL&order=desc", headers=_AUTH)
    assert again.json()["results"] == [dividends[3]]
    cursor = dividend_urls[0].split("cursor=", 1)[1]
    assert "ticker=NVDA" in base64.urlsafe_b64decode(cursor).decode()


async def test_polygon_reference_filters(polygon_server: PolygonServer, client: httpx.AsyncClient) -> None:
    async def rows(endpoint: str, **params: str) -> list[dict[str, Any]]:
        answer = await client.get(
            f"{polygon_server.base_url}/v3/reference/{endpoint}", params=params, headers=_AUTH
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "OK"
        found: list[dict[str, Any]] = answer.json()["results"]
        return found

    dated = await rows(
        "dividends",
        ticker="AVGO",
        limit="1000",
        **{"ex_dividend_date.gte": "2024-03-21", "ex_dividend_date.lte": "2024-12-31"},
    )
    # Newest first by default; none after the server's date (2024-12-23 is to come).
    assert [(r["ex_dividend_date"], r["cash_amount"]) for r in dated] == [
        ("2024-09-23", 0.53),
        ("2024-06-21", 5.25),
    ]
    strictly = await rows(
        "dividends",
        ticker="AVGO",
        order="asc",
        **{"ex_dividend_date.gt": "2024-03-20", "ex_dividend_date.lt": "2024-09-23"},
    )
    assert [r["ex_dividend_date"] for r in strictly] == ["2024-06-21"]
    assert len(await rows("dividends", ticker="AAPL", limit="1000")) == 4  # up to TODAY
    assert len(await rows("dividends")) == 10  # every ticker's, 10 by default
    assert [r["dividend_type"] for r in await rows("dividends", ticker="COST")] == ["SC"]
    assert await rows("splits", ticker="AVGO", **{"execution_date.lte": "2024-07-14"}) == []
    assert [
        r["ticker"]
        for r in await rows(
            "splits", **{"execution_date.gte": "2024-06-10", "execution_date.lte": "2024-06-10"}
        )
    ] == ["NVDA"]
    assert await rows("splits", ticker="ORLY") == []  # 2025: after the server's date
    assert await rows("splits", ticker="NOPE") == await rows("dividends", ticker="NOPE") == []
    bad = await client.get(
        f"{polygon_server.base_url}/v3/reference/splits", params={"order": "up"}, headers=_AUTH
    )
    assert bad.status_code == 400 and bad.json()["status"] == "ERROR"
    unkeyed = await client.get(f"{polygon_server.base_url}/v3/reference/splits")
    assert unkeyed.status_code == 401
    assert [r.path for r in polygon_server.requests].count("/v3/reference/dividends") == 6


async def test_polygon_reference_faults(polygon_server: PolygonServer, client: httpx.AsyncClient) -> None:
    splits_url = f"{polygon_server.base_url}/v3/reference/splits"
    dividends_url = f"{polygon_server.base_url}/v3/reference/dividends"
    polygon_server.inject(Fault.rate_limited("4"), path_prefix="/v3/reference/splits")
    polygon_server.inject(Fault.not_authorized(), path_prefix="/v3/reference/dividends")
    polygon_server.inject(Fault.malformed_json(), path_prefix="/v3/reference/splits")
    polygon_server.inject(Fault.null_results(), path_prefix="/v3/reference/dividends")
    limited = await client.get(splits_url, headers=_AUTH)
    refused = await client.get(dividends_url, headers=_AUTH)
    malformed = await client.get(splits_url, headers=_AUTH)
    null = await client.get(dividends_url, params={"ticker": "NVDA"}, headers=_AUTH)

    assert (limited.status_code, limited.headers["retry-after"]) == (429, "4")
    assert refused.status_code == 403 and refused.json()["status"] == "NOT_AUTHORIZED"
    assert malformed.status_code == 200
    with pytest.raises(ValueError):
        malformed.json()
    assert null.json()["results"] is None

    polygon_server.inject(Fault.invalid_actions(), path_prefix="/v3/reference/", times=2)
    splits = (await client.get(splits_url, params={"order": "asc"}, headers=_AUTH)).json()["results"]
    dividends = (
        await client.get(dividends_url, params={"ticker": "NVDA", "order": "asc"}, headers=_AUTH)
    ).json()["results"]
    clean = (
        await client.get(dividends_url, params={"ticker": "NVDA", "order": "asc"}, headers=_AUTH)
    ).json()["results"]

    assert [s["split_to"] for s in splits] == [0, 10, 10]
    assert "execution_date" not in splits[-1] and all("execution_date" in s for s in splits[:-1])
    assert dividends[0]["cash_amount"] == -0.04
    assert "cash_amount" not in dividends[1]
    assert "ex_dividend_date" not in dividends[-1]
    assert dividends[2:-1] == clean[2:-1]
    assert len(polygon_server.requests) == 7


# --- Yahoo -----------------------------------------------------------------------------------


async def test_yahoo_quotes_are_polygons_adjusted_bars_and_adjclose_adds_dividends(
    polygon_server: PolygonServer, yahoo_server: YahooServer, client: httpx.AsyncClient
) -> None:
    first, last = AROUND_SPLIT
    polygon = await _aggs(client, polygon_server, "NVDA", "day", first, last)
    chart = await _chart(client, yahoo_server, "NVDA", interval="1d", **_period(first, last))
    quote = chart["indicators"]["quote"][0]

    assert quote["close"] == [bar["c"] for bar in polygon]
    assert quote["open"] == [bar["o"] for bar in polygon]
    assert quote["volume"] == [round(bar["v"]) for bar in polygon]
    assert all(isinstance(v, int) for v in quote["volume"])
    assert "events" not in chart
    # Dividends after each bar up to TODAY: 2024-06-11, -09-12 (both $0.01).
    days = [bar["t"] for bar in polygon]
    adjclose = chart["indicators"]["adjclose"][0]["adjclose"]
    for ms, close, adjusted in zip(days, quote["close"], adjclose, strict=True):
        day = dt.datetime.fromtimestamp(ms / 1000, dt.UTC).astimezone(NEW_YORK).date()
        assert adjusted == round(close * actions.dividend_adjustment("NVDA", day, TODAY), 4) < close

    weekly = await _chart(
        client, yahoo_server, "NVDA", interval="1wk", **_period(D(2024, 6, 3), D(2024, 6, 14))
    )
    weeks = synthetic.adjusted_bars("NVDA", "w1", D(2024, 6, 3), D(2024, 6, 14), as_of=TODAY)
    assert weekly["indicators"]["quote"][0]["close"] == [w.close for w in weeks]
    assert weekly["indicators"]["quote"][0]["volume"] == [round(w.volume) for w in weeks]


async def test_yahoo_intraday_quotes_are_split_adjusted(client: httpx.AsyncClient) -> None:
    day = D(2024, 6, 7)
    as_of = D(2024, 6, 20)
    with YahooServer(now=dt.datetime(2024, 6, 20, 20, tzinfo=dt.UTC)) as server:
        chart = await _chart(client, server, "NVDA", interval="5m", **_period(day, day))
    expected = synthetic.adjusted_bars("NVDA", "m5", day, day, as_of=as_of, extended=False)
    raw = synthetic.bars("NVDA", "m5", day, day, extended=False)

    assert chart["timestamp"] == [int(bar.ts.timestamp()) for bar in expected]
    assert chart["indicators"]["quote"][0]["close"] == [bar.close for bar in expected]
    assert chart["indicators"]["quote"][0]["volume"] == [round(bar.volume) for bar in expected]
    assert [bar.close for bar in expected] == [round(bar.close / 10, 4) for bar in raw]


async def test_yahoo_events_only_when_asked_with_split_adjusted_amounts(
    yahoo_server: YahooServer, client: httpx.AsyncClient
) -> None:
    period = _period(D(2023, 1, 1), D(2024, 11, 29))
    both = await _chart(client, yahoo_server, "NVDA", interval="1wk", events="div,splits", **period)
    piped = await _chart(
        client, yahoo_server, "NVDA", interval="1wk", events="div|split|capitalGains", **period
    )
    dividends_only = await _chart(client, yahoo_server, "NVDA", interval="1wk", events="div", **period)
    gains_only = await _chart(client, yahoo_server, "NVDA", interval="1wk", events="capitalGains", **period)
    msft = await _chart(client, yahoo_server, "MSFT", interval="1wk", events="div,splits", **period)
    ge = await _chart(
        client,
        yahoo_server,
        "GE",
        interval="1wk",
        events="div,splits",
        **_period(D(2021, 1, 1), D(2021, 12, 31)),
    )

    assert both["events"] == piped["events"]
    split_at = _open(SPLIT)
    assert both["events"]["splits"] == {
        str(split_at): {"date": split_at, "numerator": 10, "denominator": 1, "splitRatio": "10:1"}
    }
    dividends = both["events"]["dividends"]
    assert list(dividends) == [str(_open(d.ex_date)) for d in actions.dividends("NVDA") if d.ex_date <= TODAY]
    assert dividends[str(_open(D(2024, 3, 5)))] == {"amount": 0.004, "date": _open(D(2024, 3, 5))}
    assert dividends[str(_open(D(2024, 6, 11)))]["amount"] == 0.01  # after the split: as paid
    assert dividends_only["events"] == {"dividends": dividends}
    assert "events" not in gains_only and "events" not in msft
    assert ge["events"]["splits"][str(_open(D(2021, 8, 2)))]["splitRatio"] == "1:8"
    assert [d["amount"] for d in ge["events"]["dividends"].values()] == [0.08, 0.08, 0.08, 0.08]


async def test_yahoo_invalid_actions_spoil_the_events(
    yahoo_server: YahooServer, client: httpx.AsyncClient
) -> None:
    yahoo_server.inject(Fault.invalid_actions())
    period = _period(D(2023, 1, 1), D(2024, 11, 29))
    spoiled = await _chart(client, yahoo_server, "NVDA", interval="1wk", events="div,splits", **period)
    clean = await _chart(client, yahoo_server, "NVDA", interval="1wk", events="div,splits", **period)

    (split,) = spoiled["events"]["splits"].values()
    assert (split["denominator"], split["splitRatio"]) == (0, "10:0")
    dividends = list(spoiled["events"]["dividends"].values())
    assert dividends[0]["amount"] == -0.004
    assert "date" not in dividends[-1]
    assert dividends[1:-1] == list(clean["events"]["dividends"].values())[1:-1]
    assert spoiled["indicators"] == clean["indicators"]


# --- withheld actions ------------------------------------------------------------------------


async def test_withheld_actions_disappear_from_reports_but_not_from_bars(client: httpx.AsyncClient) -> None:
    with (
        PolygonServer(POLYGON_KEY, now=NOW, withheld_actions=frozenset({"NVDA"})) as polygon,
        YahooServer(now=NOW, withheld_actions=frozenset({"NVDA"})) as yahoo,
    ):

        async def reports() -> tuple[Any, ...]:
            splits = await client.get(
                f"{polygon.base_url}/v3/reference/splits", params={"ticker": "NVDA"}, headers=_AUTH
            )
            dividends = await client.get(
                f"{polygon.base_url}/v3/reference/dividends", params={"ticker": "NVDA"}, headers=_AUTH
            )
            every = await client.get(f"{polygon.base_url}/v3/reference/splits", headers=_AUTH)
            chart = await _chart(
                client, yahoo, "NVDA", interval="1d", events="div,splits", **_period(*AROUND_SPLIT)
            )
            bars = await _aggs(client, polygon, "NVDA", "day", *AROUND_SPLIT)
            return (
                splits.json()["results"],
                dividends.json()["results"],
                [r["ticker"] for r in every.json()["results"]],
                chart.get("events"),
                chart["indicators"],
                bars,
            )

        hidden = await reports()
        polygon.withheld_actions.discard("NVDA")
        yahoo.withheld_actions.clear()
        learned = await reports()

    assert hidden[:4] == ([], [], ["AVGO", "GE"], None)
    assert len(learned[0]) == 1 and len(learned[1]) == 6
    assert learned[2] == ["AVGO", "NVDA", "GE"]
    assert learned[3]["splits"] and learned[3]["dividends"]
    assert hidden[4:] == learned[4:]  # the bars never changed


# --- Tradier ---------------------------------------------------------------------------------


async def test_tradier_history_is_split_adjusted_and_timesales_are_raw(client: httpx.AsyncClient) -> None:
    day = D(2024, 6, 7)
    headers = {"Authorization": f"Bearer {TRADIER_TOKEN}", "Accept": "application/json"}
    with TradierServer(TRADIER_TOKEN, now=dt.datetime(2024, 6, 12, 20, tzinfo=dt.UTC)) as server:
        history = await client.get(
            f"{server.base_url}/v1/markets/history",
            params={"symbol": "NVDA", "interval": "daily", "start": "2024-06-06", "end": "2024-06-11"},
            headers=headers,
        )
        timesales = await client.get(
            f"{server.base_url}/v1/markets/timesales",
            params={
                "symbol": "NVDA",
                "interval": "15min",
                "start": "2024-06-07 09:30",
                "end": "2024-06-07 15:59",
                "session_filter": "open",
            },
            headers=headers,
        )

    days = history.json()["history"]["day"]
    expected = synthetic.adjusted_bars("NVDA", "d1", D(2024, 6, 6), D(2024, 6, 11), as_of=D(2024, 6, 12))
    assert [(d["date"], d["close"], d["volume"]) for d in days] == [
        (b.ts.astimezone(NEW_YORK).date().isoformat(), b.close, round(b.volume)) for b in expected
    ]
    raw_day = synthetic.bars("NVDA", "d1", day, day)[0]
    assert days[1]["close"] == round(raw_day.close / 10, 4)
    sales = timesales.json()["series"]["data"]
    assert sales[-1]["close"] == raw_day.close  # the session's last 15 minutes close it, as traded
    assert 8 < sales[-1]["close"] / days[2]["open"] < 12
