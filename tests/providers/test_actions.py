"""Corporate actions: Polygon's reference API and Yahoo's chart events, against the emulators.

Answers no emulator gives (capital gains, two splits on one day, broken rows of
every kind) come from `_Canned`, a test-only server on the emulators' base.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import httpx
import pytest

from tests.providers.helpers import NO_PACE, NOW, POLYGON_KEY, TRADIER_TOKEN, PaceRecorder, all_text
from worker.emulator import EmulatorServer, Fault, PolygonServer, RecordedRequest, Reply, YahooServer, actions
from worker.providers import (
    ActionsRequest,
    AuthError,
    CorporateAction,
    NotCovered,
    PolygonProvider,
    ProviderError,
    RateLimited,
    TradierProvider,
    TransientError,
    YahooProvider,
    action_source,
)
from worker.providers.grid import NEW_YORK

D = dt.date
NVDA = ActionsRequest("NVDA", D(2024, 1, 1), D(2024, 12, 31))


def _polygon(client: httpx.AsyncClient, server: EmulatorServer) -> PolygonProvider:
    return PolygonProvider(client, server.base_url, POLYGON_KEY)


def _yahoo(client: httpx.AsyncClient, server: EmulatorServer) -> YahooProvider:
    return YahooProvider(client, server.base_url, None)


def _open(day: dt.date) -> int:
    """09:30 New York of `day` in epoch seconds: where Yahoo dates an event."""
    return int(dt.datetime.combine(day, dt.time(9, 30), tzinfo=NEW_YORK).timestamp())


def split(day: dt.date, split_from: float, split_to: float, reference: str | None = None) -> CorporateAction:
    return CorporateAction("split", day, split_from, split_to, None, None, reference)


def dividend(
    day: dt.date, amount: float, reference: str | None = None, currency: str = "USD"
) -> CorporateAction:
    return CorporateAction("dividend", day, None, None, amount, currency, reference)


# --- a server that answers as a test says ----------------------------------------------------


class _Canned(EmulatorServer):
    """Answers each path with `answer(request)`: a JSON payload (200) or a Reply."""

    def __init__(self, answer: Callable[[RecordedRequest], object]) -> None:
        super().__init__()
        self.answer = answer

    def route(self, request: RecordedRequest, fault: Fault | None) -> Reply:
        answer = self.answer(request)
        return answer if isinstance(answer, Reply) else Reply.json(answer)


def _reference(splits: list[object] | None, dividends: list[object] | None) -> _Canned:
    """A Polygon that answers one page of `splits` and one of `dividends` (None: no `results`)."""

    def answer(request: RecordedRequest) -> object:
        rows = splits if request.path == "/v3/reference/splits" else dividends
        return {"status": "OK", "request_id": "r", **({} if rows is None else {"results": rows})}

    return _Canned(answer)


def _chart(events: object, meta: dict[str, object] | None = None) -> _Canned:
    """A Yahoo whose daily chart carries `events` (left out when None) and no bars."""

    def answer(request: RecordedRequest) -> object:
        result: dict[str, object] = {"meta": meta or {"currency": "USD"}, "indicators": {"quote": [{}]}}
        if events is not None:
            result["events"] = events
        return {"chart": {"result": [result], "error": None}}

    return _Canned(answer)


def _split_row(day: object, split_from: object, split_to: object, **extra: object) -> dict[str, object]:
    row = {
        "id": f"S{day}",
        "ticker": "NVDA",
        "execution_date": day,
        "split_from": split_from,
        "split_to": split_to,
    }
    return {**row, **extra}


def _dividend_row(day: object, amount: object, kind: object = "CD", **extra: object) -> dict[str, object]:
    row = {
        "id": f"D{day}{kind}",
        "ticker": "NVDA",
        "cash_amount": amount,
        "currency": "USD",
        "declaration_date": "2024-01-02",
        "ex_dividend_date": day,
        "pay_date": "2024-12-31",
        "record_date": day,
        "frequency": 4,
        "dividend_type": kind,
    }
    return {**row, **extra}


# --- which providers report actions ----------------------------------------------------------


async def test_polygon_and_yahoo_are_action_sources_tradier_is_not(client: httpx.AsyncClient) -> None:
    polygon = PolygonProvider(client, "http://127.0.0.1:9", POLYGON_KEY)
    yahoo = YahooProvider(client, "http://127.0.0.1:9", None)
    assert action_source(polygon) is polygon
    assert action_source(yahoo) is yahoo
    assert action_source(TradierProvider(client, "http://127.0.0.1:9", TRADIER_TOKEN)) is None


# --- Polygon: what becomes an action, what is rejected and why --------------------------------


async def test_polygon_capital_gains_and_unknown_types_are_rejected_as_not_cash(
    client: httpx.AsyncClient,
) -> None:
    rows: list[object] = [
        _dividend_row("2024-03-05", 0.04),
        _dividend_row("2024-06-11", 0.5, "LT"),
        _dividend_row("2024-06-12", 0.2, "ST"),
        _dividend_row("2024-06-13", 0.2, "XX"),
        _dividend_row("2024-06-14", 0.2, None),
        _dividend_row("2024-09-12", 0.01, "SC"),
    ]
    with _reference([], rows) as server:
        result = await _polygon(client, server).fetch_actions(NVDA, NO_PACE)

    assert result.actions == [
        dividend(D(2024, 3, 5), 0.04, "D2024-03-05CD"),
        dividend(D(2024, 9, 12), 0.01, "D2024-09-12SC"),
    ]
    assert [row.reason for row in result.rejected] == [
        "capital gains distribution (LT): not a cash dividend, not applied",
        "capital gains distribution (ST): not a cash dividend, not applied",
        "dividend_type 'XX' unknown: not a cash dividend, not applied",
        "dividend_type missing: not a cash dividend, not applied",
    ]
    assert [row.raw for row in result.rejected] == rows[1:5]  # verbatim
    assert result.rejected[0].ts == dt.datetime(2024, 6, 11, 4, tzinfo=dt.UTC)  # 00:00 New York
    assert (result.provider, result.requests) == ("polygon", 2)


async def test_polygon_malformed_rows_are_rejected_with_reasons(client: httpx.AsyncClient) -> None:
    splits: list[object] = [
        _split_row("2024-06-10", 1, 10),
        "not a row",
        _split_row(None, 1, 10),
        _split_row("2024-13-01", 1, 10),
        _split_row("20240610", 1, 10),
        _split_row("2024-02-01", None, 10),
        _split_row("2024-02-02", 1, "10"),
        _split_row("2024-02-05", 1, 0),
        _split_row("2024-02-06", -1, 4),
        _split_row("2024-02-07", 4, 4),
        _split_row("2024-02-08", True, 2),
        _split_row("2024-02-09", 1, 2, ticker="AAPL"),
        _split_row("2024-02-12", 1, 2, ticker=None),
        _split_row("2023-12-29", 1, 2),
    ]
    dividends: list[object] = [
        _dividend_row("2024-03-05", 0.04),
        _dividend_row("2024-03-06", None),
        _dividend_row("2024-03-07", "0.04"),
        _dividend_row("2024-03-08", -0.04),
        _dividend_row("2024-03-11", 0),
        _dividend_row("2024-03-12", 0.04, currency=None),
        _dividend_row("2024-03-13", 0.04, currency="usd"),
        _dividend_row("2024-03-14", 0.04, currency="US"),
        {k: v for k, v in _dividend_row("2024-03-15", 0.04).items() if k != "ex_dividend_date"},
    ]
    with _reference(splits, dividends) as server:
        result = await _polygon(client, server).fetch_actions(NVDA, NO_PACE)

    assert result.actions == [
        dividend(D(2024, 3, 5), 0.04, "D2024-03-05CD"),
        split(D(2024, 6, 10), 1, 10, "S2024-06-10"),
    ]
    assert [row.reason for row in result.rejected] == [
        "not an object",
        "execution_date missing",
        "execution_date is not a YYYY-MM-DD date",
        "execution_date is not a YYYY-MM-DD date",
        "split_from missing",
        "split_to is not a number",
        "split_to is not positive",
        "split_from is not positive",
        "split_from equals split_to (4:4): not a split",
        "split_from is not a number",
        "ticker 'AAPL', not NVDA as asked",
        "ticker missing, not NVDA as asked",
        "ex-date 2023-12-29 outside 2024-01-01..2024-12-31",
        "cash_amount missing",
        "cash_amount is not a number",
        "cash_amount is not positive",
        "cash_amount is not positive",
        "currency missing",
        "currency is not a 3-letter code",
        "currency is not a 3-letter code",
        "ex_dividend_date missing",
    ]
    assert result.rejected[0].raw == {"row": "not a row"}
    assert result.rejected[1].ts is None  # no date to tell


async def test_polygon_two_actions_on_one_ex_date(client: httpx.AsyncClient) -> None:
    splits: list[object] = [
        _split_row("2024-06-10", 1, 10),
        _split_row("2024-06-10", 1, 10, id="again"),  # the same split twice: one split
        _split_row("2024-06-10", 1, 4, id="other"),
    ]
    dividends: list[object] = [
        _dividend_row("2024-03-05", 0.24, id="regular"),
        _dividend_row("2024-03-05", 0.01, "SC", id="special"),
        _dividend_row("2024-03-05", 0.5, id="elsewhere", currency="CAD"),
    ]
    with _reference(splits, dividends) as server:
        result = await _polygon(client, server).fetch_actions(NVDA, NO_PACE)

    assert result.actions == [
        dividend(D(2024, 3, 5), 0.25, "regular,special"),  # summed as decimals: exactly 0.25
        split(D(2024, 6, 10), 1, 10, "S2024-06-10"),
    ]
    assert [(row.raw["id"], row.reason) for row in result.rejected] == [
        ("other", "two splits on 2024-06-10 disagree: 1:10 and 1:4"),
        ("elsewhere", "two dividends on 2024-03-05 in different currencies: USD and CAD"),
    ]


@pytest.mark.parametrize("results", [None, []], ids=["missing", "empty"])
async def test_polygon_without_results_is_no_actions(
    client: httpx.AsyncClient, results: list[object] | None
) -> None:
    with _reference(results, results) as server:
        result = await _polygon(client, server).fetch_actions(NVDA, NO_PACE)

    assert (result.actions, result.rejected, result.requests) == ([], [], 2)


async def test_polygon_null_results_is_no_actions(client: httpx.AsyncClient) -> None:
    with _Canned(lambda request: {"status": "OK", "results": None}) as server:
        result = await _polygon(client, server).fetch_actions(NVDA, NO_PACE)

    assert (result.actions, result.rejected) == ([], [])


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"status": "ERROR", "error": "Internal error"}, "Internal error"),
        ({"status": "OK", "results": {"id": "x"}}, "results is not a list"),
        (["not", "an", "object"], "answer is not a JSON object"),
    ],
)
async def test_polygon_broken_pages_are_transient(
    client: httpx.AsyncClient, answer: object, message: str
) -> None:
    with _Canned(lambda request: answer) as server, pytest.raises(TransientError, match=message):
        await _polygon(client, server).fetch_actions(NVDA, NO_PACE)


async def test_polygon_next_url_that_repeats_is_abandoned(client: httpx.AsyncClient) -> None:
    def answer(request: RecordedRequest) -> object:
        return {
            "status": "OK",
            "results": [],
            "next_url": "https://api.polygon.io/v3/reference/splits?cursor=same",
        }

    with _Canned(answer) as server:
        pace = PaceRecorder(server)
        with pytest.raises(ProviderError) as raised:
            await _polygon(client, server).fetch_actions(NVDA, pace)
        assert len(server.requests) == pace.calls == 2

    assert type(raised.value) is ProviderError  # permanent: the same request, the same loop
    assert str(raised.value) == "polygon: next_url repeats itself after 2 pages, abandoned"


async def test_polygon_endless_pages_are_abandoned_at_fifty(client: httpx.AsyncClient) -> None:
    pages = iter(range(1_000))

    def answer(request: RecordedRequest) -> object:
        cursor = next(pages)
        return {"status": "OK", "results": [], "next_url": f"http://x/v3/reference/splits?cursor={cursor}"}

    with _Canned(answer) as server:
        with pytest.raises(ProviderError) as raised:
            await _polygon(client, server).fetch_actions(NVDA, NO_PACE)
        assert len(server.requests) == 50

    assert str(raised.value) == "polygon: more than 50 pages for the splits of NVDA, abandoned"


# --- Yahoo: events -------------------------------------------------------------------------


async def test_yahoo_events_become_actions(client: httpx.AsyncClient) -> None:
    events = {
        "splits": {
            str(_open(D(2024, 6, 10))): {
                "date": _open(D(2024, 6, 10)),
                "numerator": 10,
                "denominator": 1,
                "splitRatio": "10:1",
            }
        },
        "dividends": {
            str(_open(D(2024, 3, 5))): {"amount": 0.004, "date": _open(D(2024, 3, 5))},
            str(_open(D(2024, 9, 12))): {"amount": 0.01, "date": _open(D(2024, 9, 12))},
        },
    }
    with _chart(events, meta={"symbol": "NVDA"}) as server:  # no meta.currency: USD
        result = await _yahoo(client, server).fetch_actions(NVDA, NO_PACE)

    assert result.actions == [
        dividend(D(2024, 3, 5), 0.004),
        split(D(2024, 6, 10), 1, 10),
        dividend(D(2024, 9, 12), 0.01),
    ]
    assert (result.provider, result.rejected, result.requests) == ("yahoo", [], 1)


@pytest.mark.parametrize("events", [None, {}, {"splits": None}], ids=["no-events", "empty", "null-splits"])
async def test_yahoo_without_events_is_no_actions(client: httpx.AsyncClient, events: object) -> None:
    with _chart(events) as server:
        result = await _yahoo(client, server).fetch_actions(NVDA, NO_PACE)

    assert (result.actions, result.rejected, result.requests) == ([], [], 1)


async def test_yahoo_malformed_events_are_rejected_with_reasons(client: httpx.AsyncClient) -> None:
    day = _open(D(2024, 6, 10))
    events = {
        "splits": {
            "1": {"numerator": 10, "denominator": 1},
            "2": {"date": "2024-06-10", "numerator": 10, "denominator": 1},
            "3": {"date": day, "numerator": 0, "denominator": 1},
            "4": {"date": day, "numerator": 10},
            "5": {"date": day, "numerator": 2, "denominator": 2},
            "6": "10:1",
            "7": {"date": day, "numerator": 10, "denominator": 1},
            "8": {"date": day, "numerator": 4, "denominator": 1},
            "9": {"date": 10**30, "numerator": 4, "denominator": 1},
        },
        "dividends": {
            "1": {"amount": -0.01, "date": _open(D(2024, 9, 12))},
            "2": {"amount": None, "date": _open(D(2024, 9, 12))},
            "3": {"amount": 0.01, "date": _open(D(2025, 1, 2))},
        },
    }
    with _chart(events) as server:
        result = await _yahoo(client, server).fetch_actions(NVDA, NO_PACE)

    assert result.actions == [split(D(2024, 6, 10), 1, 10)]
    assert [(row.raw, row.reason) for row in result.rejected] == [
        ({"splits": {"1": events["splits"]["1"]}}, "date missing"),
        ({"splits": {"2": events["splits"]["2"]}}, "date is not an epoch in seconds"),
        ({"splits": {"3": events["splits"]["3"]}}, "numerator is not positive"),
        ({"splits": {"4": events["splits"]["4"]}}, "denominator missing"),
        ({"splits": {"5": events["splits"]["5"]}}, "denominator equals numerator (2:2): not a split"),
        ({"splits": {"6": "10:1"}}, "not an object"),
        ({"splits": {"8": events["splits"]["8"]}}, "two splits on 2024-06-10 disagree: 1:10 and 1:4"),
        ({"splits": {"9": events["splits"]["9"]}}, "date is not an epoch in seconds"),
        ({"dividends": {"1": events["dividends"]["1"]}}, "amount is not positive"),
        ({"dividends": {"2": events["dividends"]["2"]}}, "amount missing"),
        ({"dividends": {"3": events["dividends"]["3"]}}, "ex-date 2025-01-02 outside 2024-01-01..2024-12-31"),
    ]


async def test_yahoo_dividends_in_a_currency_that_is_not_a_code_are_rejected(
    client: httpx.AsyncClient,
) -> None:
    # London quotes in pence ("GBp"): taken as pounds, a dividend would be 100 times too large.
    events = {"dividends": {"1": {"amount": 3.5, "date": _open(D(2024, 5, 16))}}}
    with _chart(events, meta={"currency": "GBp"}) as server:
        result = await _yahoo(client, server).fetch_actions(NVDA, NO_PACE)

    assert result.actions == []
    assert [row.reason for row in result.rejected] == ["meta.currency is not a 3-letter code"]


@pytest.mark.parametrize(
    ("events", "message"),
    [("splits", "events is not an object"), ({"dividends": [1]}, "events.dividends is not an object")],
)
async def test_yahoo_malformed_events_section_is_transient(
    client: httpx.AsyncClient, events: object, message: str
) -> None:
    with _chart(events) as server, pytest.raises(TransientError, match=message):
        await _yahoo(client, server).fetch_actions(NVDA, NO_PACE)


# --- against the emulators: the real events ---------------------------------------------------

# Before the servers' NOW (2024-12-02): NVDA's last four $0.04 dividends, the 10-for-1 of
# 2024-06-10 and the first two $0.01 dividends after it.
NVDA_TO_NOW = ActionsRequest("NVDA", D(2023, 1, 1), D(2024, 11, 29))


def _emulated(request: ActionsRequest, *, yahoo: bool = False) -> list[CorporateAction]:
    """The actions the emulated market holds for `request`, without the providers' ids.

    Yahoo's dividend amounts are split-adjusted as of its answer (NOW): NVDA's $0.04
    of 2024-03-05 shows as 0.004.
    """
    found: list[CorporateAction] = [
        split(s.ex_date, s.split_from, s.split_to)
        for s in actions.splits(request.ticker)
        if request.start <= s.ex_date <= request.end
    ]
    for d in actions.dividends(request.ticker):
        if request.start <= d.ex_date <= request.end:
            basis = actions.split_adjustment(request.ticker, d.ex_date, NOW.date()) if yahoo else 1.0
            found.append(dividend(d.ex_date, d.cash_amount * basis, currency=d.currency))
    return sorted(found, key=lambda a: (a.ex_date, a.kind))


def _unreferenced(found: list[CorporateAction]) -> list[CorporateAction]:
    """Without the ids, amounts to 9 decimals (the emulator's arithmetic is not ours)."""
    return [
        a._replace(reference=None, cash_amount=None if a.cash_amount is None else round(a.cash_amount, 9))
        for a in found
    ]


async def test_polygon_reports_nvda_split_and_raw_dividends(
    polygon_server: PolygonServer, client: httpx.AsyncClient
) -> None:
    pace = PaceRecorder(polygon_server)
    result = await _polygon(client, polygon_server).fetch_actions(NVDA_TO_NOW, pace)

    assert _unreferenced(result.actions) == _unreferenced(_emulated(NVDA_TO_NOW))
    assert split(D(2024, 6, 10), 1, 10) in _unreferenced(result.actions)
    amounts = {a.ex_date: a.cash_amount for a in result.actions if a.kind == "dividend"}
    assert (amounts[D(2024, 3, 5)], amounts[D(2024, 6, 11)]) == (0.04, 0.01)  # as paid
    assert all(a.reference for a in result.actions)  # Polygon's ids
    assert (result.provider, result.rejected, result.requests) == ("polygon", [], 2)
    assert pace.paced_every_request() and pace.answers == [200, 200]

    splits_sent, dividends_sent = polygon_server.requests
    assert splits_sent.path == "/v3/reference/splits"
    assert splits_sent.query == {
        "ticker": ["NVDA"],
        "limit": ["1000"],
        "execution_date.gte": ["2023-01-01"],
        "execution_date.lte": ["2024-11-29"],
        "order": ["asc"],
        "sort": ["execution_date"],
    }
    assert dividends_sent.path == "/v3/reference/dividends"
    assert dividends_sent.query == {
        "ticker": ["NVDA"],
        "limit": ["1000"],
        "ex_dividend_date.gte": ["2023-01-01"],
        "ex_dividend_date.lte": ["2024-11-29"],
        "order": ["asc"],
        "sort": ["ex_dividend_date"],
    }
    for sent in (splits_sent, dividends_sent):
        assert sent.header("authorization") == f"Bearer {POLYGON_KEY}"
        assert "apiKey" not in sent.query


async def test_yahoo_reports_nvda_split_and_split_adjusted_dividends(
    yahoo_server: YahooServer, client: httpx.AsyncClient
) -> None:
    pace = PaceRecorder(yahoo_server)
    result = await _yahoo(client, yahoo_server).fetch_actions(NVDA_TO_NOW, pace)

    assert _unreferenced(result.actions) == _unreferenced(_emulated(NVDA_TO_NOW, yahoo=True))
    assert split(D(2024, 6, 10), 1, 10) in result.actions
    amounts = {a.ex_date: a.cash_amount for a in result.actions if a.kind == "dividend"}
    assert amounts[D(2024, 3, 5)] == pytest.approx(0.004)  # Yahoo's basis: after the split
    assert amounts[D(2024, 6, 11)] == pytest.approx(0.01)
    assert all(a.reference is None for a in result.actions)  # Yahoo has no ids
    assert (result.provider, result.rejected, result.requests) == ("yahoo", [], 1)
    assert pace.paced_every_request()

    (sent,) = yahoo_server.requests
    assert sent.path == "/v8/finance/chart/NVDA"
    assert sent.query == {
        "interval": ["1d"],
        "period1": [str(int(dt.datetime(2023, 1, 1, 5, tzinfo=dt.UTC).timestamp()))],  # 00:00 EST
        "period2": [str(int(dt.datetime(2024, 11, 30, 5, tzinfo=dt.UTC).timestamp()))],  # the day after
        "events": ["div,splits"],
        "includePrePost": ["false"],
    }


@pytest.mark.parametrize("provider", ["polygon", "yahoo"])
async def test_ge_reverse_split_one_for_eight(
    polygon_server: PolygonServer, yahoo_server: YahooServer, client: httpx.AsyncClient, provider: str
) -> None:
    request = ActionsRequest("GE", D(2021, 1, 1), D(2021, 12, 31))
    if provider == "polygon":
        result = await _polygon(client, polygon_server).fetch_actions(request, NO_PACE)
    else:
        result = await _yahoo(client, yahoo_server).fetch_actions(request, NO_PACE)

    assert _unreferenced(result.actions) == _unreferenced(_emulated(request, yahoo=provider == "yahoo"))
    (reverse,) = [a for a in result.actions if a.kind == "split"]
    assert (reverse.ex_date, reverse.split_from, reverse.split_to) == (D(2021, 8, 2), 8.0, 1.0)
    assert result.rejected == []


@pytest.mark.parametrize("ticker", ["ACME", "BRK.B"])
async def test_a_ticker_without_actions_has_none(
    polygon_server: PolygonServer, yahoo_server: YahooServer, client: httpx.AsyncClient, ticker: str
) -> None:
    request = ActionsRequest(ticker, D(2020, 1, 1), D(2024, 11, 29))
    from_polygon = await _polygon(client, polygon_server).fetch_actions(request, NO_PACE)
    from_yahoo = await _yahoo(client, yahoo_server).fetch_actions(request, NO_PACE)

    assert (from_polygon.actions, from_polygon.rejected, from_polygon.requests) == ([], [], 2)
    assert (from_yahoo.actions, from_yahoo.rejected, from_yahoo.requests) == ([], [], 1)
    # Spelled as for bars: Polygon BRK.B, Yahoo BRK-B.
    assert {sent.param("ticker") for sent in polygon_server.requests} == {ticker}
    assert yahoo_server.requests[0].path == f"/v8/finance/chart/{ticker.replace('.', '-')}"


async def test_polygon_pages_are_each_paced_and_never_carry_the_key(client: httpx.AsyncClient) -> None:
    with PolygonServer(POLYGON_KEY, now=NOW, max_limit=2, public_base_url="https://api.polygon.io") as server:
        pace = PaceRecorder(server)
        result = await _polygon(client, server).fetch_actions(NVDA_TO_NOW, pace)
        sent = server.requests

    assert _unreferenced(result.actions) == _unreferenced(_emulated(NVDA_TO_NOW))
    dividend_pages = [r for r in sent if r.path == "/v3/reference/dividends"]
    assert len(dividend_pages) >= 3  # six dividends, two a page; every page reached the emulator
    assert result.requests == len(sent) == pace.calls
    assert pace.paced_every_request()  # one rate-limit slot per page
    for request in sent:
        assert request.header("authorization") == f"Bearer {POLYGON_KEY}"
        assert "apiKey" not in request.query and POLYGON_KEY not in request.target
    followed = [r for r in sent if "cursor" in r.query]
    assert len(followed) == len(sent) - 2  # every page after the first of each kind is a next_url


@pytest.mark.parametrize(
    ("fault", "error", "message"),
    [
        (Fault.rate_limited("7"), RateLimited, "HTTP 429"),
        (Fault.server_error(500), TransientError, "HTTP 500"),
        (Fault.server_error(503), TransientError, "HTTP 503"),
        (Fault.not_authorized(), NotCovered, "plan"),
        (Fault.malformed_json(), TransientError, "malformed JSON"),
        (Fault.truncated(), TransientError, "connection failed"),
        (Fault.provider_error(), TransientError, "HTTP 200"),
    ],
    ids=["429", "500", "503", "not-authorized", "malformed", "truncated", "status-error"],
)
@pytest.mark.parametrize("path", ["/v3/reference/splits", "/v3/reference/dividends"])
async def test_polygon_reference_errors_are_classified_as_for_bars(
    polygon_server: PolygonServer,
    client: httpx.AsyncClient,
    fault: Fault,
    error: type[ProviderError],
    message: str,
    path: str,
) -> None:
    polygon_server.inject(fault, path_prefix=path)

    with pytest.raises(error, match=message) as raised:
        await _polygon(client, polygon_server).fetch_actions(NVDA_TO_NOW, NO_PACE)
    assert type(raised.value) is error
    if isinstance(raised.value, RateLimited):
        assert raised.value.retry_after == 7.0
    assert polygon_server.requests[-1].path == path  # no request after the failure


async def test_polygon_wrong_or_missing_key_is_an_auth_error_naming_the_variable(
    polygon_server: PolygonServer, client: httpx.AsyncClient
) -> None:
    wrong = "pk-wrong-Yt6uI8oP0aS2"
    with pytest.raises(AuthError, match="polygon refused POLYGON_API_KEY") as raised:
        await PolygonProvider(client, polygon_server.base_url, wrong).fetch_actions(NVDA_TO_NOW, NO_PACE)
    assert wrong not in all_text(raised.value)

    pace = PaceRecorder(polygon_server)
    polygon_server.clear()
    with pytest.raises(AuthError, match="POLYGON_API_KEY is not set"):
        await PolygonProvider(client, polygon_server.base_url, None).fetch_actions(NVDA_TO_NOW, pace)
    assert (pace.calls, polygon_server.requests) == (0, [])


@pytest.mark.parametrize(
    ("fault", "error", "message"),
    [
        (Fault.rate_limited("12"), RateLimited, "HTTP 429"),
        (Fault.server_error(503), TransientError, "HTTP 503"),
        (Fault.unknown_ticker(), NotCovered, "Not Found"),
        (Fault.not_authorized(), AuthError, "yahoo refused the request"),
        (Fault.provider_error(), TransientError, "Internal Server Error"),
        (Fault.null_results(), TransientError, "chart.result is empty"),
        (Fault.malformed_json(), TransientError, "malformed JSON"),
    ],
    ids=["429", "503", "unknown-ticker", "crumb", "chart-error", "null-result", "malformed"],
)
async def test_yahoo_errors_are_classified_as_for_bars(
    yahoo_server: YahooServer,
    client: httpx.AsyncClient,
    fault: Fault,
    error: type[ProviderError],
    message: str,
) -> None:
    yahoo_server.inject(fault)

    with pytest.raises(error, match=message) as raised:
        await _yahoo(client, yahoo_server).fetch_actions(NVDA_TO_NOW, NO_PACE)
    assert type(raised.value) is error


async def test_polygon_invalid_actions_are_rejected_with_reasons(
    polygon_server: PolygonServer, client: httpx.AsyncClient
) -> None:
    polygon_server.inject(Fault.invalid_actions(), path_prefix="/v3/reference/", times=2)
    result = await _polygon(client, polygon_server).fetch_actions(NVDA_TO_NOW, NO_PACE)

    # One split in range: its split_to became 0. Six dividends: the first negative, the
    # second without cash_amount, the last without its ex-date.
    assert [row.reason for row in result.rejected] == [
        "split_to is not positive",
        "cash_amount is not positive",
        "cash_amount missing",
        "ex_dividend_date missing",
    ]
    expected = _unreferenced(_emulated(NVDA_TO_NOW))
    kept = [a for a in expected if a.kind == "dividend"][2:-1]
    assert _unreferenced(result.actions) == kept
    assert result.rejected[0].raw["split_to"] == 0  # verbatim
    assert all(POLYGON_KEY not in repr(row) for row in result.rejected)


async def test_yahoo_invalid_actions_are_rejected_with_reasons(
    yahoo_server: YahooServer, client: httpx.AsyncClient
) -> None:
    yahoo_server.inject(Fault.invalid_actions())
    result = await _yahoo(client, yahoo_server).fetch_actions(NVDA_TO_NOW, NO_PACE)

    assert [row.reason for row in result.rejected] == [
        "denominator is not positive",  # splitRatio "10:0"
        "amount is not positive",
        "date missing",
    ]
    expected = _unreferenced(_emulated(NVDA_TO_NOW, yahoo=True))
    kept = [a for a in expected if a.kind == "dividend"][1:-1]
    assert _unreferenced(result.actions) == kept


async def test_withheld_actions_are_not_reported(client: httpx.AsyncClient) -> None:
    with (
        PolygonServer(POLYGON_KEY, now=NOW, withheld_actions={"NVDA"}) as polygon,
        YahooServer(now=NOW, withheld_actions={"NVDA"}) as yahoo,
    ):
        from_polygon = await _polygon(client, polygon).fetch_actions(NVDA_TO_NOW, NO_PACE)
        from_yahoo = await _yahoo(client, yahoo).fetch_actions(NVDA_TO_NOW, NO_PACE)

    assert (from_polygon.actions, from_yahoo.actions) == ([], [])


async def test_the_key_never_appears_in_an_error_or_a_rejected_row(
    polygon_server: PolygonServer, client: httpx.AsyncClient
) -> None:
    faults = [
        Fault.rate_limited("3"),
        Fault.server_error(500),
        Fault.truncated(),
        Fault.malformed_json(),
        Fault.provider_error(),
        Fault.not_authorized(),
    ]
    provider = _polygon(client, polygon_server)
    errors: list[ProviderError] = []
    for fault in faults:
        polygon_server.inject(fault, path_prefix="/v3/reference/")
        with pytest.raises(ProviderError) as raised:
            await provider.fetch_actions(NVDA_TO_NOW, NO_PACE)
        errors.append(raised.value)
    polygon_server.api_key = "rotated-elsewhere"
    with pytest.raises(AuthError) as refused:
        await provider.fetch_actions(NVDA_TO_NOW, NO_PACE)
    errors.append(refused.value)

    def echo(request: RecordedRequest) -> object:  # a proxy that repeats the header it got
        return Reply.json({"status": "ERROR", "error": f"refused {request.header('authorization')}"}, 502)

    with _Canned(echo) as proxy, pytest.raises(TransientError) as echoed:
        await _polygon(client, proxy).fetch_actions(NVDA_TO_NOW, NO_PACE)
    errors.append(echoed.value)

    assert "***" in str(echoed.value)
    for error in errors:
        assert POLYGON_KEY not in all_text(error)
    assert all(POLYGON_KEY not in request.target for request in polygon_server.requests)
    assert POLYGON_KEY not in repr(provider)
