"""What every provider shares: the bar types, the protocol, the errors and their one classifier.

A provider turns a `FetchRequest` (one chunk: ticker, timeframe, sessions) into
a `FetchResult`: bars already on the pgbars grid plus the rows it could not use,
kept for quarantine. Providers do HTTP and parsing only; they never touch the
database (the worker owns that) and never decide what to fetch.
"""

from __future__ import annotations

import bisect
import datetime as dt
import email.utils
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import httpx

from worker.providers.grid import (
    INTRADAY_MINUTES,
    TIMEFRAMES,
    is_on_grid,
    new_york_date,
    sessions_between,
    trading_week_monday,
)

__all__ = [
    "TIMEFRAMES",
    "AuthError",
    "Bar",
    "BarSieve",
    "ErrorReply",
    "FetchRequest",
    "FetchResult",
    "HttpProvider",
    "NotCovered",
    "Pace",
    "Provider",
    "ProviderError",
    "RateLimited",
    "RawRow",
    "TransientError",
    "classify_failure",
    "parse_retry_after",
]

# Used when the caller's client has no read timeout: a provider request must never hang.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
_DETAIL_LIMIT = 300


class Bar(NamedTuple):
    """One bar already mapped onto the pgbars grid (see worker.providers.grid).

    A tuple in the column order of the worker's staging table, so COPY writes
    it as it is.
    """

    ts: dt.datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float | None
    trade_count: int | None


@dataclass(frozen=True, slots=True)
class RawRow:
    """A provider row that could not become a Bar, kept verbatim for quarantine."""

    raw: dict[str, object]
    reason: str
    ts: dt.datetime | None = None  # where the row claimed to be, when that was readable


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """One chunk: bars with start in [start, end) for the sessions first..last."""

    ticker: str
    timeframe: str
    start: dt.datetime
    end: dt.datetime
    first_session: dt.date
    last_session: dt.date

    @classmethod
    def for_sessions(
        cls, ticker: str, timeframe: str, first_session: dt.date, last_session: dt.date
    ) -> FetchRequest:
        """The request covering pre-market of `first_session` to after-hours of `last_session`."""
        sessions = sessions_between(first_session, last_session)
        if not sessions:
            raise ValueError(f"no XNYS session between {first_session} and {last_session}")
        return cls(
            ticker=ticker,
            timeframe=timeframe,
            start=sessions[0].premarket_open,
            end=sessions[-1].after_hours_close,
            first_session=first_session,
            last_session=last_session,
        )


@dataclass(slots=True)
class FetchResult:
    provider: str
    bars: list[Bar]
    rejected: list[RawRow]
    requests: int  # HTTP requests made, every page counted


class Pace(Protocol):
    """Brackets every HTTP request of a fetch, pagination pages included.

    The worker's implementation reserves a rate-limit slot in the database
    and sleeps until it, then records the answer in the call ledger.
    """

    async def __call__(self) -> None:
        """Before the request: wait for its slot."""

    def answered(self, status: int | None) -> None:
        """After it: the HTTP status, or None when no response arrived."""


class ProviderError(Exception):
    """Base of every provider failure. Its text never contains a credential.

    Raised as-is (not a subclass) when the provider refused the request as
    malformed (e.g. HTTP 400): retrying the same request cannot help.
    """


