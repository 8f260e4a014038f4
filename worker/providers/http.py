"""The HTTP part every concrete provider shares: headers, timeouts, pacing, error mapping.

Kept apart from the data types and the sieve so that only what talks to a
provider depends on httpx's client; a provider subclasses `HttpProvider` and
adds its own URLs and parsing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import httpx

from ..errors import AuthError, NotCovered, ProviderError
from ..providers.classify import ErrorReply, classify_failure
from ..providers.types import FetchRequest, Pace

__all__ = ["DEFAULT_TIMEOUT", "HttpProvider"]

# Used when the caller's client has no read timeout: a provider request must never hang.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class HttpProvider:
    """Base of the concrete providers: headers, timeouts, pacing and error mapping.

    The credential lives only in this object's private attribute and in request
    headers; `repr()` and every error message leave it out.
    """

    name: str = "provider"
    credential_name: str | None = None
    timeframes: frozenset[str] = frozenset()

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        credential: str | None,
        *,
        timeout: float | httpx.Timeout | None = None,
    ) -> None:
        self._client = client
        self.base_url = base_url.rstrip("/")
        self._credential = credential or None
        if timeout is not None:
            self._timeout: httpx.Timeout = httpx.Timeout(timeout)
        elif client.timeout.read is None:
            self._timeout = DEFAULT_TIMEOUT
        else:
            self._timeout = client.timeout

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def supports(self, timeframe: str) -> bool:
        return timeframe in self.timeframes

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._credential:
            headers["Authorization"] = f"Bearer {self._credential}"
        return headers

    def _check_request(self, request: FetchRequest) -> None:
        if self.credential_name and not self._credential:
            raise AuthError(f"{self.name}: {self.credential_name} is not set")
        if not self.supports(request.timeframe):
            raise NotCovered(f"{self.name} does not serve {request.timeframe} on the pgbars grid")

    def _error(self, failure: httpx.HTTPError | ErrorReply | ValueError) -> ProviderError:
        return classify_failure(
            self.name, failure, credential_name=self.credential_name, secret=self._credential
        )

    async def _get_json(self, url: str, params: Mapping[str, str] | None, pace: Pace) -> object:
        """One paced GET; returns the decoded JSON body or raises a ProviderError."""
        await pace()
        try:
            response = await self._client.get(
                url, params=params, headers=self._headers(), timeout=self._timeout
            )
        except httpx.HTTPError as exc:
            pace.answered(None)
            # `from None`: the httpx exception holds the request, headers included.
            raise self._error(exc) from None
        pace.answered(response.status_code)
        if not 200 <= response.status_code < 300:
            raise self._error(ErrorReply.from_response(response)) from None
        try:
            return json.loads(response.content)
        except ValueError as exc:
            raise self._error(exc) from None
