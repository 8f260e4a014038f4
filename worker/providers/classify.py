"""The one place that decides what a failed exchange with a provider means for the work.

Every provider maps its HTTP errors, error bodies and broken JSON through
`classify_failure`, so the same answer is the same error class (worker.errors)
whichever provider gave it, and no credential reaches a message.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import math
from dataclasses import dataclass
from typing import Literal

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

__all__ = ["Abandoned", "ErrorReply", "classify_failure", "parse_retry_after"]

_DETAIL_LIMIT = 300

# Why pgbars itself cut an exchange short (worker/providers/http.py, polygon.py).
AbandonReason = Literal["too_large", "too_slow", "no_answer", "too_many_pages", "undecodable"]


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """An answer that is an error: a non-2xx status, or an error inside a 2xx body."""

    status: int
    body: object  # parsed JSON when the body was JSON, else its text
    retry_after: str | None = None
    detail: str | None = None  # what the caller found wrong, when the body does not say

    @classmethod
    def from_body(cls, response: httpx.Response, content: bytes | bytearray) -> ErrorReply:
        """The reply of a streamed `response` whose (decoded, possibly cut) body is `content`."""
        body: object
        try:
            body = json.loads(content)
        except ValueError:
            body = content.decode(response.encoding or "utf-8", errors="replace")
        return cls(response.status_code, body, response.headers.get("retry-after"))


@dataclass(frozen=True, slots=True)
class Abandoned:
    """An exchange pgbars cut short itself: why, and the figures (never a URL or a secret).

    too_large, too_many_pages: the same request would get the same answer (permanent);
    too_slow, undecodable: an answer that may come whole next time (transient);
    no_answer: no status line within the request's total bound (unreachable).
    """

    reason: AbandonReason
    detail: str


def _read_error_body(body: object) -> tuple[bool, str]:
    """What a provider's error body says: (asking again cannot help, its message)."""
    if isinstance(body, str):
        return False, body
    if not isinstance(body, dict):
        return False, ""
    status = body.get("status")  # Polygon
    message = str(body.get("message") or body.get("error") or "")
    if status in ("NOT_AUTHORIZED", "NOT_FOUND"):
        return True, message or str(status)
    if status == "ERROR":
        return False, message or "status ERROR"
    for outer in ("chart", "finance"):  # Yahoo
        section = body.get(outer)
        error = section.get("error") if isinstance(section, dict) else None
        if isinstance(error, dict):
            code = str(error.get("code") or "")
            description = str(error.get("description") or "")
            lowered = description.lower()
            # "Not Found" is an unknown symbol; "data not available ... within the last
            # 60 days" is a lookback limit: asking again will not change either.
            not_covered = code == "Not Found" or "no data" in lowered or "not available" in lowered
            return not_covered, f"{code}: {description}".strip(": ")
    fault = body.get("fault")  # Tradier
    if isinstance(fault, dict):
        return False, str(fault.get("faultstring") or "")
    errors = body.get("errors")
    if isinstance(errors, dict):
        return False, str(errors.get("error") or "")
    return False, message


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP-date."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        now = now or dt.datetime.now(dt.UTC)
        return max(0.0, (when - now).total_seconds())
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _redact(text: str, secret: str | None) -> str:
    # Scrub before shortening, so a cut cannot leave half a secret behind.
    if secret:
        text = text.replace(secret, "***")
    return " ".join(text.split())[:_DETAIL_LIMIT]


def classify_failure(
    provider: str,
    failure: httpx.HTTPError | httpx.InvalidURL | ErrorReply | Abandoned | ValueError,
    *,
    answered: bool = False,
    credential_name: str | None = None,
    base_url_name: str | None = None,
    secret: str | None = None,
) -> ProviderError:
    """Map a failed exchange to the error class the worker acts on. The one place that does.

    `answered`: whether an HTTP status line had arrived before an httpx error (a
    failure before it means the provider was not reached at all). `secret` is
    scrubbed from every message, in case a provider or a proxy echoes it.
    """
    if isinstance(failure, ValueError):
        return TransientError(_redact(f"{provider}: malformed JSON ({failure})", secret))
    if isinstance(failure, Abandoned):
        text = _redact(f"{provider}: {failure.detail}", secret)
        if failure.reason == "no_answer":
            return Unreachable(text)
        if failure.reason in ("too_slow", "undecodable"):
            return TransientError(text)
        return ProviderError(text)
    if isinstance(failure, httpx.InvalidURL | httpx.UnsupportedProtocol):
        # Not httpx's text: it may quote the URL, userinfo and all.
        setting = f"; check {base_url_name}" if base_url_name else ""
        return Misconfigured(
            f"{provider}: the request URL cannot be used ({type(failure).__name__}){setting}"
        )
    if isinstance(failure, httpx.HTTPError):
        return _transport_failure(provider, failure, answered, secret)

    status = failure.status
    not_covered, message = _read_error_body(failure.body)
    detail = _redact(": ".join(part for part in (failure.detail, message) if part), secret)
    text = f"{provider}: HTTP {status}" + (f": {detail}" if detail else "")
    if status == 429:
        return RateLimited(text, parse_retry_after(failure.retry_after))
    if status == 401 or (status == 403 and not not_covered):
        who = f"refused {credential_name}" if credential_name else "refused the request"
        return AuthError(f"{provider} {who} (HTTP {status}" + (f": {detail})" if detail else ")"))
    if not_covered or status == 404:
        return NotCovered(text)
    if status == 408 or status >= 500 or status < 300:
        # < 300: an error inside a successful answer (Polygon status ERROR or null
        # results, Yahoo chart.error): the provider's own hiccup, worth a retry.
        return TransientError(text)
    return ProviderError(text)


def _transport_failure(
    provider: str, failure: httpx.HTTPError, answered: bool, secret: str | None
) -> ProviderError:
    """An httpx error: before the status line the provider was not reached (Unreachable);
    after it, the answer broke off (TransientError, an attempt spent)."""
    what = _redact(f"{type(failure).__name__}: {failure}", secret)
    broken = httpx.NetworkError | httpx.RemoteProtocolError | httpx.ProxyError
    if isinstance(failure, httpx.TimeoutException):
        if answered:
            return TransientError(f"{provider}: request timed out while reading the answer ({what})")
        return Unreachable(f"{provider}: unreachable, request timed out without an answer ({what})")
    if isinstance(failure, broken):
        if answered:
            return TransientError(f"{provider}: connection failed while reading the answer ({what})")
        return Unreachable(f"{provider}: unreachable, connection failed ({what})")
    if isinstance(failure, httpx.DecodingError):
        return TransientError(f"{provider}: answer could not be decoded ({what})")
    return ProviderError(f"{provider}: request failed ({what})")
