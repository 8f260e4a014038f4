"""Provider tests: the real httpx client against the emulated provider servers."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.providers.helpers import NOW, POLYGON_KEY, TRADIER_TOKEN, serving
from worker.emulator import PolygonServer, TradierServer, YahooServer


@pytest.fixture
def polygon_server() -> Iterator[PolygonServer]:
    yield from serving(PolygonServer(POLYGON_KEY, now=NOW))


@pytest.fixture
def yahoo_server() -> Iterator[YahooServer]:
    yield from serving(YahooServer(now=NOW))


@pytest.fixture
def tradier_server() -> Iterator[TradierServer]:
    yield from serving(TradierServer(TRADIER_TOKEN, now=NOW))


@pytest.fixture(scope="session")
def tls() -> ssl.SSLContext:
    """One TLS context for every client: building one per client costs ~40 ms (CA bundle)."""
    return ssl.create_default_context()


@pytest.fixture
async def client(tls: ssl.SSLContext) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0, verify=tls) as http:
        yield http
