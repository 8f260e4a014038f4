"""The HTTP part every concrete provider shares: headers, timeouts, bounds, pacing, error mapping.

Kept apart from the data types and the sieve so that only what talks to a
provider depends on httpx's client; a provider subclasses `HttpProvider` and
adds its own URLs and parsing.

Every answer is bounded: its decoded size (`max_bytes`, decompression counted
as it happens, never more than `_INFLATE_STEP` bytes inflated at once) and the
request's total time (`total_seconds`, on top of httpx's per-read timeout, so a
body dripping a byte at a time cannot hold a lease for the whole run).
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Iterator, Mapping
from urllib.parse import urlsplit

import httpx

from ..errors import AuthError, Misconfigured, NotCovered, ProviderError
from ..providers.classify import Abandoned, ErrorReply, classify_failure
from ..providers.types import FetchRequest, Pace

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TOTAL_SECONDS",
    "HttpProvider",
    "base_url_problem",
    "describe_size",
]

# Used when the caller's client has no read timeout: a provider request must never hang.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# The largest decoded answer taken: a full Polygon page (50,000 bars) is about 6 MiB.
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
# The longest one request may take, connect to last byte.
DEFAULT_TOTAL_SECONDS = 60.0
# Of an error answer only the message matters: the rest is cut, not refused.
_ERROR_BODY_BYTES = 64 * 1024
# Decompressed bytes produced per step: what a compressed answer can cost beyond the cap.
_INFLATE_STEP = 256 * 1024
# What the providers are asked for; answers in other encodings are refused (see _Inflater).
_ACCEPT_ENCODING = "gzip, deflate"


def describe_size(size: int) -> str:
    """`33554432` as '32 MiB', for messages."""
    for unit, factor in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def base_url_problem(value: str) -> str | None:
    """What is wrong with a base URL, or None when it is an http(s) URL with a host.

    Says only the scheme, never the value: a URL may carry a password.
    """
    try:
        parts = urlsplit(value)
        host = parts.hostname
        _ = parts.port  # raises ValueError on a port that is not a number
    except ValueError:
        return "is not a URL"
    if parts.scheme.lower() not in ("http", "https"):
        scheme = repr(parts.scheme) if parts.scheme else "none"
        return f"has scheme {scheme}, not http or https"
    if not host:
        return "has no host"
    return None


class _Inflater:
    """Undoes a Content-Encoding (identity, gzip or deflate), at most `step` bytes per piece.

    httpx's own decoding (`aiter_bytes`) inflates each network read whole: 64 KiB
    of a gzip bomb become 64 MiB before they can be counted. Here each piece is
    bounded, so an answer over the cap costs at most the cap plus one step.
    """

    def __init__(self, encoding: str, step: int) -> None:
        self.encoding = encoding.strip().lower()
        self._step = step
        self._raw_deflate_tried = False
        self._z: zlib._Decompress | None
        if self.encoding in ("", "identity"):
            self._z = None
        elif self.encoding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif self.encoding == "deflate":
            self._z = zlib.decompressobj()  # zlib-wrapped, as the RFC says; raw deflate below
        else:
            raise ValueError(self.encoding)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._z is None:
            if data:
                yield data
            return
        while data:
            try:
                piece = self._z.decompress(data, self._step)
            except zlib.error:
                if self.encoding != "deflate" or self._raw_deflate_tried:
                    raise
                # Some servers send raw deflate without the zlib wrapper (httpx accepts it too).
                self._raw_deflate_tried = True
                self._z = zlib.decompressobj(-zlib.MAX_WBITS)
                continue
            self._raw_deflate_tried = True
            data = self._z.unconsumed_tail
            if self._z.eof:
                trailing = self._z.unused_data
                if trailing and self.encoding != "deflate":
                    self._z = zlib.decompressobj(zlib.MAX_WBITS | 16)  # the next gzip member
                    data = trailing
            if piece:
                yield piece

    def flush(self) -> bytes:
        if self._z is None:
            return b""
        if not self._z.eof:
            raise zlib.error("the compressed stream ends early")
        return self._z.flush()


class HttpProvider:
    """Base of the concrete providers: headers, timeouts, bounds, pacing and error mapping.

    The credential lives only in this object's private attribute and in request
    headers; `repr()` and every error message leave it out. `max_bytes` and
    `total_seconds` bound each answer (class defaults, or per instance).
    """

    name: str = "provider"
    credential_name: str | None = None
    base_url_setting: str | None = None  # the environment variable that points the provider elsewhere
    timeframes: frozenset[str] = frozenset()
    max_bytes: int = DEFAULT_MAX_BYTES
    total_seconds: float = DEFAULT_TOTAL_SECONDS

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        credential: str | None,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_bytes: int | None = None,
        total_seconds: float | None = None,
    ) -> None:
        self._client = client
        self.base_url = base_url.rstrip("/")
        self._base_url_problem = base_url_problem(self.base_url)
        self._credential = credential or None
        if timeout is not None:
            self._timeout: httpx.Timeout = httpx.Timeout(timeout)
        elif client.timeout.read is None:
            self._timeout = DEFAULT_TIMEOUT
        else:
            self._timeout = client.timeout
        if max_bytes is not None:
            self.max_bytes = max_bytes
        if total_seconds is not None:
            self.total_seconds = total_seconds

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def supports(self, timeframe: str) -> bool:
        return timeframe in self.timeframes

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "Accept-Encoding": _ACCEPT_ENCODING}
        if self._credential:
            headers["Authorization"] = f"Bearer {self._credential}"
        return headers

    def _check_ready(self) -> None:
        """Refuse before any request when no request could succeed: no credential, a bad base URL."""
        if self.credential_name and not self._credential:
            raise AuthError(f"{self.name}: {self.credential_name} is not set")
        if self._base_url_problem:
            # build_providers leaves such a provider out; this guards any other caller.
            raise Misconfigured(
                f"{self.name}: {self.base_url_setting or 'the base URL'} {self._base_url_problem}"
            )

    def _check_request(self, request: FetchRequest) -> None:
        self._check_ready()
        if not self.supports(request.timeframe):
            raise NotCovered(f"{self.name} does not serve {request.timeframe} on the pgbars grid")

    def _error(
        self,
        failure: httpx.HTTPError | httpx.InvalidURL | ErrorReply | Abandoned | ValueError,
        *,
        answered: bool = False,
    ) -> ProviderError:
        return classify_failure(
            self.name,
            failure,
            answered=answered,
            credential_name=self.credential_name,
            base_url_name=self.base_url_setting,
            secret=self._credential,
        )

    async def _get_json(self, url: str, params: Mapping[str, str] | None, pace: Pace) -> object:
        """One paced GET, bounded in size and time; the decoded JSON body, or a ProviderError.

        `pace.answered` gets the status as soon as the status line arrives (None
        when none did), so the ledger tells an unreachable provider from one that
        answered, whatever happens to the body afterwards.
        """
        await pace()
        answered = False
        try:
            async with asyncio.timeout(self.total_seconds):
                async with self._client.stream(
                    "GET", url, params=params, headers=self._headers(), timeout=self._timeout
                ) as response:
                    answered = True
                    pace.answered(response.status_code)
                    if not 200 <= response.status_code < 300:
                        error_body = await self._read_body(response, _ERROR_BODY_BYTES, cut=True)
                        raise self._error(ErrorReply.from_body(response, error_body))
                    content = await self._read_body(response, self.max_bytes, cut=False)
        except TimeoutError:
            if not answered:
                pace.answered(None)
                raise self._error(
                    Abandoned("no_answer", f"no answer within {self.total_seconds:g} s")
                ) from None
            raise self._error(
                Abandoned("too_slow", f"answer not complete within {self.total_seconds:g} s, abandoned")
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            if not answered:
                pace.answered(None)
            # `from None`: the httpx exception holds the request, headers included.
            raise self._error(exc, answered=answered) from None
        try:
            return json.loads(content)
        except ValueError as exc:
            raise self._error(exc) from None

    async def _read_body(self, response: httpx.Response, limit: int, *, cut: bool) -> bytearray:
        """The decoded body of a streamed `response`, counted as it is inflated.

        Past `limit` bytes it is abandoned (a ProviderError), or with `cut` simply
        cut there (an error answer, whose status already says what matters).
        """
        encoding = response.headers.get("content-encoding", "")
        try:
            inflater = _Inflater(encoding, _INFLATE_STEP)
        except ValueError:
            raise self._error(
                Abandoned("undecodable", f"answer in an encoding pgbars did not ask for ({encoding[:40]!r})")
            ) from None
        too_large = Abandoned("too_large", f"answer larger than {describe_size(limit)}, abandoned")
        declared = response.headers.get("content-length", "")
        if inflater.encoding in ("", "identity") and declared.isdigit() and int(declared) > limit and not cut:
            raise self._error(too_large)
        body = bytearray()
        try:
            async for raw in response.aiter_raw():
                for piece in inflater.feed(raw):
                    if len(body) + len(piece) > limit:
                        if cut:
                            body += piece[: limit - len(body)]
                            return body
                        raise self._error(too_large)
                    body += piece
            tail = inflater.flush()
            if len(body) + len(tail) > limit and not cut:
                raise self._error(too_large)
            body += tail[: limit - len(body)]
        except zlib.error as exc:
            raise self._error(Abandoned("undecodable", f"answer could not be decoded ({exc})")) from None
        return body
