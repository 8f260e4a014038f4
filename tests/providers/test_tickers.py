"""Share classes: pgbars stores BRK.B; each provider's request carries its own spelling.

Polygon writes BRK.B, Yahoo BRK-B (its dot names another exchange), Tradier BRK/B
(docs/database.md#tickers). The emulators serve one market per company whatever
the spelling, and answer the other spellings as an unknown ticker, as the real
services do: a provider that sent the stored spelling unchanged would get no bars.
"""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from tests.providers.helpers import NO_PACE, POLYGON_KEY, TRADIER_TOKEN
from worker.emulator import PolygonServer, TradierServer, YahooServer, synthetic
from worker.providers import FetchRequest, PolygonProvider, TradierProvider, YahooProvider
from worker.providers.types import spell_ticker

D = dt.date
FIRST, LAST = D(2024, 11, 25), D(2024, 11, 29)  # 4 sessions: Thanksgiving is closed


def _market(ticker: str, timeframe: str) -> list[tuple[object, ...]]:
    """What the emulated market holds for `ticker` (the stored spelling): ts, open, high, low, close."""
    return [(b.ts, b.open, b.high, b.low, b.close) for b in synthetic.bars(ticker, timeframe, FIRST, LAST)]


def test_spell_ticker_writes_the_class_separator_and_leaves_the_rest() -> None:
    assert spell_ticker("BRK.B", "-") == "BRK-B"
    assert spell_ticker("BRK.B", "/") == "BRK/B"
    assert spell_ticker("BRK.B", ".") == "BRK.B"
    assert spell_ticker("AAPL", "-") == "AAPL"
    assert spell_ticker("ABCDEFGHIJ.WS12", "/") == "ABCDEFGHIJ/WS12"


async def test_polygon_asks_for_brk_dot_b(polygon_server: PolygonServer, client: httpx.AsyncClient) -> None:
    request = FetchRequest.for_sessions("BRK.B", "d1", FIRST, LAST)
    result = await PolygonProvider(client, polygon_server.base_url, POLYGON_KEY).fetch(request, NO_PACE)
    (sent,) = polygon_server.requests
    assert sent.path == f"/v2/aggs/ticker/BRK.B/range/1/day/{FIRST}/{LAST}"
    assert [(b.ts, b.open, b.high, b.low, b.close) for b in result.bars] == _market("BRK.B", "d1")
    assert len(result.bars) == 4


async def test_yahoo_asks_for_brk_dash_b(yahoo_server: YahooServer, client: httpx.AsyncClient) -> None:
    request = FetchRequest.for_sessions("BRK.B", "d1", FIRST, LAST)
    result = await YahooProvider(client, yahoo_server.base_url, None).fetch(request, NO_PACE)
    (sent,) = yahoo_server.requests
    assert sent.path == "/v8/finance/chart/BRK-B"
    assert [(b.ts, b.open, b.high, b.low, b.close) for b in result.bars] == _market("BRK.B", "d1")
    assert len(result.bars) == 4


@pytest.mark.parametrize("timeframe", ["d1", "m15"])
async def test_tradier_asks_for_brk_slash_b(
    tradier_server: TradierServer, client: httpx.AsyncClient, timeframe: str
) -> None:
    request = FetchRequest.for_sessions("BRK.B", timeframe, FIRST, LAST)
    result = await TradierProvider(client, tradier_server.base_url, TRADIER_TOKEN).fetch(request, NO_PACE)
    (sent,) = tradier_server.requests
    assert sent.param("symbol") == "BRK/B"
    assert "symbol=BRK%2FB" in sent.target  # encoded in the query, never a path segment
    assert [(b.ts, b.open, b.high, b.low, b.close) for b in result.bars] == _market("BRK.B", timeframe)
    assert result.bars


async def test_the_emulators_refuse_the_other_providers_spellings(
    polygon_server: PolygonServer,
    yahoo_server: YahooServer,
    tradier_server: TradierServer,
    client: httpx.AsyncClient,
) -> None:
    """Why the spelling matters: each service knows a share class under its own spelling only."""
    auth = {"Authorization": f"Bearer {POLYGON_KEY}"}
    for ticker in ("BRK-B", "BRK%2FB"):
        answer = await client.get(
            f"{polygon_server.base_url}/v2/aggs/ticker/{ticker}/range/1/day/{FIRST}/{LAST}", headers=auth
        )
        assert (answer.status_code, answer.json()["status"]) == (404, "NOT_FOUND"), ticker
    answer = await client.get(
        f"{yahoo_server.base_url}/v8/finance/chart/BRK.B",
        params={"interval": "1d", "period1": "1732500000", "period2": "1732900000"},
    )
    assert answer.status_code == 404 and "No data found" in answer.text
    for symbol in ("BRK.B", "BRK-B"):
        answer = await client.get(
            f"{tradier_server.base_url}/v1/markets/history",
            params={"symbol": symbol, "interval": "daily", "start": str(FIRST), "end": str(LAST)},
            headers={"Authorization": f"Bearer {TRADIER_TOKEN}", "Accept": "application/json"},
        )
        assert answer.status_code == 200 and not (answer.json().get("history") or {}).get("day"), symbol
