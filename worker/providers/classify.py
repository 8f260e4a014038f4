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

import httpx

from ..errors import AuthError, NotCovered, ProviderError, RateLimited, TransientError

__all__ = ["ErrorReply", "classify_failure", "parse_retry_after"]

_DETAIL_LIMIT = 300


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """An answer that is an error: a non-2xx status, or an error inside a 2xx body."""

    status: int
    body: object  # parsed JSON when the body was JSON, else its text
    retry_after: str | None = None
    detail: str | None = None  # what the caller found wrong, when the body does not say

    @classmethod
    def from_response(cls, response: httpx.Response) -> ErrorReply:
        body: object
        try:
            body = json.loads(response.content)
        except ValueError:
            body = response.text
        return cls(response.status_code, body, response.headers.get("retry-after"))


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
    failure: httpx.HTTPError | ErrorReply | ValueError,
    *,
    credential_name: str | None = None,
    secret: str | None = None,
) -> ProviderError:
    """Map a failed exchange to the error class the worker acts on. The one place that does.

    `secret` is scrubbed from every message, in case a provider or a proxy echoes it.
    """
    if isinstance(failure, ValueError):
        return TransientError(_redact(f"{provider}: malformed JSON ({failure})", secret))
    if isinstance(failure, httpx.HTTPError):
        what = _redact(f"{type(failure).__name__}: {failure}", secret)
        if isinstance(failure, httpx.TimeoutException):
            return TransientError(f"{provider}: request timed out ({what})")
        if isinstance(
            failure,
            httpx.NetworkError | httpx.RemoteProtocolError | httpx.ProxyError | httpx.DecodingError,
        ):
            return TransientError(f"{provider}: connection failed ({what})")
        return ProviderError(f"{provider}: request failed ({what})")

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