class RateLimited(ProviderError):
    """HTTP 429: wait `retry_after` seconds (None when the provider did not say)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AuthError(ProviderError):
    """The credential is missing or refused (401/403); the message names it, never its value."""


class NotCovered(ProviderError):
    """Not retryable: the plan does not cover the range, or the ticker is unknown."""


class TransientError(ProviderError):
    """Retryable: 5xx, timeouts, dropped connections, broken JSON, error bodies."""


class Provider(Protocol):
    name: str

    def supports(self, timeframe: str) -> bool: ...

    async def fetch(self, request: FetchRequest, pace: Pace) -> FetchResult: ...


# --- error classification -------------------------------------------------------------


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


# --- turning rows into grid bars ------------------------------------------------------

# Intraday timeframes that divide an hour: their grid check is plain UTC arithmetic.
_HOURLY_OR_FINER = {tf: m for tf, m in INTRADAY_MINUTES.items() if 60 % m == 0}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# The largest trade count a float holds exactly: _check stores int(float(n)).
_EXACT_FLOAT_INT = 2**53


class _Reject(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _number(name: str, value: object) -> float:
    if value is None:
        raise _Reject(f"null {name}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Reject(f"wrong type for {name}")
    number = float(value)
    if not math.isfinite(number):
        raise _Reject(f"non-finite {name}")
    return number


def _optional_number(name: str, value: object) -> float | None:
    return None if value is None else _number(name, value)


@dataclass(slots=True)
class BarSieve:
    """Checks parsed rows against the request and the grid; keeps bars, rejects the rest.

    Among valid rows the first of a timestamp wins; later ones are rejected as
    duplicates. Rows outside the chunk are rejected too (a live row for today,
    a bar past the requested end): the chunk owns only its own sessions.
    """

    request: FetchRequest
    bars: list[Bar] = field(default_factory=list, init=False)
    rejected: list[RawRow] = field(default_factory=list, init=False)
    # The latest bar start taken. While every bar is later than the one before
    # (providers answer in time order), no timestamp can repeat and `bars` is
    # sorted: the set of timestamps taken is only built at the first bar that
    # is not, and result() sorts only then.
    _latest: dt.datetime | None = field(default=None, init=False, repr=False)
    _seen: set[dt.datetime] | None = field(default=None, init=False, repr=False)
    _session_dates: frozenset[dt.date] | None = field(default=None, init=False, repr=False)
    _session_opens: list[dt.datetime] | None = field(default=None, init=False, repr=False)
    _session_closes: list[dt.datetime] = field(default_factory=list, init=False, repr=False)

    def reject(self, raw: Mapping[str, object], reason: str, ts: dt.datetime | None = None) -> None:
        self.rejected.append(RawRow(dict(raw), reason, ts))

    def row_epoch(self, row: object, key: str) -> tuple[Mapping[str, object], int] | None:
        """The row and its integer epoch field `key`, or None after rejecting the row."""
        if not isinstance(row, dict):
            self.reject({"row": row}, "not an object")
            return None
        stamp = row.get(key)
        if stamp is None:
            self.reject(row, f"null {key}")
            return None
        if isinstance(stamp, bool) or not isinstance(stamp, int):
            self.reject(row, f"wrong type for {key}")
            return None
        return row, stamp

    def offer(
        self,
        raw: Mapping[str, object],
        ts: dt.datetime,
        *,
        open: object,
        high: object,
        low: object,
        close: object,
        volume: object,
        vwap: object = None,
        trade_count: object = None,
    ) -> None:
        try:
            bar = self._check(ts, open, high, low, close, volume, vwap, trade_count)
        except _Reject as rejection:
            self.reject(raw, rejection.reason, ts)
            return
        latest = self._latest
        if latest is not None and bar.ts <= latest:
            seen = self._seen
            if seen is None:
                seen = self._seen = {b.ts for b in self.bars}
            if bar.ts in seen:
                self.reject(raw, "duplicate timestamp", ts)
                return
            seen.add(bar.ts)
        else:
            self._latest = bar.ts
            if self._seen is not None:
                self._seen.add(bar.ts)
        self.bars.append(bar)

    def offer_epoch_rows(
        self,
        rows: Iterable[object],
        offer_one: Callable[[object], None],
        *,
        stamp: str,
        unit: dt.timedelta,
        fields: tuple[str, str, str, str, str, str, str],
    ) -> None:
        """Offer a page of rows: `offer_one(row)` is the provider's own per-row path.

        Rows are dicts with an integer epoch `stamp` in `unit`s and the fields open,
        high, low, close, volume, vwap and trade_count under the names `fields`. For
        timeframes that divide an hour, the common row (float prices, an int or
        float volume, a float or null vwap, an int or null trade count, on the
        grid, inside a session, later than the bar before, every check passed) is
        taken here in one step; any other row, and every row of other timeframes,
        goes through `offer_one`, which takes or rejects it with its reason. So the
        bars, the rejects and their order are those of `offer_one` alone.
        """
        minutes = _HOURLY_OR_FINER.get(self.request.timeframe)
        if minutes is None:
            for row in rows:
                offer_one(row)
            return
        grid, remainder = divmod(dt.timedelta(minutes=minutes), unit)
        if remainder:
            raise ValueError(f"a {unit} stamp unit does not divide {self.request.timeframe}")
        k_open, k_high, k_low, k_close, k_volume, k_vwap, k_count = fields
        opens, closes = self._sessions()
        start, end = self.request.start, self.request.end
        isfinite, bar_of, append = math.isfinite, Bar, self.bars.append
        latest = self._latest
        session_open = session_close = _EPOCH  # the session of the row before (none yet: empty)
        for row in rows:
            if type(row) is dict:
                at = row.get(stamp)
                o, h, lo, c = row.get(k_open), row.get(k_high), row.get(k_low), row.get(k_close)
                v, vw, n = row.get(k_volume), row.get(k_vwap), row.get(k_count)
                if (
                    type(at) is int
                    and not at % grid
                    and type(o) is float
                    and type(h) is float
                    and type(lo) is float
                    and type(c) is float
                    and isfinite(o + h + lo + c)
                    and 0 < lo <= o <= h
                    and lo <= c <= h
                    and (type(v) is int or (type(v) is float and isfinite(v)))
                    and v >= 0
                    and (vw is None or (type(vw) is float and isfinite(vw) and vw > 0))
                    and (n is None or (type(n) is int and 0 <= n <= _EXACT_FLOAT_INT))
                ):
                    ts = _EPOCH + unit * at
                    if (latest is None or ts > latest) and start <= ts < end:
                        if not session_open <= ts < session_close:
                            k = bisect.bisect_right(opens, ts) - 1
                            if k >= 0:
                                session_open, session_close = opens[k], closes[k]
                        if session_open <= ts < session_close:
                            append(bar_of(ts, o, h, lo, c, float(v), vw, n))
                            latest = self._latest = ts
                            if self._seen is not None:
                                self._seen.add(ts)
                            continue
            offer_one(row)
            latest = self._latest

    def result(self, provider: str, requests: int) -> FetchResult:
        bars = self.bars if self._seen is None else sorted(self.bars, key=lambda b: b.ts)
        return FetchResult(provider, bars, self.rejected, requests)

    def _check(
        self,
        ts: dt.datetime,
        open_: object,
        high_: object,
        low_: object,
        close_: object,
        volume_: object,
        vwap_: object,
        trade_count_: object,
    ) -> Bar:
        # The common row (floats, an int volume, finite values) is taken as it is;
        # anything else goes through the checks that name what is wrong.
        if (
            type(open_) is float
            and type(high_) is float
            and type(low_) is float
            and type(close_) is float
            and math.isfinite(open_ + high_ + low_ + close_)
        ):
            open, high, low, close = open_, high_, low_, close_
        else:
            open = _number("open", open_)
            high = _number("high", high_)
            low = _number("low", low_)
            close = _number("close", close_)
        volume = float(volume_) if type(volume_) is int else _number("volume", volume_)
        vwap = vwap_ if type(vwap_) is float and math.isfinite(vwap_) else _optional_number("vwap", vwap_)
        count = (
            float(trade_count_)
            if type(trade_count_) is int
            else _optional_number("trade_count", trade_count_)
        )
        minutes = _HOURLY_OR_FINER.get(self.request.timeframe)
        if minutes is not None and ts.utcoffset() == dt.timedelta(0):
            # New York's offset from UTC is whole hours, so for timeframes that divide
            # an hour the New York grid is the UTC minute grid.
            if ts.second or ts.microsecond or ts.minute % minutes:
                raise _Reject("off grid")
            self._check_inside_sessions(ts)
        else:
            if not is_on_grid(ts, self.request.timeframe):
                raise _Reject("off grid")
            self._check_inside_chunk(ts)
        if min(open, high, low, close) <= 0:
            raise _Reject("non-positive price")
        if high < low:
            raise _Reject("high below low")
        if high < max(open, close) or low > min(open, close):
            raise _Reject("open or close outside high..low")
        if volume < 0:
            raise _Reject("negative volume")
        if vwap is not None and vwap <= 0:
            raise _Reject("non-positive vwap")
        if count is not None and (count < 0 or not count.is_integer()):
            raise _Reject("invalid trade_count")
        return Bar(ts, open, high, low, close, volume, vwap, None if count is None else int(count))

    def _check_inside_sessions(self, ts: dt.datetime) -> None:
        """An intraday bar starts inside the chunk and inside one of its sessions'
        extended hours (04:00 to 20:00 New York, 17:00 on early closes)."""
        if not self.request.start <= ts < self.request.end:
            raise _Reject("outside chunk")
        opens, closes = self._sessions()
        at = bisect.bisect_right(opens, ts) - 1
        if at < 0 or ts >= closes[at]:
            raise _Reject("outside session hours")

    def _sessions(self) -> tuple[list[dt.datetime], list[dt.datetime]]:
        """Pre-market opens and after-hours closes of the chunk's sessions, in order."""
        if self._session_opens is None:
            hours = sessions_between(self.request.first_session, self.request.last_session)
            self._session_opens = [s.premarket_open for s in hours]
            self._session_closes = [s.after_hours_close for s in hours]
        return self._session_opens, self._session_closes

    def _check_inside_chunk(self, ts: dt.datetime) -> None:
        request = self.request
        if request.timeframe in INTRADAY_MINUTES:
            self._check_inside_sessions(ts)
            return
        day = new_york_date(ts)
        if request.timeframe == "w1":
            first = trading_week_monday(request.first_session)
            if not first <= day <= trading_week_monday(request.last_session):
                raise _Reject("outside chunk")
            return
        if not request.first_session <= day <= request.last_session:
            raise _Reject("outside chunk")
        if self._session_dates is None:
            self._session_dates = frozenset(
                s.session_date for s in sessions_between(request.first_session, request.last_session)
            )
        if day not in self._session_dates:
            raise _Reject("not a session")


# --- the shared HTTP client part ------------------------------------------------------


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
