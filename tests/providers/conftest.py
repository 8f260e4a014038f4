"""Provider tests: the real httpx client against the emulated provider servers."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from typing import TypeVar

import httpx
import pytest

from tests.providers.helpers import NOW, POLYGON_KEY, TRADIER_TOKEN
from worker.emulator import EmulatorServer, PolygonServer, TradierServer, YahooServer

ServerT = TypeVar("ServerT", bound=EmulatorServer)


def _running(server: ServerT) -> Iterator[ServerT]:
    with server:
        yield server
    assert server.errors == [], "the emulator itself failed:\n" + "\n".join(server.errors)


@pytest.fixture
def polygon_server() -> Iterator[PolygonServer]:
    yield from _running(PolygonServer(POLYGON_KEY, now=NOW))


@pytest.fixture
def yahoo_server() -> Iterator[YahooServer]:
    yield from _running(YahooServer(now=NOW))


@pytest.fixture
def tradier_server() -> Iterator[TradierServer]:
    yield from _running(TradierServer(TRADIER_TOKEN, now=NOW))


@pytest.fixture(scope="session")
def tls() -> ssl.SSLContext:
    """One TLS context for every client: building one per client costs ~40 ms (CA bundle)."""
    return ssl.create_default_context()


@pytest.fixture
async def client(tls: ssl.SSLContext) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0, verify=tls) as http:
        yield http
