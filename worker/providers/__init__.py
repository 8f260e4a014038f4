"""Market data providers: HTTP and parsing only, returning bars on the pgbars grid."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from ..errors import AuthError, NotCovered, ProviderError, RateLimited, TransientError
from ..providers import polygon, tradier, yahoo
from ..providers.polygon import PolygonProvider
from ..providers.tradier import TradierProvider
from ..providers.types import TIMEFRAMES, Bar, FetchRequest, FetchResult, Pace, Provider, RawRow
from ..providers.yahoo import YahooProvider

__all__ = [
    "CREDENTIALS",
    "TIMEFRAMES",
    "AuthError",
    "Bar",
    "FetchRequest",
    "FetchResult",
    "NotCovered",
    "Pace",
    "PolygonProvider",
    "Provider",
    "ProviderError",
    "RateLimited",
    "RawRow",
    "TradierProvider",
    "TransientError",
    "YahooProvider",
    "build_providers",
]

# The environment variable each provider needs (Yahoo needs none).
CREDENTIALS: dict[str, str] = {
    cls.name: cls.credential_name
    for cls in (PolygonProvider, TradierProvider, YahooProvider)
    if cls.credential_name is not None
}


def _setting(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def build_providers(client: httpx.AsyncClient, env: Mapping[str, str]) -> dict[str, Provider]:
    """The providers usable with this environment, by name.

    Yahoo needs no credential; Polygon and Tradier are left out without
    POLYGON_API_KEY / TRADIER_TOKEN. *_BASE_URL point a provider elsewhere.
    """
    providers: dict[str, Provider] = {
        "yahoo": YahooProvider(client, _setting(env, "YAHOO_BASE_URL") or yahoo.DEFAULT_BASE_URL, None)
    }
    polygon_key = _setting(env, "POLYGON_API_KEY")
    if polygon_key:
        providers["polygon"] = PolygonProvider(
            client, _setting(env, "POLYGON_BASE_URL") or polygon.DEFAULT_BASE_URL, polygon_key
        )
    tradier_token = _setting(env, "TRADIER_TOKEN")
    if tradier_token:
        providers["tradier"] = TradierProvider(
            client, _setting(env, "TRADIER_BASE_URL") or tradier.DEFAULT_BASE_URL, tradier_token
        )
    return providers
