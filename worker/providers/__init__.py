"""Market data providers: HTTP and parsing only, returning bars on the pgbars grid."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from ..errors import (
    AuthError,
    Misconfigured,
    NotCovered,
    ProviderError,
    RateLimited,
    TransientError,
    Unreachable,
)
from ..providers import polygon, tradier, yahoo
from ..providers.http import base_url_problem
from ..providers.polygon import PolygonProvider
from ..providers.tradier import TradierProvider
from ..providers.types import (
    TIMEFRAMES,
    ActionSource,
    ActionsRequest,
    ActionsResult,
    Bar,
    CorporateAction,
    FetchRequest,
    FetchResult,
    Pace,
    Provider,
    RawRow,
)
from ..providers.yahoo import YahooProvider

__all__ = [
    "CREDENTIALS",
    "TIMEFRAMES",
    "ActionSource",
    "ActionsRequest",
    "ActionsResult",
    "AuthError",
    "Bar",
    "CorporateAction",
    "FetchRequest",
    "FetchResult",
    "Misconfigured",
    "NotCovered",
    "Pace",
    "PolygonProvider",
    "Provider",
    "ProviderError",
    "RateLimited",
    "RawRow",
    "TradierProvider",
    "TransientError",
    "Unreachable",
    "YahooProvider",
    "action_source",
    "build_providers",
    "misconfigured_providers",
]

# The environment variable each provider needs (Yahoo needs none).
CREDENTIALS: dict[str, str] = {
    cls.name: cls.credential_name
    for cls in (PolygonProvider, TradierProvider, YahooProvider)
    if cls.credential_name is not None
}


_Concrete = PolygonProvider | TradierProvider | YahooProvider
_DEFAULT_BASE_URLS: dict[type[_Concrete], str] = {
    YahooProvider: yahoo.DEFAULT_BASE_URL,
    PolygonProvider: polygon.DEFAULT_BASE_URL,
    TradierProvider: tradier.DEFAULT_BASE_URL,
}


def _setting(env: Mapping[str, str], name: str | None) -> str | None:
    value = env.get(name, "").strip() if name else ""
    return value or None


def _wanted(env: Mapping[str, str]) -> list[tuple[type[_Concrete], str | None]]:
    """The providers this environment asks for, with their credential: Yahoo needs none,
    Polygon and Tradier are left out without POLYGON_API_KEY / TRADIER_TOKEN."""
    wanted: list[tuple[type[_Concrete], str | None]] = []
    for cls in _DEFAULT_BASE_URLS:
        credential = _setting(env, cls.credential_name)
        if cls.credential_name is None or credential:
            wanted.append((cls, credential))
    return wanted


def misconfigured_providers(env: Mapping[str, str]) -> dict[str, str]:
    """Providers this environment asks for whose *_BASE_URL cannot be used, with why.

    The reason names the variable and at most the value's scheme, never the value
    (a URL may carry a password). An empty variable means the provider's default.
    """
    problems: dict[str, str] = {}
    for cls, _ in _wanted(env):
        value = _setting(env, cls.base_url_setting)
        problem = base_url_problem(value) if value else None
        if problem:
            problems[cls.name] = (
                f"{cls.base_url_setting} {problem} (an http(s) URL with a host is needed);"
                f" {cls.name} is not used in this run"
            )
    return problems


def build_providers(
    client: httpx.AsyncClient, env: Mapping[str, str], *, total_seconds: float | None = None
) -> dict[str, Provider]:
    """The providers usable with this environment, by name.

    Yahoo needs no credential; Polygon and Tradier are left out without
    POLYGON_API_KEY / TRADIER_TOKEN. *_BASE_URL point a provider elsewhere; a
    provider whose base URL is not an http(s) URL with a host is left out too
    (`misconfigured_providers` says why). `total_seconds` bounds each request.
    """
    bad = misconfigured_providers(env)
    providers: dict[str, Provider] = {}
    for cls, credential in _wanted(env):
        if cls.name not in bad:
            base_url = _setting(env, cls.base_url_setting) or _DEFAULT_BASE_URLS[cls]
            providers[cls.name] = cls(client, base_url, credential, total_seconds=total_seconds)
    return providers


def action_source(provider: Provider) -> ActionSource | None:
    """`provider` as a source of corporate actions, or None when it reports none (Tradier)."""
    return provider if isinstance(provider, PolygonProvider | YahooProvider) else None
